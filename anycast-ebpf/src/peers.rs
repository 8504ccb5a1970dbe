//! The programs `cargo xtask bench` runs around and against the anycast
//! program in the end-to-end lab: a live-frames generator, a counting sink
//! for the member, and the trivial programs that bound what any XDP program
//! can do on this machine (drop everything, redirect everything, one hash
//! lookup then drop), and a program that stays in flight for a while, for
//! the tests of what waits for program runs. Names are in
//! `anycast_common::peer_names`.
#![no_std]
#![no_main]
#![expect(
    unreachable_pub,
    missing_docs,
    reason = "the #[xdp] macro expands to undocumented pub entry points"
)]

mod rt;

use core::ffi::c_void;

use anycast_common::peer_names::{GEN_HEADER_LEN, HOLD_FINISHED, HOLD_STARTED};
use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::bpf_loop,
    macros::{map, xdp},
    maps::{Array, DevMap, HashMap, PerCpuArray},
    programs::XdpContext,
};

#[map(name = "SINK_PACKETS")]
static SINK_PACKETS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "PEER_PORT")]
static PEER_PORT: DevMap = DevMap::with_max_entries(1, 0);

#[map(name = "DENY_SOURCES")]
static DENY_SOURCES: HashMap<[u8; 16], u8> = HashMap::with_max_entries(1024, 0);

#[map(name = "GEN_HEADER")]
static GEN_HEADER: Array<[u64; GEN_HEADER_LEN / 8]> = Array::with_max_entries(1, 0);

#[map(name = "HOLD_MARKS")]
static HOLD_MARKS: Array<u64> = Array::with_max_entries(2, 0);

/// Ethernet + IPv6 up to the source address.
const SRC_OFFSET: usize = 14 + 8;

/// Restores the header and sends the frame back out (the generator).
#[xdp]
pub fn gen_tx(ctx: XdpContext) -> u32 {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + GEN_HEADER_LEN > end {
        return xdp_action::XDP_ABORTED;
    }
    if let Some(h) = GEN_HEADER.get(0) {
        let p = start as *mut u64;
        // SAFETY: bounds checked above; word by word, because an array copy
        // compiles to a call of a byte-looping memmove.
        unsafe {
            *p = h[0];
            *p.add(1) = h[1];
            *p.add(2) = h[2];
        }
    }
    xdp_action::XDP_TX
}

/// Counts and drops (the member's receiver).
#[xdp]
pub fn sink(_ctx: XdpContext) -> u32 {
    if let Some(n) = SINK_PACKETS.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot: no other writer.
        unsafe { *n += 1 };
    }
    xdp_action::XDP_DROP
}

/// Passes everything to the kernel: what any XDP program that passes
/// transit traffic costs at least.
#[xdp]
pub fn pass_all(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// Drops everything: the ceiling of any XDP program.
#[xdp]
pub fn drop_all(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}

/// Redirects everything to the one port: the ceiling of any redirector.
#[xdp]
pub fn redirect_all(_ctx: XdpContext) -> u32 {
    PEER_PORT.redirect(0, 0).unwrap_or(xdp_action::XDP_ABORTED)
}

/// One hash lookup of the IPv6 source, straight from the packet, then drop
/// on a hit (no VLANs, no extension headers: a floor, not a filter).
#[xdp]
pub fn lookup_drop(ctx: XdpContext) -> u32 {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + SRC_OFFSET + 16 > end {
        return xdp_action::XDP_PASS;
    }
    // SAFETY: bounds checked above; the key is 16 plain bytes.
    let src = unsafe { &*((start + SRC_OFFSET) as *const [u8; 16]) };
    // SAFETY: the value is a plain byte, not kept past the call.
    if unsafe { DENY_SOURCES.get(src) }.is_some() {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

/// Steps of each of [`hold`]'s loops: its run makes 4,096 x 4,096 calls.
const HOLD_STEPS: u32 = 4096;

/// Counts run `index` of `HOLD_MARKS` (a plain add: the tests run one
/// program at a time).
#[inline(always)]
fn mark(index: u32) {
    if let Some(n) = HOLD_MARKS.get_ptr_mut(index) {
        // SAFETY: a map value, valid during this run.
        unsafe { *n += 1 };
    }
}

/// Calls `step` [`HOLD_STEPS`] times (`bpf_loop`).
#[inline(always)]
fn hold_loop(step: extern "C" fn(u32, *mut c_void) -> i64) {
    // SAFETY: the helper calls a callback of this object with a null
    // context, which the callbacks never read.
    unsafe { bpf_loop(HOLD_STEPS, step as *mut c_void, core::ptr::null_mut(), 0) };
}

/// One step of [`hold`]'s inner loop: nothing.
#[inline(never)]
extern "C" fn hold_step(_index: u32, _ctx: *mut c_void) -> i64 {
    0
}

/// One step of [`hold`]'s outer loop: a whole inner loop.
#[inline(never)]
extern "C" fn hold_round(_index: u32, _ctx: *mut c_void) -> i64 {
    hold_loop(hold_step);
    0
}

/// Stays in flight for a long while (tens to hundreds of milliseconds, a
/// single run), counting when it starts and when it ends, then passes:
/// the tests of what waits until every program run under way has ended.
#[xdp]
pub fn hold(_ctx: XdpContext) -> u32 {
    mark(HOLD_STARTED);
    hold_loop(hold_round);
    mark(HOLD_FINISHED);
    xdp_action::XDP_PASS
}
