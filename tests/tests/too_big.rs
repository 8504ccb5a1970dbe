//! Program tests of packets too big for their member's egress (issue 14
//! items 10 and 11), each citing the section its rule comes from:
//!
//! - RFC 8200 section 5: a packet larger than the MTU of the link it would
//!   leave on is not forwarded; the router answers ICMPv6 Packet Too Big.
//! - RFC 4443 section 3.2: type 2, code 0, the MTU of the next-hop link,
//!   and (section 2.4 (c)) as much of the packet as fits in 1280 bytes.
//! - RFC 4443 section 2.2 (b): in answer to a packet sent to an anycast
//!   address, the source is a unicast address of the node.
//! - RFC 2473 section 7.1: an encapsulator's tunnel MTU is the path MTU
//!   less its headers; a packet over 1280 bytes larger than that gets a
//!   Packet Too Big of the tunnel MTU (at least 1280).
//! - RFC 4443 section 2.4 (e.1): never in answer to an error message;
//!   (f): the rate of error messages is limited.
//!
//! Every frame runs through `ProgramUnderTest::check` (the model agrees
//! byte for byte and counter for counter) in a namespace the test made,
//! whose loopback (the on-link members' egress in program tests) has a
//! small MTU and whose FIB routes the client out of `e0`.

use std::net::Ipv6Addr;

use anycast_common::{
    GlobalStat, IfaceRole, SourceAction,
    frame::{FrameBuilder, icmpv6_error, l4_checksum},
    model::{Fib, Outcome, Verdict},
    wire,
};
use anycast_tests::{
    lab::{FibNode, Lab},
    prog::ProgramUnderTest,
    require_root,
};
use anyhow::{Result, ensure};

const ANY: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 0x53);
const CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 2);
/// `e0`'s address in the FIB node: the kernel's source towards the client.
const ROUTER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xe, 0, 0, 0, 0, 0, 1);
const MEMBER_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 0x01];

/// A UDP packet from the client to the anycast address, `len` bytes of IPv6.
fn packet(sport: u16, len: usize) -> Vec<u8> {
    FrameBuilder::udp(CLIENT, ANY, sport, 53, &vec![0x5a; len - 48]).build()
}

/// Asserts that `out` is the Packet Too Big for `frame` (its IPv6 header
/// after `vlans` tags) with `mtu`, sent out of `egress`: each field as the
/// RFCs give it.
fn assert_too_big_tagged(
    out: &Outcome,
    frame: &[u8],
    vlans: usize,
    mtu: u32,
    egress: u32,
) -> Result<()> {
    let p = &out.frame;
    ensure!(
        (out.verdict, out.stat) == (Verdict::Redirect(egress), GlobalStat::TooBigSent),
        "{out:?}"
    );
    ensure!(p.len() == 14 + 1280, "1280 bytes of IPv6: {}", p.len());
    ensure!(&p[12..14] == [0x86, 0xdd]);
    ensure!(p[14..18] == [0x60, 0, 0, 0], "version 6, class 0, label 0");
    ensure!(u16::from_be_bytes([p[18], p[19]]) == 1240, "payload length");
    ensure!(p[20] == 58, "next header ICMPv6");
    ensure!(
        p[22..38] == ROUTER.octets(),
        "a unicast address of ours (2.2 (b))"
    );
    ensure!(p[38..54] == CLIENT.octets(), "to the packet's source");
    ensure!((p[54], p[55]) == (2, 0), "type 2, code 0 (3.2)");
    ensure!(p[58..62] == mtu.to_be_bytes(), "the MTU");
    let ip = 14 + 4 * vlans;
    ensure!(
        p[62..] == frame[ip..ip + 1232],
        "the packet's first 1232 bytes, as it came"
    );
    let mut msg = p[54..].to_vec();
    msg[2..4].fill(0);
    let sum = l4_checksum(&ROUTER, &CLIENT, 58, &msg);
    ensure!(u16::from_be_bytes([p[56], p[57]]) == sum, "checksum (2.3)");
    Ok(())
}

/// [`assert_too_big_tagged`] for an untagged frame.
fn assert_too_big(out: &Outcome, frame: &[u8], mtu: u32, egress: u32) -> Result<()> {
    assert_too_big_tagged(out, frame, 0, mtu, egress)
}

/// Runs `f` with a program in a namespace whose FIB routes the client out
/// of `e0` (index given to `f`, MTU `e0_mtu`) and whose loopback has MTU
/// `lo_mtu`; group `dns` holds the anycast address.
fn with_program(
    test: &str,
    e0_mtu: u32,
    lo_mtu: u32,
    f: impl FnOnce(&mut ProgramUnderTest, FibNode) -> Result<()> + Send + 'static,
) -> Result<()> {
    require_root()?;
    let mut lab = Lab::new(test)?;
    let node = FibNode::build(&mut lab, "fib")?;
    let ns = lab.ns("fib")?;
    ns.ip(&["link", "set", "e0", "mtu", &e0_mtu.to_string()])?;
    ns.ip(&[
        "-6",
        "route",
        "add",
        "fd00:0:0:1::/64",
        "via",
        "fd00:e::2",
        "dev",
        "e0",
    ])?;
    ns.run(move || {
        let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
        p.add(&ANY.to_string(), "dns")?;
        p.set_loopback_mtu(lo_mtu)?;
        let (ifindex, smac, dmac) = (node.ifindex, node.smac, node.dmac);
        p.fib = Box::new(move |src, dst, tot_len| {
            let found = Fib::Found {
                ifindex,
                smac,
                dmac,
                src: src.unwrap_or(ROUTER.octets()),
            };
            if *dst == CLIENT.octets() && tot_len <= e0_mtu as usize {
                found
            } else if *dst == Ipv6Addr::new(0xfd00, 0xf, 0, 0, 0, 0, 0, 2).octets() {
                if tot_len > e0_mtu as usize {
                    Fib::FragNeeded { mtu: e0_mtu }
                } else {
                    found
                }
            } else {
                Fib::Miss
            }
        });
        f(&mut p, node)
    })?
}

/// RFC 8200 5, RFC 4443 3.2 and 2.2 (b): a 1454-byte packet for an
/// on-link member behind a 1280-byte link is answered with a Packet Too
/// Big of 1280, from the router's address on the way back, out of the
/// interface the FIB names; the member gets nothing. A 1280-byte packet
/// (the minimum MTU, never checked) and a 1454-byte one once the link
/// carries it are redirected.
#[test]
#[ignore = "needs root (BPF, namespaces): run with `cargo xtask test`"]
fn too_big_for_an_on_link_member_is_answered_with_packet_too_big() -> Result<()> {
    with_program("ptb-link", 1500, 1280, |p, node| {
        let m = p.add_l2_member("dns", "m1", MEMBER_MAC, 10)?;
        let big = packet(4000, 1454);
        let out = p.check(&big)?;
        assert_too_big(&out, &big, 1280, node.ifindex)?;
        ensure!(out.frame[..6] == node.dmac && out.frame[6..12] == node.smac);
        let s = p.stats()?;
        ensure!(s.global["too_big_sent"] == 1 && s.groups["dns"].counters["too_big_sent"] == 1);
        ensure!(
            p.state.member_counters(m)? == (0, 0),
            "nothing to the member"
        );

        // Behind two VLAN tags: the tags go, the quote starts at the
        // IPv6 header.
        let mut b = FrameBuilder::udp(CLIENT, ANY, 4002, 53, &[0x5a; 1454 - 48]);
        b.vlans = vec![(wire::ETH_P_8021AD, 3), (wire::ETH_P_8021Q, 7)];
        let tagged = b.build();
        assert_too_big_tagged(&p.check(&tagged)?, &tagged, 2, 1280, node.ifindex)?;

        let fits = packet(4001, 1280);
        let out = p.check(&fits)?;
        ensure!(matches!(out.verdict, Verdict::Redirect(_)), "{out:?}");
        ensure!(out.frame[..6] == MEMBER_MAC);

        p.set_loopback_mtu(1500)?;
        let out = p.check(&big)?;
        ensure!(out.stat == GlobalStat::Redirected, "{out:?}");
        Ok(())
    })
}

/// RFC 2473 7.1: a 1500-byte packet for an encapsulated member whose
/// route has MTU 1500 does not fit once 40 bytes of outer header are
/// added: a Packet Too Big of the tunnel MTU, 1460. A packet of 1280
/// bytes or less too big for the tunnel (a route MTU under 1320) is
/// encapsulated and fragmented by the entry point, which XDP cannot: the
/// kernel's.
#[test]
#[ignore = "needs root (BPF, namespaces): run with `cargo xtask test`"]
fn too_big_for_a_tunnel_is_answered_with_the_tunnel_mtu() -> Result<()> {
    with_program("ptb-tunnel", 1500, 65536, |p, node| {
        p.add_encap_member("dns", "far", "fd00:f::2".parse()?, 10)?;
        let big = packet(4100, 1500);
        assert_too_big(&p.check(&big)?, &big, 1460, node.ifindex)?;
        let fits = packet(4101, 1460);
        ensure!(p.check(&fits)?.stat == GlobalStat::Redirected);
        Ok(())
    })?;
    with_program("ptb-tunnel-min", 1300, 65536, |p, _| {
        p.add_encap_member("dns", "far", "fd00:f::2".parse()?, 10)?;
        let small = packet(4102, 1280);
        let out = p.check(&small)?;
        ensure!((out.verdict, out.stat) == (Verdict::Pass, GlobalStat::TooBigPassed));
        ensure!(out.frame == small, "untouched");
        // Over 1280 bytes: a Packet Too Big of 1280, never less.
        let big = packet(4103, 1281);
        let out = p.check(&big)?;
        ensure!(out.stat == GlobalStat::TooBigSent && out.frame[58..62] == 1280u32.to_be_bytes());
        Ok(())
    })
}

/// RFC 4443 2.4 (f), (e.1): past the rate limit, and for an ICMPv6 error
/// however big, no Packet Too Big: the packet goes to the kernel as it
/// came, counted `too_big_passed`.
#[test]
#[ignore = "needs root (BPF, namespaces): run with `cargo xtask test`"]
fn no_packet_too_big_past_the_rate_limit_or_for_an_error() -> Result<()> {
    with_program("ptb-limit", 1500, 1280, |p, _| {
        p.add_l2_member("dns", "m1", MEMBER_MAC, 10)?;
        // A member's reply to the client, and an error about it the size
        // of a full-sized Packet Too Big: steered by the flow it quotes,
        // too big for the link, never answered.
        let reply = FrameBuilder::udp(ANY, CLIENT, 53, 4200, &[0x5a; 1400]).build();
        let error = FrameBuilder::new(CLIENT, ANY, icmpv6_error(1, &reply, None)).build();
        let out = p.check(&error)?;
        ensure!(
            (out.verdict, out.stat) == (Verdict::Pass, GlobalStat::TooBigPassed),
            "{out:?}"
        );

        p.exhaust_too_big_limit()?;
        let big = packet(4201, 1454);
        let out = p.check(&big)?;
        ensure!(
            (out.verdict, out.stat) == (Verdict::Pass, GlobalStat::TooBigPassed),
            "{out:?}"
        );
        ensure!(out.frame == big, "untouched");
        let s = p.stats()?;
        ensure!(s.global["too_big_passed"] == 2 && s.global.get("too_big_sent") == Some(&0));
        ensure!(s.groups["dns"].counters["too_big_passed"] == 2);
        Ok(())
    })
}
