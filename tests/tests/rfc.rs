//! What the RFCs say a router, and so the anycast redirector, does with a
//! packet: a table of cases written from the RFC text, not from the code.
//!
//! Each row cites the section it comes from and states its rule; its
//! frames are built as the RFC describes them (field by field, with
//! `FrameBuilder`), and its expectation is what the section requires of a
//! router that forwards to the anycast group's members: passed to the
//! kernel or dropped (with the counter that says why), redirected, or
//! redirected to one member for all the frames of a variant (a flow, a
//! datagram, an error and the flow it quotes). Every frame also runs
//! through `ProgramUnderTest::check`, so the reference model is held to
//! the same answers, byte for byte and counter for counter.
//!
//! The group has four members tied at the nearest metric, so a frame that
//! goes by another key than its flow's lands on another member three times
//! in four; each row runs [`VARIANTS`] variants (other clients, ports,
//! identifiers, labels), so a wrong key cannot pass by chance.

use std::net::Ipv6Addr;

use anycast_common::{
    IfaceRole, SourceAction,
    frame::{Ext, FrameBuilder, L4, icmpv6_error},
    model::Verdict,
    wire,
};
use anycast_tests::{prog::ProgramUnderTest, require_root};
use anyhow::{Result, ensure};

#[path = "rfc/fragments.rs"]
mod fragments;

/// The anycast address of group `dns`.
const ANY: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 0x53);
/// A router on the way that reports errors.
const ROUTER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x9, 0, 0, 0, 0, 1);
/// A member interface's host that is no member.
const STRANGER_MAC: [u8; 6] = [0x02, 0xee, 0, 0, 0, 0x66];
/// Variants of each row.
const VARIANTS: u16 = 16;

/// Client `i`: a global unicast address (2001:db8:c::/64).
fn client(i: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, i + 1)
}

/// A 20-bit flow label that differs with `i` and `salt`.
fn label(i: u16, salt: u32) -> u32 {
    (u32::from(i) * 0x9e37 + salt * 0x3_1337) & 0xf_ffff
}

/// What a row expects of the program.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// Every frame passed to the kernel untouched, ending in this global counter.
    Pass(&'static str),
    /// Every frame dropped, ending in this global counter.
    Drop(&'static str),
    /// Every frame redirected to a member.
    Redirect,
    /// Every frame of a variant redirected, all to one member.
    OneMember,
    /// Every frame of a variant redirected, frame `n` to the member that
    /// frame `self.0[n]` went to.
    SameAs(&'static [usize]),
}

/// One row of the table.
struct Case {
    /// The section the rule comes from.
    cite: &'static str,
    /// The rule, as the RFC states it (or what follows from it).
    rule: &'static str,
    /// The interfaces (role and source action) the row holds on.
    on: &'static [(IfaceRole, SourceAction)],
    /// The frames of variant `i`, sent in order.
    frames: fn(u16) -> Vec<Vec<u8>>,
    /// What the program does with them.
    want: Want,
    /// Global counters and how much each moves over one variant's frames.
    counters: &'static [(&'static str, u64)],
}

const EDGE: (IfaceRole, SourceAction) = (IfaceRole::Edge, SourceAction::Drop);
const MEMBER: (IfaceRole, SourceAction) = (IfaceRole::Member, SourceAction::Drop);
const MONITOR: (IfaceRole, SourceAction) = (IfaceRole::Edge, SourceAction::Count);
const EVERY_ROLE: &[(IfaceRole, SourceAction)] = &[EDGE, MEMBER, MONITOR];

/// A UDP query from `src` to the anycast address.
fn query_from(src: Ipv6Addr, i: u16) -> FrameBuilder {
    let mut b = FrameBuilder::udp(src, ANY, 40_000 + i, 53, b"query");
    b.flow_label = label(i, 1);
    b
}

/// ICMPv6 of type `ty` from `src` to the anycast address, with hop limit `hop`.
fn icmp(src: Ipv6Addr, ty: u8, body: Vec<u8>, hop: u8) -> Vec<u8> {
    let mut b = FrameBuilder::new(src, ANY, L4::Icmpv6 { ty, code: 0, body });
    b.hop_limit = hop;
    b.build()
}

/// A Neighbor Solicitation or Advertisement body (RFC 4861 4.3, 4.4):
/// reserved (or flags), then the target address, the anycast address.
fn nd_body() -> Vec<u8> {
    let mut body = vec![0; 4];
    body.extend_from_slice(&ANY.octets());
    body
}

/// The member's reply to client `i`'s query, as it left the member.
fn reply(i: u16) -> FrameBuilder {
    let mut b = FrameBuilder::udp(ANY, client(i), 53, 40_000 + i, &[0x5a; 64]);
    b.flow_label = label(i, 2);
    b
}

/// An ICMPv6 error of type `ty` from a router to the anycast address,
/// quoting `quoted` (a frame; its first `cut` bytes after Ethernet, all
/// when `None`).
fn error(ty: u8, quoted: &[u8], cut: Option<usize>) -> Vec<u8> {
    FrameBuilder::new(ROUTER, ANY, icmpv6_error(ty, quoted, cut)).build()
}

/// An ICMPv6 Echo Request (RFC 4443 4.1) from client `i` to the anycast
/// address: identifier, sequence number, data.
fn echo_request(i: u16, seq: u16, data_len: usize) -> FrameBuilder {
    let mut body = (0x1000 + i).to_be_bytes().to_vec();
    body.extend_from_slice(&seq.to_be_bytes());
    body.resize(4 + data_len, 0xec);
    let mut b = FrameBuilder::new(
        client(i),
        ANY,
        L4::Icmpv6 {
            ty: 128,
            code: 0,
            body,
        },
    );
    b.flow_label = label(i, 3);
    b
}

/// A packet of a protocol whose header starts with the source and
/// destination ports (DCCP, UDP-Lite): client `i`'s connection, sent with
/// flow label `lab`.
fn ports_first(proto: u8, i: u16, lab: u32) -> Vec<u8> {
    let mut bytes = (50_000 + i).to_be_bytes().to_vec();
    bytes.extend_from_slice(&5001u16.to_be_bytes());
    bytes.resize(24, 0x11);
    let mut b = FrameBuilder::new(client(i), ANY, L4::Raw { proto, bytes });
    b.flow_label = lab;
    b.build()
}

/// IPv6 in IPv6 from `outer` whose inner source is the anycast address,
/// behind `ext` in the outer header.
fn tunnelled_anycast_source(outer: Ipv6Addr, ext: Vec<Ext>) -> Vec<u8> {
    let inner = FrameBuilder::udp(ANY, client(0), 53, 40_000, b"forged").build();
    let mut b = FrameBuilder::new(
        outer,
        client(1),
        L4::Raw {
            proto: wire::IPPROTO_IPV6,
            bytes: inner[14..].to_vec(),
        },
    );
    b.ext = ext;
    b.src_mac = STRANGER_MAC;
    b.build()
}

fn table() -> Vec<Case> {
    vec![
        // Item 1: sources no router forwards.
        Case {
            cite: "RFC 4291 2.5.2",
            rule: "An IPv6 packet with a source address of unspecified must never be forwarded by an IPv6 router.",
            on: EVERY_ROLE,
            frames: |i| vec![query_from(Ipv6Addr::UNSPECIFIED, i).build()],
            want: Want::Drop("invalid_source_drops"),
            counters: &[("invalid_source_drops", 1), ("redirected", 0)],
        },
        Case {
            cite: "RFC 4291 2.5.3",
            rule: "The loopback address must not be used as the source address in IPv6 packets that are sent outside of a single node ... must never be forwarded by an IPv6 router.",
            on: EVERY_ROLE,
            frames: |i| vec![query_from(Ipv6Addr::LOCALHOST, i).build()],
            want: Want::Drop("invalid_source_drops"),
            counters: &[("invalid_source_drops", 1)],
        },
        Case {
            cite: "RFC 4291 2.7",
            rule: "Multicast addresses must not be used as source addresses in IPv6 packets.",
            on: EVERY_ROLE,
            frames: |i| {
                let scope = [0x2u16, 0xe, 0x5, 0x8][usize::from(i % 4)];
                let src = Ipv6Addr::new(0xff00 | scope, 0, 0, 0, 0, 0, 0, 1 + i);
                vec![query_from(src, i).build()]
            },
            want: Want::Drop("invalid_source_drops"),
            counters: &[("invalid_source_drops", 1)],
        },
        Case {
            cite: "RFC 6890 2.2.3 (IPv4-mapped Address: Forwardable False), RFC 4291 2.5.5.2",
            rule: "::ffff:0:0/96 is not forwardable: it only stands for an IPv4 node inside a dual-stack host.",
            on: EVERY_ROLE,
            frames: |i| {
                let src = Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0xc000, 0x200 + i);
                vec![query_from(src, i).build()]
            },
            want: Want::Drop("invalid_source_drops"),
            counters: &[("invalid_source_drops", 1)],
        },
        Case {
            cite: "RFC 3879 4",
            rule: "Site-local (fec0::/10) is deprecated: router implementations SHOULD be configured to prevent routing of this prefix by default.",
            on: EVERY_ROLE,
            frames: |i| vec![query_from(Ipv6Addr::new(0xfec0, 0, 0, i, 0, 0, 0, 1), i).build()],
            want: Want::Drop("invalid_source_drops"),
            counters: &[("invalid_source_drops", 1)],
        },
        Case {
            cite: "RFC 4291 2.5.6, RFC 4443 3.1 (code 2)",
            rule: "Routers must not forward any packets with Link-Local source addresses to other links: the kernel delivers one to an address of its own, or discards it with a Destination Unreachable (beyond scope of source address).",
            on: EVERY_ROLE,
            frames: |i| vec![query_from(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1 + i), i).build()],
            want: Want::Pass("link_scope_passed"),
            counters: &[("link_scope_passed", 1), ("redirected", 0)],
        },
        Case {
            cite: "RFC 4291 2.5.4 (global unicast)",
            rule: "A global unicast source is forwarded: the rules above take nothing else.",
            on: EVERY_ROLE,
            frames: |i| vec![query_from(client(i), i).build()],
            want: Want::Redirect,
            counters: &[("invalid_source_drops", 0), ("link_scope_passed", 0)],
        },
        // Item 2: Neighbor Discovery and other link-scoped ICMPv6.
        Case {
            cite: "RFC 4861 7.1.1",
            rule: "A node MUST silently discard a Neighbor Solicitation whose IP Hop Limit is not 255: the router's kernel answers it (its hop limit 255 shows it never crossed a router), a member would discard it.",
            on: EVERY_ROLE,
            frames: |i| {
                vec![
                    icmp(
                        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1 + i),
                        135,
                        nd_body(),
                        255,
                    ),
                    icmp(client(i), 135, nd_body(), 255),
                ]
            },
            want: Want::Pass("link_scope_passed"),
            counters: &[("link_scope_passed", 2), ("redirected", 0)],
        },
        Case {
            cite: "RFC 4861 7.1.2",
            rule: "A node MUST silently discard a Neighbor Advertisement whose IP Hop Limit is not 255.",
            on: EVERY_ROLE,
            frames: |i| vec![icmp(client(i), 136, nd_body(), 255)],
            want: Want::Pass("link_scope_passed"),
            counters: &[("link_scope_passed", 1)],
        },
        Case {
            cite: "RFC 4861 6.1.1, 6.1.2, 8.1",
            rule: "Router Solicitations, Router Advertisements and Redirects are valid only with IP Hop Limit 255 (and, for the last two, a link-local source): link-scoped.",
            on: &[EDGE, MEMBER],
            frames: |i| {
                let ty = [133u8, 134, 137][usize::from(i % 3)];
                vec![icmp(client(i), ty, vec![0; 12], 255)]
            },
            want: Want::Pass("link_scope_passed"),
            counters: &[("link_scope_passed", 1)],
        },
        Case {
            cite: "RFC 2710 3, RFC 3810 5, RFC 4286 3",
            rule: "MLD queries, reports and done messages, MLDv2 reports and Multicast Router Discovery are sent with a link-local source and hop limit 1: they never leave the link.",
            on: &[EDGE, MEMBER],
            frames: |i| {
                let ty = [130u8, 131, 132, 143, 151, 152, 153][usize::from(i % 7)];
                let mut b = FrameBuilder::new(
                    client(i),
                    ANY,
                    L4::Icmpv6 {
                        ty,
                        code: 0,
                        body: vec![0; 20],
                    },
                );
                b.ext = vec![Ext::HopByHop(0)];
                vec![b.build()]
            },
            want: Want::Pass("link_scope_passed"),
            counters: &[("link_scope_passed", 1)],
        },
        Case {
            cite: "RFC 3122 3.1, 3.2, RFC 3971 6.4.1, 6.4.2",
            rule: "Inverse Neighbor Discovery and SEND certification path messages are valid only with IP Hop Limit 255: link-scoped.",
            on: &[EDGE],
            frames: |i| {
                let ty = [141u8, 142, 148, 149][usize::from(i % 4)];
                vec![icmp(client(i), ty, vec![0; 12], 255)]
            },
            want: Want::Pass("link_scope_passed"),
            counters: &[("link_scope_passed", 1)],
        },
        Case {
            cite: "RFC 4443 4.1",
            rule: "An Echo Request is no link-scoped message: it is forwarded.",
            on: &[EDGE],
            frames: |i| vec![echo_request(i, 1, 8).build()],
            want: Want::Redirect,
            counters: &[("link_scope_passed", 0)],
        },
        // Item 3: payload length 0, and the inner source of a tunnel.
        Case {
            cite: "RFC 8200 3 (Payload Length), RFC 2675 3",
            rule: "Payload length 0 is an empty payload unless a Hop-by-Hop Options header follows (a jumbogram): a packet with next header 59 (No Next Header) and payload length 0 is valid, and its anycast source meets the source rule.",
            on: &[EDGE],
            frames: |_| {
                let b = FrameBuilder::new(
                    ANY,
                    client(0),
                    L4::Raw {
                        proto: wire::IPPROTO_NONE,
                        bytes: vec![],
                    },
                );
                vec![b.build()]
            },
            want: Want::Drop("anycast_source_drops"),
            counters: &[("anycast_source_drops", 1), ("malformed_passed", 0)],
        },
        Case {
            cite: "RFC 8200 3 (Payload Length), RFC 2675 3",
            rule: "The same on a member interface, from a host that is no member: a spoof.",
            on: &[MEMBER],
            frames: |_| {
                let mut b = FrameBuilder::new(
                    ANY,
                    client(0),
                    L4::Raw {
                        proto: wire::IPPROTO_NONE,
                        bytes: vec![],
                    },
                );
                b.src_mac = STRANGER_MAC;
                vec![b.build()]
            },
            want: Want::Drop("spoof_drops"),
            counters: &[("spoof_drops", 1)],
        },
        Case {
            cite: "RFC 8200 3, 4.7 (No Next Header)",
            rule: "An empty packet (payload length 0, next header 59) to the anycast address is a packet like any other: forwarded.",
            on: &[EDGE],
            frames: |i| {
                let mut b = FrameBuilder::new(
                    client(i),
                    ANY,
                    L4::Raw {
                        proto: wire::IPPROTO_NONE,
                        bytes: vec![],
                    },
                );
                b.flow_label = label(i, 4);
                vec![b.build()]
            },
            want: Want::Redirect,
            counters: &[("malformed_passed", 0)],
        },
        Case {
            cite: "RFC 2675 3",
            rule: "Payload length 0 followed by a Hop-by-Hop Options header is a jumbogram (Jumbo Payload option): the kernel judges it.",
            on: &[EDGE],
            frames: |_| {
                let mut b = FrameBuilder::udp(ANY, client(0), 53, 40_000, b"answer");
                b.ext = vec![Ext::HopByHop(0)];
                b.payload_len_override = Some(0);
                vec![b.build()]
            },
            want: Want::Pass("malformed_passed"),
            counters: &[("malformed_passed", 1)],
        },
        Case {
            cite: "RFC 2473 4.1.1, 5.1; RFC 8200 4.5",
            rule: "A tunnel packet may carry a Destination Options header (the Tunnel Encapsulation Limit option) or a Fragment header before the inner header: the inner source is found behind them, and an anycast inner source from a host that is no member is a spoof.",
            on: &[MEMBER],
            frames: |_| {
                let outer: Ipv6Addr = "2001:db8:e::66".parse().expect("address");
                vec![
                    tunnelled_anycast_source(outer, vec![Ext::TunnelEncapLimit(4)]),
                    tunnelled_anycast_source(
                        outer,
                        vec![Ext::Fragment {
                            offset: 0,
                            more: false,
                            id: 5,
                        }],
                    ),
                ]
            },
            want: Want::Drop("spoof_drops"),
            counters: &[("spoof_drops", 2), ("unicast_passed", 0)],
        },
        // Item 5: atomic fragments are whole packets.
        Case {
            cite: "RFC 6946 4, RFC 8200 4.5",
            rule: "A packet with a Fragment header whose offset is 0 and whose M flag is clear (an atomic fragment) is a whole packet, processed as one: a query sent once without and once with such a header (and another flow label) is one flow.",
            on: &[EDGE, MEMBER],
            frames: |i| {
                let plain = query_from(client(i), i).build();
                let mut atomic = query_from(client(i), i);
                atomic.flow_label = label(i, 6);
                atomic.ext = vec![Ext::Fragment {
                    offset: 0,
                    more: false,
                    id: 0x300 + u32::from(i),
                }];
                let mut behind = query_from(client(i), i);
                behind.flow_label = label(i, 7);
                behind.ext = vec![
                    Ext::DestOpts(0),
                    Ext::Fragment {
                        offset: 0,
                        more: false,
                        id: 0x400 + u32::from(i),
                    },
                ];
                vec![plain, atomic.build(), behind.build()]
            },
            want: Want::OneMember,
            counters: &[("flow_misses", 1), ("flow_hits", 2)],
        },
        // Item 5: a datagram's fragments follow its first one.
        fragments::A_DATAGRAMS_FRAGMENTS,
        fragments::A_LATER_FRAGMENT_ALONE,
        fragments::TWO_DATAGRAMS,
        // Item 6: only a first fragment has an upper-layer header.
        Case {
            cite: "RFC 8200 4.5",
            rule: "Only the first fragment (offset 0) carries the upper-layer header; a later fragment carries data, even when that data looks like an ICMPv6 error: the fragments of one echo request are one datagram, for one member, and no error.",
            on: &[EDGE],
            frames: |i| {
                let mut first = echo_request(i, 1, 64);
                first.ext = vec![Ext::Fragment {
                    offset: 0,
                    more: true,
                    id: 0x100 + u32::from(i),
                }];
                let first = first.build();
                // Data of the echo request's second half that happens to
                // read as a Destination Unreachable quoting another flow.
                let other = FrameBuilder::udp(ANY, client(i + 100), 53, 7, b"x").build();
                let mut data = vec![1, 0, 0, 0, 0, 0, 0, 0];
                data.extend_from_slice(&other[14..]);
                let mut rest = echo_request(i, 1, 0);
                rest.l4 = L4::Raw {
                    proto: wire::IPPROTO_ICMPV6,
                    bytes: data,
                };
                rest.ext = vec![Ext::Fragment {
                    offset: 9,
                    more: false,
                    id: 0x100 + u32::from(i),
                }];
                vec![first, rest.build()]
            },
            want: Want::OneMember,
            counters: &[("icmp_errors_steered", 0), ("redirected", 2)],
        },
        // Item 7: IPsec.
        Case {
            cite: "RFC 4301 4.1, RFC 4303 2.1, RFC 7296 2, RFC 3948 2.2",
            rule: "A security association's keys live at one end: its ESP packets (whatever their flow label: Linux copies each inner flow's), the client's other associations with the same address, and the IKE exchange (UDP port 500, then 4500 behind NAT) that made them, reach one member.",
            on: &[EDGE, MEMBER],
            frames: |i| {
                let ike = |sport: u16, dport: u16, lab: u32| {
                    let mut b = FrameBuilder::udp(client(i), ANY, sport, dport, b"ike");
                    b.flow_label = lab;
                    b.build()
                };
                let esp = |spi: u32, lab: u32| {
                    let mut bytes = spi.to_be_bytes().to_vec();
                    bytes.extend_from_slice(&[0, 0, 0, 1]);
                    bytes.resize(40, 0xe5);
                    let mut b = FrameBuilder::new(
                        client(i),
                        ANY,
                        L4::Raw {
                            proto: wire::IPPROTO_ESP,
                            bytes,
                        },
                    );
                    b.flow_label = lab;
                    b.build()
                };
                vec![
                    ike(500, 500, label(i, 30)),
                    ike(4500, 4500, label(i, 31)),
                    ike(40_000 + i, 4500, label(i, 32)),
                    esp(0x1000 + u32::from(i), label(i, 33)),
                    esp(0x1000 + u32::from(i), label(i, 34)),
                    esp(0x2000 + u32::from(i), label(i, 35)),
                ]
            },
            want: Want::OneMember,
            counters: &[("flow_misses", 1), ("flow_hits", 5)],
        },
        Case {
            cite: "RFC 4302 3.1.1, RFC 4301 4.1",
            rule: "An Authentication Header after the IPv6 header protects the packet for one association: its packets, whatever their ports, and the client's ESP, reach one member.",
            on: &[EDGE],
            frames: |i| {
                let mut frames = Vec::new();
                for (n, port) in [443u16, 80, 40_000 + i].into_iter().enumerate() {
                    let mut b = FrameBuilder::tcp(client(i), ANY, 50_000 + i, port, 0x10);
                    b.ext = vec![Ext::Ah(1)];
                    b.flow_label = label(i, 40 + n as u32);
                    frames.push(b.build());
                }
                let mut b = FrameBuilder::new(
                    client(i),
                    ANY,
                    L4::Raw {
                        proto: wire::IPPROTO_ESP,
                        bytes: vec![0, 0, 0x30, 1, 0, 0, 0, 1, 0xe5, 0xe5],
                    },
                );
                b.flow_label = label(i, 36);
                frames.push(b.build());
                frames
            },
            want: Want::OneMember,
            counters: &[("flow_misses", 1), ("flow_hits", 3)],
        },
        Case {
            cite: "RFC 4443 3.2, RFC 4301 6.1.2.1",
            rule: "A Packet Too Big quoting a member's ESP packet (path MTU discovery through the tunnel) reaches the member that holds the association.",
            on: &[EDGE],
            frames: |i| {
                let esp = |src, dst, lab| {
                    let mut b = FrameBuilder::new(
                        src,
                        dst,
                        L4::Raw {
                            proto: wire::IPPROTO_ESP,
                            bytes: vec![0, 0, 0x40, 2, 0, 0, 0, 9, 0xe5, 0xe5, 0xe5, 0xe5],
                        },
                    );
                    b.flow_label = lab;
                    b.build()
                };
                vec![
                    esp(client(i), ANY, label(i, 37)),
                    error(2, &esp(ANY, client(i), label(i, 38)), None),
                ]
            },
            want: Want::OneMember,
            counters: &[("icmp_errors_steered", 1), ("flow_entries_created", 1)],
        },
        // Item 8: DCCP and UDP-Lite have ports.
        Case {
            cite: "RFC 4340 5.1",
            rule: "DCCP's generic header starts with the source and destination ports: packets of one connection (same addresses and ports) are one flow, whatever their flow label.",
            on: &[EDGE],
            frames: |i| {
                (0..3)
                    .map(|n| ports_first(33, i, label(i, 10 + n)))
                    .collect()
            },
            want: Want::OneMember,
            counters: &[("flow_misses", 1), ("flow_hits", 2)],
        },
        Case {
            cite: "RFC 3828 3.1",
            rule: "UDP-Lite's header starts with the source and destination ports, as UDP's: one flow per address and port pair.",
            on: &[EDGE],
            frames: |i| {
                (0..3)
                    .map(|n| ports_first(136, i, label(i, 20 + n)))
                    .collect()
            },
            want: Want::OneMember,
            counters: &[("flow_misses", 1), ("flow_hits", 2)],
        },
        // Item 9: ICMPv6 errors.
        Case {
            cite: "RFC 4443 2.1, 2.4 (a)",
            rule: "Types 0 to 127 are error messages; an error of unknown type MUST be passed to the upper-layer process that originated the packet that caused it: it reaches the member whose flow it quotes, and creates no flow entry.",
            on: &[EDGE],
            frames: |i| {
                let ty = [5u8, 100, 127][usize::from(i % 3)];
                vec![
                    query_from(client(i), i).build(),
                    error(ty, &reply(i).build(), None),
                ]
            },
            want: Want::OneMember,
            counters: &[("icmp_errors_steered", 1), ("flow_entries_created", 1)],
        },
        Case {
            cite: "RFC 4443 3.2, 4.2",
            rule: "An Echo Reply carries the Identifier of the Echo Request it answers: a Packet Too Big quoting a member's Echo Reply reaches the member that took the request, whatever the reply's flow label.",
            on: &[EDGE],
            frames: |i| {
                let request = echo_request(i, 1, 8);
                let mut answer = request.clone();
                std::mem::swap(&mut answer.src, &mut answer.dst);
                answer.flow_label = label(i, 5);
                if let L4::Icmpv6 { ty, .. } = &mut answer.l4 {
                    *ty = 129;
                }
                vec![request.build(), error(2, &answer.build(), None)]
            },
            want: Want::OneMember,
            counters: &[("icmp_errors_steered", 1)],
        },
        Case {
            cite: "RFC 4443 2.4 (c), RFC 8200 4.5",
            rule: "An error quotes as much of the offending packet as fits; when that packet was the first fragment of a member's reply, its ports follow the Fragment header: the error reaches the member of the flow.",
            on: &[EDGE],
            frames: |i| {
                let mut answer = reply(i);
                answer.ext = vec![Ext::Fragment {
                    offset: 0,
                    more: true,
                    id: 0x200 + u32::from(i),
                }];
                vec![
                    query_from(client(i), i).build(),
                    error(2, &answer.build(), None),
                ]
            },
            want: Want::OneMember,
            counters: &[("icmp_errors_steered", 1)],
        },
        Case {
            cite: "RFC 4443 2.4 (c), (d)",
            rule: "An error whose quote is shorter than the offending packet's IPv6 header names no flow (where the originating process cannot be identified, the error is discarded at its destination): no member can be chosen for it, the kernel gets it.",
            on: &[EDGE],
            frames: |i| {
                let cut = usize::from(i % 40);
                vec![error(1 + (i % 4) as u8, &reply(i).build(), Some(cut))]
            },
            want: Want::Pass("icmp_errors_passed"),
            counters: &[("icmp_errors_passed", 1), ("redirected", 0)],
        },
    ]
}

/// The program with group `dns` (the anycast address) and four on-link
/// members tied at metric 10.
fn target(role: IfaceRole, action: SourceAction) -> Result<ProgramUnderTest> {
    require_root()?;
    let mut p = ProgramUnderTest::load(role, action)?;
    p.add(&ANY.to_string(), "dns")?;
    for m in 1..=4u8 {
        p.add_l2_member("dns", &format!("m{m}"), [0x02, 0xbb, 0, 0, 0, m], 10)?;
    }
    Ok(p)
}

/// Runs one row on one interface kind: every variant, every frame through
/// `check` (the model agrees), then the row's expectation.
fn run(case: &Case, role: IfaceRole, action: SourceAction) -> Result<()> {
    let p = target(role, action)?;
    for i in 0..VARIANTS {
        let row = format!(
            "{} ({role:?}/{action:?}, variant {i}): {}",
            case.cite, case.rule
        );
        let before = p.stats()?;
        let mut members = Vec::new();
        for (n, frame) in (case.frames)(i).iter().enumerate() {
            let out = p.check(frame)?;
            let what = format!("{row}\nframe {n}: {:?} ({})", out.verdict, out.stat.name());
            match case.want {
                Want::Pass(stat) => {
                    ensure!(
                        out.verdict == Verdict::Pass && out.stat.name() == stat,
                        "{what}"
                    );
                    ensure!(out.frame == *frame, "{what}: changed");
                }
                Want::Drop(stat) => {
                    ensure!(
                        out.verdict == Verdict::Drop && out.stat.name() == stat,
                        "{what}"
                    );
                }
                Want::Redirect | Want::OneMember | Want::SameAs(_) => {
                    ensure!(matches!(out.verdict, Verdict::Redirect(_)), "{what}");
                    members.push(out.frame[..6].to_vec());
                }
            }
        }
        if let Want::OneMember = case.want {
            ensure!(
                members.windows(2).all(|w| w[0] == w[1]),
                "{row}\nmembers (destination MACs) of the frames: {members:02x?}"
            );
        }
        if let Want::SameAs(like) = case.want {
            ensure!(
                like.len() == members.len()
                    && like
                        .iter()
                        .enumerate()
                        .all(|(n, &m)| members[n] == members[m]),
                "{row}\nmembers (destination MACs) of the frames: {members:02x?}, \
                 want frame n on the member of frame {like:?}[n]"
            );
        }
        let after = p.stats()?;
        for &(name, n) in case.counters {
            let moved = after.global.get(name).copied().unwrap_or(0)
                - before.global.get(name).copied().unwrap_or(0);
            ensure!(moved == n, "{row}\n{name} moved by {moved}, not {n}");
        }
    }
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn every_rfc_derived_case_holds_on_every_interface_it_names() -> Result<()> {
    let mut failed = Vec::new();
    for case in table() {
        for &(role, action) in case.on {
            // `check` asserts (panics) where the program and the model
            // disagree: caught, so that every failing row is listed.
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&case, role, action)));
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failed.push(format!("{e:#}")),
                Err(panic) => failed.push(format!(
                    "{} ({role:?}/{action:?}): {}\n{}",
                    case.cite,
                    case.rule,
                    panic
                        .downcast_ref::<String>()
                        .map_or("(a panic)", String::as_str)
                )),
            }
        }
    }
    ensure!(
        failed.is_empty(),
        "{} of the RFC-derived cases fail:\n\n{}",
        failed.len(),
        failed.join("\n\n")
    );
    Ok(())
}
