//! What the commands print for people (`--json` prints the library's
//! types as they serialise).

use anycast::{
    Interface, flows::FlowTableStats, flows::FlowView, group::GroupEntry, members::MemberEntry,
    state::AddressEntry, stats::Stats,
};
use serde::Serialize;

/// `stats --json`: interfaces, counters, and members with theirs.
#[derive(Serialize)]
pub(super) struct Report {
    pub(super) interfaces: Vec<Interface>,
    #[serde(flatten)]
    pub(super) stats: Stats,
    pub(super) flow_table: FlowTableStats,
    pub(super) members: Vec<MemberEntry>,
}

/// `addr list`.
pub(super) fn addresses(list: &[AddressEntry]) {
    println!("{:<44} GROUP", "ADDRESS");
    for e in list {
        println!("{:<44} {}", e.prefix.to_string(), e.group);
    }
}

/// `group list`.
pub(super) fn groups(list: &[GroupEntry]) {
    println!(
        "{:<32} {:>9} {:>7} {:<8} {:<8} {:>7} {:>7} {:>6}  TUNNEL SOURCE",
        "GROUP", "ADDRESSES", "MEMBERS", "FALLBACK", "AFFINITY", "TCP", "OTHER", "TABLE"
    );
    for g in list {
        let s = &g.settings;
        println!(
            "{:<32} {:>9} {:>7} {:<8} {:<8} {:>6}s {:>6}s {:>6}  {}",
            g.name,
            g.addresses,
            g.members,
            s.fallback,
            s.affinity,
            s.tcp_timeout,
            s.other_timeout,
            s.table_size,
            s.tunnel_source
                .map_or_else(|| "-".to_string(), |a| a.to_string())
        );
    }
}

/// `member list`.
pub(super) fn members(list: &[MemberEntry]) {
    println!(
        "{:<16} {:<16} {:>8} {:>6} {:<8} {:<7} {:<28} {:>8} {:>12} {:>14}",
        "GROUP",
        "MEMBER",
        "METRIC",
        "WEIGHT",
        "STATE",
        "NEAREST",
        "VIA",
        "FLOWS",
        "PACKETS",
        "BYTES"
    );
    for m in list {
        let via = match (&m.mac, m.ifindex, m.addr) {
            (Some(mac), Some(idx), _) => match &m.iface {
                Some(name) => format!("l2 {name} {mac}"),
                None => format!("l2 if{idx}? {mac}"),
            },
            (_, _, Some(a)) => format!("encap {a}"),
            _ => String::new(),
        };
        println!(
            "{:<16} {:<16} {:>8} {:>6} {:<8} {:<7} {:<28} {:>8} {:>12} {:>14}",
            m.group,
            m.name,
            m.metric,
            m.weight,
            m.state,
            if m.nearest { "yes" } else { "" },
            via,
            m.flows,
            m.packets,
            m.bytes
        );
    }
}

/// The flow table's occupancy, one line; evictions (an estimate, the
/// kernel does not count them) only when there were some.
fn flow_table(t: &FlowTableStats) {
    let evicted = if t.evictions == 0 {
        String::new()
    } else {
        format!(", about {} evicted by the LRU", t.evictions)
    };
    println!(
        "flow table: {} entries ({} live) of {}{evicted}",
        t.entries, t.live, t.capacity
    );
}

/// `flows list`.
pub(super) fn flows(table: &FlowTableStats, flows: &[FlowView]) {
    flow_table(table);
    for f in flows {
        let what = match (f.sport, f.dport, f.flow_label) {
            (Some(s), Some(d), _) => {
                format!("proto {} [{}]:{s} -> [{}]:{d}", f.proto, f.src, f.dst)
            }
            (_, _, Some(l)) => format!("label {l:#07x} {} -> {}", f.src, f.dst),
            _ => format!("{} -> {}", f.src, f.dst),
        };
        println!(
            "  {:<12} {what}  member {}  idle {:.1}s",
            f.group, f.member, f.idle_secs
        );
    }
}

/// `stats` for people.
pub(super) fn report(r: &Report) {
    println!("interfaces:");
    if r.interfaces.is_empty() {
        println!("  (none attached)");
    }
    for i in &r.interfaces {
        println!(
            "  {:<16} ifindex {:<5} role {:<7} source-action {:<6} mode {}{}",
            i.name,
            i.ifindex,
            i.role,
            i.source_action,
            i.mode,
            if i.requested_mode == i.mode {
                String::new()
            } else {
                format!(" (requested {})", i.requested_mode)
            }
        );
    }
    println!("global:");
    for (name, v) in &r.stats.global {
        println!("  {name:<24} {v}");
    }
    println!("groups:");
    if r.stats.groups.is_empty() {
        println!("  (none)");
    }
    for (name, g) in &r.stats.groups {
        println!(
            "  {name}: addresses {}, fallback {}{}",
            g.addresses,
            g.settings.fallback,
            g.settings
                .tunnel_source
                .map(|a| format!(", tunnel source {a}"))
                .unwrap_or_default()
        );
        let counters: Vec<String> = g
            .counters
            .iter()
            .filter(|(_, v)| **v != 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if !counters.is_empty() {
            println!("    {}", counters.join("  "));
        }
    }
    flow_table(&r.flow_table);
    println!("members:");
    if r.members.is_empty() {
        println!("  (none)");
    }
    for m in &r.members {
        println!(
            "  {}/{:<12} metric {:<6} {:<4}{} packets {} bytes {}",
            m.group,
            m.name,
            m.metric,
            m.state,
            if m.nearest { " nearest" } else { "" },
            m.packets,
            m.bytes
        );
    }
}
