//! The programs `cargo xtask bench` runs around and against the anycast
//! program in the end-to-end lab: a live-frames generator, a counting sink
//! for the member, and the trivial programs that bound what any XDP program
//! can do on this machine (drop everything, redirect everything, one hash
//! lookup then drop), the kernel's LRU hash alone (what a new flow costs the
//! flow table's map type, by key size and LRU list), and a program that
//! stays in flight for a while, for the tests of what waits for program
//! runs. Names are in `anycast_common::peer_names`.
#![no_std]
#![no_main]
#![expect(
    unreachable_pub,
    missing_docs,
    reason = "the #[xdp] macro expands to undocumented pub entry points"
)]

mod rt;

use core::ffi::c_void;

use anycast_common::{
    FlowEntry,
    peer_names::{GEN_HEADER_LEN, HOLD_FINISHED, HOLD_STARTED, LRU_UNEXPECTED, LRU_WIDE_WORDS},
};
use aya_ebpf::{
    bindings::{BPF_F_NO_COMMON_LRU, xdp_action},
    helpers::generated::bpf_loop,
    macros::{map, xdp},
    maps::{Array, DevMap, HashMap, LruHashMap, PerCpuArray},
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

/// The flow table's key size. The bench sizes the LRU maps when it loads
/// them; loaded as they are here (by the end-to-end lab) they stay small.
/// Values are the flow table's too, so an element is as large as a flow's.
type WideKey = [u32; LRU_WIDE_WORDS];

// `lru_miss` clears the last word, which no narrow key holds.
const _: () = assert!(LRU_WIDE_WORDS > 4);

#[map(name = "LRU_WIDE")]
static LRU_WIDE: LruHashMap<WideKey, FlowEntry> = LruHashMap::with_max_entries(64, 0);

#[map(name = "LRU_NARROW")]
static LRU_NARROW: LruHashMap<[u32; 4], FlowEntry> = LruHashMap::with_max_entries(64, 0);

#[map(name = "LRU_PER_CPU")]
static LRU_PER_CPU: LruHashMap<WideKey, FlowEntry> =
    LruHashMap::with_max_entries(64, BPF_F_NO_COMMON_LRU);

/// Per CPU: the key counter, and the runs that took another path than
/// their program times (a key found, an insert refused).
#[map(name = "LRU_SEQ")]
static LRU_SEQ: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

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

/// The next number of this CPU's key counter and a wide key no run made
/// before: the number itself in words 2 and 3, spread over words 0 and 1
/// as a flood's sources are, the rest fixed as a flow's destination and
/// group are. Words 0 to 3 are the narrow key.
#[inline(always)]
fn next_key() -> Option<(u64, WideKey)> {
    let seq = LRU_SEQ.get_ptr_mut(0)?;
    // SAFETY: a per-CPU slot: no other writer.
    let n = unsafe {
        let n = *seq;
        *seq = n + 1;
        n
    };
    let spread = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut key = [0x2001_0db8; LRU_WIDE_WORDS];
    key[0] = spread as u32;
    key[1] = (spread >> 32) as u32;
    key[2] = n as u32;
    key[3] = (n >> 32) as u32;
    Some((n, key))
}

/// Counts a run that took another path than the one its program times,
/// and returns `action` (which the bench also checks).
#[inline(always)]
fn unexpected(action: u32) -> u32 {
    if let Some(count) = LRU_SEQ.get_ptr_mut(LRU_UNEXPECTED) {
        // SAFETY: a per-CPU slot: no other writer.
        unsafe { *count += 1 };
    }
    action
}

/// The LRU programs' floor: the key, and no map.
#[xdp]
pub fn lru_floor(_ctx: XdpContext) -> u32 {
    match next_key() {
        Some((_, key)) => {
            // Made as the others make it, though no map reads it.
            core::hint::black_box(&key);
            xdp_action::XDP_PASS
        }
        None => xdp_action::XDP_ABORTED,
    }
}

/// A lookup of a new key (never inserted: its last word is one no insert
/// writes): XDP_PASS on the miss.
#[xdp]
pub fn lru_miss(_ctx: XdpContext) -> u32 {
    let Some((_, mut key)) = next_key() else {
        return xdp_action::XDP_ABORTED;
    };
    key[LRU_WIDE_WORDS - 1] = 0;
    match LRU_WIDE.get_ptr(&key) {
        Some(_) => unexpected(xdp_action::XDP_DROP),
        None => xdp_action::XDP_PASS,
    }
}

/// What the flow table does for a new flow: a lookup that misses, then
/// the insert (which evicts from a full table). XDP_DROP when inserted.
#[inline(always)]
fn insert_new<K>(map: &LruHashMap<K, FlowEntry>, key: &K, n: u64) -> u32 {
    if map.get_ptr(key).is_some() {
        return unexpected(xdp_action::XDP_PASS);
    }
    let entry = FlowEntry {
        member_id: n as u32,
        _pad: 0,
        last_seen_ns: n,
    };
    match map.insert(key, &entry, 0) {
        Ok(()) => xdp_action::XDP_DROP,
        Err(_) => unexpected(xdp_action::XDP_ABORTED),
    }
}

/// A new flow in the flow table's shape (44-byte key, common LRU list).
#[xdp]
pub fn lru_insert_wide(_ctx: XdpContext) -> u32 {
    match next_key() {
        Some((n, key)) => insert_new(&LRU_WIDE, &key, n),
        None => xdp_action::XDP_ABORTED,
    }
}

/// A new flow with a 16-byte key.
#[xdp]
pub fn lru_insert_narrow(_ctx: XdpContext) -> u32 {
    match next_key() {
        Some((n, key)) => insert_new(&LRU_NARROW, &[key[0], key[1], key[2], key[3]], n),
        None => xdp_action::XDP_ABORTED,
    }
}

/// A new flow with the flow table's key, LRU lists per CPU.
#[xdp]
pub fn lru_insert_per_cpu(_ctx: XdpContext) -> u32 {
    match next_key() {
        Some((n, key)) => insert_new(&LRU_PER_CPU, &key, n),
        None => xdp_action::XDP_ABORTED,
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
