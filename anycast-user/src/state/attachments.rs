//! `IFACES`: the interfaces the program is attached to, with the role,
//! source action and mode of each. An attachment is keyed by an id of its
//! own; the interface is known by its network namespace and index together
//! (two namespaces may use the same index).

use anycast_common::{IfaceConfig, MAX_IFACES, NetnsId, map_names};

use crate::{
    error::{Error, Result},
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

    /// The attachment of interface `ifindex` of namespace `netns`, if any,
    /// with its id.
    pub(crate) fn find(&self, netns: NetnsId, ifindex: u32) -> Result<Option<(u32, IfaceConfig)>> {
        Ok(self
            .all()?
            .into_iter()
            .find(|(_, c)| c.netns == netns && c.ifindex == ifindex))
    }

    /// An id no attachment has.
    pub(crate) fn free_id(&self) -> Result<u32> {
        let used: Vec<u32> = self.all()?.into_iter().map(|(id, _)| id).collect();
        (1..=MAX_IFACES)
            .find(|id| !used.contains(id))
            .ok_or(Error::TableFull {
                table: "interface table",
                capacity: MAX_IFACES,
            })
    }

    /// Records attachment `id`.
    pub(crate) fn insert(&mut self, id: u32, cfg: IfaceConfig) -> Result<()> {
        self.map.insert(id, cfg, 0)
    }

    /// Forgets attachment `id`; one that is not recorded is an error.
    pub(crate) fn remove(&mut self, id: u32) -> Result<()> {
        self.map.remove(&id)
    }

    /// Every recorded attachment, by id.
    pub(crate) fn all(&self) -> Result<Vec<(u32, IfaceConfig)>> {
        self.map.iter().collect()
    }
}
