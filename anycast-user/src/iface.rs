//! How an interface is attached, as operators name it (the command line,
//! the configuration file's `[interface.NAME]`): role, source action and
//! XDP mode. `dataplane` attaches; this holds no state.

use anycast_common::{IfaceRole, SourceAction};
use aya::programs::XdpMode;
use serde::Serialize;

/// XDP attach mode, as operators name it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// Native if the driver supports it, else generic.
    #[default]
    Auto,
    /// Native (driver) mode; fails where the driver has no XDP support.
    Native,
    /// Generic (skb) mode: works everywhere, slower.
    Skb,
}

impl AttachMode {
    pub(crate) fn xdp_mode(self) -> XdpMode {
        match self {
            AttachMode::Auto => XdpMode::Default,
            AttachMode::Native => XdpMode::Driver,
            AttachMode::Skb => XdpMode::Skb,
        }
    }

    pub(crate) fn code(self) -> u8 {
        self as u8
    }

    /// The mode's name in output.
    pub const fn name(self) -> &'static str {
        match self {
            AttachMode::Auto => "auto",
            AttachMode::Native => "native",
            AttachMode::Skb => "skb",
        }
    }

    pub(crate) fn from_code(c: u8) -> Self {
        match c {
            1 => AttachMode::Native,
            2 => AttachMode::Skb,
            _ => AttachMode::Auto,
        }
    }
}

impl std::fmt::Display for AttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// How to attach an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttachOptions {
    /// The interface's role.
    pub role: IfaceRole,
    /// What to do with disallowed anycast sources.
    pub source_action: SourceAction,
    /// XDP mode.
    pub mode: AttachMode,
}

impl Default for AttachOptions {
    fn default() -> Self {
        AttachOptions {
            role: IfaceRole::Edge,
            source_action: SourceAction::Drop,
            mode: AttachMode::Auto,
        }
    }
}
