//! What the stages hand each other and the recording point: a verdict
//! reached before acting ([`Final`]), the destination classification hands
//! to acting ([`Target`]), and what acting did ([`Steered`]).
//!
//! A leaf: it imports no stage, so every stage can return these types
//! without importing another stage (only the verifier helper).

use anycast_common::{GlobalStat, GroupStat};
use aya_ebpf::bindings::xdp_action;

use crate::verifier::opaque;

/// What the source rule said of an anycast source: of which group, and
/// which of that group's counters it adds to. Group 0: the source is not
/// anycast (or was not checked), and nothing is counted for it.
#[derive(Clone, Copy)]
pub(crate) struct Source {
    /// The source's group, 0 if none.
    pub(crate) group: u32,
    /// `AnycastSourceDrops` (edge), `SpoofDrops` (member interface, not a
    /// member), `AnycastSourceCounted` (monitor mode) or
    /// `MemberSourcePassed` (vouched for by a registered member).
    pub(crate) stat: GroupStat,
}

impl Source {
    /// Not an anycast source.
    pub(crate) const NONE: Source = Source {
        group: 0,
        stat: GroupStat::AnycastSourceDrops,
    };

    /// The same source, unknown to the verifier (see [`opaque`]): acting
    /// carries it across the flow lookup and the rewrite to the recording,
    /// and the value it holds would split every state on the way.
    #[inline(always)]
    pub(crate) fn opaque(self) -> Self {
        Source {
            group: opaque(self.group),
            stat: match opaque(self.stat as u32) {
                s if s == GroupStat::AnycastSourceCounted as u32 => GroupStat::AnycastSourceCounted,
                s if s == GroupStat::MemberSourcePassed as u32 => GroupStat::MemberSourcePassed,
                s if s == GroupStat::SpoofDrops as u32 => GroupStat::SpoofDrops,
                _ => GroupStat::AnycastSourceDrops,
            },
        }
    }

    /// The global counter a passed anycast source adds besides the final
    /// one: the source rule's observation (a drop is the final counter).
    #[inline(always)]
    pub(crate) const fn extra(&self) -> Option<GlobalStat> {
        match self.stat {
            GroupStat::AnycastSourceCounted => Some(GlobalStat::AnycastSourceCounted),
            GroupStat::MemberSourcePassed => Some(GlobalStat::MemberSourcePassed),
            _ => None,
        }
    }
}

/// A verdict reached before acting: the packet passes or is dropped as it
/// arrived. Counted with one final global counter, plus the source's
/// counters when it has an anycast source.
pub(crate) struct Final {
    /// `XDP_PASS` or `XDP_DROP`.
    pub(crate) action: u32,
    /// The one final global counter.
    pub(crate) stat: GlobalStat,
    /// The source rule's outcome ([`Source::NONE`] if not anycast).
    pub(crate) source: Source,
}

impl Final {
    /// Passed with nothing but a global counter: not IPv6, malformed, or no
    /// anycast address at all (the common case).
    #[inline(always)]
    pub(crate) const fn pass(stat: GlobalStat) -> Self {
        Final {
            action: xdp_action::XDP_PASS,
            stat,
            source: Source::NONE,
        }
    }

    /// Passed after the source rule (counted, or vouched for).
    #[inline(always)]
    pub(crate) const fn pass_source(stat: GlobalStat, source: Source) -> Self {
        Final {
            action: xdp_action::XDP_PASS,
            stat,
            source,
        }
    }

    /// Dropped by the source rule.
    #[inline(always)]
    pub(crate) const fn drop_source(stat: GlobalStat, source: Source) -> Self {
        Final {
            action: xdp_action::XDP_DROP,
            stat,
            source,
        }
    }
}

/// An anycast-destined packet that acting steers: classification's result.
pub(crate) struct Target {
    /// The destination's group.
    pub(crate) group: u32,
    /// The destination is scoped and this attachment is outside its scope.
    pub(crate) out_of_scope: bool,
    /// The source rule's outcome ([`Source::NONE`] if not anycast).
    pub(crate) source: Source,
    /// `Settings::flow_epoch` as classification read it (the flow caches).
    pub(crate) flow_epoch: u32,
    /// Frame length as received (before any rewrite).
    pub(crate) bytes: u64,
}

impl Target {
    /// The verdict for a steered packet whose extension-header chain does
    /// not parse within bounds: the kernel gets it untouched.
    #[inline(always)]
    pub(crate) const fn unparsed(&self) -> Final {
        Final::pass_source(GlobalStat::UnparsedPassed, self.source)
    }
}

/// What the flow table (and the flow caches) did for a steered packet.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum FlowOutcome {
    /// Not consulted (no affinity), or no member was chosen.
    None = 0,
    /// A known flow went to its member.
    Hit = 1,
    /// A known flow went to its member, and a flow cache put back its
    /// table entry, which the LRU had evicted.
    HitRestored = 2,
    /// A new flow was recorded over a stale entry of the same key.
    Recorded = 3,
    /// A new flow was recorded in a new entry.
    Created = 4,
    /// A new flow was not recorded (flood guard).
    Bypassed = 5,
}

impl FlowOutcome {
    /// The same outcome, unknown to the verifier (see [`opaque`]): it is
    /// decided before the rewrite and counted after it, and its value
    /// would split every state of the rewrite.
    #[inline(always)]
    pub(crate) fn opaque(self) -> Self {
        match opaque(self as u32) {
            1 => FlowOutcome::Hit,
            2 => FlowOutcome::HitRestored,
            3 => FlowOutcome::Recorded,
            4 => FlowOutcome::Created,
            5 => FlowOutcome::Bypassed,
            _ => FlowOutcome::None,
        }
    }
}

/// What acting did with a [`Target`].
pub(crate) struct Steered {
    /// The XDP action.
    pub(crate) action: u32,
    /// The one final global counter.
    pub(crate) stat: GlobalStat,
    /// The destination group's counter for the same outcome.
    pub(crate) group_stat: GroupStat,
    /// The member the packet was redirected to, 0 if none.
    pub(crate) member: u32,
    /// What the flow table did.
    pub(crate) flow: FlowOutcome,
    /// Steered as an ICMPv6 error, by the flow it quotes.
    pub(crate) icmp_error: bool,
}
