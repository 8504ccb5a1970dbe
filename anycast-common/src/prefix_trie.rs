//! The prefix trie the data plane reads: a multibit trie in one array map
//! (`PREFIX_NODES`), so that each level costs one array read, which the
//! verifier inlines into pointer arithmetic.
//!
//! Shape: a node is 256 slots ([`Node`]), indexed by one byte of the
//! address. The root is the first [`ROOT_NODES`] nodes of a copy, indexed
//! by the address's first byte (node) and second byte (slot): a direct
//! table of the first 16 bits. Below it, up to [`LEVELS`] levels of nodes
//! take bytes 2..8, so the trie ends at bit 64. A slot is
//! - a word (`AddrValue::word`, 0: no prefix): the answer, leaf-pushed (a
//!   slot holds the longest prefix that covers all of it, a child's slots
//!   inherit their parent slot's word),
//! - [`SLOT_CHILD`] | node: read that node's slot for the next byte,
//! - [`SLOT_ASK`]: the trie does not hold this part of the address space
//!   (prefixes longer than /64, or nodes past the copy's capacity): the
//!   LPM trie (`ANYCAST_PREFIX`, which holds every prefix) answers.
//!
//! So an address in no /16 holding a prefix is answered by one read, an
//! address in a /48 by five, and the answer is always the longest match
//! (the LPM trie's own when the slot says ask).
//!
//! Two copies ([`COPIES`]), each [`copy_nodes`] of the prefix table's
//! capacity (at most [`COPY_NODES`], chosen when the state is created with
//! `--max-prefixes`; the data plane is given it at load time, userspace
//! takes it from the map's size): userspace rebuilds
//! the copy the data plane does not read, then flips `Settings::prefix_copy`
//! (one byte) to it. A packet reads the settings once, so it sees one whole
//! copy; userspace waits [`GRACE_MS`] before it writes a copy again, far
//! longer than a packet's run in the program (a margin, not a proof: a
//! vCPU stopped by its hypervisor mid-walk could outlast it).

/// Slots of a node: one per value of an address byte.
pub const NODE_SLOTS: usize = 256;
/// A node: [`NODE_SLOTS`] slots (1 KiB).
pub type Node = [u32; NODE_SLOTS];
/// Nodes of the root of a copy (indexed by the address's first byte).
pub const ROOT_NODES: u32 = 256;
/// Levels of nodes below the root: bytes 2..8 of the address.
pub const LEVELS: usize = 6;
/// Bits the root and the levels take: prefixes longer than this are left
/// to the LPM trie (a [`SLOT_ASK`] where they would need a deeper node).
pub const TRIE_BITS: u8 = 16 + 8 * LEVELS as u8;
/// Most nodes of one copy, the root's included: 16 MiB, the copy of the
/// default prefix table ([`crate::MAX_ANYCAST_PREFIXES`]). Enough for
/// thousands of prefixes; past a copy's nodes, the subtrees that do not
/// fit ask the LPM trie.
pub const COPY_NODES: u32 = 1 << 14;
/// Fewest nodes of one copy: the root and as many again.
pub const MIN_COPY_NODES: u32 = 2 * ROOT_NODES;
/// Copies: one the data plane reads, one userspace rebuilds.
pub const COPIES: u32 = 2;
/// Nodes of the map of the default prefix table (the largest map).
pub const PREFIX_NODES: u32 = COPY_NODES * COPIES;
/// A slot that points at a node (its index in the map, both copies
/// counted) in the bits below.
pub const SLOT_CHILD: u32 = 1 << 31;
/// A slot whose addresses the LPM trie answers.
pub const SLOT_ASK: u32 = 1 << 30;
/// Milliseconds userspace waits after a flip before it writes the copy
/// the data plane left (a packet's run takes microseconds).
pub const GRACE_MS: u64 = 2;

// A word never has the flag bits set: group below 2^16, scope below 2^14.
const _: () = assert!(crate::MAX_GROUPS <= 1 << 16);
const _: () = assert!(crate::MAX_SCOPES <= 1 << 14);
// Child indices fit under the flags.
const _: () = assert!(PREFIX_NODES < SLOT_ASK);

/// Nodes of one copy for a prefix table of `max_prefixes` entries (the
/// one place that says it): the root, a node and a half per prefix,
/// between [`MIN_COPY_NODES`] and [`COPY_NODES`]. A prefix of /24 to /64
/// makes at most one node per level it goes past the root, but prefixes
/// that share a /24../56 share those nodes: the benchmark's 10,000
/// prefixes over one /32 of 10 lengths take 11,649 nodes, within the
/// 15,256 of 10,000; the default table (65,536) gets the largest copy
/// (16,384), 1,000 prefixes get 1,756 (1.7 MiB). A set that needs more
/// than its copy holds is only slower (its last subtrees ask the LPM
/// trie), never wrong.
pub const fn copy_nodes(max_prefixes: u32) -> u32 {
    let n = ROOT_NODES as u64 + max_prefixes as u64 + max_prefixes as u64 / 2;
    if n < MIN_COPY_NODES as u64 {
        MIN_COPY_NODES
    } else if n > COPY_NODES as u64 {
        COPY_NODES
    } else {
        n as u32
    }
}

/// The copy's nodes of a map of `map_nodes` nodes (both copies), when it
/// is one this build makes: two copies of [`MIN_COPY_NODES`] to
/// [`COPY_NODES`] each.
pub const fn copy_nodes_of_map(map_nodes: u32) -> Option<u32> {
    let n = map_nodes / COPIES;
    if map_nodes.is_multiple_of(COPIES) && n >= MIN_COPY_NODES && n <= COPY_NODES {
        Some(n)
    } else {
        None
    }
}

/// The first node of copy `copy` in a map of copies of `copy_nodes`.
#[inline(always)]
pub const fn copy_base(copy: u32, copy_nodes: u32) -> u32 {
    (copy & 1) * copy_nodes
}

#[cfg(feature = "std")]
mod build {
    use std::{vec, vec::Vec};

    use super::*;

    /// One copy of the trie, as built: `nodes[i]` is node `base + i`.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Built {
        /// The copy's first node in the map.
        pub base: u32,
        /// The root's nodes, then the others in the order made.
        pub nodes: Vec<Node>,
        /// Slots that ask the LPM trie because the copy was full (not for
        /// prefixes longer than [`TRIE_BITS`]).
        pub overflowed: usize,
    }

    /// Byte `i` of `addr`, as an index.
    fn byte(addr: &[u8; 16], i: usize) -> usize {
        usize::from(addr[i])
    }

    /// Builds the trie of `prefixes` (length 1..=127, address, word) for
    /// the copy whose first node is `base`, with at most `capacity` nodes.
    /// Deterministic: the same set gives the same nodes.
    pub fn build(prefixes: &[(u8, [u8; 16], u32)], base: u32, capacity: u32) -> Built {
        let mut list: Vec<(u8, [u8; 16], u32)> = prefixes.to_vec();
        // Shorter first: a longer prefix overwrites the part of a shorter
        // one it covers, and a node made for it inherits the word of the
        // slot it hangs from. A slot that a prefix covers never has a
        // child yet: children come from longer prefixes, later.
        list.sort_unstable();
        let mut nodes: Vec<Node> = vec![[0; NODE_SLOTS]; ROOT_NODES as usize];
        let mut overflowed = 0;
        for (len, addr, word) in list {
            // (node, first slot byte, bits the node's level ends at).
            let (mut node, mut at, mut end) = (byte(&addr, 0), 1usize, 16u8);
            loop {
                if len <= end {
                    let span = 1usize << (end - len);
                    if end == 16 {
                        // The root is one table of 2^16 slots over its nodes.
                        let first = byte(&addr, 0) << 8 | byte(&addr, 1);
                        for v in first..first + span {
                            nodes[v >> 8][v & 0xff] = word;
                        }
                    } else {
                        let first = byte(&addr, at);
                        for s in &mut nodes[node][first..first + span] {
                            *s = word;
                        }
                    }
                    break;
                }
                let slot = nodes[node][byte(&addr, at)];
                if slot & SLOT_ASK != 0 {
                    break;
                }
                if slot & SLOT_CHILD != 0 {
                    node = ((slot & !SLOT_CHILD) - base) as usize;
                } else if end >= TRIE_BITS {
                    nodes[node][byte(&addr, at)] = SLOT_ASK;
                    break;
                } else if nodes.len() as u32 >= capacity {
                    nodes[node][byte(&addr, at)] = SLOT_ASK;
                    overflowed += 1;
                    break;
                } else {
                    // Leaf-pushed: the new node's slots inherit the word.
                    let child = nodes.len();
                    nodes.push([slot; NODE_SLOTS]);
                    nodes[node][byte(&addr, at)] = SLOT_CHILD | (base + child as u32);
                    node = child;
                }
                at += 1;
                end += 8;
            }
        }
        Built {
            base,
            nodes,
            overflowed,
        }
    }

    impl Built {
        /// The slot the data plane ends at for `addr`: a word (0: none) or
        /// [`SLOT_ASK`]. As the program walks it.
        pub fn lookup(&self, addr: &[u8; 16]) -> u32 {
            let mut slot = self.nodes[byte(addr, 0)][byte(addr, 1)];
            for level in 0..LEVELS {
                if slot & SLOT_CHILD == 0 {
                    return slot;
                }
                let Some(n) = self
                    .nodes
                    .get(((slot & !SLOT_CHILD).wrapping_sub(self.base)) as usize)
                else {
                    return SLOT_ASK;
                };
                slot = n[byte(addr, 2 + level)];
            }
            if slot & SLOT_CHILD != 0 {
                SLOT_ASK
            } else {
                slot
            }
        }
    }
}

#[cfg(feature = "std")]
pub use build::{Built, build};

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use super::*;

    /// The longest of `prefixes` that covers `addr`: the rule.
    fn longest(prefixes: &[(u8, [u8; 16], u32)], addr: &[u8; 16]) -> u32 {
        let a = u128::from_be_bytes(*addr);
        prefixes
            .iter()
            .filter(|(len, p, _)| {
                let mask = u128::MAX << (128 - u32::from(*len));
                a & mask == u128::from_be_bytes(*p)
            })
            .max_by_key(|(len, _, _)| *len)
            .map_or(0, |(_, _, w)| *w)
    }

    /// A small xorshift, for reproducible sets.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn prefix(bits: u128, len: u8) -> [u8; 16] {
        (bits & (u128::MAX << (128 - u32::from(len)))).to_be_bytes()
    }

    /// Random nested sets of many lengths, addresses near their edges:
    /// the trie answers as the rule, or asks where the rule may be longer
    /// than the trie holds.
    #[test]
    fn answers_the_longest_match_or_asks() {
        let lens = [
            1u8, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 47, 48, 56, 63, 64, 65, 96, 127,
        ];
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for round in 0..40 {
            let base_bits = (0x2001_0db8u128 << 96) | u128::from(rng.next() as u16) << 80;
            let mut set: Vec<(u8, [u8; 16], u32)> = Vec::new();
            for i in 0..60 {
                let len = lens[(rng.next() % lens.len() as u64) as usize];
                let bits = base_bits
                    ^ (u128::from(rng.next()) << 64 | u128::from(rng.next()))
                        >> (rng.next() % 64 + 16);
                let p = prefix(bits, len);
                if set.iter().any(|(l, a, _)| *l == len && *a == p) {
                    continue;
                }
                set.push((len, p, (i + 1) as u32 | ((i % 3) as u32) << 16));
            }
            // A small capacity in some rounds: the overflow asks.
            let cap = if round % 4 == 0 {
                ROOT_NODES + 5
            } else {
                COPY_NODES
            };
            let t = build(&set, copy_base(1, COPY_NODES), cap);
            for (len, p, _) in &set {
                let a = u128::from_be_bytes(*p);
                let host = if *len == 128 { 0 } else { u128::MAX >> len };
                for probe in [
                    a,
                    a | host,
                    a.wrapping_sub(1),
                    (a | host).wrapping_add(1),
                    a ^ 1,
                ] {
                    let addr = probe.to_be_bytes();
                    let want = longest(&set, &addr);
                    match t.lookup(&addr) {
                        SLOT_ASK => {}
                        got => assert_eq!(got, want, "{addr:?} in {set:?}"),
                    }
                }
            }
        }
    }

    /// The benchmark's sets fit a copy, the default's and the one of a
    /// table of 10,000 prefixes: 10,000 prefixes over one /32, of 10
    /// lengths (/33 to /64) and of 17 (/48 to /64).
    #[test]
    fn ten_thousand_prefixes_over_a_32_fit_a_copy() {
        for lens in [
            &[33u8, 36, 40, 44, 48, 52, 56, 60, 63, 64][..],
            &[
                48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64,
            ][..],
        ] {
            let mut set = std::collections::BTreeSet::new();
            let mut i = 0u128;
            while set.len() < 10_000 {
                let len = lens[(i % lens.len() as u128) as usize];
                let bits = (0x2001_0db8u128 << 96) | ((i * 0x9e37_79b9) & 0xffff_ffff) << 64;
                set.insert((len, prefix(bits, len), 1));
                i += 1;
            }
            let set: Vec<_> = set.into_iter().collect();
            for cap in [COPY_NODES, copy_nodes(10_000)] {
                let t = build(&set, 0, cap);
                std::println!("{} lengths: {} nodes of {cap}", lens.len(), t.nodes.len());
                assert_eq!(t.overflowed, 0, "{} nodes", t.nodes.len());
            }
        }
    }

    /// The copy follows the prefix table: the default's is the largest,
    /// small tables get small copies, never less than the root and as
    /// many again; the map's size gives the copy back.
    #[test]
    fn the_copy_follows_the_prefix_table() {
        assert_eq!(copy_nodes(crate::MAX_ANYCAST_PREFIXES), COPY_NODES);
        assert_eq!(copy_nodes(u32::MAX), COPY_NODES);
        assert_eq!(copy_nodes(10_000), 15_256);
        assert_eq!(copy_nodes(1_000), 1_756);
        assert_eq!(copy_nodes(1), MIN_COPY_NODES);
        for n in [1, 1_000, 10_000, crate::MAX_ANYCAST_PREFIXES] {
            assert_eq!(
                copy_nodes_of_map(COPIES * copy_nodes(n)),
                Some(copy_nodes(n))
            );
        }
        assert_eq!(copy_nodes_of_map(2 * COPY_NODES + 2), None);
        assert_eq!(copy_nodes_of_map(3), None);
        assert_eq!(copy_base(1, 1_756), 1_756);
        assert_eq!(copy_base(2, 1_756), 0);
    }

    /// Only prefixes longer than the trie holds, or a full copy, ask.
    #[test]
    fn asks_only_past_its_depth_or_capacity() {
        let a = prefix(0x2001_0db8_0001u128 << 80, 48);
        let b = prefix(0x2001_0db8_0001_0002_0003u128 << 48, 80);
        let t = build(&[(48, a, 7), (80, b, 9)], 0, COPY_NODES);
        assert_eq!(t.lookup(&a), 7);
        assert_eq!(t.lookup(&b), SLOT_ASK);
        assert_eq!(t.lookup(&[0xfd; 16]), 0);
        assert_eq!(t.overflowed, 0);
        let full = build(&[(48, a, 7)], 0, ROOT_NODES + 2);
        assert_eq!(full.lookup(&a), SLOT_ASK);
        assert_eq!(full.overflowed, 1);
    }
}
