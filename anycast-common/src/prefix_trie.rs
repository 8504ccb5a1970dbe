//! The prefix trie the data plane reads: a multibit trie in one array map
//! (`PREFIX_NODES`), so that each level costs one array read, which the
//! verifier inlines into pointer arithmetic.
//!
//! Shape: a node is 256 slots ([`Node`]), indexed by one byte of the
//! address. The root is the first [`ROOT_NODES`] nodes of a copy, indexed
//! by the address's first byte (node) and second byte (slot): a direct
//! table of the first 16 bits. Below it, nodes take bytes 2..8, at most
//! [`LEVELS`] on a path, so the trie ends at bit 64. A slot is
//! - a word (`AddrValue::word`, 0: no prefix): the answer, leaf-pushed (a
//!   slot holds the longest prefix that covers all of it, a child's slots
//!   inherit their parent slot's word),
//! - [`SLOT_CHILD`] | the byte its node takes | node: read that node's
//!   slot for that byte. Path compression: a level whose node would have
//!   one child and no prefix ending in it is left out, so a child slot may
//!   name a byte past the next ([`SLOT_SKIP`]); the walk then checks the
//!   skipped bytes against the node's `path`, and an address off it gets
//!   the node's `word` (what the skipped slots would have held),
//! - [`SLOT_ASK`]: the trie does not hold this part of the address space
//!   (prefixes longer than /64, or nodes past the copy's capacity): the
//!   LPM trie (`ANYCAST_PREFIX`, which holds every prefix) answers.
//!
//! So an address in no /16 holding a prefix is answered by one read, and
//! one in a prefix by one read more for each byte past the second where
//! the set's prefixes part or end on its path: a lone /64 takes two, a
//! /64 among the bench's 10,000 spread over a /32 four, any at most
//! seven; and the answer is always the longest match (the LPM trie's own
//! when the slot says ask).
//!
//! Two copies ([`COPIES`]), each [`copy_nodes`] of the prefix table's
//! capacity (at most [`COPY_NODES`], chosen when the state is created with
//! `--max-prefixes`; the data plane is given it at load time, userspace
//! takes it from the map's size): userspace rebuilds
//! the copy the data plane does not read, then flips `Settings::prefix_copy`
//! (one byte) to it. A packet reads the settings once, so it sees one whole
//! copy; before userspace writes a copy again it waits until every program
//! run under way has ended (an RCU grace period, `anycast::quiesce`), so
//! no packet that read the settings before the flip still walks it.

/// Slots of a node: one per value of an address byte.
pub const NODE_SLOTS: usize = 256;

/// A node: [`NODE_SLOTS`] slots (1 KiB) and what the walk checks the
/// address against when a child slot reaches the node past skipped levels
/// ([`SLOT_SKIP`]; 16 bytes, 0 in the root's nodes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Node {
    /// One per value of the address byte the node takes.
    pub slots: [u32; NODE_SLOTS],
    /// The address bytes before the one the node takes (its first 8
    /// bytes as a big-endian number, the node's byte and those after it
    /// 0): an address under the node has them all.
    pub path: u64,
    /// The word (0: none) of an address that leaves `path` in the
    /// skipped bytes: the word of the slot the node hangs from, which
    /// every slot of the skipped levels would have held.
    pub word: u32,
    /// Padding, 0.
    pub pad: u32,
}
const _: () = assert!(core::mem::size_of::<Node>() == 1040);

impl Node {
    /// A node whose every slot is `slot`, with no path.
    pub const fn filled(slot: u32) -> Self {
        Node {
            slots: [slot; NODE_SLOTS],
            path: 0,
            word: 0,
            pad: 0,
        }
    }
}

/// Nodes of the root of a copy (indexed by the address's first byte).
pub const ROOT_NODES: u32 = 256;
/// Levels of nodes below the root: bytes 2..8 of the address.
pub const LEVELS: usize = 6;
/// Bits the root and the levels take: prefixes longer than this are left
/// to the LPM trie (a [`SLOT_ASK`] where they would need a deeper node).
pub const TRIE_BITS: u8 = 16 + 8 * LEVELS as u8;
/// Most nodes of one copy, the root's included: 16 MiB of slots, the copy
/// of the default prefix table ([`crate::MAX_ANYCAST_PREFIXES`]). Enough
/// for thousands of prefixes; past a copy's nodes, the subtrees that do
/// not fit ask the LPM trie.
pub const COPY_NODES: u32 = 1 << 14;
/// Fewest nodes of one copy: the root and as many again.
pub const MIN_COPY_NODES: u32 = 2 * ROOT_NODES;
/// Copies: one the data plane reads, one userspace rebuilds.
pub const COPIES: u32 = 2;
/// Nodes of the map of the default prefix table (the largest map).
pub const PREFIX_NODES: u32 = COPY_NODES * COPIES;
/// A slot that points at a node: the node's index in the map (both copies
/// counted) in [`SLOT_NODE`], the address byte it takes in [`SLOT_AT_SHIFT`].
pub const SLOT_CHILD: u32 = 1 << 31;
/// A slot whose addresses the LPM trie answers.
pub const SLOT_ASK: u32 = 1 << 30;
/// With [`SLOT_CHILD`]: the node takes a byte past the next one (the
/// levels between had one child each, and were left out): the walk checks
/// the address against the node's `path` first.
pub const SLOT_SKIP: u32 = 1 << 29;
/// Where a child slot holds the address byte its node takes (2..=7).
pub const SLOT_AT_SHIFT: u32 = 26;
/// The bits of a child slot that hold its node's index.
pub const SLOT_NODE: u32 = (1 << SLOT_AT_SHIFT) - 1;

/// The slot that points at node `node`, which takes address byte `at`
/// (2..=7), from a slot of the node of byte `from` (1: the root).
pub const fn child_slot(node: u32, at: usize, from: usize) -> u32 {
    let skip = if at > from + 1 { SLOT_SKIP } else { 0 };
    SLOT_CHILD | skip | (at as u32) << SLOT_AT_SHIFT | node
}

/// How far right the first 8 bytes of an address (a big-endian number)
/// shift to bring the byte that child slot `slot`'s node takes to the low
/// byte.
#[inline(always)]
pub const fn slot_shift(slot: u32) -> u32 {
    8 * (7 - ((slot >> SLOT_AT_SHIFT) & 7))
}

// A word never has the flag bits set: group below 2^16, scope below 2^14.
const _: () = assert!(crate::MAX_GROUPS <= 1 << 16);
const _: () = assert!(crate::MAX_SCOPES <= 1 << 14);
// Child indices fit under the byte, the byte (at most 7) under the flags.
const _: () = assert!(PREFIX_NODES <= SLOT_NODE);
const _: () = assert!(7 << SLOT_AT_SHIFT < SLOT_SKIP);

/// Nodes of one copy for a prefix table of `max_prefixes` entries (the
/// one place that says it): the root, a node and a half per prefix,
/// between [`MIN_COPY_NODES`] and [`COPY_NODES`]. A prefix of /24 to /64
/// makes at most one node per level it goes past the root, but prefixes
/// that share a /24../56 share those nodes, and levels with one child
/// take none: the benchmark's 10,000 prefixes over one /32 of 10 lengths
/// take 7,472 nodes (of 17 lengths, 9,924), within the 15,256 of 10,000;
/// the default table (65,536) gets the largest copy (16,384), 1,000
/// prefixes get 1,756 (1.7 MiB). A set that needs more than its copy
/// holds is only slower (its last subtrees ask the LPM trie), never
/// wrong.
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

    /// A prefix as the builder takes it: the first 8 bytes of its address
    /// (a big-endian number), its length, its word.
    #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    struct Prefix {
        top: u64,
        len: u8,
        word: u32,
    }

    impl Prefix {
        /// Byte `i` (0..8) of the address, as an index.
        fn byte(&self, i: usize) -> usize {
            (self.top >> (56 - 8 * i)) as usize & 0xff
        }
    }

    /// Fills `slots[first..first + span]` of a node that takes bits
    /// `end - 8..end` with the word of a prefix that ends in it.
    fn fill(slots: &mut [u32], p: &Prefix, first: usize, end: u8) {
        let span = 1usize << (end - p.len);
        let first = first & !(span - 1);
        for s in &mut slots[first..first + span] {
            *s = p.word;
        }
    }

    struct Builder {
        base: u32,
        capacity: u32,
        nodes: Vec<Node>,
        overflowed: usize,
    }

    impl Builder {
        /// The slot, of the node of byte `from` (1: the root), of the
        /// prefixes `group` (sorted by address, then length), all longer
        /// than `8 * (from + 1)` bits and alike in their bytes up to
        /// `from`, whose slot holds `word` from shorter prefixes: a child
        /// that takes the first byte where they differ or one of them
        /// ends (the levels before it have one child each and are left
        /// out), or [`SLOT_ASK`] when the copy is full.
        fn subtree(&mut self, group: &[Prefix], from: usize, word: u32) -> u32 {
            let first = group[0];
            let mut at = from + 1;
            while at < 7
                && group
                    .iter()
                    .all(|p| usize::from(p.len) > 8 * (at + 1) && p.byte(at) == first.byte(at))
            {
                at += 1;
            }
            if self.nodes.len() as u32 >= self.capacity {
                self.overflowed += 1;
                return SLOT_ASK;
            }
            let i = self.nodes.len();
            let end = 8 * (at as u8 + 1);
            let mut node = Node::filled(word);
            node.path = first.top & !(u64::MAX >> (8 * at));
            node.word = word;
            // Shorter first: a longer prefix overwrites the part of a
            // shorter one it covers.
            let mut ending: Vec<&Prefix> = group.iter().filter(|p| p.len <= end).collect();
            ending.sort_by_key(|p| p.len);
            for p in ending {
                fill(&mut node.slots, p, p.byte(at), end);
            }
            let deeper: Vec<Prefix> = group.iter().filter(|p| p.len > end).copied().collect();
            self.nodes.push(node);
            for run in deeper.chunk_by(|a, b| a.byte(at) == b.byte(at)) {
                let b = run[0].byte(at);
                let slot = if end >= TRIE_BITS {
                    SLOT_ASK
                } else {
                    let inherited = self.nodes[i].slots[b];
                    self.subtree(run, at, inherited)
                };
                self.nodes[i].slots[b] = slot;
            }
            child_slot(self.base + i as u32, at, from)
        }
    }

    /// Builds the trie of `prefixes` (length 1..=127, address, word) for
    /// the copy whose first node is `base`, with at most `capacity` nodes.
    /// Deterministic: the same set gives the same nodes.
    pub fn build(prefixes: &[(u8, [u8; 16], u32)], base: u32, capacity: u32) -> Built {
        let mut list: Vec<Prefix> = prefixes
            .iter()
            .map(|(len, addr, word)| {
                let mut top = [0; 8];
                top.copy_from_slice(&addr[..8]);
                Prefix {
                    top: u64::from_be_bytes(top),
                    len: *len,
                    word: *word,
                }
            })
            .collect();
        // By address: the prefixes under a slot are a run. Shorter first
        // among equals.
        list.sort_unstable();
        let mut b = Builder {
            base,
            capacity,
            nodes: vec![Node::filled(0); ROOT_NODES as usize],
            overflowed: 0,
        };
        // The root is one table of 2^16 slots over its nodes.
        let mut root: Vec<&Prefix> = list.iter().filter(|p| p.len <= 16).collect();
        root.sort_by_key(|p| p.len);
        for p in root {
            let span = 1usize << (16 - p.len);
            let first = (p.top >> 48) as usize & !(span - 1);
            for v in first..first + span {
                b.nodes[v >> 8].slots[v & 0xff] = p.word;
            }
        }
        let deeper: Vec<Prefix> = list.iter().filter(|p| p.len > 16).copied().collect();
        for run in deeper.chunk_by(|a, b| a.top >> 48 == b.top >> 48) {
            let v = (run[0].top >> 48) as usize;
            let inherited = b.nodes[v >> 8].slots[v & 0xff];
            let slot = b.subtree(run, 1, inherited);
            b.nodes[v >> 8].slots[v & 0xff] = slot;
        }
        Built {
            base,
            nodes: b.nodes,
            overflowed: b.overflowed,
        }
    }

    impl Built {
        /// The slot the data plane ends at for `addr`: a word (0: none) or
        /// [`SLOT_ASK`]. As the program walks it.
        pub fn lookup(&self, addr: &[u8; 16]) -> u32 {
            self.walk(addr).0
        }

        /// [`Self::lookup`]'s slot, and the nodes it read (the root's
        /// included): the program's dependent reads.
        pub fn walk(&self, addr: &[u8; 16]) -> (u32, usize) {
            let mut top = [0; 8];
            top.copy_from_slice(&addr[..8]);
            let bytes = u64::from_be_bytes(top);
            let mut slot = self.nodes[usize::from(addr[0])].slots[usize::from(addr[1])];
            for level in 0..LEVELS {
                let reads = level + 1;
                if slot & SLOT_CHILD == 0 {
                    return (slot, reads);
                }
                let Some(n) = self
                    .nodes
                    .get(((slot & SLOT_NODE).wrapping_sub(self.base)) as usize)
                else {
                    return (SLOT_ASK, reads);
                };
                let shift = slot_shift(slot);
                if slot & SLOT_SKIP != 0 && (bytes ^ n.path) >> shift > 0xff {
                    return (n.word, reads + 1);
                }
                slot = n.slots[(bytes >> shift) as usize & 0xff];
            }
            let slot = if slot & SLOT_CHILD != 0 {
                SLOT_ASK
            } else {
                slot
            };
            (slot, LEVELS + 1)
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
                // The edges, and one bit off in each byte of the first
                // eight (off a skipped level's path, or off the prefix).
                let edges = [
                    a,
                    a | host,
                    a.wrapping_sub(1),
                    (a | host).wrapping_add(1),
                    a ^ 1,
                ];
                let off = (0..8).map(|byte| a ^ 1u128 << (120 - 8 * byte + byte % 8));
                for probe in edges.into_iter().chain(off) {
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
    /// lengths (/33 to /64) and of 17 (/48 to /64); a walk to any of them
    /// reads at most four nodes.
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
                // Path compression: under the /32's two skipped levels
                // the bytes 4 and 5 branch, and below them most /48s hold
                // one prefix: four reads at most, where each byte took
                // one (seven for a /64).
                let mut most = std::collections::BTreeMap::<u8, usize>::new();
                for (len, p, word) in &set {
                    let (slot, reads) = t.walk(p);
                    assert_eq!(slot, *word);
                    let m = most.entry(*len).or_default();
                    *m = (*m).max(reads);
                }
                std::println!("most reads by length: {most:?}");
                assert!(most.values().all(|r| *r <= 4), "{most:?}");
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

    /// Levels with one child are left out: a lone /64 is one node below
    /// the root, reached past five levels; under a /32 the /64 takes the
    /// /32's node and one more. Off the skipped path an address gets the
    /// word from above, on it the prefix's.
    #[test]
    fn single_child_levels_are_skipped() {
        let p64 = prefix(0x2001_0db8_0001_0002u128 << 64, 64);
        let p32 = prefix(0x2001_0db8u128 << 96, 32);
        let lone = build(&[(64, p64, 9)], 0, COPY_NODES);
        assert_eq!(lone.nodes.len(), ROOT_NODES as usize + 1);
        assert_eq!(lone.nodes[0x20].slots[0x01], child_slot(ROOT_NODES, 7, 1));
        let below = &lone.nodes[ROOT_NODES as usize];
        assert_eq!(below.path, 0x2001_0db8_0001_0000);
        assert_eq!(below.word, 0);
        let t = build(&[(64, p64, 9), (32, p32, 5)], 0, COPY_NODES);
        assert_eq!(t.nodes.len(), ROOT_NODES as usize + 2);
        let (n32, n64) = (ROOT_NODES, ROOT_NODES + 1);
        assert_eq!(t.nodes[0x20].slots[0x01], child_slot(n32, 3, 1));
        assert_eq!(t.nodes[0x20].slots[0x01] & SLOT_SKIP, SLOT_SKIP);
        assert_eq!(t.nodes[n32 as usize].slots[0xb8], child_slot(n64, 7, 3));
        assert_eq!(t.nodes[n64 as usize].word, 5);
        let at = |bits: u128| (bits << 64).to_be_bytes();
        for (tree, outside) in [(&lone, 0), (&t, 5)] {
            assert_eq!(tree.lookup(&at(0x2001_0db8_0001_0002)), 9);
            assert_eq!(
                tree.lookup(&(u128::from_be_bytes(p64) | 7).to_be_bytes()),
                9
            );
            // A bit off in each skipped byte, and in the last.
            for off in [0x0000_0000_0100_0000, 0x1_0000, 0x100, 0x2] {
                assert_eq!(tree.lookup(&at(0x2001_0db8_0001_0002 ^ off)), outside);
            }
        }
        assert_eq!(t.lookup(&at(0x2001_0db9_0001_0002)), 0);
        assert_eq!(lone.lookup(&at(0x2001_0db9_0001_0002)), 0);
        // A level with two children stays: two /64s that part in byte 6.
        let q64 = prefix(0x2001_0db8_0001_0102u128 << 64, 64);
        let two = build(&[(64, p64, 9), (64, q64, 8)], 0, COPY_NODES);
        assert_eq!(two.nodes.len(), ROOT_NODES as usize + 3);
        assert_eq!(two.nodes[0x20].slots[0x01], child_slot(ROOT_NODES, 6, 1));
        assert_eq!(
            two.nodes[ROOT_NODES as usize].slots[0x01] & SLOT_SKIP,
            0,
            "the /64s' nodes follow their parent"
        );
        assert_eq!(two.lookup(&q64), 8);
        assert_eq!(two.lookup(&p64), 9);
        assert_eq!(two.lookup(&at(0x2001_0db8_0001_0202)), 0);
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
        // Each /48 takes one node past the root: a copy of one node past
        // the root has room for the first only.
        let c = prefix(0x2002_0db8_0001u128 << 80, 48);
        let full = build(&[(48, a, 7), (48, c, 8)], 0, ROOT_NODES + 1);
        assert_eq!(full.lookup(&a), 7);
        assert_eq!(full.lookup(&c), SLOT_ASK);
        assert_eq!(full.overflowed, 1);
        let none = build(&[(48, a, 7)], 0, ROOT_NODES);
        assert_eq!(none.lookup(&a), SLOT_ASK);
        assert_eq!(none.overflowed, 1);
    }
}
