//! What the project ships besides the binary: the systemd unit is one
//! systemd accepts without a warning; the Debian package of `cargo xtask
//! deb` holds what it should, as root's, and installs, upgrades, removes
//! and purges in a scratch root.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail, ensure};

/// `systemd-analyze verify` of `unit` with ExecStart's binary the one
/// under test: its exit status and what it said.
fn verify(name: &str, unit: &str) -> Result<(bool, String)> {
    verify_with(name, unit, &anycast_tests::lab::anycast_bin()?)
}

/// `systemd-analyze verify` of `unit` with ExecStart's /usr/bin/anycast
/// made `bin`.
fn verify_with(name: &str, unit: &str, bin: &Path) -> Result<(bool, String)> {
    let dir = std::env::temp_dir().join(format!("anycast-dist-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(name);
    std::fs::write(
        &file,
        unit.replace("/usr/bin/anycast", &bin.to_string_lossy()),
    )?;
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&file)
        .output()
        .context("running systemd-analyze (cargo xtask test installs it)")?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn the_systemd_unit_verifies_without_a_warning() -> Result<()> {
    let unit = include_str!("../../dist/anycast.service");
    let (ok, said) = verify("anycast.service", unit)?;
    ensure!(ok && said.trim().is_empty(), "{said}");
    ensure!(unit.contains("Type=notify") && unit.contains("WatchdogSec="));
    ensure!(unit.contains("ExecReload=/usr/bin/anycast reload"));
    // The check can fail: a misspelt key is a warning it reports.
    let (_, said) = verify(
        "anycast.service",
        &unit.replace("WatchdogSec=", "WatchdogSecs="),
    )?;
    ensure!(said.contains("Unknown key"), "not caught: {said}");
    Ok(())
}

/// `cmd`'s standard output; an error with its standard error when it fails.
fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The package `cargo xtask test` built (ANYCAST_DEB).
fn package() -> Result<PathBuf> {
    match std::env::var_os("ANYCAST_DEB") {
        Some(p) => Ok(PathBuf::from(p)),
        None => bail!(
            "no package: `cargo xtask test` builds one (or `cargo xtask deb --debug`, \
             then ANYCAST_DEB=target/debug/debian/anycast_VERSION_ARCH.deb)"
        ),
    }
}

/// Whether `data` holds an ELF object for the BPF machine (e_machine 247,
/// little-endian): the eBPF object the binary embeds.
fn embeds_a_bpf_object(data: &[u8]) -> bool {
    data.windows(20)
        .any(|w| w.starts_with(b"\x7fELF") && w[18] == 247 && w[19] == 0)
}

/// A root for dpkg to install into: its own database, nothing else.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Self> {
        let root = std::env::temp_dir().join(format!("anycast-deb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let db = root.join("var/lib/dpkg");
        for d in ["info", "updates", "triggers"] {
            std::fs::create_dir_all(db.join(d))?;
        }
        std::fs::write(db.join("status"), "")?;
        std::fs::write(db.join("available"), "")?;
        Ok(Scratch(root))
    }

    /// `dpkg ARGS` on this root's database only: the maintainer scripts
    /// run with DPKG_ROOT set (so they touch this root, never the
    /// machine's systemd), and the dependencies (libc6...) are not there.
    fn dpkg(&self, args: &[&str]) -> Result<String> {
        output(
            Command::new("dpkg")
                .arg(format!("--root={}", self.0.display()))
                .args([
                    "--force-not-root",
                    "--force-script-chrootless",
                    "--force-depends",
                    "--log=/dev/null",
                ])
                .args(args),
        )
    }

    fn path(&self, p: &str) -> PathBuf {
        self.0.join(p.trim_start_matches('/'))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
#[ignore = "needs the package: `cargo xtask test` builds it"]
fn the_debian_package_holds_the_service_and_installs_into_a_scratch_root() -> Result<()> {
    let deb = package()?;
    let deb_arg = deb.to_str().context("a UTF-8 path")?;
    let bin = anycast_tests::lab::anycast_bin()?;
    let version = output(Command::new(&bin).arg("--version"))?;
    let version = version
        .trim()
        .strip_prefix("anycast ")
        .context("a version")?;

    // The control file.
    let field = |name: &str| -> Result<String> {
        Ok(
            output(Command::new("dpkg-deb").args(["--field", deb_arg, name]))?
                .trim()
                .to_string(),
        )
    };
    ensure!(field("Package")? == "anycast");
    ensure!(
        field("Version")? == format!("{version}-1"),
        "{}",
        field("Version")?
    );
    let arch = output(Command::new("dpkg").arg("--print-architecture"))?;
    ensure!(field("Architecture")? == arch.trim());
    let depends = field("Depends")?;
    ensure!(depends.starts_with("libc6 (>= "), "{depends}");
    ensure!(field("Installed-Size")?.parse::<u64>()? > 1000);
    ensure!(field("Maintainer")?.contains('@'));
    ensure!(field("Description")?.starts_with("IPv6 anycast filter and redirector (XDP)\n "));

    // The files: each where operators look for it, root's, and none
    // writable but by root.
    let contents = output(Command::new("dpkg-deb").args(["--contents", deb_arg]))?;
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for line in contents.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        ensure!(cols.len() == 6, "{line}");
        ensure!(cols[1] == "root/root", "not root's: {line}");
        ensure!(
            cols[0].len() == 10 && cols[0].as_bytes()[5] != b'w' && cols[0].as_bytes()[8] != b'w',
            "writable by others: {line}"
        );
        files.insert(
            cols[5].trim_start_matches('.').to_string(),
            cols[0].to_string(),
        );
    }
    for (path, mode) in [
        ("/usr/bin/anycast", "-rwxr-xr-x"),
        ("/usr/lib/systemd/system/anycast.service", "-rw-r--r--"),
        ("/usr/share/doc/anycast/copyright", "-rw-r--r--"),
        ("/usr/share/doc/anycast/changelog.Debian.gz", "-rw-r--r--"),
        ("/usr/share/doc/anycast/examples/service.toml", "-rw-r--r--"),
        ("/usr/share/doc/anycast/examples/bgp.toml", "-rw-r--r--"),
        ("/usr/share/doc/anycast/BGP.md", "-rw-r--r--"),
        ("/usr/share/doc/anycast/JSON.md", "-rw-r--r--"),
        ("/usr/share/doc/anycast/OPERATIONS.md", "-rw-r--r--"),
        ("/etc/anycast/", "drwxr-xr-x"),
        ("/usr/share/man/man1/anycast.1.gz", "-rw-r--r--"),
        ("/usr/share/man/man1/anycast-addr-add.1.gz", "-rw-r--r--"),
        (
            "/usr/share/bash-completion/completions/anycast",
            "-rw-r--r--",
        ),
        ("/usr/share/zsh/vendor-completions/_anycast", "-rw-r--r--"),
        (
            "/usr/share/fish/vendor_completions.d/anycast.fish",
            "-rw-r--r--",
        ),
    ] {
        ensure!(
            files.get(path).map(String::as_str) == Some(mode),
            "{path}: {:?} in\n{contents}",
            files.get(path)
        );
    }
    // No configuration file: the unit waits for the operator's.
    ensure!(
        !files
            .keys()
            .any(|p| p.starts_with("/etc/") && !["/etc/", "/etc/anycast/"].contains(&p.as_str())),
        "{contents}"
    );

    // The maintainer scripts: executable, valid sh, systemd only through
    // debhelper's helpers, never when DPKG_ROOT says another root.
    let scratch = Scratch::new()?;
    let control = scratch.path("control");
    output(
        Command::new("dpkg-deb")
            .args(["--control", deb_arg])
            .arg(&control),
    )?;
    for script in ["postinst", "prerm", "postrm"] {
        let path = control.join(script);
        let mode = std::os::unix::fs::PermissionsExt::mode(&path.metadata()?.permissions());
        ensure!(mode & 0o777 == 0o755, "{script}: {mode:o}");
        output(Command::new("sh").arg("-n").arg(&path))?;
        let text = std::fs::read_to_string(&path)?;
        ensure!(
            text.starts_with("#!/bin/sh\n") && text.contains("set -e"),
            "{script}"
        );
        for line in text.lines().filter(|l| l.contains("/run/systemd/system")) {
            ensure!(line.contains("DPKG_ROOT"), "{script}: {line}");
        }
    }
    std::fs::remove_dir_all(&control)?;

    // Installed: the binary runs, with its eBPF object; the unit as
    // installed verifies against the binary it names; it is enabled.
    scratch.dpkg(&["--install", deb_arg])?;
    let installed = scratch.path("/usr/bin/anycast");
    ensure!(
        output(Command::new(&installed).arg("--version"))?.trim() == format!("anycast {version}")
    );
    output(Command::new(&installed).args(["run", "--help"]))?;
    ensure!(
        embeds_a_bpf_object(&std::fs::read(&installed)?),
        "no eBPF object in the packaged binary"
    );
    // The man page and the completions are the binary's own.
    let page = output(
        Command::new("gzip")
            .arg("-dc")
            .arg(scratch.path("/usr/share/man/man1/anycast.1.gz")),
    )?;
    ensure!(page == output(Command::new(&bin).arg("man"))?, "{page}");
    let bash =
        std::fs::read_to_string(scratch.path("/usr/share/bash-completion/completions/anycast"))?;
    ensure!(bash == output(Command::new(&bin).args(["completions", "bash"]))?);
    let unit = std::fs::read_to_string(scratch.path("/usr/lib/systemd/system/anycast.service"))?;
    ensure!(unit.contains("ExecStart=/usr/bin/anycast run --config /etc/anycast/anycast.toml"));
    ensure!(unit.contains("ConditionPathExists=/etc/anycast/anycast.toml"));
    let (ok, said) = verify_with("anycast.service", &unit, &installed)?;
    ensure!(ok && said.trim().is_empty(), "{said}");
    let wants = scratch.path("/etc/systemd/system/multi-user.target.wants/anycast.service");
    ensure!(
        std::fs::read_link(&wants)? == Path::new("/usr/lib/systemd/system/anycast.service"),
        "not enabled"
    );
    let status = scratch.dpkg(&["--status", "anycast"])?;
    ensure!(status.contains("Status: install ok installed"), "{status}");
    // Installing again is the upgrade path of the scripts.
    scratch.dpkg(&["--install", deb_arg])?;

    // Removed: the binary goes, the operator's file stays; purged: it goes.
    let config = scratch.path("/etc/anycast/anycast.toml");
    std::fs::write(&config, "# the operator's\n")?;
    scratch.dpkg(&["--remove", "anycast"])?;
    ensure!(!installed.exists() && config.exists());
    scratch.dpkg(&["--purge", "anycast"])?;
    ensure!(!config.exists() && !wants.exists() && !scratch.path("/etc/anycast").exists());
    let left: Vec<PathBuf> = walk(&scratch.path("/usr"))?;
    ensure!(left.is_empty(), "left behind: {left:?}");
    Ok(())
}

/// Every file (not directory) under `dir`.
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            out.extend(walk(&p)?);
        } else {
            out.push(p);
        }
    }
    Ok(out)
}

#[test]
fn a_bpf_object_is_found_only_when_there() {
    let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x01\0".to_vec();
    elf.extend([247, 0]);
    let host = [
        b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0".as_slice(),
        &[62, 0],
    ]
    .concat();
    assert!(embeds_a_bpf_object(
        &[host.as_slice(), b"....", &elf, b"...."].concat()
    ));
    assert!(!embeds_a_bpf_object(&host));
}
