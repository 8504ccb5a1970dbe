//! The external programs the labs and the bench run, checked before
//! anything is built: a missing one is installed with apt-get where that
//! is possible (root on Debian or Ubuntu, as on a fresh CI machine), and is
//! otherwise named, with the command that installs it, on one line.

use std::{env, ffi::OsString, os::unix::fs::PermissionsExt as _, path::PathBuf, process::Command};

use anyhow::{Result, bail};

/// A program a task runs: its command, and the package that has it on
/// Debian/Ubuntu and on Fedora.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tool {
    command: &'static str,
    /// A Python module the command must be able to import (the command
    /// is then `python3`).
    module: Option<&'static str>,
    debian: &'static str,
    fedora: &'static str,
}

const fn tool(command: &'static str, debian: &'static str, fedora: &'static str) -> Tool {
    Tool {
        command,
        module: None,
        debian,
        fedora,
    }
}

/// The interpreter distribution packages of Python modules install for
/// (a `python3` earlier on PATH, e.g. pyenv's, does not see them).
pub(crate) const SYSTEM_PYTHON: &str = "/usr/bin/python3";

const fn python_module(module: &'static str, debian: &'static str, fedora: &'static str) -> Tool {
    Tool {
        command: SYSTEM_PYTHON,
        module: Some(module),
        debian,
        fedora,
    }
}

/// What the namespace labs run (tests, the demo): namespaces and links,
/// offloads off, a command in a namespace or with fewer privileges.
pub(crate) const LAB: &[Tool] = &[
    tool("ip", "iproute2", "iproute"),
    tool("ethtool", "ethtool", "ethtool"),
    tool("nsenter", "util-linux", "util-linux"),
    tool("setpriv", "util-linux", "util-linux"),
];

/// What the tests use besides the lab: a real parser of the Prometheus
/// text format, to read the service's metrics as Prometheus would,
/// systemd's own check of the unit file, ping (path MTU discovery
/// through the anycast address), a real DNS server on the members
/// (dnsmasq from `dnsmasq-base`, which has no service of its own that
/// installing it would start), BIRD (BGP), and scapy (Mobile IPv6's home
/// agent discovery messages, sent and read in the subnet anycast lab).
pub(crate) const TEST: &[Tool] = &[
    python_module(
        "prometheus_client",
        "python3-prometheus-client",
        "python3-prometheus_client",
    ),
    tool("systemd-analyze", "systemd", "systemd"),
    tool("ping", "iputils-ping", "iputils"),
    tool("dnsmasq", "dnsmasq-base", "dnsmasq"),
    // A real BGP speaker for the announcements' labs (tests/tests/bgp.rs, bgp_ecmp.rs).
    tool("bird", "bird2", "bird"),
    // The man pages' check (tests/tests/manual.rs): groff -ww warns of bad roff.
    tool("groff", "groff-base", "groff-base"),
    // DHAAD requests and replies (tests/tests/subnet_lab.rs).
    python_module("scapy", "python3-scapy", "python3-scapy"),
];

/// What `cargo xtask deb` runs: the package builder, dpkg-shlibdeps (for
/// Depends), strip, gzip and md5sum.
pub(crate) const DEB: &[Tool] = &[
    tool("dpkg-deb", "dpkg", "dpkg"),
    tool("dpkg-shlibdeps", "dpkg-dev", "dpkg-dev"),
    tool("strip", "binutils", "binutils"),
    tool("gzip", "gzip", "gzip"),
    tool("md5sum", "coreutils", "coreutils"),
];

/// What the bench runs besides the lab: the peers it compares against,
/// and BIRD (the withdraw latency of a BGP announcement).
pub(crate) const BENCH: &[Tool] = &[
    tool("nft", "nftables", "nftables"),
    tool("xdp-filter", "xdp-tools", "xdp-tools"),
    tool("bird", "bird2", "bird"),
];

impl Tool {
    /// The tool's name in messages: its command, or its Python module.
    fn name(&self) -> String {
        match self.module {
            Some(m) => format!("{} module {m}", self.command),
            None => self.command.to_string(),
        }
    }
}

/// Whether `command` is an executable file in one of the folders of `path`
/// (a PATH value), or is one itself when it is an absolute path.
fn on_path(command: &str, path: &OsString) -> bool {
    if command.starts_with('/') {
        return PathBuf::from(command)
            .metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    }
    env::split_paths(path).any(|dir| {
        let file: PathBuf = dir.join(command);
        file.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Whether `t` is there: its command on `path`, and its module importable.
fn present(t: &Tool, path: &OsString) -> bool {
    on_path(t.command, path)
        && t.module.is_none_or(|m| {
            Command::new(t.command)
                .args(["-c", &format!("import {m}")])
                .env("PATH", path)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// The tools of `tools` that are not there.
fn missing(tools: &[Tool], path: &OsString) -> Vec<Tool> {
    tools
        .iter()
        .filter(|t| !present(t, path))
        .copied()
        .collect()
}

/// Each package once, in order.
fn packages(tools: &[Tool], pick: fn(&Tool) -> &'static str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for t in tools {
        if !out.contains(&pick(t)) {
            out.push(pick(t));
        }
    }
    out
}

/// The one line that names what is missing and how to install it.
fn advice(missing: &[Tool]) -> String {
    let commands: Vec<String> = missing.iter().map(Tool::name).collect();
    format!(
        "missing {}: install with `sudo apt-get install {}` (Debian/Ubuntu) or `sudo dnf install {}` (Fedora)",
        commands.join(", "),
        packages(missing, |t| t.debian).join(" "),
        packages(missing, |t| t.fedora).join(" "),
    )
}

/// Makes sure every tool of `tools` is there, installing what is missing
/// when this is root on a system with apt-get; fails with [`advice`]
/// otherwise (or when the install did not bring them).
pub(crate) fn ensure(tools: &[Tool]) -> Result<()> {
    let path = env::var_os("PATH").unwrap_or_default();
    let lacking = missing(tools, &path);
    if lacking.is_empty() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !on_path("apt-get", &path) {
        bail!("{}", advice(&lacking));
    }
    let debian = packages(&lacking, |t| t.debian);
    eprintln!(
        "xtask: installing {} (for {})",
        debian.join(" "),
        lacking
            .iter()
            .map(Tool::name)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    let installed =
        apt(&["update", "-qq"]) && apt(&[&["install", "-y", "-qq"][..], &debian[..]].concat());
    let still = missing(tools, &path);
    if !installed || !still.is_empty() {
        bail!("apt-get could not install them; {}", advice(&still));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PATH of one temporary folder holding executables named `present`.
    fn fake_path(present: &[&str]) -> (PathBuf, OsString) {
        let dir = env::temp_dir().join(format!(
            "xtask-tools-{}-{}",
            std::process::id(),
            present.join("-")
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        for name in present {
            let f = dir.join(name);
            std::fs::write(&f, "#!/bin/sh\n").expect("write");
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        // A file that is there but not executable does not count.
        std::fs::write(dir.join("ethtool"), "not a program").expect("write");
        let path = env::join_paths([&dir]).expect("path");
        (dir, path)
    }

    #[test]
    fn missing_tools_are_found_and_named_with_both_install_commands() {
        let (dir, path) = fake_path(&["ip", "nsenter"]);
        let lacking = missing(LAB, &path);
        let names: Vec<&str> = lacking.iter().map(|t| t.command).collect();
        assert_eq!(names, ["ethtool", "setpriv"]);
        let line = advice(&lacking);
        assert_eq!(
            line,
            "missing ethtool, setpriv: install with `sudo apt-get install ethtool util-linux` \
             (Debian/Ubuntu) or `sudo dnf install ethtool util-linux` (Fedora)"
        );
        assert!(!line.contains('\n'));
        let all = missing(&[LAB, BENCH].concat(), &path);
        assert_eq!(
            packages(&all, |t| t.debian),
            ["ethtool", "util-linux", "nftables", "xdp-tools", "bird2"]
        );
        std::fs::remove_dir_all(dir).expect("clean up");
    }

    #[test]
    fn a_python_module_is_missing_until_python_can_import_it() {
        // A python3 that exits 1 whatever it is asked: no module imports.
        let dir = env::temp_dir().join(format!("xtask-tools-{}-py", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let py = dir.join("python3");
        std::fs::write(&py, "#!/bin/sh\nexit 1\n").expect("write");
        std::fs::set_permissions(&py, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = env::join_paths([&dir]).expect("path");
        // The module as TEST has it, with the fake interpreter.
        let module = Tool {
            command: "python3",
            ..TEST[0]
        };
        let lacking = missing(&[module], &path);
        assert_eq!(
            advice(&lacking),
            "missing python3 module prometheus_client: install with `sudo apt-get install \
             python3-prometheus-client` (Debian/Ubuntu) or `sudo dnf install \
             python3-prometheus_client` (Fedora)"
        );
        // One that imports anything.
        std::fs::write(&py, "#!/bin/sh\nexit 0\n").expect("write");
        assert!(missing(&[module], &path).is_empty());
        std::fs::remove_dir_all(dir).expect("clean up");
    }

    #[test]
    fn nothing_is_missing_when_every_tool_is_there() {
        let (dir, path) = fake_path(&["ip", "nsenter", "setpriv", "nft", "xdp-filter", "bird"]);
        std::fs::set_permissions(dir.join("ethtool"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        assert!(missing(&[LAB, BENCH].concat(), &path).is_empty());
        std::fs::remove_dir_all(dir).expect("clean up");
    }
}
