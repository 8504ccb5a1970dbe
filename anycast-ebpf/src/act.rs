//! Acting on an anycast-destined packet: pick the nearest live member, then
//! rewrite and redirect (on-link) or encapsulate and redirect (routed).
//!
//! Every check that can fail runs before the first byte of the packet is
//! changed, so a packet that falls back to the kernel is the packet that
//! arrived.

use anycast_common::{
    Affinity, ENCAP_HOP_LIMIT, Fallback, GlobalStat, GroupInfo, GroupStat, IPV6_MIN_MTU,
    MemberInfo, MemberKind, MemberState,
    explain::{ChosenBy, reached},
    hash, wire,
};
use aya_ebpf::{
    bindings::{
        BPF_FIB_LKUP_RET_FRAG_NEEDED, BPF_FIB_LKUP_RET_SUCCESS, BPF_FIB_LOOKUP_SRC, bpf_fib_lookup,
        xdp_action,
    },
    helpers::generated::{bpf_fib_lookup as fib_lookup, bpf_redirect, bpf_xdp_adjust_head},
    programs::XdpContext,
};

use crate::{
    explain,
    flow::{self, Flow, Lookup, NoFlow},
    fragment,
    maps::{ChosenSource, ENCAP_SCRATCH, GROUPS, MEMBERS, SELECTION, TX_PORTS},
    parse::{Packet, ipv6, ipv6::Ipv6, ipv6::Transport, load, words, writable},
    too_big,
    verdict::{FlowOutcome, Steered, Target},
};

pub(crate) const AF_INET6: u8 = 10;

/// What forbids steering a packet to an anycast address, before its
/// extension headers are read (so that no chain carries it past): `None`
/// for nearly all (a flag, one load and two compares). Its scope first:
/// for a scoped address, arrived outside the scope, it is dropped. Then
/// its source address, on every role. A source no router forwards
/// is dropped: the unspecified address and loopback (RFC 4291 2.5.2,
/// 2.5.3), multicast (2.7), IPv4-mapped (RFC 6890 2.2.3) and site-local
/// (RFC 3879 4). A link-local source (2.5.6) goes to the kernel, which
/// delivers the packet if the address is its own and otherwise discards it
/// with a Destination Unreachable, beyond scope of source (RFC 4443 3.1).
#[inline(always)]
pub(crate) fn screen(p: &Packet, t: &Target) -> Option<Steered> {
    if t.out_of_scope {
        return Some(Steered {
            action: xdp_action::XDP_DROP,
            ..passed(GlobalStat::OutOfScopeDropped, GroupStat::OutOfScopeDrops)
        });
    }
    // Volatile reads: LLVM would otherwise reuse the words classification
    // loaded (for its lookups) and loads again later (for the flow key),
    // and this function's compares would narrow what the verifier knows
    // of them on each path, keeping the paths apart to the end.
    let word = |i: usize| {
        // SAFETY: the source address, bounds-checked by the parser; see
        // `parse::words` on reading it as words.
        u32::from_be(unsafe { core::ptr::read_volatile((p.src as *const u32).add(i)) })
    };
    let w0 = word(0);
    let top = w0 >> 24;
    // Global unicast and everything else outside ::/8 and fe00::/7.
    if top != 0 && top < 0xfe {
        return None;
    }
    let w = [w0, word(1), word(2), word(3)];
    let invalid = if top == 0 {
        // ::, ::1 and ::ffff:0:0/96 (IPv4-mapped).
        (w[0] | w[1]) == 0 && ((w[2] == 0 && w[3] <= 1) || w[2] == 0xffff)
    } else {
        // ff00::/8 (multicast) or fec0::/10 (site-local).
        top == 0xff || w[0] >> 22 == 0x3fb
    };
    if invalid {
        return Some(Steered {
            action: xdp_action::XDP_DROP,
            ..passed(
                GlobalStat::InvalidSourceDropped,
                GroupStat::InvalidSourceDrops,
            )
        });
    }
    if w[0] >> 22 == 0x3fa {
        // fe80::/10.
        return Some(passed(
            GlobalStat::LinkScopePassed,
            GroupStat::LinkScopePassed,
        ));
    }
    None
}

/// Steers a packet destined to the anycast group of `target`: the flow,
/// the member, the rewrite.
#[inline(always)]
pub(crate) fn steer(ctx: &XdpContext, p: &Packet, t: &Transport, target: &Target) -> Steered {
    let ip = &p.ip;
    if ip.hop_limit <= 1 {
        // The kernel sends the ICMPv6 Time Exceeded.
        return passed(GlobalStat::HopLimitPassed, GroupStat::HopLimitPassed);
    }
    let group = target.group;
    let Some(info) = GROUPS.get(group) else {
        return fallback(Fallback::Pass);
    };
    let f = match flow::of_packet(ctx, ip, t, group, (p.src, p.dst)) {
        Ok(f) => f,
        Err(NoFlow::LinkScoped) => {
            return passed(GlobalStat::LinkScopePassed, GroupStat::LinkScopePassed);
        }
        Err(NoFlow::Unmatched) => {
            return passed(GlobalStat::IcmpErrorsPassed, GroupStat::IcmpErrorsPassed);
        }
        Err(NoFlow::NoScratch) => return fallback(Fallback::Pass),
    };
    // Read here, on the few paths before the member is chosen, rather than
    // on each of the many after: only a packet with extension headers can
    // carry the option (one compare for the rest).
    f.encap_limit_zero =
        wire::ext_header_len_kind(ip.next_header).is_some() && ipv6::encap_limit_zero(ctx, ip);
    explain::flow(f);
    // A later fragment follows its datagram's first one (see `fragment`).
    let followed = if f.later_fragment {
        fragment::first_member(f, group, t.frag_id)
    } else {
        0
    };
    let chosen = match usable(followed, group) {
        Some(m) => {
            explain::note(|t| t.chosen_by = ChosenBy::Fragment as u8);
            Some(Chosen {
                member: followed,
                info: m,
                flow: FlowOutcome::None,
            })
        }
        None => choose(info, group, f, target.flow_epoch),
    };
    let Some(chosen) = chosen else {
        let mut s = fallback(Fallback::from_u8(info.fallback));
        s.icmp_error = f.icmp_error;
        return s;
    };
    let (member, m, flow) = (chosen.member, chosen.info, chosen.flow.opaque());
    if f.first_fragment && !f.icmp_error {
        // A first fragment: its datagram's later ones follow it.
        fragment::note(f, group, t.frag_id, member);
    }
    // The MTU of a Packet Too Big to answer with, 0 if none.
    let mut too_big_mtu = 0;
    let mut s = match MemberKind::from_u8(m.kind) {
        MemberKind::L2 => match too_big::over_link_mtu(ctx, ip, m.ifindex) {
            0 => redirected(redirect_l2(ctx, ip, m), member),
            // RFC 8200 5: too big for the member's link.
            mtu => {
                too_big_mtu = mtu;
                passed(GlobalStat::TooBigPassed, GroupStat::TooBigPassed)
            }
        },
        // RFC 2473 5.1: a packet whose limit is 0 is discarded (with a
        // Parameter Problem) by the entry point: the kernel's, which does both.
        MemberKind::Encap if f.encap_limit_zero => {
            passed(GlobalStat::EncapLimitPassed, GroupStat::EncapLimitPassed)
        }
        MemberKind::Encap => match redirect_encap(ctx, ip, info, m, f) {
            ENCAP_TOO_BIG => passed(GlobalStat::TooBigPassed, GroupStat::TooBigPassed),
            ENCAP_FIB_MISS => passed(GlobalStat::FibMissPassed, GroupStat::FibMissPassed),
            // RFC 2473 7.1: the tunnel MTU is the path MTU less our 40
            // bytes of headers; a packet over 1280 bytes gets a Packet Too
            // Big of at least 1280, one of 1280 or less the entry point
            // fragments once encapsulated: the kernel.
            rc if rc & 0xffff == ENCAP_FRAG_NEEDED => {
                if ip.end - ip.off > IPV6_MIN_MTU {
                    let tunnel = (rc >> 16).saturating_sub(wire::IPV6_HDR_LEN as u32);
                    too_big_mtu = tunnel.max(IPV6_MIN_MTU as u32);
                }
                passed(GlobalStat::TooBigPassed, GroupStat::TooBigPassed)
            }
            action => redirected(action, member),
        },
        MemberKind::None => fallback(Fallback::from_u8(info.fallback)),
    };
    if too_big_mtu != 0 {
        explain::note(|t| t.too_big_mtu = too_big_mtu);
        // RFC 4443 2.4 (e.1), (e.6): never in answer to an error message
        // or to an anycast source.
        let refused = f.icmp_error || target.source.group != 0;
        let action = too_big::answer(ctx, ip, too_big_mtu, refused);
        if action != too_big::NOT_SENT {
            s = Steered {
                action,
                ..passed(GlobalStat::TooBigSent, GroupStat::TooBigSent)
            };
        }
    }
    s.flow = flow;
    s.icmp_error = f.icmp_error;
    s
}

/// Redirected to `member` with `action`.
#[inline(always)]
const fn redirected(action: u32, member: u32) -> Steered {
    Steered {
        action,
        stat: GlobalStat::Redirected,
        group_stat: GroupStat::Redirected,
        member,
        flow: FlowOutcome::None,
        icmp_error: false,
    }
}

/// Passed to the kernel untouched, counted as `stat` and `group_stat`.
#[inline(always)]
const fn passed(stat: GlobalStat, group_stat: GroupStat) -> Steered {
    Steered {
        action: xdp_action::XDP_PASS,
        stat,
        group_stat,
        member: 0,
        flow: FlowOutcome::None,
        icmp_error: false,
    }
}

/// No live member: the group's fallback.
#[inline(always)]
const fn fallback(f: Fallback) -> Steered {
    match f {
        Fallback::Pass => passed(GlobalStat::FallbackPassed, GroupStat::FallbackPassed),
        Fallback::Drop => Steered {
            action: xdp_action::XDP_DROP,
            ..passed(GlobalStat::FallbackDropped, GroupStat::FallbackDropped)
        },
    }
}

/// Whether member entry `m` is registered in `group` (its slot in use).
#[inline(always)]
fn registered(m: &MemberInfo, group: u32) -> bool {
    m.kind != MemberKind::None as u8 && m.group_id == group
}

/// Whether member entry `m` may take a flow of `group`: registered in it
/// and not down (draining members keep their flows).
#[inline(always)]
fn may_take(m: &MemberInfo, group: u32) -> bool {
    registered(m, group) && m.up != MemberState::Down as u8
}

/// The entry of member `id` if it may take a flow of `group`.
#[inline(always)]
fn usable(id: u32, group: u32) -> Option<&'static MemberInfo> {
    if id == 0 {
        return None;
    }
    MEMBERS.get(id).filter(|m| may_take(m, group))
}

/// The member a flow goes to, and what the flow table did.
struct Chosen {
    /// The member's id.
    member: u32,
    /// Its entry.
    info: &'static MemberInfo,
    /// What the flow table did.
    flow: FlowOutcome,
}

/// The member flow `f` goes to. With flow affinity, a known flow stays on
/// its member while that member is registered in the group and not down
/// (draining members keep their flows); a new flow goes by the group's
/// consistent-hash table and is recorded (unless the flood guard says no,
/// or it is an ICMPv6 error, which only follows its flow).
/// `epoch` is `Settings::flow_epoch`.
#[inline(always)]
fn choose(info: &GroupInfo, group: u32, f: &mut Flow, epoch: u32) -> Option<Chosen> {
    let affinity = Affinity::from_u8(info.affinity) == Affinity::Flow;
    let now = if affinity { flow::now(f) } else { 0 };
    let f = &*f;
    let mut existed = false;
    if affinity {
        // The flow's own protocol (a quoted one for ICMPv6 errors) sets the timeout.
        let timeout = info.flow_timeout_ns(f.key.proto);
        explain::note(|t| {
            t.now_ns = now;
            t.timeout_ns = timeout;
        });
        // The entry of the member the flow is on, kept for the redirect.
        let mut entry: Option<&'static MemberInfo> = None;
        let mut valid = |id| match MEMBERS.get(id) {
            Some(m) if may_take(m, group) => {
                entry = Some(m);
                true
            }
            _ => false,
        };
        // (The explain instance has no cache: it asks the table.)
        if let Some((member, restored)) = flow::cached(f, epoch, now, timeout, &mut valid) {
            let flow = if restored {
                FlowOutcome::HitRestored
            } else {
                FlowOutcome::Hit
            };
            return Some(Chosen {
                member,
                info: entry?,
                flow,
            });
        }
        match flow::lookup(&f.key, now, timeout, &mut valid) {
            Lookup::Hit(member) => {
                explain::note(|t| t.chosen_by = ChosenBy::FlowEntry as u8);
                flow::remember(f, epoch, member, now);
                return Some(Chosen {
                    member,
                    info: entry?,
                    flow: FlowOutcome::Hit,
                });
            }
            Lookup::Stale => existed = true,
            Lookup::Absent => {}
        }
    }
    let sel = SELECTION.get(group * 2 + (info.active_slot & 1))?;
    if sel.count == 0 || sel.size == 0 {
        return None;
    }
    let slot = f.hash % sel.size;
    explain::note(|t| {
        t.reached |= reached::HASH;
        t.chosen_by = ChosenBy::Hash as u8;
        t.active_slot = info.active_slot & 1;
        t.table_size = sel.size;
        t.table_slot = slot;
    });
    // Bounded by the table length in `get`.
    let member = *sel.table.get(slot as usize)?;
    // Userspace rewrites a table only after a flip away from it, but a
    // packet that read the group before the flip may still read it, and
    // find a member removed since (its slot perhaps another group's now):
    // only a member registered in this group takes the flow. Not
    // `may_take`: a member set down leaves the table just after its state
    // changes, and until then it takes its flows as before.
    let m = MEMBERS.get(member).filter(|m| registered(m, group))?;
    let flow = if !affinity || f.icmp_error || f.later_fragment {
        FlowOutcome::None
    } else if !flow::record(&f.key, member, now) {
        FlowOutcome::Bypassed
    } else {
        flow::remember(f, epoch, member, now);
        if existed {
            FlowOutcome::Recorded
        } else {
            FlowOutcome::Created
        }
    };
    Some(Chosen {
        member,
        info: m,
        flow,
    })
}

/// Redirects out of the interface `ifindex`, through the devmap when the
/// port is there (bulked), else with the plain helper.
#[inline(always)]
pub(crate) fn redirect(ifindex: u32) -> u32 {
    match TX_PORTS.redirect(ifindex, 0) {
        Ok(action) => action,
        // SAFETY: a helper call with plain arguments.
        Err(_) => unsafe { bpf_redirect(ifindex, 0) as u32 },
    }
}

/// Moves the start of the frame by `delta` bytes (positive: shrink).
#[inline(always)]
pub(crate) fn adjust_head(ctx: &XdpContext, delta: i32) -> bool {
    // SAFETY: the helper validates the delta against the frame's headroom.
    unsafe { bpf_xdp_adjust_head(ctx.ctx, delta) == 0 }
}

/// On-link member: new MACs, hop limit minus one, VLAN tags removed, redirect.
#[inline(always)]
fn redirect_l2(ctx: &XdpContext, ip: &Ipv6, m: &MemberInfo) -> u32 {
    let vlan_len = ip.off - wire::ETH_HDR_LEN;
    if vlan_len > 0 && !adjust_head(ctx, vlan_len as i32) {
        return xdp_action::XDP_PASS;
    }
    // From here the frame is changed: a failed bounds check (impossible after
    // the parser's) aborts rather than passing a half-written packet. One
    // check covers everything written: Ethernet header up to the hop limit.
    const HOP: usize = wire::ETH_HDR_LEN + 7;
    let Some(head) = writable::<[u8; HOP + 1]>(ctx, 0) else {
        return xdp_action::XDP_ABORTED;
    };
    // SAFETY: `head` was bounds-checked for HOP + 1 bytes. `mac` and
    // `src_mac` are adjacent, 12 bytes at a 4-aligned offset of the map
    // value: the member's MAC then ours, as three words (see `parse::words`:
    // byte copies would call a byte-looping memmove).
    unsafe {
        let macs = m.mac.as_ptr() as *const u32;
        let eth = head as *mut u32;
        *eth = *macs;
        *eth.add(1) = *macs.add(1);
        *eth.add(2) = *macs.add(2);
        *((head as *mut u8).add(12) as *mut u16) = wire::ETH_P_IPV6.to_be();
        *(head as *mut u8).add(HOP) = ip.hop_limit - 1;
    }
    redirect(m.ifindex)
}

/// [`redirect_encap`]: too big for the egress MTU once encapsulated.
const ENCAP_TOO_BIG: u32 = 0x100;
/// [`redirect_encap`]: no route, neighbour or source address.
const ENCAP_FIB_MISS: u32 = 0x101;
/// [`redirect_encap`]: too big for the route to the member, whose MTU is
/// the upper 16 bits of the code.
const ENCAP_FRAG_NEEDED: u32 = 0x102;

/// Routed member: IPv6-in-IPv6 (RFC 2473) from the group's tunnel source to
/// the member, next hop from the kernel's FIB. Returns the XDP action, or
/// [`ENCAP_TOO_BIG`] / [`ENCAP_FIB_MISS`] when the packet goes to the kernel
/// untouched, or [`ENCAP_FRAG_NEEDED`] with the route's MTU in the upper
/// 16 bits (a plain code rather than a `Result`: BPF functions take at
/// most five arguments, and a returned `Result` would be a sixth).
// Not inlined: its FIB request and header buffer get a stack frame of their
// own instead of adding to the entry function's (the 512-byte limit).
#[inline(never)]
fn redirect_encap(
    ctx: &XdpContext,
    ip: &Ipv6,
    info: &GroupInfo,
    m: &MemberInfo,
    f: &mut Flow,
) -> u32 {
    let inner_len = ip.end - ip.off;
    let outer_len = inner_len + wire::IPV6_HDR_LEN;
    if outer_len > usize::from(u16::MAX) {
        return ENCAP_TOO_BIG;
    }
    let Some(scratch) = ENCAP_SCRATCH.get_ptr_mut(0) else {
        return ENCAP_FIB_MISS;
    };
    // SAFETY: this CPU's scratch slot, used by this run only.
    let scratch = unsafe { &mut *scratch };
    let fib = &mut scratch.fib;
    // SAFETY: an all-zero bpf_fib_lookup is a valid (empty) request.
    *fib = unsafe { core::mem::zeroed() };
    fib.family = AF_INET6;
    fib.l4_protocol = wire::IPPROTO_IPV6;
    fib.__bindgen_anon_1.tot_len = outer_len as u16;
    let ingress = ctx.ingress_ifindex() as u32;
    fib.ifindex = ingress;
    // SAFETY (both): 16-byte fields of map values at 4-aligned offsets
    // (asserted in anycast-common).
    let dst = unsafe { words::load16(&m.addr) };
    fib.__bindgen_anon_4.ipv6_dst = dst;
    let mut flags = 0;
    // A source this CPU kept: the request stays the same (source ::, so
    // that source-based rules and routes and the multipath hash see what
    // they saw when the kernel chose it); only the outer header takes it.
    let mut kept = None;
    // The slot to keep the kernel's choice in, when it is asked to choose.
    let mut choose = None;
    if info.has_tunnel_source != 0 {
        fib.__bindgen_anon_3.ipv6_src = unsafe { words::load16(&info.tunnel_source) };
    } else {
        let now = flow::now(f);
        let s = scratch.sources.get_mut(hash::source_slot(dst) as usize);
        match s {
            Some(s) if fresh(s, dst, ingress, now) => kept = Some(s.src),
            // Let the kernel pick the source address for the egress route,
            // and keep its choice.
            s => {
                flags |= BPF_FIB_LOOKUP_SRC;
                choose = s.map(|s| (s, now));
            }
        }
    }
    let rc = lookup_fib(ctx, fib, flags);
    match rc as u32 {
        BPF_FIB_LKUP_RET_SUCCESS => {
            if let Some((s, now)) = choose {
                keep(s, (dst, ingress), fib, now);
            }
        }
        // SAFETY: the kernel's answer in the union, for this return code.
        BPF_FIB_LKUP_RET_FRAG_NEEDED => {
            return ENCAP_FRAG_NEEDED
                | (u32::from(unsafe { fib.__bindgen_anon_1.mtu_result }) << 16);
        }
        _ => return ENCAP_FIB_MISS,
    }
    // The outer traffic class is the inner one (DSCP survives the tunnel);
    // the outer flow label is the flow's hash (RFC 6438), so that routers
    // on the way spread tunnels by inner flow.
    let Some(head) = load::<[u8; 2]>(ctx, ip.off, ip.end) else {
        return ENCAP_FIB_MISS;
    };
    let class = (u32::from(head[0] & 0x0f) << 24) | (u32::from(head[1] & 0xf0) << 16);
    let vtcfl = (6u32 << 28) | class | (f.hash & 0x000f_ffff);
    let (dmac, smac, egress) = (fib.dmac, fib.smac, fib.ifindex);
    // SAFETY: reading the kernel-filled union as the IPv6 variant we asked for.
    let src = kept.unwrap_or(unsafe { fib.__bindgen_anon_3.ipv6_src });
    let vlan_len = ip.off - wire::ETH_HDR_LEN;
    let delta = wire::IPV6_HDR_LEN as i32 - vlan_len as i32;
    if !adjust_head(ctx, -delta) {
        // No headroom for the outer header: the frame cannot grow.
        return ENCAP_TOO_BIG;
    }
    // Straight into the frame (see `write_headers`), after one bounds
    // check that covers the outer headers and the inner hop limit.
    const OUTER: usize = wire::ETH_HDR_LEN + wire::IPV6_HDR_LEN;
    let Some(h) = writable::<[u8; OUTER + 8]>(ctx, 0) else {
        return xdp_action::XDP_ABORTED;
    };
    let h = h as *mut u8;
    // SAFETY: every write lies inside the OUTER + 8 bytes checked above.
    unsafe {
        write_headers(
            h,
            &Headers {
                macs: (dmac, smac),
                vtcfl,
                payload_len: inner_len as u16,
                next_header: wire::IPPROTO_IPV6,
                hop_limit: ENCAP_HOP_LIMIT,
                addrs: (src, words::load16(&m.addr)),
            },
        );
        *h.add(OUTER + 7) = ip.hop_limit - 1;
    }
    redirect(egress)
}

/// How long a CPU reuses the outer source the kernel chose toward a member
/// before it asks again. Choosing a source (`BPF_FIB_LOOKUP_SRC`: the
/// kernel's source address selection, RFC 6724) costs more than the rest
/// of the encapsulation together; the route lookup itself still runs per
/// packet, the same request as when the kernel chose, so the egress, the
/// MACs and the MTU are never stale. After an address or route change a
/// CPU may use the source chosen before it for this long (and a jiffy).
const SOURCE_TTL_NS: u64 = 100_000_000;

/// Whether `s` holds a source chosen toward `dst` for packets from
/// `ingress` less than [`SOURCE_TTL_NS`] ago. The explain instance always
/// asks the kernel (it shows the kernel's answer) and keeps nothing.
#[inline(always)]
fn fresh(s: &ChosenSource, dst: [u32; 4], ingress: u32, now: u64) -> bool {
    let same =
        (s.dst[0] ^ dst[0]) | (s.dst[1] ^ dst[1]) | (s.dst[2] ^ dst[2]) | (s.dst[3] ^ dst[3]);
    s.used != 0
        && same == 0
        && s.ingress == ingress
        && now.wrapping_sub(s.chosen_ns) < SOURCE_TTL_NS
        && now != 0
        && !explain::on()
}

/// Keeps the source the kernel chose in `fib` toward `dst` for packets
/// from `ingress` in `s` (the answer's `ifindex` is the egress).
#[inline(always)]
fn keep(s: &mut ChosenSource, (dst, ingress): ([u32; 4], u32), fib: &bpf_fib_lookup, now: u64) {
    if explain::on() || now == 0 {
        return;
    }
    s.dst = dst;
    // SAFETY: the kernel-filled union as the IPv6 variant asked for.
    s.src = unsafe { fib.__bindgen_anon_3.ipv6_src };
    s.ingress = ingress;
    s.chosen_ns = now;
    s.used = 1;
}

/// The Ethernet and IPv6 headers of a frame the program makes.
pub(crate) struct Headers {
    /// Destination and source MACs.
    pub(crate) macs: ([u8; 6], [u8; 6]),
    /// Version, traffic class and flow label.
    pub(crate) vtcfl: u32,
    /// Payload length.
    pub(crate) payload_len: u16,
    /// Next header.
    pub(crate) next_header: u8,
    /// Hop limit.
    pub(crate) hop_limit: u8,
    /// Source and destination addresses, as native words.
    pub(crate) addrs: ([u32; 4], [u32; 4]),
}

/// Writes `hd` to the first 54 bytes of the frame at `h`, field by field
/// (a header buffer on the stack would push the program past the 512-byte
/// limit).
///
/// # Safety
/// `h` must be valid for writing 54 bytes of packet data.
#[inline(always)]
pub(crate) unsafe fn write_headers(h: *mut u8, hd: &Headers) {
    // SAFETY: every write lies inside the 54 bytes the caller vouches for.
    unsafe {
        let put = |off: usize, bytes: &[u8]| {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), h.add(off), bytes.len());
        };
        put(0, &hd.macs.0);
        put(6, &hd.macs.1);
        put(12, &wire::ETH_P_IPV6.to_be_bytes());
        put(14, &hd.vtcfl.to_be_bytes());
        put(18, &hd.payload_len.to_be_bytes());
        put(20, &[hd.next_header, hd.hop_limit]);
        words::store16(h.add(22) as *mut [u8; 16], hd.addrs.0);
        words::store16(h.add(38) as *mut [u8; 16], hd.addrs.1);
    }
}

/// Asks the kernel's FIB `fib` (a request in a map value) with `flags`;
/// its return code. The explain instance notes the answer: the last
/// lookup of a run is the one its rewrite used (toward an encapsulated
/// member, or toward the client for a Packet Too Big).
#[inline(always)]
pub(crate) fn lookup_fib(ctx: &XdpContext, fib: &mut bpf_fib_lookup, flags: u32) -> i64 {
    // SAFETY: `fib` is a valid request in a map value, its size given.
    let rc = unsafe {
        fib_lookup(
            ctx.ctx.cast(),
            fib,
            core::mem::size_of::<bpf_fib_lookup>() as i32,
            flags,
        )
    };
    explain::note(|t| {
        t.reached |= reached::FIB;
        t.fib_rc = rc as u32;
        t.fib_dmac = fib.dmac;
        t.fib_smac = fib.smac;
        t.fib_ifindex = fib.ifindex;
        // SAFETY: the union as the IPv6 variant asked for; a 16-byte
        // field at a 4-aligned offset of a map value.
        unsafe { words::store16(&mut t.fib_src, fib.__bindgen_anon_3.ipv6_src) };
    });
    rc
}
