//! Lab tests: client -> router -> server in network namespaces, the
//! `anycast` binary attached on the router, real UDP sockets at both ends.

use std::{net::Ipv6Addr, process::Command, thread};

use anycast::{dataplane::Dataplane, pin::PinDir};
use anycast_common::flow_epoch_in_flush;
use anycast_tests::{
    lab::{CLIENT, ClientRouterServer, Lab, anycast_bin},
    require_root,
};
use anyhow::{Context as _, Result};

/// An anycast address the client will falsely claim.
const ANY_DNS: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xac, 0, 0, 0, 0, 0x53);
const N: usize = 20;

fn lab(test: &str) -> Result<ClientRouterServer> {
    require_root()?;
    let crs = ClientRouterServer::new(test)?;
    crs.client_claims(ANY_DNS)?;
    Ok(crs)
}

/// Makes ANY_DNS an anycast address of group `dns` on the router.
fn add_dns(lab: &anycast_tests::lab::Lab) -> Result<()> {
    lab.anycast_ok(
        "router",
        &["addr", "add", &ANY_DNS.to_string(), "--group", "dns"],
    )?;
    Ok(())
}

fn counter(stats: &serde_json::Value, group: &str, name: &str) -> u64 {
    stats["groups"][group][name].as_u64().unwrap_or(u64::MAX)
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn anycast_source_never_crosses_the_edge() -> Result<()> {
    let crs = lab("srcdrop")?;
    let lab = &crs.lab;
    // Before anything is configured both kinds of packets get through.
    assert_eq!(crs.send_udp(ANY_DNS, 5300, N)?, N);

    lab.anycast_ok("router", &["attach", "c0", "--role", "edge"])?;
    add_dns(lab)?;
    assert_eq!(
        crs.send_udp(ANY_DNS, 5301, N)?,
        0,
        "spoofed anycast source must be dropped"
    );
    assert_eq!(
        crs.send_udp(CLIENT, 5302, N)?,
        N,
        "normal traffic must pass"
    );

    let s = lab.stats("router")?;
    assert_eq!(counter(&s, "dns", "anycast_source_drops"), N as u64);
    assert_eq!(s["global"]["anycast_source_drops"].as_u64(), Some(N as u64));
    assert!(s["global"]["unicast_passed"].as_u64().unwrap_or(0) >= N as u64);
    assert_eq!(s["interfaces"][0]["name"], "c0");

    // Deleting the address restores delivery; the global counters stay (the
    // group, left with no address and no member, goes with its own).
    lab.anycast_ok("router", &["addr", "del", &ANY_DNS.to_string()])?;
    assert_eq!(crs.send_udp(ANY_DNS, 5303, N)?, N);
    let s = lab.stats("router")?;
    assert_eq!(s["global"]["anycast_source_drops"].as_u64(), Some(N as u64));
    assert!(s["groups"].get("dns").is_none(), "{s}");
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn detach_restores_plain_forwarding() -> Result<()> {
    let crs = lab("detach")?;
    let lab = &crs.lab;
    lab.anycast_ok(
        "router",
        &["addr", "add", "2001:db8:ac::/48", "--group", "dns"],
    )?;
    lab.anycast_ok("router", &["attach", "c0"])?;
    assert_eq!(crs.send_udp(ANY_DNS, 5310, N)?, 0);
    let shown = lab.ns("router")?.ip(&["link", "show", "dev", "c0"])?;
    assert!(shown.contains("xdp"), "{shown}");

    lab.anycast_ok("router", &["detach", "c0"])?;
    let shown = lab.ns("router")?.ip(&["link", "show", "dev", "c0"])?;
    assert!(!shown.contains("xdp"), "program still attached: {shown}");
    assert_eq!(crs.send_udp(ANY_DNS, 5311, N)?, N);
    // The maps stay until --purge.
    let list = lab.anycast_ok("router", &["addr", "list"])?;
    assert!(list.contains("2001:db8:ac::/48"), "{list}");
    lab.anycast_ok("router", &["detach", "--purge"])?;
    assert!(!lab.pin_dir.exists());
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn cli_restarts_do_not_disturb_the_data_plane() -> Result<()> {
    let crs = lab("restart")?;
    let lab = &crs.lab;
    add_dns(lab)?;
    lab.anycast_ok("router", &["attach", "c0"])?;
    assert_eq!(crs.send_udp(ANY_DNS, 5320, N)?, 0);
    // Every command is a new process; none of them may reset state.
    for _ in 0..3 {
        lab.anycast_ok("router", &["stats"])?;
        lab.anycast_ok("router", &["addr", "list", "--json"])?;
    }
    // A second attachment loads a new program instance on the same pinned maps.
    lab.anycast_ok("router", &["attach", "s0", "--source-action", "count"])?;
    assert_eq!(crs.send_udp(ANY_DNS, 5321, N)?, 0);
    let s = lab.stats("router")?;
    assert_eq!(counter(&s, "dns", "anycast_source_drops"), 2 * N as u64);
    assert_eq!(s["interfaces"].as_array().map(Vec::len), Some(2));
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn monitor_mode_counts_without_dropping() -> Result<()> {
    let crs = lab("monitor")?;
    let lab = &crs.lab;
    add_dns(lab)?;
    lab.anycast_ok(
        "router",
        &[
            "attach",
            "c0",
            "--source-action",
            "count",
            "--mode",
            "native",
        ],
    )?;
    assert_eq!(crs.send_udp(ANY_DNS, 5330, N)?, N);
    let s = lab.stats("router")?;
    assert_eq!(counter(&s, "dns", "anycast_source_counted"), N as u64);
    assert_eq!(counter(&s, "dns", "anycast_source_drops"), 0);
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn generic_mode_filters_too() -> Result<()> {
    let crs = lab("skbmode")?;
    let lab = &crs.lab;
    add_dns(lab)?;
    lab.anycast_ok("router", &["attach", "c0", "--mode", "skb"])?;
    assert_eq!(crs.send_udp(ANY_DNS, 5340, N)?, 0);
    assert_eq!(crs.send_udp(CLIENT, 5341, N)?, N);
    let s = lab.stats("router")?;
    assert_eq!(counter(&s, "dns", "anycast_source_drops"), N as u64);
    assert_eq!(s["interfaces"][0]["mode"], "skb");
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn bad_input_is_refused_and_changes_nothing() -> Result<()> {
    let crs = lab("badinput")?;
    let lab = &crs.lab;
    add_dns(lab)?;
    lab.anycast_ok("router", &["attach", "c0"])?;
    let before = lab.anycast_ok("router", &["addr", "list", "--json"])?;
    let cases: &[(&[&str], &str)] = &[
        (
            &["addr", "add", "10.0.0.1", "--group", "x"],
            "not an IPv6 address",
        ),
        (
            &["addr", "add", "2001:db8::/129", "--group", "x"],
            "over 128",
        ),
        (
            &["addr", "add", "2001:db8::1/64", "--group", "x"],
            "host bits",
        ),
        (
            &["addr", "add", "2001:db8::1", "--group", "bad name!"],
            "invalid group name",
        ),
        (
            &["addr", "add", &ANY_DNS.to_string(), "--group", "other"],
            "already an anycast address of group `dns`",
        ),
        (
            &["addr", "del", "2001:db8::99"],
            "not a configured anycast address",
        ),
        (&["attach", "nosuch0"], "unknown interface `nosuch0`"),
        (&["attach", "c0"], "already attached"),
        (&["detach", "s0"], "not attached"),
        (&["detach", "--purge", "s0"], "not attached"),
    ];
    for (args, needle) in cases {
        lab.anycast_refused("router", args, needle)?;
    }
    assert_eq!(
        lab.anycast_ok("router", &["addr", "list", "--json"])?,
        before
    );
    // Still filtering after all of that.
    assert_eq!(crs.send_udp(ANY_DNS, 5350, N)?, 0);

    // Without root: refused with a clear message, nothing changed.
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(anycast_bin()?)
        .arg("--pin-dir")
        .arg(&lab.pin_dir)
        .args(["addr", "add", "2001:db8::7", "--group", "dns"])
        .output()
        .context("running setpriv")?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("needs root"), "{err}");
    assert_eq!(
        lab.anycast_ok("router", &["addr", "list", "--json"])?,
        before
    );
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn concurrent_cli_updates_stay_consistent() -> Result<()> {
    let crs = lab("concurrent")?;
    let lab = &crs.lab;
    lab.anycast_ok("router", &["attach", "c0"])?;
    const PER_WRITER: u16 = 25;
    thread::scope(|s| -> Result<()> {
        let writers: Vec<_> = (0..2u16)
            .map(|w| {
                s.spawn(move || -> Result<()> {
                    for i in 0..PER_WRITER {
                        let a = Ipv6Addr::new(0x2001, 0xdb8, 0xcc, w, 0, 0, 0, i + 1);
                        lab.anycast_ok(
                            "router",
                            &["addr", "add", &a.to_string(), "--group", "pool"],
                        )?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in writers {
            w.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
        }
        Ok(())
    })?;
    let list: serde_json::Value =
        serde_json::from_str(&lab.anycast_ok("router", &["addr", "list", "--json"])?)?;
    assert_eq!(list.as_array().map(Vec::len), Some(2 * PER_WRITER as usize));
    let s = lab.stats("router")?;
    assert_eq!(
        s["groups"]["pool"]["addresses"].as_u64(),
        Some(2 * u64::from(PER_WRITER))
    );
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn the_pin_dir_is_root_only() -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let crs = lab("pinmodes")?;
    let lab = &crs.lab;
    lab.anycast_ok("router", &["attach", "c0"])?;
    let mode = |p: &std::path::Path| -> Result<u32> {
        Ok(std::fs::metadata(p)?.permissions().mode() & 0o777)
    };
    assert_eq!(mode(&lab.pin_dir)?, 0o700);
    for entry in std::fs::read_dir(&lab.pin_dir)? {
        let path = entry?.path();
        assert_eq!(mode(&path)?, 0o600, "{}", path.display());
    }
    Ok(())
}

/// A flush killed half-way leaves the flow epoch odd, and the flow caches
/// put back no entry the LRU evicts; the next command that manages the
/// data plane settles it.
#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn a_flush_killed_half_way_is_settled_by_the_next_command() -> Result<()> {
    require_root()?;
    let lab = Lab::new("settle")?;
    let mut dp = Dataplane::open_or_create(PinDir::new(&lab.pin_dir))?;
    let before = dp.state_mut().flow_epoch()?;
    dp.state_mut().begin_flows_flush()?;
    let during = dp.state_mut().flow_epoch()?;
    assert!(flow_epoch_in_flush(during), "{before} -> {during}");
    drop(dp);
    let mut dp = Dataplane::open_or_create(PinDir::new(&lab.pin_dir))?;
    let after = dp.state_mut().flow_epoch()?;
    assert!(!flow_epoch_in_flush(after), "{during} -> {after}");
    assert_ne!(after, before, "caches must forget the half-flushed table");
    Ok(())
}
