//! `anycast explain` against a running lab: it names the member a real
//! packet reaches (before and after the packet), the reason an anycast
//! source is dropped at the edge, and it moves no counter.

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};

use anycast_common::frame::FrameBuilder;
use anycast_tests::{
    lab::{ANYCAST, CLIENT, MemberLab, Service},
    require_root,
};
use anyhow::{Context as _, Result, ensure};

const PORT: u16 = 53;

/// A classic pcap file (microseconds, little endian, Ethernet) of `frames`.
fn pcap_of(frames: &[&[u8]]) -> Vec<u8> {
    let mut f = Vec::new();
    for w in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65_535, 1] {
        f.extend_from_slice(&w.to_le_bytes());
    }
    for d in frames {
        let len = d.len() as u32;
        for w in [0, 0, len, len] {
            f.extend_from_slice(&w.to_le_bytes());
        }
        f.extend_from_slice(d);
    }
    f
}

fn explain(ml: &MemberLab, args: &[&str]) -> Result<serde_json::Value> {
    let mut all = vec!["explain", "--iface", "c0", "--json"];
    all.extend_from_slice(args);
    let out = ml.lab.anycast_ok("router", &all)?;
    serde_json::from_str(&out).with_context(|| format!("explain --json printed {out}"))
}

fn udp_from(ml: &MemberLab, sport: u16) -> Result<serde_json::Value> {
    explain(
        ml,
        &[
            "--src",
            &CLIENT.to_string(),
            "--dst",
            &ANYCAST.to_string(),
            "--proto",
            "udp",
            "--sport",
            &sport.to_string(),
            "--dport",
            &PORT.to_string(),
        ],
    )
}

/// Sends a query from CLIENT:`sport` until one is answered (at most 5);
/// the answering member's tag, and how many were sent.
fn query_from(ml: &MemberLab, sport: u16) -> Result<(String, u64)> {
    let sock = ml
        .lab
        .ns("client")?
        .udp(SocketAddr::V6(SocketAddrV6::new(CLIENT, sport, 0, 0)))?;
    sock.set_read_timeout(Some(std::time::Duration::from_millis(500)))?;
    for sent in 1..=5 {
        if let Some((tag, _)) = ml.query(&sock, PORT)? {
            return Ok((tag, sent));
        }
    }
    anyhow::bail!("no member answered the query from port {sport}")
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn explain_names_the_member_a_packet_reaches_and_why_a_source_is_dropped() -> Result<()> {
    require_root()?;
    let ml = MemberLab::attached("explain", "dns")?;
    // Tied: new flows go by the consistent hash, so the member is not
    // simply "the nearest".
    ml.add_member("dns", "m1", "r1", 10)?;
    ml.add_member("dns", "m2", "r2", 10)?;
    let _svc = ["m1", "m2"]
        .iter()
        .map(|m| Service::start(ml.lab.ns(m)?, ANYCAST, PORT, m))
        .collect::<Result<Vec<_>>>()?;
    let stats_before = ml.lab.stats("router")?;

    // A new flow: explained first, then sent.
    let (mut seen, mut sent) = (Vec::new(), 0);
    for sport in 41000..41008u16 {
        let e = udp_from(&ml, sport)?;
        ensure!(e["version"] == 1 && e["action"] == "redirect", "{e}");
        ensure!(e["choice"]["by"] == "consistent hash", "{e}");
        let named = e["member"].as_str().context("member")?.to_string();
        let (reached, n) = query_from(&ml, sport)?;
        sent += n;
        ensure!(
            named == reached,
            "port {sport}: explain named {named}, the query reached {reached}"
        );
        // Now the flow is known: explained again, by its entry.
        let again = udp_from(&ml, sport)?;
        ensure!(again["member"] == named.as_str(), "{again}");
        ensure!(again["choice"]["by"] == "flow entry", "{again}");
        ensure!(again["choice"]["entry"]["live"] == true, "{again}");
        ensure!(again["rewrite"]["kind"] == "l2", "{again}");
        let egress = if named == "m1" { "r1" } else { "r2" };
        ensure!(again["rewrite"]["egress"] == egress, "{again}");
        seen.push(named);
    }
    let seen_first = seen[0].clone();
    seen.sort();
    seen.dedup();
    ensure!(seen.len() == 2, "8 flows all went to {seen:?}");

    // An anycast source at the edge: dropped, and why.
    let d = explain(
        &ml,
        &[
            "--src",
            &ANYCAST.to_string(),
            "--dst",
            &Ipv6Addr::new(0xfd00, 0xb, 1, 0, 0, 0, 0, 2).to_string(),
        ],
    )?;
    ensure!(d["action"] == "drop" && d["member"].is_null(), "{d}");
    ensure!(d["source"]["anycast_group"] == "dns", "{d}");
    let reason = d["source"]["reason"].as_str().unwrap_or_default();
    ensure!(reason.contains("edge interface"), "{reason}");
    let counters = d["counters"].to_string();
    ensure!(counters.contains("anycast_source_drops"), "{counters}");

    // The human form says the same.
    let text = ml.lab.anycast_ok(
        "router",
        &[
            "explain",
            "--iface",
            "c0",
            "--src",
            &ANYCAST.to_string(),
            "--dst",
            "fd00:b:1::2",
        ],
    )?;
    ensure!(text.contains("action:      drop"), "{text}");
    ensure!(text.contains("edge interface"), "{text}");
    eprintln!("{text}");
    let flow = ml.lab.anycast_ok(
        "router",
        &[
            "explain",
            "--iface",
            "c0",
            "--src",
            &CLIENT.to_string(),
            "--dst",
            &ANYCAST.to_string(),
            "--sport",
            "41000",
            "--dport",
            "53",
        ],
    )?;
    eprintln!("{flow}");
    ensure!(flow.contains("chosen by:   flow entry"), "{flow}");
    ensure!(flow.contains("action:      redirect to member m"), "{flow}");

    // The same packets as a hex frame and as a pcap file.
    let udp = FrameBuilder::udp(CLIENT, ANYCAST, 41000, PORT, b"").build();
    let spoof = FrameBuilder::udp(ANYCAST, "fd00:b:1::2".parse()?, 41000, PORT, b"").build();
    let hex: String = udp.iter().map(|b| format!("{b:02x}")).collect();
    let h = explain(&ml, &["--hex", &hex])?;
    ensure!(h["member"] == seen_first.as_str(), "{h}");
    let pcap = ml.lab.file("explain.pcap", "")?;
    std::fs::write(pcap.path(), pcap_of(&[&udp, &spoof]))?;
    let p = explain(&ml, &["--pcap", pcap.arg()])?;
    ensure!(p.as_array().map(Vec::len) == Some(2), "{p}");
    ensure!(
        p[0]["packet"] == 1 && p[0]["member"] == seen_first.as_str(),
        "{p}"
    );
    ensure!(p[1]["packet"] == 2 && p[1]["action"] == "drop", "{p}");

    // Explaining moved no counter: the queries did, each once.
    let stats_after = ml.lab.stats("router")?;
    let count = |s: &serde_json::Value, name: &str| s["global"][name].as_u64().unwrap_or(0);
    ensure!(
        count(&stats_after, "anycast_source_drops") == count(&stats_before, "anycast_source_drops"),
        "explain counted a drop"
    );
    let redirected = count(&stats_after, "redirected") - count(&stats_before, "redirected");
    ensure!(
        redirected == sent,
        "{sent} queries (and 16 explains) redirected {redirected}"
    );
    Ok(())
}
