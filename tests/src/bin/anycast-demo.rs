//! The demo lab behind `cargo xtask run` (with no interface) and `cargo xtask lab`:
//! client, router and server namespaces; the router's edge interface drops a
//! spoofed anycast source while normal traffic passes; counters shown; torn down.

use anycast_tests::{
    lab::{CLIENT, ClientRouterServer},
    require_root,
};
use anyhow::{Result, bail};

fn main() -> Result<()> {
    require_root()?;
    let anycast: std::net::Ipv6Addr = "2001:db8:ac::53".parse()?;
    println!("bringing up the demo lab:");
    println!(
        "  client eth0 fd00:a:1::2 --- c0 [router: anycast on c0] s0 --- eth0 fd00:a:2::2 server"
    );
    let crs = ClientRouterServer::new("demo")?;
    let lab = &crs.lab;
    println!("$ anycast attach c0 --role edge");
    lab.anycast_ok("router", &["attach", "c0", "--role", "edge"])?;
    println!("$ anycast addr add {anycast} --group dns");
    lab.anycast_ok(
        "router",
        &["addr", "add", &anycast.to_string(), "--group", "dns"],
    )?;
    crs.client_claims(anycast)?;
    let normal = crs.send_udp(CLIENT, 7000, 10)?;
    println!("client -> server from {CLIENT}: 10 sent, {normal} received");
    let spoofed = crs.send_udp(anycast, 7001, 10)?;
    println!("client -> server from anycast {anycast} (spoofed): 10 sent, {spoofed} received");
    println!("$ anycast stats");
    print!("{}", lab.anycast_ok("router", &["stats"])?);
    println!("tearing the lab down");
    drop(crs);
    if normal != 10 || spoofed != 0 {
        bail!("the demo did not behave as expected (normal {normal}/10, spoofed {spoofed}/0)");
    }
    Ok(())
}
