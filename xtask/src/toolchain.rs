//! The BPF toolchain bootstrap.
//!
//! Building the eBPF crate needs nightly with `rust-src` (for
//! `-Z build-std=core`) and `bpf-linker` linked against the same LLVM major
//! version as that nightly. `bpf-linker` is built from crates.io against
//! nightly's own `libLLVM.so`, into `target/tools`, once.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

/// The bpf-linker release this project builds with.
const BPF_LINKER_VERSION: &str = "0.13.0";

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn rustup() -> Command {
    Command::new("rustup")
}

/// Makes sure the toolchain is installed; returns the folder holding `bpf-linker`.
pub(crate) fn ensure(root: &Path) -> Result<PathBuf> {
    let tools = root.join("target/tools");
    let bin = tools.join("bin");

    let version = output(rustup().args(["run", "nightly", "rustc", "-vV"])).context(
        "the nightly Rust toolchain is missing; install it with \
         `rustup toolchain install nightly --component rust-src`",
    )?;
    let llvm_major = version
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .context("cannot read nightly's LLVM version from `rustc -vV`")?
        .to_string();

    let installed =
        output(rustup().args(["component", "list", "--toolchain", "nightly", "--installed"]))?;
    if !installed.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("xtask: adding rust-src to the nightly toolchain");
        output(rustup().args(["component", "add", "rust-src", "--toolchain", "nightly"])).context(
            "adding rust-src failed; run `rustup component add rust-src --toolchain nightly`",
        )?;
    }

    let linker = bin.join("bpf-linker");
    let stamp = tools.join("bpf-linker.llvm");
    let stamp_ok = fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == llvm_major);
    if linker.exists() && stamp_ok {
        return Ok(bin);
    }

    eprintln!(
        "xtask: building bpf-linker {BPF_LINKER_VERSION} against nightly's LLVM {llvm_major} into {} (about 90 s, once)",
        tools.display()
    );
    let sysroot = output(rustup().args(["run", "nightly", "rustc", "--print", "sysroot"]))?;
    let libdir = Path::new(sysroot.trim()).join("lib");
    let libllvm = fs::read_dir(&libdir)
        .with_context(|| format!("reading {}", libdir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("libLLVM.so.") || (n.starts_with("libLLVM-") && n.ends_with(".so"))
            })
        })
        .with_context(|| {
            format!(
                "no libLLVM.so in the nightly toolchain ({})",
                libdir.display()
            )
        })?;

    // LLVM_PREFIX/lib/libLLVM.so is what bpf-linker's build links against.
    let prefix = tools.join("llvm");
    let link = prefix.join("lib/libLLVM.so");
    fs::create_dir_all(prefix.join("lib"))?;
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&libllvm, &link)
        .with_context(|| format!("linking {} to {}", link.display(), libllvm.display()))?;

    let st = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--no-default-features",
            "--features",
            &format!("llvm-{llvm_major}"),
            "--force",
            "--root",
        ])
        .arg(&tools)
        .env("LLVM_PREFIX", &prefix)
        .status()
        .context("running cargo install")?;
    if !st.success() || !linker.exists() {
        bail!(
            "building bpf-linker failed ({st}). By hand: make a folder P/lib with a symlink libLLVM.so -> \
             {}, then `LLVM_PREFIX=P cargo install bpf-linker --no-default-features --features llvm-{llvm_major} --root {}`",
            libllvm.display(),
            tools.display()
        );
    }
    fs::write(&stamp, &llvm_major)?;
    Ok(bin)
}
