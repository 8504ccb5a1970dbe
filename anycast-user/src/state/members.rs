//! The maps of members: their slots (`MEMBERS`), the sources the data
//! plane recognises them by (`MEMBER_SOURCES`), the published selections
//! (`SELECTION`), their counters (`MEMBER_STATS`) and the egress ports of
//! on-link members (`TX_PORTS`).

use std::collections::HashSet;

use anycast_common::{
    GroupInfo, MemberCounters, MemberInfo, MemberKind, MemberSourceKey, Selection, maglev,
    map_names,
};
use bytemuck::Zeroable as _;

use crate::{
    error::{Error, Result},
    maps::{ArrayMap, HashMapOf, MapSource, PerCpuArrayMap, PortMap},
    members::source_key,
};

/// Every member with its id, as [`Members::in_use`] returns them.
pub(crate) type MemberList = Vec<(u32, MemberInfo)>;

/// Owner of `MEMBERS`, `MEMBER_SOURCES`, `SELECTION`, `MEMBER_STATS` and `TX_PORTS`.
pub(crate) struct Members {
    slots: ArrayMap<MemberInfo>,
    sources: HashMapOf<MemberSourceKey, u32>,
    selection: ArrayMap<Selection>,
    counters: PerCpuArrayMap<MemberCounters>,
    tx_ports: PortMap,
}

impl Members {
    /// Takes the maps from `src`.
    pub(crate) fn take(src: &mut MapSource<'_>) -> Result<Self> {
        Ok(Members {
            slots: ArrayMap::take(src, map_names::MEMBERS)?,
            selection: ArrayMap::take(src, map_names::SELECTION)?,
            sources: HashMapOf::take_table(src, map_names::MEMBER_SOURCES, "member source table")?,
            counters: PerCpuArrayMap::take(src, map_names::MEMBER_STATS)?,
            tx_ports: PortMap::take(src, map_names::TX_PORTS)?,
        })
    }

    /// Every allocated member, by id.
    ///
    /// Every member has exactly one entry in `MEMBER_SOURCES`, whose value is
    /// its id: walking that small hash map finds the members without reading
    /// all 65,536 slots of `MEMBERS` (which made every change take 0.1 s).
    pub(crate) fn in_use(&self) -> Result<MemberList> {
        let mut ids: Vec<u32> = self
            .sources
            .get_all()?
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        // Ids are handed out lowest first: the slots up to the highest in
        // use, read in a few batches (a service changes members on every
        // check decision; one lookup per member took milliseconds).
        let slots = match ids.last() {
            Some(&max) => self.slots.get_first(max as usize + 1)?,
            None => Vec::new(),
        };
        Ok(ids
            .into_iter()
            .filter_map(|id| Some((id, *slots.get(id as usize)?)))
            .filter(|(_, m)| m.kind != MemberKind::None as u8)
            .collect())
    }

    /// Member `id`'s stored entry.
    #[cfg(feature = "test-support")]
    pub(crate) fn get(&self, id: u32) -> Result<MemberInfo> {
        self.slots.get(id)
    }

    /// Rewrites member `id`'s stored entry (metric, weight, state); the
    /// group's selection must be published after.
    pub(crate) fn write(&mut self, id: u32, m: &MemberInfo) -> Result<()> {
        self.slots.set(id, *m)
    }

    /// Removes the source entry of `m`'s way in (its MAC is changing).
    pub(crate) fn remove_source(&mut self, m: &MemberInfo) -> Result<()> {
        self.sources.remove_if_present(&source_key(m)).map(drop)
    }

    /// Registers `m`'s way in as member `id`'s source.
    pub(crate) fn add_source(&mut self, id: u32, m: &MemberInfo) -> Result<()> {
        self.sources.insert(source_key(m), id, 0)
    }

    /// Member `id`'s counters, summed over CPUs: (packets, bytes).
    pub(crate) fn counters(&self, id: u32) -> Result<(u64, u64)> {
        let per_cpu = self.counters.get(id)?;
        Ok((
            per_cpu.iter().map(|c| c.packets).sum(),
            per_cpu.iter().map(|c| c.bytes).sum(),
        ))
    }

    /// How many members the table holds (id 0 is never used).
    pub(crate) fn capacity(&self) -> u32 {
        self.slots.len() - 1
    }

    /// The error of a full member table.
    pub(crate) fn table_full(&self) -> Error {
        Error::TableFull {
            table: "member table",
            capacity: self.capacity(),
        }
    }

    /// The member ids not held by any of `members`, ascending.
    pub(crate) fn free_ids(&self, members: &[(u32, MemberInfo)]) -> impl Iterator<Item = u32> {
        let used: HashSet<u32> = members.iter().map(|(id, _)| *id).collect();
        (1..self.slots.len()).filter(move |id| !used.contains(id))
    }

    /// Whether `key` is a registered member source; a failed lookup reads
    /// as no.
    pub(crate) fn has_source(&self, key: &MemberSourceKey) -> bool {
        self.sources.contains(key)
    }

    /// Lets on-link members be reached through `ifindex` (bulked redirect).
    pub(crate) fn add_tx_port(&mut self, ifindex: u32) -> Result<()> {
        self.tx_ports.insert(ifindex)
    }

    /// Zeroes the member's counters, registers its source and writes its slot.
    pub(crate) fn install(&mut self, id: u32, m: &MemberInfo) -> Result<()> {
        self.counters.zero(id)?;
        self.sources.insert(source_key(m), id, 0)?;
        self.slots.set(id, *m)
    }

    /// Frees a member's source entry and slot; it must be out of every
    /// published selection already.
    pub(crate) fn forget(&mut self, id: u32, m: &MemberInfo) -> Result<()> {
        self.sources.remove_if_present(&source_key(m))?;
        self.slots.set(id, MemberInfo::zeroed())
    }

    /// Empties both selection slots of group `group_id` (a group id being
    /// freed or taken anew: nothing of an earlier group may be selected).
    pub(crate) fn clear_selection(&mut self, group_id: u32) -> Result<()> {
        for slot in 0..2 {
            self.selection
                .set(group_id * 2 + slot, Selection::zeroed())?;
        }
        Ok(())
    }

    /// Computes group `group_id`'s consistent-hash table from `members` (a
    /// snapshot of every member, as it is now) into the slot the data plane
    /// is not reading (`info` is the group's entry) and returns that slot:
    /// the caller then flips the group's `active_slot` to it.
    pub(crate) fn fill_idle_slot(
        &mut self,
        group_id: u32,
        info: &GroupInfo,
        members: &[(u32, MemberInfo)],
    ) -> Result<u32> {
        let mine: Vec<(u32, MemberInfo)> = members
            .iter()
            .filter(|(_, m)| m.group_id == group_id)
            .copied()
            .collect();
        let size = info.maglev_size();
        let table = maglev::table_for(&mine, size);
        let mut sel = Selection::zeroed();
        sel.size = size;
        sel.count = maglev::tied(&mine).len() as u32;
        sel.table[..table.len()].copy_from_slice(&table);
        let idle = 1 - (info.active_slot & 1);
        self.selection.set(group_id * 2 + idle, sel)?;
        Ok(idle)
    }

    /// Makes the member-source entries match the member slots, every slot
    /// read: an entry must name a member whose way in it is; a member must
    /// have its entry. A slot without an entry is what a deletion killed
    /// half-way leaves (its selection no longer names it): it is freed. An
    /// entry whose member is gone is what an addition killed half-way
    /// leaves: it is removed (it would vouch for a source no member has).
    /// Returns (entries removed, entries added, slots freed), fixed with
    /// `fix`.
    pub(crate) fn repair_sources(
        &mut self,
        selected: &HashSet<u32>,
        fix: bool,
    ) -> Result<(u64, u64, u64)> {
        let mut entries = Vec::new();
        for entry in self.sources.iter() {
            entries.push(entry?);
        }
        let mut by_id: std::collections::HashMap<u32, Vec<MemberSourceKey>> = Default::default();
        for (key, id) in &entries {
            by_id.entry(*id).or_default().push(*key);
        }
        let (mut removed, mut added, mut freed) = (0, 0, 0);
        for (id, m) in self.slots.get_all()?.into_iter().enumerate().skip(1) {
            let id = id as u32;
            let keys = by_id.remove(&id).unwrap_or_default();
            if m.kind == MemberKind::None as u8 {
                removed += keys.len() as u64;
                if fix {
                    for k in &keys {
                        self.sources.remove_if_present(k)?;
                    }
                }
                continue;
            }
            let want = source_key(&m);
            for k in keys.iter().filter(|k| **k != want) {
                removed += 1;
                if fix {
                    self.sources.remove_if_present(k)?;
                }
            }
            if !keys.contains(&want) {
                if selected.contains(&id) {
                    // Still chosen by its group: it is meant to be there.
                    added += 1;
                    if fix {
                        self.sources.insert(want, id, 0)?;
                    }
                } else {
                    freed += 1;
                    if fix {
                        self.slots.set(id, MemberInfo::zeroed())?;
                    }
                }
            }
        }
        // Entries naming ids beyond the table.
        for keys in by_id.into_values() {
            removed += keys.len() as u64;
            if fix {
                for k in &keys {
                    self.sources.remove_if_present(k)?;
                }
            }
        }
        Ok((removed, added, freed))
    }

    /// The member ids group `group_id`'s published selection names.
    pub(crate) fn selected(&self, group_id: u32, info: &GroupInfo) -> Result<HashSet<u32>> {
        let sel = self.selection.get(group_id * 2 + (info.active_slot & 1))?;
        Ok(sel.table[..(sel.size as usize).min(sel.table.len())]
            .iter()
            .copied()
            .filter(|id| *id != 0)
            .collect())
    }

    /// Whether group `group_id`'s published selection is the one `members`
    /// make (see [`Self::fill_idle_slot`]).
    pub(crate) fn selection_current(
        &self,
        group_id: u32,
        info: &GroupInfo,
        members: &[(u32, MemberInfo)],
    ) -> Result<bool> {
        let mine: Vec<(u32, MemberInfo)> = members
            .iter()
            .filter(|(_, m)| m.group_id == group_id)
            .copied()
            .collect();
        let size = info.maglev_size();
        let tied = maglev::tied(&mine).len() as u32;
        let sel = self.selection.get(group_id * 2 + (info.active_slot & 1))?;
        if tied == 0 {
            // Nobody to choose: the data plane reads an empty selection (or
            // one never published) alike.
            return Ok(sel.count == 0 || sel.size == 0);
        }
        let table = maglev::table_for(&mine, size);
        Ok(sel.size == size && sel.count == tied && sel.table[..table.len()] == table[..])
    }

    /// Adds the egress port of every on-link member of `members` that the
    /// port map lacks (with `fix`); returns how many were missing.
    pub(crate) fn repair_tx_ports(
        &mut self,
        members: &[(u32, MemberInfo)],
        fix: bool,
    ) -> Result<u64> {
        let mut missing: Vec<u32> = members
            .iter()
            .filter(|(_, m)| m.kind == MemberKind::L2 as u8 && !self.tx_ports.contains(m.ifindex))
            .map(|(_, m)| m.ifindex)
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if fix {
            for ifindex in &missing {
                self.tx_ports.insert(*ifindex)?;
            }
        }
        Ok(missing.len() as u64)
    }

    /// Removes member `m`'s source entry (a test's damage).
    #[cfg(feature = "test-support")]
    pub(crate) fn tamper_source(&mut self, m: &MemberInfo) -> Result<()> {
        self.sources.remove_if_present(&source_key(m)).map(|_| ())
    }

    /// Takes `ifindex` out of the egress ports (a test's damage).
    #[cfg(feature = "test-support")]
    pub(crate) fn tamper_tx_port(&mut self, ifindex: u32) -> Result<()> {
        self.tx_ports.remove(ifindex)
    }

    /// Empties group `group_id`'s published selection, or, with `member`,
    /// makes its every slot name that member (a test's damage).
    #[cfg(feature = "test-support")]
    pub(crate) fn tamper_selection(
        &mut self,
        group_id: u32,
        info: &GroupInfo,
        member: Option<u32>,
    ) -> Result<()> {
        let slot = group_id * 2 + (info.active_slot & 1);
        let sel = match member {
            None => Selection::zeroed(),
            Some(id) => {
                let mut sel = self.selection.get(slot)?;
                let used = (sel.size as usize).min(sel.table.len());
                sel.table[..used].fill(id);
                sel
            }
        };
        self.selection.set(slot, sel)
    }
}
