//! The flow hash that spreads flows over the members tied at the nearest
//! metric. Shared, bit for bit, by the XDP program and the reference model.
//!
//! The flow key: for TCP, UDP and SCTP packets that are not fragments, the
//! source, the destination, the protocol and the ports. For everything else
//! (fragments of any kind, protocols without ports) the source, the
//! destination and the flow label, so that every fragment of a datagram
//! hashes alike. TCP is never keyed on the flow label: Linux changes a
//! socket's flow label after a retransmission timeout.

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

/// A 64-bit hash of an address, given as its four native-endian words
/// ([`native_words`]: what the data plane loads from the packet, with no
/// byte swaps; both sides run in the same kernel's byte order): two
/// multiplies. Not mixed on its own: [`exact_bucket_of`] and [`flow_hash`]
/// finish it. The data plane computes it where it needs it: for the index,
/// only for an address the /16 filter lets through; for the flow, for both
/// addresses of a packet it steers.
#[inline(always)]
pub const fn addr_hash(w: [u32; 4]) -> u64 {
    let hi = ((w[0] as u64) << 32) | w[1] as u64;
    let lo = ((w[2] as u64) << 32) | w[3] as u64;
    hi.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ lo.wrapping_mul(0xc2b2_ae3d_27d4_eb4f).rotate_left(32)
}

/// murmur3's 64-bit finaliser: every input bit affects every output bit.
#[inline(always)]
const fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Hash of a flow key: the [`addr_hash`]es of its source and destination
/// and the tail from [`key_tail`]. Three multiplies on top of the address
/// hashes (two each), where hashing the ten words of the key anew took
/// thirty: a third of the redirect path's time.
#[inline(always)]
pub const fn flow_hash(src_hash: u64, dst_hash: u64, tail: [u32; 2]) -> u32 {
    let t = ((tail[0] as u64) << 32) | tail[1] as u64;
    let h = src_hash ^ dst_hash.rotate_left(21) ^ t.wrapping_mul(0x1656_67b1_9e37_79f9);
    (fmix64(h) >> 32) as u32
}

/// The address hashes of a source and destination, as [`flow_hash`] takes them.
pub const fn addr_hashes(src: &[u8; 16], dst: &[u8; 16]) -> (u64, u64) {
    (addr_hash(native_words(src)), addr_hash(native_words(dst)))
}

/// An address as the four native-endian words [`addr_hash`] takes.
#[inline(always)]
pub const fn native_words(a: &[u8; 16]) -> [u32; 4] {
    [
        u32::from_ne_bytes([a[0], a[1], a[2], a[3]]),
        u32::from_ne_bytes([a[4], a[5], a[6], a[7]]),
        u32::from_ne_bytes([a[8], a[9], a[10], a[11]]),
        u32::from_ne_bytes([a[12], a[13], a[14], a[15]]),
    ]
}

/// The bucket of the exact-address index ([`crate::ExactBucket`]) of an
/// address, in an index of 2^`bits` buckets.
#[inline(always)]
pub const fn exact_bucket(addr: &[u8; 16], bits: u32) -> u32 {
    exact_bucket_of(addr_hash(native_words(addr)), bits)
}

/// The bucket of the exact-address index of 2^`bits` buckets (1 to 32
/// bits, see [`crate::exact_index_bits`]) of an address, from its
/// [`addr_hash`]: the top bits of one more multiply (they depend on every
/// input bit). The shift wraps rather than overflows: other bits give a
/// wrong bucket, never a panic.
#[inline(always)]
pub const fn exact_bucket_of(addr_hash: u64, bits: u32) -> u32 {
    (addr_hash
        .wrapping_mul(0xd6e8_feb8_6659_fd93)
        .wrapping_shr(64u32.wrapping_sub(bits))) as u32
}

/// The slot of a CPU's outer sources (see [`crate::SOURCE_SLOTS`]) of the
/// member at `w` (native words): every address bit counts, so members
/// numbered in any of the address's groups spread over the slots.
#[inline(always)]
pub const fn source_slot(w: [u32; 4]) -> u32 {
    exact_bucket_of(addr_hash(w), crate::SOURCE_SLOT_BITS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{collections::HashSet, vec};

    /// An address as four big-endian words (the tests vary the last).
    fn words(a: &[u8; 16]) -> [u32; 4] {
        native_words(a).map(u32::from_be)
    }

    /// Chi-square of `n` flows spread over `buckets` by `f`.
    fn chi_square(buckets: usize, n: u32, f: impl Fn(u32) -> usize) -> f64 {
        let mut count = vec![0u32; buckets];
        for i in 0..n {
            count[f(i)] += 1;
        }
        let expected = f64::from(n) / buckets as f64;
        count
            .iter()
            .map(|&c| (f64::from(c) - expected).powi(2) / expected)
            .sum()
    }

    #[test]
    fn flows_that_differ_in_one_field_spread_evenly() {
        let client = words(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
        let server = addr_hash(words(&[
            0x20, 0x01, 0x0d, 0xb8, 0, 0xa, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53,
        ]));
        // 1021 buckets (the default Maglev table), 200k flows; a fair split
        // has a chi-square of 1020 +- 45: 1300 is six deviations out.
        let (buckets, n) = (1021usize, 200_000u32);
        let by_port = chi_square(buckets, n, |i| {
            let ports = ((20_000 + i % 40_000) << 16) | 53;
            let tail = key_tail(17, Some(ports.to_be_bytes()), 0);
            flow_hash(
                addr_hash([client[0], client[1], client[2], i / 40_000]),
                server,
                tail,
            ) as usize
                % buckets
        });
        let by_source = chi_square(buckets, n, |i| {
            let src = addr_hash([client[0], client[1], client[2], client[3] + i]);
            flow_hash(src, server, key_tail(17, Some([0x9c, 0x40, 0, 53]), 0)) as usize % buckets
        });
        let by_label = chi_square(buckets, n, |i| {
            flow_hash(addr_hash(client), server, key_tail(58, None, i)) as usize % buckets
        });
        for (what, x) in [
            ("port", by_port),
            ("source", by_source),
            ("label", by_label),
        ] {
            assert!(x < 1300.0, "flows by {what}: chi-square {x:.0}");
        }
    }

    #[test]
    fn the_index_follows_the_table_size() {
        use crate::{EXACT_INDEX_BUCKETS, exact_index_bits, exact_index_buckets};
        assert_eq!(EXACT_INDEX_BUCKETS, 1 << 20, "the default is unchanged");
        for (addresses, buckets) in [
            (1, 1 << 10),
            (1000, 1 << 10),
            (1025, 1 << 11),
            (1 << 20, 1 << 20),
            ((1 << 20) + 1, 1 << 21),
            (4_000_000, 1 << 22),
            (u32::MAX, 1 << 24),
        ] {
            assert_eq!(exact_index_buckets(addresses), buckets, "{addresses}");
        }
        assert_eq!(exact_index_bits(1 << 10), Some(10));
        assert_eq!(exact_index_bits(1000), None);
        assert_eq!(exact_index_bits(1), None);
        // Every bucket is in its index, and a small index is used whole.
        let base = words(&[0x20, 0x01, 0x0d, 0xb8, 0, 0x5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        for bits in [1, 10, 20, 24, 32] {
            let mut seen = HashSet::new();
            for i in 0..20_000 {
                let b = exact_bucket_of(addr_hash([base[0], base[1], base[2], i]), bits);
                assert!(u64::from(b) < 1u64 << bits, "bucket {b} of 2^{bits}");
                seen.insert(b);
            }
            if bits == 10 {
                assert_eq!(seen.len(), 1024, "20,000 addresses cover 1024 buckets");
            }
        }
    }

    #[test]
    fn addresses_of_one_prefix_spread_over_the_exact_index() {
        // 64k consecutive addresses into 1M buckets: few share one.
        let base = words(&[0x20, 0x01, 0x0d, 0xb8, 0, 0x5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let n = 1u32 << 16;
        let mut buckets = HashSet::new();
        for i in 0..n {
            buckets.insert(exact_bucket_of(
                addr_hash([base[0], base[1], base[2], i]),
                20,
            ));
        }
        // Random placement of 2^16 items in 2^20 buckets leaves about 2^16 * (1 - 1/32) distinct.
        assert!(
            buckets.len() > 62_500,
            "only {} distinct buckets",
            buckets.len()
        );
    }

    #[test]
    fn members_numbered_in_any_group_spread_over_the_source_slots() {
        // 16 members numbered in the last group, in the third, or in the
        // seventh: random placement of 16 into 16 slots fills about 10.
        let numbered: [fn(u16) -> std::net::Ipv6Addr; 3] = [
            |i| std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i),
            |i| std::net::Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, 1),
            |i| std::net::Ipv6Addr::new(0xfd00, 0xf, 0, 0, 0, 0, i, 2),
        ];
        for (n, member) in numbered.iter().enumerate() {
            let slots: HashSet<u32> = (1..=16)
                .map(|i| source_slot(native_words(&member(i).octets())))
                .collect();
            assert!(slots.iter().all(|&s| s < crate::SOURCE_SLOTS));
            assert!(
                slots.len() >= 8,
                "numbering {n}: 16 members in {} slots",
                slots.len()
            );
        }
    }
}
