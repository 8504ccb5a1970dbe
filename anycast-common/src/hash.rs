//! The flow hash that spreads flows over the members tied at the nearest
//! metric. Shared, bit for bit, by the XDP program and the reference model.
//!
//! The flow key: for TCP, UDP and SCTP packets that are not fragments, the
//! source, the destination, the protocol and the ports. For everything else
//! (fragments of any kind, protocols without ports) the source, the
//! destination and the flow label, so that every fragment of a datagram
//! hashes alike. TCP is never keyed on the flow label: Linux changes a
//! socket's flow label after a retransmission timeout.

/// Seed of the hash.
const SEED: u32 = 0x9e37_79b9;
/// Marks a key built from the flow label, so it never equals a ports key.
const LABEL_TAG: u32 = 1 << 24;

/// One round of murmur3's block mix.
#[inline(always)]
pub const fn mix(h: u32, w: u32) -> u32 {
    let k = w
        .wrapping_mul(0xcc9e_2d51)
        .rotate_left(15)
        .wrapping_mul(0x1b87_3593);
    (h ^ k)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

/// murmur3's finaliser: every input bit affects every output bit.
#[inline(always)]
pub const fn finish(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The last two words of the key: `(protocol, ports)` when the packet has
/// ports and is not a fragment, else `(tagged flow label, 0)`.
#[inline(always)]
pub const fn key_tail(proto: u8, ports: Option<[u8; 4]>, flow_label: u32) -> [u32; 2] {
    match ports {
        Some(p) => [proto as u32, u32::from_be_bytes(p)],
        None => [LABEL_TAG | (flow_label & 0x000f_ffff), 0],
    }
}

/// Hash of a flow key given as the address words (big-endian reads of
/// source then destination) and the tail from [`key_tail`].
#[inline(always)]
pub const fn flow_hash(addrs: [u32; 8], tail: [u32; 2]) -> u32 {
    let mut h = SEED;
    let mut i = 0;
    while i < 8 {
        h = mix(h, addrs[i]);
        i += 1;
    }
    h = mix(h, tail[0]);
    h = mix(h, tail[1]);
    finish(h ^ 40)
}

/// The address words of a source and destination, as [`flow_hash`] takes them.
pub const fn addr_words(src: &[u8; 16], dst: &[u8; 16]) -> [u32; 8] {
    let mut w = [0u32; 8];
    let mut i = 0;
    while i < 4 {
        w[i] = u32::from_be_bytes([src[4 * i], src[4 * i + 1], src[4 * i + 2], src[4 * i + 3]]);
        w[i + 4] = u32::from_be_bytes([dst[4 * i], dst[4 * i + 1], dst[4 * i + 2], dst[4 * i + 3]]);
        i += 1;
    }
    w
}

/// The prefilter bucket of `addr` cut to its first `len` bits (128: the
/// whole address). An address is anycast only if the bucket of the address
/// itself, or of the address cut to one of the configured prefix lengths,
/// counts at least one entry: most non-anycast packets are told apart by
/// two array reads instead of two hash-map lookups. The hash is a few
/// multiplies (it is on every packet's path); a collision only costs the
/// full lookup.
#[inline(always)]
pub const fn prefilter_bucket(words: [u32; 4], len: u8) -> u32 {
    const K: [u32; 4] = [0x9e37_79b1, 0x85eb_ca77, 0xc2b2_ae3d, 0x27d4_eb2f];
    let mut h = (len as u32).wrapping_mul(0x1656_67b1);
    let mut i = 0;
    while i < 4 {
        let bits = (len as i32) - 32 * i as i32;
        let w = if bits <= 0 {
            0
        } else if bits >= 32 {
            words[i]
        } else {
            words[i] & (u32::MAX << (32 - bits))
        };
        h ^= w.wrapping_mul(K[i]);
        i += 1;
    }
    h ^= h >> 15;
    h = h.wrapping_mul(0x2c1b_3c6d);
    h ^= h >> 13;
    h & (crate::PREFILTER_BUCKETS - 1)
}

/// The slot of the exact-address index ([`crate::ExactSlot`]) of an address.
#[inline(always)]
pub const fn exact_slot(words: [u32; 4]) -> u32 {
    // The prefilter's mixing for a /128; no larger than its buckets.
    const _: () = assert!(crate::EXACT_INDEX_SLOTS <= crate::PREFILTER_BUCKETS);
    prefilter_bucket(words, 128) & (crate::EXACT_INDEX_SLOTS - 1)
}

/// An address as the four big-endian words [`prefilter_bucket`] takes.
#[inline(always)]
pub const fn words(a: &[u8; 16]) -> [u32; 4] {
    [
        u32::from_be_bytes([a[0], a[1], a[2], a[3]]),
        u32::from_be_bytes([a[4], a[5], a[6], a[7]]),
        u32::from_be_bytes([a[8], a[9], a[10], a[11]]),
        u32::from_be_bytes([a[12], a[13], a[14], a[15]]),
    ]
}
