//! Watching the data plane's decisions (`anycast trace`): turn tracing on
//! with a deadline, keep renewing it, read the records from the ring
//! buffer, turn it off.
//!
//! The program traces only while the deadline (CLOCK_MONOTONIC) is in the
//! future; [`Tracer::renew`] moves it [`TRACE_LEASE_NS`] ahead, so a trace
//! process that dies without [`Tracer::disable`] (killed) leaves tracing
//! off within that by itself, and nothing needs cleaning up.

use std::{net::Ipv6Addr, os::fd::AsRawFd as _};

use anycast_common::{
    GlobalStat, TRACE_LEASE_NS, TraceControl, TraceCpu, TraceRecord, trace_map_names,
};
use aya::maps::{Array, Map, MapData, PerCpuArray, RingBuf};
use serde::Serialize;

use crate::{
    error::{Error, Result},
    pin::PinDir,
};

/// What to trace (the kernel-side filters and limits).
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceFilter {
    /// Only packets arriving on this interface index; 0: any.
    pub ifindex: u32,
    /// Only packets of this group id; 0: any.
    pub group: u32,
    /// One packet in this many, per CPU; 0 or 1: all.
    pub sample: u32,
    /// At most this many records a second per CPU; 0: the default.
    pub rate: u32,
}

/// Records lost or written, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TraceLosses {
    /// Records written to the ring buffer.
    pub written: u64,
    /// Records the rate limit refused.
    pub rate_limited: u64,
    /// Records lost to a full ring buffer.
    pub ring_full: u64,
}

impl TraceLosses {
    /// `self - base`, counter by counter.
    pub fn since(&self, base: &TraceLosses) -> TraceLosses {
        TraceLosses {
            written: self.written.saturating_sub(base.written),
            rate_limited: self.rate_limited.saturating_sub(base.rate_limited),
            ring_full: self.ring_full.saturating_sub(base.ring_full),
        }
    }
}

/// An open trace: the pinned control, per-CPU state and ring buffer.
pub struct Tracer {
    ctl: Array<MapData, TraceControl>,
    cpu: PerCpuArray<MapData, TraceCpu>,
    ring: RingBuf<MapData>,
    filter: TraceFilter,
}

/// Opens pinned map `name` of the pin dir.
fn open_map(pin: &PinDir, name: &'static str) -> Result<Map> {
    let path = pin.map_path(name);
    if !path.exists() {
        return Err(Error::TraceUnavailable(pin.path().to_path_buf()));
    }
    let data = MapData::from_pin(&path).map_err(|source| Error::Map { name, source })?;
    Map::from_map_data(data).map_err(|source| Error::Map { name, source })
}

/// CLOCK_MONOTONIC in ns: the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to fill in.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Tracer {
    /// Opens the trace maps pinned under `pin` (tracing stays off until
    /// [`Tracer::renew`]). Records an earlier trace left unread are
    /// dropped: a trace shows what happens from now on.
    pub fn open(pin: &PinDir, filter: TraceFilter) -> Result<Self> {
        use trace_map_names::{TRACE_CPU, TRACE_CTL, TRACE_EVENTS};
        let mut t = Self::from_maps(
            [
                open_map(pin, TRACE_CTL)?,
                open_map(pin, TRACE_CPU)?,
                open_map(pin, TRACE_EVENTS)?,
            ],
            filter,
        )?;
        // Bounded: the ring holds at most this many records.
        let most = (anycast_common::TRACE_RING_BYTES as usize) / size_of::<TraceRecord>();
        for _ in 0..most {
            if t.ring.next().is_none() {
                break;
            }
        }
        Ok(t)
    }

    /// A tracer on maps taken from a loaded object, in the order of
    /// `trace_map_names::ALL` (tests run a program with maps of its own).
    pub fn from_maps([ctl, cpu, ring]: [Map; 3], filter: TraceFilter) -> Result<Self> {
        use trace_map_names::{TRACE_CPU, TRACE_CTL, TRACE_EVENTS};
        let named = |name| move |source| Error::Map { name, source };
        Ok(Tracer {
            ctl: ctl.try_into().map_err(named(TRACE_CTL))?,
            cpu: cpu.try_into().map_err(named(TRACE_CPU))?,
            ring: ring.try_into().map_err(named(TRACE_EVENTS))?,
            filter,
        })
    }

    /// Sets a control as given (tests: a deadline in the past).
    pub fn set_control(&mut self, ctl: TraceControl) -> Result<()> {
        self.write(ctl)
    }

    /// Turns tracing on (again) until [`TRACE_LEASE_NS`] from now.
    pub fn renew(&mut self) -> Result<()> {
        let f = self.filter;
        let ctl = TraceControl {
            deadline_ns: monotonic_ns() + TRACE_LEASE_NS,
            ifindex: f.ifindex,
            group: f.group,
            sample: f.sample,
            rate: f.rate,
        };
        self.write(ctl)
    }

    /// Turns tracing off now.
    pub fn disable(&mut self) -> Result<()> {
        self.write(TraceControl::default())
    }

    fn write(&mut self, ctl: TraceControl) -> Result<()> {
        self.ctl.set(0, ctl, 0).map_err(|source| Error::Map {
            name: trace_map_names::TRACE_CTL,
            source,
        })
    }

    /// The control as the program sees it (a deadline of 0: off).
    pub fn control(&self) -> Result<TraceControl> {
        self.ctl.get(&0, 0).map_err(|source| Error::Map {
            name: trace_map_names::TRACE_CTL,
            source,
        })
    }

    /// What the program wrote and lost so far, summed over CPUs.
    pub fn losses(&self) -> Result<TraceLosses> {
        let values = self.cpu.get(&0, 0).map_err(|source| Error::Map {
            name: trace_map_names::TRACE_CPU,
            source,
        })?;
        Ok(values
            .iter()
            .fold(TraceLosses::default(), |a, c| TraceLosses {
                written: a.written + c.written,
                rate_limited: a.rate_limited + c.rate_limited,
                ring_full: a.ring_full + c.ring_full,
            }))
    }

    /// The next record in the ring buffer, if any (never blocks).
    pub fn next_record(&mut self) -> Option<TraceRecord> {
        let item = self.ring.next()?;
        bytemuck::try_pod_read_unaligned::<TraceRecord>(
            &item[..size_of::<TraceRecord>().min(item.len())],
        )
        .ok()
    }

    /// Waits up to `timeout_ms` for records; true when there may be some.
    pub fn wait(&self, timeout_ms: i32) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.ring.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        n > 0
    }
}

/// One traced decision, as `anycast trace` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct TraceEvent {
    /// When, CLOCK_MONOTONIC ns.
    pub time_ns: u64,
    /// Interface it arrived on (its name, or its index).
    pub iface: String,
    /// Source address (null when not IPv6 or not parsed).
    pub src: Option<Ipv6Addr>,
    /// Destination address.
    pub dst: Option<Ipv6Addr>,
    /// Upper-layer protocol number (null when unknown).
    pub proto: Option<u8>,
    /// Source port (TCP and UDP right after the fixed header).
    pub sport: Option<u16>,
    /// Destination port.
    pub dport: Option<u16>,
    /// `pass`, `drop`, `redirect`, `tx` (a Packet Too Big sent back) or `aborted`.
    pub action: &'static str,
    /// Why: the counter the decision moved (docs/OPERATIONS.md lists them).
    pub reason: &'static str,
    /// Group name (null if none).
    pub group: Option<String>,
    /// Member name (null if none).
    pub member: Option<String>,
    /// What the flow table did: `hit`, `hit_restored`, `recorded`,
    /// `created`, `bypassed`, or null.
    pub flow: Option<&'static str>,
}

/// The name of XDP action `a`.
pub fn action_name(a: u32) -> &'static str {
    match a {
        1 => "drop",
        2 => "pass",
        3 => "tx",
        4 => "redirect",
        _ => "aborted",
    }
}

/// The name of global counter `i` (the reason of a record).
pub fn reason_name(i: u32) -> &'static str {
    GlobalStat::ALL
        .iter()
        .find(|s| **s as u32 == i)
        .map_or("unknown", |s| s.name())
}

/// The name of the program's flow-table outcome `f`.
pub fn flow_name(f: u8) -> Option<&'static str> {
    match f {
        1 => Some("hit"),
        2 => Some("hit_restored"),
        3 => Some("recorded"),
        4 => Some("created"),
        5 => Some("bypassed"),
        _ => None,
    }
}

impl TraceEvent {
    /// The event of record `r`, with names from the lookups given.
    pub fn new(
        r: &TraceRecord,
        iface: impl Fn(u32) -> String,
        group: impl Fn(u32) -> Option<String>,
        member: impl Fn(u32) -> Option<String>,
    ) -> Self {
        let has = r.has_addrs != 0;
        let ports = has && matches!(r.proto, 6 | 17);
        TraceEvent {
            time_ns: r.time_ns,
            iface: iface(r.ifindex),
            src: has.then(|| Ipv6Addr::from(r.src)),
            dst: has.then(|| Ipv6Addr::from(r.dst)),
            proto: has.then_some(r.proto),
            sport: ports.then(|| u16::from_be_bytes([r.ports[0], r.ports[1]])),
            dport: ports.then(|| u16::from_be_bytes([r.ports[2], r.ports[3]])),
            action: action_name(r.action),
            reason: reason_name(r.reason),
            group: (r.group != 0).then(|| group(r.group)).flatten(),
            member: (r.member != 0).then(|| member(r.member)).flatten(),
            flow: flow_name(r.flow),
        }
    }

    /// Whether `a` is its source or destination.
    pub fn involves(&self, a: Ipv6Addr) -> bool {
        self.src == Some(a) || self.dst == Some(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_as_an_event() {
        let r = TraceRecord {
            src: "2001:db8::1".parse::<Ipv6Addr>().expect("addr").octets(),
            dst: "2001:db8::a".parse::<Ipv6Addr>().expect("addr").octets(),
            ifindex: 7,
            action: 4,
            reason: GlobalStat::Redirected as u32,
            group: 1,
            member: 3,
            ports: [0x30, 0x39, 0, 80],
            proto: 17,
            flow: 4,
            has_addrs: 1,
            ..TraceRecord::default()
        };
        let e = TraceEvent::new(
            &r,
            |i| format!("if{i}"),
            |g| Some(format!("g{g}")),
            |m| Some(format!("m{m}")),
        );
        assert_eq!(e.action, "redirect");
        assert_eq!(e.reason, "redirected");
        assert_eq!(e.member.as_deref(), Some("m3"));
        assert_eq!(e.group.as_deref(), Some("g1"));
        assert_eq!((e.sport, e.dport), (Some(12345), Some(80)));
        assert_eq!(e.flow, Some("created"));
        assert_eq!(e.iface, "if7");
        assert!(e.involves("2001:db8::a".parse().expect("addr")));
    }
}
