//! The fragment table: every fragment of a datagram goes to the member its
//! first fragment went to.
//!
//! Only the first fragment (offset 0) carries the upper-layer header, and
//! so the ports its flow is keyed by; the fragments of one datagram share
//! source, destination and Identification (RFC 8200 4.5), and one
//! destination must get them all to reassemble it. The first fragment is
//! steered as its whole packet would be and writes its member here; a later
//! one follows that entry while it stands. One that finds none (it came
//! before the first, or the entry went) is keyed by its flow label, the
//! only field it shares with its flow's other packets.

use anycast_common::{FRAGMENT_TIMEOUT_NS, FragmentEntry, explain::reached};

use crate::{
    explain,
    flow::{self, Flow},
    maps::FRAGMENTS,
    parse::words,
};

/// Fills `f`'s fragment key: group, the flow's addresses (those of the
/// packet: an ICMPv6 error never gets here), Identification `id`.
#[inline(always)]
fn key(f: &mut Flow, group: u32, id: u32) {
    f.fragment.group_id = group;
    f.fragment.id = id;
    // SAFETY: 16-byte fields of one map value, 4-aligned (asserted in
    // anycast-common).
    unsafe {
        let (src, dst) = (words::load16(&f.key.src), words::load16(&f.key.dst));
        words::store16(&mut f.fragment.src, src);
        words::store16(&mut f.fragment.dst, dst);
    }
}

/// The member the first fragment of the datagram of `f` (Identification
/// `id`) went to, if it went in the last [`FRAGMENT_TIMEOUT_NS`]; 0 if not.
/// The caller checks that the member may still take it.
// Not inlined, as the next: the lookup's paths stay out of the entry
// function's, which the verifier walks once per header chain.
#[inline(never)]
pub(crate) fn first_member(f: &mut Flow, group: u32, id: u32) -> u32 {
    key(f, group, id);
    let Some(e) = FRAGMENTS.get_ptr(&f.fragment) else {
        return 0;
    };
    // SAFETY: a map value pointer, valid during this run.
    let (member, first_ns) = unsafe { ((*e).member_id, (*e).first_ns) };
    explain::note(|t| {
        t.reached |= reached::FRAGMENT;
        t.fragment_member = member;
        t.fragment_first_ns = first_ns;
    });
    // Reassembly is abandoned 60 s after the first fragment (RFC 8200 4.5).
    if flow::now(f).saturating_sub(first_ns) > FRAGMENT_TIMEOUT_NS {
        return 0;
    }
    member
}

/// Writes that the datagram of the first fragment in `f` (Identification
/// `id`) went to `member`, in place of any older entry of its key.
#[inline(never)]
pub(crate) fn note(f: &mut Flow, group: u32, id: u32, member: u32) -> u32 {
    // The explain instance shares the attachment's table: read, never written.
    if explain::on() {
        return 0;
    }
    key(f, group, id);
    let entry = FragmentEntry {
        member_id: member,
        _pad: 0,
        first_ns: flow::now(f),
    };
    u32::from(FRAGMENTS.insert(&f.fragment, &entry, 0).is_ok())
}
