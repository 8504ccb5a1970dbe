//! The demo lab behind `cargo xtask run` (with no interface) and `cargo xtask lab`.
//!
//! Namespaces: a client, a router running anycast, members m1 and m2 on
//! links of their own and m3 two hops away. The demo shows the edge filter
//! dropping a spoofed anycast source, queries reaching the nearest member,
//! a metric change moving them, and an encapsulated member; then the
//! service (`anycast run --config`) with a health check per member: m1's
//! server stops, its traffic moves, it starts again and the traffic comes
//! back. Then it tears everything down.

use std::{
    net::{SocketAddr, SocketAddrV6},
    time::Duration,
};

use anycast_tests::{
    lab::{ANYCAST, CLIENT, Lines, M3, MemberLab, Service, receive_count},
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
    let mut m1_server = Some(Service::start(lab.ns("m1")?, ANYCAST, 53, "m1")?);
    let _others: Vec<Service> = ["m2", "m3"]
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

    lab.ns("client")?
        .ip(&["addr", "del", &format!("{ANYCAST}/128"), "dev", "eth0"])?;
    run(&["member", "list"])?;
    run(&["stats"])?;

    // The service: the same group as a file, a health check per member
    // (a query to the anycast address along the member's own path).
    let member = |name: &str, how: String, metric: u32| {
        format!(
            "[group.dns.member.{name}]\n{how}\nmetric = {metric}\n\
             check = {{ kind = \"udp\", port = 53, send = \"health\", expect = \"{name}\", \
             interval = 0.2, timeout = 0.1 }}\n"
        )
    };
    let text = format!(
        "[interface.c0]\n[interface.r1]\nrole = \"member\"\n[interface.r2]\nrole = \"member\"\n\
         [group.dns]\naddresses = [\"{ANYCAST}\"]\n{}{}{}",
        member(
            "m1",
            format!("iface = \"r1\"\nmac = \"{}\"", ml.member_mac("m1")?),
            10
        ),
        member(
            "m2",
            format!("iface = \"r2\"\nmac = \"{}\"", ml.member_mac("m2")?),
            20
        ),
        member("m3", format!("encap = \"{M3}\""), 30),
    );
    let file = lab.file("demo.toml", &text)?;
    println!("$ cat demo.toml\n{text}$ anycast run --config demo.toml &");
    let (mut service, stdout) =
        lab.spawn_anycast(&lab.pin_dir, "router", &["run", "--config", file.arg()])?;
    let mut lines = Lines::new(stdout);
    let wait = Duration::from_secs(5);
    // Starting loads and verifies the program per interface: seconds.
    println!(
        "  service: {}",
        lines.expect(&["serving"], Duration::from_secs(60))?
    );
    let mut show = |needles: &[&str]| -> Result<()> {
        println!("  service: {}", lines.expect(needles, wait)?);
        Ok(())
    };
    show(&["member m1 of group dns: healthy"])?;
    let fourth = ml.answerer(53)?;
    println!("client asks: answered by {fourth}");
    println!("m1's server stops");
    drop(m1_server.take());
    show(&["member m1 of group dns: failing"])?;
    let fifth = ml.answerer(53)?;
    println!("client asks: answered by {fifth}");
    println!("m1's server starts again");
    m1_server = Some(Service::start(lab.ns("m1")?, ANYCAST, 53, "m1")?);
    show(&["member m1 of group dns: healthy", "; up"])?;
    let sixth = ml.answerer(53)?;
    println!("client asks: answered by {sixth}");
    run(&["status"])?;
    service.signal(libc::SIGTERM)?;
    service.wait(wait)?;
    drop(m1_server);

    println!("tearing the lab down (client was {CLIENT})");
    drop(ml);
    let got = [&first, &second, &third, &fourth, &fifth, &sixth];
    if got != ["m1", "m2", "m3", "m1", "m2", "m1"] || spoofed != 0 {
        bail!("the demo did not behave as expected: answered by {got:?}, {spoofed} spoofed");
    }
    Ok(())
}
