//! Tracing (`anycast trace`): a record of each decision to the ring
//! buffer, while a trace process keeps a deadline in the future.
//!
//! Off, a packet pays one array read and a compare with zero where its
//! verdict is recorded (the map read is inlined by the verifier; no helper
//! call, no clock). On, [`emit`] checks the deadline against the clock,
//! the filters (interface, group), the sampling (1 in N per CPU) and the
//! rate limit (per-CPU token bucket); records lost to the rate limit or to
//! a full ring buffer are counted in `TRACE_CPU`.
//!
//! Hooked only where the verdict is recorded, after acting, so that
//! nothing on the way there changes: the addresses and ports are read
//! from the frame as it leaves (the inner header of an encapsulated one,
//! the quote of a Packet Too Big). The decision goes to
//! [`emit`] through a per-CPU slot: the verifier then reaches `emit` with the
//! same state from every path, and walks it once rather than once a path.

use anycast_common::{TraceRecord, wire};
use aya_ebpf::{bindings::xdp_action, helpers::bpf_ktime_get_ns, programs::XdpContext};

use crate::{
    maps::{TRACE_CPU, TRACE_CTL, TRACE_EVENTS},
    parse::read,
    verdict::{Final, Steered, Target},
};

/// What a record says of the decision (`TraceCpu::decision`).
struct Decision {
    action: u32,
    reason: u32,
    group: u32,
    member: u32,
    flow: u32,
    /// Offset of the IPv6 header as the packet arrived; 0: not parsed.
    l3_off: u32,
}

impl Decision {
    /// Hands the decision to [`emit`] through this CPU's slot rather than
    /// the stack: the verifier then reaches `emit` with the same state
    /// from every path (nothing of the caller's that `emit` reads), and
    /// walks it once rather than once a path.
    #[inline(always)]
    fn emit(self, ctx: &XdpContext) -> u32 {
        let Some(cpu) = TRACE_CPU.get_ptr_mut(0) else {
            return self.action;
        };
        // SAFETY: this CPU's slot, used by this run only.
        unsafe {
            (*cpu).decision = [
                self.action,
                self.reason,
                self.group,
                self.member,
                self.flow,
                self.l3_off,
            ]
        };
        emit(ctx)
    }
}

/// Whether a trace may be on (a deadline is set): the one read a packet
/// pays while nobody traces.
#[inline(always)]
fn wanted() -> bool {
    match TRACE_CTL.get_ptr(0) {
        // SAFETY: a map value of plain integers.
        Some(c) => unsafe { core::ptr::read_volatile(&(*c).deadline_ns) != 0 },
        None => false,
    }
}

/// Traces a verdict reached before acting; returns its action.
#[inline(always)]
pub(crate) fn final_verdict(ctx: &XdpContext, l3_off: usize, v: &Final) -> u32 {
    if !wanted() {
        return v.action;
    }
    Decision {
        action: v.action,
        reason: v.stat as u32,
        group: v.source.group,
        member: 0,
        flow: 0,
        l3_off: l3_off as u32,
    }
    .emit(ctx)
}

/// Traces a steered packet; returns its action.
#[inline(always)]
pub(crate) fn steered(ctx: &XdpContext, l3_off: usize, t: &Target, s: &Steered) -> u32 {
    if !wanted() {
        return s.action;
    }
    Decision {
        action: s.action,
        reason: s.stat as u32,
        group: t.group,
        member: s.member,
        flow: s.flow as u32,
        l3_off: l3_off as u32,
    }
    .emit(ctx)
}

/// Writes the record of decision `d`, if the deadline, the filters, the
/// sampling and the rate limit let it; returns its action. (Returned from
/// here, not kept by the caller: a value the caller keeps across the call
/// is part of the state the verifier compares in here.)
#[inline(never)]
fn emit(ctx: &XdpContext) -> u32 {
    let Some(cpu) = TRACE_CPU.get_ptr(0) else {
        return 0;
    };
    // SAFETY: this CPU's slot, used by this run only.
    let [action, reason, group, member, flow, l3_off] = unsafe { (*cpu).decision };
    let d = Decision {
        action,
        reason,
        group,
        member,
        flow,
        l3_off,
    };
    record(ctx, &d);
    d.action
}

#[inline(always)]
fn record(ctx: &XdpContext, d: &Decision) {
    let Some(c) = TRACE_CTL.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: the control's map value (its fields are plain integers).
    let ctl = unsafe { core::ptr::read_volatile(c) };
    if ctl.deadline_ns == 0 {
        return;
    }
    if now >= ctl.deadline_ns {
        // Abandoned (or ended): back to one read per packet. A renewal
        // racing with this is repeated by the trace process.
        // SAFETY: as above.
        unsafe { (*c).deadline_ns = 0 };
        return;
    }
    let Some(cpu) = TRACE_CPU.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot, used by this run only.
    let cpu = unsafe { &mut *cpu };
    let ifindex = ctx.ingress_ifindex() as u32;
    if (ctl.ifindex != 0 && ctl.ifindex != ifindex) || (ctl.group != 0 && ctl.group != d.group) {
        return;
    }
    cpu.seen += 1;
    if ctl.sample > 1 && cpu.seen % u64::from(ctl.sample) != 0 {
        return;
    }
    if !cpu.take(now, ctl.rate) {
        cpu.rate_limited += 1;
        return;
    }
    let Some(mut entry) = TRACE_EVENTS.reserve::<TraceRecord>(0) else {
        cpu.ring_full += 1;
        return;
    };
    let r: *mut TraceRecord = entry.as_mut_ptr();
    // SAFETY: `r` is the reserved record, written whole before submitting.
    unsafe {
        r.write(TraceRecord {
            time_ns: now,
            ifindex,
            action: d.action,
            reason: d.reason,
            group: d.group,
            member: d.member,
            flow: d.flow as u8,
            ..TraceRecord::default()
        });
        addresses(ctx, d, &mut *r);
    }
    entry.submit(0);
    cpu.written += 1;
}

/// Fills in the addresses and ports of the frame as it leaves: passed or
/// dropped, as it arrived; redirected, the program's own frame (Ethernet,
/// no VLAN tag: the IPv6 header, or the outer one of an encapsulated
/// packet, at 14); sent back (`XDP_TX`), a Packet Too Big, whose quote
/// holds the packet. Ports when the upper-layer header follows the fixed
/// header directly. (Offsets rather than parsing again: the verifier walks
/// this for every path that reaches it.)
#[inline(always)]
fn addresses(ctx: &XdpContext, d: &Decision, r: &mut TraceRecord) {
    let eth = wire::ETH_HDR_LEN;
    let ip = wire::IPV6_HDR_LEN;
    let mut off = match d.action {
        xdp_action::XDP_REDIRECT => eth,
        xdp_action::XDP_TX => eth + ip + 8,
        _ => d.l3_off as usize,
    };
    if off == 0 || off > 64 {
        return;
    }
    // `read` checks against the frame's end; this bound is for the offsets.
    let end = 256;
    let Some(h) = read::<[u8; 40]>(ctx, off, end) else {
        return;
    };
    // SAFETY: bounds-checked by `read`.
    let mut h = unsafe { core::ptr::read_unaligned(h) };
    if d.action == xdp_action::XDP_REDIRECT && h[6] == wire::IPPROTO_IPV6 {
        off += ip;
        let Some(inner) = read::<[u8; 40]>(ctx, off, end) else {
            return;
        };
        // SAFETY: as above.
        h = unsafe { core::ptr::read_unaligned(inner) };
    }
    r.src.copy_from_slice(&h[8..24]);
    r.dst.copy_from_slice(&h[24..40]);
    r.proto = h[6];
    r.has_addrs = 1;
    if matches!(h[6], wire::IPPROTO_TCP | wire::IPPROTO_UDP) {
        if let Some(ports) = read::<[u8; 4]>(ctx, off + ip, end) {
            // SAFETY: bounds-checked by `read`.
            r.ports = unsafe { core::ptr::read_unaligned(ports) };
        }
    }
}
