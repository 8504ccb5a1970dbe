//! The explain instance: the same program, loaded by `anycast explain` with
//! the load-time constant [`EXPLAIN`] set, on the live pinned maps.
//!
//! In it every write to shared state is skipped (counters, flow-table
//! refreshes and records, the flow cache, the fragment table, the flood
//! guard's window, the Packet Too Big bucket), and the stages note what
//! they found in the trail ([`EXPLAIN_TRAIL`]) instead, which userspace
//! reads after `BPF_PROG_TEST_RUN`. Every other instance has the constant
//! at 0: the verifier knows it (a frozen `.rodata` value) and removes
//! every branch taken only when explaining, so the data path pays
//! nothing. A leaf, like `verdict`: any stage may note here without
//! calling another stage.

use anycast_common::explain::{ExplainTrail, NO_GROUP_STAT, reached};
use aya_ebpf::Global;

use crate::{
    maps::{EXPLAIN_TRAIL, Flow},
    parse::{Packet, ipv6::Transport},
    verdict::{Final, Target},
};

/// 1 in the explain instance, set by the loader (`anycast_common::explain::EXPLAIN`).
#[unsafe(no_mangle)]
static EXPLAIN: Global<u8> = Global::new(0);

/// Whether this is the explain instance. A volatile read of a frozen
/// constant: the verifier prunes the branch it decides.
#[inline(always)]
pub(crate) fn on() -> bool {
    EXPLAIN.load() != 0
}

/// Lets `f` note something in this run's trail; nothing outside the
/// explain instance.
#[inline(always)]
pub(crate) fn note(f: impl FnOnce(&mut ExplainTrail)) {
    if !on() {
        return;
    }
    if let Some(t) = EXPLAIN_TRAIL.get_ptr_mut(0) {
        // SAFETY: this CPU's slot of the instance's own map, used by this run only.
        f(unsafe { &mut *t });
    }
}

/// The headers classification reads.
#[inline(always)]
pub(crate) fn parsed(p: &Packet) {
    note(|t| {
        t.reached |= reached::PARSED;
        t.l3_off = p.ip.off as u16;
        t.next_header = p.ip.next_header;
        t.hop_limit = p.ip.hop_limit;
        t.flow_label = p.ip.flow_label;
    });
}

/// The upper-layer header the walk reached.
#[inline(always)]
pub(crate) fn transport(tr: &Transport) {
    note(|t| {
        t.reached |= reached::TRANSPORT;
        t.proto = tr.proto;
        t.upper = u8::from(tr.upper);
        t.l4_off = tr.off as u32;
        t.frag_id = tr.frag_id;
    });
}

/// The flow of the packet: its key, hash and kind.
#[inline(always)]
pub(crate) fn flow(f: &Flow) {
    note(|t| {
        t.reached |= reached::FLOW;
        let (d, s) = (
            &mut t.flow_key as *mut _ as *mut u32,
            &f.key as *const _ as *const u32,
        );
        for i in 0..core::mem::size_of_val(&f.key) / 4 {
            // SAFETY: whole 44-byte keys at 4-aligned offsets of map values.
            unsafe { *d.add(i) = *s.add(i) };
        }
        t.flow_hash = f.hash;
        t.icmp_error = u8::from(f.icmp_error);
        t.first_fragment = u8::from(f.first_fragment);
        t.later_fragment = u8::from(f.later_fragment);
        t.encap_limit_zero = u8::from(f.encap_limit_zero);
    });
}

/// Records a verdict reached before acting, in place of its counters.
#[inline(always)]
pub(crate) fn record_final(v: &Final) {
    note(|t| {
        t.reached |= reached::DONE;
        t.action = v.action;
        t.stat = v.stat as u32;
        t.group_stat = NO_GROUP_STAT;
        t.source_group = v.source.group;
        t.source_stat = v.source.stat as u32;
    });
}

/// Records a steered packet's verdict, in place of its counters.
#[inline(always)]
pub(crate) fn record_steered(target: &Target, s: &crate::verdict::Steered) {
    note(|t| {
        t.reached |= reached::DONE;
        t.action = s.action;
        t.stat = s.stat as u32;
        t.group_stat = s.group_stat as u32;
        t.source_group = target.source.group;
        t.source_stat = target.source.stat as u32;
        t.group = target.group;
        t.member = s.member;
        t.flow_outcome = s.flow as u32;
        t.bytes = target.bytes;
    });
}
