//! Runs of one datagram's fragments, for the fuzzer: the program and the
//! model must agree on the fragment table (RFC 8200 4.5: the fragments of
//! a datagram share source, destination and Identification; only the first
//! carries the upper-layer header), which a run of unrelated frames would
//! almost never exercise.

use std::net::Ipv6Addr;

use anycast_common::{
    frame::{Ext, FrameBuilder, L4},
    model::Outcome,
    wire,
};

use super::{ANY, ProgramUnderTest, Rng};

/// The fragments of one datagram from one of a few clients to the anycast
/// address: sometimes an unfragmented packet of its flow first, then the
/// first fragment (UDP, TCP, an echo request, or a protocol without ports)
/// and one to three later ones, each with a flow label of its own;
/// sometimes a later one comes first, sometimes one of another
/// Identification (of a datagram whose first fragment was not seen, or of
/// an earlier run: clients and Identifications repeat, so entries are
/// found, replaced and outlived by their member's flow).
pub(super) fn datagram(r: &mut Rng) -> Vec<Vec<u8>> {
    let client =
        Ipv6Addr::from(0x2001_0db8_000c_0000_0000_0000_0000_0000u128 | u128::from(r.below(6)));
    let id = if r.chance(50) {
        r.below(4) as u32
    } else {
        r.next_u64() as u32
    };
    let sport = 40_000 + r.below(4) as u16;
    let l4 = |r: &mut Rng| -> L4 {
        let payload = vec![0x5a; 8 + r.below(32) as usize];
        match r.below(4) {
            0 => L4::Tcp {
                sport,
                dport: 443,
                flags: 0x18,
                payload,
            },
            1 => L4::Icmpv6 {
                ty: 128,
                code: 0,
                body: payload,
            },
            2 => L4::Raw {
                proto: 253,
                bytes: payload,
            },
            _ => L4::Udp {
                sport,
                dport: 53,
                payload,
            },
        }
    };
    let proto_of = |l4: &L4| match l4 {
        L4::Tcp { .. } => wire::IPPROTO_TCP,
        L4::Icmpv6 { .. } => wire::IPPROTO_ICMPV6,
        L4::Raw { proto, .. } => *proto,
        _ => wire::IPPROTO_UDP,
    };
    let label = |r: &mut Rng| r.next_u64() as u32 & 0xf_ffff;
    let first_l4 = l4(r);
    let proto = proto_of(&first_l4);
    let mut frames = Vec::new();
    if r.chance(30) {
        let mut whole = FrameBuilder::new(client, ANY, first_l4.clone());
        whole.flow_label = label(r);
        frames.push(whole.build());
    }
    let mut first = FrameBuilder::new(client, ANY, first_l4);
    first.flow_label = label(r);
    first.ext = vec![Ext::Fragment {
        offset: 0,
        more: true,
        id,
    }];
    if r.chance(20) {
        // Behind another header: the walk finds it there too.
        first.ext.insert(0, Ext::DestOpts(r.below(2) as u8));
    }
    frames.push(first.build());
    let later = 1 + r.below(3) as u16;
    for n in 0..later {
        let mut b = FrameBuilder::new(
            client,
            ANY,
            L4::Raw {
                proto,
                bytes: vec![0x77; 8 + r.below(24) as usize],
            },
        );
        b.flow_label = label(r);
        b.ext = vec![Ext::Fragment {
            offset: 4 + 4 * n,
            more: n + 1 < later,
            id: if r.chance(10) { id ^ 1 } else { id },
        }];
        frames.push(b.build());
    }
    if r.chance(25) {
        // Out of order: a later fragment before its first.
        let last = frames.len() - 1;
        let to = frames.len() - 1 - later as usize;
        frames.swap(last, to);
    }
    frames
}

/// Whether the program's fragment table holds the entry the model says
/// the frame it just ran wrote; `Some` says how it differs.
pub(super) fn fragment_disagreement(p: &ProgramUnderTest, model: &Outcome) -> Option<String> {
    let (key, member) = model.fragment?;
    let got = p.fragment_entry(&key).map(|e| e.member_id);
    (got != Some(member))
        .then(|| format!("fragment table: program {got:?}, model member {member} for {key:?}"))
}
