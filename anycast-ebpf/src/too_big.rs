//! A packet too big for its member's egress: an on-link member's link MTU
//! (RFC 8200 section 5), an encapsulated member's tunnel MTU (RFC 2473
//! section 7.1). The program answers the client with an ICMPv6 Packet Too
//! Big (RFC 4443 section 3.2) built in place of the packet, rather than
//! redirecting a frame the device would drop without a word (path MTU
//! discovery through the anycast address would black-hole).

use anycast_common::{IPV6_MIN_MTU, TOO_BIG_HOP_LIMIT, wire};
use aya_ebpf::{
    bindings::{
        BPF_FIB_LKUP_RET_SUCCESS, BPF_FIB_LOOKUP_SRC,
        bpf_check_mtu_ret::BPF_MTU_CHK_RET_FRAG_NEEDED, xdp_action,
    },
    helpers::{
        bpf_ktime_get_ns,
        generated::{bpf_check_mtu, bpf_csum_diff, bpf_xdp_adjust_tail},
    },
    programs::XdpContext,
};

use crate::{
    act::{self, AF_INET6, Headers, adjust_head, redirect, write_headers},
    explain,
    maps::{ENCAP_SCRATCH, TOO_BIG_LIMIT},
    parse::{ipv6::Ipv6, read, words, writable},
};

/// [`answer`]: no Packet Too Big sent, the packet is as it arrived.
pub(crate) const NOT_SENT: u32 = 0x110;

/// Length of the ICMPv6 header of a Packet Too Big: type, code, checksum, MTU.
const ICMP_HDR_LEN: usize = 8;
/// Where the quoted packet starts in the message's frame.
const QUOTE_OFF: usize = wire::ETH_HDR_LEN + wire::IPV6_HDR_LEN + ICMP_HDR_LEN;
/// The message's frame: Ethernet and the minimum MTU (section 2.4 (c): as
/// much of the packet as fits; the packet is longer than the minimum MTU,
/// so always 1232 bytes of it).
const FRAME_LEN: usize = wire::ETH_HDR_LEN + IPV6_MIN_MTU;
/// The ICMPv6 message's length (the IPv6 payload length).
const ICMP_LEN: usize = IPV6_MIN_MTU - wire::IPV6_HDR_LEN;

/// The MTU of interface `ifindex` when the IPv6 packet `ip` is longer
/// than that (and than the minimum MTU, which every link carries: shorter
/// packets pay one compare), else 0. A helper call, so that the device's
/// MTU is always the current one.
#[inline(always)]
pub(crate) fn over_link_mtu(ctx: &XdpContext, ip: &Ipv6, ifindex: u32) -> u32 {
    let len = ip.end - ip.off;
    if len <= IPV6_MIN_MTU {
        return 0;
    }
    over_link_mtu_slow(ctx, ifindex, len as u32)
}

#[inline(never)]
fn over_link_mtu_slow(ctx: &XdpContext, ifindex: u32, len: u32) -> u32 {
    let Some(scratch) = ENCAP_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: this CPU's scratch slot, used by this run only.
    let mtu = unsafe { &mut (*scratch).mtu };
    // The L3 length in, the device's MTU out.
    *mtu = len;
    // SAFETY: a helper call; `mtu` points into a map value.
    let rc = unsafe { bpf_check_mtu(ctx.ctx.cast(), ifindex, mtu, 0, 0) };
    // An error (no such device) leaves the redirect to fail as it would.
    if rc == i64::from(BPF_MTU_CHK_RET_FRAG_NEEDED) {
        *mtu
    } else {
        0
    }
}

/// Answers the packet `ip` with a Packet Too Big of `mtu`, unless
/// `refused` (an ICMPv6 error or an anycast source: RFC 4443 section 2.4
/// (e.1), (e.6)), there is no route back, or the rate limit says no
/// (section 2.4 (f)): the XDP action, or [`NOT_SENT`] with the packet
/// untouched.
// Not inlined: its FIB request and rewrite get a stack frame of their own.
#[inline(never)]
pub(crate) fn answer(ctx: &XdpContext, ip: &Ipv6, mtu: u32, refused: bool) -> u32 {
    if refused {
        return NOT_SENT;
    }
    let Some(client) = read::<[u8; 16]>(ctx, ip.off + 8, ip.end) else {
        return NOT_SENT;
    };
    // SAFETY: bounds-checked above.
    let client = unsafe { words::load16(client) };
    let Some(scratch) = ENCAP_SCRATCH.get_ptr_mut(0) else {
        return NOT_SENT;
    };
    // SAFETY: this CPU's scratch slot, used by this run only.
    let fib = unsafe { &mut (*scratch).fib };
    // SAFETY: an all-zero bpf_fib_lookup is a valid (empty) request.
    *fib = unsafe { core::mem::zeroed() };
    fib.family = AF_INET6;
    fib.l4_protocol = wire::IPPROTO_ICMPV6;
    fib.__bindgen_anon_1.tot_len = IPV6_MIN_MTU as u16;
    fib.ifindex = ctx.ingress_ifindex() as u32;
    fib.__bindgen_anon_4.ipv6_dst = client;
    // RFC 4443 section 2.2 (b): in answer to a packet sent to an anycast
    // address, a unicast address of this node, chosen as for any packet
    // it sends to the client: the kernel's choice for the route back.
    // The explain instance notes it: the answer's egress, toward the
    // client (an encapsulation's lookup before was toward the member).
    let rc = act::lookup_fib(ctx, fib, BPF_FIB_LOOKUP_SRC);
    if rc != i64::from(BPF_FIB_LKUP_RET_SUCCESS) {
        return NOT_SENT;
    }
    let Some(bucket) = TOO_BIG_LIMIT.get_ptr_mut(0) else {
        return NOT_SENT;
    };
    // SAFETY: this CPU's bucket; a helper call with no arguments. The
    // explain instance reads the explained program's bucket and takes
    // nothing from it.
    let allowed = if explain::on() {
        unsafe { (*bucket).allows(bpf_ktime_get_ns()) }
    } else {
        unsafe { (*bucket).take(bpf_ktime_get_ns()) }
    };
    if !allowed {
        return NOT_SENT;
    }
    let (dmac, smac, egress) = (fib.dmac, fib.smac, fib.ifindex);
    // SAFETY: reading the kernel-filled union as the IPv6 variant we asked for.
    let src = unsafe { fib.__bindgen_anon_3.ipv6_src };
    // The packet moves behind the new headers: its IPv6 header from `ip.off`
    // (after any VLAN tags, which go) to QUOTE_OFF.
    let grow = QUOTE_OFF as i32 - ip.off as i32;
    if !adjust_head(ctx, -grow) {
        return NOT_SENT;
    }
    let len = ctx.data_end() - ctx.data();
    // SAFETY: the helper validates the delta against the frame.
    if unsafe { bpf_xdp_adjust_tail(ctx.ctx, FRAME_LEN as i32 - len as i32) } != 0 {
        // Put the packet back as it came.
        return if adjust_head(ctx, grow) {
            NOT_SENT
        } else {
            xdp_action::XDP_ABORTED
        };
    }
    // From here the frame is changed: a failed bounds check aborts.
    let Some(h) = writable::<[u8; FRAME_LEN]>(ctx, 0) else {
        return xdp_action::XDP_ABORTED;
    };
    let h = h as *mut u8;
    // SAFETY: every access lies inside the FRAME_LEN bytes checked above.
    unsafe {
        write_headers(
            h,
            &Headers {
                macs: (dmac, smac),
                // Version 6, traffic class 0, flow label 0.
                vtcfl: 6 << 28,
                payload_len: ICMP_LEN as u16,
                next_header: wire::IPPROTO_ICMPV6,
                hop_limit: TOO_BIG_HOP_LIMIT,
                addrs: (src, client),
            },
        );
        // Type 2, code 0, checksum 0 for now, the MTU.
        let put = |off: usize, bytes: &[u8]| {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), h.add(off), bytes.len());
        };
        put(54, &[2, 0, 0, 0]);
        put(58, &mtu.to_be_bytes());
        let sum = checksum(h);
        put(56, &sum.to_ne_bytes());
    }
    // Redirected even back out of the interface it came in on, rather than
    // XDP_TX: a veth queues XDP_TX frames for its peer but wakes the peer
    // only when the peer runs an XDP program, so they would wait there
    // (a redirect wakes it). A Packet Too Big is rare: XDP_TX's bulking
    // gains nothing here.
    redirect(egress)
}

/// The ICMPv6 checksum (RFC 4443 section 2.3) of the message in frame `h`:
/// the pseudo-header (RFC 8200 section 8.1) and the message, summed in
/// memory order by the kernel's checksum helper (at most 512 bytes a
/// call), then folded; stored as it comes out, in memory order.
///
/// # Safety
/// `h` must be valid for [`FRAME_LEN`] bytes of packet data.
#[inline(always)]
unsafe fn checksum(h: *mut u8) -> u16 {
    // SAFETY: each range lies inside the frame (the caller's check); the
    // helper reads `to` for `to_size` bytes, a multiple of 4.
    let part = |off: usize, size: u32, seed: u32| unsafe {
        bpf_csum_diff(core::ptr::null_mut(), 0, h.add(off) as *mut u32, size, seed) as u32
    };
    // Source and destination, then the message in chunks.
    let mut sum = part(22, 32, 0);
    sum = part(54, 512, sum);
    sum = part(54 + 512, 512, sum);
    sum = part(54 + 1024, (ICMP_LEN - 1024) as u32, sum);
    // The pseudo-header's upper-layer length and next header, as the
    // words sit in memory.
    let len = u32::from_ne_bytes((ICMP_LEN as u32).to_be_bytes());
    let next = u32::from_ne_bytes([0, 0, 0, wire::IPPROTO_ICMPV6]);
    let mut s = u64::from(sum) + u64::from(len) + u64::from(next);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}
