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
    debian: &'static str,
    fedora: &'static str,
}

const fn tool(command: &'static str, debian: &'static str, fedora: &'static str) -> Tool {
    Tool {
        command,
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

/// What the bench runs besides the lab: the peers it compares against.
pub(crate) const BENCH: &[Tool] = &[
    tool("nft", "nftables", "nftables"),
    tool("xdp-filter", "xdp-tools", "xdp-tools"),
];

/// Whether `command` is an executable file in one of the folders of `path`
/// (a PATH value).
fn on_path(command: &str, path: &OsString) -> bool {
    env::split_paths(path).any(|dir| {
        let file: PathBuf = dir.join(command);
        file.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The tools of `tools` that are not on `path`.
fn missing(tools: &[Tool], path: &OsString) -> Vec<Tool> {
    tools
        .iter()
        .filter(|t| !on_path(t.command, path))
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
    let commands: Vec<&str> = missing.iter().map(|t| t.command).collect();
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
            .map(|t| t.command)
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
            ["ethtool", "util-linux", "nftables", "xdp-tools"]
        );
        std::fs::remove_dir_all(dir).expect("clean up");
    }

    #[test]
    fn nothing_is_missing_when_every_tool_is_there() {
        let (dir, path) = fake_path(&["ip", "nsenter", "setpriv", "nft", "xdp-filter"]);
        std::fs::set_permissions(dir.join("ethtool"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        assert!(missing(&[LAB, BENCH].concat(), &path).is_empty());
        std::fs::remove_dir_all(dir).expect("clean up");
    }
}
