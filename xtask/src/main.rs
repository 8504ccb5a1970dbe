//! Project tasks: `cargo xtask build | test | run | lab | bench | fuzz | deb | man | toolchain`.
//!
//! Every task that builds first makes sure the BPF toolchain is there
//! (nightly's rust-src and a bpf-linker linked against nightly's own LLVM),
//! installing what is missing into `target/tools` and reusing it after.

mod deb;
mod toolchain;
mod tools;

use std::{
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "anycast project tasks"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the eBPF object and the `anycast` binary (installs the BPF toolchain when missing).
    Build {
        /// Build userspace in release mode (the eBPF object is always optimised).
        #[arg(long)]
        release: bool,
    },
    /// Run unit, program (BPF_PROG_TEST_RUN) and lab (namespace) tests. Needs root.
    ///
    /// Arguments after `--` go to `cargo test`, e.g. `cargo xtask test -- -p anycast-tests`.
    Test {
        /// Extra arguments for `cargo test`.
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// Attach to a NIC and print live counters until Ctrl-C, then detach:
    /// `cargo xtask run -- --iface eth0 [--role edge] [--source-action drop] [--mode native]`.
    /// With no interface, bring up the demo lab instead.
    Run {
        /// `--iface IF` and any `anycast run` option (--role, --source-action, --mode, --interval, --pin-dir).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The demo lab: a client, a router running anycast and three members;
    /// nearest-member redirect, a metric change, encapsulation and the edge
    /// filter shown with counters; torn down.
    Lab,
    /// Benchmarks: program cost per path and against configuration size,
    /// end to end in a namespace lab against kernel forwarding, nftables,
    /// xdp-filter and trivial XDP programs, and the service with 1,000
    /// members checked every second (CPU, memory, update latency); writes
    /// report.md, results.json and SVG plots. Needs root.
    Bench {
        /// A short run (about a minute and a half) that proves the bench works.
        #[arg(long)]
        quick: bool,
        /// Output folder.
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
        /// A git revision (e.g. `main`, `HEAD~3`, a commit) whose eBPF
        /// object is built (in target/baseline) and measured interleaved
        /// with this tree's, path by path, in the same run.
        #[arg(long, value_name = "REV")]
        baseline: Option<String>,
        /// Also time each program path that rewrites the frame the way it
        /// was timed before December 2026 (one call of many runs on one
        /// frame), in a section of its own: what that method measured.
        #[arg(long)]
        naive_too: bool,
    },
    /// Differential fuzzing of the XDP program against the reference model
    /// with random seeds for N seconds per interface kind; the run's seed is
    /// printed first (so that any run can be repeated), a failure names its
    /// own seed, and its minimised frame is written to tests/corpus.
    Fuzz {
        /// How long, per interface kind.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Instead of frames, kill `addr load` and `config apply` at random
        /// points (SIGKILL) and check after each that the next command
        /// leaves the pinned state consistent (the test suite does 20 kills
        /// of each; this does `--kills`).
        #[arg(long)]
        crash: bool,
        /// Kills per command, with --crash.
        #[arg(long, default_value_t = 100, requires = "crash")]
        kills: u64,
        /// The run's seed (default: from the clock), e.g. to repeat a run.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// A Debian package: the release binary (its eBPF object inside), the
    /// systemd unit, examples, docs, maintainer scripts; prints its path.
    /// Install with `dpkg -i`; the unit starts once /etc/anycast/anycast.toml
    /// exists.
    Deb {
        /// Package the debug build instead (quicker to build; what
        /// `cargo xtask test` checks, not for shipping).
        #[arg(long)]
        debug: bool,
        /// Output folder; default target/debian (target/debug/debian with
        /// --debug, so that a debug package never takes a release one's
        /// place).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The man pages, anycast.1 and one per subcommand (anycast-addr-add.1...),
    /// generated from the `anycast` binary's clap definitions (the binary
    /// is built first and writes them: `anycast man --out DIR`). Read one
    /// with `man -l target/man/anycast.1`.
    Man {
        /// Output folder.
        #[arg(long, default_value = "target/man")]
        out: PathBuf,
    },
    /// Only install (or check) the BPF toolchain.
    Toolchain,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root()?;
    match cli.task {
        Task::Toolchain => {
            let bin = toolchain::ensure(&root)?;
            println!("BPF toolchain ready: {}", bin.display());
        }
        Task::Build { release } => {
            let bin = build(&root, release)?;
            println!("built {}", bin.display());
        }
        Task::Test { cargo_args } => test(&root, &cargo_args)?,
        Task::Deb { debug, out } => {
            tools::ensure(tools::DEB)?;
            let bin = build(&root, !debug)?;
            let out = out.unwrap_or_else(|| deb_dir(!debug));
            let deb = deb::package(&root, &bin, &root.join(out))?;
            println!("built {}", deb.display());
        }
        Task::Man { out } => {
            let bin = build(&root, false)?;
            let mut cmd = Command::new(&bin);
            cmd.arg("man").arg("--out").arg(root.join(out));
            status(cmd, "anycast man")?;
        }
        Task::Run { args } => run(&root, args)?,
        Task::Lab => demo_lab(&root)?,
        Task::Bench {
            quick,
            out,
            baseline,
            naive_too,
        } => bench(&root, quick, &out, baseline.as_deref(), naive_too)?,
        Task::Fuzz {
            seconds,
            crash,
            kills,
            seed,
        } => {
            if crash {
                crash_fuzz(&root, kills, seed)?
            } else {
                fuzz(&root, seconds, seed)?
            }
        }
    }
    Ok(())
}

fn workspace_root() -> Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    Ok(dir
        .parent()
        .context("xtask has no parent directory")?
        .to_path_buf())
}

/// `cargo` with the BPF toolchain on PATH, run from the workspace root.
fn cargo(root: &Path, tools: &Path) -> Result<Command> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![tools.to_path_buf()];
    paths.extend(std::env::split_paths(&path));
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root)
        .env("PATH", std::env::join_paths(paths)?)
        .env_remove("ANYCAST_EBPF_STUB");
    Ok(cmd)
}

fn status(mut cmd: Command, what: &str) -> Result<()> {
    let st = cmd.status().with_context(|| format!("running {what}"))?;
    if !st.success() {
        bail!("{what} failed ({st})");
    }
    Ok(())
}

fn build(root: &Path, release: bool) -> Result<PathBuf> {
    let tools = toolchain::ensure(root)?;
    let mut cmd = cargo(root, &tools)?;
    cmd.args(["build", "--package", "anycast-user"]);
    if release {
        cmd.arg("--release");
    }
    status(cmd, "cargo build")?;
    let profile = if release { "release" } else { "debug" };
    Ok(root.join("target").join(profile).join("anycast"))
}

/// Where `cargo xtask deb` leaves a package of the release or debug build.
fn deb_dir(release: bool) -> PathBuf {
    PathBuf::from(if release {
        "target/debian"
    } else {
        "target/debug/debian"
    })
}

fn require_root(task: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "`cargo xtask {task}` needs root: it loads XDP programs and creates network namespaces (try sudo -E cargo xtask {task})"
        );
    }
    Ok(())
}

fn test(root: &Path, extra: &[String]) -> Result<()> {
    require_root("test")?;
    tools::ensure(&[tools::LAB, tools::TEST, tools::DEB].concat())?;
    let bin = build(root, false)?;
    // The package of this debug build (a release build would add minutes
    // for the same files): tests/tests/dist.rs checks and installs it.
    let deb = deb::package(root, &bin, &root.join(deb_dir(false)))?;
    let tools = toolchain::ensure(root)?;
    let mut cmd = cargo(root, &tools)?;
    cmd.args(["test", "--no-fail-fast"])
        .args(extra)
        .args(["--", "--include-ignored"])
        .env("ANYCAST_BIN", &bin)
        .env("ANYCAST_DEB", &deb);
    status(cmd, "cargo test")
}

fn run(root: &Path, mut args: Vec<String>) -> Result<()> {
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    let mut iface = None;
    let mut rest = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "--iface" {
            iface = Some(it.next().context("--iface needs an interface name")?);
        } else if let Some(v) = a.strip_prefix("--iface=") {
            iface = Some(v.to_string());
        } else {
            rest.push(a);
        }
    }
    let Some(iface) = iface else {
        if !rest.is_empty() {
            bail!("options {rest:?} need --iface IF (without it, `run` brings up the demo lab)");
        }
        return demo_lab(root);
    };
    require_root("run")?;
    let bin = build(root, false)?;
    println!("attaching to {iface}; Ctrl-C detaches");
    let mut cmd = Command::new(&bin);
    cmd.arg("run").arg(&iface).args(&rest);
    // The child handles Ctrl-C (it detaches before exiting); this process
    // only waits for it, so it ignores the signal itself.
    // SAFETY: plain signal(2) calls; the child resets SIGINT before exec.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    status(cmd, "anycast run")
}

/// Makes sure the programs in `needs` are there, builds the `anycast`
/// binary, then runs `cargo ARGS` (a harness of the tests crate) with the
/// BPF toolchain on PATH and the binary in ANYCAST_BIN.
fn harness(
    root: &Path,
    task: &str,
    needs: &[tools::Tool],
    args: &[&str],
    env: &[(&str, String)],
) -> Result<()> {
    require_root(task)?;
    tools::ensure(needs)?;
    let bin = build(root, false)?;
    let tools = toolchain::ensure(root)?;
    let mut cmd = cargo(root, &tools)?;
    cmd.args(args).env("ANYCAST_BIN", &bin);
    for (k, v) in env {
        cmd.env(k, v);
    }
    status(cmd, &format!("cargo xtask {task}"))
}

fn bench(
    root: &Path,
    quick: bool,
    out: &Path,
    baseline: Option<&str>,
    naive_too: bool,
) -> Result<()> {
    let out = out.to_str().context("the output folder must be UTF-8")?;
    let baseline = baseline.map(|rev| baseline_object(root, rev)).transpose()?;
    let mut args = vec![
        "run",
        "--quiet",
        "--package",
        "anycast-tests",
        "--bin",
        "anycast-bench",
        "--",
        "--out",
        out,
    ];
    if quick {
        args.push("--quick");
    }
    if naive_too {
        args.push("--naive-too");
    }
    if let Some(object) = &baseline {
        args.push("--baseline");
        args.push(
            object
                .to_str()
                .context("the baseline's path must be UTF-8")?,
        );
    }
    harness(
        root,
        "bench",
        &[tools::LAB, tools::BENCH].concat(),
        &args,
        &[],
    )
}

/// Builds the eBPF object of git revision `rev` in target/baseline/COMMIT
/// (the tree exported with `git archive`, sharing this tree's BPF
/// toolchain) and returns its path.
fn baseline_object(root: &Path, rev: &str) -> Result<PathBuf> {
    let tools = toolchain::ensure(root)?;
    let commit = String::from_utf8(
        Command::new("git")
            .current_dir(root)
            .args(["rev-parse", "--verify", &format!("{rev}^{{commit}}")])
            .output()
            .context("running git")?
            .stdout,
    )?
    .trim()
    .to_string();
    if commit.is_empty() {
        bail!("`{rev}` is not a git revision of this repository");
    }
    let dir = root.join("target/baseline").join(&commit);
    if !dir.join("Cargo.toml").exists() {
        std::fs::create_dir_all(&dir)?;
        let sh = format!(
            "git -C '{}' archive '{commit}' | tar -x -C '{}'",
            root.display(),
            dir.display()
        );
        status(
            {
                let mut c = Command::new("sh");
                c.args(["-c", &sh]);
                c
            },
            "exporting the baseline with git archive",
        )?;
    }
    let linked = dir.join("target/tools");
    if !linked.exists() {
        std::fs::create_dir_all(dir.join("target"))?;
        std::os::unix::fs::symlink(root.join("target/tools"), &linked)?;
    }
    println!(
        "building the baseline {rev} ({commit}) in {}",
        dir.display()
    );
    let mut cmd = cargo(&dir, &tools)?;
    cmd.args(["build", "--package", "anycast-user"]);
    status(cmd, "building the baseline")?;
    // The object build.rs left, the newest if several builds did.
    let mut objects: Vec<(std::time::SystemTime, PathBuf)> =
        std::fs::read_dir(dir.join("target/debug/build"))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("anycast-user-"))
            .map(|e| e.path().join("out/anycast"))
            .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
            .collect();
    objects.sort();
    objects
        .pop()
        .map(|(_, p)| p)
        .context("the baseline's build left no eBPF object")
}

/// What a fuzz run of `seconds` from `seed` says first: its seed, and how
/// to repeat it.
fn fuzz_banner(seconds: u64, seed: u64) -> String {
    format!(
        "fuzz seed {seed} (repeat this run: cargo xtask fuzz --seconds {seconds} --seed {seed})"
    )
}

/// The fuzz test's environment: how long, from which seed, and where
/// minimised failures go.
fn fuzz_env(seconds: u64, seed: u64, corpus: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("ANYCAST_FUZZ_SECONDS", seconds.to_string()),
        ("ANYCAST_FUZZ_SEED", seed.to_string()),
        ("ANYCAST_FUZZ_CORPUS_DIR", corpus.display().to_string()),
    ]
}

fn fuzz(root: &Path, seconds: u64, seed: Option<u64>) -> Result<()> {
    let seed = match seed {
        Some(s) => s,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64,
    };
    println!("{}", fuzz_banner(seconds, seed));
    let args = [
        "test",
        "--package",
        "anycast-tests",
        "--test",
        "fuzz",
        "--",
        "--include-ignored",
        "--nocapture",
    ];
    let corpus = root.join("tests").join("corpus");
    harness(root, "fuzz", &[], &args, &fuzz_env(seconds, seed, &corpus))?;
    println!("{}", fuzz_banner(seconds, seed));
    Ok(())
}

/// The crash test with `kills` kills per command, from `seed` or a random
/// one (printed by the test).
fn crash_fuzz(root: &Path, kills: u64, seed: Option<u64>) -> Result<()> {
    let args = [
        "test",
        "--package",
        "anycast-tests",
        "--test",
        "crash",
        "--",
        "--include-ignored",
        "--nocapture",
    ];
    harness(root, "fuzz --crash", &[], &args, &crash_env(kills, seed))
}

/// The crash test's environment: kills per command, and the seed if given.
fn crash_env(kills: u64, seed: Option<u64>) -> Vec<(&'static str, String)> {
    let mut env = vec![("ANYCAST_CRASH_KILLS", kills.to_string())];
    env.extend(seed.map(|s| ("ANYCAST_CRASH_SEED", s.to_string())));
    env
}

fn demo_lab(root: &Path) -> Result<()> {
    harness(
        root,
        "lab",
        tools::LAB,
        &[
            "run",
            "--quiet",
            "--package",
            "anycast-tests",
            "--bin",
            "anycast-demo",
        ],
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fuzz_run_names_its_seed_and_hands_it_to_the_test() {
        let banner = fuzz_banner(30, 1234);
        assert!(banner.starts_with("fuzz seed 1234 "), "{banner}");
        assert!(
            banner.contains("cargo xtask fuzz --seconds 30 --seed 1234"),
            "{banner}"
        );
        let env = fuzz_env(30, 1234, Path::new("tests/corpus"));
        assert!(
            env.contains(&("ANYCAST_FUZZ_SEED", "1234".to_string())),
            "{env:?}"
        );
        assert!(
            env.contains(&("ANYCAST_FUZZ_SECONDS", "30".to_string())),
            "{env:?}"
        );
    }
}
