//! The exact-address index: its size for a table's capacity, and its
//! bucket, the data plane's first answer for a /128.

use bytemuck::{Pod, Zeroable};

#[cfg(doc)]
use crate::{AddrValue, hash};
use crate::{MAX_ANYCAST_ADDRS, MAX_ANYCAST_ADDRS_LIMIT};

/// Buckets of the exact-address index of the default table
/// ([`MAX_ANYCAST_ADDRS`]): 64 MiB. See [`exact_index_buckets`].
pub const EXACT_INDEX_BUCKETS: u32 = exact_index_buckets(MAX_ANYCAST_ADDRS);
/// Fewest buckets of the exact-address index (64 KiB).
pub const EXACT_INDEX_MIN_BUCKETS: u32 = 1 << 10;

/// Buckets of the exact-address index of a table of `max_addresses`
/// (at most [`MAX_ANYCAST_ADDRS_LIMIT`]): a power of two, 64 bytes each,
/// at least as many as the table holds addresses (three places each), so
/// that even a full table has about 97 % of its addresses in the index;
/// never fewer than [`EXACT_INDEX_MIN_BUCKETS`].
pub const fn exact_index_buckets(max_addresses: u32) -> u32 {
    let n = if max_addresses > MAX_ANYCAST_ADDRS_LIMIT {
        MAX_ANYCAST_ADDRS_LIMIT
    } else {
        max_addresses
    };
    let n = n.next_power_of_two();
    if n < EXACT_INDEX_MIN_BUCKETS {
        EXACT_INDEX_MIN_BUCKETS
    } else {
        n
    }
}

/// The bit count of [`hash::exact_bucket`] for an index of `buckets`
/// buckets, when that is a power of two the hash can address (2^1 to
/// 2^32 buckets): the loader's check of the map it is given.
pub const fn exact_index_bits(buckets: u32) -> Option<u32> {
    if buckets >= 2 && buckets.is_power_of_two() {
        Some(buckets.trailing_zeros())
    } else {
        None
    }
}
/// Addresses one bucket of the exact-address index holds (one cache line).
pub const EXACT_BUCKET_ENTRIES: usize = 3;

/// One bucket of the exact-address index, the data plane's first answer
/// for a /128: one cache line read and a few compares instead of a
/// hash-table lookup.
///
/// The bucket of an address is [`hash::exact_bucket`]. The first three
/// addresses of a bucket have a place in it; the others of the same bucket
/// are only in the exact table, and `others` says that there are some.
/// Userspace keeps two rules, so that the data plane never misses a
/// configured address and never sees one that is not configured: an
/// address is published (its `words` entry set) only while it is in the
/// exact table, and `others` is raised before an address goes into the
/// table only and lowered after it leaves. A place is taken in two writes
/// (the new address with word 0, then the word), so a reader that sees a
/// word sees its address whole. A word changes in place (a new scope) in
/// one write, after the exact table's value.
///
/// A reader reads a place's word, then its address, then the word again,
/// and trusts the place only when both reads agree. A place freed and
/// taken by another address of another group between the reads is then
/// noticed, and the reader asks the exact table. What is left needs a reader
/// stalled across four or more userspace map writes that leave the same
/// word in the place around another address (an address freed, another
/// published in its place with the same word, or a refused insert's
/// claim between them): XDP runs in softirq with preemption off (not so on
/// PREEMPT_RT), so only a host descheduling the vCPU that long could make
/// one packet take a wrong group. Closing it would take a seqlock, which
/// map updates (one unordered copy of the whole bucket) cannot give. The
/// two-write order relies on the CPU keeping stores and loads in order
/// (x86; the reader uses plain loads, not acquire loads).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ExactBucket {
    /// The addresses in the bucket, network byte order; meaningful where
    /// the word is not 0.
    pub addrs: [[u8; 16]; EXACT_BUCKET_ENTRIES],
    /// Their group and scope ([`AddrValue::word`]), 0 for a free place.
    pub words: [u32; EXACT_BUCKET_ENTRIES],
    /// How many other exact addresses of this bucket are in the exact
    /// table (an upper bound: never less).
    pub others: u32,
}
const _: () = assert!(core::mem::size_of::<ExactBucket>() == 64);
// The data plane reads `words` and `others` as the bucket's last two u64s
// to tell an empty bucket at once.
const _: () = assert!(
    core::mem::offset_of!(ExactBucket, words) == 48
        && core::mem::offset_of!(ExactBucket, others) == 60
);

/// Words of the /16 filter of the exact addresses (`EXACT_SLASH16`):
/// 65,536 bits, one per first 16 bits of an address, in `u64`s (8 KiB).
pub const SLASH16_WORDS: u32 = 1 << 10;

/// Where the /16 filter keeps the bit of the addresses whose first two
/// bytes are `b0` and `b1`: (word, mask).
///
/// Userspace sets a bit before an exact address under it goes into the
/// exact table (and the index), and clears bits only when it rebuilds the
/// filter from the table (`repair`): a set bit may cover no address any
/// more, a clear one covers none. So the data plane, which reads the
/// index and the table only for an address whose bit is set, never misses
/// an exact address, and an address outside every /16 that holds one
/// (most of the Internet's, for most deployments) costs one read of this
/// small, hot array instead of a bucket of the big index.
pub const fn slash16_bit(b0: u8, b1: u8) -> (u32, u64) {
    let top = (b0 as u32) << 8 | b1 as u32;
    (top >> 6, 1 << (top & 63))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slash16_has_its_own_bit_in_the_filter() {
        let mut seen = [0u64; SLASH16_WORDS as usize];
        for top in 0..=u16::MAX {
            let [b0, b1] = top.to_be_bytes();
            let (word, bit) = slash16_bit(b0, b1);
            assert!(word < SLASH16_WORDS, "{top:#x}");
            assert_eq!(bit.count_ones(), 1, "{top:#x}");
            assert_eq!(seen[word as usize] & bit, 0, "{top:#x} shares a bit");
            seen[word as usize] |= bit;
        }
        assert!(seen.iter().all(|w| *w == u64::MAX), "every bit used");
    }
}
