//! Many new exact addresses at once (an address load): the exact table and
//! the index written with the kernel's batch operations, each index bucket
//! at most twice, in the order `ExactBucket` asks for. One address at a
//! time costs five syscalls; a million took 7 to 11 s.

use std::{
    collections::{HashMap, HashSet},
    net::Ipv6Addr,
};

use anycast_common::{AddrKey, AddrValue, EXACT_BUCKET_ENTRIES, ExactBucket};
use bytemuck::Zeroable as _;

use super::Addresses;
use crate::{
    error::{Error, Result},
    state::groups::Groups,
};

/// Fewest new exact addresses of one call that [`Addresses::insert`]
/// writes in bulk. Below it, one at a time costs as many syscalls.
pub(super) const BULK_MIN: usize = 64;

/// The words one bulk insert publishes in a bucket (0: none).
type Words = [u32; EXACT_BUCKET_ENTRIES];

impl Addresses {
    /// The exact-table entries of those of `keys` (`count` of them) that
    /// are in the table, and whether that is the whole table. `table_size`
    /// guesses how many entries the table holds: when `keys` are more than
    /// an eighth of that, the whole table is read in batches (a syscall
    /// per 4,096 entries) rather than a lookup per key.
    pub(super) fn holders(
        &self,
        keys: impl Iterator<Item = [u8; 16]>,
        count: usize,
        table_size: u64,
    ) -> Result<(HashMap<[u8; 16], AddrValue>, bool)> {
        if count as u64 * 8 >= table_size {
            let all = self.exact.get_all()?;
            return Ok((all.into_iter().map(|(k, v)| (k.addr, v)).collect(), true));
        }
        let mut out = HashMap::new();
        for k in keys {
            if let Some(v) = self.exact.get(&AddrKey { addr: k })? {
                out.insert(k, v);
            }
        }
        Ok((out, false))
    }

    /// The index buckets `ids` (ascending) that must be read, by their
    /// place in `ids`; the others are empty. With `occupied` (the buckets
    /// of every address in the table), a bucket not among them is not read
    /// but taken as empty: the table holds none of its addresses, so it
    /// publishes nothing (rule one) and counts nothing the table holds;
    /// what it may hold is claims never published (free places) and a
    /// count too high (lowered after its addresses left), and writing it
    /// afresh keeps both rules. Reading is what costs: a lookup per
    /// bucket, or the whole index in batches (about 0.4 s for its 2^20
    /// buckets) when there are many.
    fn read_buckets(
        &self,
        ids: &[u32],
        occupied: Option<&HashSet<u32>>,
    ) -> Result<Vec<(usize, ExactBucket)>> {
        let read: Vec<usize> = (0..ids.len())
            .filter(|&k| occupied.is_none_or(|o| o.contains(&ids[k])))
            .collect();
        if read.len() as u32 >= self.index.len() / 8 {
            let all = self.index.get_all()?;
            return read
                .into_iter()
                .map(|k| match all.get(ids[k] as usize) {
                    Some(b) => Ok((k, *b)),
                    None => Ok((k, self.index.get(ids[k])?)),
                })
                .collect();
        }
        read.into_iter()
            .map(|k| Ok((k, self.index.get(ids[k])?)))
            .collect()
    }

    /// Inserts the exact addresses of `entries` (none in the table; the
    /// same one may come more than once, in one group) into the exact
    /// table and its index, each once, all or nothing; returns those it
    /// inserted:
    ///
    /// 1. every bucket they fall in is written with the places of its new
    ///    addresses claimed (word 0) and `others` raised by those that find
    ///    no place;
    /// 2. the entries go into the table;
    /// 3. every bucket with a claimed place is written with the words:
    ///    published.
    ///
    /// So an address is published only once it is in the table, `others`
    /// rises before the table holds more, and a reader that sees a word
    /// sees its address (step 1 wrote it). A failure undoes what was done
    /// in reverse (unpublished, out of the table, the buckets as they
    /// were), following the same rules. `occupied`: see
    /// [`Self::read_buckets`]; `groups` names a group in an error.
    pub(super) fn insert_exact_bulk(
        &mut self,
        entries: Vec<(AddrKey, AddrValue)>,
        occupied: Option<&HashSet<u32>>,
        groups: &Groups,
    ) -> Result<Vec<(AddrKey, AddrValue)>> {
        if entries.is_empty() {
            return Ok(entries);
        }
        // By bucket, then as given: the first of an address stays first,
        // and every step below reads in order.
        let mut order: Vec<(u32, u32)> = entries
            .iter()
            .zip(0u32..)
            .map(|((k, _), i)| (self.bucket(&k.addr), i))
            .collect();
        order.sort_unstable();
        let mut kept: Vec<(AddrKey, AddrValue)> = Vec::with_capacity(entries.len());
        let mut kept_bucket: Vec<u32> = Vec::with_capacity(entries.len());
        let mut run = 0;
        for &(b, i) in &order {
            let (k, v) = entries[i as usize];
            if kept_bucket.last() != Some(&b) {
                run = kept.len();
            }
            // The same address again falls in the same bucket.
            if let Some((_, first)) = kept[run..].iter().find(|(a, _)| *a == k) {
                if first.group_id != v.group_id {
                    return Err(Error::AddressInOtherGroup {
                        addr: Ipv6Addr::from(k.addr).to_string(),
                        group: groups.name_of(u32::from(first.group_id))?,
                    });
                }
                continue;
            }
            kept.push((k, v));
            kept_bucket.push(b);
        }
        drop((entries, order));
        let mut ids = kept_bucket.clone();
        ids.dedup();
        let before = self.read_buckets(&ids, occupied)?;
        let mut claimed = vec![ExactBucket::zeroed(); ids.len()];
        for &(slot, b) in &before {
            claimed[slot] = b;
        }
        // The buckets that get words: their place in `ids`, the words.
        let mut places: Vec<(usize, Words)> = Vec::new();
        let mut next = kept.iter().zip(&kept_bucket).peekable();
        for (slot, &id) in ids.iter().enumerate() {
            let c = &mut claimed[slot];
            let mut words: Words = [0; EXACT_BUCKET_ENTRIES];
            while let Some(((k, v), _)) = next.next_if(|(_, b)| **b == id) {
                // A free place (a claim never published is free too) that
                // this call has not taken.
                match (0..words.len()).find(|&p| c.words[p] == 0 && words[p] == 0) {
                    Some(p) => {
                        c.addrs[p] = k.addr;
                        words[p] = v.word();
                    }
                    None => c.others = c.others.saturating_add(1),
                }
            }
            if words.iter().any(|w| *w != 0) {
                places.push((slot, words));
            }
        }
        drop(kept_bucket);
        // The buckets as they were, for an undo.
        let restore = |ids: &[u32]| {
            let mut was = vec![ExactBucket::zeroed(); ids.len()];
            for &(slot, b) in &before {
                was[slot] = b;
            }
            was
        };

        // 1. Claims and counts.
        if let Err((done, e)) = self.index.set_many(&ids, &claimed) {
            // Best effort: an unpublished claim is a free place, and a
            // count too high only sends the data plane to the table.
            let _ = self.index.set_many(&ids[..done], &restore(&ids)[..done]);
            return Err(e);
        }
        // 2. The table.
        let (keys, values): (Vec<AddrKey>, Vec<AddrValue>) = kept.iter().copied().unzip();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        if let Err(failed) = self.exact.insert_many(&keys, &values, threads) {
            let removed = failed
                .written
                .into_iter()
                .all(|r| self.exact.remove_many(&keys[r]).is_ok());
            if removed {
                let _ = self.index.set_many(&ids, &restore(&ids));
            } else {
                self.count_claims(&ids, &claimed, &places);
            }
            return Err(failed.error);
        }
        drop(values);
        // 3. The words.
        let pub_ids: Vec<u32> = places.iter().map(|(slot, _)| ids[*slot]).collect();
        let published: Vec<ExactBucket> = places
            .iter()
            .map(|&(slot, words)| {
                let mut b = claimed[slot];
                for (place, w) in b.words.iter_mut().zip(words) {
                    if w != 0 {
                        *place = w;
                    }
                }
                b
            })
            .collect();
        if let Err((done, e)) = self.index.set_many(&pub_ids, &published) {
            let unpublished: Vec<ExactBucket> = places[..done]
                .iter()
                .map(|(slot, _)| claimed[*slot])
                .collect();
            // Unpublished before the addresses leave the table.
            let undone = self.index.set_many(&pub_ids[..done], &unpublished).is_ok()
                && self.exact.remove_many(&keys).is_ok();
            if undone {
                let _ = self.index.set_many(&ids, &restore(&ids));
            } else {
                self.count_claims(&ids, &claimed, &places);
            }
            return Err(e);
        }
        Ok(kept)
    }

    /// Last resort when the addresses of a failed bulk insert stay in the
    /// table (a write failed, and then its undo): every bucket with claims
    /// counts its claimed addresses among its others, unpublished, so the
    /// data plane asks the table for them (as [`Addresses::count_unplaced`]
    /// does for one). Best effort: map writes have just failed.
    fn count_claims(&mut self, ids: &[u32], claimed: &[ExactBucket], places: &[(usize, Words)]) {
        for &(slot, words) in places {
            let mut b = claimed[slot];
            let placed = words.iter().filter(|w| **w != 0).count() as u32;
            b.others = b.others.saturating_add(placed);
            let _ = self.index.set(ids[slot], b);
        }
    }
}
