//! Builds the eBPF object with nightly and bpf-linker (aya-build) and leaves
//! it in OUT_DIR for `include_bytes!`.
//!
//! `ANYCAST_EBPF_STUB=1` writes an empty object instead, so that `cargo
//! check`/`clippy` of userspace work without the BPF toolchain; the loader
//! then fails with a clear error. `cargo xtask build` installs the toolchain.

use std::{env, fs, path::PathBuf};

use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=ANYCAST_EBPF_STUB");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?);
    let object = out_dir.join("anycast");
    if env::var_os("ANYCAST_EBPF_STUB").is_some_and(|v| v == "1") {
        fs::write(&object, []).context("writing the stub eBPF object")?;
        fs::write(out_dir.join("peers"), []).context("writing the stub peers object")?;
        return Ok(());
    }

    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest
        .parent()
        .ok_or_else(|| anyhow!("anycast-user has no parent directory"))?;
    // The BPF toolchain the xtask installs lives in target/tools/bin; put it
    // on PATH so that a plain `cargo build` works once it is there.
    let tools = root.join("target/tools/bin");
    if tools.join("bpf-linker").exists() {
        let path = env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![tools];
        paths.extend(env::split_paths(&path));
        let joined = env::join_paths(paths).context("building PATH")?;
        // SAFETY: the build script is single-threaded at this point.
        unsafe { env::set_var("PATH", joined) };
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("anycast-common/src").display()
    );

    let ebpf_dir = root.join("anycast-ebpf");
    let ebpf_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "anycast-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context(
        "building the eBPF object failed; it needs nightly with rust-src and bpf-linker: \
         run `cargo xtask build` once (it installs them), or set ANYCAST_EBPF_STUB=1 to skip",
    )
}
