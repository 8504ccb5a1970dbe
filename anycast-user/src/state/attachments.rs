//! `IFACES`: the interfaces the program is attached to, with the role,
//! source action and mode of each.

use anycast_common::{IfaceConfig, map_names};

use crate::{
    error::Result,
    maps::{HashMapOf, MapSource},
};

/// Owner of `IFACES`.
pub(crate) struct Attachments {
    map: HashMapOf<u32, IfaceConfig>,
}

impl Attachments {
    /// Takes the map from `src`.
    pub(crate) fn take(src: &mut MapSource<'_>) -> Result<Self> {
        Ok(Attachments {
            map: HashMapOf::take(src, map_names::IFACES)?,
        })
    }

    /// Whether interface `ifindex` is recorded; a failed lookup reads as no.
    pub(crate) fn contains(&self, ifindex: u32) -> bool {
        self.map.contains(&ifindex)
    }

    /// Records interface `ifindex`.
    pub(crate) fn insert(&mut self, ifindex: u32, cfg: IfaceConfig) -> Result<()> {
        self.map.insert(ifindex, cfg, 0)
    }

    /// Forgets interface `ifindex`; one that is not recorded is an error.
    pub(crate) fn remove(&mut self, ifindex: u32) -> Result<()> {
        self.map.remove(&ifindex)
    }

    /// Every recorded interface, by ifindex.
    pub(crate) fn all(&self) -> Result<Vec<(u32, IfaceConfig)>> {
        self.map.iter().collect()
    }
}
