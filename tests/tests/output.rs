//! Lab tests of what the CLI says and how it ends: groups listed, deleted
//! and freed; the attach mode in use; interfaces and members by name; errors
//! that are one short line, say their cause once, and tell "no data plane"
//! from "needs root"; a closed output (`anycast ... | head`) is no panic and
//! no failure of a change that was made; `anycast run` detaches however it
//! ends.

use std::{
    io::{BufRead as _, BufReader},
    net::Ipv6Addr,
    path::Path,
    process::{Command, Output, Stdio},
    time::Duration,
};

use anycast_tests::{
    lab::{ANYCAST, ClientRouterServer, Lab, MemberLab, Running, Service, anycast_bin},
    require_root,
};
use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;

fn json(lab: &Lab, args: &[&str]) -> Result<Value> {
    Ok(serde_json::from_str(&lab.anycast_ok("router", args)?)?)
}

/// Runs the CLI as user `nobody` with pin dir `pin`; its stderr.
fn as_nobody(pin: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(anycast_bin()?)
        .arg("--pin-dir")
        .arg(pin)
        .args(args)
        .output()
        .context("running setpriv")?;
    assert!(!out.status.success(), "{args:?} as nobody succeeded");
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn groups_are_listed_deleted_and_freed_and_never_made_by_a_typo() -> Result<()> {
    require_root()?;
    let crs = ClientRouterServer::new("groups")?;
    let lab = &crs.lab;
    lab.anycast_ok("router", &["attach", "c0"])?;
    lab.anycast_ok(
        "router",
        &["addr", "add", "2001:db8:ac::53", "--group", "dns"],
    )?;
    lab.anycast_ok(
        "router",
        &["member", "add", "dns", "far", "--encap", "2001:db8:f::2"],
    )?;
    // A typo in `group set` makes no group.
    lab.anycast_refused(
        "router",
        &["group", "set", "dsn", "--fallback", "drop"],
        "no group `dsn`",
    )?;
    lab.anycast_ok("router", &["group", "set", "dns", "--fallback", "drop"])?;
    let groups = json(lab, &["group", "list", "--json"])?;
    assert_eq!(groups.as_array().map(Vec::len), Some(1), "{groups}");
    let dns = &groups[0];
    assert_eq!(
        (
            &dns["name"],
            &dns["addresses"],
            &dns["members"],
            &dns["fallback"]
        ),
        (&"dns".into(), &1.into(), &1.into(), &"drop".into()),
        "{groups}"
    );
    let table = lab.anycast_ok("router", &["group", "list"])?;
    assert!(
        table.lines().nth(1).is_some_and(|l| l.starts_with("dns ")),
        "{table}"
    );

    // Not deleted while it has addresses or members, unless forced.
    lab.anycast_refused(
        "router",
        &["group", "del", "dns"],
        "group `dns` still has 1 addresses and 1 members",
    )?;
    lab.anycast_refused("router", &["group", "del", "nosuch"], "no group `nosuch`")?;
    let out = lab.anycast_ok("router", &["group", "del", "dns", "--force"])?;
    assert!(
        out.contains("deleted group dns (1 addresses, 1 members)"),
        "{out}"
    );
    assert_eq!(
        json(lab, &["group", "list", "--json"])?,
        Value::Array(vec![])
    );
    assert_eq!(
        json(lab, &["addr", "list", "--json"])?,
        Value::Array(vec![])
    );
    assert_eq!(
        json(lab, &["member", "list", "--json"])?,
        Value::Array(vec![])
    );

    // The last address or member gone, the group goes too, and says so.
    lab.anycast_ok(
        "router",
        &["addr", "add", "2001:db8:ac::1", "--group", "g1"],
    )?;
    let out = lab.anycast_ok("router", &["addr", "del", "2001:db8:ac::1"])?;
    assert!(
        out.contains("deleted group g1: it had no address and no member left"),
        "{out}"
    );
    lab.anycast_ok(
        "router",
        &["member", "add", "g2", "m", "--encap", "2001:db8:f::3"],
    )?;
    lab.anycast_ok(
        "router",
        &["addr", "add", "2001:db8:ac::2", "--group", "g2"],
    )?;
    let out = lab.anycast_ok("router", &["member", "del", "g2", "m"])?;
    assert!(
        !out.contains("deleted group"),
        "g2 still has an address: {out}"
    );
    let out = lab.anycast_ok("router", &["addr", "del", "2001:db8:ac::2"])?;
    assert!(out.contains("deleted group g2"), "{out}");
    assert_eq!(
        json(lab, &["group", "list", "--json"])?,
        Value::Array(vec![])
    );
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn listings_show_the_mode_in_use_and_names_not_numbers() -> Result<()> {
    require_root()?;
    let ml = MemberLab::attached("names", "dns")?;
    let lab = &ml.lab;
    lab.anycast_ok("router", &["attach", "t0", "--mode", "skb"])?;
    ml.add_member("dns", "m1", "r1", 10)?;

    // The mode the kernel runs the program in, and the one asked for.
    let s = lab.stats("router")?;
    let iface = |name: &str| {
        s["interfaces"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i["name"] == name))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(iface("c0")["mode"], "native", "{s}");
    assert_eq!(iface("c0")["requested_mode"], "auto", "{s}");
    assert_eq!(iface("t0")["mode"], "skb", "{s}");
    let shown = lab.anycast_ok("router", &["stats"])?;
    assert!(shown.contains("mode native (requested auto)"), "{shown}");
    assert!(!shown.contains("mode auto"), "{shown}");

    // Each map with its size and what the kernel charges for it: the
    // exact-address index is 2^20 buckets of 64 bytes, preallocated.
    let index = &s["maps"]["EXACT_INDEX"];
    assert_eq!(index["max_entries"], 1 << 20, "{s}");
    assert_eq!(index["value_size"], 64, "{s}");
    assert!(index["bytes"].as_u64().unwrap_or(0) >= 64 << 20, "{s}");
    assert_eq!(
        s["maps"].as_object().map(|m| m.len()),
        Some(anycast_common::map_names::ALL.len()),
        "{s}"
    );
    assert!(
        shown.contains("EXACT_INDEX") && shown.contains("MiB"),
        "{shown}"
    );

    // Members by interface name, flows by member name.
    let members = json(lab, &["member", "list", "dns", "--json"])?;
    assert_eq!(members[0]["iface"], "r1", "{members}");
    let table = lab.anycast_ok("router", &["member", "list"])?;
    assert!(table.contains("l2 r1 "), "{table}");
    assert!(!table.contains(" if"), "{table}");
    let _svc = Service::start(lab.ns("m1")?, ANYCAST, 5370, "m1")?;
    assert_eq!(ml.answerer(5370)?, "m1");
    let flows = json(lab, &["flows", "list", "--json"])?;
    assert_eq!(flows["flows"][0]["member"], "m1", "{flows}");
    let shown = lab.anycast_ok("router", &["flows", "list"])?;
    assert!(shown.contains("member m1 "), "{shown}");
    // Nothing was evicted: no eviction count is shown.
    assert!(!shown.contains("evicted"), "{shown}");
    assert!(!lab.anycast_ok("router", &["stats"])?.contains("evicted"));

    // An unknown group is an error, not an empty list.
    lab.anycast_refused(
        "router",
        &["flows", "list", "--group", "nosuch"],
        "no group `nosuch`",
    )?;
    lab.anycast_refused("router", &["flows", "flush", "nosuch"], "no group `nosuch`")?;
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn errors_are_one_short_line_and_say_their_cause_once() -> Result<()> {
    require_root()?;
    let crs = ClientRouterServer::new("errors")?;
    let lab = &crs.lab;
    lab.anycast_ok(
        "router",
        &["addr", "add", "2001:db8:ac::53", "--group", "dns"],
    )?;

    // Nothing attached: detach says so.
    let out = lab.anycast_ok("router", &["detach"])?;
    assert_eq!(out.trim(), "no interface was attached");

    // The weight's limits are the same wherever it is given.
    for w in ["0", "101", "300", "-1"] {
        lab.anycast_refused(
            "router",
            &[
                "member",
                "add",
                "dns",
                "x",
                "--encap",
                "2001:db8:f::9",
                "--weight",
                w,
            ],
            &format!("invalid weight {w}: use 1 to 100"),
        )?;
    }
    lab.anycast_ok(
        "router",
        &["member", "add", "dns", "x", "--encap", "2001:db8:f::9"],
    )?;
    lab.anycast_refused(
        "router",
        &["member", "set", "dns", "x", "--weight", "256"],
        "invalid weight 256: use 1 to 100",
    )?;
    // The MAC error is a sentence.
    lab.anycast_refused(
        "router",
        &[
            "member",
            "add",
            "dns",
            "y",
            "--iface",
            "s0",
            "--mac",
            "01:00:5e:00:00:01",
        ],
        "invalid MAC address `01:00:5e:00:00:01`: it is a multicast address, not a unicast MAC",
    )?;

    // Bad input is quoted short, without control characters.
    let long = format!("a\nb\u{1b}[31m{}", "x".repeat(5000));
    for args in [
        vec![
            "member",
            "add",
            "dns",
            long.as_str(),
            "--encap",
            "2001:db8:f::8",
        ],
        vec!["addr", "add", long.as_str(), "--group", "dns"],
        vec!["member", "set", "dns", long.as_str(), "--metric", "1"],
        vec!["attach", long.as_str()],
    ] {
        let out = lab.anycast_in("router", &args)?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(!err.trim_end().chars().any(char::is_control), "{err:?}");
        assert!(err.len() < 300, "{} characters: {err}", err.len());
    }

    // Arguments clap refuses are quoted the same way (its message keeps
    // its own lines).
    let metric = format!("1\n2\u{1b}[31m{}", "0".repeat(5000));
    for args in [
        vec!["member", "set", "dns", "x", "--metric", metric.as_str()],
        vec![metric.as_str()],
    ] {
        let out = lab.anycast_in("router", &args)?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        let first = err.lines().next().unwrap_or_default();
        assert!(first.contains("'1\\n2\\u{1b}[31m000"), "{err}");
        assert!(!err.chars().any(|c| c.is_control() && c != '\n'), "{err:?}");
        assert!(err.len() < 400, "{} characters: {err}", err.len());
    }

    // --netns: the cause said once.
    let out = Command::new(anycast_bin()?)
        .args(["--pin-dir", lab.pin_dir.to_str().unwrap_or_default()])
        .args(["--netns", &format!("{}-nosuch", lab.prefix), "stats"])
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");

    // Without root: an existing data plane needs root to read; none is none.
    let err = as_nobody(&lab.pin_dir, &["stats"])?;
    assert!(
        err.contains("permission denied: reading the data plane pinned at")
            && err.contains("needs root"),
        "{err}"
    );
    assert!(!err.contains("no anycast data plane"), "{err}");
    let none = std::path::PathBuf::from(format!("{}-none", lab.pin_dir.display()));
    let err = as_nobody(&none, &["addr", "list"])?;
    assert!(
        err.contains(&format!("no anycast data plane at {}", none.display())),
        "{err}"
    );
    Ok(())
}

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
    // The file replaces all twenty: that takes --force.
    let applied = closed_output(lab, &["config", "apply", "--force", &path]);
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
