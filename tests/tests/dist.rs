//! What the project ships besides the binary: the systemd unit is one
//! systemd accepts without a warning.

use std::process::Command;

use anyhow::{Context, Result, ensure};

/// `systemd-analyze verify` of `unit` with ExecStart's binary the one
/// under test: its exit status and what it said.
fn verify(name: &str, unit: &str) -> Result<(bool, String)> {
    let bin = anycast_tests::lab::anycast_bin()?;
    let dir = std::env::temp_dir().join(format!("anycast-dist-{}", std::process::id()));
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
