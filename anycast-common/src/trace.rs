//! Tracing of the program's decisions (`anycast trace`): the control the
//! trace process writes, the per-CPU state the program keeps, and the
//! record it writes to the ring buffer for each traced packet.
//!
//! Off unless a trace process keeps renewing a deadline: a process that
//! dies leaves tracing off within [`TRACE_LEASE_NS`] by itself.

use bytemuck::{Pod, Zeroable};

/// Map names of tracing. Pinned next to the layout's maps (every load
/// pins them, creating them when absent) but not part of the layout
/// (`map_names::ALL`): a pin dir of an older version gets them at the next
/// load, and nothing in them outlives a trace.
pub mod trace_map_names {
    /// One [`TraceControl`](super::TraceControl) at index 0.
    pub const TRACE_CTL: &str = "TRACE_CTL";
    /// Per-CPU [`TraceCpu`](super::TraceCpu) at index 0.
    pub const TRACE_CPU: &str = "TRACE_CPU";
    /// Ring buffer of [`TraceRecord`](super::TraceRecord)s.
    pub const TRACE_EVENTS: &str = "TRACE_EVENTS";
    /// All of them.
    pub const ALL: [&str; 3] = [TRACE_CTL, TRACE_CPU, TRACE_EVENTS];
}

/// Size of the ring buffer, bytes (a power of two, a multiple of the page).
pub const TRACE_RING_BYTES: u32 = 1 << 18;
/// How long a deadline lasts past its renewal: the trace process renews
/// it every [`TRACE_RENEW_NS`]; a killed one stops tracing within this.
pub const TRACE_LEASE_NS: u64 = 2_000_000_000;
/// How often the trace process renews the deadline.
pub const TRACE_RENEW_NS: u64 = 500_000_000;
/// Default rate limit, records per second per CPU.
pub const TRACE_DEFAULT_RATE: u32 = 1000;
/// Burst of the rate limit: this many seconds' worth of records.
pub const TRACE_BURST_SECS: u64 = 1;

/// What the trace process asks for (value of `TRACE_CTL`, index 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct TraceControl {
    /// Trace while `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) is below this;
    /// 0: off (the program also sets it to 0 once it has passed, so that
    /// an abandoned trace costs one read again).
    pub deadline_ns: u64,
    /// Only packets arriving on this interface; 0: any.
    pub ifindex: u32,
    /// Only packets of this group (destination's or source's); 0: any.
    pub group: u32,
    /// One packet in this many (per CPU); 0 or 1: every packet.
    pub sample: u32,
    /// At most this many records per second per CPU; 0: [`TRACE_DEFAULT_RATE`].
    pub rate: u32,
}
const _: () = assert!(core::mem::size_of::<TraceControl>() == 24);

/// The program's own per-CPU state of tracing (value of `TRACE_CPU`,
/// index 0): the sampling counter, the rate limit, what was lost.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct TraceCpu {
    /// Packets that passed the filters, for sampling.
    pub seen: u64,
    /// Rate-limit credit, ns (one record costs `1e9 / rate`).
    pub credit_ns: u64,
    /// When the credit was last refilled.
    pub last_ns: u64,
    /// Records written to the ring buffer.
    pub written: u64,
    /// Records not written: the rate limit said no.
    pub rate_limited: u64,
    /// Records not written: the ring buffer was full.
    pub ring_full: u64,
    /// The decision being traced, handed from the verdict to the writer
    /// through here: action, reason, group, member, flow-table outcome,
    /// offset of the IPv6 header as it arrived (0: not parsed).
    pub decision: [u32; 6],
}
const _: () = assert!(core::mem::size_of::<TraceCpu>() == 72);

/// One traced decision (a ring-buffer record).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct TraceRecord {
    /// When (`bpf_ktime_get_ns`, CLOCK_MONOTONIC).
    pub time_ns: u64,
    /// Source address, network byte order (zero when not IPv6).
    pub src: [u8; 16],
    /// Destination address, network byte order (zero when not IPv6).
    pub dst: [u8; 16],
    /// Interface the packet arrived on.
    pub ifindex: u32,
    /// XDP action (`XDP_PASS` 2, `XDP_DROP` 1, `XDP_REDIRECT` 4, `XDP_TX` 3).
    pub action: u32,
    /// Why: the one final global counter it moved (`GlobalStat` as u32).
    pub reason: u32,
    /// Group: the destination's, else the anycast source's; 0 if none.
    pub group: u32,
    /// The member redirected to; 0 if none.
    pub member: u32,
    /// Source and destination ports as on the wire (network byte order);
    /// zero when not known (only a steered packet's are read).
    pub ports: [u8; 4],
    /// Upper-layer protocol (0 when not known).
    pub proto: u8,
    /// What the flow table did (the program's `FlowOutcome` as u8).
    pub flow: u8,
    /// 1: the addresses and ports are known.
    pub has_addrs: u8,
    /// Explicit padding.
    pub _pad: [u8; 5],
}
const _: () = assert!(core::mem::size_of::<TraceRecord>() == 72);

impl TraceCpu {
    /// Takes one record's credit at `now` (ns) under `rate` records per
    /// second: false when the rate limit says no.
    pub fn take(&mut self, now: u64, rate: u32) -> bool {
        let rate = if rate == 0 { TRACE_DEFAULT_RATE } else { rate } as u64;
        let cost = 1_000_000_000 / rate;
        if now > self.last_ns {
            self.credit_ns = self
                .credit_ns
                .saturating_add(now - self.last_ns)
                .min(TRACE_BURST_SECS * 1_000_000_000);
            self.last_ns = now;
        }
        if self.credit_ns < cost {
            return false;
        }
        self.credit_ns -= cost;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_allows_the_rate_and_no_more() {
        let mut c = TraceCpu::default();
        // A full second of credit at t = 1 s: 10 records at 10/s.
        let now = 1_000_000_000;
        let taken = (0..100).filter(|_| c.take(now, 10)).count();
        assert_eq!(taken, 10);
        // A tenth of a second later: one more.
        let taken = (0..100).filter(|_| c.take(now + 100_000_000, 10)).count();
        assert_eq!(taken, 1);
    }
}
