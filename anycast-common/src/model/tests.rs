use super::*;
use crate::MAX_EXT_HEADERS;
use crate::frame::{Ext, FrameBuilder, L4};
use std::{net::Ipv6Addr, vec};

const ANY: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 1);
const CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 2);
const SERVER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 2, 0, 0, 0, 2);

/// One group (7) holding `ANY`, with the given members.
struct OneGroup(Vec<(u32, MemberInfo)>);

impl Config for OneGroup {
    fn anycast_group(&self, a: &[u8; 16]) -> Option<u32> {
        (*a == ANY.octets()).then_some(7)
    }
    fn group(&self, id: u32) -> Option<GroupInfo> {
        (id == 7).then(GroupInfo::zeroed_value)
    }
    fn members(&self, group: u32) -> Vec<(u32, MemberInfo)> {
        self.0
            .iter()
            .copied()
            .filter(|(_, m)| m.group_id == group)
            .collect()
    }
    fn member_source(&self, key: &MemberSourceKey) -> bool {
        self.0
            .iter()
            .any(|(_, m)| m.mac == key.mac && key.ifindex == m.ifindex)
    }
    fn fib(&self, _: Option<[u8; 16]>, _: &[u8; 16], _: usize) -> Fib {
        Fib::Miss
    }
    fn flow(&self, _: &FlowKey) -> Option<FlowEntry> {
        None
    }
    fn fragment(&self, _: &FragmentKey) -> Option<FragmentEntry> {
        None
    }
    fn now_ns(&self) -> u64 {
        0
    }
    fn link_mtu(&self, ifindex: u32) -> Option<u32> {
        (ifindex == 3).then_some(1280)
    }
}

fn l2_member(metric: u32, mac_last: u8) -> MemberInfo {
    let mut m: MemberInfo = bytemuck::Zeroable::zeroed();
    m.group_id = 7;
    m.metric = metric;
    m.kind = MemberKind::L2 as u8;
    m.up = 1;
    m.ifindex = 3;
    m.mac = [2, 0, 0, 0, 0, mac_last];
    m.src_mac = [2, 0, 0, 0, 1, 1];
    m
}

const EDGE: Iface = Iface {
    role: IfaceRole::Edge,
    source_action: SourceAction::Drop,
    ifindex: 2,
    attachment: 1,
};

/// [`OneGroup`] whose address is reached only from attachment 5.
struct ScopedToFive(OneGroup);

impl Config for ScopedToFive {
    fn anycast_group(&self, a: &[u8; 16]) -> Option<u32> {
        self.0.anycast_group(a)
    }
    fn in_scope(&self, a: &[u8; 16], attachment: u32) -> bool {
        *a != ANY.octets() || attachment == 5
    }
    fn group(&self, id: u32) -> Option<GroupInfo> {
        self.0.group(id)
    }
    fn members(&self, group: u32) -> Vec<(u32, MemberInfo)> {
        self.0.members(group)
    }
    fn member_source(&self, key: &MemberSourceKey) -> bool {
        self.0.member_source(key)
    }
    fn fib(&self, src: Option<[u8; 16]>, dst: &[u8; 16], len: usize) -> Fib {
        self.0.fib(src, dst, len)
    }
    fn flow(&self, key: &FlowKey) -> Option<FlowEntry> {
        self.0.flow(key)
    }
    fn fragment(&self, key: &FragmentKey) -> Option<FragmentEntry> {
        self.0.fragment(key)
    }
    fn now_ns(&self) -> u64 {
        self.0.now_ns()
    }
    fn link_mtu(&self, ifindex: u32) -> Option<u32> {
        self.0.link_mtu(ifindex)
    }
}

#[test]
fn scoped_address_only_from_its_scope() {
    let cfg = ScopedToFive(OneGroup(vec![(1, l2_member(10, 9))]));
    let f = FrameBuilder::udp(CLIENT, ANY, 4000, 53, b"q").build();
    let o = classify(&f, EDGE, &cfg);
    assert_eq!(
        (o.verdict, o.stat),
        (Verdict::Drop, GlobalStat::OutOfScopeDropped)
    );
    assert!(
        o.deltas
            .contains(&(Scope::Group(7), "out_of_scope_drops", 1))
    );
    assert!(o.deltas.contains(&(Scope::Group(7), "destined_packets", 1)));
    // Even from a link-local source, which would otherwise pass.
    let ll = FrameBuilder::udp("fe80::1".parse().expect("address"), ANY, 4000, 53, b"q").build();
    assert_eq!(classify(&ll, EDGE, &cfg).verdict, Verdict::Drop);
    let home = Iface {
        attachment: 5,
        ..EDGE
    };
    let o = classify(&f, home, &cfg);
    assert_eq!(o.verdict, Verdict::Redirect(3));
    // A scoped address as a source meets the source rule alone.
    let from = FrameBuilder::udp(ANY, SERVER, 53, 4000, b"hi").build();
    assert_eq!(
        classify(&from, EDGE, &cfg).stat,
        GlobalStat::AnycastSourceDropped
    );
}

#[test]
fn anycast_source_dropped_on_edge() {
    let f = FrameBuilder::udp(ANY, SERVER, 53, 4000, b"hi").build();
    let o = classify(&f, EDGE, &OneGroup(vec![]));
    assert_eq!(o.verdict, Verdict::Drop);
    assert_eq!(o.stat, GlobalStat::AnycastSourceDropped);
    assert!(
        o.deltas
            .contains(&(Scope::Group(7), "anycast_source_drops", 1))
    );
}

#[test]
fn member_source_needs_a_registered_member() {
    let f = FrameBuilder::udp(ANY, CLIENT, 53, 4000, b"answer").build();
    let member_if = Iface {
        role: IfaceRole::Member,
        ifindex: 3,
        ..EDGE
    };
    let o = classify(&f, member_if, &OneGroup(vec![]));
    assert_eq!(
        (o.verdict, o.stat),
        (Verdict::Drop, GlobalStat::SpoofDropped)
    );
    let mut m = l2_member(10, 9);
    m.mac = crate::frame::CLIENT_MAC;
    let o = classify(&f, member_if, &OneGroup(vec![(1, m)]));
    assert_eq!(
        (o.verdict, o.stat),
        (Verdict::Pass, GlobalStat::UnicastPassed)
    );
    assert!(
        o.deltas
            .contains(&(Scope::Global, "member_source_passed", 1))
    );
}

#[test]
fn nearest_member_gets_the_rewritten_frame() {
    let mut b = FrameBuilder::udp(CLIENT, ANY, 4000, 53, b"q");
    b.vlans = vec![(wire::ETH_P_8021Q, 5)];
    let f = b.build();
    let far = l2_member(20, 2);
    let near = l2_member(10, 1);
    let o = classify(&f, EDGE, &OneGroup(vec![(1, far), (2, near)]));
    assert_eq!(o.verdict, Verdict::Redirect(3));
    assert_eq!(&o.frame[..6], &near.mac);
    assert_eq!(&o.frame[12..14], &[0x86, 0xdd]);
    assert_eq!(o.frame[14 + 7], 63, "hop limit lowered");
    assert_eq!(o.frame.len(), f.len() - 4, "VLAN tag removed");
    assert!(o.deltas.contains(&(Scope::Member(2), "packets", 1)));
}

#[test]
fn no_live_member_falls_back() {
    let f = FrameBuilder::udp(CLIENT, ANY, 4000, 53, b"q").build();
    let mut down = l2_member(10, 1);
    down.up = 0;
    let o = classify(&f, EDGE, &OneGroup(vec![(1, down)]));
    assert_eq!(
        (o.verdict, o.stat),
        (Verdict::Pass, GlobalStat::FallbackPassed)
    );
}

#[test]
fn chain_longer_than_bound_is_unparsed() {
    let mut b = FrameBuilder::udp(CLIENT, ANY, 4000, 53, b"q");
    b.ext = vec![Ext::DestOpts(0); MAX_EXT_HEADERS + 1];
    let o = classify(&b.build(), EDGE, &OneGroup(vec![]));
    assert_eq!(
        (o.verdict, o.stat),
        (Verdict::Pass, GlobalStat::UnparsedPassed)
    );
}

#[test]
fn every_truncation_passes() {
    let mut b = FrameBuilder::udp(ANY, ANY, 4000, 53, b"payload");
    b.ext = vec![
        Ext::HopByHop(1),
        Ext::Fragment {
            offset: 0,
            more: true,
            id: 9,
        },
    ];
    let f = b.build();
    let cfg = OneGroup(vec![(1, l2_member(1, 1))]);
    for len in 0..f.len() {
        assert_eq!(
            classify(&f[..len], EDGE, &cfg).verdict,
            Verdict::Pass,
            "truncated to {len}"
        );
    }
    assert_eq!(classify(&f, EDGE, &cfg).verdict, Verdict::Drop);
}

/// RFC 8200 section 4.5: a first fragment holds the ports and is keyed as
/// its whole packet; a later one holds only data, keyed by its label.
#[test]
fn first_fragments_hash_by_ports_later_ones_by_label() {
    let mut b = FrameBuilder::udp(CLIENT, ANY, 4000, 53, b"data");
    b.flow_label = 0x12345;
    let whole = b.build();
    b.ext = vec![Ext::Fragment {
        offset: 0,
        more: true,
        id: 1,
    }];
    let first = b.build();
    b.ext = vec![Ext::Fragment {
        offset: 8,
        more: false,
        id: 1,
    }];
    b.l4 = L4::Raw {
        proto: wire::IPPROTO_UDP,
        bytes: vec![1, 2, 3],
    };
    let rest = b.build();
    b.ext = vec![];
    b.l4 = L4::Raw {
        proto: 253,
        bytes: vec![1, 2, 3],
    };
    let no_ports = b.build();
    let key = |f: &[u8]| {
        let ip = parse_l3(f).expect("ipv6");
        match flow_of(f, &ip, &parse_transport(f, &ip).expect("transport"), 7) {
            FlowOf::Flow(k, h, _) => (k, h),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(key(&first), key(&whole));
    assert_eq!(key(&rest), key(&no_ports));
    assert_ne!(key(&first).1, key(&rest).1);
}

#[test]
fn qinq_and_ipv4() {
    let mut b = FrameBuilder::udp(ANY, SERVER, 1, 2, b"");
    b.vlans = vec![(wire::ETH_P_8021AD, 100), (wire::ETH_P_8021Q, 200)];
    let cfg = OneGroup(vec![]);
    assert_eq!(classify(&b.build(), EDGE, &cfg).verdict, Verdict::Drop);
    b.vlans.push((wire::ETH_P_8021Q, 300));
    assert_eq!(
        classify(&b.build(), EDGE, &cfg).stat,
        GlobalStat::NonIpv6Passed
    );
    let v4 = crate::frame::ipv4_udp_frame();
    assert_eq!(classify(&v4, EDGE, &cfg).stat, GlobalStat::NonIpv6Passed);
}

/// The [`Config`] methods of a wrapper of [`OneGroup`] (field 0) that
/// are [`OneGroup`]'s.
macro_rules! one_group {
    () => {
        fn anycast_group(&self, a: &[u8; 16]) -> Option<u32> {
            self.0.anycast_group(a)
        }
        fn group(&self, id: u32) -> Option<GroupInfo> {
            self.0.group(id)
        }
        fn members(&self, group: u32) -> Vec<(u32, MemberInfo)> {
            self.0.members(group)
        }
        fn member_source(&self, key: &MemberSourceKey) -> bool {
            self.0.member_source(key)
        }
        fn link_mtu(&self, ifindex: u32) -> Option<u32> {
            self.0.link_mtu(ifindex)
        }
    };
}

/// [`OneGroup`] with a route back to `CLIENT` out of interface 2 (the
/// edge), from `ROUTER`.
struct RouteBack(OneGroup);

const ROUTER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 1);

impl Config for RouteBack {
    one_group!();
    fn fib(&self, src: Option<[u8; 16]>, dst: &[u8; 16], tot_len: usize) -> Fib {
        if src.is_none() && *dst == CLIENT.octets() && tot_len == 1280 {
            Fib::Found {
                ifindex: 2,
                smac: [2, 0, 0, 0, 2, 2],
                dmac: crate::frame::CLIENT_MAC,
                src: ROUTER.octets(),
            }
        } else {
            Fib::Miss
        }
    }
    fn flow(&self, _: &FlowKey) -> Option<FlowEntry> {
        None
    }
    fn fragment(&self, _: &FragmentKey) -> Option<FragmentEntry> {
        None
    }
    fn now_ns(&self) -> u64 {
        0
    }
}

/// RFC 8200 section 5, RFC 4443 section 3.2: a 1454-byte packet for a
/// member behind a 1280-byte link is answered with a Packet Too Big
/// carrying 1280, quoting the packet's first 1232 bytes, redirected back
/// out of the interface it came in on; 1280 bytes go through.
#[test]
fn too_big_for_the_link_is_answered_with_packet_too_big() {
    let cfg = RouteBack(OneGroup(vec![(1, l2_member(10, 1))]));
    let mut b = FrameBuilder::udp(CLIENT, ANY, 4000, 53, &[7u8; 1454 - 48]);
    b.vlans = vec![(wire::ETH_P_8021Q, 5)];
    let f = b.build();
    let o = classify(&f, EDGE, &cfg);
    assert_eq!(
        (o.verdict, o.stat),
        (Verdict::Redirect(2), GlobalStat::TooBigSent)
    );
    let p = &o.frame;
    assert_eq!(p.len(), 14 + 1280);
    assert_eq!(&p[..6], &crate::frame::CLIENT_MAC);
    assert_eq!(&p[12..14], &[0x86, 0xdd]);
    assert_eq!(&p[14..18], &[0x60, 0, 0, 0]);
    assert_eq!(u16::from_be_bytes([p[18], p[19]]), 1240);
    assert_eq!((p[20], p[21]), (58, 64));
    assert_eq!(&p[22..38], &ROUTER.octets());
    assert_eq!(&p[38..54], &CLIENT.octets());
    assert_eq!((p[54], p[55]), (2, 0));
    assert_eq!(&p[58..62], &1280u32.to_be_bytes());
    assert_eq!(
        &p[62..],
        &f[18..18 + 1232],
        "the packet as it came, VLAN tag aside"
    );
    // The checksum as the frame builder computes it for any ICMPv6 message.
    let mut msg = p[54..].to_vec();
    msg[2..4].fill(0);
    let sum = crate::frame::l4_checksum(&ROUTER, &CLIENT, 58, &msg);
    assert_eq!(u16::from_be_bytes([p[56], p[57]]), sum);
    assert!(o.deltas.contains(&(Scope::Group(7), "too_big_sent", 1)));
    assert!(!o.deltas.iter().any(|d| d.0 == Scope::Member(1)));

    let fits = FrameBuilder::udp(CLIENT, ANY, 4000, 53, &[7u8; 1280 - 48]).build();
    assert_eq!(classify(&fits, EDGE, &cfg).verdict, Verdict::Redirect(3));

    // No route back: the kernel gets it.
    let far = FrameBuilder::udp(SERVER, ANY, 4000, 53, &[7u8; 1454 - 48]).build();
    let o = classify(&far, EDGE, &cfg);
    assert_eq!(
        (o.verdict, o.stat),
        (Verdict::Pass, GlobalStat::TooBigPassed)
    );
    assert_eq!(o.frame, far);
}

/// [`OneGroup`] whose fragment table holds one entry, at time `now`.
struct Fragments(OneGroup, Option<(FragmentKey, FragmentEntry)>, u64);

impl Config for Fragments {
    one_group!();
    fn fib(&self, _: Option<[u8; 16]>, _: &[u8; 16], _: usize) -> Fib {
        Fib::Miss
    }
    fn flow(&self, _: &FlowKey) -> Option<FlowEntry> {
        None
    }
    fn fragment(&self, key: &FragmentKey) -> Option<FragmentEntry> {
        self.1.filter(|(k, _)| k == key).map(|(_, e)| e)
    }
    fn now_ns(&self) -> u64 {
        self.2
    }
}

/// RFC 8200 section 4.5: the first fragment holds the ports and goes where
/// the flow's whole packets go, and writes its member under (source,
/// destination, Identification); a later fragment follows that entry while
/// it stands and its member is up, and goes by its flow label otherwise.
#[test]
fn later_fragments_follow_the_first_one() {
    let tied = (1..=4).map(|i| (u32::from(i), l2_member(10, i))).collect();
    let group = OneGroup(tied);
    let member = |o: &Outcome| o.frame[5];
    let mut label_differs = 0;
    for i in 0..32u16 {
        let client = Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 100 + i);
        let id = 0x1000 + u32::from(i);
        let whole = FrameBuilder::udp(client, ANY, 5000 + i, 53, b"whole").build();
        let whole = classify(&whole, EDGE, &group);
        let mut first = FrameBuilder::udp(client, ANY, 5000 + i, 53, b"first");
        first.flow_label = 0x100 + u32::from(i);
        first.ext = vec![Ext::Fragment {
            offset: 0,
            more: true,
            id,
        }];
        let first = classify(&first.build(), EDGE, &group);
        assert_eq!(member(&first), member(&whole), "variant {i}");
        let key = FragmentKey {
            group_id: 7,
            src: client.octets(),
            dst: ANY.octets(),
            id,
        };
        assert_eq!(first.fragment, Some((key, u32::from(member(&first)))));
        assert_eq!(whole.fragment, None);

        let mut later = FrameBuilder::new(
            client,
            ANY,
            L4::Raw {
                proto: wire::IPPROTO_UDP,
                bytes: vec![9; 16],
            },
        );
        later.flow_label = 0x900 + u32::from(i);
        later.ext = vec![Ext::Fragment {
            offset: 3,
            more: false,
            id,
        }];
        let later = later.build();
        let entry = FragmentEntry {
            member_id: u32::from(member(&first)),
            _pad: 0,
            first_ns: 1_000,
        };
        let cfg = |e: FragmentEntry, now| Fragments(OneGroup(group.0.clone()), Some((key, e)), now);
        let o = classify(&later, EDGE, &cfg(entry, 1_000 + FRAGMENT_TIMEOUT_NS));
        assert_eq!(member(&o), member(&first), "variant {i}");
        assert_eq!((o.fragment, o.flow), (None, None));
        // No entry, an expired one, one on a member gone down: the label.
        let mut by_label = FrameBuilder::new(
            client,
            ANY,
            L4::Raw {
                proto: 253,
                bytes: vec![1; 8],
            },
        );
        by_label.flow_label = 0x900 + u32::from(i);
        let by_label = member(&classify(&by_label.build(), EDGE, &group));
        assert_eq!(member(&classify(&later, EDGE, &group)), by_label);
        let expired = cfg(entry, 1_001 + FRAGMENT_TIMEOUT_NS);
        assert_eq!(member(&classify(&later, EDGE, &expired)), by_label);
        let mut down = cfg(entry, 1_000);
        for (id, m) in &mut down.0.0 {
            if *id == entry.member_id {
                m.up = MemberState::Down as u8;
            }
        }
        let o = classify(&later, EDGE, &down);
        assert_ne!(member(&o), member(&first));
        label_differs += usize::from(by_label != member(&first));
    }
    // Four tied members: the label picks another member most of the time,
    // so following the entry is what kept the datagram together.
    assert!(label_differs >= 12, "{label_differs} of 32");
}
