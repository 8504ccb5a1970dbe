//! Prometheus text exposition (format 0.0.4) of the data plane's counters
//! and the service's view of its members: what `anycast stats` shows, and
//! the checks. Rendering only; the service serves it over HTTP.

use std::fmt::Write as _;

use anycast_common::MemberState;

use crate::{members::MemberEntry, stats::Stats};

/// A member's check, as the service last saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckView {
    /// The member's group.
    pub group: String,
    /// The member.
    pub member: String,
    /// The check's kind (`udp`, `dns`, ...).
    pub kind: &'static str,
    /// 1 healthy, 0 failing, absent while undecided.
    pub healthy: Option<bool>,
    /// The last probe's result: its latency in seconds, or none when it
    /// failed (or none ran yet).
    pub last_latency: Option<f64>,
    /// Probes run.
    pub probes: u64,
    /// Probes that failed.
    pub failures: u64,
    /// Changes of health.
    pub transitions: u64,
}

/// The service's own counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceCounters {
    /// Reloads applied.
    pub reloads_applied: u64,
    /// Reloads refused (the file did not parse, validate or apply).
    pub reloads_refused: u64,
    /// Members' changes of health written to the data plane, by latency.
    pub member_updates: UpdateHistogram,
}

/// The upper bounds, in seconds, of [`UpdateHistogram`]'s buckets (the
/// service's goal is 10 ms at the 99th percentile).
pub const UPDATE_BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// A Prometheus histogram of member updates: from the probe result that
/// changed a member's health to the data plane's write returning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpdateHistogram {
    /// Updates at or under each bound of [`UPDATE_BUCKETS`] (not
    /// cumulative; `render` sums them as the format wants).
    pub buckets: [u64; UPDATE_BUCKETS.len()],
    /// Their latencies' sum, in nanoseconds.
    pub sum_ns: u64,
    /// How many (the `+Inf` bucket).
    pub count: u64,
}

impl UpdateHistogram {
    /// Counts one update that took `took`.
    pub fn observe(&mut self, took: std::time::Duration) {
        let s = took.as_secs_f64();
        if let Some(i) = UPDATE_BUCKETS.iter().position(|b| s <= *b) {
            self.buckets[i] += 1;
        }
        self.sum_ns = self
            .sum_ns
            .saturating_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
        self.count += 1;
    }
}

/// `"` `\` and newlines escaped, as label values need.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family: HELP, TYPE, then its samples.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.out, "{name}");
        if !labels.is_empty() {
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
                .collect();
            let _ = write!(self.out, "{{{}}}", l.join(","));
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A family of one sample per member: name, type, help, and the value.
type MemberFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&MemberEntry) -> String,
);

/// The exposition of `stats`, `members` and the service's `checks` and
/// counters.
pub fn render(
    stats: &Stats,
    members: &[MemberEntry],
    checks: &[CheckView],
    service: ServiceCounters,
) -> String {
    let mut out = String::new();
    let name = "anycast_packets_total";
    let mut f = Family::new(
        &mut out,
        name,
        "counter",
        "Packets by the data plane's verdict counter (as `anycast stats` names them).",
    );
    for (counter, v) in &stats.global {
        f.sample(name, &[("counter", counter)], v);
    }
    let name = "anycast_group_packets_total";
    let mut f = Family::new(
        &mut out,
        name,
        "counter",
        "Packets by group and verdict counter.",
    );
    for (group, g) in &stats.groups {
        for (counter, v) in &g.counters {
            f.sample(name, &[("group", group), ("counter", counter)], v);
        }
    }
    let name = "anycast_group_addresses";
    let mut f = Family::new(
        &mut out,
        name,
        "gauge",
        "Anycast addresses and prefixes of a group.",
    );
    for (group, g) in &stats.groups {
        f.sample(name, &[("group", group)], g.addresses);
    }
    let by_member = |m: &MemberEntry| [("group", m.group.clone()), ("member", m.name.clone())];
    let families: [MemberFamily; 6] = [
        (
            "anycast_member_packets_total",
            "counter",
            "Packets redirected to a member.",
            |m| m.packets.to_string(),
        ),
        (
            "anycast_member_bytes_total",
            "counter",
            "Bytes redirected to a member.",
            |m| m.bytes.to_string(),
        ),
        (
            "anycast_member_up",
            "gauge",
            "1 when the member is up (it may get traffic), 0 when down or draining.",
            |m| {
                u8::from(m.state == MemberState::Up && m.link == anycast_common::IfaceLink::Present)
                    .to_string()
            },
        ),
        (
            "anycast_member_nearest",
            "gauge",
            "1 when the member is among those that get the group's new flows.",
            |m| u8::from(m.nearest).to_string(),
        ),
        (
            "anycast_member_metric",
            "gauge",
            "The member's metric (lower is nearer).",
            |m| m.metric.to_string(),
        ),
        (
            "anycast_member_flows",
            "gauge",
            "Live flows the flow table holds for the member.",
            |m| m.flows.to_string(),
        ),
    ];
    for (name, kind, help, value) in families {
        let mut f = Family::new(&mut out, name, kind, help);
        for m in members {
            let [(gk, gv), (mk, mv)] = by_member(m);
            f.sample(name, &[(gk, &gv), (mk, &mv)], value(m));
        }
    }
    let name = "anycast_check_healthy";
    let mut f = Family::new(
        &mut out,
        name,
        "gauge",
        "1 when the member's check passes, 0 when it fails (absent until decided).",
    );
    for c in checks {
        if let Some(h) = c.healthy {
            f.sample(
                name,
                &[("group", &c.group), ("member", &c.member), ("kind", c.kind)],
                u8::from(h),
            );
        }
    }
    let name = "anycast_check_latency_seconds";
    let mut f = Family::new(
        &mut out,
        name,
        "gauge",
        "The latency of the member's last probe, when it passed.",
    );
    for c in checks {
        if let Some(l) = c.last_latency {
            f.sample(name, &[("group", &c.group), ("member", &c.member)], l);
        }
    }
    for (name, help, value) in [
        (
            "anycast_check_probes_total",
            "Probes of the member's check.",
            (|c: &CheckView| c.probes) as fn(&CheckView) -> u64,
        ),
        (
            "anycast_check_failures_total",
            "Probes of the member's check that failed.",
            |c| c.failures,
        ),
        (
            "anycast_check_transitions_total",
            "Changes of the member's health.",
            |c| c.transitions,
        ),
    ] {
        let mut f = Family::new(&mut out, name, "counter", help);
        for c in checks {
            f.sample(
                name,
                &[("group", &c.group), ("member", &c.member)],
                value(c),
            );
        }
    }
    let name = "anycast_reloads_total";
    let mut f = Family::new(
        &mut out,
        name,
        "counter",
        "Re-reads of the configuration file, by result.",
    );
    f.sample(name, &[("result", "applied")], service.reloads_applied);
    f.sample(name, &[("result", "refused")], service.reloads_refused);
    let name = "anycast_member_update_seconds";
    let h = &service.member_updates;
    let mut f = Family::new(
        &mut out,
        name,
        "histogram",
        "Time from the probe result that changed a member's health to the data plane's update.",
    );
    let bucket = format!("{name}_bucket");
    let mut below = 0;
    for (le, n) in UPDATE_BUCKETS.iter().zip(h.buckets) {
        below += n;
        f.sample(&bucket, &[("le", &le.to_string())], below);
    }
    f.sample(&bucket, &[("le", "+Inf")], h.count);
    f.sample(&format!("{name}_sum"), &[], h.sum_ns as f64 / 1e9);
    f.sample(&format!("{name}_count"), &[], h.count);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let mut stats = Stats::default();
        stats.global.insert("redirected", 7);
        let checks = [CheckView {
            group: "dns".into(),
            member: "m1".into(),
            kind: "udp",
            healthy: Some(true),
            last_latency: Some(0.0012),
            probes: 3,
            failures: 1,
            transitions: 1,
        }];
        let mut service = ServiceCounters::default();
        for ms in [3, 7, 40] {
            service
                .member_updates
                .observe(std::time::Duration::from_millis(ms));
        }
        let text = render(&stats, &[], &checks, service);
        assert!(
            text.contains("anycast_packets_total{counter=\"redirected\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("anycast_check_healthy{group=\"dns\",member=\"m1\",kind=\"udp\"} 1\n")
        );
        assert!(text.contains("anycast_reloads_total{result=\"refused\"} 0\n"));
        // The histogram's buckets are cumulative, +Inf is the count.
        for line in [
            "anycast_member_update_seconds_bucket{le=\"0.0025\"} 0\n",
            "anycast_member_update_seconds_bucket{le=\"0.005\"} 1\n",
            "anycast_member_update_seconds_bucket{le=\"0.01\"} 2\n",
            "anycast_member_update_seconds_bucket{le=\"0.025\"} 2\n",
            "anycast_member_update_seconds_bucket{le=\"0.05\"} 3\n",
            "anycast_member_update_seconds_bucket{le=\"+Inf\"} 3\n",
            "anycast_member_update_seconds_sum 0.05\n",
            "anycast_member_update_seconds_count 3\n",
        ] {
            assert!(text.contains(line), "{line} not in {text}");
        }
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap_or_default().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap_or_default();
                // A histogram's samples are its name and a suffix.
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|x| name.strip_suffix(x).filter(|f| typed.contains(*f)))
                    .unwrap_or(name);
                assert!(typed.contains(family), "{name} has no TYPE before it");
            }
        }
    }
}
