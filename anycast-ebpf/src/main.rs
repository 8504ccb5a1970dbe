//! The anycast XDP programs.
//!
//! [`anycast`] shows a packet's whole way, one stage a module, each
//! returning a final verdict or the input of the next stage (no stage
//! calls a later one): [`parse`] the headers, [`classify`] the packet
//! (source rule, destination group), [`act`] on an anycast destination
//! (flow, member, rewrite), record the counters ([`stats`]), [`trace`]
//! the decision when someone watches, return the action. The types the
//! stages hand on live in [`verdict`]; every map in [`maps`]. The explain
//! instance ([`explain`]) is this program with a load-time constant set:
//! it writes no shared state, traces nothing, and records a trail of the
//! decision instead of the counters.
#![no_std]
#![no_main]
#![expect(
    unreachable_pub,
    missing_docs,
    reason = "the #[xdp] macro expands to undocumented pub entry points"
)]

mod act;
mod classify;
mod explain;
mod flow;
mod fragment;
mod maps;
mod parse;
mod rt;
mod stats;
mod too_big;
mod trace;
mod verdict;
mod verifier;

use aya_ebpf::{Global, bindings::xdp_action, macros::xdp, programs::XdpContext};
use verdict::Final;

/// Interface role (`IfaceRole` as u8), set by the loader for each attachment.
#[unsafe(no_mangle)]
static ROLE: Global<u8> = Global::new(0);

/// Action for disallowed anycast sources (`SourceAction` as u8), set by the loader.
#[unsafe(no_mangle)]
static SOURCE_ACTION: Global<u8> = Global::new(0);

/// This attachment's id (in `IFACES`), which scopes name; set by the loader.
#[unsafe(no_mangle)]
static ATTACHMENT: Global<u32> = Global::new(0);

/// Bits of a bucket number of `EXACT_INDEX` (2^bits buckets), set by the
/// loader from the map it gives the program: the verifier sees a constant
/// (read where the index is, `classify::exact_index`).
#[unsafe(no_mangle)]
pub(crate) static EXACT_INDEX_BITS: Global<u32> =
    Global::new(anycast_common::EXACT_INDEX_BUCKETS.trailing_zeros());

/// Nodes of one copy of the prefix trie (`PREFIX_NODES` holds two), set
/// by the loader from the map it gives the program: the verifier sees a
/// constant (read where a copy's first node is, `classify::Rules::read`).
#[unsafe(no_mangle)]
pub(crate) static PREFIX_COPY_NODES: Global<u32> =
    Global::new(anycast_common::prefix_trie::COPY_NODES);

/// The anycast filter and redirector.
#[xdp]
pub fn anycast(ctx: XdpContext) -> u32 {
    // Parse: Ethernet, VLAN tags, the IPv6 fixed header and its addresses.
    let packet = match parse::packet(&ctx) {
        Ok(p) => p,
        Err(v) => return finish(&ctx, 0, &v),
    };
    explain::parsed(&packet);
    // Classify: the source rule, then the destination's anycast group.
    let attachment = classify::Attachment {
        role: ROLE.load(),
        source_action: SOURCE_ACTION.load(),
        id: ATTACHMENT.load(),
    };
    let target = match classify::classify(&ctx, &packet, &attachment) {
        Ok(t) => t,
        Err(v) => return finish(&ctx, packet.ip.off, &v),
    };
    let steered = match act::screen(&packet, &target) {
        // Out of the address's scope, a source no router forwards, or a
        // link-local one.
        Some(s) => s,
        None => {
            // Only a packet to steer needs its upper-layer header: its flow.
            let Some(transport) = parse::ipv6::transport(&ctx, &packet.ip) else {
                return finish(&ctx, packet.ip.off, &target.unparsed());
            };
            explain::transport(&transport);
            // Act: the member (the flow's, or the nearest), the rewrite.
            act::steer(&ctx, &packet, &transport, &target)
        }
    };
    // Record (the counters, or the explain instance's trail), trace, then
    // return the action.
    if explain::on() {
        explain::record_steered(&target, &steered);
        return steered.action;
    }
    stats::record_steered(&target, &steered);
    trace::steered(&ctx, packet.ip.off, &target, &steered)
}

/// Records (and traces) a verdict reached before acting and returns its action.
/// `l3_off`: where the IPv6 header is, 0 if it did not parse.
#[inline(always)]
fn finish(ctx: &XdpContext, l3_off: usize, v: &Final) -> u32 {
    if explain::on() {
        explain::record_final(v);
        return v.action;
    }
    stats::record_final(v);
    trace::final_verdict(ctx, l3_off, v)
}

/// Returns XDP_PASS and nothing else: the cost floor benchmarks compare against.
#[xdp]
pub fn pass_floor(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}
