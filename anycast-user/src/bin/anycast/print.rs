//! What the commands print for people (`--json` prints the library's
//! types as they serialise). Every function writes to the command's output
//! and returns the write's error: a closed output is no panic.

use std::{
    collections::BTreeMap,
    io::{self, Write},
    path::Path,
};

use anycast::{
    Interface,
    config::MetricSource,
    dataplane::MapMemory,
    flows::FlowTableStats,
    flows::FlowView,
    group::GroupEntry,
    members::MemberEntry,
    pin::Purged,
    service::socket::Status,
    state::{AddressEntry, SubnetEntry},
    stats::Stats,
};
use anycast_common::IfaceLink;
use serde::Serialize;

/// The `version` of every `--json` object (docs/JSON.md): raised when a
/// field goes, is renamed or changes its type; adding one keeps it.
pub(super) const JSON_VERSION: u32 = 1;

/// A `--json` object with `version` first, then `inner`'s fields.
#[derive(Serialize)]
pub(super) struct Versioned<'a, T> {
    version: u32,
    #[serde(flatten)]
    inner: &'a T,
}

/// `inner` (which serialises as an object) with its `version`.
pub(super) fn versioned<T: Serialize>(inner: &T) -> Versioned<'_, T> {
    Versioned {
        version: JSON_VERSION,
        inner,
    }
}

/// `flows list --json`: the table's occupancy and some flows.
#[derive(Serialize)]
pub(super) struct FlowsReport<'a> {
    pub(super) flow_table: &'a FlowTableStats,
    pub(super) flows: &'a [FlowView],
}

/// `stats --json`: interfaces, counters, and members with theirs.
#[derive(Serialize)]
pub(super) struct Report {
    pub(super) interfaces: Vec<Interface>,
    #[serde(flatten)]
    pub(super) stats: Stats,
    pub(super) flow_table: FlowTableStats,
    pub(super) members: Vec<MemberEntry>,
    pub(super) maps: BTreeMap<&'static str, MapMemory>,
}

/// `addr list`.
pub(super) fn addresses(out: &mut impl Write, list: &[AddressEntry]) -> io::Result<()> {
    writeln!(
        out,
        "{:<44} {:<20} {:<16} ORIGIN",
        "ADDRESS", "GROUP", "SCOPE"
    )?;
    for e in list {
        let scope = if e.scope.is_empty() {
            "-".to_string()
        } else {
            e.scope.join(",")
        };
        let origin = match &e.origin {
            None => "-".to_string(),
            Some(o) => match o.id {
                Some(id) => format!("subnet {} ID {id} ({})", o.subnet, o.meaning),
                None => format!("subnet {} ({})", o.subnet, o.meaning),
            },
        };
        writeln!(
            out,
            "{:<44} {:<20} {:<16} {origin}",
            e.prefix.to_string(),
            e.group,
            scope
        )?;
    }
    Ok(())
}

/// `subnet list`: a subnet per paragraph, its addresses indented.
pub(super) fn subnets(out: &mut impl Write, list: &[SubnetEntry]) -> io::Result<()> {
    if list.is_empty() {
        writeln!(out, "no subnet registered")?;
    }
    for e in list {
        writeln!(
            out,
            "{} group {} scope {} ({})",
            e.subnet,
            e.group,
            e.scope.join(","),
            e.scope_from
        )?;
        for a in &e.addresses {
            let id = a.id.map_or("-".to_string(), |id| id.to_string());
            writeln!(
                out,
                "  {:<42} ID {id:<4} {}",
                a.address.to_string(),
                a.meaning
            )?;
        }
    }
    Ok(())
}

/// A member's state as the tables show it: the operator's, and why the
/// data plane treats it as down when its interface is lost.
fn state(m: &MemberEntry) -> String {
    match m.link {
        IfaceLink::Present => m.state.to_string(),
        link => format!("{}/{link}", m.state),
    }
}

/// `group list`.
pub(super) fn groups(out: &mut impl Write, list: &[GroupEntry]) -> io::Result<()> {
    writeln!(
        out,
        "{:<32} {:>9} {:>7} {:<8} {:<8} {:>7} {:>7} {:>6}  TUNNEL SOURCE",
        "GROUP", "ADDRESSES", "MEMBERS", "FALLBACK", "AFFINITY", "TCP", "OTHER", "TABLE"
    )?;
    for g in list {
        let s = &g.settings;
        writeln!(
            out,
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
        )?;
    }
    Ok(())
}

/// `member list`.
pub(super) fn members(out: &mut impl Write, list: &[MemberEntry]) -> io::Result<()> {
    writeln!(
        out,
        "{:<16} {:<16} {:>8} {:>6} {:<16} {:<7} {:<28} {:>6} {:>8} {:>12} {:>14}",
        "GROUP",
        "MEMBER",
        "METRIC",
        "WEIGHT",
        "STATE",
        "NEAREST",
        "VIA",
        "LOST",
        "FLOWS",
        "PACKETS",
        "BYTES"
    )?;
    for m in list {
        let via = match (&m.mac, m.ifindex, m.addr) {
            (Some(mac), Some(idx), _) => match &m.iface {
                Some(name) => format!("l2 {name} {mac}"),
                None => format!("l2 if{idx}? {mac}"),
            },
            (_, _, Some(a)) => format!("encap {a}"),
            _ => String::new(),
        };
        writeln!(
            out,
            "{:<16} {:<16} {:>8} {:>6} {:<16} {:<7} {:<28} {:>6} {:>8} {:>12} {:>14}",
            m.group,
            m.name,
            m.metric,
            m.weight,
            state(m),
            if m.nearest { "yes" } else { "" },
            via,
            m.link_losses,
            m.flows,
            m.packets,
            m.bytes
        )?;
    }
    Ok(())
}

/// The flow table's occupancy, one line; evictions (an estimate, the
/// kernel does not count them) only when there were some.
fn flow_table(out: &mut impl Write, t: &FlowTableStats) -> io::Result<()> {
    let evicted = if t.evictions == 0 {
        String::new()
    } else {
        format!(", about {} evicted by the LRU", t.evictions)
    };
    writeln!(
        out,
        "flow table: {} entries ({} live) of {}{evicted}",
        t.entries, t.live, t.capacity
    )
}

/// `flows list`.
pub(super) fn flows(
    out: &mut impl Write,
    table: &FlowTableStats,
    flows: &[FlowView],
) -> io::Result<()> {
    flow_table(out, table)?;
    for f in flows {
        let what = match (f.sport, f.dport, f.flow_label) {
            (Some(s), Some(d), _) => {
                format!("proto {} [{}]:{s} -> [{}]:{d}", f.proto, f.src, f.dst)
            }
            (_, _, Some(l)) => format!("label {l:#07x} {} -> {}", f.src, f.dst),
            _ => format!("{} -> {}", f.src, f.dst),
        };
        writeln!(
            out,
            "  {:<12} {what}  member {}  idle {:.1}s",
            f.group, f.member, f.idle_secs
        )?;
    }
    Ok(())
}

/// What `detach --purge` removed, and what it left.
pub(super) fn purged(out: &mut impl Write, dir: &Path, p: &Purged) -> io::Result<()> {
    if p.kept.is_empty() {
        writeln!(out, "removed the maps pinned at {}", dir.display())
    } else {
        writeln!(
            out,
            "removed the {} pins anycast made at {}; kept the directory, which also holds: {}",
            p.removed,
            dir.display(),
            p.kept.join(", ")
        )
    }
}

/// `stats` for people; `here` is the current network namespace (inode):
/// interfaces of others say so.
pub(super) fn report(out: &mut impl Write, r: &Report, here: u64) -> io::Result<()> {
    writeln!(out, "interfaces:")?;
    if r.interfaces.is_empty() {
        writeln!(out, "  (none attached)")?;
    }
    for i in &r.interfaces {
        writeln!(
            out,
            "  {:<16} ifindex {:<5} role {:<7} source-action {:<6} mode {}{}{}",
            i.name,
            i.ifindex,
            i.role,
            i.source_action,
            i.mode,
            if i.requested_mode == i.mode {
                String::new()
            } else {
                format!(" (requested {})", i.requested_mode)
            },
            if i.netns == here {
                String::new()
            } else {
                format!("  (network namespace {})", i.netns)
            }
        )?;
    }
    writeln!(out, "global:")?;
    for (name, v) in &r.stats.global {
        writeln!(out, "  {name:<24} {v}")?;
    }
    writeln!(out, "groups:")?;
    if r.stats.groups.is_empty() {
        writeln!(out, "  (none)")?;
    }
    for (name, g) in &r.stats.groups {
        writeln!(
            out,
            "  {name}: addresses {}, fallback {}{}",
            g.addresses,
            g.settings.fallback,
            g.settings
                .tunnel_source
                .map(|a| format!(", tunnel source {a}"))
                .unwrap_or_default()
        )?;
        let counters: Vec<String> = g
            .counters
            .iter()
            .filter(|(_, v)| **v != 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if !counters.is_empty() {
            writeln!(out, "    {}", counters.join("  "))?;
        }
    }
    flow_table(out, &r.flow_table)?;
    writeln!(out, "members:")?;
    if r.members.is_empty() {
        writeln!(out, "  (none)")?;
    }
    for m in &r.members {
        writeln!(
            out,
            "  {}/{:<12} metric {:<6} {:<4}{} packets {} bytes {}{}",
            m.group,
            m.name,
            m.metric,
            state(m),
            if m.nearest { " nearest" } else { "" },
            m.packets,
            m.bytes,
            if m.link_losses > 0 {
                format!(" interface lost {} times", m.link_losses)
            } else {
                String::new()
            }
        )?;
    }
    let total: u64 = r.maps.values().map(|m| m.bytes).sum();
    writeln!(out, "maps: {} in the kernel", mib(total))?;
    for (name, m) in &r.maps {
        writeln!(
            out,
            "  {name:<16} {:>10} entries of {:>4}+{:<5} bytes  {}",
            m.max_entries,
            m.key_size,
            m.value_size,
            mib(m.bytes)
        )?;
    }
    Ok(())
}

/// Bytes as MiB with one decimal.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// `anycast status`: the service, then one line per checked member, then
/// one per member whose MAC or metric the service follows.
pub(crate) fn status(out: &mut impl Write, s: &Status) -> io::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    writeln!(
        out,
        "service pid {} serving {} on {}, started {} s ago",
        s.pid,
        s.file.display(),
        s.pin_dir.display(),
        now.saturating_sub(s.started)
    )?;
    match &s.last_reload {
        Some(r) => writeln!(
            out,
            "last reload {} s ago: {} ({} applied, {} refused in all)",
            now.saturating_sub(r.at),
            r.message,
            s.reloads_applied,
            s.reloads_refused
        )?,
        None => writeln!(out, "not reloaded since it started")?,
    }
    let u = &s.member_updates;
    if let (Some(p50), Some(p99), Some(max)) = (u.p50_ms, u.p99_ms, u.max_ms) {
        writeln!(
            out,
            "{} member updates; the latest {}, from deciding result to map update: \
             median {p50:.2} ms, 99th percentile {p99:.2} ms, max {max:.2} ms",
            u.count,
            u.recent_ms.len()
        )?;
    }
    writeln!(
        out,
        "{:<16} {:<16} {:<6} {:<8} {:<8} {:>10}  LAST",
        "GROUP", "MEMBER", "CHECK", "HEALTH", "STATE", "LATENCY"
    )?;
    for m in &s.members {
        let latency = m
            .last_latency_ms
            .map_or("-".to_string(), |l| format!("{l:.1} ms"));
        let last = m.last_error.as_deref().unwrap_or("ok");
        writeln!(
            out,
            "{:<16} {:<16} {:<6} {:<8} {:<8} {:>10}  {last} ({} probes, {} failed; {})",
            m.group, m.member, m.kind, m.health, m.state, latency, m.probes, m.failures, m.target
        )?;
    }
    // How members are reached, where the service follows something.
    let followed: Vec<_> = s
        .reachability
        .iter()
        .filter(|r| r.via == "neighbour" || r.metric_source == MetricSource::Route)
        .collect();
    if !followed.is_empty() {
        writeln!(
            out,
            "{:<16} {:<16} {:<9} {:<17} {:<10} {:<12}  DOWN BECAUSE",
            "GROUP", "MEMBER", "VIA", "MAC", "NEIGHBOUR", "METRIC"
        )?;
    }
    for r in followed {
        let dash = || "-".to_string();
        writeln!(
            out,
            "{:<16} {:<16} {:<9} {:<17} {:<10} {:<12}  {}",
            r.group,
            r.member,
            r.via,
            r.mac.clone().unwrap_or_else(dash),
            r.neighbour.clone().unwrap_or_else(dash),
            format!(
                "{} ({})",
                r.metric.map_or_else(dash, |m| m.to_string()),
                r.metric_source
            ),
            r.down_reason.as_deref().unwrap_or("-")
        )?;
    }
    announcements(out, &s.announcements, now)
}

/// The announcements part of `anycast status`: one line per prefix.
fn announcements(
    out: &mut impl Write,
    a: &anycast::service::announce::AnnounceStatus,
    now: u64,
) -> io::Result<()> {
    if a.prefixes.is_empty() {
        return Ok(());
    }
    let maintenance = match (a.maintenance, a.drained) {
        (false, _) => "",
        (true, false) => "; maintenance on, draining",
        (true, true) => "; maintenance on, drained",
    };
    writeln!(
        out,
        "announcements: routes in table {} proto {} dev {}{maintenance}",
        a.table, a.protocol, a.device
    )?;
    writeln!(
        out,
        "{:<24} {:<16} {:<10} {:>10}  WHY",
        "PREFIX", "GROUP", "STATE", "SINCE"
    )?;
    for p in &a.prefixes {
        let state = if p.announced {
            "announced"
        } else {
            "withdrawn"
        };
        let ago = now.saturating_sub(p.since as u64);
        writeln!(
            out,
            "{:<24} {:<16} {:<10} {:>8} s  {} ({} changes)",
            p.prefix, p.group, state, ago, p.why, p.changes
        )?;
    }
    Ok(())
}
