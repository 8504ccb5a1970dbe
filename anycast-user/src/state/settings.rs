//! `SETTINGS`: the data plane's one settings value. The address tables
//! keep their prefix count and the live copy of the prefix trie there, the flow table its
//! epoch, flood rate and flush count; both borrow this owner to change it.

use anycast_common::map_names;

use crate::{
    error::Result,
    maps::{ArrayMap, MapSource},
};

/// The settings value as stored.
pub(crate) type Value = anycast_common::Settings;

/// Owner of `SETTINGS`.
pub(crate) struct Settings {
    map: ArrayMap<Value>,
}

impl Settings {
    /// Takes the map from `src`.
    pub(crate) fn take(src: &mut MapSource<'_>) -> Result<Self> {
        Ok(Settings {
            map: ArrayMap::take(src, map_names::SETTINGS)?,
        })
    }

    /// The settings. Read before every change, and a failed read fails the
    /// change: writing defaults back would reset the flood guard and the
    /// live copy of the prefix trie.
    pub(crate) fn get(&self) -> Result<Value> {
        self.map.get(0)
    }

    /// Reads the settings, changes them with `f`, and writes them back.
    pub(crate) fn update(&mut self, f: impl FnOnce(&mut Value)) -> Result<()> {
        let mut s = self.get()?;
        f(&mut s);
        self.map.set(0, s)
    }
}
