//! The service (`anycast run --config FILE`): applies a configuration file
//! through the reconciler, runs every member's health check, and takes a
//! member out of its group's selection while its check fails. SIGHUP
//! re-reads the file: one that does not parse or validate is refused whole
//! and the running configuration stays.
//!
//! A member's state in the data plane is the file's state (up, down,
//! drain) while its check is healthy or undecided, and down while it fails.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};

use anycast_common::MemberState;
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    Dataplane,
    config::Config,
    error::{Error, Result},
    health::{self, Check, Health, ProbeTarget, Tracker},
    names::{GroupName, MemberName},
    reconcile::{ApplyOptions, Change},
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
}

/// A member whose check runs.
struct Watched {
    group: GroupName,
    member: MemberName,
    /// The state the file gives it.
    wanted: MemberState,
    check: Check,
    target: ProbeTarget,
    tracker: Tracker,
    task: JoinHandle<()>,
}

impl Watched {
    /// What the data plane should say of this member now.
    fn state(&self) -> MemberState {
        match self.tracker.health() {
            Health::Failing => MemberState::Down,
            Health::Healthy | Health::Unknown => self.wanted,
        }
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
}

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
        };
        let cfg = load(file)?;
        let changes = s.apply(dp, &cfg)?;
        Ok((s, changes))
    }

    /// How many members have a check.
    pub fn checked(&self) -> usize {
        self.watched.len()
    }

    /// Applies `cfg` and restarts the checks; a member whose check is the
    /// same as before keeps its health (and a failing one stays down).
    fn apply(&mut self, dp: &mut Dataplane, cfg: &Config) -> Result<Vec<Change>> {
        let changes = dp.apply_config(cfg, self.opts)?;
        let mut before: HashMap<(GroupName, MemberName), Watched> = self
            .watched
            .drain(..)
            .map(|w| ((w.group.clone(), w.member.clone()), w))
            .collect();
        self.generation += 1;
        for (g, gc) in &cfg.groups {
            for (m, mc) in &gc.members {
                let Some(check) = &mc.check else { continue };
                // The file refuses target `anycast` but for an exec check,
                // which reaches no address itself (it is told the
                // member's, when it has one).
                let target = ProbeTarget {
                    addr: mc.unicast().unwrap_or(std::net::Ipv6Addr::UNSPECIFIED),
                    group: g.to_string(),
                    member: m.to_string(),
                };
                let tracker = match before.remove(&(g.clone(), m.clone())) {
                    Some(old) if old.check == *check && old.target.addr == target.addr => {
                        old.tracker.clone()
                    }
                    _ => Tracker::new(check.rise, check.fall),
                };
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
                    check: check.clone(),
                    target,
                    tracker,
                    task,
                });
            }
        }
        // The file set every member's state: put back what failing
        // checks decided.
        for i in 0..self.watched.len() {
            if self.watched[i].state() != self.watched[i].wanted
                && let Err(e) = self.publish(dp, i)
            {
                // The file is applied; the next change of health retries.
                let w = &self.watched[i];
                log::warn!(
                    "member {} of group {}: keeping it down failed: {e}",
                    w.member,
                    w.group
                );
            }
        }
        Ok(changes)
    }

    /// Writes member `i`'s state to the data plane.
    fn publish(&self, dp: &mut Dataplane, i: usize) -> Result<()> {
        let w = &self.watched[i];
        let state = w.state();
        dp.set_member(w.group.as_str(), w.member.as_str(), None, Some(state), None)
    }

    /// Re-reads the file and applies it; on any error the running
    /// configuration stays. The lines to report.
    pub fn reload(&mut self, dp: &mut Dataplane) -> Vec<String> {
        let cfg = match load(&self.file) {
            Ok(c) => c,
            Err(e) => {
                return vec![format!(
                    "reload refused: {e}; the running configuration stays"
                )];
            }
        };
        match self.apply(dp, &cfg) {
            Ok(changes) => {
                let mut lines: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
                lines.push(format!(
                    "reloaded {}: {} changed, {} members checked",
                    self.file.display(),
                    changes.len(),
                    self.watched.len()
                ));
                lines
            }
            Err(e) => vec![format!(
                "reload refused: {e}; the running configuration stays"
            )],
        }
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
        let changed = w.tracker.record(o.result.is_ok())?;
        let why = match &o.result {
            Ok(latency) => format!("answered in {:.1} ms", latency.as_secs_f64() * 1e3),
            Err(e) => e.clone(),
        };
        let (group, member, state) = (w.group.clone(), w.member.clone(), w.state());
        let kind = w.check.probe.kind();
        let what = match changed {
            Health::Healthy => "healthy",
            _ => "failing",
        };
        let mut line = format!("member {member} of group {group}: {what} ({kind} check: {why})");
        match self.publish(dp, o.index) {
            Ok(()) => line.push_str(&format!("; {state}")),
            // A member deleted under the service (by the CLI) is reported,
            // and the service goes on.
            Err(e) => line.push_str(&format!("; not changed: {e}")),
        }
        Some(line)
    }
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
            };
            if tx.send(o).is_err() {
                return;
            }
        }
    })
}
