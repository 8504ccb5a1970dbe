//! `GROUPS`: every group by id, with its name, settings, address count and
//! the slot of its live selection. Id 0 is never used.

use std::collections::BTreeMap;

use anycast_common::{GroupInfo, map_names};
use bytemuck::Zeroable as _;

use crate::{
    addr::AnycastPrefix,
    error::{Error, Result},
    maps::{ArrayMap, MapSource},
    names::GroupName,
};

/// Owner of `GROUPS`.
pub(crate) struct Groups {
    map: ArrayMap<GroupInfo>,
}

impl Groups {
    /// Takes the map from `src`.
    pub(crate) fn take(src: &mut MapSource<'_>) -> Result<Self> {
        Ok(Groups {
            map: ArrayMap::take(src, map_names::GROUPS)?,
        })
    }

    /// Group `id`'s stored entry.
    pub(crate) fn get(&self, id: u32) -> Result<GroupInfo> {
        self.map.get(id)
    }

    /// Writes group `id`'s stored entry.
    pub(crate) fn set(&mut self, id: u32, info: GroupInfo) -> Result<()> {
        self.map.set(id, info)
    }

    /// Frees id `id`.
    pub(crate) fn release(&mut self, id: u32) -> Result<()> {
        self.set(id, GroupInfo::zeroed())
    }

    /// Every allocated group, by id.
    pub(crate) fn in_use(&self) -> Result<Vec<(u32, GroupInfo)>> {
        // One batch read of the table, not a lookup per slot.
        Ok(self
            .map
            .get_all()?
            .into_iter()
            .zip(0u32..)
            .skip(1)
            .filter(|(g, _)| g.in_use != 0)
            .map(|(g, id)| (id, g))
            .collect())
    }

    /// Every allocated group, by id, as a map.
    pub(crate) fn by_id(&self) -> Result<BTreeMap<u32, GroupInfo>> {
        Ok(self.in_use()?.into_iter().collect())
    }

    /// The group called `name`, if there is one.
    pub(crate) fn find(&self, name: &str) -> Result<Option<(u32, GroupInfo)>> {
        // Ids are handed out lowest first: most names are in the first batch.
        self.map.find(|g| g.in_use != 0 && g.name_str() == name)
    }

    /// The group called `name`, which must exist.
    pub(crate) fn named(&self, name: &str) -> Result<(u32, GroupInfo)> {
        self.find(name)?
            .ok_or_else(|| Error::UnknownGroup(name.to_string()))
    }

    /// Group `id`'s name (`#id` for a free id).
    pub(crate) fn name_of(&self, id: u32) -> Result<String> {
        let g = self.get(id)?;
        Ok(if g.in_use != 0 {
            g.name_str()
        } else {
            format!("#{id}")
        })
    }

    /// How many groups the table holds (id 0 is never used).
    pub(crate) fn capacity(&self) -> u32 {
        self.map.len() - 1
    }

    /// The error of a full group table.
    pub(crate) fn table_full(&self) -> Error {
        Error::TableFull {
            table: "group table",
            capacity: self.capacity(),
        }
    }

    /// The lowest free id.
    pub(crate) fn free_id(&self) -> Result<u32> {
        let used: Vec<u32> = self.in_use()?.iter().map(|(id, _)| *id).collect();
        (1..self.map.len())
            .find(|id| !used.contains(id))
            .ok_or_else(|| self.table_full())
    }

    /// Makes free id `id` group `name`, with default settings.
    pub(crate) fn write_new(&mut self, id: u32, name: &GroupName) -> Result<GroupInfo> {
        let name = name.as_str();
        let mut info = GroupInfo::zeroed();
        info.name[..name.len()].copy_from_slice(name.as_bytes());
        info.in_use = 1;
        self.set(id, info)?;
        Ok(info)
    }

    /// Adds (or subtracts) the entries of `list` to their groups' address counts.
    pub(crate) fn count_addresses(
        &mut self,
        list: &[(AnycastPrefix, u32)],
        add: bool,
    ) -> Result<()> {
        let mut per_group: BTreeMap<u32, u32> = BTreeMap::new();
        for (_, id) in list {
            *per_group.entry(*id).or_default() += 1;
        }
        for (id, n) in per_group {
            let mut info = self.get(id)?;
            if info.in_use != 0 {
                info.addresses = if add {
                    info.addresses + n
                } else {
                    info.addresses.saturating_sub(n)
                };
                self.set(id, info)?;
            }
        }
        Ok(())
    }

    /// Sets every group's address count to `counts` (by group id, from the
    /// tables); returns how many were wrong (and, with `fix`, are now right).
    pub(crate) fn repair_counts(&mut self, counts: &BTreeMap<u32, u32>, fix: bool) -> Result<u64> {
        let mut wrong = 0;
        for (id, mut info) in self.in_use()? {
            let want = counts.get(&id).copied().unwrap_or(0);
            if info.addresses != want {
                wrong += 1;
                if fix {
                    info.addresses = want;
                    self.set(id, info)?;
                }
            }
        }
        Ok(wrong)
    }
}
