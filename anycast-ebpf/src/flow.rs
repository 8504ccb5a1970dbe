//! Flows: the key and hash of a packet's flow (or, for an ICMPv6 error, of
//! the flow it quotes), the flow table, and the flood guard.

use anycast_common::{
    AddrKey, FLOW_CACHE_SLOTS, FlowEntry, FlowKey, flow_epoch_in_flush, hash, wire,
};
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_ktime_get_coarse_ns, generated::bpf_jiffies64},
    programs::XdpContext,
};

pub(crate) use crate::maps::Flow;
use crate::{
    maps::{CachedFlow, FLOOD, FLOW_CACHE, FLOW_SCRATCH, FLOWS, SETTINGS},
    parse::{
        ipv6::{Ipv6, Transport},
        load, read, words,
    },
    verifier::opaque,
};

/// Nanoseconds of CLOCK_MONOTONIC_COARSE, as this CPU last read it (kept
/// in `f`'s scratch slot). Timeouts are seconds, so a tick's resolution is
/// plenty, and it is a memory read where the precise clock reads the TSC
/// (about 20 ns per packet in a VM). The coarse clock moves only at a
/// tick, when jiffies do, so each CPU reads it once per jiffy and keeps the
/// reading: `bpf_jiffies64` is inlined into a load by the verifier, while a
/// helper call (and its return, with this VM's return thunks) cost about
/// 45 ns per packet in the lab.
#[inline(always)]
pub(crate) fn now(f: &mut Flow) -> u64 {
    // SAFETY: a helper without arguments (inlined by the verifier).
    let jiffies = unsafe { bpf_jiffies64() };
    if f.clock_jiffies != jiffies || f.clock_ns == 0 {
        f.clock_jiffies = jiffies;
        // SAFETY: a helper without arguments.
        f.clock_ns = unsafe { bpf_ktime_get_coarse_ns() };
    }
    f.clock_ns
}

/// ICMPv6 error types that quote the offending packet (RFC 4443).
#[inline(always)]
const fn is_icmp_error(ty: u8) -> bool {
    matches!(ty, 1..=4)
}

/// Completes `f` for the addresses `src` and `dst` (native words) with
/// their [`hash::addr_hash`]es: by protocol and ports when `ports` is given,
/// by flow label otherwise. Fields are written in place: a whole `FlowKey`
/// built on the stack would overflow it.
#[inline(always)]
fn finish(
    f: &mut Flow,
    group: u32,
    (src, dst): ([u32; 4], [u32; 4]),
    (src_hash, dst_hash): (u64, u64),
    (proto, ports, label): (u8, Option<[u8; 4]>, u32),
    icmp_error: bool,
) {
    // SAFETY: the key's own 16-byte fields.
    unsafe {
        words::store16(&mut f.key.src, src);
        words::store16(&mut f.key.dst, dst);
    }
    let tail = hash::key_tail(proto, ports, label);
    f.hash = hash::flow_hash(src_hash, dst_hash, tail);
    f.key.group_id = group;
    f.key._pad = [0; 2];
    match ports {
        Some(p) => {
            f.key.proto = proto;
            f.key.by_label = 0;
            f.key.tail = p;
        }
        None => {
            f.key.proto = 0;
            f.key.by_label = 1;
            f.key.tail = (label & 0x000f_ffff).to_be_bytes();
        }
    }
    f.icmp_error = icmp_error;
}

/// The flow a packet belongs to, in this CPU's scratch slot. For an ICMPv6
/// error, the reverse of the flow it quotes (the member's packet that caused
/// it), so that the error reaches that member: path MTU discovery works
/// through anycast.
#[inline(always)]
pub(crate) fn of_packet(
    ctx: &XdpContext,
    ip: &Ipv6,
    t: &Transport,
    group: u32,
    (src, dst): (*const AddrKey, *const AddrKey),
    hashes: (u64, u64),
) -> Option<&'static mut Flow> {
    let f = FLOW_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: this CPU's scratch slot, used by this run only.
    let f = unsafe { &mut *f };
    // The offsets go as values the verifier does not know (see
    // `verifier`): the quote's bounds checks narrow copies of their own,
    // not the packet's offsets, which every later state would carry.
    let (l4_off, end) = (
        opaque(t.off as u32) as usize,
        opaque(ip.end as u32) as usize,
    );
    if t.proto == wire::IPPROTO_ICMPV6 && of_icmp_error(ctx, l4_off, end, group, f) {
        return Some(f);
    }
    // SAFETY: both point into the packet, bounds-checked by the parser.
    let addrs = unsafe { (words::load16(&(*src).addr), words::load16(&(*dst).addr)) };
    finish(
        f,
        group,
        addrs,
        hashes,
        (t.proto, t.ports(), ip.flow_label),
        false,
    );
    Some(f)
}

/// Fills `f` with the reversed flow quoted by an ICMPv6 error, if this is
/// one and the quote holds a complete IPv6 header.
// Not inlined: keeps its locals out of the entry function's stack frame.
#[inline(never)]
fn of_icmp_error(ctx: &XdpContext, l4_off: usize, end: usize, group: u32, f: &mut Flow) -> bool {
    // Type and code: two bytes, not one (a one-byte bounds check compiles
    // to `ptr >= end`, from which the verifier grants no readable range).
    let Some([ty, _code]) = load::<[u8; 2]>(ctx, l4_off, end) else {
        return false;
    };
    if !is_icmp_error(ty) {
        return false;
    }
    // Type, code, checksum, then 4 bytes (MTU, pointer or unused), then the quote.
    let q = l4_off + 8;
    let Some(head) = load::<[u8; 8]>(ctx, q, end) else {
        return false;
    };
    // The quoted packet went member -> client; the flow is client -> member.
    let (Some(qdst), Some(qsrc)) = (
        read::<[u8; 16]>(ctx, q + 24, end),
        read::<[u8; 16]>(ctx, q + 8, end),
    ) else {
        return false;
    };
    // SAFETY: both bounds-checked just above.
    let addrs = unsafe { (words::load16(qdst), words::load16(qsrc)) };
    let label = u32::from_be_bytes([0, head[1] & 0x0f, head[2], head[3]]);
    let qproto = head[6];
    let ports = if wire::has_ports(qproto) {
        load::<[u8; 4]>(ctx, q + wire::IPV6_HDR_LEN, end).map(|p| [p[2], p[3], p[0], p[1]])
    } else {
        None
    };
    let hashes = (hash::addr_hash(addrs.0), hash::addr_hash(addrs.1));
    finish(f, group, addrs, hashes, (qproto, ports, label), true);
    true
}

/// How often a cached flow refreshes its flow-table entry.
const SYNC_NS: u64 = 1_000_000_000;

/// A flow key's length in 4-byte words: keys are compared and copied a word
/// at a time (byte loops would cost the verifier and the packet more).
const KEY_WORDS: usize = core::mem::size_of::<FlowKey>() / 4;

/// Whether two flow keys are equal: eleven word compares, one branch.
#[inline(always)]
fn same_key(a: &FlowKey, b: &FlowKey) -> bool {
    let (a, b) = (
        a as *const FlowKey as *const u32,
        b as *const FlowKey as *const u32,
    );
    let mut diff = 0;
    for i in 0..KEY_WORDS {
        // SAFETY: both are whole keys, 4-aligned (map values or the scratch slot).
        diff |= unsafe { *a.add(i) ^ *b.add(i) };
    }
    diff == 0
}

/// This CPU's cache slot for `f`.
#[inline(always)]
fn cache_slot(f: &Flow) -> Option<&'static mut CachedFlow> {
    let c = FLOW_CACHE.get_ptr_mut(f.hash & (FLOW_CACHE_SLOTS - 1))?;
    // SAFETY: this CPU's slot, used only by this CPU while the program runs.
    Some(unsafe { &mut *c })
}

/// The member of `f` if this CPU remembers the flow as live (refreshed),
/// and whether its evicted table entry was put back; `valid` says whether
/// a member may still take the flow, `epoch` is `Settings::flow_epoch`.
#[inline(always)]
pub(crate) fn cached(
    f: &Flow,
    epoch: u32,
    now: u64,
    timeout_ns: u64,
    valid: &mut impl FnMut(u32) -> bool,
) -> Option<(u32, bool)> {
    let c = cache_slot(f)?;
    if c.used == 0 || c.epoch != epoch || !same_key(&c.key, &f.key) {
        return None;
    }
    if now.saturating_sub(c.last_seen_ns) > timeout_ns || !valid(c.member_id) {
        return None;
    }
    if c.last_seen_ns != now {
        c.last_seen_ns = now;
    }
    let mut restored = false;
    if now.saturating_sub(c.synced_ns) >= SYNC_NS {
        c.synced_ns = now;
        match sync(&c.key, c.member_id, now, Some(epoch)) {
            // No entry and none put back (a flush is walking the table, or
            // another CPU just recorded the flow): forget it, and let the
            // packet take the table's path.
            Synced::Gone => {
                c.used = 0;
                return None;
            }
            Synced::Restored => restored = true,
            Synced::Entry(moved) if moved != c.member_id && valid(moved) => c.member_id = moved,
            Synced::Entry(_) => {}
        }
    }
    Some((c.member_id, restored))
}

/// What [`sync`] left in the flow table.
enum Synced {
    /// The entry, on this member (another CPU may have moved the flow).
    Entry(u32),
    /// No entry was there: the LRU had evicted it, and it was put back
    /// with the cached member.
    Restored,
    /// No entry, and none put back.
    Gone,
}

/// Refreshes the flow table's entry of a cached flow (on `member`) to
/// `last_seen_ns` and says whose it is (another CPU may have moved the
/// flow: the table's member wins). When the table has no entry, the LRU
/// evicted it (a busy cached flow touches it only once a second); with
/// `restore_epoch` (the packet's `Settings::flow_epoch`, given only for a
/// hit just checked live and valid) it is put back with the cached member.
/// Never while a flush walks the table (the epoch odd, or changed since
/// the packet read it), or a flow the walk removed could return.
#[inline(always)]
fn sync(key: &FlowKey, member: u32, last_seen_ns: u64, restore_epoch: Option<u32>) -> Synced {
    if let Some(e) = FLOWS.get_ptr_mut(key) {
        // SAFETY: a map value pointer, valid during this run.
        let e = unsafe { &mut *e };
        if e.last_seen_ns < last_seen_ns {
            e.last_seen_ns = last_seen_ns;
        }
        return Synced::Entry(e.member_id);
    }
    let Some(epoch) = restore_epoch else {
        return Synced::Gone;
    };
    // Read again: a flush may have begun since the packet read it.
    if flow_epoch_in_flush(epoch) || SETTINGS.get(0).map(|s| s.flow_epoch) != Some(epoch) {
        return Synced::Gone;
    }
    let entry = FlowEntry {
        member_id: member,
        _pad: 0,
        last_seen_ns,
    };
    // Only where there is still no entry: another CPU may have chosen anew.
    match FLOWS.insert(key, &entry, u64::from(BPF_NOEXIST)) {
        Ok(()) => Synced::Restored,
        Err(_) => Synced::Gone,
    }
}

/// Remembers that `f` went to `member`, writing back the time of the flow
/// it replaces.
#[inline(always)]
pub(crate) fn remember(f: &Flow, epoch: u32, member: u32, now: u64) {
    let Some(c) = cache_slot(f) else {
        return;
    };
    // Write back the time of the flow this one replaces, without putting
    // it back: it may have gone idle or lost its member since its last hit.
    if c.used != 0 && c.last_seen_ns > c.synced_ns && c.epoch == epoch {
        let _ = sync(&c.key, c.member_id, c.last_seen_ns, None);
    }
    let (d, s) = (
        &mut c.key as *mut FlowKey as *mut u32,
        &f.key as *const FlowKey as *const u32,
    );
    for i in 0..KEY_WORDS {
        // SAFETY: whole keys, as in `same_key`.
        unsafe { *d.add(i) = *s.add(i) };
    }
    c.member_id = member;
    c.epoch = epoch;
    c.used = 1;
    c.last_seen_ns = now;
    c.synced_ns = now;
}

/// What the flow table holds for a key.
pub(crate) enum Lookup {
    /// A live entry whose member may take the flow (refreshed): that member.
    Hit(u32),
    /// An entry too old, or whose member may not take the flow any more.
    Stale,
    /// No entry.
    Absent,
}

/// Looks `key` up, refreshing a live entry; `valid` says whether a member
/// may still take the flow.
#[inline(always)]
pub(crate) fn lookup(
    key: &FlowKey,
    now: u64,
    timeout_ns: u64,
    valid: &mut impl FnMut(u32) -> bool,
) -> Lookup {
    let Some(e) = FLOWS.get_ptr_mut(key) else {
        return Lookup::Absent;
    };
    // SAFETY: a map value pointer, valid during this run; concurrent writers
    // only race on the timestamp, which any of them may win.
    let e = unsafe { &mut *e };
    // Saturating: another CPU may have stamped the entry a moment later.
    if now.saturating_sub(e.last_seen_ns) > timeout_ns || !valid(e.member_id) {
        return Lookup::Stale;
    }
    // The coarse clock moves once a tick: most hits need no write.
    if e.last_seen_ns != now {
        e.last_seen_ns = now;
    }
    Lookup::Hit(e.member_id)
}

/// Records a new flow unless the flood guard says no. True when recorded.
#[inline(always)]
pub(crate) fn record(key: &FlowKey, member: u32, now: u64) -> bool {
    if !flood_allows(now) {
        return false;
    }
    let entry = FlowEntry {
        member_id: member,
        _pad: 0,
        last_seen_ns: now,
    };
    FLOWS.insert(key, &entry, 0).is_ok()
}

/// The flood guard: at most `Settings::flood_rate` new flows per second per
/// CPU are recorded, so that a flood of new sources cannot flush the table.
#[inline(always)]
fn flood_allows(now: u64) -> bool {
    let rate = SETTINGS.get(0).map_or(0, |s| s.flood_rate);
    if rate == 0 {
        return true;
    }
    let Some(st) = FLOOD.get_ptr_mut(0) else {
        return true;
    };
    // SAFETY: a per-CPU slot, used only by this CPU while the program runs.
    let st = unsafe { &mut *st };
    if now.saturating_sub(st.window_start_ns) >= 1_000_000_000 {
        st.window_start_ns = now;
        st.new_flows = 0;
    }
    if st.new_flows >= u64::from(rate) {
        return false;
    }
    st.new_flows += 1;
    true
}
