//! Lab tests of the redirect path: real members in their own namespaces
//! answer queries sent to the anycast address.

use std::{
    net::{SocketAddr, SocketAddrV6},
    thread,
    time::{Duration, Instant},
};

use anycast_tests::{
    lab::{ANYCAST, CLIENT, M3, MemberLab, Service},
    require_root,
};
use anyhow::{Result, ensure};

fn lab(test: &str) -> Result<MemberLab> {
    require_root()?;
    MemberLab::attached(test, "dns")
}

fn add_l2(ml: &MemberLab, name: &str, iface: &str, metric: u32) -> Result<()> {
    ml.add_member("dns", name, iface, metric)
}

fn services(ml: &MemberLab, port: u16) -> Result<Vec<Service>> {
    ["m1", "m2", "m3"]
        .iter()
        .map(|m| Service::start(ml.lab.ns(m)?, ANYCAST, port, m))
        .collect()
}

fn group_counter(ml: &MemberLab, name: &str) -> Result<u64> {
    let s = ml.lab.stats("router")?;
    Ok(s["groups"]["dns"][name].as_u64().unwrap_or(u64::MAX))
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn nearest_member_answers_and_follows_changes() -> Result<()> {
    let ml = lab("nearest")?;
    let lab = &ml.lab;
    add_l2(&ml, "m1", "r1", 10)?;
    add_l2(&ml, "m2", "r2", 20)?;
    let _svc = services(&ml, 5300)?;
    let sock = ml.client_socket()?;

    for _ in 0..5 {
        assert_eq!(ml.answerer(5300)?, "m1");
    }
    let members: serde_json::Value =
        serde_json::from_str(&lab.anycast_ok("router", &["member", "list", "dns", "--json"])?)?;
    assert_eq!(members[0]["name"], "m1");
    assert_eq!(members[0]["nearest"], true);
    assert!(
        members[0]["packets"].as_u64().unwrap_or(0) >= 5,
        "{members}"
    );
    assert_eq!(members[1]["packets"], 0);

    lab.anycast_ok("router", &["member", "set", "dns", "m1", "--metric", "30"])?;
    assert_eq!(ml.answerer(5300)?, "m2");
    lab.anycast_ok("router", &["member", "set", "dns", "m2", "--down"])?;
    assert_eq!(ml.answerer(5300)?, "m1");

    // No member left: the kernel's own route (to m3) serves, and it is counted.
    lab.anycast_ok("router", &["member", "del", "dns", "m1"])?;
    lab.anycast_ok("router", &["member", "del", "dns", "m2"])?;
    let before = group_counter(&ml, "fallback_passed")?;
    assert_eq!(ml.answerer(5300)?, "m3");
    assert!(group_counter(&ml, "fallback_passed")? > before);

    // Fallback drop: nobody answers.
    lab.anycast_ok("router", &["group", "set", "dns", "--fallback", "drop"])?;
    assert!(ml.query(&sock, 5300)?.is_none());
    assert!(group_counter(&ml, "fallback_dropped")? >= 1);
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn encapsulated_member_two_hops_away_answers() -> Result<()> {
    let ml = lab("encap")?;
    let lab = &ml.lab;
    add_l2(&ml, "m1", "r1", 50)?;
    lab.anycast_ok(
        "router",
        &[
            "member",
            "add",
            "dns",
            "m3",
            "--encap",
            &M3.to_string(),
            "--metric",
            "10",
        ],
    )?;
    let _svc = services(&ml, 5310)?;
    for _ in 0..5 {
        assert_eq!(ml.answerer(5310)?, "m3");
    }
    let members: serde_json::Value =
        serde_json::from_str(&lab.anycast_ok("router", &["member", "list", "--json"])?)?;
    assert_eq!(members[0]["name"], "m3");
    assert_eq!(members[0]["via"], "encap");
    assert!(
        members[0]["packets"].as_u64().unwrap_or(0) >= 5,
        "{members}"
    );
    // A tunnel source of the group's own: still delivered.
    lab.anycast_ok(
        "router",
        &["group", "set", "dns", "--tunnel-source", "fd00:c:1::1"],
    )?;
    assert_eq!(ml.answerer(5310)?, "m3");
    // m3 down: the on-link member takes over.
    lab.anycast_ok("router", &["member", "set", "dns", "m3", "--down"])?;
    assert_eq!(ml.answerer(5310)?, "m1");
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn member_interfaces_accept_anycast_sources_only_from_members() -> Result<()> {
    let ml = lab("spoof")?;
    let lab = &ml.lab;
    // Only m1 is a member; m2 sits on a member-facing link but is not one.
    add_l2(&ml, "m1", "r1", 10)?;
    let rx = lab
        .ns("client")?
        .udp(SocketAddr::V6(SocketAddrV6::new(CLIENT, 6000, 0, 0)))?;
    let send_from = |node: &str, n: usize| -> Result<usize> {
        let tx = lab
            .ns(node)?
            .udp(SocketAddr::V6(SocketAddrV6::new(ANYCAST, 5353, 0, 0)))?;
        for _ in 0..n {
            tx.send_to(
                b"answer",
                SocketAddr::V6(SocketAddrV6::new(CLIENT, 6000, 0, 0)),
            )?;
        }
        Ok(anycast_tests::lab::receive_count(
            &rx,
            n,
            Duration::from_millis(800),
        ))
    };
    assert_eq!(
        send_from("m1", 20)?,
        20,
        "the registered member's answers pass"
    );
    assert_eq!(send_from("m2", 20)?, 0, "an intruder's answers are dropped");
    assert_eq!(group_counter(&ml, "spoof_drops")?, 20);
    assert_eq!(group_counter(&ml, "member_source_passed")?, 20);
    // Registered, m2 may answer too.
    add_l2(&ml, "m2", "r2", 20)?;
    assert_eq!(send_from("m2", 20)?, 20);
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn member_changes_under_traffic_lose_nothing() -> Result<()> {
    let ml = lab("storm")?;
    let lab = &ml.lab;
    add_l2(&ml, "m1", "r1", 10)?;
    add_l2(&ml, "m2", "r2", 20)?;
    let m1 = Service::start(lab.ns("m1")?, ANYCAST, 5320, "m1")?;
    let m2 = Service::start(lab.ns("m2")?, ANYCAST, 5320, "m2")?;
    let tx = ml.client_socket()?;
    const SENT: usize = 3000;
    let flips = thread::scope(|s| -> Result<usize> {
        let sender = s.spawn(|| -> Result<()> {
            let dst = SocketAddr::V6(SocketAddrV6::new(ANYCAST, 5320, 0, 0));
            for i in 0..SENT {
                tx.send_to(format!("q{i}").as_bytes(), dst)?;
                thread::sleep(Duration::from_micros(700));
            }
            Ok(())
        });
        // Flip which member is nearest, and take one down and up again,
        // while the stream runs; one member is always up.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut flips = 0;
        while !sender.is_finished() && Instant::now() < deadline {
            let (a, b) = if flips % 2 == 0 {
                ("30", "10")
            } else {
                ("10", "30")
            };
            lab.anycast_ok("router", &["member", "set", "dns", "m1", "--metric", a])?;
            lab.anycast_ok("router", &["member", "set", "dns", "m2", "--metric", b])?;
            let down = if flips % 2 == 0 { "m1" } else { "m2" };
            lab.anycast_ok("router", &["member", "set", "dns", down, "--down"])?;
            lab.anycast_ok("router", &["member", "set", "dns", down, "--up"])?;
            flips += 1;
        }
        sender
            .join()
            .map_err(|_| anyhow::anyhow!("sender panicked"))??;
        Ok(flips)
    })?;
    thread::sleep(Duration::from_millis(300));
    let (n1, n2) = (m1.stop(), m2.stop());
    ensure!(flips >= 3, "only {flips} flips happened during the stream");
    assert_eq!(
        n1 + n2,
        SENT,
        "m1 {n1} + m2 {n2} != sent {SENT} after {flips} flips"
    );
    assert!(n1 > 0 && n2 > 0, "both members served: m1 {n1}, m2 {n2}");
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn bad_member_input_is_refused_and_changes_nothing() -> Result<()> {
    let ml = lab("memberbad")?;
    let lab = &ml.lab;
    add_l2(&ml, "m1", "r1", 10)?;
    let m1_mac = ml.member_mac("m1")?;
    let before = lab.anycast_ok("router", &["member", "list", "--json"])?;
    let cases: &[(&[&str], &str)] = &[
        (
            &["member", "add", "dns", "x", "--iface", "r1", "--mac", "zz"],
            "invalid MAC address `zz`",
        ),
        (
            &[
                "member",
                "add",
                "dns",
                "x",
                "--iface",
                "r1",
                "--mac",
                "01:00:5e:00:00:01",
            ],
            "not a unicast MAC",
        ),
        (
            &[
                "member",
                "add",
                "dns",
                "x",
                "--iface",
                "nosuch0",
                "--mac",
                "02:00:00:00:00:09",
            ],
            "unknown interface `nosuch0`",
        ),
        (&["member", "add", "dns", "x"], "either on-link"),
        (
            &["member", "add", "dns", "m1", "--encap", "fd00:c:2::9"],
            "already has a member `m1`",
        ),
        (
            &[
                "member", "add", "dns", "m9", "--iface", "r1", "--mac", &m1_mac,
            ],
            "already reached through",
        ),
        (
            &["member", "add", "dns", "y", "--encap", "2001:db8::/64"],
            "is a prefix",
        ),
        (
            &["member", "add", "dns", "bad/name", "--encap", "fd00:c:2::9"],
            "invalid member name",
        ),
        (
            &["member", "set", "dns", "nosuch", "--metric", "1"],
            "has no member `nosuch`",
        ),
        (&["member", "set", "dns", "m1"], "nothing to change"),
        (&["member", "del", "nogroup", "m1"], "no group `nogroup`"),
        (
            &["group", "set", "dns", "--tunnel-source", "ff02::1"],
            "invalid tunnel source `ff02::1`: it is in multicast space",
        ),
        (
            &["group", "set", "dns", "--tunnel-source", "not-an-address"],
            "not an IPv6 address",
        ),
        (
            &["group", "set", "dns", "--table-size", "1000"],
            "invalid table size 1000",
        ),
        (
            &["group", "set", "dns", "--flow-timeout", "0"],
            "invalid flow timeout 0",
        ),
        (
            &["member", "set", "dns", "m1", "--weight", "0"],
            "invalid weight 0",
        ),
        (&["group", "set", "dns"], "nothing to change"),
    ];
    for (args, needle) in cases {
        lab.anycast_refused("router", args, needle)?;
    }
    assert_eq!(
        lab.anycast_ok("router", &["member", "list", "--json"])?,
        before
    );
    let s = lab.stats("router")?;
    assert_eq!(s["groups"]["dns"]["fallback"], "pass");
    assert!(s["groups"]["dns"].get("tunnel_source").is_none());
    // Still serving.
    let _svc = services(&ml, 5330)?;
    assert_eq!(ml.answerer(5330)?, "m1");
    Ok(())
}
