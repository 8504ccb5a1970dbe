//! Lab tests of the CLI's output: a closed output (`anycast ... | head`)
//! is no panic and no failure of a change that was made; `anycast run`
//! detaches however it ends.

use std::{
    io::{BufRead as _, BufReader},
    net::Ipv6Addr,
    process::{Output, Stdio},
    time::Duration,
};

use anycast_tests::{
    lab::{ClientRouterServer, Lab, Running},
    require_root,
};
use anyhow::{Context as _, Result, bail, ensure};

const ANY_DNS: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xac, 0, 0, 0, 0, 0x53);

/// Runs `anycast ARGS` in the router with its standard output a pipe
/// nobody reads any more (its reading end closed before the start).
fn closed_output(lab: &Lab, args: &[&str]) -> Result<Output> {
    let (reader, writer) = std::io::pipe()?;
    drop(reader);
    lab.anycast_cmd(&lab.pin_dir, "router", args)?
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .context("running anycast")
}

/// A run whose output closed or that was signalled: success, no panic.
fn quiet_success(out: &Output, what: &str) -> Result<()> {
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(!err.contains("panicked"), "{what}: {err}");
    ensure!(out.status.success(), "{what}: {:?}: {err}", out.status);
    Ok(())
}

/// Whether interface `iface` of the router has an XDP program.
fn has_xdp(lab: &Lab, iface: &str) -> Result<bool> {
    Ok(lab
        .ns("router")?
        .ip(&["link", "show", "dev", iface])?
        .contains("xdp"))
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn a_closed_output_is_no_panic_and_a_change_stays_a_success() -> Result<()> {
    require_root()?;
    let crs = ClientRouterServer::new("closedout")?;
    let lab = &crs.lab;
    lab.anycast_ok("router", &["attach", "c0"])?;
    for i in 1..=20u16 {
        let a = Ipv6Addr::new(0x2001, 0xdb8, 0xcc, 0, 0, 0, 0, i);
        lab.anycast_ok(
            "router",
            &["addr", "add", &a.to_string(), "--group", "pool"],
        )?;
    }
    for args in [
        &["addr", "list", "--json"][..],
        &["addr", "list"][..],
        &["stats"][..],
        &["stats", "--json"][..],
        &["member", "list"][..],
        &["flows", "list"][..],
        &["--help"][..],
    ] {
        quiet_success(&closed_output(lab, args)?, &args.join(" "))?;
    }

    // A change whose report nobody reads: made, and a success.
    let file = std::env::temp_dir().join(format!("{}-apply.toml", lab.prefix));
    std::fs::write(
        &file,
        format!("[group.dns]\naddresses = [\"{ANY_DNS}\", \"2001:db8:ad::/48\"]\n"),
    )?;
    let path = file.to_string_lossy().into_owned();
    let applied = closed_output(lab, &["config", "apply", &path]);
    let _ = std::fs::remove_file(&file);
    quiet_success(&applied?, "config apply")?;
    let list = lab.anycast_ok("router", &["addr", "list"])?;
    ensure!(list.contains("2001:db8:ad::/48"), "not applied: {list}");
    ensure!(
        !list.contains("2001:db8:cc::1 "),
        "the file's removals not applied: {list}"
    );
    quiet_success(
        &closed_output(lab, &["addr", "add", "2001:db8:ae::1", "--group", "dns"])?,
        "addr add",
    )?;
    let list = lab.anycast_ok("router", &["addr", "list"])?;
    ensure!(list.contains("2001:db8:ae::1"), "not added: {list}");
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn run_detaches_however_it_ends() -> Result<()> {
    require_root()?;
    let crs = ClientRouterServer::new("rundetach")?;
    let lab = &crs.lab;
    lab.anycast_ok("router", &["attach", "c0"])?;
    let start = |what: &str| -> Result<(Running, BufReader<std::process::ChildStdout>)> {
        let (mut running, stdout) = lab
            .spawn_anycast(&lab.pin_dir, "router", &["run", "s0", "--interval", "1"])
            .with_context(|| what.to_string())?;
        let mut lines = BufReader::new(stdout);
        let mut first = String::new();
        lines.read_line(&mut first)?;
        if !first.starts_with("attached to s0") {
            let status = running.wait(Duration::from_secs(5));
            bail!("{what}: first line {first:?}, {status:?}");
        }
        ensure!(has_xdp(lab, "s0")?, "{what}: s0 not attached");
        Ok((running, lines))
    };
    let ended = |mut r: Running, what: &str| -> Result<()> {
        let status = r.wait(Duration::from_secs(10))?;
        let mut err = String::new();
        if let Some(mut e) = r.0.stderr.take() {
            std::io::Read::read_to_string(&mut e, &mut err)?;
        }
        ensure!(!err.contains("panicked"), "{what}: {err}");
        ensure!(status.success(), "{what}: {status:?}: {err}");
        ensure!(!has_xdp(lab, "s0")?, "{what}: s0 still attached");
        let s = lab.stats("router")?;
        assert_eq!(s["interfaces"].as_array().map(Vec::len), Some(1), "{what}");
        Ok(())
    };

    // `anycast run s0 | head -2`: the reader goes after two lines.
    let (r, mut lines) = start("closed output")?;
    let mut second = String::new();
    lines.read_line(&mut second)?;
    drop(lines);
    ended(r, "closed output")?;

    for (sig, what) in [
        (libc::SIGINT, "SIGINT"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGHUP, "SIGHUP"),
    ] {
        let (r, lines) = start(what)?;
        r.signal(sig)?;
        ended(r, what)?;
        drop(lines);
    }
    // c0's attachment (another command's) was never touched.
    ensure!(has_xdp(lab, "c0")?, "c0 detached");
    Ok(())
}
