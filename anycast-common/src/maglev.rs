//! The consistent-hash (Maglev) table that spreads new flows over the
//! members tied at the nearest metric.
//!
//! Built by userspace, read by the data plane as `table[flow_hash % size]`.
//! The table is a function of the tied set alone (names, ids and weights),
//! so a flow maps to the same member after a restart or a flow-table
//! eviction as long as that set is unchanged; when one member leaves, most
//! entries of the others stay where they were (Maglev's minimal disruption).
//! A member of weight `w` takes part as `w` virtual nodes.

use std::{vec, vec::Vec};

use crate::hash;

/// One member as the table sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node<'a> {
    /// Member id (never 0).
    pub id: u32,
    /// Member name: it, not the id, fixes the member's place in the table.
    pub name: &'a [u8],
    /// Weight, 1..=100.
    pub weight: u8,
}

/// Whether `n` is prime (for table sizes).
pub const fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

fn name_hash(name: &[u8], replica: u32, seed: u32) -> u32 {
    let mut h = hash::mix(seed, replica);
    for chunk in name.chunks(4) {
        let mut w = [0u8; 4];
        w[..chunk.len()].copy_from_slice(chunk);
        h = hash::mix(h, u32::from_be_bytes(w));
    }
    hash::finish(h ^ name.len() as u32)
}

/// Builds a table of `size` entries (a prime) over `nodes`. Empty `nodes`
/// give a table of zeros (no member).
pub fn build(nodes: &[Node<'_>], size: u32) -> Vec<u32> {
    let size = size as usize;
    let mut table = vec![0u32; size];
    if nodes.is_empty() || size == 0 {
        return table;
    }
    let mut sorted: Vec<&Node<'_>> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(b.name));
    // (id, offset, skip) of every virtual node.
    let mut virt: Vec<(u32, usize, usize)> = Vec::new();
    for n in sorted {
        for r in 0..u32::from(n.weight.clamp(1, 100)) {
            let offset = name_hash(n.name, r, 0x5eed_0001) as usize % size;
            let skip = if size > 1 {
                name_hash(n.name, r, 0x5eed_0002) as usize % (size - 1) + 1
            } else {
                1
            };
            virt.push((n.id, offset, skip));
        }
    }
    let mut next = vec![0usize; virt.len()];
    let mut filled = 0;
    // Each round gives every virtual node one entry: its next free preferred slot.
    'fill: loop {
        for (i, &(id, offset, skip)) in virt.iter().enumerate() {
            let mut c = (offset + next[i] * skip) % size;
            while table[c] != 0 {
                next[i] += 1;
                c = (offset + next[i] * skip) % size;
            }
            table[c] = id;
            next[i] += 1;
            filled += 1;
            if filled == size {
                break 'fill;
            }
        }
    }
    table
}

/// The members that take a group's new flows: up (not down, not draining),
/// at the lowest metric among those, at most [`crate::MAX_TIED`] of them by id.
pub fn tied(members: &[(u32, crate::MemberInfo)]) -> Vec<(u32, crate::MemberInfo)> {
    let up: Vec<&(u32, crate::MemberInfo)> = members
        .iter()
        .filter(|(_, m)| {
            m.kind != crate::MemberKind::None as u8 && m.up == crate::MemberState::Up as u8
        })
        .collect();
    let Some(min) = up.iter().map(|(_, m)| m.metric).min() else {
        return Vec::new();
    };
    let mut out: Vec<(u32, crate::MemberInfo)> = up
        .into_iter()
        .filter(|(_, m)| m.metric == min)
        .copied()
        .collect();
    out.sort_by_key(|(id, _)| *id);
    out.truncate(crate::MAX_TIED);
    out
}

/// The table of a group whose members are `members` (every member of the
/// group, any state), at `size` entries.
pub fn table_for(members: &[(u32, crate::MemberInfo)], size: u32) -> Vec<u32> {
    let tied = tied(members);
    let names: Vec<(u32, &[u8], u8)> = tied
        .iter()
        .map(|(id, m)| {
            let end = m.name.iter().position(|&c| c == 0).unwrap_or(m.name.len());
            (*id, &m.name[..end], m.weight)
        })
        .collect();
    let nodes: Vec<Node<'_>> = names
        .iter()
        .map(|&(id, name, weight)| Node { id, name, weight })
        .collect();
    build(&nodes, size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{collections::BTreeMap, format, string::String};

    fn nodes(names: &[String]) -> Vec<Node<'_>> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| Node {
                id: i as u32 + 1,
                name: n.as_bytes(),
                weight: 1,
            })
            .collect()
    }

    fn shares(t: &[u32]) -> BTreeMap<u32, usize> {
        let mut m = BTreeMap::new();
        for id in t {
            *m.entry(*id).or_default() += 1;
        }
        m
    }

    #[test]
    fn balanced_and_deterministic() {
        let names: Vec<String> = (0..4).map(|i| format!("m{i}")).collect();
        let t = build(&nodes(&names), 1021);
        assert_eq!(t, build(&nodes(&names), 1021));
        for (id, n) in shares(&t) {
            assert!(id != 0 && (250..=262).contains(&n), "member {id}: {n}");
        }
    }

    #[test]
    fn nodes_with_other_ids_and_orders_map_every_slot_to_the_same_name() {
        // Two redirector nodes with the same members (names, weights) but
        // ids given in another order, listed in another order: a flow
        // moved from one to the other by ECMP reaches the same member
        // (docs/BGP.md).
        let (a, b, c) = (
            b"dns-a".as_slice(),
            b"dns-b".as_slice(),
            b"dns-c".as_slice(),
        );
        let one = [
            Node {
                id: 1,
                name: a,
                weight: 1,
            },
            Node {
                id: 2,
                name: b,
                weight: 3,
            },
            Node {
                id: 3,
                name: c,
                weight: 1,
            },
        ];
        let two = [
            Node {
                id: 9,
                name: c,
                weight: 1,
            },
            Node {
                id: 4,
                name: a,
                weight: 1,
            },
            Node {
                id: 17,
                name: b,
                weight: 3,
            },
        ];
        let name_of = |nodes: &[Node<'_>], id: u32| -> Vec<u8> {
            nodes
                .iter()
                .find(|n| n.id == id)
                .map(|n| n.name.to_vec())
                .unwrap_or_default()
        };
        let (t1, t2) = (build(&one, 1021), build(&two, 1021));
        for (x, y) in t1.iter().zip(&t2) {
            assert_eq!(name_of(&one, *x), name_of(&two, *y));
        }
        // A weight that differs moves slots: nodes must agree on weights.
        let three = [
            Node {
                id: 1,
                name: a,
                weight: 1,
            },
            Node {
                id: 2,
                name: b,
                weight: 2,
            },
            Node {
                id: 3,
                name: c,
                weight: 1,
            },
        ];
        let t3 = build(&three, 1021);
        assert!(
            t1.iter()
                .zip(&t3)
                .any(|(x, y)| name_of(&one, *x) != name_of(&three, *y))
        );
    }

    #[test]
    fn removal_moves_little_else() {
        let names: Vec<String> = (0..4).map(|i| format!("m{i}")).collect();
        let before = build(&nodes(&names), 1021);
        // m3 (id 4) leaves; the others keep their ids.
        let after = build(&nodes(&names[..3]), 1021);
        let moved = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| **b != 4 && a != b)
            .count();
        assert!(
            moved < 1021 / 20,
            "{moved} entries of staying members moved"
        );
        assert!(!after.contains(&4));
    }

    #[test]
    fn weights_give_shares() {
        let a = String::from("a");
        let b = String::from("b");
        let t = build(
            &[
                Node {
                    id: 1,
                    name: a.as_bytes(),
                    weight: 3,
                },
                Node {
                    id: 2,
                    name: b.as_bytes(),
                    weight: 1,
                },
            ],
            1021,
        );
        let s = shares(&t);
        assert!((740..=790).contains(&s[&1]), "{s:?}");
        assert!(is_prime(1021) && is_prime(4093) && !is_prime(1024));
    }
}
