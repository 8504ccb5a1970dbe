//! Acting on an anycast-destined packet: pick the nearest live member, then
//! rewrite and redirect (on-link) or encapsulate and redirect (routed).
//!
//! Every check that can fail runs before the first byte of the packet is
//! changed, so a packet that falls back to the kernel is the packet that
//! arrived.

use anycast_common::{
    AddrKey, ENCAP_HOP_LIMIT, Fallback, GlobalStat, GroupInfo, GroupStat, MemberInfo, MemberKind,
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
    classify::Decision,
    maps::{GROUPS, MEMBERS, SELECTION, TX_PORTS},
    parse::{ipv6::Ipv6, ipv6::Transport, load, store},
};

const AF_INET6: u8 = 10;

/// Steers a packet destined to `group`'s anycast address.
#[inline(always)]
pub(crate) fn steer(
    ctx: &XdpContext,
    ip: &Ipv6,
    t: &Transport,
    src: *const AddrKey,
    dst: *const AddrKey,
    group: u32,
    d: &mut Decision,
) {
    if ip.hop_limit <= 1 {
        // The kernel sends the ICMPv6 Time Exceeded.
        d.finish(
            xdp_action::XDP_PASS,
            GlobalStat::HopLimitPassed,
            GroupStat::HopLimitPassed,
        );
        return;
    }
    let Some(info) = GROUPS.get(group) else {
        fallback(d, Fallback::Pass);
        return;
    };
    let Some((member_id, flow_hash)) = nearest_member(info, group, ip, t, src, dst) else {
        fallback(d, Fallback::from_u8(info.fallback));
        return;
    };
    let Some(m) = MEMBERS.get(member_id) else {
        fallback(d, Fallback::from_u8(info.fallback));
        return;
    };
    let action = match MemberKind::from_u8(m.kind) {
        MemberKind::L2 => redirect_l2(ctx, ip, m),
        MemberKind::Encap => match redirect_encap(ctx, ip, info, m, flow_hash) {
            Ok(action) => action,
            Err(stat) => {
                let group_stat = match stat {
                    GlobalStat::TooBigPassed => GroupStat::TooBigPassed,
                    _ => GroupStat::FibMissPassed,
                };
                d.finish(xdp_action::XDP_PASS, stat, group_stat);
                return;
            }
        },
        MemberKind::None => {
            fallback(d, Fallback::from_u8(info.fallback));
            return;
        }
    };
    d.member = member_id;
    d.finish(action, GlobalStat::Redirected, GroupStat::Redirected);
}

#[inline(always)]
fn fallback(d: &mut Decision, f: Fallback) {
    match f {
        Fallback::Pass => d.finish(
            xdp_action::XDP_PASS,
            GlobalStat::FallbackPassed,
            GroupStat::FallbackPassed,
        ),
        Fallback::Drop => d.finish(
            xdp_action::XDP_DROP,
            GlobalStat::FallbackDropped,
            GroupStat::FallbackDropped,
        ),
    }
}

/// The member this flow goes to, and the flow's hash: one of the members
/// tied at the nearest metric in the group's live selection.
#[inline(always)]
fn nearest_member(
    info: &GroupInfo,
    group: u32,
    ip: &Ipv6,
    t: &Transport,
    src: *const AddrKey,
    dst: *const AddrKey,
) -> Option<(u32, u32)> {
    let slot = group * 2 + (info.active_slot & 1);
    let sel = SELECTION.get(slot)?;
    let count = sel.count;
    if count == 0 {
        return None;
    }
    // SAFETY: both point into the packet, bounds-checked by the parser.
    let (s, d) = unsafe { ((*src).addr, (*dst).addr) };
    let h = hash::flow_hash(
        hash::addr_words(&s, &d),
        hash::key_tail(t.proto, t.ports, ip.flow_label),
    );
    // Bounded by the array length in `get`; no earlier `count <= MAX_TIED`
    // check, or LLVM proves this one redundant and the verifier rejects
    // the unbounded index.
    let idx = (h % count) as usize;
    let id = *sel.members.get(idx)?;
    (id != 0).then_some((id, h))
}

/// Redirects out of the interface `ifindex`, through the devmap when the
/// port is there (bulked), else with the plain helper.
#[inline(always)]
fn redirect(ifindex: u32) -> u32 {
    match TX_PORTS.redirect(ifindex, 0) {
        Ok(action) => action,
        // SAFETY: a helper call with plain arguments.
        Err(_) => unsafe { bpf_redirect(ifindex, 0) as u32 },
    }
}

/// Moves the start of the frame by `delta` bytes (positive: shrink).
#[inline(always)]
fn adjust_head(ctx: &XdpContext, delta: i32) -> bool {
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
    // the parser's) aborts rather than passing a half-written packet.
    let mut eth = [0u8; wire::ETH_HDR_LEN];
    eth[..6].copy_from_slice(&m.mac);
    eth[6..12].copy_from_slice(&m.src_mac);
    eth[12..14].copy_from_slice(&wire::ETH_P_IPV6.to_be_bytes());
    let hop = wire::ETH_HDR_LEN + 7;
    let ok = store(ctx, 0, eth).is_some() && store(ctx, hop, ip.hop_limit - 1).is_some();
    if !ok {
        return xdp_action::XDP_ABORTED;
    }
    redirect(m.ifindex)
}

/// Routed member: IPv6-in-IPv6 (RFC 2473) from the group's tunnel source to
/// the member, next hop from the kernel's FIB. Err: the packet goes to the
/// kernel untouched, with the reason.
#[inline(always)]
fn redirect_encap(
    ctx: &XdpContext,
    ip: &Ipv6,
    info: &GroupInfo,
    m: &MemberInfo,
    flow_hash: u32,
) -> Result<u32, GlobalStat> {
    let inner_len = ip.end - ip.off;
    let outer_len = inner_len + wire::IPV6_HDR_LEN;
    if outer_len > usize::from(u16::MAX) {
        return Err(GlobalStat::TooBigPassed);
    }
    // SAFETY: an all-zero bpf_fib_lookup is a valid (empty) request.
    let mut fib: bpf_fib_lookup = unsafe { core::mem::zeroed() };
    fib.family = AF_INET6;
    fib.l4_protocol = wire::IPPROTO_IPV6;
    fib.__bindgen_anon_1.tot_len = outer_len as u16;
    fib.ifindex = ctx.ingress_ifindex() as u32;
    fib.__bindgen_anon_4.ipv6_dst = words(&m.addr);
    let mut flags = 0;
    if info.has_tunnel_source != 0 {
        fib.__bindgen_anon_3.ipv6_src = words(&info.tunnel_source);
    } else {
        // Let the kernel pick the source address for the egress route.
        flags |= BPF_FIB_LOOKUP_SRC;
    }
    // SAFETY: `fib` is a valid request on our stack, its size given.
    let rc = unsafe {
        fib_lookup(
            ctx.ctx.cast(),
            &mut fib,
            core::mem::size_of::<bpf_fib_lookup>() as i32,
            flags,
        )
    };
    match rc as u32 {
        BPF_FIB_LKUP_RET_SUCCESS => {}
        BPF_FIB_LKUP_RET_FRAG_NEEDED => return Err(GlobalStat::TooBigPassed),
        _ => return Err(GlobalStat::FibMissPassed),
    }
    // The outer traffic class is the inner one (DSCP survives the tunnel);
    // the outer flow label is the flow's hash (RFC 6438), so that routers
    // on the way spread tunnels by inner flow.
    let head = load::<[u8; 2]>(ctx, ip.off, ip.end).ok_or(GlobalStat::FibMissPassed)?;
    let class = (u32::from(head[0] & 0x0f) << 24) | (u32::from(head[1] & 0xf0) << 16);
    let vlan_len = ip.off - wire::ETH_HDR_LEN;
    let delta = wire::IPV6_HDR_LEN as i32 - vlan_len as i32;
    if !adjust_head(ctx, -delta) {
        // No headroom for the outer header: the frame cannot grow.
        return Err(GlobalStat::TooBigPassed);
    }
    let mut hdr = [0u8; wire::ETH_HDR_LEN + wire::IPV6_HDR_LEN];
    hdr[..6].copy_from_slice(&fib.dmac);
    hdr[6..12].copy_from_slice(&fib.smac);
    hdr[12..14].copy_from_slice(&wire::ETH_P_IPV6.to_be_bytes());
    let vtcfl = (6u32 << 28) | class | (flow_hash & 0x000f_ffff);
    hdr[14..18].copy_from_slice(&vtcfl.to_be_bytes());
    hdr[18..20].copy_from_slice(&(inner_len as u16).to_be_bytes());
    hdr[20] = wire::IPPROTO_IPV6;
    hdr[21] = ENCAP_HOP_LIMIT;
    // SAFETY: reading the kernel-filled union as the IPv6 variant we asked for.
    let src = unsafe { fib.__bindgen_anon_3.ipv6_src };
    hdr[22..38].copy_from_slice(&bytes(&src));
    hdr[38..54].copy_from_slice(&m.addr);
    let inner_hop = wire::ETH_HDR_LEN + wire::IPV6_HDR_LEN + 7;
    let ok = store(ctx, 0, hdr).is_some() && store(ctx, inner_hop, ip.hop_limit - 1).is_some();
    if !ok {
        return Ok(xdp_action::XDP_ABORTED);
    }
    Ok(redirect(fib.ifindex))
}

/// An address as the FIB request's `[u32; 4]` (same bytes, network order).
#[inline(always)]
fn words(a: &[u8; 16]) -> [u32; 4] {
    [
        u32::from_ne_bytes([a[0], a[1], a[2], a[3]]),
        u32::from_ne_bytes([a[4], a[5], a[6], a[7]]),
        u32::from_ne_bytes([a[8], a[9], a[10], a[11]]),
        u32::from_ne_bytes([a[12], a[13], a[14], a[15]]),
    ]
}

/// The inverse of [`words`].
#[inline(always)]
fn bytes(w: &[u32; 4]) -> [u8; 16] {
    let mut b = [0u8; 16];
    let mut i = 0;
    while i < 4 {
        let x = w[i].to_ne_bytes();
        b[4 * i] = x[0];
        b[4 * i + 1] = x[1];
        b[4 * i + 2] = x[2];
        b[4 * i + 3] = x[3];
        i += 1;
    }
    b
}
