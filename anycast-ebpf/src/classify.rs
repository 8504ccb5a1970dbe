//! Classification: the source rule, then the destination's group and
//! whether this attachment is in the destination's scope.
//!
//! Each address is looked up once, through the /16 filter of the exact
//! addresses, the exact-address index, the exact table and the prefixes.
//! An anycast source meets the source rule ([`judge_source`], the only
//! place it is written); an anycast destination becomes a [`Target`] for
//! acting. The policy is the one `anycast_common::model` states; the
//! program tests hold the two to the same answers.

use anycast_common::{
    AddrKey, EXACT_BUCKET_ENTRIES, ExactBucket, GlobalStat, GroupStat, IfaceRole, MemberSourceKey,
    SourceAction, hash,
    prefix_trie::{self, SLOT_ASK, SLOT_CHILD, SLOT_NODE, SLOT_SKIP},
    slash16_bit, wire, word_group, word_scope,
};
use aya_ebpf::{maps::lpm_trie::Key, programs::XdpContext};

use crate::{
    maps::{
        ANYCAST_ADDRS, ANYCAST_PREFIX, EXACT_INDEX, EXACT_SLASH16, MEMBER_SOURCES, PREFIX_NODES,
        SCOPES, SETTINGS,
    },
    parse::{
        Packet,
        ipv6::{self, Ipv6},
        load, words,
    },
    verdict::{Final, Source, Target},
    verifier::opaque,
};

/// The attachment's load-time constants.
pub(crate) struct Attachment {
    /// `IfaceRole` as u8.
    pub(crate) role: u8,
    /// `SourceAction` as u8.
    pub(crate) source_action: u8,
    /// Its id, which scopes name.
    pub(crate) id: u32,
}

/// The rules of this attachment and what the address lookups need to know
/// of the configuration, read once per packet.
#[derive(Clone, Copy)]
struct Rules {
    /// The interface's role.
    role: IfaceRole,
    /// What to do with a disallowed anycast source.
    action: SourceAction,
    /// Any prefix configured (else the prefix lookups are skipped).
    prefixes: bool,
    /// The first node of the copy of the prefix trie to read.
    trie_base: u32,
    /// `Settings::flow_epoch`, for the flow caches.
    flow_epoch: u32,
}

impl Rules {
    #[inline(always)]
    fn read(role: u8, action: u8) -> Self {
        let (role, action) = (IfaceRole::from_u8(role), SourceAction::from_u8(action));
        let copy_nodes = crate::PREFIX_COPY_NODES.load();
        match SETTINGS.get(0) {
            Some(s) => Rules {
                role,
                action,
                prefixes: s.prefix_any != 0,
                trie_base: prefix_trie::copy_base(u32::from(s.prefix_copy), copy_nodes),
                flow_epoch: s.flow_epoch,
            },
            None => Rules {
                role,
                action,
                prefixes: true,
                // Past the map: every trie walk asks the LPM trie.
                trie_base: prefix_trie::COPIES * copy_nodes,
                flow_epoch: 0,
            },
        }
    }
}

/// Classifies a parsed packet on attachment `a`: a final verdict (passed
/// or dropped as it is), or the target of an anycast-destined packet that
/// acting steers (or drops, out of its scope).
#[inline(always)]
pub(crate) fn classify(ctx: &XdpContext, p: &Packet, a: &Attachment) -> Result<Target, Final> {
    let r = Rules::read(a.role, a.source_action);
    let src_group = anycast_word(p.src, &r).map_or(0, word_group);
    // An anycast source, or the anycast inner source of IPv6-in-IPv6 (an
    // encapsulated member answering from the anycast address, or a spoof
    // that a decapsulating router would let in): either meets the rule.
    let (group, tunnel) = if src_group != 0 {
        (src_group, false)
    } else if may_be_tunnelled(p) {
        // Offsets the walk may narrow, unknown to the verifier (see
        // `verifier`): the packet's own stay as they were for the rest.
        let ip = Ipv6 {
            off: opaque(p.ip.off as u32) as usize,
            end: opaque(p.ip.end as u32) as usize,
            ..p.ip
        };
        (inner_source_group(ctx, &ip, &r), true)
    } else {
        (0, false)
    };
    let source = if group != 0 {
        judge_source(&r, group, tunnel, || vouched(ctx, p, group, tunnel))?
    } else {
        Source::NONE
    };
    let Some(word) = anycast_word(p.dst, &r) else {
        // The common case: no anycast address at all.
        return Err(Final::pass_source(GlobalStat::UnicastPassed, source));
    };
    let scope = word_scope(word);
    Ok(Target {
        group: word_group(word),
        out_of_scope: scope != 0 && !SCOPES.get(scope).is_some_and(|s| s.admits(a.id)),
        // Unknown to the verifier from here (see `verifier`).
        source: source.opaque(),
        flow_epoch: r.flow_epoch,
        bytes: (ctx.data_end() - ctx.data()) as u64,
    })
}

/// The source rule, for an anycast source of `group` (the inner source of
/// IPv6-in-IPv6 when `tunnel`). Edge: no anycast source may enter. Member:
/// only from a registered member of the group (`vouched`, asked only
/// there). A disallowed source is dropped, or only counted in monitor
/// mode.
#[inline(always)]
fn judge_source(
    r: &Rules,
    group: u32,
    tunnel: bool,
    vouched: impl FnOnce() -> bool,
) -> Result<Source, Final> {
    if r.role == IfaceRole::Member && vouched() {
        return Ok(Source {
            group,
            stat: GroupStat::MemberSourcePassed,
        });
    }
    match r.action {
        SourceAction::Count => Ok(Source {
            group,
            stat: GroupStat::AnycastSourceCounted,
        }),
        SourceAction::Drop => Err(match r.role {
            IfaceRole::Edge if tunnel => Final::drop_source(
                GlobalStat::TunnelledSourceDropped,
                Source {
                    group,
                    stat: GroupStat::TunnelledSourceDrops,
                },
            ),
            IfaceRole::Edge => Final::drop_source(
                GlobalStat::AnycastSourceDropped,
                Source {
                    group,
                    stat: GroupStat::AnycastSourceDrops,
                },
            ),
            IfaceRole::Member => Final::drop_source(
                GlobalStat::SpoofDropped,
                Source {
                    group,
                    stat: GroupStat::SpoofDrops,
                },
            ),
        }),
    }
}

/// Whether a registered member of `group` sent `p`: an on-link member by
/// ingress interface and source MAC, or, for the inner source of
/// IPv6-in-IPv6 (`tunnel`), an encapsulated member by outer source.
// Not inlined: its key gets a stack frame of its own, off the redirect path.
#[inline(never)]
fn vouched(ctx: &XdpContext, p: &Packet, group: u32, tunnel: bool) -> bool {
    let key = if tunnel {
        // SAFETY: bounds-checked pointer into the packet.
        MemberSourceKey::tunnel(group, unsafe { (*p.src).addr })
    } else {
        let mac = load::<[u8; 6]>(ctx, 6, p.ip.off).unwrap_or([0; 6]);
        MemberSourceKey::on_link(group, ctx.ingress_ifindex() as u32, mac)
    };
    // SAFETY: plain data, only read.
    unsafe { MEMBER_SOURCES.get(&key) }.is_some()
}

/// Whether the packet may carry IPv6 in IPv6: next header 41 after the
/// fixed header or after extension headers (the Tunnel Encapsulation Limit
/// option of RFC 2473 in a Destination Options header, an SRv6 routing
/// header, a first fragment). Everything else, most packets, needs no walk.
#[inline(always)]
fn may_be_tunnelled(p: &Packet) -> bool {
    let nh = p.ip.next_header;
    nh == wire::IPPROTO_IPV6 || wire::ext_header_len_kind(nh).is_some()
}

/// The anycast group of the inner source of IPv6-in-IPv6, 0 if none: the
/// extension headers walked to next header 41 (not in a non-first
/// fragment, which has no inner header; not past the walk's bound), then
/// the inner header, complete and inside the outer payload.
// Not inlined: the walk's many outcomes and the inner header stay in a
// stack frame of their own, and only the group comes back (a plain group,
// not an `Option`, so that it comes back in a register).
#[inline(never)]
fn inner_source_group(ctx: &XdpContext, ip: &Ipv6, r: &Rules) -> u32 {
    let Some(t) = ipv6::transport(ctx, ip) else {
        return 0;
    };
    if t.proto != wire::IPPROTO_IPV6 || !t.upper {
        return 0;
    }
    ipv6::parse(ctx, t.off, ip.end)
        .and_then(|inner| ipv6::src(ctx, &inner))
        .and_then(|s| anycast_word(s, r))
        .map_or(0, word_group)
}

/// What the exact-address index says of an address.
enum IndexAnswer {
    /// It owns its slot: anycast, with this word (`AddrValue::word`).
    Word(u32),
    /// Its slot has other addresses: the exact table knows.
    Ask,
    /// Not an exact anycast address.
    No,
}

/// Whether an exact address may begin with the first two bytes of `w0`
/// (an address's first word, native order): its bit in the /16 filter.
/// An address outside every /16 that holds one is answered without the
/// index, whose bucket (in an array of up to 64 MiB) is a cache miss for
/// most such addresses, such as a flood's random sources.
#[inline(always)]
fn may_be_exact(w0: u32) -> bool {
    let [b0, b1, _, _] = w0.to_ne_bytes();
    let (word, bit) = slash16_bit(b0, b1);
    // Never past the map (1,024 words); if it were, the index would tell.
    EXACT_SLASH16.get(word).is_none_or(|w| *w & bit != 0)
}

/// Looks the address `raw` (native words) with hash `h` up in the
/// exact-address index.
#[inline(always)]
fn exact_index(raw: [u32; 4], h: u64) -> IndexAnswer {
    let Some(b) = EXACT_INDEX.get(hash::exact_bucket_of(h, crate::EXACT_INDEX_BITS.load())) else {
        return IndexAnswer::Ask;
    };
    // An empty bucket (the common case for an address that is not anycast)
    // in two loads: the words and `others` are the bucket's last 16 bytes.
    let tail = b as *const ExactBucket as *const u64;
    // SAFETY: a 64-byte, 8-aligned map value: words 6 and 7 are in it.
    if unsafe { *tail.add(6) | *tail.add(7) } == 0 {
        return IndexAnswer::No;
    }
    for i in 0..EXACT_BUCKET_ENTRIES {
        // The word first, then the address: userspace writes a new
        // address before its word (see `ExactBucket`).
        // SAFETY: reading a field of a valid map value.
        let word = unsafe { core::ptr::read_volatile(&b.words[i]) };
        if word != 0 {
            // SAFETY: 16-byte fields at 4-aligned offsets of a map value.
            let o = unsafe { words::load16(&b.addrs[i]) };
            // One branch, not four (and never a call of `bcmp`).
            if (o[0] ^ raw[0]) | (o[1] ^ raw[1]) | (o[2] ^ raw[2]) | (o[3] ^ raw[3]) == 0 {
                // Still the same word: the place was not freed and taken
                // by another address between the reads. If it was, the
                // exact table answers.
                // SAFETY: as above.
                let again = unsafe { core::ptr::read_volatile(&b.words[i]) };
                return if again == word {
                    IndexAnswer::Word(word)
                } else {
                    IndexAnswer::Ask
                };
            }
        }
    }
    if b.others != 0 {
        IndexAnswer::Ask
    } else {
        IndexAnswer::No
    }
}

/// The word (group and scope, `AddrValue::word`) of the anycast address
/// or prefix at `addr`: exact match first (in a /16 that may hold one: the
/// index, then the exact table when the index cannot tell), then the
/// longest prefix, from the prefix trie (one read for most addresses that
/// are in none), or from the LPM trie where the prefix trie asks it.
#[inline(always)]
fn anycast_word(addr: *const AddrKey, l: &Rules) -> Option<u32> {
    // SAFETY: `addr` points into the packet and was bounds-checked by the
    // parser; the lookups read it in place, without a copy to the stack.
    let key = unsafe { &*addr };
    // SAFETY: as above, 16 readable bytes.
    let raw = unsafe { words::load16(&key.addr) };
    if may_be_exact(raw[0]) {
        // Hashed only here: most addresses are in no /16 of an exact one.
        match exact_index(raw, hash::addr_hash(raw)) {
            IndexAnswer::Word(w) => return Some(w),
            IndexAnswer::Ask => {
                // SAFETY: the value is plain data and only read.
                if let Some(v) = unsafe { ANYCAST_ADDRS.get(key) } {
                    return Some(v.word());
                }
            }
            IndexAnswer::No => {}
        }
    }
    if !l.prefixes {
        return None;
    }
    match trie_slot(words::big_endian(raw), l.trie_base) {
        SLOT_ASK => ANYCAST_PREFIX
            .get(Key::new(128, key.addr))
            .map(|v| v.word()),
        0 => None,
        word => Some(word),
    }
}

/// Where the prefix trie's walk ends for an address (big-endian words
/// `w`) in the copy whose first node is `base`: a word (0: in no prefix)
/// or `SLOT_ASK` (see `anycast_common::prefix_trie`). The root takes the
/// first two bytes, each node below one more (the byte its child slot
/// names: levels with one child are skipped, the address checked against
/// the node's path instead), and the walk stops at the first slot that is
/// not a child: most addresses after one read.
#[inline(always)]
fn trie_slot(w: [u32; 4], base: u32) -> u32 {
    let Some(root) = PREFIX_NODES.get(base.wrapping_add(w[0] >> 24)) else {
        return SLOT_ASK;
    };
    let mut slot = root.slots[((w[0] >> 16) & 0xff) as usize];
    // Bytes 0..8: each node takes one of bytes 2..8.
    let bytes = u64::from(w[0]) << 32 | u64::from(w[1]);
    // Each node takes a later byte than the one before: at most one a
    // level.
    for _ in 0..prefix_trie::LEVELS {
        if slot & SLOT_CHILD == 0 {
            return slot;
        }
        let Some(node) = PREFIX_NODES.get(slot & SLOT_NODE) else {
            return SLOT_ASK;
        };
        let shift = prefix_trie::slot_shift(slot);
        // Off the skipped levels' one path: the word they all held.
        if slot & SLOT_SKIP != 0 && (bytes ^ node.path) >> shift > 0xff {
            return node.word;
        }
        slot = node.slots[((bytes >> shift) & 0xff) as usize];
    }
    // A child past the last level: never built; the LPM trie knows.
    if slot & SLOT_CHILD != 0 {
        SLOT_ASK
    } else {
        slot
    }
}
