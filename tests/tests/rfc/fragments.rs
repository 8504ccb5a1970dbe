//! Rows of the RFC table on fragments (RFC 8200 4.5): the fragments of one
//! datagram share source, destination and Identification, only the first
//! carries the upper-layer header, and one destination reassembles them
//! all; so they reach one member, the one the datagram's flow is on.

use super::*;

/// Client `i`'s UDP query from port `sport` (flow label `lab`) as the first
/// fragment (offset 0, M set) of datagram `id`.
fn first_fragment(i: u16, sport: u16, lab: u32, id: u32) -> Vec<u8> {
    let mut b = FrameBuilder::udp(client(i), ANY, sport, 53, b"first half");
    b.flow_label = lab;
    b.ext = vec![Ext::Fragment {
        offset: 0,
        more: true,
        id,
    }];
    b.build()
}

/// A later fragment (at 8-octet `offset`, M as `more`) of client `i`'s UDP
/// datagram `id`, with flow label `lab`: data, no header.
fn later_fragment(i: u16, offset: u16, more: bool, lab: u32, id: u32) -> Vec<u8> {
    let mut b = FrameBuilder::new(
        client(i),
        ANY,
        L4::Raw {
            proto: wire::IPPROTO_UDP,
            bytes: vec![0x77; 16],
        },
    );
    b.flow_label = lab;
    b.ext = vec![Ext::Fragment { offset, more, id }];
    b.build()
}

pub(super) const A_DATAGRAMS_FRAGMENTS: Case = Case {
    cite: "RFC 8200 4.5",
    rule: "The fragments of one datagram (the first with offset 0 and M set, the others with offsets; each with a flow label of its own here) are reassembled by one destination: the first carries the upper-layer header and reaches the member of its flow (an unfragmented packet of the same ports first), and its later fragments follow it.",
    on: &[EDGE, MEMBER],
    frames: |i| {
        let id = 0x500 + u32::from(i);
        vec![
            query_from(client(i), i).build(),
            first_fragment(i, 40_000 + i, label(i, 8), id),
            later_fragment(i, 2, true, label(i, 9), id),
            later_fragment(i, 4, false, label(i, 10), id),
        ]
    },
    want: Want::OneMember,
    // The first fragment joins the flow's entry; the later ones make none.
    counters: &[("flow_misses", 1), ("flow_hits", 1), ("redirected", 4)],
};

pub(super) const A_LATER_FRAGMENT_ALONE: Case = Case {
    cite: "RFC 8200 4.5",
    rule: "A fragment with an offset carries no upper-layer header; its source, destination and flow label are all it shares with its flow's other packets: before its datagram's first fragment it goes where a packet of no ports with that label goes, and it makes no flow entry of its own.",
    on: &[EDGE],
    frames: |i| {
        let lab = label(i, 11);
        let mut no_ports = FrameBuilder::new(
            client(i),
            ANY,
            L4::Raw {
                proto: 253,
                bytes: vec![0x42; 16],
            },
        );
        no_ports.flow_label = lab;
        vec![
            later_fragment(i, 3, false, lab, 0x600 + u32::from(i)),
            no_ports.build(),
        ]
    },
    want: Want::OneMember,
    // The packet of no ports is the label's first: no entry was there.
    counters: &[("flow_misses", 1), ("flow_hits", 0), ("redirected", 2)],
};

pub(super) const TWO_DATAGRAMS: Case = Case {
    cite: "RFC 8200 4.5",
    rule: "Two datagrams of two flows of one client, by their Identification: each one's later fragments (all with one flow label) follow its own first fragment, which goes where its flow's unfragmented packets go.",
    on: &[EDGE],
    frames: |i| {
        let (a, b) = (0x700 + u32::from(i), 0x800 + u32::from(i));
        let (pa, pb) = (41_000 + i, 42_000 + i);
        let lab = label(i, 12);
        let whole = |sport| FrameBuilder::udp(client(i), ANY, sport, 53, b"whole").build();
        vec![
            first_fragment(i, pa, label(i, 13), a),
            first_fragment(i, pb, label(i, 14), b),
            later_fragment(i, 5, false, lab, a),
            later_fragment(i, 5, false, lab, b),
            whole(pa),
            whole(pb),
        ]
    },
    want: Want::SameAs(&[0, 1, 0, 1, 0, 1]),
    counters: &[("flow_misses", 2), ("flow_hits", 2), ("redirected", 6)],
};
