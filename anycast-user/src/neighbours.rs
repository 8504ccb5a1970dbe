//! The MACs of on-link members given by address (`iface` + `addr`, no
//! `mac`): read from the kernel's IPv6 neighbour table, followed through
//! its events, and resolved when missing. The kernel does the Neighbour
//! Discovery (RFC 4861); this asks it to (`NTF_USE`: as if a packet were
//! sent) when an entry is missing or failed, again with a bounded backoff,
//! and when one goes stale, so that a member whose MAC changed is found
//! out (the data plane's redirected packets never confirm an entry): the
//! unicast probes of the old MAC fail, the entry fails, and the multicast
//! solicitation sent at once finds the new MAC; only when that fails too
//! is the member down.

use std::{
    collections::BTreeMap,
    net::Ipv6Addr,
    time::{Duration, Instant},
};

use crate::{
    error::{Error, Result},
    link::ifindex,
    netlink::neigh::{self, Neighbour, NudState},
};

/// The first wait before soliciting a failed or missing entry again; it
/// doubles each time, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between solicitations of an unresolved address.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

fn io_err(source: std::io::Error) -> Error {
    Error::Io {
        path: "rtnetlink (neighbours)".into(),
        source,
    }
}

/// The usable MAC of `addr` on `iface` now: the neighbour entry's, after
/// soliciting the address and waiting up to `within` when there is none
/// (or a failed one). For `config apply`, which runs once.
pub fn resolve_once(iface: &str, addr: Ipv6Addr, within: Duration) -> Result<[u8; 6]> {
    let idx = ifindex(iface)?;
    let deadline = Instant::now() + within;
    let mut solicited = false;
    // Bounded by the deadline: one look per 100 ms.
    loop {
        let entry = neigh::dump()
            .map_err(io_err)?
            .into_iter()
            .find(|n| n.ifindex == idx && n.addr == addr);
        let state = entry.map(|n| n.state);
        if let Some(Neighbour {
            mac: Some(mac),
            state,
            ..
        }) = entry
            && state.usable()
        {
            return Ok(mac);
        }
        if !solicited || state == Some(NudState::Failed) {
            neigh::solicit(idx, addr).map_err(io_err)?;
            solicited = true;
        }
        if Instant::now() >= deadline {
            return Err(Error::Unresolved {
                iface: iface.to_string(),
                addr,
                state: state.map_or("no entry".into(), |s| s.to_string()),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One followed address.
#[derive(Clone, Debug, Default)]
struct Watch {
    /// Its interface's index, while the interface exists.
    ifindex: Option<u32>,
    /// The last usable MAC it had (kept while it is being resolved again).
    mac: Option<[u8; 6]>,
    /// Its entry's state; none while the table has no entry.
    state: Option<NudState>,
    /// Solicitations since it was last usable.
    attempts: u32,
    /// When to solicit it next, if at all.
    next: Option<Instant>,
}

impl Watch {
    /// Why its member cannot be reached, if it cannot.
    fn problem(&self, iface: &str, addr: Ipv6Addr) -> Option<String> {
        let state = self.state.map_or("no entry".to_string(), |s| s.to_string());
        match (self.ifindex, self.mac, self.state) {
            (None, _, _) => Some(format!("interface {iface} not found")),
            (_, None, _) => Some(format!(
                "neighbour {addr} on {iface} not resolved ({state})"
            )),
            // The kernel's unicast probes of a known MAC failed: the host
            // may have moved to another MAC. Down only when the multicast
            // solicitation that follows at once fails too.
            (_, _, Some(NudState::Failed)) if self.attempts > 0 => Some(format!(
                "neighbour {addr} on {iface} does not answer solicitations (FAILED)"
            )),
            _ => None,
        }
    }

    /// Takes what the table says now (`None`: no entry).
    fn update(&mut self, entry: Option<&Neighbour>, now: Instant) {
        let was = self.state;
        self.state = entry.map(|n| n.state).filter(|s| *s != NudState::None);
        match entry {
            Some(n) if n.state.usable() && n.mac.is_some() => {
                self.mac = n.mac;
                self.attempts = 0;
                // Gone stale: probe it, so that a new MAC is found out.
                let stale = n.state == NudState::Stale && was != Some(NudState::Stale);
                self.next = stale.then_some(now);
            }
            // The kernel is soliciting: look again after a while.
            Some(n) if n.state == NudState::Incomplete => {
                self.next = Some(self.next.unwrap_or(now + backoff(self.attempts)));
            }
            Some(n) if n.state == NudState::Failed => {
                let first = self.attempts == 0 && self.mac.is_some();
                self.next = Some(if first {
                    now
                } else {
                    now + backoff(self.attempts)
                });
            }
            // No entry (or one being removed): solicit now.
            _ => self.next = Some(now),
        }
    }
}

/// How long to wait before solicitation `attempts` + 1.
fn backoff(attempts: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << attempts.min(16))
        .min(MAX_BACKOFF)
}

/// What the service knows of a followed address, for `anycast status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighbourView {
    /// The MAC the member is sent to (the last usable one).
    pub mac: Option<[u8; 6]>,
    /// Its entry's state (`none`: no entry).
    pub state: String,
    /// Why its member is down, if it is.
    pub problem: Option<String>,
}

/// The addresses followed, by interface name and address.
#[derive(Debug, Default)]
pub struct Neighbours {
    watched: BTreeMap<(String, Ipv6Addr), Watch>,
}

impl Neighbours {
    /// Follows exactly `wanted` from now on (what was known of an address
    /// followed before is kept), then reads the table whole; the addresses
    /// not followed before.
    pub fn want(
        &mut self,
        wanted: impl IntoIterator<Item = (String, Ipv6Addr)>,
    ) -> Result<Vec<(String, Ipv6Addr)>> {
        let mut next = BTreeMap::new();
        let mut new = Vec::new();
        for key in wanted {
            let w = self.watched.remove(&key).unwrap_or_else(|| {
                new.push(key.clone());
                Watch::default()
            });
            next.insert(key, w);
        }
        self.watched = next;
        self.resync()?;
        Ok(new)
    }

    /// Whether any address is followed.
    pub fn is_empty(&self) -> bool {
        self.watched.is_empty()
    }

    /// Reads the whole table again (at the start, and after the event
    /// socket overflowed); whether anything of a member changed.
    pub fn resync(&mut self) -> Result<bool> {
        if self.watched.is_empty() {
            return Ok(false);
        }
        let table = neigh::dump().map_err(io_err)?;
        let now = Instant::now();
        let mut changed = false;
        for ((iface, addr), w) in &mut self.watched {
            let before = (w.mac, w.problem(iface, *addr));
            w.ifindex = ifindex(iface).ok();
            let entry = table
                .iter()
                .find(|n| Some(n.ifindex) == w.ifindex && n.addr == *addr);
            w.update(entry, now);
            changed |= before != (w.mac, w.problem(iface, *addr));
        }
        Ok(changed)
    }

    /// Takes one event; whether anything of a member changed.
    pub fn event(&mut self, n: &Neighbour, gone: bool) -> bool {
        let now = Instant::now();
        let mut changed = false;
        for ((iface, addr), w) in &mut self.watched {
            if *addr != n.addr || w.ifindex != Some(n.ifindex) {
                continue;
            }
            let before = (w.mac, w.problem(iface, *addr));
            w.update((!gone).then_some(n), now);
            changed |= before != (w.mac, w.problem(iface, *addr));
        }
        changed
    }

    /// Solicits the addresses whose time has come; a line for each that
    /// could not be.
    pub fn tick(&mut self, now: Instant) -> Vec<String> {
        let mut lines = Vec::new();
        for ((iface, addr), w) in &mut self.watched {
            if w.next.is_none_or(|t| t > now) {
                continue;
            }
            if w.ifindex.is_none() {
                w.ifindex = ifindex(iface).ok();
            }
            let resolved = w.state.is_some_and(NudState::usable);
            if !resolved {
                w.attempts = w.attempts.saturating_add(1);
            }
            w.next = (!resolved).then(|| now + backoff(w.attempts));
            let Some(idx) = w.ifindex else { continue };
            if let Err(e) = neigh::solicit(idx, *addr) {
                lines.push(format!("soliciting {addr} on {iface}: {e}"));
            }
        }
        lines
    }

    /// Whether each of `these` has a MAC.
    pub fn known(&self, these: &[(String, Ipv6Addr)]) -> bool {
        these
            .iter()
            .all(|k| self.watched.get(k).is_some_and(|w| w.mac.is_some()))
    }

    /// The MAC to send `addr` on `iface` to, if known.
    pub fn mac(&self, iface: &str, addr: Ipv6Addr) -> Option<[u8; 6]> {
        self.watched.get(&(iface.to_string(), addr))?.mac
    }

    /// What is known of `addr` on `iface`.
    pub fn view(&self, iface: &str, addr: Ipv6Addr) -> NeighbourView {
        match self.watched.get(&(iface.to_string(), addr)) {
            Some(w) => NeighbourView {
                mac: w.mac,
                state: w.state.map_or("none".to_string(), |s| s.to_string()),
                problem: w.problem(iface, addr),
            },
            None => NeighbourView {
                mac: None,
                state: "none".into(),
                problem: Some(format!("neighbour {addr} on {iface} not followed")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(state: NudState, mac: Option<[u8; 6]>) -> Neighbour {
        Neighbour {
            ifindex: 3,
            addr: "fd00:1::2".parse().expect("addr"),
            mac,
            state,
        }
    }

    #[test]
    fn a_watch_keeps_its_last_mac_and_says_why_its_member_is_down() {
        let (iface, addr) = ("eth1", "fd00:1::2".parse().expect("addr"));
        let now = Instant::now();
        let mut w = Watch {
            ifindex: Some(3),
            ..Watch::default()
        };
        // Never resolved: down, and solicited at once.
        w.update(None, now);
        assert_eq!(w.next, Some(now));
        assert_eq!(
            w.problem(iface, addr).as_deref(),
            Some("neighbour fd00:1::2 on eth1 not resolved (no entry)")
        );
        // Resolved: up with its MAC, nothing to do.
        let (a, b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        w.update(Some(&entry(NudState::Reachable, Some(a))), now);
        assert_eq!(
            (w.mac, w.problem(iface, addr), w.next),
            (Some(a), None, None)
        );
        // Gone stale: probed once, and still up.
        w.update(Some(&entry(NudState::Stale, Some(a))), now);
        assert_eq!((w.next, w.problem(iface, addr)), (Some(now), None));
        // A new MAC (an unsolicited advertisement) is taken.
        w.update(Some(&entry(NudState::Stale, Some(b))), now);
        assert_eq!((w.mac, w.next), (Some(b), None));
        // Removed from the table: the last MAC stays, it is solicited.
        w.update(None, now);
        assert_eq!(
            (w.mac, w.problem(iface, addr), w.next),
            (Some(b), None, Some(now))
        );
        // Failed after the kernel's unicast probes: solicited again at once
        // (by multicast: the host may have a new MAC), still up.
        w.update(Some(&entry(NudState::Failed, Some(b))), now);
        assert_eq!((w.next, w.problem(iface, addr)), (Some(now), None));
        // Failed again: down, the last MAC kept, solicited after a while.
        w.attempts = 3;
        w.update(Some(&entry(NudState::Failed, Some(b))), now);
        assert_eq!(w.mac, Some(b));
        assert_eq!(w.next, Some(now + Duration::from_secs(8)));
        assert!(w.problem(iface, addr).is_some_and(|p| p.contains("FAILED")));
        // Its interface gone.
        w.ifindex = None;
        assert_eq!(
            w.problem(iface, addr).as_deref(),
            Some("interface eth1 not found")
        );
    }

    #[test]
    fn the_backoff_doubles_up_to_its_bound() {
        assert_eq!(backoff(0), FIRST_BACKOFF);
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(5), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
