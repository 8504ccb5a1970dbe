//! Typed access to the data plane's maps: anycast addresses, groups,
//! interfaces and counters. Callers never touch raw aya maps.

use std::collections::BTreeMap;

use anycast_common::{
    AddrKey, AddrValue, Affinity, ExactBucket, Fallback, FlowEntry, FlowKey, GROUP_NAME_LEN,
    GlobalCounters, GlobalStat, GroupCounters, GroupInfo, GroupStat, IfaceConfig, LAYOUT_VERSION,
    MAX_PREFILTER_LENS, MemberCounters, MemberInfo, MemberSourceKey, Selection, Settings, hash,
    map_names,
};
use aya::{
    Ebpf,
    maps::{
        Array, DevMapHash, HashMap, LpmTrie, Map, MapData, MapError, PerCpuArray, PerCpuValues,
        lpm_trie::Key,
    },
    util::nr_cpus,
};
use bytemuck::Zeroable as _;
use serde::Serialize;

use crate::{
    addr::AnycastPrefix,
    error::{Error, Result, map_errno},
};

/// The place of `addr` in an index bucket, if it is published there.
fn place_of(bucket: &ExactBucket, addr: &[u8; 16]) -> Option<usize> {
    (0..bucket.groups.len()).find(|&k| bucket.groups[k] != 0 && bucket.addrs[k] == *addr)
}

/// Typed handles on every map of the data plane.
pub struct State {
    addrs: HashMap<MapData, AddrKey, AddrValue>,
    prefixes: LpmTrie<MapData, [u8; 16], AddrValue>,
    pub(crate) groups: Array<MapData, GroupInfo>,
    global_stats: PerCpuArray<MapData, GlobalCounters>,
    group_stats: PerCpuArray<MapData, GroupCounters>,
    pub(crate) ifaces: HashMap<MapData, u32, IfaceConfig>,
    meta: Array<MapData, u32>,
    pub(crate) members: Array<MapData, MemberInfo>,
    pub(crate) selection: Array<MapData, Selection>,
    pub(crate) member_sources: HashMap<MapData, MemberSourceKey, u32>,
    pub(crate) member_stats: PerCpuArray<MapData, MemberCounters>,
    pub(crate) tx_ports: DevMapHash<MapData>,
    pub(crate) flows: HashMap<MapData, FlowKey, FlowEntry>,
    pub(crate) settings: Array<MapData, Settings>,
    prefilter: Array<MapData, u32>,
    exact_index: Array<MapData, ExactBucket>,
    /// Capacity of the flow table as created.
    pub(crate) flow_capacity: u32,
    /// Capacities of the address tables as created (they may differ from the defaults).
    addr_capacity: u32,
    prefix_capacity: u32,
}

/// One configured anycast address or prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AddressEntry {
    /// The address (`/128`) or prefix.
    #[serde(serialize_with = "display")]
    pub prefix: AnycastPrefix,
    /// Its group.
    pub group: String,
}

/// What `add_address` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    /// The address was added.
    Added,
    /// The address was already in that group; nothing changed.
    AlreadyPresent,
}

/// Counters of one group, summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GroupStats {
    /// Group id.
    pub id: u32,
    /// Number of anycast addresses and prefixes in the group.
    pub addresses: u32,
    /// `pass` or `drop`: what happens when no member is up.
    pub fallback: &'static str,
    /// Outer source of encapsulated packets, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel_source: Option<std::net::Ipv6Addr>,
    /// `flow` or `none`.
    pub affinity: &'static str,
    /// Idle timeout of TCP flows, seconds.
    pub tcp_timeout: u32,
    /// Idle timeout of other flows, seconds.
    pub other_timeout: u32,
    /// Consistent-hash table size.
    pub table_size: u32,
    /// Counters by name.
    #[serde(flatten)]
    pub counters: BTreeMap<&'static str, u64>,
}

/// A snapshot of every counter, summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Global verdict counters by name.
    pub global: BTreeMap<&'static str, u64>,
    /// Per-group counters by group name.
    pub groups: BTreeMap<String, GroupStats>,
}

fn display<S: serde::Serializer>(p: &AnycastPrefix, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(p)
}

pub(crate) fn map_err(name: &'static str) -> impl Fn(MapError) -> Error {
    move |source| Error::Map { name, source }
}

/// Whether `name` is 1 to `limit - 1` characters of `[A-Za-z0-9._-]`.
pub(crate) fn valid_name(name: &str, limit: usize) -> bool {
    !name.is_empty()
        && name.len() < limit
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Checks a group name: 1 to 31 characters of `[A-Za-z0-9._-]`.
pub fn validate_group_name(name: &str) -> Result<()> {
    if valid_name(name, GROUP_NAME_LEN) {
        Ok(())
    } else {
        Err(Error::InvalidGroupName(name.to_string()))
    }
}

/// A zero value for every possible CPU, to reset a per-CPU slot.
pub(crate) fn zeroed_per_cpu<T: aya::Pod + bytemuck::Zeroable>() -> Result<PerCpuValues<T>> {
    PerCpuValues::try_from(vec![T::zeroed(); cpus()?]).map_err(|source| Error::Io {
        path: "/sys/devices/system/cpu/possible".into(),
        source,
    })
}

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<Map> {
    ebpf.take_map(name).ok_or(Error::Map {
        name,
        source: MapError::InvalidName {
            name: name.to_string(),
        },
    })
}

impl State {
    /// Takes the maps out of a loaded object (pinned or not).
    pub fn from_ebpf(ebpf: &mut Ebpf) -> Result<Self> {
        Self::from_maps(|name| take(ebpf, name))
    }

    /// Builds the typed handles from a source of maps by name, checking
    /// every key and value size against this build's types.
    pub(crate) fn from_maps(mut get: impl FnMut(&'static str) -> Result<Map>) -> Result<Self> {
        let mut capacities = [0u32; 3];
        macro_rules! typed {
            ($name:expr) => {{
                let name = $name;
                get(name)?.try_into().map_err(map_err(name))?
            }};
            ($name:expr, $cap:expr) => {{
                let name = $name;
                let map = get(name)?;
                capacities[$cap] = max_entries(&map).map_err(map_err(name))?;
                map.try_into().map_err(map_err(name))?
            }};
        }
        let state = State {
            addrs: typed!(map_names::ANYCAST_ADDRS, 0),
            prefixes: typed!(map_names::ANYCAST_PREFIX, 1),
            groups: typed!(map_names::GROUPS),
            global_stats: typed!(map_names::GLOBAL_STATS),
            group_stats: typed!(map_names::GROUP_STATS),
            ifaces: typed!(map_names::IFACES),
            meta: typed!(map_names::META),
            members: typed!(map_names::MEMBERS),
            selection: typed!(map_names::SELECTION),
            member_sources: typed!(map_names::MEMBER_SOURCES),
            member_stats: typed!(map_names::MEMBER_STATS),
            tx_ports: typed!(map_names::TX_PORTS),
            flows: typed!(map_names::FLOWS, 2),
            settings: typed!(map_names::SETTINGS),
            prefilter: typed!(map_names::PREFILTER),
            exact_index: typed!(map_names::EXACT_INDEX),
            addr_capacity: capacities[0],
            prefix_capacity: capacities[1],
            flow_capacity: capacities[2],
        };
        Ok(state)
    }

    /// The layout version recorded in the state (0: never written).
    pub(crate) fn layout_version(&self) -> Result<u32> {
        self.meta.get(&0, 0).map_err(map_err(map_names::META))
    }

    /// Records this build's layout version.
    pub(crate) fn set_layout_version(&mut self) -> Result<()> {
        self.meta
            .set(0, LAYOUT_VERSION, 0)
            .map_err(map_err(map_names::META))
    }

    /// Every allocated group, by id.
    pub(crate) fn groups_in_use(&self) -> Result<Vec<(u32, GroupInfo)>> {
        let mut out = Vec::new();
        for id in 1..self.groups.len() {
            let g = self
                .groups
                .get(&id, 0)
                .map_err(map_err(map_names::GROUPS))?;
            if g.in_use != 0 {
                out.push((id, g));
            }
        }
        Ok(out)
    }

    pub(crate) fn group_by_name(&self, name: &str) -> Result<Option<(u32, GroupInfo)>> {
        Ok(self
            .groups_in_use()?
            .into_iter()
            .find(|(_, g)| g.name_str() == name))
    }

    pub(crate) fn group_name(&self, id: u32) -> Result<String> {
        let g = self
            .groups
            .get(&id, 0)
            .map_err(map_err(map_names::GROUPS))?;
        Ok(if g.in_use != 0 {
            g.name_str()
        } else {
            format!("#{id}")
        })
    }

    /// How many groups the table holds (id 0 is never used).
    pub(crate) fn group_capacity(&self) -> u32 {
        self.groups.len() - 1
    }

    /// The error of a full group table.
    pub(crate) fn group_table_full(&self) -> Error {
        Error::TableFull {
            table: "group table",
            capacity: self.group_capacity(),
        }
    }

    /// Allocates a group id for `name`, with zeroed counters.
    pub(crate) fn create_group(&mut self, name: &str) -> Result<(u32, GroupInfo)> {
        let used: Vec<u32> = self.groups_in_use()?.iter().map(|(id, _)| *id).collect();
        let id = (1..self.groups.len())
            .find(|id| !used.contains(id))
            .ok_or_else(|| self.group_table_full())?;
        Ok((id, self.create_group_at(id, name)?))
    }

    /// Makes free id `id` group `name`, with zeroed counters and default settings.
    pub(crate) fn create_group_at(&mut self, id: u32, name: &str) -> Result<GroupInfo> {
        self.group_stats
            .set(id, zeroed_per_cpu::<GroupCounters>()?, 0)
            .map_err(map_err(map_names::GROUP_STATS))?;
        let mut info = GroupInfo::zeroed();
        info.name[..name.len()].copy_from_slice(name.as_bytes());
        info.in_use = 1;
        self.groups
            .set(id, info, 0)
            .map_err(map_err(map_names::GROUPS))?;
        Ok(info)
    }

    pub(crate) fn set_group(&mut self, id: u32, info: GroupInfo) -> Result<()> {
        self.groups
            .set(id, info, 0)
            .map_err(map_err(map_names::GROUPS))
    }

    /// The group that holds exactly this address or prefix, if any.
    fn lookup_exact(&self, p: &AnycastPrefix) -> Result<Option<AddrValue>> {
        if p.is_exact() {
            match self.addrs.get(&AddrKey::from(p.addr), 0) {
                Ok(v) => Ok(Some(v)),
                Err(MapError::KeyNotFound) => Ok(None),
                Err(e) => Err(map_err(map_names::ANYCAST_ADDRS)(e)),
            }
        } else {
            // A lookup in an LPM trie returns the longest match, not the
            // exact key: walk the keys instead.
            for entry in self.prefixes.iter() {
                let (k, v) = entry.map_err(map_err(map_names::ANYCAST_PREFIX))?;
                if k.prefix_len() == u32::from(p.len) && k.data() == p.addr.octets() {
                    return Ok(Some(v));
                }
            }
            Ok(None)
        }
    }

    /// Adds an anycast address or prefix to group `group` (created when new).
    /// Nothing changes when it fails.
    pub fn add_address(&mut self, p: AnycastPrefix, group: &str) -> Result<AddOutcome> {
        Ok(match self.load_addresses(&[p], group)? {
            0 => AddOutcome::AlreadyPresent,
            _ => AddOutcome::Added,
        })
    }

    /// Adds many addresses and prefixes to group `group` (created when new)
    /// with one map update each: the fast path for large tables. Entries the
    /// group has already are skipped. All or nothing: an entry of another
    /// group, or a table that fills up, undoes what this call added.
    /// Returns how many were added.
    pub fn load_addresses(&mut self, list: &[AnycastPrefix], group: &str) -> Result<usize> {
        validate_group_name(group)?;
        let existing = self.group_by_name(group)?;
        let created = existing.is_none();
        let (id, _) = match existing {
            Some(g) => g,
            None => self.create_group(group)?,
        };
        let list: Vec<(AnycastPrefix, u32)> = list.iter().map(|p| (*p, id)).collect();
        match self.insert_addresses(&list) {
            Ok(n) => Ok(n),
            Err(e) => {
                if created {
                    self.set_group(id, GroupInfo::zeroed())?;
                }
                Err(e)
            }
        }
    }

    /// Adds each address or prefix to its group (an existing group id), with
    /// one map update each. Entries already in their group are skipped. All
    /// or nothing: an entry of another group, or a table that fills up,
    /// undoes what this call added. Returns how many were added.
    pub(crate) fn insert_addresses(&mut self, list: &[(AnycastPrefix, u32)]) -> Result<usize> {
        // Prefixes already present, read once (an LPM lookup is not exact).
        let mut prefixes: std::collections::HashMap<(u32, [u8; 16]), u32> = Default::default();
        for entry in self.prefixes.iter() {
            let (k, v) = entry.map_err(map_err(map_names::ANYCAST_PREFIX))?;
            prefixes.insert((k.prefix_len(), k.data()), v.group_id);
        }
        let lens: Vec<u8> = list
            .iter()
            .filter(|(p, _)| !p.is_exact())
            .map(|(p, _)| p.len)
            .collect();
        self.sync_settings(&lens)?;
        let mut added: Vec<(AnycastPrefix, u32)> = Vec::new();
        let mut failure = None;
        for &(p, id) in list {
            let value = AddrValue {
                group_id: id,
                _pad: 0,
            };
            let holder = if p.is_exact() {
                match self.addrs.get(&AddrKey::from(p.addr), 0) {
                    Ok(v) => Some(v.group_id),
                    Err(MapError::KeyNotFound) => None,
                    Err(e) => {
                        failure = Some(map_err(map_names::ANYCAST_ADDRS)(e));
                        break;
                    }
                }
            } else {
                prefixes.get(&(u32::from(p.len), p.addr.octets())).copied()
            };
            match holder {
                Some(g) if g == id => continue,
                Some(g) => {
                    failure = Some(Error::AddressInOtherGroup {
                        addr: p.to_string(),
                        group: self.group_name(g)?,
                    });
                    break;
                }
                None => {}
            }
            let r = if p.is_exact() {
                self.insert_exact(p.addr, value)
            } else {
                self.insert_prefix(&p, value).inspect(|()| {
                    prefixes.insert((u32::from(p.len), p.addr.octets()), id);
                })
            };
            match r {
                Ok(()) => added.push((p, id)),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failure {
            for (p, _) in added {
                self.forget_entry(&p)?;
            }
            self.sync_settings(&[])?;
            return Err(e);
        }
        self.count_addresses(&added, true)?;
        self.sync_settings(&[])?;
        Ok(added.len())
    }

    /// Removes an anycast address or prefix. The group stays (with its counters).
    pub fn del_address(&mut self, p: AnycastPrefix) -> Result<()> {
        let Some(v) = self.lookup_exact(&p)? else {
            return Err(Error::AddressNotFound(p.to_string()));
        };
        self.remove_addresses(&[(p, v.group_id)])
    }

    /// Removes each address or prefix (of the group given with it), with one
    /// map update each; the groups stay.
    pub(crate) fn remove_addresses(&mut self, list: &[(AnycastPrefix, u32)]) -> Result<()> {
        for (p, _) in list {
            self.forget_entry(p)?;
        }
        self.count_addresses(list, false)?;
        self.sync_settings(&[])
    }

    /// Inserts an exact address into the exact table and its index (see
    /// [`ExactBucket`] for the order of the writes). Nothing changes when it fails.
    fn insert_exact(&mut self, addr: std::net::Ipv6Addr, value: AddrValue) -> Result<()> {
        let octets = addr.octets();
        let i = hash::exact_bucket(&octets);
        let mut bucket = self.index_bucket(i)?;
        let place = bucket.groups.iter().position(|g| *g == 0);
        match place {
            // Claim the free place, unpublished: the group comes after the insert.
            Some(k) => bucket.addrs[k] = octets,
            None => bucket.others = bucket.others.saturating_add(1),
        }
        self.set_index_bucket(i, bucket)?;
        let r = self
            .addrs
            .insert(AddrKey::from(addr), value, BPF_NOEXIST)
            .map_err(|e| {
                full_or(
                    e,
                    "anycast address table",
                    self.addr_capacity,
                    map_names::ANYCAST_ADDRS,
                )
            });
        match (r, place) {
            (Ok(()), Some(k)) => {
                bucket.groups[k] = value.group_id;
                let published = self.set_index_bucket(i, bucket);
                // In the table but not findable: take it out again, or at
                // least make the data plane ask the table (`others` may be
                // too high, never too low).
                if published.is_err() && self.addrs.remove(&AddrKey::from(addr)).is_err() {
                    self.count_unplaced(i, bucket, k);
                }
                published
            }
            (Ok(()), None) => Ok(()),
            // An unpublished claim is a free place: leave it.
            (Err(e), Some(_)) => Err(e),
            (Err(e), None) => {
                bucket.others -= 1;
                self.set_index_bucket(i, bucket)?;
                Err(e)
            }
        }
    }

    /// Inserts a prefix into the prefix table, counted in the prefilter first
    /// (the data plane never filters out a configured prefix). Nothing changes
    /// when it fails.
    fn insert_prefix(&mut self, p: &AnycastPrefix, value: AddrValue) -> Result<()> {
        self.prefilter_count(p, true)?;
        let key = Key::new(u32::from(p.len), p.addr.octets());
        let r = self.prefixes.insert(&key, value, 0).map_err(|e| {
            full_or(
                e,
                "anycast prefix table",
                self.prefix_capacity,
                map_names::ANYCAST_PREFIX,
            )
        });
        if r.is_err() {
            self.prefilter_count(p, false)?;
        }
        r
    }

    /// Removes an address or prefix from its table, and then from the index
    /// or the prefilter (an address is unpublished before it leaves the
    /// table). An entry that is not there is not an error.
    fn forget_entry(&mut self, p: &AnycastPrefix) -> Result<()> {
        if !p.is_exact() {
            return match self
                .prefixes
                .remove(&Key::new(u32::from(p.len), p.addr.octets()))
            {
                Ok(()) => self.prefilter_count(p, false),
                Err(MapError::KeyNotFound) => Ok(()),
                Err(e) => Err(map_err(map_names::ANYCAST_PREFIX)(e)),
            };
        }
        let octets = p.addr.octets();
        let i = hash::exact_bucket(&octets);
        let mut bucket = self.index_bucket(i)?;
        // The place and the group it published, unpublished first.
        let published =
            place_of(&bucket, &octets).map(|k| (k, std::mem::take(&mut bucket.groups[k])));
        if published.is_some() {
            self.set_index_bucket(i, bucket)?;
        }
        match self.addrs.remove(&AddrKey::from(p.addr)) {
            Ok(()) => {}
            Err(MapError::KeyNotFound) => return Ok(()),
            Err(e) => {
                // Still in the table: publish it again, or the data plane
                // would stop finding a configured address.
                if let Some((k, g)) = published {
                    bucket.groups[k] = g;
                    if self.set_index_bucket(i, bucket).is_err() {
                        self.count_unplaced(i, bucket, k);
                    }
                }
                return Err(map_err(map_names::ANYCAST_ADDRS)(e));
            }
        }
        if published.is_none() {
            bucket.others = bucket.others.saturating_sub(1);
            self.set_index_bucket(i, bucket)?;
        }
        Ok(())
    }

    /// Last resort when an address stays in the exact table but could not
    /// be (re)published at place `k` of bucket `i`: free the place and count
    /// the address among the bucket's others, so the data plane asks the
    /// table. Best effort: the map write has just failed once.
    fn count_unplaced(&mut self, i: u32, mut bucket: ExactBucket, k: usize) {
        bucket.groups[k] = 0;
        bucket.others = bucket.others.saturating_add(1);
        let _ = self.set_index_bucket(i, bucket);
    }

    /// Whether exact address `addr` has a place in the exact-address index
    /// (the data plane finds it without the hash-table lookup).
    pub fn indexed(&self, addr: std::net::Ipv6Addr) -> Result<bool> {
        let octets = addr.octets();
        let bucket = self.index_bucket(hash::exact_bucket(&octets))?;
        Ok(place_of(&bucket, &octets).is_some())
    }

    /// Bucket `i` of the exact-address index.
    fn index_bucket(&self, i: u32) -> Result<ExactBucket> {
        self.exact_index
            .get(&i, 0)
            .map_err(map_err(map_names::EXACT_INDEX))
    }

    fn set_index_bucket(&mut self, i: u32, bucket: ExactBucket) -> Result<()> {
        self.exact_index
            .set(i, bucket, 0)
            .map_err(map_err(map_names::EXACT_INDEX))
    }

    /// Adds (or subtracts) the entries of `list` to their groups' address counts.
    fn count_addresses(&mut self, list: &[(AnycastPrefix, u32)], add: bool) -> Result<()> {
        let mut per_group: BTreeMap<u32, u32> = BTreeMap::new();
        for (_, id) in list {
            *per_group.entry(*id).or_default() += 1;
        }
        for (id, n) in per_group {
            let mut info = self
                .groups
                .get(&id, 0)
                .map_err(map_err(map_names::GROUPS))?;
            if info.in_use != 0 {
                info.addresses = if add {
                    info.addresses + n
                } else {
                    info.addresses.saturating_sub(n)
                };
                self.set_group(id, info)?;
            }
        }
        Ok(())
    }

    /// Publishes how many prefixes are configured and their distinct lengths
    /// (with `extra`, lengths about to be added), so that the data plane
    /// skips the prefix lookups when there are none and the prefilter knows
    /// which lengths to try. Counted afresh from the trie, so it cannot drift.
    /// More distinct lengths than the prefilter covers turn it off.
    fn sync_settings(&mut self, extra: &[u8]) -> Result<()> {
        let mut n = 0u32;
        let mut lens: Vec<u8> = extra.to_vec();
        for k in self.prefixes.keys() {
            let k = k.map_err(map_err(map_names::ANYCAST_PREFIX))?;
            n += 1;
            lens.push(k.prefix_len() as u8);
        }
        lens.sort_unstable();
        lens.dedup();
        let mut s = self.settings_value()?;
        s.prefixes = n + extra.len() as u32;
        s.prefilter = u8::from(lens.len() <= MAX_PREFILTER_LENS);
        s.prefix_lens = [0; MAX_PREFILTER_LENS];
        for (slot, len) in s.prefix_lens.iter_mut().zip(&lens) {
            *slot = *len;
        }
        self.set_settings(s)
    }

    /// The data plane's settings (the one value of `SETTINGS`). Read
    /// before every change, and a failed read fails the change: writing
    /// defaults back would reset the flood guard and the prefix lengths.
    pub(crate) fn settings_value(&self) -> Result<Settings> {
        self.settings
            .get(&0, 0)
            .map_err(map_err(map_names::SETTINGS))
    }

    /// Writes the data plane's settings (read with [`Self::settings_value`]
    /// and changed).
    pub(crate) fn set_settings(&mut self, s: Settings) -> Result<()> {
        self.settings
            .set(0, s, 0)
            .map_err(map_err(map_names::SETTINGS))
    }

    /// Counts prefix `p` in (or out of) the prefilter. In before the entry
    /// is inserted, out after it is removed: the data plane never filters
    /// out a configured prefix.
    fn prefilter_count(&mut self, p: &AnycastPrefix, add: bool) -> Result<()> {
        let b = hash::prefilter_bucket(hash::words(&p.addr.octets()), p.len);
        let n = self
            .prefilter
            .get(&b, 0)
            .map_err(map_err(map_names::PREFILTER))?;
        let n = if add { n + 1 } else { n.saturating_sub(1) };
        self.prefilter
            .set(b, n, 0)
            .map_err(map_err(map_names::PREFILTER))
    }

    /// Every configured address and prefix with its group id, unsorted.
    pub(crate) fn address_ids(&self) -> Result<Vec<(AnycastPrefix, u32)>> {
        let mut out = Vec::new();
        for entry in self.addrs.iter() {
            let (k, v) = entry.map_err(map_err(map_names::ANYCAST_ADDRS))?;
            let p = AnycastPrefix {
                addr: k.into(),
                len: 128,
            };
            out.push((p, v.group_id));
        }
        for entry in self.prefixes.iter() {
            let (k, v) = entry.map_err(map_err(map_names::ANYCAST_PREFIX))?;
            let p = AnycastPrefix {
                addr: k.data().into(),
                len: k.prefix_len() as u8,
            };
            out.push((p, v.group_id));
        }
        Ok(out)
    }

    /// Capacities of the exact-address and the prefix tables.
    pub(crate) fn address_capacities(&self) -> (u32, u32) {
        (self.addr_capacity, self.prefix_capacity)
    }

    /// Every configured address and prefix, sorted.
    pub fn addresses(&self) -> Result<Vec<AddressEntry>> {
        let mut out = Vec::new();
        for (prefix, id) in self.address_ids()? {
            out.push(AddressEntry {
                prefix,
                group: self.group_name(id)?,
            });
        }
        out.sort_by(|a, b| (&a.group, a.prefix).cmp(&(&b.group, b.prefix)));
        Ok(out)
    }

    /// One global counter, summed over CPUs.
    pub fn global_counter(&self, stat: GlobalStat) -> Result<u64> {
        Ok(self
            .global_per_cpu()?
            .iter()
            .map(|c| c.counters[stat as usize])
            .sum())
    }

    fn global_per_cpu(&self) -> Result<PerCpuValues<GlobalCounters>> {
        self.global_stats
            .get(&0, 0)
            .map_err(map_err(map_names::GLOBAL_STATS))
    }

    /// Every counter, summed over CPUs.
    pub fn stats(&self) -> Result<Stats> {
        let mut stats = Stats::default();
        let per_cpu = self.global_per_cpu()?;
        for stat in GlobalStat::ALL {
            let sum = per_cpu.iter().map(|c| c.counters[stat as usize]).sum();
            stats.global.insert(stat.name(), sum);
        }
        for (id, info) in self.groups_in_use()? {
            let per_cpu = self
                .group_stats
                .get(&id, 0)
                .map_err(map_err(map_names::GROUP_STATS))?;
            let mut counters = BTreeMap::new();
            for stat in GroupStat::ALL {
                let sum = per_cpu.iter().map(|c| c.counters[stat as usize]).sum();
                counters.insert(stat.name(), sum);
            }
            stats.groups.insert(
                info.name_str(),
                GroupStats {
                    id,
                    addresses: info.addresses,
                    fallback: fallback_name(Fallback::from_u8(info.fallback)),
                    tunnel_source: (info.has_tunnel_source != 0).then(|| info.tunnel_source.into()),
                    affinity: match Affinity::from_u8(info.affinity) {
                        Affinity::Flow => "flow",
                        Affinity::None => "none",
                    },
                    tcp_timeout: (info.flow_timeout_ns(anycast_common::wire::IPPROTO_TCP)
                        / 1_000_000_000) as u32,
                    other_timeout: (info.flow_timeout_ns(0) / 1_000_000_000) as u32,
                    table_size: info.maglev_size(),
                    counters,
                },
            );
        }
        Ok(stats)
    }
}

/// `BPF_NOEXIST`: create only, never overwrite.
const BPF_NOEXIST: u64 = 1;

fn max_entries(map: &Map) -> Result<u32, MapError> {
    match map {
        Map::HashMap(m) | Map::LpmTrie(m) | Map::LruHashMap(m) => Ok(m.info()?.max_entries()),
        _ => Ok(0),
    }
}

/// Name of a fallback in output and on the command line.
pub const fn fallback_name(f: Fallback) -> &'static str {
    match f {
        Fallback::Pass => "pass",
        Fallback::Drop => "drop",
    }
}

fn cpus() -> Result<usize> {
    nr_cpus().map_err(|(path, source)| Error::Io {
        path: path.into(),
        source,
    })
}

fn full_or(e: MapError, table: &'static str, capacity: u32, name: &'static str) -> Error {
    match map_errno(&e) {
        Some(libc::E2BIG) | Some(libc::ENOSPC) => Error::TableFull { table, capacity },
        _ => Error::Map { name, source: e },
    }
}
