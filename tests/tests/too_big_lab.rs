//! Lab tests of path MTU discovery through the anycast address (issue 14
//! items 10 and 11): a real `ping -s 1400` (1448 bytes of IPv6) from the
//! client, through the redirector, to a member whose way is narrower than
//! the client's link. The first request is answered by the redirector with
//! a Packet Too Big (RFC 4443 3.2); the client's kernel records the path
//! MTU (`ip -6 route get` shows it), fragments the later requests to fit,
//! and the member answers them. Without the Packet Too Big every request
//! would vanish at the narrow link (black hole).
//!
//! `ping -M want` (fragment to the path MTU), not `-M do`: with `do`, once
//! the path MTU is known the client refuses to send 1448 bytes at all.

use anycast_tests::{
    lab::{ANYCAST, MemberLab},
    require_root,
};
use anyhow::{Context as _, Result, ensure};

/// Pings the anycast address from the client: `count` requests of 1448
/// bytes; returns how many were answered.
fn ping(ml: &MemberLab, count: u32) -> Result<u32> {
    let name = &ml.lab.ns("client")?.name;
    let out = std::process::Command::new("nsenter")
        .args([&format!("--net=/run/netns/{name}"), "ping", "-6", "-n"])
        .args(["-M", "want", "-s", "1400", "-i", "0.2", "-W", "2"])
        .args(["-c", &count.to_string(), &ANYCAST.to_string()])
        .output()
        .context("running ping")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // "N packets transmitted, M received, ..."
    let received = text
        .split(", ")
        .find_map(|part| part.strip_suffix(" received"))
        .and_then(|n| n.trim().parse().ok())
        .with_context(|| format!("no summary in ping's output: {text}"))?;
    Ok(received)
}

/// The client's path MTU towards the anycast address, as its kernel
/// shows it (`ip -6 route get`: "... mtu N ...").
fn client_path_mtu(ml: &MemberLab) -> Result<Option<u32>> {
    let shown = ml
        .lab
        .ns("client")?
        .ip(&["-6", "route", "get", &ANYCAST.to_string()])?;
    let mut words = shown.split_whitespace();
    Ok(words
        .by_ref()
        .find(|w| *w == "mtu")
        .and_then(|_| words.next())
        .and_then(|n| n.parse().ok()))
}

fn too_big_sent(ml: &MemberLab) -> Result<u64> {
    let s = ml.lab.stats("router")?;
    s["groups"]["dns"]["too_big_sent"]
        .as_u64()
        .context("no too_big_sent in the group's stats")
}

/// Pings through the narrowed lab: most of 8 pings answered (the first is
/// lost to the Packet Too Big), the client's path MTU `mtu`, counted.
fn pings_learn_the_path_mtu(ml: &MemberLab, mtu: u32) -> Result<()> {
    ensure!(client_path_mtu(ml)?.is_none(), "no path MTU known before");
    let received = ping(ml, 8)?;
    ensure!(
        received >= 4,
        "{received} of 8 pings answered; too_big_sent {}",
        too_big_sent(ml)?
    );
    ensure!(
        client_path_mtu(ml)? == Some(mtu),
        "the client's route: {}",
        ml.lab
            .ns("client")?
            .ip(&["-6", "route", "get", &ANYCAST.to_string()])?
    );
    ensure!(too_big_sent(ml)? >= 1);
    Ok(())
}

/// On-link member m1 behind a 1280-byte link (r1 and m1's eth0): the
/// client learns 1280 from the redirector and its pings get through.
#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn ping_through_a_narrow_on_link_member_learns_the_path_mtu() -> Result<()> {
    require_root()?;
    let ml = MemberLab::attached("ptb-onlink", "dns")?;
    ml.lab
        .ns("router")?
        .ip(&["link", "set", "r1", "mtu", "1280"])?;
    ml.lab
        .ns("m1")?
        .ip(&["link", "set", "eth0", "mtu", "1280"])?;
    ml.add_member("dns", "m1", "r1", 10)?;
    pings_learn_the_path_mtu(&ml, 1280)
}

/// Encapsulated member m3 behind a 1400-byte link (router t0 and transit
/// eth0): the tunnel MTU is 1360 (RFC 2473 7.1), which the client learns
/// and fragments to.
#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn ping_through_a_narrow_tunnel_learns_the_tunnel_mtu() -> Result<()> {
    require_root()?;
    let ml = MemberLab::attached("ptb-tunnel", "dns")?;
    ml.lab
        .ns("router")?
        .ip(&["link", "set", "t0", "mtu", "1400"])?;
    ml.lab
        .ns("transit")?
        .ip(&["link", "set", "eth0", "mtu", "1400"])?;
    ml.lab.anycast_ok(
        "router",
        &["member", "add", "dns", "m3", "--encap", "fd00:c:2::2"],
    )?;
    pings_learn_the_path_mtu(&ml, 1360)
}
