//! Flows: the key and hash of a packet's flow (or, for an ICMPv6 error, of
//! the flow it quotes), the flow table, and the flood guard.

use anycast_common::{
    AddrKey, FLOW_CACHE_SLOTS, FlowEntry, FlowKey, explain::reached as explain_reached,
    flow_epoch_in_flush, hash, wire,
};
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_ktime_get_coarse_ns, generated::bpf_jiffies64},
    programs::XdpContext,
};

pub(crate) use crate::maps::Flow;
use crate::{
    explain,
    maps::{CachedFlow, FLOOD, FLOW_CACHE, FLOW_SCRATCH, FLOWS, SETTINGS},
    parse::{
        ipv6::{self, Ipv6, Transport},
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

/// Rekeys the flow in `f` (whose addresses hash to `hashes`) as IPsec:
/// protocol ESP, a zero tail (see `Transport::ipsec`). Done after
/// [`finish`], in the scratch slot, so that the paths of IPsec and the
/// rest differ in memory only, where the verifier does not follow them.
#[inline(always)]
fn as_ipsec(f: &mut Flow, (src_hash, dst_hash): (u64, u64)) {
    let tail = [0; 4];
    f.hash = hash::flow_hash(
        src_hash,
        dst_hash,
        hash::key_tail(wire::IPPROTO_ESP, Some(tail), 0),
    );
    f.key.proto = wire::IPPROTO_ESP;
    f.key.by_label = 0;
    f.key.tail = tail;
}

/// Why a packet to steer has no flow: it goes to the kernel.
pub(crate) enum NoFlow {
    /// No scratch slot (never happens: a per-CPU array's slot 0).
    NoScratch,
    /// Link-scoped ICMPv6 (Neighbor Discovery, MLD, ...): see [`link_scoped`].
    LinkScoped,
    /// An ICMPv6 error whose quote is shorter than an IPv6 header: it
    /// names no flow.
    Unmatched,
}

/// The flow a packet belongs to, in this CPU's scratch slot: by protocol
/// and ports for the protocols that have them, by identifier for an ICMPv6
/// echo (a first fragment's too: it is keyed as its whole packet), by flow
/// label otherwise (a later fragment: the one field it shares with its
/// flow's other packets; see `fragment` for how it follows its first). For an ICMPv6
/// error, the reverse of the flow it quotes (the member's packet that
/// caused it), so that the error reaches that member: path MTU discovery
/// works through anycast.
#[inline(always)]
pub(crate) fn of_packet(
    ctx: &XdpContext,
    ip: &Ipv6,
    t: &Transport,
    group: u32,
    (src, dst): (*const AddrKey, *const AddrKey),
) -> Result<&'static mut Flow, NoFlow> {
    let f = FLOW_SCRATCH.get_ptr_mut(0).ok_or(NoFlow::NoScratch)?;
    // SAFETY: this CPU's scratch slot, used by this run only.
    let f = unsafe { &mut *f };
    f.later_fragment = t.fragment && !t.upper;
    f.first_fragment = t.fragment && t.upper;
    let mut id = t.ports();
    // Only a first fragment has an upper-layer header (RFC 8200 4.5): a
    // later one's data is never read as ICMPv6.
    if t.proto == wire::IPPROTO_ICMPV6 && t.upper {
        // The offsets go as values the verifier does not know (see
        // `verifier`): the quote's bounds checks narrow copies of their
        // own, not the packet's offsets, which every later state would carry.
        let (l4_off, end) = (
            opaque(t.off as u32) as usize,
            opaque(ip.end as u32) as usize,
        );
        match of_icmp(ctx, l4_off, end, group, f) {
            ICMP_QUOTED => return Ok(f),
            ICMP_LINK_SCOPED => return Err(NoFlow::LinkScoped),
            ICMP_UNMATCHED => return Err(NoFlow::Unmatched),
            c if c & ICMP_ECHO != 0 => {
                let [_, _, hi, lo] = c.to_be_bytes();
                id = Some([hi, lo, 0, 0]);
            }
            _ => {}
        }
    }
    // SAFETY: both point into the packet, bounds-checked by the parser.
    let addrs = unsafe { (words::load16(&(*src).addr), words::load16(&(*dst).addr)) };
    // Hashed here, not by classification: a packet that is not steered
    // needs the hash of neither (see `classify::anycast_word`).
    let hashes = (hash::addr_hash(addrs.0), hash::addr_hash(addrs.1));
    finish(f, group, addrs, hashes, (t.proto, id, ip.flow_label), false);
    if t.ipsec(t.proto, id, ip.next_header) {
        as_ipsec(f, hashes);
    }
    Ok(f)
}

/// [`of_icmp`]: no special kind, the packet's own flow by label.
const ICMP_OWN: u32 = 0;
/// [`of_icmp`]: an error, the scratch slot holds the flow it quotes.
const ICMP_QUOTED: u32 = 1;
/// [`of_icmp`]: link-scoped, for the kernel.
const ICMP_LINK_SCOPED: u32 = 2;
/// [`of_icmp`]: an error whose quote names no flow.
const ICMP_UNMATCHED: u32 = 3;
/// [`of_icmp`]: an echo request or reply, its identifier in the low 16 bits.
const ICMP_ECHO: u32 = 1 << 16;

/// ICMPv6 types that never leave their link: MLD (130 to 132, 143),
/// Neighbor Discovery (133 to 137, valid only with hop limit 255, RFC 4861
/// 6.1, 7.1, 8.1), Inverse ND (141, 142), SEND certification paths (148,
/// 149) and Multicast Router Discovery (151 to 153). A member would discard
/// them; the kernel is the one they are for.
#[inline(always)]
const fn link_scoped(ty: u8) -> bool {
    matches!(ty, 130..=137 | 141..=143 | 148 | 149 | 151..=153)
}

/// What the ICMPv6 message at `l4_off` (its packet ending at `end`) means
/// for steering: one of the `ICMP_*` codes. An error (types 0 to 127, RFC
/// 4443 2.1; unknown ones too: they go to the process that sent the packet
/// they quote, 2.4 (a)) fills `f` with the reverse of the flow it quotes,
/// whose extension headers are walked like a packet's own; an echo gives
/// its identifier, which its reply carries too (4.2).
// Not inlined: keeps its locals (and the quote's walk) out of the entry
// function's stack frame; a plain code comes back, in a register.
#[inline(never)]
fn of_icmp(ctx: &XdpContext, l4_off: usize, end: usize, group: u32, f: &mut Flow) -> u32 {
    // Type and code: two bytes, not one (a one-byte bounds check compiles
    // to `ptr >= end`, from which the verifier grants no readable range).
    let Some([ty, _code]) = load::<[u8; 2]>(ctx, l4_off, end) else {
        return ICMP_OWN;
    };
    if ty >= 128 {
        if link_scoped(ty) {
            return ICMP_LINK_SCOPED;
        }
        return match echo_id(ctx, ty, l4_off, end) {
            Some(id) => ICMP_ECHO | u32::from(id),
            None => ICMP_OWN,
        };
    }
    // Type, code, checksum, then 4 bytes (MTU, pointer or unused), then the
    // quote, whose whole IPv6 header is needed to name the flow.
    let q = l4_off + 8;
    let Some(head) = load::<[u8; 8]>(ctx, q, end) else {
        return ICMP_UNMATCHED;
    };
    // The quoted packet went member -> client; the flow is client -> member.
    let (Some(qdst), Some(qsrc)) = (
        read::<[u8; 16]>(ctx, q + 24, end),
        read::<[u8; 16]>(ctx, q + 8, end),
    ) else {
        return ICMP_UNMATCHED;
    };
    // SAFETY: both bounds-checked just above.
    let addrs = unsafe { (words::load16(qdst), words::load16(qsrc)) };
    let label = u32::from_be_bytes([0, head[1] & 0x0f, head[2], head[3]]);
    // The quoted packet's own headers, to the end of the quote: ports
    // (reversed) or an echo's identifier name the flow, a first fragment's
    // too; a later fragment, a cut or too long chain, and the rest go by
    // the quoted label.
    let quoted = Ipv6 {
        off: q,
        end,
        next_header: head[6],
        hop_limit: 0,
        flow_label: label,
    };
    let (proto, id, ipsec) = match ipv6::transport(ctx, &quoted) {
        Some(t) if t.has_ports => {
            let [s0, s1, d0, d1] = t.port_bytes;
            let id = Some([d0, d1, s0, s1]);
            (t.proto, id, t.ipsec(t.proto, id, head[6]))
        }
        Some(t) if t.upper && t.proto == wire::IPPROTO_ICMPV6 => {
            let ty = load::<[u8; 2]>(ctx, t.off, end).map_or(0, |b| b[0]);
            let id = echo_id(ctx, ty, t.off, end).map(|id| {
                let [hi, lo] = id.to_be_bytes();
                [hi, lo, 0, 0]
            });
            (t.proto, id, t.ipsec(t.proto, id, head[6]))
        }
        // ESP, or a quote under an Authentication Header (the protocol
        // counts only with an id: by label otherwise).
        Some(t) => (t.proto, None, t.ipsec(t.proto, None, head[6])),
        None => (head[6], None, false),
    };
    let hashes = (hash::addr_hash(addrs.0), hash::addr_hash(addrs.1));
    finish(f, group, addrs, hashes, (proto, id, label), true);
    if ipsec {
        as_ipsec(f, hashes);
    }
    ICMP_QUOTED
}

/// The identifier of the ICMPv6 message of type `ty` at `off`, if it is an
/// echo request or reply whose 8-byte header is there.
#[inline(always)]
fn echo_id(ctx: &XdpContext, ty: u8, off: usize, end: usize) -> Option<u16> {
    if ty != 128 && ty != 129 {
        return None;
    }
    let h = load::<[u8; 8]>(ctx, off, end)?;
    Some(u16::from_be_bytes([h[4], h[5]]))
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
    // The explain instance's cache is its own and stays empty: it asks
    // the flow table, the truth every CPU shares.
    if explain::on() {
        return None;
    }
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
        // An ICMPv6 error or a later fragment never makes an entry, not
        // even a put-back one.
        let restore = (!f.icmp_error && !f.later_fragment).then_some(epoch);
        match sync(&c.key, c.member_id, now, restore) {
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
    if explain::on() {
        return;
    }
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
    explain::note(|t| {
        t.reached |= explain_reached::ENTRY;
        t.entry_member = e.member_id;
        t.entry_last_seen_ns = e.last_seen_ns;
    });
    // Saturating: another CPU may have stamped the entry a moment later.
    if now.saturating_sub(e.last_seen_ns) > timeout_ns || !valid(e.member_id) {
        return Lookup::Stale;
    }
    // The coarse clock moves once a tick: most hits need no write.
    if e.last_seen_ns != now && !explain::on() {
        e.last_seen_ns = now;
    }
    Lookup::Hit(e.member_id)
}

/// Records a new flow unless the flood guard says no. True when recorded.
#[inline(always)]
pub(crate) fn record(key: &FlowKey, member: u32, now: u64) -> bool {
    if !flood_allows(now) {
        explain::note(|t| t.reached |= explain_reached::FLOOD_FULL);
        return false;
    }
    // The explain instance records nothing; an insert of a new key into
    // an LRU hash does not fail.
    if explain::on() {
        return true;
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
    // The explain instance reads the window and writes nothing: the flow
    // would be recorded unless this second's allowance is spent.
    if explain::on() {
        return now.saturating_sub(st.window_start_ns) >= 1_000_000_000
            || st.new_flows < u64::from(rate);
    }
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
