//! Program tests of the redirect path: nearest-member selection, L2 and
//! IPv6-in-IPv6 rewriting (byte by byte, against the model and explicit
//! expectations), ties, fragments, fallbacks, hop limits and member-validated
//! sources.

use std::{
    collections::BTreeMap,
    net::Ipv6Addr,
    time::{Duration, Instant},
};

use anycast::{GroupName, group::GroupOptions, state::Tamper};
use anycast_common::{
    Fallback, GlobalStat, IfaceRole, MemberState, SourceAction,
    frame::{CLIENT_MAC, Ext, FrameBuilder, L4},
    model::{Fib, Verdict},
    wire,
};
use anycast_tests::{
    lab::{FibNode, Lab, NetNs, sh},
    prog::{ProgramUnderTest, TEST_RUN_IFINDEX},
    require_root,
};
use anyhow::{Context, Result};

const ANY: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 0x53);
const CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 2);
const M1_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 0x01];
const M2_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 0x02];
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;

fn query(sport: u16) -> FrameBuilder {
    FrameBuilder::udp(CLIENT, ANY, sport, 53, b"where is the nearest resolver?")
}

/// A program with group `dns` holding ANY and members m1 (metric 10) and m2 (20).
fn two_members(role: IfaceRole) -> Result<ProgramUnderTest> {
    require_root()?;
    let mut p = ProgramUnderTest::load(role, SourceAction::Drop)?;
    p.add(&ANY.to_string(), "dns")?;
    p.add_l2_member("dns", "m1", M1_MAC, 10)?;
    p.add_l2_member("dns", "m2", M2_MAC, 20)?;
    Ok(p)
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn l2_redirect_rewrites_the_frame() -> Result<()> {
    let p = two_members(IfaceRole::Edge)?;
    let frame = query(4000).build();
    let out = p.check(&frame)?;
    assert_eq!(out.verdict, Verdict::Redirect(TEST_RUN_IFINDEX));
    let got = p.run(&frame)?;
    assert_eq!(got.action, XDP_REDIRECT);
    // Byte by byte: new destination and source MACs, hop limit 64 -> 63,
    // everything from the IPv6 version to the payload unchanged.
    assert_eq!(&got.data[..6], &M1_MAC);
    assert_eq!(&got.data[6..12], &[0x02, 0xaa, 0, 0, 0, 0x01]);
    assert_eq!(&got.data[12..14], &[0x86, 0xdd]);
    assert_eq!(got.data[21], 63);
    assert_eq!(&got.data[14..21], &frame[14..21]);
    assert_eq!(&got.data[22..], &frame[22..]);
    let s = p.stats()?;
    assert_eq!(s.groups["dns"].counters["redirected"], 2);
    let m1 = p.state.list_members(Some("dns"))?;
    assert_eq!((m1[0].name.as_str(), m1[0].packets), ("m1", 2));
    assert_eq!(m1[0].bytes, 2 * frame.len() as u64);
    Ok(())
}

/// A group's consistent-hash table is rewritten only after a flip away
/// from it, so a packet that read the group before a flip may read the
/// table being rewritten, which can name a member removed since, its slot
/// maybe reused by another group. A new flow goes only to a member still
/// registered in the group; else the group's fallback.
#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn a_table_naming_another_groups_member_sends_nothing_there() -> Result<()> {
    let mut p = two_members(IfaceRole::Edge)?;
    p.add("2001:db8:b::80", "web")?;
    let w1 = p.add_l2_member("web", "w1", [0x02, 0xbb, 0, 0, 0, 0x0b], 10)?;
    p.state.tamper(Tamper::SelectionNames("dns", w1))?;
    let got = p.run(&query(4100).build())?;
    assert_eq!(got.action, XDP_PASS, "the group's fallback (pass)");
    let s = p.stats()?;
    assert_eq!(s.groups["dns"].counters["fallback_passed"], 1);
    assert_eq!(s.groups["dns"].counters["redirected"], 0);
    let web = p.state.list_members(Some("web"))?;
    assert_eq!((web[0].name.as_str(), web[0].packets), ("w1", 0));
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn metric_and_state_changes_move_traffic() -> Result<()> {
    let mut p = two_members(IfaceRole::Edge)?;
    // A new flow (source port) for each step: known flows keep their member.
    assert_eq!(&p.check(&query(4001).build())?.frame[..6], &M1_MAC);
    p.state.set_member("dns", "m1", Some(30), None, None)?;
    assert_eq!(&p.check(&query(4002).build())?.frame[..6], &M2_MAC);
    p.state
        .set_member("dns", "m2", None, Some(MemberState::Down), None)?;
    assert_eq!(&p.check(&query(4003).build())?.frame[..6], &M1_MAC);
    // m2 down: its flow (4002) moves to m1.
    assert_eq!(&p.check(&query(4002).build())?.frame[..6], &M1_MAC);
    p.state
        .set_member("dns", "m1", None, Some(MemberState::Down), None)?;
    let out = p.check(&query(4004).build())?;
    assert_eq!(
        (out.verdict, out.stat),
        (Verdict::Pass, GlobalStat::FallbackPassed)
    );
    p.state.set_group_options(
        &GroupName::new("dns")?,
        &GroupOptions {
            fallback: Some(Fallback::Drop),
            ..GroupOptions::default()
        },
    )?;
    let out = p.check(&query(4005).build())?;
    assert_eq!(
        (out.verdict, out.stat),
        (Verdict::Drop, GlobalStat::FallbackDropped)
    );
    p.state
        .set_member("dns", "m2", None, Some(MemberState::Up), None)?;
    assert_eq!(&p.check(&query(4006).build())?.frame[..6], &M2_MAC);
    p.state.del_member("dns", "m2")?;
    p.state.del_member("dns", "m1")?;
    assert_eq!(p.run(&query(4006).build())?.action, XDP_DROP);
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn ties_spread_by_flow_and_fragments_stick() -> Result<()> {
    require_root()?;
    let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
    p.add(&ANY.to_string(), "dns")?;
    let macs: Vec<[u8; 6]> = (1..=4u8).map(|i| [0x02, 0xbb, 0, 0, 1, i]).collect();
    for (i, mac) in macs.iter().enumerate() {
        p.add_l2_member("dns", &format!("m{i}"), *mac, 10)?;
    }
    // A fifth member, farther away, never gets anything.
    p.add_l2_member("dns", "far", [0x02, 0xbb, 0, 0, 2, 1], 11)?;
    let mut per_member: BTreeMap<[u8; 6], usize> = BTreeMap::new();
    const FLOWS: u16 = 400;
    for sport in 0..FLOWS {
        let out = p.check(&query(10_000 + sport).build())?;
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&out.frame[..6]);
        *per_member.entry(mac).or_default() += 1;
    }
    assert_eq!(per_member.len(), 4, "{per_member:?}");
    for (mac, n) in &per_member {
        assert!(macs.contains(mac));
        assert!((60..=140).contains(n), "uneven spread: {per_member:?}");
    }

    // Every fragment of one datagram goes where the first one went.
    let mut first = query(5353);
    first.ext = vec![Ext::Fragment {
        offset: 0,
        more: true,
        id: 77,
    }];
    let first = p.check(&first.build())?;
    for offset in [1u16, 100, 185] {
        let mut rest = query(5353);
        rest.ext = vec![Ext::Fragment {
            offset,
            more: offset != 185,
            id: 77,
        }];
        rest.l4 = L4::Raw {
            proto: wire::IPPROTO_UDP,
            bytes: vec![0xab; 64],
        };
        let out = p.check(&rest.build())?;
        assert_eq!(&out.frame[..6], &first.frame[..6], "fragment at {offset}");
    }
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn hop_limit_and_vlans() -> Result<()> {
    let p = two_members(IfaceRole::Edge)?;
    for hl in [0u8, 1] {
        let mut b = query(4002);
        b.hop_limit = hl;
        let out = p.check(&b.build())?;
        assert_eq!(
            (out.verdict, out.stat),
            (Verdict::Pass, GlobalStat::HopLimitPassed)
        );
    }
    let mut b = query(4002);
    b.hop_limit = 2;
    assert_eq!(p.check(&b.build())?.frame[21], 1);

    // Tags are removed: members sit on untagged links.
    let mut b = query(4003);
    b.vlans = vec![(wire::ETH_P_8021AD, 100), (wire::ETH_P_8021Q, 10)];
    let tagged = b.build();
    let out = p.check(&tagged)?;
    assert_eq!(out.frame.len(), tagged.len() - 8);
    assert_eq!(&out.frame[12..14], &[0x86, 0xdd]);
    assert_eq!(&out.frame[22..], &tagged[30..]);
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn member_interface_accepts_only_registered_members() -> Result<()> {
    require_root()?;
    let mut p = ProgramUnderTest::load(IfaceRole::Member, SourceAction::Drop)?;
    p.add(&ANY.to_string(), "dns")?;
    // The answer comes from the anycast address. From the registered
    // member's MAC on this interface: accepted.
    p.add_l2_member("dns", "m1", CLIENT_MAC, 10)?;
    let answer = FrameBuilder::udp(ANY, CLIENT, 53, 4000, b"answer").build();
    let out = p.check(&answer)?;
    assert_eq!(
        (out.verdict, out.stat),
        (Verdict::Pass, GlobalStat::UnicastPassed)
    );
    assert_eq!(p.stats()?.groups["dns"].counters["member_source_passed"], 1);
    // From another host on the same link: a spoof.
    let mut intruder = FrameBuilder::udp(ANY, CLIENT, 53, 4000, b"forged answer");
    intruder.src_mac = [0x02, 0xee, 0, 0, 0, 0x66];
    let out = p.check(&intruder.build())?;
    assert_eq!(
        (out.verdict, out.stat),
        (Verdict::Drop, GlobalStat::SpoofDropped)
    );
    assert_eq!(p.stats()?.groups["dns"].counters["spoof_drops"], 1);

    // Tunnelled answers: the outer source must be a registered encapsulated member.
    let member: Ipv6Addr = "fd00:f::2".parse()?;
    p.add_encap_member("dns", "far", member, 50)?;
    let tunnelled = |outer_src: Ipv6Addr| {
        let inner = FrameBuilder::udp(ANY, CLIENT, 53, 4000, b"tunnelled answer").build();
        FrameBuilder::new(
            outer_src,
            "fd00:e::1".parse().expect("address"),
            L4::Raw {
                proto: wire::IPPROTO_IPV6,
                bytes: inner[14..].to_vec(),
            },
        )
        .build()
    };
    let out = p.check(&tunnelled(member))?;
    assert_eq!(out.verdict, Verdict::Pass);
    let out = p.check(&tunnelled("fd00:f::99".parse()?))?;
    assert_eq!(
        (out.verdict, out.stat),
        (Verdict::Drop, GlobalStat::SpoofDropped)
    );
    Ok(())
}

fn in_ns<T: Send + 'static>(
    ns: &NetNs,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    ns.run(f)?
}

#[test]
#[ignore = "needs root (BPF, namespaces): run with `cargo xtask test`"]
fn encapsulated_member_gets_an_outer_header() -> Result<()> {
    require_root()?;
    let mut lab = Lab::new("encap-prog")?;
    let FibNode {
        ifindex,
        smac,
        dmac,
    } = FibNode::build(&mut lab, "fib")?;
    in_ns(lab.ns("fib")?, move || {
        let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
        p.add(&ANY.to_string(), "dns")?;
        let member: Ipv6Addr = "fd00:f::2".parse()?;
        let tunnel: Ipv6Addr = "fd00:e::1".parse()?;
        p.add_encap_member("dns", "far", member, 10)?;
        p.fib = Box::new(move |src, dst, tot_len| {
            if *dst != member.octets() {
                Fib::Miss
            } else if tot_len > 1400 {
                Fib::FragNeeded { mtu: 1400 }
            } else {
                Fib::Found {
                    ifindex,
                    smac,
                    dmac,
                    src: src.unwrap_or(tunnel.octets()),
                }
            }
        });

        // Without a tunnel source the kernel picks e0's address.
        let mut b = query(4100);
        b.vlans = vec![(wire::ETH_P_8021Q, 7)];
        let frame = b.build();
        let out = p.check(&frame)?;
        assert_eq!(out.verdict, Verdict::Redirect(ifindex));
        let f = &out.frame;
        let inner = &frame[18..];
        assert_eq!(
            (&f[..6], &f[6..12], &f[12..14]),
            (&dmac[..], &smac[..], &[0x86u8, 0xdd][..])
        );
        assert_eq!(f[14] >> 4, 6);
        assert_eq!(u16::from_be_bytes([f[18], f[19]]) as usize, inner.len());
        assert_eq!((f[20], f[21]), (41, 64));
        assert_eq!(&f[22..38], &tunnel.octets());
        assert_eq!(&f[38..54], &member.octets());
        assert_eq!(f[54 + 7], 63, "inner hop limit lowered");
        assert_eq!(&f[54..61], &inner[..7]);
        assert_eq!(&f[62..], &inner[8..]);

        // With a tunnel source configured, that one.
        let ts: Ipv6Addr = "fd00:e::100".parse()?;
        p.state.set_group_options(
            &GroupName::new("dns")?,
            &GroupOptions {
                tunnel_source: Some(ts),
                ..GroupOptions::default()
            },
        )?;
        assert_eq!(&p.check(&frame)?.frame[22..38], &ts.octets());

        // Too big for e0 once encapsulated: passed untouched, counted.
        let big = FrameBuilder::udp(CLIENT, ANY, 4101, 53, &[0u8; 1340]).build();
        let out = p.check(&big)?;
        assert_eq!(
            (out.verdict, out.stat),
            (Verdict::Pass, GlobalStat::TooBigPassed)
        );
        assert_eq!(p.run(&big)?.data, big);

        // No route to the member: passed untouched, counted.
        p.state.del_member("dns", "far")?;
        p.add_encap_member("dns", "lost", "fd00:9::2".parse()?, 10)?;
        let out = p.check(&frame)?;
        assert_eq!(
            (out.verdict, out.stat),
            (Verdict::Pass, GlobalStat::FibMissPassed)
        );
        let s = p.stats()?;
        assert_eq!(s.groups["dns"].counters["too_big_passed"], 2);
        assert_eq!(s.groups["dns"].counters["fib_miss_passed"], 1);
        assert_eq!(p.run(&frame)?.action, XDP_PASS);
        Ok(())
    })
}

/// Without a tunnel source the kernel chooses the outer source, and each
/// CPU reuses its choice toward a member for a moment (`act::SOURCE_TTL_NS`):
/// 20 members in a group, more than a CPU keeps (16 slots, so some share
/// one), each routed with a source of its own, every frame's outer source
/// is its member's, checked against the model (a source-based rule does
/// not change the route between choices); after the route's source
/// changes, the kept one is used while fresh, then the new one.
#[test]
#[ignore = "needs root (BPF, namespaces): run with `cargo xtask test`"]
fn the_kernel_chosen_outer_source_is_each_members_and_follows_changes() -> Result<()> {
    require_root()?;
    const MEMBERS: u16 = 20;
    let mut lab = Lab::new("encap-src")?;
    let FibNode {
        ifindex,
        smac,
        dmac,
    } = FibNode::build(&mut lab, "fib")?;
    let member = |i: u16| Ipv6Addr::new(0xfd00, 0xf, 0, 0, 0, 0, i, 2);
    let source = |i: u16| Ipv6Addr::new(0xfd00, 0xe, 0, 0, 0, 0, 1, i);
    let ns = lab.ns("fib")?;
    for i in 0..MEMBERS {
        ns.ip(&[
            "addr",
            "add",
            &format!("{}/128", source(i)),
            "dev",
            "e0",
            "nodad",
        ])?;
        ns.ip(&[
            "-6",
            "route",
            "add",
            &format!("{}/128", member(i)),
            "via",
            "fd00:e::2",
            "dev",
            "e0",
            "src",
            &source(i).to_string(),
        ])?;
    }
    // A rule for packets from member 1's source, to a table that cannot
    // route: the lookup between choices must be the one the kernel chose
    // with (source ::), or member 1's packets would stop there.
    ns.ip(&[
        "-6",
        "route",
        "add",
        "unreachable",
        "default",
        "table",
        "300",
    ])?;
    ns.ip(&[
        "-6",
        "rule",
        "add",
        "from",
        &format!("{}/128", source(1)),
        "lookup",
        "300",
        "pref",
        "100",
    ])?;
    in_ns(ns, move || {
        // One CPU's kept sources throughout (test runs run on the caller's CPU).
        anycast_tests::pin_to_this_cpu()?;
        let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
        p.add(&ANY.to_string(), "dns")?;
        for i in 0..MEMBERS {
            p.add_encap_member("dns", &format!("m{i}"), member(i), 10)?;
        }
        let routed = std::sync::Arc::new(std::sync::Mutex::new(
            (0..MEMBERS)
                .map(|i| (member(i).octets(), source(i).octets()))
                .collect::<BTreeMap<_, _>>(),
        ));
        let fib = routed.clone();
        p.fib = Box::new(move |src, dst, _| {
            let routed = fib.lock().map(|r| r.get(dst).copied()).ok().flatten();
            match routed {
                Some(chosen) => Fib::Found {
                    ifindex,
                    smac,
                    dmac,
                    src: src.unwrap_or(chosen),
                },
                None => Fib::Miss,
            }
        });
        let mut reached = BTreeMap::new();
        let mut to_first = None;
        for port in 5000..5400u16 {
            let frame = query(port).build();
            let out = p.check(&frame)?;
            assert_eq!(out.verdict, Verdict::Redirect(ifindex), "port {port}");
            if out.frame[38..54] == member(0).octets() {
                to_first = Some(frame);
            }
            *reached.entry(out.frame[38..54].to_vec()).or_insert(0) += 1;
        }
        let frame = to_first.context("no flow reaches member 0")?;
        assert!(
            reached.len() >= 17,
            "the flows reached {} of the {MEMBERS} members: too few to share a slot",
            reached.len()
        );

        // The route of member 0 now prefers another source.
        let moved: Ipv6Addr = "fd00:e::1:99".parse()?;
        sh(&[
            "ip",
            "addr",
            "add",
            "fd00:e::1:99/128",
            "dev",
            "e0",
            "nodad",
        ])?;
        let chosen = Instant::now();
        p.run(&frame)?;
        sh(&[
            "ip",
            "-6",
            "route",
            "replace",
            &format!("{}/128", member(0)),
            "via",
            "fd00:e::2",
            "dev",
            "e0",
            "src",
            &moved.to_string(),
        ])?;
        // The kept source is used while it is fresh, though the kernel
        // would now choose the new one (when the route change was quick
        // enough to tell).
        let first = p.run(&frame)?;
        if chosen.elapsed() < Duration::from_millis(50) {
            assert_eq!(
                &first.data[22..38],
                &source(0).octets(),
                "a fresh kept source was not used"
            );
        }
        // Then the new one, within the kept source's life (100 ms and a
        // jiffy) and slack for a loaded machine.
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut runs = 0;
        let followed = loop {
            runs += 1;
            let got = p.run(&frame)?;
            assert_eq!(got.action, XDP_REDIRECT);
            let src = &got.data[22..38];
            assert!(
                src == source(0).octets() || src == moved.octets(),
                "outer source {src:02x?} is neither the old nor the new one"
            );
            if src == moved.octets() {
                break true;
            }
            if Instant::now() > deadline || runs > 1000 {
                break false;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        assert!(
            followed,
            "the outer source did not follow the route in 1 s ({runs} runs)"
        );
        // And from then on the model agrees.
        if let Ok(mut r) = routed.lock() {
            r.insert(member(0).octets(), moved.octets());
        }
        assert_eq!(&p.check(&frame)?.frame[22..38], &moved.octets());
        Ok(())
    })
}

/// RFC 2473 4.1.1 and 5.1: a packet whose Tunnel Encapsulation Limit
/// option is 0 must not be encapsulated (the entry point discards it and
/// sends a Parameter Problem): on its way to an encapsulated member it goes
/// to the kernel untouched (`encap_limit_passed`), wherever the option sits
/// in the chain; a limit above 0 is encapsulated, and an on-link member
/// (no encapsulation) gets a limit of 0 too.
#[test]
#[ignore = "needs root (BPF, namespaces): run with `cargo xtask test`"]
fn a_tunnel_encapsulation_limit_of_0_is_never_encapsulated() -> Result<()> {
    require_root()?;
    let mut lab = Lab::new("encap-limit")?;
    let FibNode {
        ifindex,
        smac,
        dmac,
    } = FibNode::build(&mut lab, "fib")?;
    in_ns(lab.ns("fib")?, move || {
        let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
        p.add(&ANY.to_string(), "dns")?;
        let member: Ipv6Addr = "fd00:f::2".parse()?;
        let tunnel: Ipv6Addr = "fd00:e::1".parse()?;
        p.add_encap_member("dns", "far", member, 10)?;
        p.fib = Box::new(move |src, dst, _| {
            if *dst != member.octets() {
                Fib::Miss
            } else {
                Fib::Found {
                    ifindex,
                    smac,
                    dmac,
                    src: src.unwrap_or(tunnel.octets()),
                }
            }
        });
        let with = |ext: Vec<Ext>| {
            let mut b = query(4200);
            b.ext = ext;
            b.build()
        };
        let zero = [
            vec![Ext::TunnelEncapLimit(0)],
            vec![Ext::HopByHop(0), Ext::TunnelEncapLimit(0)],
            vec![Ext::DestOpts(1), Ext::Routing(0), Ext::TunnelEncapLimit(0)],
            vec![
                Ext::Fragment {
                    offset: 0,
                    more: false,
                    id: 9,
                },
                Ext::TunnelEncapLimit(0),
            ],
        ];
        // Behind Pad1 and PadN options, in a header built octet by octet:
        // next header 59, length 1 (16 octets), Pad1, Pad1, PadN of 2,
        // the limit (type 4, length 1, value 0), PadN of 3.
        let padded = FrameBuilder::new(
            CLIENT,
            ANY,
            L4::Raw {
                proto: wire::IPPROTO_DSTOPTS,
                bytes: vec![59, 1, 0, 0, 1, 2, 0, 0, 4, 1, 0, 1, 3, 0, 0, 0],
            },
        )
        .build();
        let frames = zero.into_iter().map(|e| (format!("{e:?}"), with(e)));
        for (ext, frame) in frames.chain([("padded".to_string(), padded)]) {
            let out = p.check(&frame)?;
            assert_eq!(
                (out.verdict, out.stat),
                (Verdict::Pass, GlobalStat::EncapLimitPassed),
                "{ext}"
            );
            assert_eq!(out.frame, frame, "{ext}: untouched");
        }
        for ext in [
            vec![Ext::TunnelEncapLimit(1)],
            vec![Ext::TunnelEncapLimit(4)],
            vec![Ext::DestOpts(0)],
            vec![],
        ] {
            let out = p.check(&with(ext.clone()))?;
            assert_eq!(out.verdict, Verdict::Redirect(ifindex), "{ext:?}");
        }
        // The first option found decides, as Linux's ip6_tunnel reads it.
        let out = p.check(&with(vec![
            Ext::TunnelEncapLimit(2),
            Ext::TunnelEncapLimit(0),
        ]))?;
        assert_eq!(out.verdict, Verdict::Redirect(ifindex));
        let s = p.stats()?;
        assert_eq!(s.global["encap_limit_passed"], 5);
        assert_eq!(s.groups["dns"].counters["encap_limit_passed"], 5);

        // On-link members are not tunnels: the limit does not apply.
        p.state.del_member("dns", "far")?;
        p.add_l2_member("dns", "m1", M1_MAC, 10)?;
        let out = p.check(&with(vec![Ext::TunnelEncapLimit(0)]))?;
        assert_eq!(out.verdict, Verdict::Redirect(TEST_RUN_IFINDEX));
        Ok(())
    })
}
