//! The anycast library: loads the XDP data plane, pins it, and manages its
//! maps (anycast addresses, groups, interfaces, counters). The `anycast`
//! binary is a thin CLI over it.

pub mod addr;
pub mod config;
pub mod dataplane;
pub mod error;
pub mod flows;
pub mod members;
pub mod netns;
pub mod pin;
pub mod state;

pub use addr::AnycastPrefix;
pub use dataplane::{AttachMode, AttachOptions, Dataplane, Interface};
pub use error::{Error, Result};
pub use pin::{DEFAULT_PIN_DIR, PinDir};

/// The eBPF object built by `build.rs` (empty when built with `ANYCAST_EBPF_STUB=1`).
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/anycast"));

/// The benchmark's peer programs (generator, sink, trivial ceilings; see
/// `anycast_common::peer_names`), from the same eBPF crate. Not used by the
/// data plane.
pub static PEERS_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/peers"));
