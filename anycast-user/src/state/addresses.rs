//! The maps of anycast addresses: the exact table (`ANYCAST_ADDRS`) and its
//! direct-mapped index (`EXACT_INDEX`), the prefix table (`ANYCAST_PREFIX`,
//! an LPM trie) and the prefix trie the data plane walks (`PREFIX_NODES`,
//! built from the table, see `anycast_common::prefix_trie`). The prefix
//! count and the copy of the trie the data plane reads live in `SETTINGS`,
//! borrowed from [`Settings`].
//!
//! The order of the writes is what keeps the data plane right while they
//! happen: see `ExactBucket` for the index, [`Addresses::sync_settings`]
//! for the prefix trie.

mod bulk;
mod slash16;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::Ipv6Addr,
};

use anycast_common::{
    AddrKey, AddrValue, ExactBucket, exact_index_bits, hash, map_names,
    prefix_trie::{self, Node},
};
use bytemuck::Zeroable as _;

use super::{groups::Groups, settings::Settings};
use crate::{
    addr::AnycastPrefix,
    error::{Error, Result},
    maps::{ArrayMap, HashMapOf, MapSource, PrefixMap},
};

/// `BPF_NOEXIST`: create only, never overwrite.
const BPF_NOEXIST: u64 = 1;

/// The place of `addr` in an index bucket, if it is published there.
fn place_of(bucket: &ExactBucket, addr: &[u8; 16]) -> Option<usize> {
    (0..bucket.words.len()).find(|&k| bucket.words[k] != 0 && bucket.addrs[k] == *addr)
}

/// Owner of `ANYCAST_ADDRS`, `EXACT_INDEX`, `EXACT_SLASH16`,
/// `ANYCAST_PREFIX` and `PREFIX_NODES`.
pub(crate) struct Addresses {
    exact: HashMapOf<AddrKey, AddrValue>,
    prefixes: PrefixMap<AddrValue>,
    index: ArrayMap<ExactBucket>,
    /// The /16 filter of the exact addresses (see
    /// `anycast_common::slash16_bit`).
    slash16: ArrayMap<u64>,
    /// Bits of a bucket number of `index`: from its size, as the loader
    /// gives the data plane (see [`Addresses::bucket`]).
    index_bits: u32,
    trie: ArrayMap<Node>,
    /// Nodes of one copy of `trie`: half its size, as the loader gives the
    /// data plane (see [`Addresses::copy_base`]).
    copy_nodes: u32,
    /// The prefix table changed since the trie was last built: the next
    /// [`Self::sync_settings`] rebuilds it.
    trie_stale: bool,
    /// Every exact address one at a time, as before bulk inserts existed
    /// (benchmarks compare the two).
    one_by_one: bool,
}

/// What [`Addresses::insert_each`] did, for its undo.
#[derive(Default)]
struct Inserted {
    added: Vec<(AnycastPrefix, u32)>,
    /// Entries given a new scope, with their old value.
    rescoped: Vec<(AnycastPrefix, AddrValue)>,
}

impl Addresses {
    /// Takes the maps from `src`.
    pub(crate) fn take(src: &mut MapSource<'_>) -> Result<Self> {
        let index: ArrayMap<ExactBucket> = ArrayMap::take(src, map_names::EXACT_INDEX)?;
        let buckets = index.len();
        let index_bits = exact_index_bits(buckets).ok_or(Error::BadIndexSize {
            name: map_names::EXACT_INDEX,
            buckets,
        })?;
        let trie: ArrayMap<Node> = ArrayMap::take(src, map_names::PREFIX_NODES)?;
        let nodes = trie.len();
        let copy_nodes = prefix_trie::copy_nodes_of_map(nodes).ok_or(Error::BadTrieSize {
            name: map_names::PREFIX_NODES,
            nodes,
        })?;
        Ok(Addresses {
            exact: HashMapOf::take_table(src, map_names::ANYCAST_ADDRS, "anycast address table")?,
            prefixes: PrefixMap::take(src, map_names::ANYCAST_PREFIX, "anycast prefix table")?,
            trie,
            copy_nodes,
            trie_stale: false,
            index,
            index_bits,
            slash16: ArrayMap::take(src, map_names::EXACT_SLASH16)?,
            one_by_one: false,
        })
    }

    /// The index bucket of exact address `addr`: the data plane's
    /// (`hash::exact_bucket`, with the bits of this state's index). Every
    /// userspace use of the index goes through here.
    pub(crate) fn bucket(&self, addr: &[u8; 16]) -> u32 {
        hash::exact_bucket(addr, self.index_bits)
    }

    /// The first node of copy `copy` of the prefix trie, and the copy's
    /// nodes: the data plane's (`prefix_trie::copy_base`, with this
    /// state's copy size). Every userspace use of a copy goes through here.
    fn copy_of(&self, copy: u32) -> (u32, u32) {
        (
            prefix_trie::copy_base(copy, self.copy_nodes),
            self.copy_nodes,
        )
    }

    /// Inserts every exact address one at a time (`true`), as before bulk
    /// inserts existed, or in bulk when there are many (`false`, the
    /// default).
    #[cfg(feature = "test-support")]
    pub(crate) fn set_one_by_one(&mut self, on: bool) {
        self.one_by_one = on;
    }

    /// Capacities of the exact-address and the prefix tables.
    pub(crate) fn capacities(&self) -> (u32, u32) {
        (self.exact.capacity(), self.prefixes.capacity())
    }

    /// The group id that holds exactly this address or prefix, if any.
    pub(crate) fn group_of(&self, p: &AnycastPrefix) -> Result<Option<u32>> {
        Ok(self.value_of(p)?.map(|v| u32::from(v.group_id)))
    }

    /// The entry of exactly this address or prefix, if any.
    pub(crate) fn value_of(&self, p: &AnycastPrefix) -> Result<Option<AddrValue>> {
        if p.is_exact() {
            return self.exact.get(&AddrKey::from(p.addr));
        }
        // A lookup in an LPM trie returns the longest match, not the exact
        // key: walk the keys instead.
        for entry in self.prefixes.iter() {
            let (len, addr, v) = entry?;
            if len == p.len && addr == p.addr.octets() {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// The anycast address or longest prefix that covers `addr`, with its
    /// group id, if any.
    pub(crate) fn covering(&self, addr: Ipv6Addr) -> Result<Option<(AnycastPrefix, u32)>> {
        let exact = AnycastPrefix { addr, len: 128 };
        if let Some(g) = self.exact.get(&AddrKey::from(addr))? {
            return Ok(Some((exact, u32::from(g.group_id))));
        }
        if self.prefixes.longest_match(addr.octets())?.is_none() {
            return Ok(None);
        }
        // The trie answers with a value, not its key: find the prefix.
        let mut best: Option<(AnycastPrefix, u32)> = None;
        for entry in self.prefixes.iter() {
            let (len, net, v) = entry?;
            let p = AnycastPrefix {
                addr: net.into(),
                len,
            };
            if p.contains(addr) && best.is_none_or(|(b, _)| b.len < len) {
                best = Some((p, u32::from(v.group_id)));
            }
        }
        Ok(best)
    }

    /// Every configured address and prefix with its group id, unsorted.
    pub(crate) fn all(&self) -> Result<Vec<(AnycastPrefix, u32)>> {
        Ok(self
            .all_values()?
            .into_iter()
            .map(|(p, v)| (p, u32::from(v.group_id)))
            .collect())
    }

    /// Every configured address and prefix with its entry, unsorted.
    pub(crate) fn all_values(&self) -> Result<Vec<(AnycastPrefix, AddrValue)>> {
        let mut out = Vec::new();
        for (k, v) in self.exact.get_all()? {
            let p = AnycastPrefix {
                addr: k.into(),
                len: 128,
            };
            out.push((p, v));
        }
        for entry in self.prefixes.iter() {
            let (len, addr, v) = entry?;
            out.push((
                AnycastPrefix {
                    addr: addr.into(),
                    len,
                },
                v,
            ));
        }
        Ok(out)
    }

    /// Adds each address or prefix to its group (an existing group id),
    /// with scope `scope` (`None`: new entries have none and the others
    /// keep theirs), tagged `load_tag` (0 unless an address load adds
    /// them); `groups` names a group that holds one already. Entries
    /// already in their group are skipped, or given the scope in place
    /// when theirs differs. Many new exact addresses go in in bulk (see
    /// `insert_exact_bulk`), the rest with one map update each. All or
    /// nothing: an entry of another group, or a table that fills up,
    /// undoes what this call added and changed. Returns what was added;
    /// new prefixes reach the data plane with [`Self::sync_settings`], and
    /// the groups' address counts are the caller's.
    pub(crate) fn insert(
        &mut self,
        list: &[(AnycastPrefix, u32)],
        scope: Option<u16>,
        load_tag: u32,
        settings: &mut Settings,
        groups: &Groups,
    ) -> Result<Vec<(AnycastPrefix, u32)>> {
        let exact = list.iter().filter(|(p, _)| p.is_exact()).count();
        self.mark_slash16s(
            list.iter()
                .filter(|(p, _)| p.is_exact())
                .map(|(p, _)| p.addr.octets()),
        )?;
        if self.one_by_one || exact < bulk::BULK_MIN {
            return Ok(self
                .insert_each(list, scope, load_tag, settings, groups)?
                .added);
        }
        let table_size: u64 = groups
            .in_use()?
            .iter()
            .map(|(_, g)| u64::from(g.addresses))
            .sum();
        let keys = list
            .iter()
            .filter(|(p, _)| p.is_exact())
            .map(|(p, _)| p.addr.octets());
        let (holders, whole) = self.holders(keys, exact, table_size)?;
        // The buckets the table's addresses fall in, when the whole table
        // was read: the others need not be read.
        let occupied: Option<HashSet<u32>> =
            whole.then(|| holders.keys().map(|a| self.bucket(a)).collect());
        // New exact addresses in bulk; prefixes and addresses to give a new
        // scope one by one.
        let mut new: Vec<(AddrKey, AddrValue)> = Vec::with_capacity(exact);
        let mut rest: Vec<(AnycastPrefix, u32)> = Vec::new();
        for &(p, id) in list {
            if !p.is_exact() {
                rest.push((p, id));
                continue;
            }
            let octets = p.addr.octets();
            let holder = if holders.is_empty() {
                None
            } else {
                holders.get(&octets)
            };
            match holder {
                Some(old) if u32::from(old.group_id) != id => {
                    return Err(Error::AddressInOtherGroup {
                        addr: p.to_string(),
                        group: groups.name_of(u32::from(old.group_id))?,
                    });
                }
                Some(old) if scope.is_none_or(|s| s == old.scope_id) => {}
                Some(_) => rest.push((p, id)),
                None => {
                    let value = AddrValue {
                        group_id: id as u16,
                        scope_id: scope.unwrap_or(0),
                        load_tag,
                    };
                    new.push((AddrKey { addr: octets }, value));
                }
            }
        }
        drop(holders);
        let mut done = self.insert_each(&rest, scope, load_tag, settings, groups)?;
        match self.insert_exact_bulk(new, occupied.as_ref(), groups) {
            Ok(kept) => done.added.extend(kept.into_iter().map(|(k, v)| {
                let p = AnycastPrefix {
                    addr: k.into(),
                    len: 128,
                };
                (p, u32::from(v.group_id))
            })),
            Err(e) => {
                self.undo(done, settings)?;
                return Err(e);
            }
        }
        Ok(done.added)
    }

    /// [`Self::insert`] with one map update each.
    fn insert_each(
        &mut self,
        list: &[(AnycastPrefix, u32)],
        scope: Option<u16>,
        load_tag: u32,
        settings: &mut Settings,
        groups: &Groups,
    ) -> Result<Inserted> {
        if list.is_empty() {
            return Ok(Inserted::default());
        }
        // Prefixes already present, read once (an LPM lookup is not exact).
        let mut prefixes: HashMap<(u8, [u8; 16]), AddrValue> = HashMap::new();
        for entry in self.prefixes.iter() {
            let (len, addr, v) = entry?;
            prefixes.insert((len, addr), v);
        }
        let mut done = Inserted::default();
        let mut failure = None;
        for &(p, id) in list {
            let value = AddrValue {
                group_id: id as u16,
                scope_id: scope.unwrap_or(0),
                load_tag,
            };
            let holder = if p.is_exact() {
                match self.exact.get(&AddrKey::from(p.addr)) {
                    Ok(v) => v,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            } else {
                prefixes.get(&(p.len, p.addr.octets())).copied()
            };
            match holder {
                Some(old)
                    if u32::from(old.group_id) == id && scope.is_none_or(|s| s == old.scope_id) =>
                {
                    continue;
                }
                Some(old) if u32::from(old.group_id) == id => {
                    let new = AddrValue {
                        load_tag: old.load_tag,
                        ..value
                    };
                    // Undone with the rest should it fail half-way (the
                    // table written, the index not).
                    done.rescoped.push((p, old));
                    if let Err(e) = self.rescope(&p, new) {
                        failure = Some(e);
                        break;
                    }
                    continue;
                }
                Some(old) => {
                    failure = Some(Error::AddressInOtherGroup {
                        addr: p.to_string(),
                        group: groups.name_of(u32::from(old.group_id))?,
                    });
                    break;
                }
                None => {}
            }
            let r = if p.is_exact() {
                self.insert_exact(p.addr, value)
            } else {
                self.insert_prefix(&p, value).inspect(|()| {
                    prefixes.insert((p.len, p.addr.octets()), value);
                })
            };
            match r {
                Ok(()) => done.added.push((p, id)),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failure {
            self.undo(done, settings)?;
            return Err(e);
        }
        Ok(done)
    }

    /// Undoes what [`Self::insert_each`] did.
    fn undo(&mut self, done: Inserted, settings: &mut Settings) -> Result<()> {
        for (p, _) in done.added {
            self.forget(&p)?;
        }
        for (p, old) in done.rescoped {
            self.rescope(&p, old)?;
        }
        self.sync_settings(settings)
    }

    /// Gives an entry that is there a new value (its group unchanged): the
    /// table first, then the word the index publishes, in one write.
    fn rescope(&mut self, p: &AnycastPrefix, value: AddrValue) -> Result<()> {
        if !p.is_exact() {
            self.trie_stale = true;
            return self.prefixes.insert(p.len, p.addr.octets(), value);
        }
        self.exact.insert(AddrKey::from(p.addr), value, 0)?;
        let octets = p.addr.octets();
        let i = self.bucket(&octets);
        let mut bucket = self.index.get(i)?;
        if let Some(k) = place_of(&bucket, &octets) {
            bucket.words[k] = value.word();
            self.index.set(i, bucket)?;
        }
        Ok(())
    }

    /// Inserts an exact address into the exact table and its index (see
    /// [`ExactBucket`] for the order of the writes). Nothing changes when it fails.
    fn insert_exact(&mut self, addr: Ipv6Addr, value: AddrValue) -> Result<()> {
        let octets = addr.octets();
        let i = self.bucket(&octets);
        let mut bucket = self.index.get(i)?;
        let place = bucket.words.iter().position(|w| *w == 0);
        match place {
            // Claim the free place, unpublished: the word comes after the insert.
            Some(k) => bucket.addrs[k] = octets,
            None => bucket.others = bucket.others.saturating_add(1),
        }
        self.index.set(i, bucket)?;
        let r = self.exact.insert(AddrKey::from(addr), value, BPF_NOEXIST);
        match (r, place) {
            (Ok(()), Some(k)) => {
                bucket.words[k] = value.word();
                let published = self.index.set(i, bucket);
                // In the table but not findable: take it out again, or at
                // least make the data plane ask the table (`others` may be
                // too high, never too low).
                if published.is_err() && self.exact.remove(&AddrKey::from(addr)).is_err() {
                    self.count_unplaced(i, bucket, k);
                }
                published
            }
            (Ok(()), None) => Ok(()),
            // An unpublished claim is a free place: leave it.
            (Err(e), Some(_)) => Err(e),
            (Err(e), None) => {
                bucket.others -= 1;
                self.index.set(i, bucket)?;
                Err(e)
            }
        }
    }

    /// Inserts a prefix into the prefix table (the data plane's trie
    /// follows at the next [`Self::sync_settings`]). Nothing changes when
    /// it fails.
    fn insert_prefix(&mut self, p: &AnycastPrefix, value: AddrValue) -> Result<()> {
        self.trie_stale = true;
        self.prefixes.insert(p.len, p.addr.octets(), value)
    }

    /// Removes an address or prefix from its table, and an address then
    /// from the index (it is unpublished before it leaves the table); a
    /// prefix leaves the data plane's trie at the next
    /// [`Self::sync_settings`]. An entry that is not there is not an error.
    /// The groups' address counts and the settings are the caller's.
    pub(crate) fn forget(&mut self, p: &AnycastPrefix) -> Result<()> {
        if !p.is_exact() {
            if self.prefixes.remove_if_present(p.len, p.addr.octets())? {
                self.trie_stale = true;
            }
            return Ok(());
        }
        let octets = p.addr.octets();
        let i = self.bucket(&octets);
        let mut bucket = self.index.get(i)?;
        // The place and the word it published, unpublished first.
        let published =
            place_of(&bucket, &octets).map(|k| (k, std::mem::take(&mut bucket.words[k])));
        if published.is_some() {
            self.index.set(i, bucket)?;
        }
        match self.exact.remove_if_present(&AddrKey::from(p.addr)) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => {
                // Still in the table: publish it again, or the data plane
                // would stop finding a configured address.
                if let Some((k, w)) = published {
                    bucket.words[k] = w;
                    if self.index.set(i, bucket).is_err() {
                        self.count_unplaced(i, bucket, k);
                    }
                }
                return Err(e);
            }
        }
        // Counted among the others, unless it has a claim never published
        // (an insert that did not finish: it may not be counted, and a
        // count too low would hide another address, too high only sends
        // the data plane to the table).
        let claimed =
            (0..bucket.words.len()).any(|k| bucket.words[k] == 0 && bucket.addrs[k] == octets);
        if published.is_none() && !claimed {
            bucket.others = bucket.others.saturating_sub(1);
            self.index.set(i, bucket)?;
        }
        Ok(())
    }

    /// Last resort when an address stays in the exact table but could not
    /// be (re)published at place `k` of bucket `i`: free the place and count
    /// the address among the bucket's others, so the data plane asks the
    /// table. Best effort: the map write has just failed once.
    fn count_unplaced(&mut self, i: u32, mut bucket: ExactBucket, k: usize) {
        bucket.words[k] = 0;
        bucket.others = bucket.others.saturating_add(1);
        let _ = self.index.set(i, bucket);
    }

    /// The exact-address index's bucket count.
    #[cfg(feature = "test-support")]
    pub(crate) fn index_len(&self) -> u32 {
        self.index.len()
    }

    /// Whether exact address `addr` has a place in the exact-address index
    /// (the data plane finds it without the hash-table lookup).
    #[cfg(feature = "test-support")]
    pub(crate) fn indexed(&self, addr: Ipv6Addr) -> Result<bool> {
        let octets = addr.octets();
        let bucket = self.index.get(self.bucket(&octets))?;
        Ok(place_of(&bucket, &octets).is_some())
    }

    /// Whether the prefix table changed since the trie was last published.
    pub(crate) fn trie_stale(&self) -> bool {
        self.trie_stale
    }

    /// Publishes the prefixes to the data plane: their count, and, when
    /// the prefix table changed, the prefix trie rebuilt from it. The trie
    /// is written whole into the copy the data plane does not read, once
    /// every program run under way has ended (a packet that read the
    /// settings before the last flip may still walk that copy:
    /// [`quiesce`](crate::quiesce)), and then the settings flip the data
    /// plane to it in the same write as the count: a packet sees the old
    /// trie or the new one, never a mix, and an unchanged prefix answers
    /// the same in both.
    pub(crate) fn sync_settings(&mut self, settings: &mut Settings) -> Result<()> {
        let set = self.prefix_list()?;
        let n = set.len() as u32;
        let mut copy = settings.get()?.prefix_copy;
        if self.trie_stale {
            copy = (copy ^ 1) & 1;
            let (base, nodes) = self.copy_of(u32::from(copy));
            let built = prefix_trie::build(&set, base, nodes);
            crate::quiesce::program_runs_ended()?;
            self.write_copy(&built)?;
        }
        settings.update(|s| {
            s.prefixes = n;
            s.prefix_any = u8::from(n > 0);
            s.prefix_copy = copy;
        })?;
        self.trie_stale = false;
        Ok(())
    }

    /// Every prefix as the trie takes it: (length, address, word).
    fn prefix_list(&self) -> Result<Vec<(u8, [u8; 16], u32)>> {
        self.prefixes
            .iter()
            .map(|e| e.map(|(len, addr, v)| (len, addr, v.word())))
            .collect()
    }

    /// Writes a built copy of the trie into its place in the map, in
    /// batches.
    fn write_copy(&mut self, built: &prefix_trie::Built) -> Result<()> {
        let indices: Vec<u32> = (0..built.nodes.len() as u32)
            .map(|i| built.base + i)
            .collect();
        self.trie
            .set_many(&indices, &built.nodes)
            .map_err(|(_, e)| e)
    }

    /// A second handle on the prefix trie's map.
    #[cfg(feature = "test-support")]
    pub(crate) fn trie_reader(&self) -> Result<aya::maps::Array<aya::maps::MapData, Node>> {
        self.trie.reopen()
    }

    /// How many nodes of its copy the prefix trie of the configured
    /// prefixes takes, and how many of its slots ask the LPM trie because
    /// the copy is full.
    #[cfg(feature = "test-support")]
    pub(crate) fn prefix_trie_use(&self) -> Result<(usize, usize)> {
        let (base, nodes) = self.copy_of(0);
        let t = prefix_trie::build(&self.prefix_list()?, base, nodes);
        Ok((t.nodes.len(), t.overflowed))
    }

    /// Removes every entry that the address load tagged `tag` added (it was
    /// killed before it finished; with `fix`, else only counts them);
    /// returns how many, by group id.
    pub(crate) fn roll_back_load(&mut self, tag: u32, fix: bool) -> Result<BTreeMap<u32, u32>> {
        let mut tagged = Vec::new();
        for (k, v) in self.exact.get_all()? {
            if v.load_tag == tag {
                let p = AnycastPrefix {
                    addr: k.into(),
                    len: 128,
                };
                tagged.push((p, u32::from(v.group_id)));
            }
        }
        for entry in self.prefixes.iter() {
            let (len, addr, v) = entry?;
            if v.load_tag == tag {
                let p = AnycastPrefix {
                    addr: addr.into(),
                    len,
                };
                tagged.push((p, u32::from(v.group_id)));
            }
        }
        let mut per_group = BTreeMap::new();
        for (p, group) in tagged {
            if fix {
                self.forget(&p)?;
            }
            *per_group.entry(group).or_insert(0) += 1;
        }
        Ok(per_group)
    }

    /// How many addresses and prefixes each group id holds, from the tables.
    pub(crate) fn count_by_group(&self) -> Result<BTreeMap<u32, u32>> {
        let mut out = BTreeMap::new();
        for (_, group) in self.all()? {
            *out.entry(group).or_insert(0) += 1;
        }
        Ok(out)
    }

    /// Rebuilds the exact-address index from the exact table: a place that
    /// publishes an address the table does not hold (or under another
    /// word) is freed, and each bucket counts exactly the table's
    /// addresses it has no place for. Only wrong buckets are written (with
    /// `fix`), each in one write that only frees places, which a reader may
    /// see whole or not at all (see `ExactBucket`). The /16 filter first:
    /// a missing bit hides its addresses from the data plane (set), a bit
    /// whose addresses left only costs a read of the index (cleared, not
    /// counted). Returns (wrong buckets, stale places, wrong counts,
    /// missing /16 bits).
    pub(crate) fn repair_index(&mut self, fix: bool) -> Result<(u64, u64, u64, u64)> {
        let table = self.exact.get_all()?;
        let missing = self.repair_slash16s(table.iter().map(|(k, _)| k.addr), fix)?;
        let mut by_bucket: HashMap<u32, Vec<([u8; 16], u32)>> = HashMap::new();
        for (k, v) in table {
            by_bucket
                .entry(self.bucket(&k.addr))
                .or_default()
                .push((k.addr, v.word()));
        }
        let (mut buckets, mut stale, mut counts) = (0, 0, 0);
        for (i, old) in self.index.get_all()?.into_iter().enumerate() {
            let i = i as u32;
            let held: &[([u8; 16], u32)] = by_bucket.get(&i).map_or(&[], Vec::as_slice);
            if old == ExactBucket::zeroed() && held.is_empty() {
                continue;
            }
            let mut new = old;
            for k in 0..new.words.len() {
                if new.words[k] != 0 && !held.contains(&(new.addrs[k], new.words[k])) {
                    new.words[k] = 0;
                    stale += 1;
                }
            }
            let placed = held
                .iter()
                .filter(|(a, w)| {
                    (0..new.words.len()).any(|k| new.words[k] == *w && new.addrs[k] == *a)
                })
                .count();
            new.others = (held.len() - placed) as u32;
            if new.others != old.others {
                counts += 1;
            }
            if new != old {
                buckets += 1;
                if fix {
                    self.index.set(i, new)?;
                }
            }
        }
        Ok((buckets, stale, counts, missing))
    }

    /// Checks the copy of the prefix trie the data plane reads against the
    /// trie built from the prefix table; returns how many of its nodes are
    /// wrong. With `fix`, when any is, publishes a new trie (see
    /// [`Self::sync_settings`]).
    pub(crate) fn repair_trie(&mut self, settings: &mut Settings, fix: bool) -> Result<u64> {
        let (base, nodes) = self.copy_of(u32::from(settings.get()?.prefix_copy));
        let built = prefix_trie::build(&self.prefix_list()?, base, nodes);
        let mut wrong = 0;
        for (i, want) in built.nodes.iter().enumerate() {
            if self.trie.get(built.base + i as u32)? != *want {
                wrong += 1;
            }
        }
        if wrong > 0 && fix {
            self.trie_stale = true;
            self.sync_settings(settings)?;
        }
        Ok(wrong)
    }

    /// Whether the settings' prefix count and switch match the table
    /// (rewritten with `fix` when they do not).
    pub(crate) fn repair_settings(&mut self, settings: &mut Settings, fix: bool) -> Result<bool> {
        let before = settings.get()?;
        let n = self.prefixes.lens().count() as u32;
        let wrong = (before.prefixes, before.prefix_any) != (n, u8::from(n > 0));
        if wrong && fix {
            self.sync_settings(settings)?;
        }
        Ok(wrong)
    }

    /// Frees `addr`'s place in the index without counting it among the
    /// bucket's others (a test's damage, see `Tamper`).
    #[cfg(feature = "test-support")]
    pub(crate) fn tamper_index(&mut self, addr: Ipv6Addr) -> Result<()> {
        let octets = addr.octets();
        let i = self.bucket(&octets);
        let mut bucket = self.index.get(i)?;
        if let Some(k) = place_of(&bucket, &octets) {
            bucket.words[k] = 0;
        }
        self.index.set(i, bucket)
    }

    /// Empties the root node of the live prefix trie that prefix `p`'s
    /// first byte leads to (a test's damage): the data plane stops finding
    /// the prefixes there.
    #[cfg(feature = "test-support")]
    pub(crate) fn tamper_trie(&mut self, p: AnycastPrefix, settings: &Settings) -> Result<()> {
        let (base, _) = self.copy_of(u32::from(settings.get()?.prefix_copy));
        self.trie
            .set(base + u32::from(p.addr.octets()[0]), Node::filled(0))
    }
}
