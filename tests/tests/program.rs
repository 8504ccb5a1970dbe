//! Program tests: the XDP program on crafted frames (BPF_PROG_TEST_RUN),
//! held to explicit expectations and to the reference model.

use std::net::Ipv6Addr;

use anycast_common::{
    GlobalStat, IfaceRole, MAX_EXT_HEADERS, SourceAction,
    frame::{Ext, FrameBuilder, L4, arp_frame, ipv4_udp_frame},
    model::Verdict,
    wire,
};
use anycast_tests::{prog::ProgramUnderTest, require_root};
use anyhow::Result;

const ANY_DNS: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 0x53);
const WEB_NET: &str = "2001:db8:b::/48";
const IN_WEB: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 7, 0, 0, 0, 1);
const CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 2);
const SERVER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 2, 0, 0, 0, 2);

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

fn setup(role: IfaceRole, action: SourceAction) -> Result<ProgramUnderTest> {
    require_root()?;
    let mut p = ProgramUnderTest::load(role, action)?;
    p.add(&ANY_DNS.to_string(), "dns")?;
    p.add(WEB_NET, "web")?;
    Ok(p)
}

fn edge() -> Result<ProgramUnderTest> {
    setup(IfaceRole::Edge, SourceAction::Drop)
}

fn udp(src: Ipv6Addr, dst: Ipv6Addr) -> FrameBuilder {
    FrameBuilder::udp(src, dst, 4242, 53, b"anycast test payload")
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn anycast_source_is_dropped_on_edge() -> Result<()> {
    let p = edge()?;
    let out = p.check(&udp(ANY_DNS, SERVER).build())?;
    assert_eq!(out.verdict, Verdict::Drop);
    assert_eq!(out.stat, GlobalStat::AnycastSourceDropped);
    let s = p.stats()?;
    assert_eq!(s.groups["dns"].counters["anycast_source_drops"], 1);
    assert_eq!(s.global["anycast_source_drops"], 1);
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn monitor_mode_counts_and_passes() -> Result<()> {
    let p = setup(IfaceRole::Edge, SourceAction::Count)?;
    let out = p.check(&udp(ANY_DNS, SERVER).build())?;
    assert_eq!(out.verdict, Verdict::Pass);
    let s = p.stats()?;
    assert_eq!(s.groups["dns"].counters["anycast_source_counted"], 1);
    assert_eq!(s.groups["dns"].counters["anycast_source_drops"], 0);
    assert_eq!(s.global["anycast_source_counted"], 1);
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn member_interface_drops_unvouched_anycast_source() -> Result<()> {
    let p = setup(IfaceRole::Member, SourceAction::Drop)?;
    let r = p.run(&udp(ANY_DNS, SERVER).build())?;
    assert_eq!(r.action, XDP_DROP);
    p.check(&udp(IN_WEB, SERVER).build())?;
    Ok(())
}

/// Where an anycast source comes from, for the source rule's table.
#[derive(Clone, Copy, Debug)]
enum From {
    /// On the link, from a registered on-link member's MAC.
    Member,
    /// On the link, from any other MAC.
    Stranger,
    /// Inside IPv6-in-IPv6 whose outer source is a registered encapsulated member.
    MemberTunnel,
    /// Inside IPv6-in-IPv6 from an outer source that is no member.
    StrangerTunnel,
}

/// The source rule, every role and source action against every kind of
/// anycast source, towards a unicast and an anycast destination: the
/// verdict and the exact counters, written from the rule itself (README,
/// "Anti-spoofing"), and each run also held to the model. The rule is
/// written once in the program (`classify::judge_source`); every arm of it
/// decides a row here, so a change to any arm fails this table.
#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn the_source_rule_for_every_role_action_and_source() -> Result<()> {
    use IfaceRole::{Edge, Member};
    use SourceAction::{Count, Drop};
    const MEMBER_MAC: [u8; 6] = [0x02, 0xcc, 0, 0, 0, 1];
    const STRANGER_MAC: [u8; 6] = [0x02, 0xee, 0, 0, 0, 0x66];
    let tunnel_member: Ipv6Addr = "fd00:f::2".parse()?;
    let frame = |from: From, dst: Ipv6Addr| {
        let mut f = udp(ANY_DNS, dst);
        f.src_mac = STRANGER_MAC;
        match from {
            From::Member => f.src_mac = MEMBER_MAC,
            From::Stranger => {}
            From::MemberTunnel | From::StrangerTunnel => {
                let outer = match from {
                    From::MemberTunnel => tunnel_member,
                    _ => "fd00:f::99".parse().expect("address"),
                };
                let inner = f.build();
                f = FrameBuilder::new(
                    outer,
                    dst,
                    L4::Raw {
                        proto: wire::IPPROTO_IPV6,
                        bytes: inner[14..].to_vec(),
                    },
                );
                f.src_mac = STRANGER_MAC;
            }
        }
        f.build()
    };
    // (role, action, source): the verdict, the final global counter (for a
    // unicast destination), and the counter the source's group adds to
    // (the global counter of the same name moves too when it is not final).
    let table: &[(IfaceRole, SourceAction, From, u32, GlobalStat, &str)] = &[
        // Edge: no anycast source may enter, a member's neither.
        (
            Edge,
            Drop,
            From::Member,
            XDP_DROP,
            GlobalStat::AnycastSourceDropped,
            "anycast_source_drops",
        ),
        (
            Edge,
            Drop,
            From::Stranger,
            XDP_DROP,
            GlobalStat::AnycastSourceDropped,
            "anycast_source_drops",
        ),
        (
            Edge,
            Count,
            From::Member,
            XDP_PASS,
            GlobalStat::UnicastPassed,
            "anycast_source_counted",
        ),
        (
            Edge,
            Count,
            From::Stranger,
            XDP_PASS,
            GlobalStat::UnicastPassed,
            "anycast_source_counted",
        ),
        // Member interface: only from a registered member of the group.
        (
            Member,
            Drop,
            From::Member,
            XDP_PASS,
            GlobalStat::UnicastPassed,
            "member_source_passed",
        ),
        (
            Member,
            Drop,
            From::Stranger,
            XDP_DROP,
            GlobalStat::SpoofDropped,
            "spoof_drops",
        ),
        (
            Member,
            Drop,
            From::MemberTunnel,
            XDP_PASS,
            GlobalStat::UnicastPassed,
            "member_source_passed",
        ),
        (
            Member,
            Drop,
            From::StrangerTunnel,
            XDP_DROP,
            GlobalStat::SpoofDropped,
            "spoof_drops",
        ),
        (
            Member,
            Count,
            From::Member,
            XDP_PASS,
            GlobalStat::UnicastPassed,
            "member_source_passed",
        ),
        (
            Member,
            Count,
            From::Stranger,
            XDP_PASS,
            GlobalStat::UnicastPassed,
            "anycast_source_counted",
        ),
        (
            Member,
            Count,
            From::MemberTunnel,
            XDP_PASS,
            GlobalStat::UnicastPassed,
            "member_source_passed",
        ),
        (
            Member,
            Count,
            From::StrangerTunnel,
            XDP_PASS,
            GlobalStat::UnicastPassed,
            "anycast_source_counted",
        ),
    ];
    for &(role, action, from, verdict, final_stat, group_stat) in table {
        let mut p = setup(role, action)?;
        p.add_l2_member("dns", "near", MEMBER_MAC, 10)?;
        p.add_encap_member("dns", "far", tunnel_member, 20)?;
        for (dst, to_anycast) in [(SERVER, false), (IN_WEB, true)] {
            let row = format!("{role:?}/{action:?}, {from:?} to {dst}");
            let before = p.stats()?;
            let out = p.check(&frame(from, dst))?;
            let after = p.stats()?;
            let moved = |name: &str| after.global[name] - before.global[name];
            let moved_in = |group: &str, name: &str| {
                after.groups[group].counters[name] - before.groups[group].counters[name]
            };
            assert_eq!(out.verdict.xdp_action(), verdict, "{row}");
            assert_eq!(moved_in("dns", group_stat), 1, "{row}: {group_stat} of dns");
            assert_eq!(moved(group_stat), 1, "{row}: global {group_stat}");
            let dropped = verdict == XDP_DROP;
            // A passed packet to an anycast destination goes on to be
            // steered (web has no member: the kernel routes it).
            let final_stat = if to_anycast && !dropped {
                GlobalStat::FallbackPassed
            } else {
                final_stat
            };
            assert_eq!(out.stat, final_stat, "{row}");
            assert_eq!(moved(final_stat.name()), 1, "{row}: {}", final_stat.name());
            let destined = if to_anycast && !dropped { 1 } else { 0 };
            assert_eq!(moved_in("web", "destined_packets"), destined, "{row}");
        }
    }
    Ok(())
}

/// IPv6 in IPv6 whose inner source is anycast, from an outer source that is
/// no member, behind `ext` in the outer header.
fn tunnelled_spoof(ext: Vec<Ext>) -> Vec<u8> {
    let inner = udp(ANY_DNS, SERVER).build();
    let mut f = FrameBuilder::new(
        "fd00:e::66".parse().expect("address"),
        SERVER,
        L4::Raw {
            proto: wire::IPPROTO_IPV6,
            bytes: inner[14..].to_vec(),
        },
    );
    f.ext = ext;
    f.build()
}

/// The inner source of IPv6 in IPv6 is a source like any other, whatever
/// extension headers stand before the inner header (the Tunnel
/// Encapsulation Limit option Linux's ip6tnl adds, an SRv6 header, a first
/// fragment, hop-by-hop options): an edge drops it (`tunnelled_source_drops`,
/// a router that decapsulates would let it in), a member interface drops it
/// unless the outer source is an encapsulated member (`spoof_drops`),
/// monitor mode counts it. A non-first fragment has no inner header, and an
/// inner source that is not anycast is no matter.
#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn tunnelled_anycast_sources_are_refused_behind_any_extension_headers() -> Result<()> {
    let chains: Vec<Vec<Ext>> = vec![
        vec![],
        vec![Ext::TunnelEncapLimit(4)],
        vec![Ext::Srh {
            segments: 2,
            left: 1,
        }],
        vec![Ext::HopByHop(0), Ext::DestOpts(1)],
        vec![Ext::Fragment {
            offset: 0,
            more: true,
            id: 7,
        }],
        vec![Ext::Fragment {
            offset: 0,
            more: false,
            id: 8,
        }],
    ];
    for (role, action, stat, group_stat) in [
        (
            IfaceRole::Edge,
            SourceAction::Drop,
            GlobalStat::TunnelledSourceDropped,
            "tunnelled_source_drops",
        ),
        (
            IfaceRole::Member,
            SourceAction::Drop,
            GlobalStat::SpoofDropped,
            "spoof_drops",
        ),
        (
            IfaceRole::Edge,
            SourceAction::Count,
            GlobalStat::UnicastPassed,
            "anycast_source_counted",
        ),
    ] {
        let p = setup(role, action)?;
        for chain in &chains {
            let what = format!("{role:?}/{action:?} behind {chain:?}");
            let before = p.stats()?;
            let out = p.check(&tunnelled_spoof(chain.clone()))?;
            let after = p.stats()?;
            assert_eq!(out.stat, stat, "{what}");
            let moved = after.groups["dns"].counters[group_stat]
                - before.groups["dns"].counters[group_stat];
            assert_eq!(moved, 1, "{what}: {group_stat} of dns");
        }
        // No inner header in a non-first fragment; a unicast inner source.
        let frag = tunnelled_spoof(vec![Ext::Fragment {
            offset: 10,
            more: false,
            id: 9,
        }]);
        assert_eq!(p.check(&frag)?.stat, GlobalStat::UnicastPassed, "{role:?}");
        let inner = udp(CLIENT, SERVER).build();
        let plain = FrameBuilder::new(
            "fd00:e::66".parse()?,
            SERVER,
            L4::Raw {
                proto: wire::IPPROTO_IPV6,
                bytes: inner[14..].to_vec(),
            },
        )
        .build();
        assert_eq!(p.check(&plain)?.stat, GlobalStat::UnicastPassed, "{role:?}");
    }
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn anycast_destination_is_counted_and_passed() -> Result<()> {
    let p = edge()?;
    let frame = udp(CLIENT, ANY_DNS).build();
    let out = p.check(&frame)?;
    assert_eq!(out.verdict, Verdict::Pass);
    assert_eq!(out.stat, GlobalStat::FallbackPassed);
    let s = p.stats()?;
    assert_eq!(s.groups["dns"].counters["destined_packets"], 1);
    assert_eq!(
        s.groups["dns"].counters["destined_bytes"],
        frame.len() as u64
    );
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn unicast_passes_untouched() -> Result<()> {
    let p = edge()?;
    let out = p.check(&udp(CLIENT, SERVER).build())?;
    assert_eq!(out.stat, GlobalStat::UnicastPassed);
    let tcp = FrameBuilder::tcp(CLIENT, SERVER, 1234, 80, 0x02).build();
    assert_eq!(p.run(&tcp)?.action, XDP_PASS);
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn exact_address_and_prefix_match() -> Result<()> {
    let mut p = edge()?;
    // Inside the /48: dropped and counted for `web`.
    p.check(&udp(IN_WEB, SERVER).build())?;
    assert_eq!(p.stats()?.groups["web"].counters["anycast_source_drops"], 1);
    // Just outside it: passed.
    let outside = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 1);
    assert_eq!(
        p.check(&udp(outside, SERVER).build())?.verdict,
        Verdict::Pass
    );
    // A longer prefix inside wins.
    p.add("2001:db8:b:7::/64", "web7")?;
    p.check(&udp(IN_WEB, SERVER).build())?;
    assert_eq!(
        p.stats()?.groups["web7"].counters["anycast_source_drops"],
        1
    );
    assert_eq!(p.stats()?.groups["web"].counters["anycast_source_drops"], 1);
    // A neighbour of the exact address is not anycast.
    let neighbour = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 0x54);
    assert_eq!(
        p.check(&udp(neighbour, SERVER).build())?.verdict,
        Verdict::Pass
    );
    // Deleting the address restores delivery.
    p.del(&ANY_DNS.to_string())?;
    assert_eq!(
        p.check(&udp(ANY_DNS, SERVER).build())?.verdict,
        Verdict::Pass
    );
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn vlan_and_qinq() -> Result<()> {
    let p = edge()?;
    for vlans in [
        vec![(wire::ETH_P_8021Q, 10)],
        vec![(wire::ETH_P_8021AD, 100), (wire::ETH_P_8021Q, 10)],
    ] {
        let mut b = udp(ANY_DNS, SERVER);
        b.vlans = vlans.clone();
        assert_eq!(p.check(&b.build())?.verdict, Verdict::Drop, "{vlans:?}");
        let mut b = udp(CLIENT, ANY_DNS);
        b.vlans = vlans.clone();
        assert_eq!(
            p.check(&b.build())?.stat,
            GlobalStat::FallbackPassed,
            "{vlans:?}"
        );
    }
    // A third tag is beyond the parser: passed as non-IPv6.
    let mut b = udp(ANY_DNS, SERVER);
    b.vlans = vec![
        (wire::ETH_P_8021AD, 1),
        (wire::ETH_P_8021Q, 2),
        (wire::ETH_P_8021Q, 3),
    ];
    assert_eq!(p.check(&b.build())?.stat, GlobalStat::NonIpv6Passed);
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn every_extension_header_kind() -> Result<()> {
    let p = edge()?;
    let kinds = [
        Ext::HopByHop(0),
        Ext::HopByHop(3),
        Ext::DestOpts(1),
        Ext::Routing(2),
        Ext::Fragment {
            offset: 0,
            more: true,
            id: 7,
        },
        Ext::Ah(4),
        Ext::Mobility(0),
    ];
    for ext in kinds {
        let mut b = udp(CLIENT, ANY_DNS);
        b.ext = vec![ext];
        assert_eq!(
            p.check(&b.build())?.stat,
            GlobalStat::FallbackPassed,
            "{ext:?}"
        );
        let mut b = udp(ANY_DNS, SERVER);
        b.ext = vec![ext];
        assert_eq!(p.check(&b.build())?.verdict, Verdict::Drop, "{ext:?}");
    }
    // A non-first fragment carries no ports, and still counts as destined.
    let mut b = udp(CLIENT, ANY_DNS);
    b.ext = vec![Ext::Fragment {
        offset: 100,
        more: false,
        id: 7,
    }];
    assert_eq!(p.check(&b.build())?.stat, GlobalStat::FallbackPassed);
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn extension_header_chains_up_to_the_bound() -> Result<()> {
    let p = edge()?;
    let mixed = [
        Ext::HopByHop(0),
        Ext::DestOpts(0),
        Ext::Routing(0),
        Ext::Ah(1),
        Ext::Mobility(0),
        Ext::DestOpts(2),
        Ext::Fragment {
            offset: 0,
            more: true,
            id: 1,
        },
        Ext::DestOpts(0),
    ];
    let mut b = udp(CLIENT, ANY_DNS);
    b.ext = mixed.to_vec();
    assert_eq!(b.ext.len(), 8);
    assert_eq!(p.check(&b.build())?.stat, GlobalStat::FallbackPassed);
    b.ext = vec![Ext::DestOpts(0); MAX_EXT_HEADERS];
    assert_eq!(p.check(&b.build())?.stat, GlobalStat::FallbackPassed);
    b.ext = vec![Ext::DestOpts(0); MAX_EXT_HEADERS + 1];
    let out = p.check(&b.build())?;
    assert_eq!(
        (out.verdict, out.stat),
        (Verdict::Pass, GlobalStat::UnparsedPassed)
    );
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn truncated_at_every_offset_passes() -> Result<()> {
    let p = edge()?;
    let mut b = udp(ANY_DNS, ANY_DNS);
    b.vlans = vec![(wire::ETH_P_8021Q, 5)];
    b.ext = vec![
        Ext::HopByHop(1),
        Ext::Fragment {
            offset: 0,
            more: true,
            id: 3,
        },
        Ext::DestOpts(0),
    ];
    let full = b.build();
    // The kernel's test run refuses frames under 14 bytes; the lab covers those.
    for len in 14..full.len() {
        let out = p.check(&full[..len])?;
        assert_eq!(out.verdict, Verdict::Pass, "truncated to {len} bytes");
    }
    assert_eq!(p.check(&full)?.verdict, Verdict::Drop);

    // The same for an anycast destination with a unicast source.
    let mut b = udp(CLIENT, ANY_DNS);
    b.ext = vec![Ext::Routing(1), Ext::Ah(2)];
    let full = b.build();
    for len in 14..full.len() {
        let out = p.check(&full[..len])?;
        assert_ne!(
            out.stat,
            GlobalStat::FallbackPassed,
            "truncated to {len} bytes"
        );
    }
    assert_eq!(p.check(&full)?.stat, GlobalStat::FallbackPassed);
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn malformed_ipv6_passes() -> Result<()> {
    let p = edge()?;
    let mut bad_version = udp(ANY_DNS, SERVER).build();
    bad_version[14] = 0x45;
    // Payload length 0 is malformed only with a Hop-by-Hop header next (a
    // jumbogram without its option here); with any other it is an empty
    // payload (see `rfc.rs`).
    let mut zero_len = udp(ANY_DNS, SERVER);
    zero_len.ext = vec![Ext::HopByHop(0)];
    zero_len.payload_len_override = Some(0);
    let mut too_long = udp(ANY_DNS, SERVER);
    too_long.payload_len_override = Some(1000);
    for f in [bad_version, zero_len.build(), too_long.build()] {
        let out = p.check(&f)?;
        assert_eq!(
            (out.verdict, out.stat),
            (Verdict::Pass, GlobalStat::MalformedPassed)
        );
    }
    // Ethernet padding after a short payload is not parsed as headers.
    let mut padded = udp(CLIENT, ANY_DNS).build();
    padded.extend_from_slice(&[0u8; 16]);
    assert_eq!(p.check(&padded)?.stat, GlobalStat::FallbackPassed);
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn ipv4_arp_and_other_protocols_untouched() -> Result<()> {
    let p = edge()?;
    for f in [ipv4_udp_frame(), arp_frame()] {
        let out = p.check(&f)?;
        assert_eq!(
            (out.verdict, out.stat),
            (Verdict::Pass, GlobalStat::NonIpv6Passed)
        );
    }
    let icmp = FrameBuilder::new(
        CLIENT,
        ANY_DNS,
        L4::Icmpv6 {
            ty: 128,
            code: 0,
            body: vec![0, 1, 0, 1],
        },
    );
    assert_eq!(p.check(&icmp.build())?.stat, GlobalStat::FallbackPassed);
    let esp = FrameBuilder::new(
        CLIENT,
        ANY_DNS,
        L4::Raw {
            proto: wire::IPPROTO_ESP,
            bytes: vec![0; 24],
        },
    );
    assert_eq!(p.check(&esp.build())?.stat, GlobalStat::FallbackPassed);
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn pass_floor_passes() -> Result<()> {
    require_root()?;
    let p = ProgramUnderTest::load_named(
        anycast_common::program_names::PASS_FLOOR,
        IfaceRole::Edge,
        SourceAction::Drop,
    )?;
    let r = p.run_named(
        anycast_common::program_names::PASS_FLOOR,
        &udp(ANY_DNS, SERVER).build(),
    )?;
    assert_eq!(r.action, XDP_PASS);
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn full_tables_refuse_and_change_nothing() -> Result<()> {
    require_root()?;
    use anycast_common::map_names;
    let mut p = ProgramUnderTest::load_sized(
        anycast_common::program_names::ANYCAST,
        IfaceRole::Edge,
        SourceAction::Drop,
        &[
            (map_names::ANYCAST_ADDRS, 4),
            (map_names::ANYCAST_PREFIX, 2),
        ],
    )?;
    for i in 1..=4u16 {
        p.add(
            &Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, i).to_string(),
            "dns",
        )?;
    }
    p.add("2001:db8:b::/48", "web")?;
    p.add("2001:db8:c::/48", "web")?;
    let before = p.stats()?;
    let err = p
        .add("2001:db8:a::5", "new-group")
        .expect_err("address table is full");
    assert!(
        err.to_string()
            .contains("anycast address table is full (4 entries)"),
        "{err}"
    );
    let err = p
        .add("2001:db8:d::/48", "web")
        .expect_err("prefix table is full");
    assert!(
        err.to_string()
            .contains("anycast prefix table is full (2 entries)"),
        "{err}"
    );
    // Nothing changed: no new group, same address counts, and still filtering.
    let after = p.stats()?;
    assert_eq!(after.groups.keys().collect::<Vec<_>>(), vec!["dns", "web"]);
    assert_eq!(after.groups["web"].addresses, 2);
    assert_eq!(before, after);
    assert_eq!(
        p.run(&udp(Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 4), SERVER).build())?
            .action,
        XDP_DROP
    );
    assert_eq!(
        p.run(&udp(Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 5), SERVER).build())?
            .action,
        XDP_PASS
    );
    Ok(())
}

/// `n` documentation addresses that share one bucket of the exact-address
/// index of `p` (as big as its state's).
fn sharing_one_index_bucket(p: &ProgramUnderTest, n: usize) -> Vec<Ipv6Addr> {
    let mut by_bucket: std::collections::HashMap<u32, Vec<Ipv6Addr>> = Default::default();
    for i in 0..(1u128 << 24) {
        let a = Ipv6Addr::from(0x2001_0db8_0005_0000_0000_0000_0000_0000u128 + i);
        let v = by_bucket.entry(p.state.index_bucket(a)).or_default();
        v.push(a);
        if v.len() == n {
            return v.clone();
        }
    }
    unreachable!("2^24 addresses in at most 2^24 buckets share buckets")
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn addresses_sharing_an_index_bucket_are_all_found() -> Result<()> {
    require_root()?;
    let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
    assert_eq!(
        anycast_common::EXACT_BUCKET_ENTRIES,
        3,
        "the test fills a bucket of 3"
    );
    let [a, b, c, d, e, f] = sharing_one_index_bucket(&p, 6)[..] else {
        unreachable!("asked for six")
    };
    let verdict = |p: &ProgramUnderTest, addr: Ipv6Addr| -> Result<u32> {
        Ok(p.run(&udp(addr, SERVER).build())?.action)
    };
    // a, b, c take the bucket's places; d and e are only in the table.
    for (x, group) in [(a, "one"), (b, "two"), (c, "one"), (d, "two"), (e, "one")] {
        p.add(&x.to_string(), group)?;
    }
    for x in [a, b, c] {
        assert!(p.state.indexed(x)?, "{x} has a place");
    }
    for x in [d, e] {
        assert!(!p.state.indexed(x)?, "{x} is in the table only");
    }
    for x in [a, b, c, d, e] {
        assert_eq!(verdict(&p, x)?, XDP_DROP, "{x} is anycast");
    }
    assert_eq!(verdict(&p, f)?, XDP_PASS, "{f} shares the bucket only");
    let s = p.stats()?;
    assert_eq!(s.groups["one"].counters["anycast_source_drops"], 3);
    assert_eq!(s.groups["two"].counters["anycast_source_drops"], 2);
    // A placed address leaves: the others are still found, it is not.
    p.del(&a.to_string())?;
    assert_eq!(verdict(&p, a)?, XDP_PASS);
    for x in [b, c, d, e] {
        assert_eq!(verdict(&p, x)?, XDP_DROP, "{x} is still anycast");
    }
    // A newcomer takes the free place.
    p.add(&f.to_string(), "two")?;
    assert!(p.state.indexed(f)?);
    assert_eq!(verdict(&p, f)?, XDP_DROP);
    // The table-only ones leave.
    p.del(&d.to_string())?;
    p.del(&e.to_string())?;
    for x in [d, e] {
        assert_eq!(verdict(&p, x)?, XDP_PASS, "{x} is gone");
    }
    for x in [b, c, f] {
        assert_eq!(verdict(&p, x)?, XDP_DROP, "{x} is still anycast");
    }
    // A refused insert (the address is another group's) leaves no trace.
    assert!(
        p.state
            .add_address(
                anycast::AnycastPrefix { addr: f, len: 128 },
                &anycast::GroupName::new("one")?
            )
            .is_err()
    );
    assert_eq!(verdict(&p, f)?, XDP_DROP);
    assert_eq!(
        p.stats()?.groups["two"].counters["anycast_source_drops"],
        // b three times, d twice, f three times.
        3 + 2 + 3
    );
    for x in [b, c, f] {
        p.del(&x.to_string())?;
    }
    for x in [a, b, c, d, e, f] {
        assert_eq!(verdict(&p, x)?, XDP_PASS, "{x} is gone");
    }
    Ok(())
}

/// `n` documentation addresses in a row, from 2001:db8:6::.
fn in_a_row(n: u128) -> Vec<anycast::AnycastPrefix> {
    (0..n)
        .map(|i| anycast::AnycastPrefix {
            addr: Ipv6Addr::from(0x2001_0db8_0006_0000_0000_0000_0000_0000u128 + i),
            len: 128,
        })
        .collect()
}

/// Asserts that the exact-address index is exactly what the table makes
/// of it: every place publishes an address of the table under its word,
/// and every bucket counts exactly its addresses without a place.
fn index_exact(p: &mut ProgramUnderTest) -> Result<()> {
    let r = p.state.repair(false)?;
    assert_eq!(
        (r.index_buckets, r.index_stale_places, r.index_other_counts),
        (0, 0, 0),
        "the index as the table makes it: {r}"
    );
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn a_bulk_load_places_and_counts_as_one_at_a_time() -> Result<()> {
    require_root()?;
    let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
    let [a, b, c, d, e, f] = sharing_one_index_bucket(&p, 6)[..] else {
        unreachable!("asked for six")
    };
    // `a` is there already, in the load's group; `b` in another.
    p.add(&a.to_string(), "big")?;
    p.add(&b.to_string(), "other")?;
    let exact = |x: Ipv6Addr| anycast::AnycastPrefix { addr: x, len: 128 };
    let row = in_a_row(5000);
    // The row, `a` again, the rest of the bucket but `f`, and some of the
    // row twice.
    let mut list = row.clone();
    list.extend([exact(a), exact(c), exact(d), exact(e)]);
    list.extend_from_slice(&row[..100]);
    let big = anycast::GroupName::new("big")?;
    let added = p.state.load_address_list(&list, &big)?;
    assert_eq!(added, row.len() + 3, "each new address once");
    // c took the bucket's last place; d and e are counted, in the table only.
    assert!(p.state.indexed(c)?, "{c} has a place");
    for x in [d, e] {
        assert!(!p.state.indexed(x)?, "{x} is in the table only");
    }
    index_exact(&mut p)?;
    for x in row.iter().map(|r| r.addr).chain([a, c, d, e]) {
        assert_eq!(p.run(&udp(x, SERVER).build())?.action, XDP_DROP, "{x}");
    }
    let next = Ipv6Addr::from(u128::from(row[row.len() - 1].addr) + 1);
    for x in [f, next] {
        assert_eq!(p.run(&udp(x, SERVER).build())?.action, XDP_PASS, "{x}");
    }
    let s = p.stats()?;
    assert_eq!(s.groups["big"].addresses as usize, row.len() + 4);
    assert_eq!(s.groups["other"].addresses, 1);
    // The same load again adds nothing and changes nothing.
    assert_eq!(p.state.load_address_list(&list, &big)?, 0);
    assert_eq!(p.stats()?, s);
    // Deleting them one by one leaves an empty index.
    for x in row.iter().map(|r| r.addr).chain([a, c, d, e, b]) {
        p.del(&x.to_string())?;
    }
    index_exact(&mut p)?;
    for x in [row[0].addr, a, b, c, d, e] {
        assert_eq!(p.run(&udp(x, SERVER).build())?.action, XDP_PASS, "{x}");
    }
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn a_refused_bulk_load_changes_nothing() -> Result<()> {
    require_root()?;
    use anycast_common::map_names;
    let mut p = ProgramUnderTest::load_sized(
        anycast_common::program_names::ANYCAST,
        IfaceRole::Edge,
        SourceAction::Drop,
        &[(map_names::ANYCAST_ADDRS, 1000)],
    )?;
    let row = in_a_row(1200);
    // 100 of them already, in group dns.
    p.state
        .load_address_list(&row[..100], &anycast::GroupName::new("dns")?)?;
    let before = p.stats()?;
    let big = anycast::GroupName::new("big")?;
    // One of dns's among new ones: refused before anything is written.
    let err = p
        .state
        .load_address_list(&row[50..300], &big)
        .expect_err("an address of another group");
    assert!(err.to_string().contains("dns"), "{err}");
    // More than the table holds: it fills up half-way, and what went in
    // comes out again.
    let err = p
        .state
        .load_address_list(&row[100..], &big)
        .expect_err("the table is full");
    assert!(
        err.to_string()
            .contains("anycast address table is full (1000 entries)"),
        "{err}"
    );
    assert_eq!(p.stats()?, before, "no group big, the same counts");
    index_exact(&mut p)?;
    for x in &row[..100] {
        assert_eq!(p.run(&udp(x.addr, SERVER).build())?.action, XDP_DROP);
    }
    for x in row[100..].iter().step_by(7) {
        assert_eq!(p.run(&udp(x.addr, SERVER).build())?.action, XDP_PASS);
        assert!(!p.state.indexed(x.addr)?, "{} left no place", x.addr);
    }
    // The table still takes what fits.
    assert_eq!(p.state.load_address_list(&row[100..1000], &big)?, 900);
    index_exact(&mut p)?;
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn prefixes_of_more_lengths_never_hide_an_anycast_address() -> Result<()> {
    require_root()?;
    let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
    let exact: Vec<Ipv6Addr> = (0..3000u128)
        .map(|i| Ipv6Addr::from(0x2001_0db8_00aa_0000_0000_0000_0000_0000u128 + i * 7919))
        .collect();
    let list: Vec<anycast::AnycastPrefix> = exact
        .iter()
        .map(|a| anycast::AnycastPrefix { addr: *a, len: 128 })
        .collect();
    p.state
        .load_addresses(&list, &anycast::GroupName::new("many")?)?;
    for (net, len) in [
        ("2001:db8:b::", 48),
        ("2001:db8:c:1::", 64),
        ("2001:db8:d:100::", 56),
    ] {
        p.add(&format!("{net}/{len}"), "nets")?;
    }
    let inside = |s: &str| -> Result<Ipv6Addr> { Ok(s.parse()?) };
    let anycast_sources = [
        inside("2001:db8:b:77::1")?,
        inside("2001:db8:c:1::99")?,
        inside("2001:db8:d:1ff::5")?,
    ];
    let check_all = |p: &ProgramUnderTest| -> Result<()> {
        for a in exact.iter().step_by(97).chain(anycast_sources.iter()) {
            assert_eq!(
                p.run(&udp(*a, SERVER).build())?.action,
                XDP_DROP,
                "{a} must be caught"
            );
        }
        for i in 0..200u128 {
            let a = Ipv6Addr::from(0xfd00_0000_0000_0000_0000_0000_0000_0000u128 + i * 104_729);
            assert_eq!(
                p.run(&udp(a, SERVER).build())?.action,
                XDP_PASS,
                "{a} is not anycast"
            );
        }
        Ok(())
    };
    check_all(&p)?;
    // Two more prefix lengths; still exact.
    p.add("2001:db8:e000::/40", "nets")?;
    p.add("2001:db8:f000::/36", "nets")?;
    check_all(&p)?;
    assert_eq!(
        p.run(&udp("2001:db8:e012::1".parse()?, SERVER).build())?
            .action,
        XDP_DROP
    );
    // And without them again.
    p.del("2001:db8:f000::/36")?;
    p.del("2001:db8:e000::/40")?;
    assert_eq!(
        p.run(&udp("2001:db8:e012::1".parse()?, SERVER).build())?
            .action,
        XDP_PASS
    );
    check_all(&p)?;
    for a in exact.iter().step_by(2) {
        p.state
            .del_address(anycast::AnycastPrefix { addr: *a, len: 128 })?;
    }
    for (i, a) in exact.iter().enumerate().step_by(97) {
        let want = if i % 2 == 0 { XDP_PASS } else { XDP_DROP };
        assert_eq!(
            p.run(&udp(*a, SERVER).build())?.action,
            want,
            "{a} after deletes"
        );
    }
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn full_group_and_member_tables_refuse_and_change_nothing() -> Result<()> {
    require_root()?;
    use anycast_common::map_names;
    let mut p = ProgramUnderTest::load_sized(
        anycast_common::program_names::ANYCAST,
        IfaceRole::Edge,
        SourceAction::Drop,
        &[
            (map_names::GROUPS, 8),
            (map_names::MEMBERS, 6),
            (map_names::FLOWS, 1024),
        ],
    )?;
    // Ids 1..8: seven groups fit.
    for g in 0..7u16 {
        p.add(
            &Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, g + 1).to_string(),
            &format!("g{g}"),
        )?;
    }
    let before = p.stats()?;
    let err = p
        .add("2001:db8:a::99", "one-too-many")
        .expect_err("group table is full");
    assert!(
        err.to_string().contains("group table is full (7 entries)"),
        "{err}"
    );
    assert_eq!(p.stats()?, before);
    assert_eq!(
        p.run(&udp(Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 7), SERVER).build())?
            .action,
        XDP_DROP
    );
    assert_eq!(
        p.run(&udp("2001:db8:a::99".parse()?, SERVER).build())?
            .action,
        XDP_PASS
    );

    // Ids 1..6: five members fit.
    for m in 0..5u8 {
        p.add_l2_member("g0", &format!("m{m}"), [0x02, 0xbb, 0, 0, 0, m + 1], 10)?;
    }
    let members = p.state.list_members(None)?;
    let err = p
        .add_l2_member("g0", "m5", [0x02, 0xbb, 0, 0, 0, 9], 10)
        .expect_err("member table is full");
    assert!(
        err.to_string().contains("member table is full (5 entries)"),
        "{err}"
    );
    assert_eq!(p.state.list_members(None)?, members);
    // Still steering to the members it has.
    let q = udp(CLIENT, Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 1)).build();
    assert_eq!(p.run(&q)?.action, 4);
    Ok(())
}
