//! The data plane's maps, one owner per concern, and the operations that
//! span several: [`State`] is the facade the commands, the reconciler and
//! the tests call. Callers never touch raw aya maps.
//!
//! | owner | maps |
//! |---|---|
//! | `Addresses` | `ANYCAST_ADDRS`, `EXACT_INDEX`, `EXACT_SLASH16`, `ANYCAST_PREFIX`, `PREFIX_NODES` |
//! | `Groups` | `GROUPS` |
//! | `Scopes` | `SCOPES` |
//! | `Subnets` | `SUBNETS` |
//! | `Members` | `MEMBERS`, `MEMBER_SOURCES`, `SELECTION`, `MEMBER_STATS`, `TX_PORTS` |
//! | `Flows` | `FLOWS` (and the flow fields of `SETTINGS`, borrowed) |
//! | `Counters` | `GLOBAL_STATS`, `GROUP_STATS` |
//! | `Settings` | `SETTINGS` |
//! | `Attachments` | `IFACES` (held by the `Dataplane`) |
//! | `Layout` | `ANYCAST_META` (held by the `Dataplane`) |
//!
//! `FLOOD` is the data plane's own: userspace only pins it.
//!
//! The member commands on `State` are in `member_ops`, the scope and
//! subnet ones in `subnet_ops`; what only tests
//! and benchmarks call, in `test_support` (feature `test-support`).

mod addresses;
mod attachments;
mod counters;
mod flows;
mod groups;
mod layout;
mod member_ops;
mod members;
mod scopes;
mod settings;
mod subnet_ops;
mod subnets;
#[cfg(feature = "test-support")]
mod test_support;

use std::{
    collections::{BTreeMap, HashSet},
    net::Ipv6Addr,
};

use anycast_common::{
    GlobalStat, GroupInfo, IfaceLink, JOURNAL_CHANGING, JOURNAL_LOADING, MemberKind,
};
use serde::Serialize;

pub use self::subnet_ops::{
    AddressOrigin, SubnetAddress, SubnetEntry, SubnetSpec, subnet_addresses,
};
#[cfg(feature = "test-support")]
pub use self::test_support::Tamper;
use self::{
    addresses::Addresses, counters::Counters, flows::Flows, groups::Groups, members::Members,
    settings::Settings,
};
pub(crate) use self::{attachments::Attachments, layout::Layout, members::MemberList};
use self::{scopes::Scopes, subnets::Subnets};
use crate::{
    addr::{AnycastPrefix, PrefixSet},
    error::{Endpoint, Error, Result},
    flows::{FlowTableStats, FlowView, monotonic_ns},
    group::{GroupEntry, GroupOptions},
    maps::MapSource,
    names::GroupName,
    repair::RepairReport,
    stats::{GroupStats, Stats},
};

/// Typed owners of the maps the commands edit.
pub struct State {
    addresses: Addresses,
    groups: Groups,
    counters: Counters,
    members: Members,
    flows: Flows,
    settings: Settings,
    scopes: Scopes,
    subnets: Subnets,
}

/// One configured anycast address or prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AddressEntry {
    /// The address (`/128`) or prefix.
    #[serde(serialize_with = "display")]
    pub prefix: AnycastPrefix,
    /// Its group.
    pub group: String,
    /// The interfaces it may be reached from (empty: every interface).
    pub scope: Vec<String>,
    /// The subnet it came from, if a registered subnet's.
    pub origin: Option<AddressOrigin>,
}

fn display<S: serde::Serializer>(p: &AnycastPrefix, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(p)
}

/// What `add_address` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    /// The address was added.
    Added,
    /// The address was already in that group; nothing changed.
    AlreadyPresent,
    /// The address was already in that group, with a scope of these
    /// interfaces: now it is reached from every interface.
    Unscoped(Vec<String>),
}

/// An on-link member whose interface was lost or came back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LinkChange {
    /// Its group.
    pub group: String,
    /// The member.
    pub member: String,
    /// Its interface, as recorded.
    pub iface: String,
    /// The interface's index, as recorded.
    pub ifindex: u32,
    /// Whether the interface is there now.
    pub link: IfaceLink,
}

impl std::fmt::Display for LinkChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (g, m, i, x) = (&self.group, &self.member, &self.iface, self.ifindex);
        match self.link {
            IfaceLink::Present => write!(
                f,
                "member {m} of group {g}: interface {i} (ifindex {x}) is back"
            ),
            IfaceLink::Gone => write!(
                f,
                "member {m} of group {g}: interface {i} (ifindex {x}) is gone; the member gets no traffic until it is back"
            ),
            IfaceLink::Replaced => write!(
                f,
                "member {m} of group {g}: ifindex {x} is no longer interface {i}; the member gets no traffic until {i} is back"
            ),
        }
    }
}

impl State {
    /// Takes the maps from a source of maps by name, checking every key and
    /// value size against this build's types.
    pub(crate) fn from_maps(src: &mut MapSource<'_>) -> Result<Self> {
        Ok(State {
            addresses: Addresses::take(src)?,
            groups: Groups::take(src)?,
            counters: Counters::take(src)?,
            members: Members::take(src)?,
            flows: Flows::take(src)?,
            settings: Settings::take(src)?,
            scopes: Scopes::take(src)?,
            subnets: Subnets::take(src)?,
        })
    }

    // Addresses.

    /// Adds an anycast address or prefix to group `group` (created when
    /// new), reached from every interface: one the group has already loses
    /// its scope. A subnet's address is refused (its subnet says its
    /// scope). Nothing changes when it fails.
    pub fn add_address(&mut self, p: AnycastPrefix, group: &GroupName) -> Result<AddOutcome> {
        self.refuse_subnet_addresses(&[p])?;
        let before = self.addresses.value_of(&p)?;
        let added = self.load_into_group(&[p], group, Some(0))?;
        Ok(match before {
            None => AddOutcome::Added,
            Some(_) if added > 0 => AddOutcome::Added,
            Some(v) if v.scope_id != 0 => AddOutcome::Unscoped(self.scope_names(v.scope_id)?),
            Some(_) => AddOutcome::AlreadyPresent,
        })
    }

    /// Adds many addresses and prefixes to group `group` (created when new)
    /// with one map update each: the fast path for large tables. Entries the
    /// group has already are skipped (their scopes kept). All or nothing: an
    /// entry of another group, or a table that fills up, undoes what this
    /// call added. Returns how many were added.
    pub fn load_addresses(&mut self, list: &[AnycastPrefix], group: &GroupName) -> Result<usize> {
        self.load_into_group(list, group, None)
    }

    /// [`Self::load_addresses`] with scope `scope` (see
    /// [`Addresses::insert`]).
    pub(crate) fn load_into_group(
        &mut self,
        list: &[AnycastPrefix],
        group: &GroupName,
        scope: Option<u16>,
    ) -> Result<usize> {
        self.check_new_addresses(list)?;
        let existing = self.groups.find(group.as_str())?;
        let created = existing.is_none();
        let (id, _) = match existing {
            Some(g) => g,
            None => self.create_group(group)?,
        };
        let list: Vec<(AnycastPrefix, u32)> = list.iter().map(|p| (*p, id)).collect();
        match self.insert_addresses(&list, scope) {
            Ok(n) => Ok(n),
            Err(e) => {
                if created {
                    // Undo the group made for these addresses, so nothing changed.
                    self.groups.release(id)?;
                }
                Err(e)
            }
        }
    }

    /// Refuses addresses that may not be anycast (see
    /// [`AnycastPrefix::check_anycast`]) or that cover an encapsulation
    /// address or tunnel source.
    fn check_new_addresses(&self, list: &[AnycastPrefix]) -> Result<()> {
        for p in list {
            p.check_anycast()?;
        }
        self.check_covers_no_endpoint(list)
    }

    /// Adds each address or prefix to its group (an existing group id),
    /// with scope `scope` (0: none), with one map update each. Entries
    /// already in their group are skipped (given the scope when theirs
    /// differs). All or nothing: an entry of another group, or a table
    /// that fills up, undoes what this call did. Returns how many were
    /// added.
    pub(crate) fn insert_addresses(
        &mut self,
        list: &[(AnycastPrefix, u32)],
        scope: Option<u16>,
    ) -> Result<usize> {
        self.insert_tagged(list, scope, 0)
    }

    /// [`Self::insert_addresses`], each entry tagged `load_tag`.
    fn insert_tagged(
        &mut self,
        list: &[(AnycastPrefix, u32)],
        scope: Option<u16>,
        load_tag: u32,
    ) -> Result<usize> {
        let added =
            self.addresses
                .insert(list, scope, load_tag, &mut self.settings, &self.groups)?;
        self.groups.count_addresses(&added, true)?;
        self.addresses.sync_settings(&mut self.settings)?;
        Ok(added.len())
    }

    /// Adds a file's worth of addresses and prefixes to group `group`
    /// (created when new), all or nothing even when the command is killed:
    /// the journal says that a load is under way and tags its entries, so
    /// that the next command rolls back a load that did not finish (see
    /// [`Self::repair`]). Entries the group has already are skipped.
    /// Returns how many were added.
    pub fn load_address_list(
        &mut self,
        list: &[AnycastPrefix],
        group: &GroupName,
    ) -> Result<usize> {
        self.check_new_addresses(list)?;
        let existing = self.groups.find(group.as_str())?;
        let (id, _) = match existing {
            Some(g) => g,
            None => self.create_group(group)?,
        };
        let created = if existing.is_none() { id as u16 } else { 0 };
        let mut tag = 0;
        self.settings.update(|s| {
            tag = s.load_tag.wrapping_add(1).max(1);
            s.load_tag = tag;
            s.load_group = created;
            s.journal |= JOURNAL_LOADING;
        })?;
        let list: Vec<(AnycastPrefix, u32)> = list.iter().map(|p| (*p, id)).collect();
        let r = self.insert_tagged(&list, None, tag);
        if r.is_err() && existing.is_none() {
            // Undo the group made for these addresses, so nothing changed.
            self.groups.release(id)?;
        }
        self.settings.update(|s| {
            s.journal &= !JOURNAL_LOADING;
            s.load_group = 0;
        })?;
        r
    }

    /// Removes an anycast address or prefix. A group left with no address
    /// and no member is freed; its name is returned.
    pub fn del_address(&mut self, p: AnycastPrefix) -> Result<Option<String>> {
        let Some(group) = self.addresses.group_of(&p)? else {
            return Err(Error::AddressNotFound(p.to_string()));
        };
        if let Some(o) = self.subnet_holding(&p)? {
            return Err(Error::AddressOfSubnet {
                addr: p.addr.to_string(),
                subnet: o.subnet,
            });
        }
        self.remove_addresses(&[(p, group)])?;
        self.free_if_empty(group)
    }

    /// Whether an anycast address or prefix covers `addr`: the error that
    /// refuses `addr` as a `role` address if one does.
    fn check_not_anycast(&self, addr: Ipv6Addr, role: Endpoint) -> Result<()> {
        match self.addresses.covering(addr)? {
            None => Ok(()),
            Some((p, id)) => Err(Error::EndpointIsAnycast {
                role,
                addr,
                anycast: p.to_string(),
                group: self.groups.name_of(id)?,
            }),
        }
    }

    /// Refuses `list` if one of its addresses or prefixes covers a
    /// member's encap address or a group's tunnel source.
    fn check_covers_no_endpoint(&self, list: &[AnycastPrefix]) -> Result<()> {
        let groups = self.groups.by_id()?;
        let mut endpoints: Vec<(Ipv6Addr, Endpoint, String)> = Vec::new();
        for (_, m) in self.members.in_use()? {
            if m.kind == MemberKind::Encap as u8 {
                let g = groups.get(&m.group_id).map(GroupInfo::name_str);
                let owner = format!("member {}/{}", g.unwrap_or_default(), m.name_str());
                endpoints.push((m.addr.into(), Endpoint::Encap, owner));
            }
        }
        for g in groups.values().filter(|g| g.has_tunnel_source != 0) {
            let owner = format!("group {}", g.name_str());
            endpoints.push((g.tunnel_source.into(), Endpoint::TunnelSource, owner));
        }
        if endpoints.is_empty() {
            return Ok(());
        }
        let set = PrefixSet::new(list);
        for (addr, role, owner) in endpoints {
            if let Some(p) = set.covering(addr) {
                return Err(Error::CoversEndpoint {
                    anycast: p.to_string(),
                    role,
                    addr,
                    owner,
                });
            }
        }
        Ok(())
    }

    /// Removes each address or prefix (of the group given with it), with one
    /// map update each; the groups stay.
    pub(crate) fn remove_addresses(&mut self, list: &[(AnycastPrefix, u32)]) -> Result<()> {
        for (p, _) in list {
            self.addresses.forget(p)?;
        }
        self.groups.count_addresses(list, false)?;
        self.addresses.sync_settings(&mut self.settings)
    }

    /// Capacities of the exact-address and the prefix tables.
    pub(crate) fn address_capacities(&self) -> (u32, u32) {
        self.addresses.capacities()
    }

    /// The sizes chosen when the state was created: capacities of the
    /// exact-address table, of the flow table and of the prefix table.
    pub(crate) fn created_sizes(&self) -> (u32, u32, u32) {
        let (addresses, prefixes) = self.addresses.capacities();
        (addresses, self.flows.capacity(), prefixes)
    }

    // Groups.

    /// Every allocated group, by id.
    pub(crate) fn groups_in_use(&self) -> Result<Vec<(u32, GroupInfo)>> {
        self.groups.in_use()
    }

    /// The id of group `group`.
    pub fn group_id_of(&self, group: &str) -> Result<u32> {
        Ok(self.groups.named(group)?.0)
    }

    /// Group `id`'s stored settings.
    pub(crate) fn group(&self, id: u32) -> Result<GroupInfo> {
        self.groups.get(id)
    }

    /// Writes group `id`'s stored settings.
    pub(crate) fn set_group(&mut self, id: u32, info: GroupInfo) -> Result<()> {
        self.groups.set(id, info)
    }

    /// How many groups the table holds.
    pub(crate) fn group_capacity(&self) -> u32 {
        self.groups.capacity()
    }

    /// The error of a full group table.
    pub(crate) fn group_table_full(&self) -> Error {
        self.groups.table_full()
    }

    /// Allocates a group id for `name`, with zeroed counters.
    fn create_group(&mut self, name: &GroupName) -> Result<(u32, GroupInfo)> {
        let id = self.groups.free_id()?;
        Ok((id, self.create_group_at(id, name)?))
    }

    /// Makes free id `id` group `name`, with zeroed counters, an empty
    /// selection (nothing of a group that had the id before) and default
    /// settings.
    pub(crate) fn create_group_at(&mut self, id: u32, name: &GroupName) -> Result<GroupInfo> {
        self.counters.reset_group(id)?;
        self.members.clear_selection(id)?;
        self.groups.write_new(id, name)
    }

    /// Frees group `id` (its members and addresses must be gone, and its
    /// selection published empty) and empties its selection slots. Its
    /// flows are the caller's to flush.
    pub(crate) fn release_group(&mut self, id: u32) -> Result<()> {
        self.forget_subnets_of(id)?;
        self.groups.release(id)?;
        self.members.clear_selection(id)
    }

    /// Frees group `id` if it has no address and no member left, with its
    /// flows; returns its name if it was freed. Only the commands that
    /// remove one address or member call this: a group the configuration
    /// file names stays, empty or not.
    fn free_if_empty(&mut self, id: u32) -> Result<Option<String>> {
        let info = self.groups.get(id)?;
        if info.in_use == 0
            || info.addresses != 0
            || self.members.in_use()?.iter().any(|(_, m)| m.group_id == id)
        {
            return Ok(None);
        }
        self.release_group(id)?;
        self.flush_flows(Some(id))?;
        Ok(Some(info.name_str()))
    }

    /// Every group with its settings and how many addresses and members it has.
    pub fn list_groups(&self) -> Result<Vec<GroupEntry>> {
        let members = self.members.in_use()?;
        let mut out: Vec<GroupEntry> = self
            .groups
            .in_use()?
            .into_iter()
            .map(|(id, info)| {
                let n = members.iter().filter(|(_, m)| m.group_id == id).count();
                GroupEntry::new(id, &info, n)
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Deletes group `group`. One with addresses or members is refused
    /// unless `force`, which removes them first: its addresses (no packet
    /// reaches it any more), then its selection, members, the group and its
    /// flows. Returns how many addresses and members went with it.
    pub fn del_group(&mut self, group: &str, force: bool) -> Result<(usize, usize)> {
        let (id, _) = self.groups.named(group)?;
        let addresses: Vec<(AnycastPrefix, u32)> = self
            .addresses
            .all()?
            .into_iter()
            .filter(|(_, g)| *g == id)
            .collect();
        let all = self.members.in_use()?;
        let mine: MemberList = all
            .iter()
            .filter(|(_, m)| m.group_id == id)
            .copied()
            .collect();
        if !force && (!addresses.is_empty() || !mine.is_empty()) {
            return Err(Error::GroupNotEmpty {
                group: group.to_string(),
                addresses: addresses.len(),
                members: mine.len(),
            });
        }
        self.remove_addresses(&addresses)?;
        self.publish_selection(id, &[])?;
        for (mid, m) in &mine {
            self.members.forget(*mid, m)?;
        }
        self.release_group(id)?;
        self.flush_flows(Some(id))?;
        Ok((addresses.len(), mine.len()))
    }

    /// Sets the options of group `group`, which must exist. Nothing changes
    /// when one of them is refused.
    pub fn set_group_options(&mut self, group: &GroupName, o: &GroupOptions) -> Result<()> {
        o.validate()?;
        if let Some(a) = o.tunnel_source {
            self.check_not_anycast(a, Endpoint::TunnelSource)?;
        }
        let (gid, mut info) = self.groups.named(group.as_str())?;
        let resize = o.table_size.is_some_and(|n| n != info.maglev_size());
        o.apply_to(&mut info);
        self.groups.set(gid, info)?;
        if resize {
            let members = self.members.in_use()?;
            self.publish_selection(gid, &members)?;
        }
        Ok(())
    }

    // Flows.

    /// Occupancy of the flow table.
    pub fn flow_table_stats(&self) -> Result<FlowTableStats> {
        let (entries, live) = self
            .flows
            .occupancy(&self.groups.by_id()?, monotonic_ns())?;
        // Entries made: new flows, and cached flows put back after an eviction.
        let created = self.counters.global(GlobalStat::FlowEntriesCreated)?
            + self.counters.global(GlobalStat::FlowEntriesRestored)?;
        let flushed = Flows::flushed(&self.settings)?;
        Ok(FlowTableStats {
            capacity: self.flows.capacity(),
            entries,
            live,
            evictions: created.saturating_sub(entries + flushed),
        })
    }

    /// Up to `limit` flows, of one group or all.
    pub fn list_flows(&self, group: Option<u32>, limit: usize) -> Result<Vec<FlowView>> {
        let members: BTreeMap<u32, String> = self
            .members
            .in_use()?
            .into_iter()
            .map(|(id, m)| (id, m.name_str()))
            .collect();
        self.flows.list(
            &self.groups.by_id()?,
            &members,
            group,
            limit,
            monotonic_ns(),
        )
    }

    /// Forgets the flows of one group, or all; returns how many.
    pub fn flush_flows(&mut self, group: Option<u32>) -> Result<u64> {
        self.flush_flows_where(|g| group.is_none_or(|x| x == g))
    }

    /// Forgets the flows of every group id for which `which` holds, in one
    /// walk of the table; returns how many.
    pub(crate) fn flush_flows_where(&mut self, which: impl Fn(u32) -> bool) -> Result<u64> {
        self.flows.flush_where(&mut self.settings, which)
    }

    /// Ends a flush that a killed process left half done. Call with the pin
    /// lock held.
    pub(crate) fn settle_flow_epoch(&mut self) -> Result<()> {
        Flows::settle_epoch(&mut self.settings)
    }

    /// The flood guard's rate (new flows recorded per second per CPU; 0: no limit).
    pub fn flood_rate(&self) -> Result<u32> {
        Flows::flood_rate(&self.settings)
    }

    /// Sets the flood guard's rate.
    pub fn set_flood_rate(&mut self, rate: u32) -> Result<()> {
        Flows::set_flood_rate(&mut self.settings, rate)
    }

    // The journal, and repairs.

    /// Marks the start of a change of the maps (`Settings::journal`): a
    /// command killed before [`Self::end_change`] leaves it set, and the
    /// next one repairs.
    pub(crate) fn begin_change(&mut self) -> Result<()> {
        self.settings.update(|s| s.journal |= JOURNAL_CHANGING)
    }

    /// Marks the end of a change: everything derived is consistent again.
    /// A change that failed after it touched the prefix table has not
    /// published the trie derived from it: that comes first, and should it
    /// fail, the journal stays set for the next command's repair.
    pub(crate) fn end_change(&mut self) -> Result<()> {
        if self.addresses.trie_stale() {
            self.addresses.sync_settings(&mut self.settings)?;
        }
        self.settings.update(|s| s.journal = 0)
    }

    /// Whether the journal says that a command was killed half-way.
    pub(crate) fn interrupted(&self) -> Result<bool> {
        Ok(self.settings.get()?.journal != 0)
    }

    /// Checks every piece of derived state against the tables it derives
    /// from, and with `fix` rebuilds what is wrong and rolls back an address
    /// load that did not finish (see [`crate::repair`]); clears the journal.
    /// Call with the pin lock held. Reads every slot of the index (2^20)
    /// and of the member table: about a second.
    pub fn repair(&mut self, fix: bool) -> Result<RepairReport> {
        let s = self.settings.get()?;
        let mut r = RepairReport {
            interrupted: s.journal != 0,
            ..RepairReport::default()
        };
        if s.journal & JOURNAL_LOADING != 0 {
            let per_group = self.addresses.roll_back_load(s.load_tag, fix)?;
            r.load_entries_rolled_back = per_group.values().map(|n| u64::from(*n)).sum();
        }
        (
            r.index_buckets,
            r.index_stale_places,
            r.index_other_counts,
            r.index_slash16_bits,
        ) = self.addresses.repair_index(fix)?;
        r.prefix_trie_nodes = self.addresses.repair_trie(&mut self.settings, fix)?;
        r.prefix_settings = self.addresses.repair_settings(&mut self.settings, fix)?;
        let counts = self.addresses.count_by_group()?;
        r.group_address_counts = self.groups.repair_counts(&counts, fix)?;
        if s.journal & JOURNAL_LOADING != 0 && s.load_group != 0 {
            // The group the load created, if nothing else came to it.
            let id = u32::from(s.load_group);
            let info = self.groups.get(id)?;
            let members = self.members.in_use()?;
            if info.in_use != 0
                && !counts.contains_key(&id)
                && !members.iter().any(|(_, m)| m.group_id == id)
            {
                r.load_group_freed = true;
                if fix {
                    self.groups.release(id)?;
                }
            }
        }
        let mut selected = HashSet::new();
        for (gid, info) in self.groups.in_use()? {
            selected.extend(self.members.selected(gid, &info)?);
        }
        (
            r.member_sources_removed,
            r.member_sources_added,
            r.member_slots_freed,
        ) = self.members.repair_sources(&selected, fix)?;
        let members = self.members.in_use()?;
        for (gid, info) in self.groups.in_use()? {
            if !self.members.selection_current(gid, &info, &members)? {
                r.selections += 1;
                if fix {
                    self.publish_selection(gid, &members)?;
                }
            }
        }
        r.tx_ports = self.members.repair_tx_ports(&members, fix)?;
        r.subnets = self.repair_subnets(fix)?;
        r.flow_flush = anycast_common::flow_epoch_in_flush(Flows::epoch(&self.settings)?);
        if fix {
            if r.flow_flush {
                self.settle_flow_epoch()?;
            }
            self.settings.update(|s| {
                s.journal = 0;
                s.load_group = 0;
            })?;
        }
        Ok(r)
    }

    // Counters.

    /// One global counter, summed over CPUs.
    pub fn global_counter(&self, stat: GlobalStat) -> Result<u64> {
        self.counters.global(stat)
    }

    /// Every counter, summed over CPUs.
    pub fn stats(&self) -> Result<Stats> {
        let mut stats = Stats {
            global: self.counters.global_all()?,
            groups: BTreeMap::new(),
        };
        for (id, info) in self.groups.in_use()? {
            let counters = self.counters.group_all(id)?;
            stats
                .groups
                .insert(info.name_str(), GroupStats::new(id, &info, counters));
        }
        Ok(stats)
    }
}
