//! What `anycast explain` shows: the trail of one run of the explain
//! instance, with the names and settings of the live state (groups,
//! members, addresses), as lines a person reads or as JSON (docs/JSON.md).

use std::net::Ipv6Addr;

use anycast_common::{
    GlobalStat, GroupStat, MemberKind, MemberState,
    explain::{ChosenBy, NO_GROUP_STAT, reached},
};
use serde::Serialize;

use super::Explained;
use crate::{members::MemberEntry, state::AddressEntry};

/// The JSON layout's version (docs/JSON.md).
pub const VERSION: u32 = 1;

/// The live state the report names things by.
pub struct Live {
    /// Every member (`Dataplane::members(None)`).
    pub members: Vec<MemberEntry>,
    /// Every anycast address and prefix.
    pub addresses: Vec<AddressEntry>,
    /// Group names by id.
    pub groups: Vec<(u32, String)>,
    /// CLOCK_MONOTONIC_COARSE now (ns), for the age of a flow entry.
    pub now_ns: u64,
}

/// One explained frame.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The layout's version.
    pub version: u32,
    /// `pass`, `drop`, `redirect`, `tx` or `aborted`.
    pub action: &'static str,
    /// The chosen member's name, or null.
    pub member: Option<String>,
    /// The chosen member's group, or null.
    pub group: Option<String>,
    /// How the frame parsed.
    pub parsed: Parsed,
    /// The source rule.
    pub source: SourceCheck,
    /// The destination's match, when anycast.
    pub destination: Option<Destination>,
    /// The destination group's members and which are tied (live selection).
    pub selection: Option<Vec<Candidate>>,
    /// How the member was chosen, when a flow was built.
    pub choice: Option<Choice>,
    /// The rewrite, when redirected.
    pub rewrite: Option<Rewrite>,
    /// The counters this packet would move (`stats` names).
    pub counters: Vec<String>,
    /// Length of the frame out.
    pub bytes_out: usize,
}

/// How the frame parsed.
#[derive(Clone, Debug, Serialize)]
pub struct Parsed {
    /// Length of the frame in.
    pub bytes: usize,
    /// Whether Ethernet, VLAN tags and the IPv6 header parsed.
    pub ipv6: bool,
    /// VLAN tags before the IPv6 header.
    pub vlan_tags: u16,
    /// Source address.
    pub src: Option<Ipv6Addr>,
    /// Destination address.
    pub dst: Option<Ipv6Addr>,
    /// The fixed header's next header, hop limit and flow label.
    pub next_header: Option<u8>,
    /// Hop limit.
    pub hop_limit: Option<u8>,
    /// Flow label.
    pub flow_label: Option<u32>,
    /// The upper-layer protocol after the extension headers, if walked.
    pub proto: Option<u8>,
    /// `first` or `later` for a fragment.
    pub fragment: Option<&'static str>,
}

/// The source rule's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct SourceCheck {
    /// The anycast group of the source (or of the inner source of
    /// IPv6-in-IPv6), null if not anycast.
    pub anycast_group: Option<String>,
    /// What the rule said, in words.
    pub reason: String,
}

/// The destination's anycast match.
#[derive(Clone, Debug, Serialize)]
pub struct Destination {
    /// The matching address or prefix (longest).
    pub matched: Option<String>,
    /// Its group.
    pub group: String,
    /// The interfaces it may be reached from (empty: every interface).
    pub scope: Vec<String>,
    /// Whether the frame's interface is in that scope (false: dropped,
    /// `out_of_scope_drops`).
    pub in_scope: bool,
}

/// A member of the destination group, as the selection sees it.
#[derive(Clone, Debug, Serialize)]
pub struct Candidate {
    /// Name.
    pub name: String,
    /// Metric.
    pub metric: u32,
    /// `up`, `down` or `draining` (with its link, for an on-link member).
    pub state: String,
    /// Tied at the lowest metric among the live members: new flows go to
    /// these.
    pub tied: bool,
}

/// How the member was chosen.
#[derive(Clone, Debug, Serialize)]
pub struct Choice {
    /// `flow entry`, `consistent hash`, `fragment table` or `none`.
    pub by: &'static str,
    /// The flow key, in words.
    pub flow: String,
    /// The flow's hash.
    pub hash: u32,
    /// An existing flow entry's member and age (ms), live or stale.
    pub entry: Option<FlowEntryView>,
    /// The consistent-hash slot `hash % size` and the table's size.
    pub slot: Option<(u32, u32)>,
    /// What the flow table would do: `hit`, `created`, `recorded over a
    /// stale entry`, `not recorded (flood guard)`, `none`.
    pub flow_table: &'static str,
}

/// A flow-table entry found for the flow.
#[derive(Clone, Debug, Serialize)]
pub struct FlowEntryView {
    /// Its member.
    pub member: String,
    /// Milliseconds since it was last seen.
    pub age_ms: u64,
    /// Whether it was still valid (younger than the timeout, member usable).
    pub live: bool,
}

/// The rewrite of a redirected frame.
#[derive(Clone, Debug, Serialize)]
pub struct Rewrite {
    /// `l2`, `encap` or `packet too big`.
    pub kind: &'static str,
    /// Destination MAC written.
    pub dst_mac: String,
    /// Source MAC written.
    pub src_mac: String,
    /// Egress interface index.
    pub egress_ifindex: u32,
    /// Egress interface name, if known here.
    pub egress: Option<String>,
    /// Outer source and destination (encap and Packet Too Big).
    pub outer: Option<(Ipv6Addr, Ipv6Addr)>,
}

fn action_name(a: u32) -> &'static str {
    match a {
        0 => "aborted",
        1 => "drop",
        2 => "pass",
        3 => "tx",
        4 => "redirect",
        _ => "unknown",
    }
}

fn mac(m: &[u8]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Where a counter is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CounterAt {
    /// The global counters.
    Global,
    /// A group's (its id).
    Group(u32),
    /// A member's (its id): `packets` and `bytes`.
    Member(u32),
}

/// The counters the packet of trail `t` would move, by the names `anycast
/// stats` gives them, as `anycast-ebpf/src/stats.rs` adds them
/// (`record_final`, `record_steered`, `add_source`).
pub fn moved_counters(t: &anycast_common::explain::ExplainTrail) -> Vec<(CounterAt, &'static str)> {
    use CounterAt::{Global, Group, Member};
    let mut out = Vec::new();
    let steered = t.group_stat != NO_GROUP_STAT;
    // The flow table's outcome (`FlowOutcome`): hit, hit put back,
    // recorded over a stale entry, created, bypassed by the flood guard.
    let flow = match t.flow_outcome {
        1 | 2 => Some((GlobalStat::FlowHits, GroupStat::FlowHits)),
        3 | 4 => Some((GlobalStat::FlowMisses, GroupStat::FlowMisses)),
        5 => Some((GlobalStat::FloodBypasses, GroupStat::FloodBypasses)),
        _ => None,
    };
    let icmp_error = t.icmp_error != 0 && t.member != 0;
    if let Some(s) = global_stat(t.stat) {
        out.push((Global, s.name()));
    }
    if steered {
        out.push((Global, GlobalStat::AnycastDestined.name()));
        match t.flow_outcome {
            4 => out.push((Global, GlobalStat::FlowEntriesCreated.name())),
            2 => out.push((Global, GlobalStat::FlowEntriesRestored.name())),
            _ => {}
        }
        out.extend(flow.map(|(g, _)| (Global, g.name())));
        if icmp_error {
            out.push((Global, GlobalStat::IcmpErrorsSteered.name()));
        }
    }
    if t.source_group != 0 {
        let source = group_stat(t.source_stat);
        // The source rule's observation of a source it let through.
        match source {
            Some(GroupStat::AnycastSourceCounted) => {
                out.push((Global, GlobalStat::AnycastSourceCounted.name()));
            }
            Some(GroupStat::MemberSourcePassed) => {
                out.push((Global, GlobalStat::MemberSourcePassed.name()));
            }
            _ => {}
        }
        out.extend(source.map(|s| (Group(t.source_group), s.name())));
    }
    if steered && t.group != 0 {
        let g = Group(t.group);
        out.push((g, GroupStat::DestinedPackets.name()));
        out.push((g, GroupStat::DestinedBytes.name()));
        out.extend(group_stat(t.group_stat).map(|s| (g, s.name())));
        out.extend(flow.map(|(_, s)| (g, s.name())));
        if icmp_error {
            out.push((g, GroupStat::IcmpErrorsSteered.name()));
        }
    }
    if t.member != 0 {
        out.push((Member(t.member), "packets"));
        out.push((Member(t.member), "bytes"));
    }
    out
}

/// [`moved_counters`] as a person reads them: scope, name, and the bytes
/// a byte counter adds.
fn counters(t: &anycast_common::explain::ExplainTrail, live: &Live) -> Vec<String> {
    moved_counters(t)
        .into_iter()
        .map(|(at, name)| {
            let by = if name.ends_with("bytes") {
                format!(" +{}", t.bytes)
            } else {
                String::new()
            };
            match at {
                CounterAt::Global => format!("global {name}{by}"),
                CounterAt::Group(id) => format!("group {} {name}{by}", live.group(id)),
                CounterAt::Member(id) => format!("member {} {name}{by}", live.member_name(id)),
            }
        })
        .collect()
}

fn global_stat(i: u32) -> Option<GlobalStat> {
    GlobalStat::ALL.into_iter().find(|s| *s as u32 == i)
}

fn group_stat(i: u32) -> Option<GroupStat> {
    GroupStat::ALL.into_iter().find(|s| *s as u32 == i)
}

fn ip_at(frame: &[u8], off: usize) -> Option<Ipv6Addr> {
    let b: [u8; 16] = frame.get(off..off + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(b))
}

impl Live {
    fn group(&self, id: u32) -> String {
        self.groups
            .iter()
            .find(|(g, _)| *g == id)
            .map_or_else(|| format!("#{id}"), |(_, n)| n.clone())
    }

    fn member(&self, id: u32) -> Option<&MemberEntry> {
        self.members.iter().find(|m| m.id == id)
    }

    fn member_name(&self, id: u32) -> String {
        self.member(id)
            .map_or_else(|| format!("#{id}"), |m| m.name.clone())
    }
}

/// The report of `x`, run on `frame`, with the live state's names.
pub fn build(
    frame: &[u8],
    x: &Explained,
    live: &Live,
    ifname: impl Fn(u32) -> Option<String>,
) -> Report {
    let t = &x.trail;
    let is = |bit| t.reached & bit != 0;
    let ipv6 = is(reached::PARSED);
    let l3 = usize::from(t.l3_off);
    let parsed = Parsed {
        bytes: frame.len(),
        ipv6,
        vlan_tags: if ipv6 {
            (t.l3_off.saturating_sub(14)) / 4
        } else {
            0
        },
        src: ipv6.then(|| ip_at(frame, l3 + 8)).flatten(),
        dst: ipv6.then(|| ip_at(frame, l3 + 24)).flatten(),
        next_header: ipv6.then_some(t.next_header),
        hop_limit: ipv6.then_some(t.hop_limit),
        flow_label: ipv6.then_some(t.flow_label),
        proto: is(reached::TRANSPORT).then_some(t.proto),
        fragment: if t.first_fragment != 0 {
            Some("first")
        } else if t.later_fragment != 0 {
            Some("later")
        } else {
            None
        },
    };
    let stat = global_stat(t.stat);
    let src_group = (t.source_group != 0).then(|| live.group(t.source_group));
    let reason = source_reason(t.source_group, group_stat(t.source_stat), stat, &src_group);
    let destination = (t.group != 0).then(|| {
        let dst = parsed.dst.unwrap_or(Ipv6Addr::UNSPECIFIED);
        let matched = live
            .addresses
            .iter()
            .filter(|a| a.prefix.contains(dst))
            .max_by_key(|a| a.prefix.len);
        Destination {
            matched: matched.map(|a| a.prefix.to_string()),
            group: live.group(t.group),
            scope: matched.map(|a| a.scope.clone()).unwrap_or_default(),
            in_scope: stat != Some(GlobalStat::OutOfScopeDropped),
        }
    });
    let selection = (t.group != 0).then(|| candidates(live, t.group));
    let choice = is(reached::FLOW).then(|| choice(t, live));
    let member = (t.member != 0).then(|| live.member_name(t.member));
    let rewrite = rewrite(x, live, &ifname);
    let counters = counters(t, live);
    Report {
        version: VERSION,
        action: action_name(x.action),
        group: (t.member != 0).then(|| live.group(t.group)),
        member,
        parsed,
        source: SourceCheck {
            anycast_group: src_group,
            reason,
        },
        destination,
        selection,
        choice,
        rewrite,
        counters,
        bytes_out: x.data.len(),
    }
}

fn source_reason(
    group: u32,
    rule: Option<GroupStat>,
    stat: Option<GlobalStat>,
    name: &Option<String>,
) -> String {
    let g = name.clone().unwrap_or_default();
    if group == 0 {
        return match stat {
            Some(GlobalStat::InvalidSourceDropped) => {
                "dropped: a source no router forwards (unspecified, loopback, multicast, IPv4-mapped or site-local)".into()
            }
            Some(GlobalStat::LinkScopePassed) => "a link-local source or link-scoped ICMPv6: for the kernel".into(),
            _ => "not an anycast source".into(),
        };
    }
    match (rule, stat) {
        (_, Some(GlobalStat::TunnelledSourceDropped)) => format!(
            "dropped: the inner source of IPv6-in-IPv6 is an anycast address of group {g}, and this is an edge interface"
        ),
        (_, Some(GlobalStat::AnycastSourceDropped)) => format!(
            "dropped: the source is an anycast address of group {g}, and this is an edge interface (no anycast source may enter)"
        ),
        (_, Some(GlobalStat::SpoofDropped)) => format!(
            "dropped: the source is an anycast address of group {g}, and no registered member of the group sent it (member interface)"
        ),
        (Some(GroupStat::MemberSourcePassed), _) => {
            format!("an anycast source of group {g}, vouched for by a registered member")
        }
        (Some(GroupStat::AnycastSourceCounted), _) => {
            format!("an anycast source of group {g}, counted only (source action count)")
        }
        _ => format!("an anycast source of group {g}"),
    }
}

fn candidates(live: &Live, group: u32) -> Vec<Candidate> {
    let name = live.group(group);
    let mut of: Vec<&MemberEntry> = live.members.iter().filter(|m| m.group == name).collect();
    of.sort_by_key(|m| (m.metric, m.id));
    let usable = |m: &MemberEntry| {
        m.state == MemberState::Up && m.link == anycast_common::IfaceLink::Present
    };
    let lowest = of.iter().filter(|m| usable(m)).map(|m| m.metric).min();
    of.iter()
        .map(|m| Candidate {
            name: m.name.clone(),
            metric: m.metric,
            state: if m.via == MemberKind::L2 && m.link != anycast_common::IfaceLink::Present {
                format!("{} (link {})", m.state, m.link)
            } else {
                m.state.to_string()
            },
            tied: usable(m) && Some(m.metric) == lowest,
        })
        .collect()
}

fn choice(t: &anycast_common::explain::ExplainTrail, live: &Live) -> Choice {
    let k = &t.flow_key;
    let (src, dst) = (Ipv6Addr::from(k.src), Ipv6Addr::from(k.dst));
    let flow = if k.by_label != 0 {
        format!(
            "{src} -> {dst} by flow label {}",
            u32::from_be_bytes(k.tail)
        )
    } else {
        let (sp, dp) = (
            u16::from_be_bytes([k.tail[0], k.tail[1]]),
            u16::from_be_bytes([k.tail[2], k.tail[3]]),
        );
        format!("{src} -> {dst} protocol {} ports {sp} -> {dp}", k.proto)
    };
    let flow = if t.icmp_error != 0 {
        format!("{flow} (the flow an ICMPv6 error quotes)")
    } else {
        flow
    };
    let entry = (t.reached & reached::ENTRY != 0).then(|| {
        let age = live.now_ns.saturating_sub(t.entry_last_seen_ns) / 1_000_000;
        FlowEntryView {
            member: live.member_name(t.entry_member),
            age_ms: age,
            live: ChosenBy::from_u8(t.chosen_by) == ChosenBy::FlowEntry,
        }
    });
    Choice {
        by: match ChosenBy::from_u8(t.chosen_by) {
            ChosenBy::Fragment => "fragment table",
            ChosenBy::FlowEntry => "flow entry",
            ChosenBy::Hash => "consistent hash",
            ChosenBy::None => "none",
        },
        flow,
        hash: t.flow_hash,
        entry,
        slot: (t.reached & reached::HASH != 0).then_some((t.table_slot, t.table_size)),
        flow_table: match t.flow_outcome {
            1 => "hit",
            2 => "hit (entry put back)",
            3 => "recorded over a stale entry",
            4 => "created",
            5 => "not recorded (flood guard)",
            _ => "none",
        },
    }
}

fn rewrite(x: &Explained, live: &Live, ifname: &impl Fn(u32) -> Option<String>) -> Option<Rewrite> {
    let t = &x.trail;
    if x.action != 4 && x.action != 3 {
        return None;
    }
    let out = &x.data;
    let macs = (out.get(0..6).map(mac)?, out.get(6..12).map(mac)?);
    let outer = (ip_at(out, 22)?, ip_at(out, 38)?);
    let (kind, egress, outer) = if t.member == 0 {
        // A Packet Too Big to the client.
        ("packet too big", t.fib_ifindex, Some(outer))
    } else {
        match live.member(t.member).map(|m| m.via) {
            Some(MemberKind::Encap) => ("encap", t.fib_ifindex, Some(outer)),
            _ => (
                "l2",
                live.member(t.member).and_then(|m| m.ifindex).unwrap_or(0),
                None,
            ),
        }
    };
    Some(Rewrite {
        kind,
        dst_mac: macs.0,
        src_mac: macs.1,
        egress_ifindex: egress,
        egress: ifname(egress),
        outer,
    })
}

impl Report {
    /// The report as lines a person reads.
    pub fn lines(&self) -> Vec<String> {
        let mut l = Vec::new();
        let p = &self.parsed;
        if p.ipv6 {
            let opt = |v: Option<Ipv6Addr>| v.map_or("?".into(), |a| a.to_string());
            l.push(format!(
                "frame:       {} bytes, {} VLAN tag(s), IPv6 {} -> {}, next header {}, hop limit {}, flow label {}",
                p.bytes,
                p.vlan_tags,
                opt(p.src),
                opt(p.dst),
                p.next_header.unwrap_or(0),
                p.hop_limit.unwrap_or(0),
                p.flow_label.unwrap_or(0),
            ));
            if let Some(proto) = p.proto {
                let frag = p
                    .fragment
                    .map_or(String::new(), |f| format!(", {f} fragment"));
                l.push(format!("upper layer: protocol {proto}{frag}"));
            }
        } else {
            l.push(format!(
                "frame:       {} bytes, not IPv6 or not parsed",
                p.bytes
            ));
        }
        l.push(format!("source:      {}", self.source.reason));
        match &self.destination {
            Some(d) => {
                let scope = match (d.scope.is_empty(), d.in_scope) {
                    (true, _) => String::new(),
                    (false, true) => format!(", reached from {}: in scope", d.scope.join(", ")),
                    (false, false) => format!(
                        ", reached only from {}: dropped, out of scope",
                        d.scope.join(", ")
                    ),
                };
                l.push(format!(
                    "destination: {} of group {}{scope}",
                    d.matched.as_deref().unwrap_or("an anycast address"),
                    d.group
                ))
            }
            None => l.push("destination: not an anycast address (or not reached)".into()),
        }
        if let Some(sel) = &self.selection {
            let shown: Vec<String> = sel
                .iter()
                .map(|c| {
                    format!(
                        "{} (metric {}, {}{})",
                        c.name,
                        c.metric,
                        c.state,
                        if c.tied { ", tied" } else { "" }
                    )
                })
                .collect();
            l.push(format!(
                "members:     {}",
                if shown.is_empty() {
                    "none".into()
                } else {
                    shown.join("; ")
                }
            ));
        }
        if let Some(c) = &self.choice {
            l.push(format!("flow:        {} (hash {:#010x})", c.flow, c.hash));
            if let Some(e) = &c.entry {
                l.push(format!(
                    "flow entry:  member {}, last seen {} ms ago, {}",
                    e.member,
                    e.age_ms,
                    if e.live {
                        "live"
                    } else {
                        "stale (too old, or its member cannot take it)"
                    }
                ));
            }
            let how = match (c.by, c.slot) {
                // What another redirector node must share to send this
                // flow to the same member (docs/BGP.md, "Flows across
                // nodes"): nothing node-local feeds the table.
                ("consistent hash", Some((slot, size))) => format!(
                    "consistent hash, slot {slot} of {size} (the same on every node with \
                     these tied members' names and weights and this table size)"
                ),
                (by, _) => by.to_string(),
            };
            l.push(format!("chosen by:   {how}; flow table: {}", c.flow_table));
        }
        if let Some(r) = &self.rewrite {
            let egress = r
                .egress
                .clone()
                .unwrap_or_else(|| format!("ifindex {}", r.egress_ifindex));
            let mut line = format!(
                "rewrite:     {}, MACs {} <- {}, out of {egress}",
                r.kind, r.dst_mac, r.src_mac
            );
            if let Some((s, d)) = r.outer {
                line.push_str(&format!(", outer {s} -> {d}"));
            }
            l.push(line);
        }
        l.push(format!(
            "action:      {}{}",
            self.action,
            self.member
                .as_ref()
                .map_or(String::new(), |m| format!(" to member {m}"))
        ));
        l.push(format!("counters:    {}", self.counters.join("; ")));
        l
    }
}
