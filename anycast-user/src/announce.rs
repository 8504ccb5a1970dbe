//! When a group's prefixes are announced: the decision alone, on a clock
//! the caller gives (the service's [`crate::service::announce`] puts the
//! routes the BGP speaker exports; docs/BGP.md).
//!
//! A group's prefixes are announced while at least `announce-min-members`
//! of its members are live, and withdrawn at once when that fails. They
//! are announced again only once the condition has held for the hold-down
//! time, so that a flapping member does not make the prefix flap in BGP.
//! Maintenance and stopping withdraw everything; maintenance off announces
//! again what the condition allows.

use std::{
    collections::BTreeMap,
    fmt,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use crate::{addr::AnycastPrefix, config::Config, names::GroupName};

/// Why a group's prefixes are announced or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Reason {
    /// Nothing decided yet (the service just started).
    Starting,
    /// Enough live members, for at least the hold-down time: announced.
    Live {
        /// Live members.
        live: u32,
        /// Live members needed.
        min: u32,
    },
    /// Enough live members, but not for the hold-down time yet.
    HoldDown {
        /// Live members.
        live: u32,
        /// Live members needed.
        min: u32,
    },
    /// Too few live members: withdrawn.
    TooFewLive {
        /// Live members.
        live: u32,
        /// Live members needed.
        min: u32,
    },
    /// `anycast maintenance on`.
    Maintenance,
    /// The service is stopping (SIGTERM).
    Stopping,
}

impl Reason {
    /// Its kind, as `anycast status --json` names it (`reason.kind`) and
    /// the metrics label it.
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::Starting => "starting",
            Reason::Live { .. } => "live",
            Reason::HoldDown { .. } => "hold-down",
            Reason::TooFewLive { .. } => "too-few-live",
            Reason::Maintenance => "maintenance",
            Reason::Stopping => "stopping",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Starting => f.write_str("starting: no member decided yet"),
            Reason::Live { live, min } => write!(f, "{live} live members, {min} needed"),
            Reason::HoldDown { live, min } => write!(
                f,
                "{live} live members, {min} needed, held down until the hold-down time passes"
            ),
            Reason::TooFewLive { live, min } => {
                write!(f, "{live} live members, {min} needed")
            }
            Reason::Maintenance => f.write_str("maintenance"),
            Reason::Stopping => f.write_str("the service is stopping"),
        }
    }
}

/// A prefix announced or withdrawn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The prefix.
    pub prefix: AnycastPrefix,
    /// Its group.
    pub group: GroupName,
    /// Announced (else withdrawn).
    pub announced: bool,
    /// Why.
    pub reason: Reason,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.announced {
            "announced"
        } else {
            "withdrawn"
        };
        write!(
            f,
            "prefix {} of group {}: {what} ({})",
            self.prefix, self.group, self.reason
        )
    }
}

/// A prefix as [`Decider`] has it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixView {
    /// The prefix.
    pub prefix: AnycastPrefix,
    /// Its group.
    pub group: GroupName,
    /// Whether it is announced.
    pub announced: bool,
    /// Since when (announced or not).
    pub since: Instant,
    /// Why.
    pub reason: Reason,
    /// Times it was announced or withdrawn.
    pub changes: u64,
}

/// One group's announcement.
#[derive(Clone, Debug)]
struct GroupState {
    prefixes: Vec<AnycastPrefix>,
    min: u32,
    live: u32,
    /// Since when the condition (`live >= min`) holds, if it does.
    holds_since: Option<Instant>,
    announced: bool,
    since: Instant,
    reason: Reason,
    changes: u64,
}

/// Decides, for every group that announces, whether its prefixes are
/// announced now.
#[derive(Clone, Debug)]
pub struct Decider {
    hold_down: Duration,
    drain_time: Duration,
    /// Since when maintenance is on, if it is.
    maintenance: Option<Instant>,
    stopping: bool,
    groups: BTreeMap<GroupName, GroupState>,
}

impl Decider {
    /// A decider with no group, taking `[bgp]`'s times from `cfg`.
    pub fn new(cfg: &Config) -> Self {
        Decider {
            hold_down: cfg.bgp.hold_down,
            drain_time: cfg.bgp.drain_time,
            maintenance: None,
            stopping: false,
            groups: BTreeMap::new(),
        }
    }

    /// Takes a new file: its times, its groups that announce (a group
    /// that stays keeps its state). The changes: prefixes of groups gone or
    /// no more listed are withdrawn, new ones of an announced group
    /// announced.
    pub fn configure(&mut self, cfg: &Config, now: Instant) -> Vec<Change> {
        self.hold_down = cfg.bgp.hold_down;
        self.drain_time = cfg.bgp.drain_time;
        let mut out = Vec::new();
        let mut old = std::mem::take(&mut self.groups);
        for (name, gc) in cfg.groups.iter().filter(|(_, g)| !g.announce.is_empty()) {
            let mut st = old.remove(name).unwrap_or(GroupState {
                prefixes: Vec::new(),
                min: gc.announce_min_members,
                live: 0,
                holds_since: None,
                announced: false,
                since: now,
                reason: Reason::Starting,
                changes: 0,
            });
            for p in &st.prefixes {
                if st.announced && !gc.announce.contains(p) {
                    out.push(change(*p, name, false, st.reason));
                }
            }
            for p in &gc.announce {
                if st.announced && !st.prefixes.contains(p) {
                    out.push(change(*p, name, true, st.reason));
                }
            }
            st.prefixes = gc.announce.clone();
            st.min = gc.announce_min_members;
            self.groups.insert(name.clone(), st);
        }
        for (name, st) in old {
            if st.announced {
                let why = Reason::TooFewLive {
                    live: 0,
                    min: st.min,
                };
                out.extend(st.prefixes.iter().map(|p| change(*p, &name, false, why)));
            }
        }
        out
    }

    /// Takes the live members of every group (a group not in `live` has
    /// none) and decides; the changes.
    pub fn update(&mut self, live: &BTreeMap<GroupName, u32>, now: Instant) -> Vec<Change> {
        for (name, st) in &mut self.groups {
            st.live = live.get(name).copied().unwrap_or(0);
            if st.live < st.min {
                st.holds_since = None;
            } else if st.holds_since.is_none() {
                st.holds_since = Some(now);
            }
        }
        self.decide(now)
    }

    /// Decides again (a hold-down may have passed); the changes.
    pub fn decide(&mut self, now: Instant) -> Vec<Change> {
        let mut out = Vec::new();
        for (name, st) in &mut self.groups {
            let (live, min) = (st.live, st.min);
            let (announce, reason) = if self.stopping {
                (false, Reason::Stopping)
            } else if self.maintenance.is_some() {
                (false, Reason::Maintenance)
            } else {
                match st.holds_since {
                    None => (false, Reason::TooFewLive { live, min }),
                    // Once announced, it stays while the condition holds.
                    Some(_) if st.announced => (true, Reason::Live { live, min }),
                    Some(t) if now.saturating_duration_since(t) >= self.hold_down => {
                        (true, Reason::Live { live, min })
                    }
                    Some(_) => (false, Reason::HoldDown { live, min }),
                }
            };
            // Before the first decision, a group with no live member is
            // still "starting" (the checks have not run yet).
            let reason = match (st.reason, reason) {
                (Reason::Starting, Reason::TooFewLive { live: 0, .. }) => Reason::Starting,
                (_, r) => r,
            };
            if announce != st.announced {
                st.announced = announce;
                st.since = now;
                st.changes += 1;
                out.extend(
                    st.prefixes
                        .iter()
                        .map(|p| change(*p, name, announce, reason)),
                );
            }
            st.reason = reason;
        }
        out
    }

    /// When [`Decider::decide`] must run next (a hold-down ends), or the
    /// drain of maintenance ends; none when nothing waits.
    pub fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        let holds = self
            .groups
            .values()
            .filter(|s| !s.announced && !self.stopping && self.maintenance.is_none())
            .filter_map(|s| s.holds_since.map(|t| t + self.hold_down));
        let drain = self.drain_ends().filter(|t| *t > now);
        holds.chain(drain).min()
    }

    /// Turns maintenance on (everything withdrawn) or off (announced again
    /// as the condition allows: it held through maintenance, so no new
    /// hold-down); the changes.
    pub fn set_maintenance(&mut self, on: bool, now: Instant) -> Vec<Change> {
        match (on, self.maintenance) {
            (true, None) => self.maintenance = Some(now),
            (false, Some(_)) => self.maintenance = None,
            _ => return Vec::new(),
        }
        self.decide(now)
    }

    /// Whether maintenance is on, and since when.
    pub fn maintenance(&self) -> Option<Instant> {
        self.maintenance
    }

    /// When the drain of maintenance ends (maintenance on + drain time).
    pub fn drain_ends(&self) -> Option<Instant> {
        self.maintenance.map(|t| t + self.drain_time)
    }

    /// Whether maintenance is on and its drain time has passed.
    pub fn drained(&self, now: Instant) -> bool {
        self.drain_ends().is_some_and(|t| now >= t)
    }

    /// The drain time (`[bgp] drain-time`).
    pub fn drain_time(&self) -> Duration {
        self.drain_time
    }

    /// Withdraws everything for good (the service is stopping); the changes.
    pub fn stop(&mut self, now: Instant) -> Vec<Change> {
        self.stopping = true;
        self.decide(now)
    }

    /// Whether any group announces (or is configured to).
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Every prefix, by group.
    pub fn prefixes(&self) -> impl Iterator<Item = PrefixView> + '_ {
        self.groups.iter().flat_map(|(g, st)| {
            st.prefixes.iter().map(move |p| PrefixView {
                prefix: *p,
                group: g.clone(),
                announced: st.announced,
                since: st.since,
                reason: st.reason,
                changes: st.changes,
            })
        })
    }
}

fn change(prefix: AnycastPrefix, group: &GroupName, announced: bool, reason: Reason) -> Change {
    Change {
        prefix,
        group: group.clone(),
        announced,
        reason,
    }
}

#[cfg(test)]
mod tests;
