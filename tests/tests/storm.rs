//! An update storm: thousands of member changes through the library, on the
//! live pinned maps of a lab router, while a bounded stream of datagrams
//! flows; every datagram reaches a live member of its group.

use std::{
    net::{SocketAddr, SocketAddrV6},
    thread,
    time::{Duration, Instant},
};

use anycast::{Dataplane, PinDir};
use anycast_common::MemberState;
use anycast_tests::{
    lab::{ANYCAST, MemberLab, Service},
    require_root,
};
use anyhow::{Result, ensure};

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn thousands_of_member_changes_lose_no_packet() -> Result<()> {
    require_root()?;
    let ml = MemberLab::new("updstorm")?;
    let lab = &ml.lab;
    for args in [
        vec!["attach", "c0"],
        vec!["attach", "r1", "--role", "member"],
        vec!["attach", "r2", "--role", "member"],
        vec!["addr", "add", &ANYCAST.to_string(), "--group", "dns"],
        vec!["group", "set", "dns", "--affinity", "none"],
    ] {
        lab.anycast_ok("router", &args)?;
    }
    for (m, iface) in [("m1", "r1"), ("m2", "r2")] {
        let mac = ml.member_mac(m)?;
        lab.anycast_ok(
            "router",
            &[
                "member", "add", "dns", m, "--iface", iface, "--mac", &mac, "--metric", "10",
            ],
        )?;
    }
    let m1 = Service::start(lab.ns("m1")?, ANYCAST, 5400, "m1")?;
    let m2 = Service::start(lab.ns("m2")?, ANYCAST, 5400, "m2")?;
    let mut dp = Dataplane::open(PinDir::new(&lab.pin_dir))?;
    let tx = ml.client_socket()?;
    const SENT: usize = 8000;
    let changes = thread::scope(|s| -> Result<usize> {
        let sender = s.spawn(|| -> Result<()> {
            let dst = SocketAddr::V6(SocketAddrV6::new(ANYCAST, 5400, 0, 0));
            // Every port stays open until the stream ends: a member's answer
            // to a closed one would come back as an ICMPv6 error to the
            // anycast address, which the data plane redirects too.
            let mut ports = Vec::new();
            for i in 0..SENT {
                // Many flows (source ports), so that both members serve.
                let sock = if i % 50 == 0 {
                    ml.client_socket()?
                } else {
                    tx.try_clone()?
                };
                sock.send_to(format!("q{i}").as_bytes(), dst)?;
                if i % 50 == 0 {
                    ports.push(sock);
                }
                thread::sleep(Duration::from_micros(500));
            }
            Ok(())
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut changes = 0usize;
        // Metrics flip and members go down, drain and come back; at every
        // moment at least one member of the group is up.
        while !sender.is_finished() && Instant::now() < deadline {
            let (a, b) = if changes.is_multiple_of(2) {
                ("m1", "m2")
            } else {
                ("m2", "m1")
            };
            dp.set_member("dns", a, Some(5 + (changes % 7) as u32), None, None)?;
            dp.set_member("dns", b, None, Some(MemberState::Down), None)?;
            dp.set_member("dns", b, None, Some(MemberState::Up), None)?;
            dp.set_member("dns", b, None, Some(MemberState::Draining), None)?;
            dp.set_member("dns", b, None, Some(MemberState::Up), None)?;
            changes += 5;
        }
        sender
            .join()
            .map_err(|_| anyhow::anyhow!("sender panicked"))??;
        Ok(changes)
    })?;
    thread::sleep(Duration::from_millis(300));
    let (n1, n2) = (m1.stop(), m2.stop());
    ensure!(
        changes >= 1000,
        "only {changes} changes happened during the stream"
    );
    assert_eq!(
        n1 + n2,
        SENT,
        "m1 {n1} + m2 {n2} != sent {SENT} after {changes} changes"
    );
    let s = lab.stats("router")?;
    assert_eq!(s["groups"]["dns"]["redirected"].as_u64(), Some(SENT as u64));
    assert_eq!(s["groups"]["dns"]["fallback_passed"].as_u64(), Some(0));
    println!("{changes} member changes during {SENT} datagrams; m1 {n1}, m2 {n2}");
    Ok(())
}
