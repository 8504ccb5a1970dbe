//! Classification: source check, then destination lookup, into a [`Decision`].
//!
//! The policy is the one `anycast_common::model` states; the program tests
//! hold the two to the same answers.

use anycast_common::{AddrKey, GlobalStat, IfaceRole, SourceAction};
use aya_ebpf::{bindings::xdp_action, maps::lpm_trie::Key, programs::XdpContext};

use crate::{
    maps::{ANYCAST_ADDRS, ANYCAST_PREFIX},
    parse::{
        eth::{self, L2},
        ipv6,
    },
};

/// What to do with a packet, and what to count.
pub(crate) struct Decision {
    /// The XDP action.
    pub(crate) action: u32,
    /// The one global verdict counter.
    pub(crate) stat: GlobalStat,
    /// Group of a disallowed anycast source, 0 if none.
    pub(crate) source_group: u32,
    /// The disallowed source was counted and passed (monitor mode).
    pub(crate) source_counted: bool,
    /// Group of a counted anycast destination, 0 if none.
    pub(crate) dest_group: u32,
}

impl Decision {
    #[inline(always)]
    const fn pass(stat: GlobalStat) -> Self {
        Decision {
            action: xdp_action::XDP_PASS,
            stat,
            source_group: 0,
            source_counted: false,
            dest_group: 0,
        }
    }

    /// The XDP action to return.
    #[inline(always)]
    pub(crate) const fn action(&self) -> u32 {
        self.action
    }
}

/// The anycast group `addr` belongs to: exact match first, then the longest prefix.
#[inline(always)]
fn anycast_group(addr: *const AddrKey) -> Option<u32> {
    // SAFETY: `addr` points into the packet and was bounds-checked by the
    // parser; the lookup reads it in place, without a copy to the stack.
    let key = unsafe { &*addr };
    // SAFETY: the value is plain data and only read.
    if let Some(v) = unsafe { ANYCAST_ADDRS.get(key) } {
        return Some(v.group_id);
    }
    ANYCAST_PREFIX
        .get(Key::new(128, key.addr))
        .map(|v| v.group_id)
}

/// Parses and classifies the packet in `ctx` for an interface with the given
/// role and source action.
#[inline(always)]
pub(crate) fn classify(ctx: &XdpContext, role: u8, source_action: u8) -> Decision {
    let l3_off = match eth::parse(ctx) {
        L2::Ipv6 { l3_off } => l3_off,
        L2::Other => return Decision::pass(GlobalStat::NonIpv6Passed),
        L2::Truncated => return Decision::pass(GlobalStat::MalformedPassed),
    };
    let Some(ip) = ipv6::parse(ctx, l3_off) else {
        return Decision::pass(GlobalStat::MalformedPassed);
    };
    let (Some(src), Some(dst)) = (ipv6::src(ctx, &ip), ipv6::dst(ctx, &ip)) else {
        return Decision::pass(GlobalStat::MalformedPassed);
    };

    let mut decision = Decision::pass(GlobalStat::UnicastPassed);
    if let Some(group) = anycast_group(src) {
        // Edge interfaces never accept an anycast source. Member interfaces
        // accept one only from a registered member, and none can vouch yet.
        let _role = IfaceRole::from_u8(role);
        decision.source_group = group;
        match SourceAction::from_u8(source_action) {
            SourceAction::Drop => {
                decision.action = xdp_action::XDP_DROP;
                decision.stat = GlobalStat::AnycastSourceDropped;
                return decision;
            }
            SourceAction::Count => decision.source_counted = true,
        }
    }
    if let Some(group) = anycast_group(dst) {
        if ipv6::transport(ctx, &ip).is_some() {
            decision.stat = GlobalStat::AnycastDestined;
            decision.dest_group = group;
        } else {
            decision.stat = GlobalStat::UnparsedPassed;
        }
    }
    decision
}
