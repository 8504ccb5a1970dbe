//! The anycast library: loads the XDP data plane, pins it, and manages its
//! maps (anycast addresses, groups, members, flows, interfaces, counters).
//! The `anycast` binary is a thin CLI over it.
//!
//! - Values as operators write them: [`addr`], [`names`], [`group`],
//!   [`members`]; the configuration file: [`config`].
//! - The maps, one owner per concern behind the [`state::State`] facade
//!   (over [`maps`], typed maps that name themselves in errors).
//! - Making the maps match a file: [`reconcile`].
//! - The network as the service follows it: [`neighbours`] (on-link
//!   members' MACs) and [`routes`] (metrics from routes), over [`netlink`].
//! - The pinned data plane (pins, links, attachments): [`dataplane`], with
//!   [`loader`], [`link`], [`pin`] and [`netns`].
//! - Why it does not forward: [`doctor`].

pub mod addr;
pub mod announce;
pub mod config;
pub mod dataplane;
pub mod doctor;
pub mod error;
pub mod explain;
pub mod flows;
pub mod group;
pub mod health;
pub mod iface;
pub mod link;
pub mod loader;
mod maps;
pub mod members;
pub mod metrics;
pub mod names;
pub mod neighbours;
pub mod netlink;
pub mod netns;
pub mod pin;
pub mod probe_path;
pub mod quiesce;
pub mod reconcile;
pub mod repair;
pub mod routes;
pub mod service;
pub mod state;
pub mod stats;
pub mod trace;
pub mod tun;

pub use addr::AnycastPrefix;
pub use dataplane::{AttachMode, AttachOptions, Dataplane, Interface};
pub use error::{Error, Result};
pub use loader::{EBPF_OBJECT, PEERS_OBJECT};
pub use names::{GroupName, MemberName};
pub use pin::{DEFAULT_PIN_DIR, PinDir};
