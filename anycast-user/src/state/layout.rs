//! `ANYCAST_META`: the layout version of the pinned state, so that a build
//! never edits maps laid out by an incompatible one.

use anycast_common::{LAYOUT_VERSION, map_names};

use crate::{
    error::Result,
    maps::{ArrayMap, MapSource},
};

/// Owner of `ANYCAST_META`.
pub(crate) struct Layout {
    map: ArrayMap<u32>,
}

impl Layout {
    /// Takes the map from `src`.
    pub(crate) fn take(src: &mut MapSource<'_>) -> Result<Self> {
        Ok(Layout {
            map: ArrayMap::take(src, map_names::META)?,
        })
    }

    /// The layout version recorded in the state (0: never written).
    pub(crate) fn version(&self) -> Result<u32> {
        self.map.get(0)
    }

    /// Records this build's layout version.
    pub(crate) fn set_current(&mut self) -> Result<()> {
        self.set(LAYOUT_VERSION)
    }

    /// Records layout version `v`.
    pub(crate) fn set(&mut self, v: u32) -> Result<()> {
        self.map.set(0, v)
    }
}
