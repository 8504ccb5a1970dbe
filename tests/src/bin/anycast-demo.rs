//! The demo lab behind `cargo xtask run` (with no interface) and `cargo xtask lab`.
//!
//! Namespaces: a client, a router running anycast, members m1 and m2 on
//! links of their own and m3 two hops away. The demo shows the edge filter
//! dropping a spoofed anycast source, queries reaching the nearest member,
//! a metric change moving them, and an encapsulated member; then it tears
//! everything down.

use std::net::{SocketAddr, SocketAddrV6};

use anycast_tests::{
    lab::{ANYCAST, CLIENT, M3, MemberLab, Service, receive_count},
    require_root,
};
use anyhow::{Result, bail};

fn main() -> Result<()> {
    require_root()?;
    println!("bringing up the demo lab:");
    println!("  client --- c0 [router] r1 --- m1");
    println!("                      r2 --- m2");
    println!("                      t0 --- transit --- m3 (two hops away)");
    let ml = MemberLab::new("demo")?;
    let lab = &ml.lab;
    let run = |args: &[&str]| -> Result<()> {
        println!("$ anycast {}", args.join(" "));
        print!("{}", lab.anycast_ok("router", args)?);
        Ok(())
    };
    run(&["attach", "c0", "--role", "edge"])?;
    run(&["attach", "r1", "--role", "member"])?;
    run(&["attach", "r2", "--role", "member"])?;
    run(&["addr", "add", &ANYCAST.to_string(), "--group", "dns"])?;
    run(&[
        "member",
        "add",
        "dns",
        "m1",
        "--iface",
        "r1",
        "--mac",
        &ml.member_mac("m1")?,
        "--metric",
        "10",
    ])?;
    run(&[
        "member",
        "add",
        "dns",
        "m2",
        "--iface",
        "r2",
        "--mac",
        &ml.member_mac("m2")?,
        "--metric",
        "20",
    ])?;
    let _services: Vec<Service> = ["m1", "m2", "m3"]
        .iter()
        .map(|m| Service::start(lab.ns(m)?, ANYCAST, 53, m))
        .collect::<Result<_>>()?;

    let first = ml.answerer(53)?;
    println!("client asks {ANYCAST}: answered by {first}");
    run(&["member", "set", "dns", "m1", "--metric", "30"])?;
    let second = ml.answerer(53)?;
    println!("client asks again: answered by {second}");
    run(&[
        "member",
        "add",
        "dns",
        "m3",
        "--encap",
        &M3.to_string(),
        "--metric",
        "5",
    ])?;
    let third = ml.answerer(53)?;
    println!("client asks again: answered by {third} (IPv6-in-IPv6, decapsulated by m3)");

    // The client claims the anycast address and sends from it: dropped at the edge.
    lab.ns("client")?.ip(&[
        "addr",
        "add",
        &format!("{ANYCAST}/128"),
        "dev",
        "eth0",
        "nodad",
    ])?;
    let server = lab.ns("m1")?.udp(SocketAddr::V6(SocketAddrV6::new(
        "fd00:b:1::2".parse()?,
        9000,
        0,
        0,
    )))?;
    let spoofer = lab
        .ns("client")?
        .udp(SocketAddr::V6(SocketAddrV6::new(ANYCAST, 0, 0, 0)))?;
    for _ in 0..10 {
        spoofer.send_to(
            b"spoof",
            SocketAddr::V6(SocketAddrV6::new("fd00:b:1::2".parse()?, 9000, 0, 0)),
        )?;
    }
    let spoofed = receive_count(&server, 10, std::time::Duration::from_millis(500));
    println!(
        "client sends 10 packets from the anycast address to m1's own address: {spoofed} arrive"
    );

    run(&["member", "list"])?;
    run(&["stats"])?;
    println!("tearing the lab down (client was {CLIENT})");
    drop(ml);
    if (first.as_str(), second.as_str(), third.as_str(), spoofed) != ("m1", "m2", "m3", 0) {
        bail!("the demo did not behave as expected: {first}, {second}, {third}, {spoofed} spoofed");
    }
    Ok(())
}
