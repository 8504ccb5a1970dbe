//! The service (`anycast run --config FILE`): applies a configuration file
//! through the reconciler, runs every member's health check, and takes a
//! member out of its group's selection while its check fails. SIGHUP (and
//! `anycast reload`, over [`socket`]) re-reads the file: one that does not
//! parse, validate or apply is refused whole and the running configuration
//! stays.
//!
//! A member's state in the data plane is the file's state (up, down,
//! drain) while its check passes, down while it fails, and, until its
//! check has decided, the state the data plane had when the service
//! started (a restart adopts what the last service decided). An on-link
//! member given by address gets its MAC from the neighbour table, a member
//! with `metric = "route"` its metric from its route ([`follow`]); one whose
//! address cannot be resolved, or that has no route, is down.

pub mod announce;
pub mod follow;
pub mod logging;
pub mod socket;
pub mod systemd;
pub mod updates;

use std::{
    collections::HashMap,
    net::{Ipv6Addr, SocketAddr},
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use anycast_common::MemberState;
use tokio::{sync::mpsc, task::JoinHandle};

use self::{
    follow::Follow,
    socket::{LastReload, MemberStatus, Reloaded, Status},
    updates::Updates,
};

use crate::{
    Dataplane,
    config::Config,
    error::{Error, Result},
    health::{self, Check, Health, Probe, ProbeTarget, Target, Tracker},
    members::MemberVia,
    metrics::{self, CheckView, ServiceCounters},
    names::{GroupName, MemberName},
    netlink::events::NetEvent,
    probe_path::ProbePaths,
    reconcile::{ApplyOptions, Change},
    service::logging::LogLevel,
};

/// Reads and validates the file at `path`; the error names the file.
pub fn load(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Config::parse(&text).map_err(|e| Error::ConfigFile {
        path: path.to_path_buf(),
        source: e,
    })
}

/// One probe's result, from a member's check task.
pub struct Outcome {
    /// The configuration it belongs to (a reload starts a new one).
    generation: u64,
    /// The member's place in [`Service::watched`].
    index: usize,
    /// Latency, or why it failed.
    result: std::result::Result<Duration, String>,
    /// When the result came in (a member update is timed from here).
    at: Instant,
}

/// A member whose check runs.
struct Watched {
    group: GroupName,
    member: MemberName,
    /// The state the file gives it.
    wanted: MemberState,
    /// The state it had in the data plane when the service started.
    adopted: Option<MemberState>,
    /// How the data plane reaches it (its probe path follows).
    via: MemberVia,
    check: Check,
    target: ProbeTarget,
    tracker: Tracker,
    task: JoinHandle<()>,
    /// Probes run, failed, and changes of health.
    probes: u64,
    failures: u64,
    transitions: u64,
    /// The last probe's latency, when it passed.
    last_latency: Option<Duration>,
    /// Why the last probe failed, when it did.
    last_error: Option<String>,
}

impl Watched {
    /// What the data plane should say of this member now.
    fn state(&self) -> MemberState {
        decided(self.tracker.health(), self.wanted, self.adopted)
    }

    /// Whether this check's health still holds for `check` of a member
    /// reached by `via` (after a reload).
    fn keeps(&self, check: &Check, via: &MemberVia) -> bool {
        self.check == *check && self.via == *via
    }
}

/// A member's state in the data plane: the file's (`wanted`), down while
/// its check fails, and, until its check decides, the state it had
/// (`adopted`) when the file wants it up: a restarted service does not send
/// traffic to a member its predecessor found failing.
fn decided(health: Health, wanted: MemberState, adopted: Option<MemberState>) -> MemberState {
    match health {
        Health::Failing => MemberState::Down,
        Health::Healthy => wanted,
        Health::Unknown => match (wanted, adopted) {
            (MemberState::Up, Some(had)) => had,
            (wanted, _) => wanted,
        },
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The running service: the file it keeps applied to a data plane, and the
/// checks of its members.
pub struct Service {
    file: PathBuf,
    opts: ApplyOptions,
    generation: u64,
    watched: Vec<Watched>,
    tx: mpsc::UnboundedSender<Outcome>,
    rx: Option<mpsc::UnboundedReceiver<Outcome>>,
    /// The routes of checks with target `anycast`.
    paths: ProbePaths,
    /// Where the file wants the metrics served.
    metrics: Option<SocketAddr>,
    /// The file's log level (`[service] log-level`).
    log_level: Option<LogLevel>,
    counters: ServiceCounters,
    started: SystemTime,
    last_reload: Option<LastReload>,
    /// The latest member updates' latencies.
    updates: Updates,
    /// The neighbours and routes of the members.
    follow: Follow,
    /// The file applied last, and what was applied of it (the MACs and
    /// metrics followed filled in).
    file_cfg: Config,
    applied: Config,
    /// Members down for want of a neighbour or a route, and why (as last
    /// reported).
    problems: std::collections::BTreeMap<(String, String), String>,
    /// The groups' announcements ([`announce`]).
    announcer: announce::Announcer,
}

/// How long the service waits for new on-link members given by address to
/// be resolved before it applies a file (they are added when they are).
pub const RESOLVE_WAIT: Duration = Duration::from_secs(3);

impl Service {
    /// Applies `file` to `dp` and starts its members' checks (on the
    /// current tokio runtime); the changes the file made.
    pub fn start(
        dp: &mut Dataplane,
        file: &Path,
        opts: ApplyOptions,
    ) -> Result<(Self, Vec<Change>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut s = Service {
            file: file.to_path_buf(),
            opts,
            generation: 0,
            watched: Vec::new(),
            tx,
            rx: Some(rx),
            paths: ProbePaths::default(),
            metrics: None,
            log_level: None,
            counters: ServiceCounters::default(),
            started: SystemTime::now(),
            last_reload: None,
            updates: Updates::default(),
            follow: Follow::default(),
            file_cfg: Config::default(),
            applied: Config::default(),
            problems: Default::default(),
            announcer: Default::default(),
        };
        // What a service killed before it could clean up left behind.
        if let Err(e) = ProbePaths::clear_stale() {
            log::warn!("removing the probe paths of an earlier run: {e}");
        }
        let cfg = load(file)?;
        // What a service before this one left: kept until checks decide.
        let had: HashMap<(String, String), MemberState> = dp
            .members(None)?
            .into_iter()
            .map(|m| ((m.group, m.name), m.state))
            .collect();
        s.follow.want(&cfg, RESOLVE_WAIT)?;
        let changes = s.apply(dp, &cfg, &had)?;
        Ok((s, changes))
    }

    /// The configuration file it serves.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The interfaces (`[interface.NAME]`) of the file applied last.
    pub fn interfaces(&self) -> impl Iterator<Item = &str> {
        self.file_cfg.interfaces.keys().map(String::as_str)
    }

    /// How many members have a check.
    pub fn checked(&self) -> usize {
        self.watched.len()
    }

    /// Applies `cfg` and restarts the checks; a member whose check is the
    /// same as before keeps its health (and a failing one stays down), one
    /// in `had` (the state a service before this one left) keeps that until
    /// its check decides. The data plane gets each member's state in one
    /// write: the file's, but for what checks decided.
    ///
    /// `file` is the file as written; what is applied is its
    /// [`Follow::effective`] form (the caller has [`Follow::want`]ed it).
    fn apply(
        &mut self,
        dp: &mut Dataplane,
        file: &Config,
        had: &HashMap<(String, String), MemberState>,
    ) -> Result<Vec<Change>> {
        let cfg = &self.follow.effective(file);
        let adjusted = self.adjusted(cfg, had);
        let changes = dp.apply_config(&adjusted, self.opts)?;
        self.file_cfg = file.clone();
        self.applied = cfg.clone();
        for line in self.announce_configure() {
            log::info!("{line}");
        }
        self.metrics = cfg.service.metrics;
        self.log_level = cfg.service.log_level;
        let mut before: HashMap<(GroupName, MemberName), Watched> = self
            .watched
            .drain(..)
            .map(|w| ((w.group.clone(), w.member.clone()), w))
            .collect();
        self.generation += 1;
        // The old checks are stopped (dropped with `before`) before their
        // paths go.
        self.paths.clear();
        let mut paths = 0u32;
        for (g, gc) in &cfg.groups {
            for (m, mc) in &gc.members {
                let Some(check) = &mc.check else { continue };
                let mut target = ProbeTarget {
                    // An exec check reaches no address itself: it is told
                    // the member's, when it has one.
                    addr: mc.unicast().unwrap_or(Ipv6Addr::UNSPECIFIED),
                    mark: None,
                    broken: None,
                    group: g.to_string(),
                    member: m.to_string(),
                };
                if check.target == Target::Anycast && !matches!(check.probe, Probe::Exec { .. }) {
                    // The file makes sure the group has an exact address.
                    let anycast = gc
                        .all_addresses()
                        .find(|a| a.is_exact())
                        .map_or(Ipv6Addr::UNSPECIFIED, |a| a.addr);
                    target.addr = anycast;
                    match self.paths.install(paths, anycast, &mc.via) {
                        Ok(mark) => target.mark = Some(mark),
                        // The member fails its check, with the reason.
                        Err(e) => target.broken = Some(e.to_string()),
                    }
                    paths += 1;
                }
                let kept = before
                    .remove(&(g.clone(), m.clone()))
                    .filter(|old| old.keeps(check, &mc.via));
                let tracker = kept.as_ref().map_or_else(
                    || Tracker::new(check.rise, check.fall),
                    |old| old.tracker.clone(),
                );
                let (probes, failures, transitions, last_latency, last_error) =
                    kept.as_ref().map_or((0, 0, 0, None, None), |o| {
                        (
                            o.probes,
                            o.failures,
                            o.transitions,
                            o.last_latency,
                            o.last_error.clone(),
                        )
                    });
                let index = self.watched.len();
                let task = spawn_check(
                    check.clone(),
                    target.clone(),
                    self.generation,
                    index,
                    self.tx.clone(),
                );
                self.watched.push(Watched {
                    group: g.clone(),
                    member: m.clone(),
                    wanted: mc.state,
                    adopted: had.get(&(g.to_string(), m.to_string())).copied(),
                    via: mc.via.clone(),
                    check: check.clone(),
                    target,
                    tracker,
                    task,
                    probes,
                    failures,
                    transitions,
                    last_latency,
                    last_error,
                });
            }
        }
        Ok(changes)
    }

    /// `cfg` with each checked member's state as its check decides (see
    /// [`decided`]).
    fn adjusted(&self, cfg: &Config, had: &HashMap<(String, String), MemberState>) -> Config {
        let mut adjusted = cfg.clone();
        for (g, gc) in &mut adjusted.groups {
            for (m, mc) in &mut gc.members {
                let Some(check) = &mc.check else { continue };
                let health = self
                    .watched
                    .iter()
                    .find(|w| w.group == *g && w.member == *m && w.keeps(check, &mc.via))
                    .map_or(Health::Unknown, |w| w.tracker.health());
                mc.state = decided(
                    health,
                    mc.state,
                    had.get(&(g.to_string(), m.to_string())).copied(),
                );
            }
        }
        adjusted
    }

    /// Takes what the neighbour and route events said; the lines to report.
    pub fn net_events(&mut self, dp: &mut Dataplane, events: Vec<NetEvent>) -> Vec<String> {
        let mut lines = Vec::new();
        let mut changed = false;
        for e in events {
            match e {
                NetEvent::Neighbour { entry, gone } => {
                    changed |= self.follow.neighbours.event(&entry, gone);
                }
                NetEvent::Routes => changed |= self.follow.routes.refresh(),
                NetEvent::Overrun => {
                    lines.push(
                        "netlink events overran (events lost): reading the neighbour table \
                         and the routes whole again"
                            .to_string(),
                    );
                    match self.follow.neighbours.resync() {
                        Ok(c) => changed |= c,
                        Err(e) => lines.push(format!("reading the neighbour table: {e}")),
                    }
                    changed |= self.follow.routes.refresh();
                }
            }
        }
        if changed {
            lines.extend(self.follow_up(dp));
        }
        lines
    }

    /// After a link event: interfaces may have new indexes, so the
    /// neighbour table is read whole again; the lines to report.
    pub fn links_changed(&mut self, dp: &mut Dataplane) -> Vec<String> {
        if self.follow.neighbours.is_empty() {
            return Vec::new();
        }
        match self.follow.neighbours.resync() {
            Ok(true) => self.follow_up(dp),
            Ok(false) => Vec::new(),
            Err(e) => vec![format!("reading the neighbour table: {e}")],
        }
    }

    /// Solicits the members' addresses whose time has come (unresolved
    /// ones with a backoff, stale ones once); lines of those that failed.
    pub fn solicit(&mut self) -> Vec<String> {
        self.follow.neighbours.tick(std::time::Instant::now())
    }

    /// Whether the service follows any neighbour (and needs [`Service::solicit`]).
    pub fn follows_neighbours(&self) -> bool {
        !self.follow.neighbours.is_empty()
    }

    /// Brings the data plane in line with what the neighbours and routes
    /// say now, through the same reconciliation as a reload: a new MAC or
    /// metric changes the member in place (its id, counters and flows
    /// stay); a member resolved for the first time is added (its check
    /// starts over with a new probe path). The lines to report.
    fn follow_up(&mut self, dp: &mut Dataplane) -> Vec<String> {
        let now = self.follow.effective(&self.file_cfg);
        if now == self.applied {
            return Vec::new();
        }
        let mut lines = self.problems_changed();
        // Members whose checks have not decided yet keep what they adopted.
        let adopted: HashMap<(String, String), MemberState> = self
            .watched
            .iter()
            .filter_map(|w| {
                let had = w.adopted?;
                Some(((w.group.to_string(), w.member.to_string()), had))
            })
            .collect();
        let vias = |c: &Config| -> Vec<(String, String, MemberVia)> {
            c.groups
                .iter()
                .flat_map(|(g, gc)| {
                    gc.members
                        .iter()
                        .map(move |(m, mc)| (g.to_string(), m.to_string(), mc.via.clone()))
                })
                .collect()
        };
        let result = if vias(&now) == vias(&self.applied) {
            for w in &mut self.watched {
                if let Some(mc) = now
                    .groups
                    .get(&w.group)
                    .and_then(|g| g.members.get(&w.member))
                {
                    w.wanted = mc.state;
                }
            }
            let adjusted = self.adjusted(&now, &adopted);
            let applied = dp.apply_config(&adjusted, self.opts);
            if applied.is_ok() {
                self.applied = now;
            }
            applied
        } else {
            let file = self.file_cfg.clone();
            self.apply(dp, &file, &adopted)
        };
        match result {
            Ok(changes) => lines.extend(
                changes
                    .iter()
                    .map(|c| format!("following the network: {c}")),
            ),
            Err(e) => lines.push(format!("following the network: not applied: {e}")),
        }
        lines
    }

    /// A line for each member whose reason to be down (unresolved, no
    /// route) came, changed or went since the last call.
    pub fn problems_changed(&mut self) -> Vec<String> {
        let mut now = std::collections::BTreeMap::new();
        for (g, gc) in &self.file_cfg.groups {
            for (m, mc) in &gc.members {
                if let Some(why) = self.follow.problem(mc) {
                    now.insert((g.to_string(), m.to_string()), why);
                }
            }
        }
        let mut lines = Vec::new();
        for ((g, m), why) in &now {
            if self.problems.get(&(g.clone(), m.clone())) != Some(why) {
                lines.push(format!("member {m} of group {g}: down ({why})"));
            }
        }
        for (g, m) in self.problems.keys() {
            if !now.contains_key(&(g.clone(), m.clone())) {
                lines.push(format!("member {m} of group {g}: reachable again"));
            }
        }
        self.problems = now;
        lines
    }

    /// Writes member `i`'s state to the data plane.
    fn publish(&self, dp: &mut Dataplane, i: usize) -> Result<()> {
        let w = &self.watched[i];
        let state = w.state();
        dp.set_member(w.group.as_str(), w.member.as_str(), None, Some(state), None)
    }

    /// Re-reads the file and applies it; on any error the running
    /// configuration stays. What came of it, as lines to report.
    pub fn reload(&mut self, dp: &mut Dataplane) -> Reloaded {
        let applied = load(&self.file).and_then(|cfg| {
            self.follow.want(&cfg, RESOLVE_WAIT)?;
            self.apply(dp, &cfg, &HashMap::new())
        });
        if applied.is_err() {
            // The running file's members are followed again.
            let running = self.file_cfg.clone();
            if let Err(e) = self.follow.want(&running, Duration::ZERO) {
                log::warn!("following the running file's members again: {e}");
            }
        }
        let reloaded = match applied {
            Ok(changes) => {
                self.counters.reloads_applied += 1;
                let mut lines: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
                lines.extend(self.problems_changed());
                lines.push(format!(
                    "reloaded {}: {} changed, {} members checked",
                    self.file.display(),
                    changes.len(),
                    self.watched.len()
                ));
                Reloaded {
                    applied: true,
                    lines,
                }
            }
            Err(e) => {
                self.counters.reloads_refused += 1;
                Reloaded {
                    applied: false,
                    lines: vec![format!(
                        "reload refused: {e}; the running configuration stays"
                    )],
                }
            }
        };
        self.last_reload = Some(LastReload {
            at: unix_seconds(SystemTime::now()),
            applied: reloaded.applied,
            message: reloaded.lines.last().cloned().unwrap_or_default(),
        });
        reloaded
    }

    /// The service's view, for `anycast status`.
    pub fn status(&self, pin: &Path) -> Status {
        Status {
            file: self.file.clone(),
            pin_dir: pin.to_path_buf(),
            pid: std::process::id(),
            started: unix_seconds(self.started),
            reloads_applied: self.counters.reloads_applied,
            reloads_refused: self.counters.reloads_refused,
            last_reload: self.last_reload.clone(),
            member_updates: self.updates.summary(),
            members: self
                .watched
                .iter()
                .map(|w| MemberStatus {
                    group: w.group.to_string(),
                    member: w.member.to_string(),
                    kind: w.check.probe.kind().to_string(),
                    target: format!(
                        "{} {}",
                        match w.check.target {
                            Target::Anycast => "anycast",
                            Target::Unicast => "unicast",
                        },
                        w.target.addr
                    ),
                    health: w.tracker.health().to_string(),
                    state: w.state().to_string(),
                    last_error: w.last_error.clone(),
                    last_latency_ms: w.last_latency.map(|d| d.as_secs_f64() * 1e3),
                    probes: w.probes,
                    failures: w.failures,
                })
                .collect(),
            reachability: self.follow.reachability(&self.file_cfg, &self.applied),
            announcements: self.announcer.status(Instant::now()),
        }
    }

    /// Where the file wants the metrics served (`[service] metrics`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
    }

    /// The log level the file names (`[service] log-level`), if any.
    pub fn log_level(&self) -> Option<LogLevel> {
        self.log_level
    }

    /// The metrics exposition: the data plane's counters and members, and
    /// the checks.
    pub fn metrics(&self, dp: &Dataplane) -> Result<String> {
        let checks: Vec<CheckView> = self
            .watched
            .iter()
            .map(|w| CheckView {
                group: w.group.to_string(),
                member: w.member.to_string(),
                kind: w.check.probe.kind(),
                healthy: match w.tracker.health() {
                    Health::Unknown => None,
                    h => Some(h == Health::Healthy),
                },
                last_latency: w.last_latency.map(|d| d.as_secs_f64()),
                probes: w.probes,
                failures: w.failures,
                transitions: w.transitions,
            })
            .collect();
        let mut text = metrics::render(&dp.stats()?, &dp.members(None)?, &checks, self.counters);
        text.push_str(&self.announcer.metrics());
        Ok(text)
    }

    /// The probe results, to wait on beside other events (given once).
    pub fn take_outcomes(&mut self) -> Option<mpsc::UnboundedReceiver<Outcome>> {
        self.rx.take()
    }

    /// Counts a probe result; when it changes the member's health, writes
    /// the member's new state to `dp` and returns the line to report.
    pub fn record(&mut self, dp: &mut Dataplane, o: Outcome) -> Option<String> {
        if o.generation != self.generation {
            // A check of the configuration before the last reload.
            return None;
        }
        let w = self.watched.get_mut(o.index)?;
        w.probes += 1;
        let (member, group, kind) = (&w.member, &w.group, w.check.probe.kind());
        match &o.result {
            Ok(latency) => {
                log::debug!(
                    "member {member} of group {group}: {kind} check of {} passed in {:.1} ms",
                    w.target.addr,
                    latency.as_secs_f64() * 1e3
                );
                w.last_latency = Some(*latency);
                w.last_error = None;
            }
            Err(e) => {
                log::debug!(
                    "member {member} of group {group}: {kind} check of {} failed: {e}",
                    w.target.addr
                );
                w.failures += 1;
                w.last_latency = None;
                w.last_error = Some(e.clone());
            }
        }
        let changed = w.tracker.record(o.result.is_ok())?;
        w.transitions += 1;
        // The data plane first; the line is for the log.
        let published = self.publish(dp, o.index);
        let took = o.at.elapsed();
        let w = &self.watched[o.index];
        let why = match &o.result {
            Ok(latency) => format!("answered in {:.1} ms", latency.as_secs_f64() * 1e3),
            Err(e) => e.clone(),
        };
        let what = match changed {
            Health::Healthy => "healthy",
            _ => "failing",
        };
        let mut line = format!(
            "member {} of group {}: {what} ({} check: {why})",
            w.member,
            w.group,
            w.check.probe.kind()
        );
        match published {
            Ok(()) => {
                line.push_str(&format!("; {}", w.state()));
                self.updates.record(took);
                self.counters.member_updates.observe(took);
            }
            // A member deleted under the service (by the CLI) is reported,
            // and the service goes on.
            Err(e) => line.push_str(&format!("; not changed: {e}")),
        }
        Some(line)
    }
}

/// Seconds since the Unix epoch of `t`.
fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs `check` against `target` every interval (first after a delay
/// spread over the interval), sending each result.
fn spawn_check(
    check: Check,
    target: ProbeTarget,
    generation: u64,
    index: usize,
    tx: mpsc::UnboundedSender<Outcome>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let seed = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (&target.group, &target.member).hash(&mut h);
            h.finish()
        };
        tokio::time::sleep(check.first_delay(seed)).await;
        let mut every = tokio::time::interval(check.interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let result = health::probe(&check, &target)
                .await
                .map_err(|e| e.to_string());
            let o = Outcome {
                generation,
                index,
                result,
                at: Instant::now(),
            };
            if tx.send(o).is_err() {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_decide_and_a_restart_keeps_what_the_last_service_decided() {
        use MemberState::{Down, Draining, Up};
        // A failing check takes any member down; a healthy one gives the
        // file's state.
        for wanted in [Up, Down, Draining] {
            assert_eq!(decided(Health::Failing, wanted, Some(Up)), Down);
            assert_eq!(decided(Health::Healthy, wanted, Some(Down)), wanted);
        }
        // Undecided: a member the file wants up keeps the state it had...
        assert_eq!(decided(Health::Unknown, Up, Some(Down)), Down);
        assert_eq!(decided(Health::Unknown, Up, Some(Up)), Up);
        assert_eq!(decided(Health::Unknown, Up, None), Up);
        // ...and one the file takes down or drains goes so at once.
        assert_eq!(decided(Health::Unknown, Down, Some(Up)), Down);
        assert_eq!(decided(Health::Unknown, Draining, Some(Up)), Draining);
    }
}
