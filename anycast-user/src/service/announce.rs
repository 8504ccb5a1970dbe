//! The service's announcements: each announced prefix is a route
//! `PREFIX dev anycast-bgp0 table T proto P` (rtnetlink), which the BGP
//! speaker imports from table T and exports to its peers (docs/BGP.md).
//! The device is a non-persistent tun the service holds open: when the
//! service dies, even by SIGKILL, the kernel removes it and its routes,
//! so no announcement outlives the service ([`crate::tun`]).
//!
//! [`crate::announce::Decider`] decides; this does what it decides, logs
//! each change and keeps what `anycast status` and the metrics show.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    io,
    time::{Instant, SystemTime},
};

use serde::{Deserialize, Serialize};

use super::Service;
use crate::{
    announce::{Change, Decider, Reason},
    config::{BgpConfig, Config},
    health::Health,
    names::GroupName,
    netlink::{
        Socket,
        route::{self, Own},
    },
    tun::Tun,
};

/// The tun device the announced routes point at.
pub const TUN_NAME: &str = "anycast-bgp0";

/// A prefix in `anycast status`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PrefixStatus {
    /// The prefix.
    pub prefix: String,
    /// Its group.
    pub group: String,
    /// Whether it is announced (its route is in the table).
    pub announced: bool,
    /// Since when, announced or not (seconds since the Unix epoch).
    pub since: f64,
    /// Why.
    pub reason: Reason,
    /// Why, in words.
    pub why: String,
    /// Times it was announced or withdrawn.
    pub changes: u64,
}

/// The node's announcements in `anycast status`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AnnounceStatus {
    /// The routing table and protocol of the routes, and the device.
    pub table: u32,
    /// See `table`.
    pub protocol: u8,
    /// See `table`.
    pub device: String,
    /// Whether maintenance is on.
    pub maintenance: bool,
    /// Maintenance on and its drain time passed.
    pub drained: bool,
    /// Every prefix.
    pub prefixes: Vec<PrefixStatus>,
}

/// The answer to `maintenance on|off`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MaintenanceAnswer {
    /// Maintenance is now on.
    pub on: bool,
    /// The changes made.
    pub lines: Vec<String>,
    /// Seconds until the drain time has passed (0 when off or drained).
    pub drain_left: f64,
}

/// The routes of the announced prefixes, and the device they point at.
struct Routes {
    tun: Tun,
    socket: Socket,
}

/// What the service announces.
pub struct Announcer {
    decider: Decider,
    bgp: BgpConfig,
    routes: Option<Routes>,
    /// Routes in the table now.
    installed: Vec<Own>,
    /// The last failure to put a route back, logged once.
    failing: Option<String>,
    /// A moment on both clocks, to tell since-when in Unix time.
    anchor: (Instant, SystemTime),
}

impl Default for Announcer {
    fn default() -> Self {
        Announcer {
            decider: Decider::new(&Config::default()),
            bgp: BgpConfig::default(),
            routes: None,
            installed: Vec::new(),
            failing: None,
            anchor: (Instant::now(), SystemTime::now()),
        }
    }
}

impl Announcer {
    /// Takes a new file; the lines to log. The device is made when a
    /// group first announces (it stays until the service ends); a new
    /// table or protocol moves the routes.
    fn configure(&mut self, cfg: &Config, now: Instant) -> Vec<String> {
        let mut lines = Vec::new();
        if cfg.bgp != self.bgp && !self.installed.is_empty() {
            let moved: Vec<Own> = std::mem::take(&mut self.installed);
            for r in &moved {
                if let Err(e) = self.delete(r) {
                    lines.push(format!("announce: removing {}: {e}", show(r)));
                }
            }
            self.bgp = cfg.bgp;
            for r in moved {
                let r = self.own(r.dst, r.dst_len);
                lines.extend(self.add(r).err());
            }
        }
        self.bgp = cfg.bgp;
        if cfg.announces() && self.routes.is_none() {
            match Tun::open(TUN_NAME).and_then(|tun| Ok((tun, Socket::open(0)?))) {
                Ok((tun, socket)) => {
                    socket.strict_dumps();
                    self.routes = Some(Routes { tun, socket });
                }
                Err(e) => lines.push(format!(
                    "announce: cannot make tun device {TUN_NAME}: {e}; nothing is announced"
                )),
            }
        }
        let changes = self.decider.configure(cfg, now);
        lines.extend(self.act(changes));
        lines
    }

    /// Puts or removes the routes of `changes`; a line each.
    fn act(&mut self, changes: Vec<Change>) -> Vec<String> {
        let mut lines = Vec::new();
        for c in changes {
            let r = self.own(c.prefix.addr, c.prefix.len);
            let done = if c.announced {
                self.add(r)
            } else {
                self.installed.retain(|i| *i != r);
                self.delete(&r).map_err(|e| e.to_string())
            };
            match done {
                Ok(()) => lines.push(c.to_string()),
                Err(e) => lines.push(format!("{c}: route not changed: {e}")),
            }
        }
        lines
    }

    fn own(&self, dst: std::net::Ipv6Addr, dst_len: u8) -> Own {
        Own {
            dst,
            dst_len,
            oif: self.routes.as_ref().map_or(0, |r| r.tun.ifindex()),
            table: self.bgp.table,
            protocol: self.bgp.protocol,
        }
    }

    /// Adds route `r`; the error as a line.
    fn add(&mut self, r: Own) -> Result<(), String> {
        let Some(routes) = self.routes.as_mut() else {
            return Err(format!("no tun device {TUN_NAME}"));
        };
        route::add(&mut routes.socket, &r).map_err(|e| format!("adding {}: {e}", show(&r)))?;
        self.installed.push(r);
        Ok(())
    }

    /// Puts back the route of every announced prefix that is not in the
    /// table: an add that failed, a route deleted by hand, the device set
    /// down (which takes its routes). Run each second; the lines to log: a
    /// route put back, and a failure once until it succeeds.
    fn keep(&mut self) -> Vec<String> {
        let wanted: Vec<Own> = self
            .decider
            .prefixes()
            .filter(|p| p.announced)
            .map(|p| self.own(p.prefix.addr, p.prefix.len))
            .collect();
        let Some(routes) = self.routes.as_mut().filter(|_| !wanted.is_empty()) else {
            return Vec::new();
        };
        let there = match route::table(&mut routes.socket, self.bgp.table) {
            Ok(t) => t,
            Err(e) => return self.failed(format!("reading table {}: {e}", self.bgp.table)),
        };
        let missing: Vec<Own> = wanted
            .into_iter()
            .filter(|o| {
                !there.iter().any(|r| {
                    (r.dst, r.dst_len, r.protocol, r.oif)
                        == (o.dst, o.dst_len, o.protocol, Some(o.oif))
                })
            })
            .collect();
        if missing.is_empty() {
            self.failing = None;
            return Vec::new();
        }
        if let Err(e) = routes.tun.set_up() {
            return self.failed(format!("setting {TUN_NAME} up: {e}"));
        }
        let mut lines = Vec::new();
        for r in missing {
            self.installed.retain(|i| *i != r);
            match self.add(r) {
                Ok(()) => {
                    self.failing = None;
                    lines.push(format!(
                        "announce: route {} was missing from its table; put back",
                        show(&r)
                    ));
                }
                Err(e) => lines.extend(self.failed(e)),
            }
        }
        lines
    }

    /// `error` as a line to log if it is not the one logged last.
    fn failed(&mut self, error: String) -> Vec<String> {
        if self.failing.as_ref() == Some(&error) {
            return Vec::new();
        }
        self.failing = Some(error.clone());
        vec![format!("announce: {error} (tried again each second)")]
    }

    fn delete(&mut self, r: &Own) -> io::Result<()> {
        match self.routes.as_mut() {
            Some(routes) => route::delete(&mut routes.socket, r),
            None => Ok(()),
        }
    }

    /// Unix seconds of `t`.
    fn unix(&self, t: Instant) -> f64 {
        let (mono, wall) = self.anchor;
        let at = if t >= mono {
            wall + (t - mono)
        } else {
            wall - (mono - t)
        };
        at.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }

    /// The announcements, for `anycast status`.
    pub fn status(&self, now: Instant) -> AnnounceStatus {
        AnnounceStatus {
            table: self.bgp.table,
            protocol: self.bgp.protocol,
            device: TUN_NAME.to_string(),
            maintenance: self.decider.maintenance().is_some(),
            drained: self.decider.drained(now),
            prefixes: self
                .decider
                .prefixes()
                .map(|p| PrefixStatus {
                    prefix: p.prefix.to_string(),
                    group: p.group.to_string(),
                    announced: p.announced,
                    since: self.unix(p.since),
                    reason: p.reason,
                    why: p.reason.to_string(),
                    changes: p.changes,
                })
                .collect(),
        }
    }

    /// The metrics of the announcements (Prometheus text), none when no
    /// group announces.
    pub fn metrics(&self) -> String {
        if self.decider.is_empty() {
            return String::new();
        }
        let all: Vec<_> = self.decider.prefixes().collect();
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, value: &dyn Fn(usize) -> String| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (i, p) in all.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}{{prefix=\"{}\",group=\"{}\"}} {}",
                    p.prefix,
                    p.group,
                    value(i)
                );
            }
        };
        family(
            "anycast_announced",
            "gauge",
            "Whether the prefix is announced (its route is in the BGP table): 1 or 0.",
            &|i| u8::from(all[i].announced).to_string(),
        );
        family(
            "anycast_announce_changes_total",
            "counter",
            "Times the prefix was announced or withdrawn.",
            &|i| all[i].changes.to_string(),
        );
        family(
            "anycast_announced_since_seconds",
            "gauge",
            "When the prefix was last announced or withdrawn, in seconds since the Unix epoch.",
            &|i| format!("{:.3}", self.unix(all[i].since)),
        );
        let _ = writeln!(
            out,
            "# HELP anycast_announce_reason Why the prefix is announced or not: 1 for its \
             reason now (reason.kind of anycast status --json).\n\
             # TYPE anycast_announce_reason gauge"
        );
        for p in &all {
            let _ = writeln!(
                out,
                "anycast_announce_reason{{prefix=\"{}\",group=\"{}\",reason=\"{}\"}} 1",
                p.prefix,
                p.group,
                p.reason.kind()
            );
        }
        let m = u8::from(self.decider.maintenance().is_some());
        let _ = writeln!(
            out,
            "# HELP anycast_maintenance Whether maintenance is on (everything withdrawn).\n\
             # TYPE anycast_maintenance gauge\nanycast_maintenance {m}"
        );
        out
    }
}

/// A route as `ip -6 route` writes it.
fn show(r: &Own) -> String {
    format!(
        "{}/{} dev {TUN_NAME} table {} proto {}",
        r.dst, r.dst_len, r.table, r.protocol
    )
}

impl Service {
    /// Live members (up, and healthy when checked) of every group, as the
    /// service sees them after checks, neighbours and routes.
    fn live(&self) -> BTreeMap<GroupName, u32> {
        let checked: HashMap<(&GroupName, &crate::names::MemberName), &super::Watched> = self
            .watched
            .iter()
            .map(|w| ((&w.group, &w.member), w))
            .collect();
        self.applied
            .groups
            .iter()
            .map(|(g, gc)| {
                let n = gc
                    .members
                    .iter()
                    .filter(|(m, mc)| match checked.get(&(g, *m)) {
                        Some(w) => {
                            w.tracker.health() == Health::Healthy
                                && w.state() == anycast_common::MemberState::Up
                        }
                        None => mc.state == anycast_common::MemberState::Up,
                    })
                    .count();
                (g.clone(), u32::try_from(n).unwrap_or(u32::MAX))
            })
            .collect()
    }

    /// Takes the file applied last into the announcements; the lines to log.
    pub(super) fn announce_configure(&mut self) -> Vec<String> {
        let now = Instant::now();
        let mut lines = self.announcer.configure(&self.file_cfg, now);
        lines.extend(self.announce());
        lines
    }

    /// Decides the announcements again from the members' state now (after
    /// a check result, a neighbour or route event, a reload, or when a
    /// hold-down ends); the lines to log, one per prefix changed.
    pub fn announce(&mut self) -> Vec<String> {
        let live = self.live();
        let changes = self.announcer.decider.update(&live, Instant::now());
        self.announcer.act(changes)
    }

    /// Puts back announced routes missing from their table (see
    /// `Announcer::keep`); the lines to log. Run each second.
    pub fn keep_announcements(&mut self) -> Vec<String> {
        self.announcer.keep()
    }

    /// When [`Service::announce`] must run again (a hold-down or a drain
    /// ends), if anything waits.
    pub fn announce_wakeup(&self) -> Option<Instant> {
        self.announcer.decider.next_wakeup(Instant::now())
    }

    /// `anycast maintenance on|off`: on withdraws everything (forwarding
    /// goes on), off announces again as the members allow.
    pub fn maintenance(&mut self, on: bool) -> MaintenanceAnswer {
        let now = Instant::now();
        let changes = self.announcer.decider.set_maintenance(on, now);
        let mut lines = self.announcer.act(changes);
        lines.push(format!(
            "maintenance {}",
            if on {
                format!(
                    "on: everything withdrawn, forwarding for the drain time ({:.1} s)",
                    self.announcer.decider.drain_time().as_secs_f64()
                )
            } else {
                "off: prefixes announced as their members allow".to_string()
            }
        ));
        let drain_left = self
            .announcer
            .decider
            .drain_ends()
            .map_or(0.0, |t| t.saturating_duration_since(now).as_secs_f64());
        MaintenanceAnswer {
            on,
            lines,
            drain_left,
        }
    }

    /// When the drain of maintenance ends, while maintenance is on.
    pub fn drain_ends(&self) -> Option<Instant> {
        self.announcer.decider.drain_ends()
    }

    /// Whether maintenance is on and drained.
    pub fn drained(&self) -> bool {
        self.announcer.decider.drained(Instant::now())
    }

    /// Withdraws everything for good (SIGTERM); the lines to log and how
    /// long to keep forwarding (none when nothing was announced).
    pub fn withdraw_all(&mut self) -> (Vec<String>, Option<std::time::Duration>) {
        let changes = self.announcer.decider.stop(Instant::now());
        let drain = (!changes.is_empty()).then(|| self.announcer.decider.drain_time());
        (self.announcer.act(changes), drain)
    }

    /// The announcements, for `anycast status` and the metrics.
    pub fn announcer(&self) -> &Announcer {
        &self.announcer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on a thread of its own in a new network namespace (gone
    /// with the thread).
    fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(move || {
            // SAFETY: unshare of this thread's network namespace only.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
            f()
        })
        .join()
        .expect("thread")
    }

    #[test]
    fn routes_through_the_tun_go_when_it_closes() {
        in_new_netns(|| {
            let mut a = Announcer::default();
            let cfg = Config::parse(
                "[bgp]\ntable = 1234\nprotocol = 201\nhold-down = 0\n\
                 [group.g]\naddresses = [\"2001:db8:53::1\"]\nannounce = [\"2001:db8:53::/48\"]\n\
                 member.a = { encap = \"fd00:9::1\" }\n",
            )
            .expect("config");
            let now = Instant::now();
            assert!(a.configure(&cfg, now).is_empty());
            let live = BTreeMap::from([(GroupName::new("g").expect("name"), 1)]);
            let changes = a.decider.update(&live, now);
            let lines = a.act(changes);
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert!(lines[0].contains("announced"), "{lines:?}");
            let mut s = Socket::open(0).expect("socket");
            let table = route::table(&mut s, 1234).expect("dump");
            let ifindex = a.routes.as_ref().expect("tun").tun.ifindex();
            let want: Vec<_> = table
                .iter()
                .map(|r| (r.dst.to_string(), r.dst_len, r.protocol, r.oif))
                .collect();
            assert_eq!(
                want,
                [("2001:db8:53::".to_string(), 48, 201, Some(ifindex))]
            );
            assert!(
                a.metrics()
                    .contains("anycast_announced{prefix=\"2001:db8:53::/48\",group=\"g\"} 1")
            );
            assert!(a.metrics().contains(
                "anycast_announce_reason{prefix=\"2001:db8:53::/48\",group=\"g\",reason=\"live\"} 1"
            ));
            // Maintenance withdraws through rtnetlink...
            let ch = a.decider.set_maintenance(true, now);
            a.act(ch);
            assert!(route::table(&mut s, 1234).expect("dump").is_empty());
            let ch = a.decider.set_maintenance(false, now);
            a.act(ch);
            assert_eq!(route::table(&mut s, 1234).expect("dump").len(), 1);
            // A route deleted by hand, or taken with the device set down,
            // is put back on the next keep, once.
            let ip = |args: &[&str]| {
                let st = std::process::Command::new("ip")
                    .args(args)
                    .status()
                    .expect("ip");
                assert!(st.success(), "ip {args:?}");
            };
            assert!(a.keep().is_empty(), "nothing missing");
            ip(&["-6", "route", "del", "2001:db8:53::/48", "table", "1234"]);
            assert!(route::table(&mut s, 1234).expect("dump").is_empty());
            let lines = a.keep();
            assert!(lines[0].contains("put back"), "{lines:?}");
            assert_eq!(route::table(&mut s, 1234).expect("dump").len(), 1);
            ip(&["link", "set", "dev", TUN_NAME, "down"]);
            assert!(route::table(&mut s, 1234).expect("dump").is_empty());
            assert_eq!(a.keep().len(), 1);
            assert_eq!(route::table(&mut s, 1234).expect("dump").len(), 1);
            assert!(a.keep().is_empty());
            // ...and the kernel removes the route with the device when its
            // descriptor closes, as at the death of the process.
            drop(a);
            assert!(route::table(&mut s, 1234).expect("dump").is_empty());
            assert!(crate::link::ifindex(TUN_NAME).is_err(), "device gone");
        });
    }
}
