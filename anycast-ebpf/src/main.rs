//! The anycast XDP programs.
//!
//! One way through the data: [`parse`] the headers, [`classify`] the packet
//! (source check, destination lookup) into a [`classify::Verdict`] (a plain
//! pass, or a [`classify::Decision`] for packets with an anycast address),
//! count it ([`stats`]) and return its action. The entry points stay this small.
#![no_std]
#![no_main]
#![expect(
    unreachable_pub,
    missing_docs,
    reason = "the #[xdp] macro expands to undocumented pub entry points"
)]

mod act;
mod classify;
mod flow;
mod maps;
mod parse;
mod rt;
mod stats;

use aya_ebpf::{Global, bindings::xdp_action, macros::xdp, programs::XdpContext};
use classify::Verdict;

/// Interface role (`IfaceRole` as u8), set by the loader for each attachment.
#[unsafe(no_mangle)]
static ROLE: Global<u8> = Global::new(0);

/// Action for disallowed anycast sources (`SourceAction` as u8), set by the loader.
#[unsafe(no_mangle)]
static SOURCE_ACTION: Global<u8> = Global::new(0);

/// The anycast filter.
#[xdp]
pub fn anycast(ctx: XdpContext) -> u32 {
    match classify::classify(&ctx, ROLE.load(), SOURCE_ACTION.load()) {
        Verdict::Pass(stat) => {
            stats::count(stat);
            xdp_action::XDP_PASS
        }
        Verdict::EdgeSourceDropped(group) => {
            stats::count_edge_source_drop(group);
            xdp_action::XDP_DROP
        }
        Verdict::Decided(d) => {
            stats::record(&d);
            d.action()
        }
    }
}

/// Returns XDP_PASS and nothing else: the cost floor benchmarks compare against.
#[xdp]
pub fn pass_floor(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}
