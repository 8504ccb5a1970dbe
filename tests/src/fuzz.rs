//! Differential fuzzing: random and mutated frames through the XDP program
//! (BPF_PROG_TEST_RUN) and through the reference model; both must agree on
//! the action and the bytes out of every frame, and on every counter.
//!
//! A frame on which they disagree is shrunk ([`minimise`]) while the
//! disagreement persists, printed as hex with its seed and, given a corpus
//! directory (`ANYCAST_FUZZ_CORPUS_DIR`, which `cargo xtask fuzz` sets to
//! `tests/corpus`), written there as a regression case that every test run
//! replays ([`read_corpus`]).

mod datagram;

use std::{
    collections::{BTreeMap, VecDeque},
    fmt::Write as _,
    net::Ipv6Addr,
    path::{Path, PathBuf},
};

use anycast_common::{
    IfaceRole, SourceAction,
    frame::{Ext, FrameBuilder, L4, icmpv6_error},
    model::{Fib, Scope},
    wire,
};
use anyhow::{Context as _, Result, anyhow, bail};

use crate::{
    lab::FibNode,
    prog::{ProgramUnderTest, deltas},
};

/// A small, fast, deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p` percent.
    pub fn chance(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

const ANY: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 0x53);
/// An exact address of another /16 (a second bit of the /16 filter),
/// inside a [`LADDER`] prefix of the other group: the exact one wins.
const ANY_ELSEWHERE: Ipv6Addr = Ipv6Addr::new(0x3cde, 0, 0, 0, 0, 0, 0, 0x53);
const NET: &str = "2001:db8:b::/48";
/// A subnet (RFC 2526) whose anycast addresses the program's attachment
/// is in the scope of, and one it is not; a scoped prefix outside it.
const HOME_SUBNET: &str = "2001:db8:a:1::/64";
const AWAY_SUBNET: &str = "2001:db8:c:1::/64";
const AWAY_NET: &str = "2001:db8:d::/48";
/// Nested prefixes of 14 lengths, the two groups alternating (the longest
/// wins): short ones in 3000::/4, long ones in 2001:db8:e000::/35.
const LADDER: [&str; 14] = [
    "3000::/4",
    "3c80::/9",
    "3cde::/16",
    "3cde:8000::/17",
    "2001:db8:e000::/35",
    "2001:db8:e000::/40",
    "2001:db8:e0a0::/44",
    "2001:db8:e0a5::/48",
    "2001:db8:e0a5:ff00::/56",
    "2001:db8:e0a5:ffee::/63",
    "2001:db8:e0a5:ffef::/64",
    "2001:db8:e0a5:ffef:8000::/65",
    "2001:db8:e0a5:ffef:8000::/96",
    "2001:db8:e0a5:ffef:8000::6/127",
];
const MEMBER_MACS: [[u8; 6]; 4] = [
    [0x02, 0xbb, 0, 0, 0, 1],
    [0x02, 0xbb, 0, 0, 0, 2],
    [0x02, 0xbb, 0, 0, 0, 3],
    [0x02, 0xbb, 0, 0, 0, 4],
];

/// The program and configuration the fuzzer runs against.
pub fn fuzz_target(role: IfaceRole, action: SourceAction) -> Result<ProgramUnderTest> {
    configure(ProgramUnderTest::load(role, action)?)
}

/// Gives `p` the fuzzer's configuration (groups, addresses, members).
pub fn configure(mut p: ProgramUnderTest) -> Result<ProgramUnderTest> {
    p.add(&ANY.to_string(), "dns")?;
    p.add(&ANY_ELSEWHERE.to_string(), "dns")?;
    p.add(NET, "web")?;
    p.add_subnet(HOME_SUBNET, "dns", &[126], true, true)?;
    p.add_subnet(AWAY_SUBNET, "web", &[126, 127], false, false)?;
    p.add_scoped(AWAY_NET, "web", false)?;
    for (i, net) in LADDER.iter().enumerate() {
        p.add(net, if i % 2 == 0 { "web" } else { "dns" })?;
    }
    for (i, mac) in MEMBER_MACS.iter().enumerate() {
        let group = if i < 3 { "dns" } else { "web" };
        p.add_l2_member(group, &format!("m{i}"), *mac, if i == 2 { 20 } else { 10 })?;
    }
    Ok(p)
}

/// Makes the members' link narrow for `p`, run inside the namespace of
/// `node`: loopback (their egress in program tests) gets the minimum MTU,
/// 1280, and the FIB routes fd00::/16 (clients of [`addr`]) out of `e0`,
/// so that a packet too big for the link is answered with a Packet Too
/// Big when its source is there, and passed otherwise.
pub fn narrow_member_link(p: &mut ProgramUnderTest, node: &FibNode) -> Result<()> {
    crate::lab::sh(&[
        "ip",
        "-6",
        "route",
        "add",
        "fd00::/16",
        "via",
        "fd00:e::2",
        "dev",
        "e0",
    ])?;
    p.set_loopback_mtu(1280)?;
    let (ifindex, smac, dmac) = (node.ifindex, node.smac, node.dmac);
    let e0_net = u128::from(Ipv6Addr::new(0xfd00, 0xe, 0, 0, 0, 0, 0, 0));
    let src = Ipv6Addr::new(0xfd00, 0xe, 0, 0, 0, 0, 0, 1).octets();
    p.fib = Box::new(move |from, dst, tot_len| {
        let d = u128::from(Ipv6Addr::from(*dst));
        let routed = d >> 112 == 0xfd00 && d >> 64 != e0_net >> 64;
        if from.is_some() || !routed || tot_len > 1400 {
            Fib::Miss
        } else {
            Fib::Found {
                ifindex,
                smac,
                dmac,
                src,
            }
        }
    });
    Ok(())
}

fn addr(r: &mut Rng) -> Ipv6Addr {
    match r.below(8) {
        7 => subnet_anycast(r),
        0 if r.chance(25) => {
            // ANY_ELSEWHERE or a neighbour: same /16, not exact.
            Ipv6Addr::from(u128::from(ANY_ELSEWHERE) ^ u128::from(r.below(3)))
        }
        0 => ANY,
        1 => {
            Ipv6Addr::from(0x2001_0db8_000b_0000_0000_0000_0000_0000u128 | u128::from(r.next_u64()))
        }
        2 => {
            Ipv6Addr::from(0xfd00_0000_0000_0000_0000_0000_0000_0000u128 | u128::from(r.below(16)))
        }
        3 => Ipv6Addr::from(
            0x2001_0db8_000a_0000_0000_0000_0000_0000u128 | u128::from(r.below(0x100)),
        ),
        4 => special(r),
        5 => ladder(r),
        _ => Ipv6Addr::from((u128::from(r.next_u64()) << 64) | u128::from(r.next_u64())),
    }
}

/// An address at or next to an edge of one of the [`LADDER`]'s prefixes,
/// or anywhere in it.
fn ladder(r: &mut Rng) -> Ipv6Addr {
    let net: anycast::AnycastPrefix = LADDER[r.below(LADDER.len() as u64) as usize]
        .parse()
        .unwrap_or(anycast::AnycastPrefix {
            addr: ANY,
            len: 128,
        });
    let first = u128::from(net.addr);
    let last = first | u128::MAX.checked_shr(u32::from(net.len)).unwrap_or(0);
    let v = match r.below(5) {
        0 => first,
        1 => last,
        2 => first.wrapping_sub(1),
        3 => last.wrapping_add(1),
        _ => first | ((u128::from(r.next_u64()) << 64 | u128::from(r.next_u64())) & (last ^ first)),
    };
    Ipv6Addr::from(v)
}

/// The subnets' anycast addresses and their neighbours: every anycast ID
/// and the subnet-router address of the configured subnets (some
/// configured, some not), the same identifiers in another subnet, and
/// addresses of the scoped prefix.
fn subnet_anycast(r: &mut Rng) -> Ipv6Addr {
    let prefix = match r.below(4) {
        0 => 0x2001_0db8_000a_0001u128,
        1 => 0x2001_0db8_000c_0001u128,
        2 => 0x2001_0db8_000d_0000u128 | u128::from(r.below(4)),
        _ => 0x2001_0db8_000a_0002u128,
    };
    let iid: u128 = match r.below(4) {
        0 => 0,
        1 => 0xfdff_ffff_ffff_fffe,
        2 => 0xfdff_ffff_ffff_ff80 | u128::from(r.below(128)),
        _ => u128::from(r.next_u64()),
    };
    Ipv6Addr::from(prefix << 64 | iid)
}

/// Addresses of special scope, and their neighbours: unspecified,
/// loopback, IPv4-mapped, multicast, link-local, site-local, and the
/// addresses just outside those ranges.
fn special(r: &mut Rng) -> Ipv6Addr {
    let low = u128::from(r.below(3));
    let v: u128 = match r.below(8) {
        0 => low,
        1 => (0xffffu128 << 32) | u128::from(r.next_u64() as u32),
        2 => (0xfffeu128 << 32) | u128::from(r.next_u64() as u32),
        3 => (0xff00u128 | u128::from(r.below(256) as u8)) << 120 | low,
        4 => 0xfe80u128 << 112 | u128::from(r.next_u64()),
        5 => 0xfec0u128 << 112 | u128::from(r.next_u64()),
        6 => (0xfe00u128 + (u128::from(r.below(4)) << 6) + u128::from(r.below(64))) << 112 | low,
        _ => u128::from(r.next_u64() as u16) << 112 | low,
    };
    Ipv6Addr::from(v)
}

fn ext(r: &mut Rng) -> Ext {
    match r.below(8) {
        6 => Ext::TunnelEncapLimit(r.below(3) as u8),
        7 => Ext::Srh {
            segments: 1 + r.below(3) as u8,
            left: r.below(3) as u8,
        },
        0 => Ext::HopByHop(r.below(3) as u8),
        1 => Ext::DestOpts(r.below(3) as u8),
        2 => Ext::Routing(r.below(3) as u8),
        // First, later and atomic fragments (offset 0, M clear: a whole
        // packet, keyed as one) a quarter of the time each.
        3 => Ext::Fragment {
            offset: if r.chance(50) { 0 } else { r.below(200) as u16 },
            more: r.chance(50),
            id: r.next_u64() as u32,
        },
        4 => Ext::Ah(1 + r.below(3) as u8),
        _ => Ext::Mobility(r.below(2) as u8),
    }
}

fn l4(r: &mut Rng, src: Ipv6Addr, dst: Ipv6Addr) -> L4 {
    // Sometimes around the minimum MTU, 1280 bytes: too big for the
    // members' link (see `narrow_member_link`) or not.
    let len = if r.chance(5) {
        1180 + r.below(300)
    } else {
        r.below(40)
    };
    let payload = vec![0xa5; len as usize];
    match r.below(12) {
        0 | 1 => L4::Udp {
            sport: r.below(65536) as u16,
            dport: 53,
            payload,
        },
        2 => L4::Tcp {
            sport: r.below(65536) as u16,
            dport: 443,
            flags: 0x10,
            payload,
        },
        3 => {
            // Echo requests and replies (their identifier keys the flow),
            // sometimes cut inside their 8-byte header.
            let mut body = vec![0, r.below(3) as u8, 0, 1];
            body.extend_from_slice(&payload);
            body.truncate(if r.chance(10) {
                r.below(4) as usize
            } else {
                body.len()
            });
            L4::Icmpv6 {
                ty: 128 + r.below(2) as u8,
                code: 0,
                body,
            }
        }
        4 => icmp_error(r, src, dst),
        5 => {
            // IPv6 in IPv6, the inner source often anycast: the tunnelled
            // source rule (the outer extension headers come from `frame`).
            let inner = FrameBuilder::udp(addr(r), addr(r), 53, 53, &payload).build();
            L4::Raw {
                proto: wire::IPPROTO_IPV6,
                bytes: inner[14..].to_vec(),
            }
        }
        6 => {
            // Neighbor Discovery, MLD and the other link-scoped messages,
            // and the types around them.
            let ty = [
                129, 130, 131, 132, 133, 134, 135, 136, 137, 138, 140, 141, 142, 143, 144, 148,
                149, 150, 151, 152, 153, 154,
            ][r.below(22) as usize];
            L4::Icmpv6 {
                ty,
                code: 0,
                body: payload,
            }
        }
        7 => {
            // Protocols whose header starts with the ports, as UDP's does:
            // DCCP and UDP-Lite (and SCTP), sometimes cut inside the ports.
            let proto = [
                wire::IPPROTO_DCCP,
                wire::IPPROTO_UDPLITE,
                wire::IPPROTO_SCTP,
            ][r.below(3) as usize];
            let mut bytes = (r.below(65536) as u32).to_be_bytes().to_vec();
            bytes.extend_from_slice(&payload);
            bytes.truncate(if r.chance(10) {
                r.below(5) as usize
            } else {
                bytes.len()
            });
            L4::Raw { proto, bytes }
        }
        9 => {
            // IPsec: ESP (an SPI, a sequence number, data), sometimes cut,
            // and IKE on its two ports, keyed as one flow per address pair.
            if r.chance(50) {
                let mut bytes = (r.below(4) as u32 + 0x100).to_be_bytes().to_vec();
                bytes.extend_from_slice(&payload);
                bytes.truncate(if r.chance(10) {
                    r.below(8) as usize
                } else {
                    bytes.len()
                });
                L4::Raw {
                    proto: wire::IPPROTO_ESP,
                    bytes,
                }
            } else {
                let port = [500, 4500][r.below(2) as usize];
                L4::Udp {
                    sport: if r.chance(50) {
                        port
                    } else {
                        r.below(65536) as u16
                    },
                    dport: if r.chance(80) {
                        port
                    } else {
                        r.below(65536) as u16
                    },
                    payload,
                }
            }
        }
        8 => L4::Raw {
            // An empty payload: next header 59 with payload length 0.
            proto: wire::IPPROTO_NONE,
            bytes: if r.chance(70) { Vec::new() } else { payload },
        },
        _ => L4::Raw {
            proto: r.below(256) as u8,
            bytes: payload,
        },
    }
}

/// An ICMPv6 error (any type below 128) quoting a packet from `dst` back
/// to `src`: UDP, TCP, an echo reply, behind extension headers (a fragment,
/// a first one or not) or not, the quote cut anywhere (often inside the
/// IPv6 header).
fn icmp_error(r: &mut Rng, src: Ipv6Addr, dst: Ipv6Addr) -> L4 {
    let mut quoted = match r.below(3) {
        0 => FrameBuilder::udp(dst, src, 53, r.below(65536) as u16, b"answer"),
        1 => FrameBuilder::tcp(dst, src, 443, r.below(65536) as u16, 0x10),
        _ => FrameBuilder::new(
            dst,
            src,
            L4::Icmpv6 {
                ty: 129,
                code: 0,
                body: vec![0, r.below(3) as u8, 0, 1, 0xee, 0xee],
            },
        ),
    };
    quoted.flow_label = r.next_u64() as u32 & 0xf_ffff;
    if r.chance(40) {
        quoted.ext = (0..1 + r.below(3)).map(|_| ext(r)).collect();
    }
    let quoted = quoted.build();
    let len = (quoted.len() - 14) as u64;
    let cut = if r.chance(30) {
        r.below(41)
    } else {
        r.below(len + 1)
    };
    let ty = if r.chance(60) {
        1 + r.below(4) as u8
    } else {
        r.below(128) as u8
    };
    icmpv6_error(ty, &quoted, Some(cut as usize))
}

/// The fuzzer's stream of frames: single frames, and now and then a
/// datagram's run of fragments, in the order [`run`] sends them.
pub struct Frames {
    r: Rng,
    pending: VecDeque<Vec<u8>>,
}

impl Frames {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Self {
        Frames {
            r: Rng::new(seed),
            pending: VecDeque::new(),
        }
    }
}

impl Iterator for Frames {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if self.pending.is_empty() {
            if self.r.chance(3) {
                self.pending.extend(datagram::datagram(&mut self.r));
            } else {
                self.pending.push_back(frame(&mut self.r));
            }
        }
        self.pending.pop_front()
    }
}

/// One random frame, possibly mutated.
pub fn frame(r: &mut Rng) -> Vec<u8> {
    let (src, dst) = (addr(r), addr(r));
    let mut b = FrameBuilder::new(src, dst, l4(r, src, dst));
    b.hop_limit = if r.chance(10) { r.below(3) as u8 } else { 64 };
    b.flow_label = if r.chance(50) {
        0
    } else {
        r.next_u64() as u32 & 0xf_ffff
    };
    if r.chance(15) {
        let n = 1 + r.below(3);
        b.vlans = (0..n)
            .map(|_| {
                (
                    if r.chance(50) {
                        wire::ETH_P_8021Q
                    } else {
                        wire::ETH_P_8021AD
                    },
                    r.below(4096) as u16,
                )
            })
            .collect();
    }
    if r.chance(35) {
        let n = r.below(17);
        b.ext = (0..n).map(|_| ext(r)).collect();
    }
    if r.chance(5) {
        b.payload_len_override = Some(r.below(2000) as u16);
    }
    if r.chance(10) {
        // From a member's MAC: exercises the member-source rule.
        b.src_mac = MEMBER_MACS[r.below(4) as usize];
    }
    let mut f = b.build();
    // Mutations: truncation, and flipped bytes in the headers.
    if r.chance(10) && f.len() > 14 {
        let keep = 14 + r.below((f.len() - 14) as u64) as usize;
        f.truncate(keep);
    }
    if r.chance(10) {
        for _ in 0..1 + r.below(3) {
            let i = r.below(f.len().min(120) as u64) as usize;
            f[i] ^= 1 << r.below(8);
        }
    }
    f
}

/// Runs `count` frames from `seed` through `p` and the model. At the first
/// disagreement, fails with the seed, the frame's index, its bytes and the
/// minimised frame, written to `corpus` when given (see [`report`]);
/// counters are compared every `batch` frames, and a batch whose counters
/// differ is replayed frame by frame to find the one that disagrees.
pub fn run(p: &ProgramUnderTest, seed: u64, count: u64, corpus: Option<&Path>) -> Result<()> {
    let mut r = Rng::new(seed);
    let batch = 5_000;
    let mut before = p.counters()?;
    let mut want: BTreeMap<(Scope, &'static str), u64> = BTreeMap::new();
    let mut frames: Vec<Vec<u8>> = Vec::new();
    // Frames still to send of a datagram's run of fragments.
    let mut pending = VecDeque::new();
    for i in 0..count {
        if pending.is_empty() {
            if r.chance(3) {
                pending.extend(datagram::datagram(&mut r));
            } else {
                pending.push_back(frame(&mut r));
            }
        }
        let f = pending.pop_front().context("a frame to send")?;
        let model = p.model(&f);
        let got = p.run(&f)?;
        let fragment = datagram::fragment_disagreement(p, &model);
        if got.action != model.verdict.xdp_action() || got.data != model.frame || fragment.is_some()
        {
            let what = fragment.unwrap_or_else(|| {
                format!(
                    "program returned {} ({} bytes), model {:?} ({} bytes)",
                    got.action,
                    got.data.len(),
                    model.verdict,
                    model.frame.len()
                )
            });
            let at = format!("seed {seed}, frame {i}");
            return Err(report(p, &at, &f, &what, corpus));
        }
        for (scope, name, n) in model.deltas {
            *want.entry((scope, name)).or_default() += n;
        }
        frames.push(f);
        if (i + 1) % batch == 0 || i + 1 == count {
            let after = p.counters()?;
            let got: Vec<_> = deltas(&before, &after);
            let want_v: Vec<_> = want.iter().map(|((s, n), v)| (*s, *n, *v)).collect();
            if got != want_v {
                let first = i + 1 - frames.len() as u64;
                for (j, f) in frames.iter().enumerate() {
                    if let Some(what) = disagreement(p, f)? {
                        let at = format!("seed {seed}, frame {}", first + j as u64);
                        return Err(report(p, &at, f, &what, corpus));
                    }
                }
                bail!(
                    "seed {seed}, frames {first} to {i}: counters differ (no single frame \
                     disagrees when replayed)\nprogram: {got:?}\nmodel:   {want_v:?}"
                );
            }
            before = after;
            want.clear();
            frames.clear();
        }
    }
    Ok(())
}

/// What differs between the program and the model on `frame`: the action,
/// the bytes out, or a counter; `None` when they agree.
pub fn disagreement(p: &ProgramUnderTest, frame: &[u8]) -> Result<Option<String>> {
    // The model first: it reads the flow table the run may change.
    let model = p.model(frame);
    let before = p.counters()?;
    let got = p.run(frame)?;
    let after = p.counters()?;
    if got.action != model.verdict.xdp_action() || got.data != model.frame {
        return Ok(Some(format!(
            "program returned {} ({} bytes), model {:?} ({} bytes)",
            got.action,
            got.data.len(),
            model.verdict,
            model.frame.len()
        )));
    }
    if let Some(what) = datagram::fragment_disagreement(p, &model) {
        return Ok(Some(what));
    }
    let got = deltas(&before, &after);
    if got != model.deltas {
        return Ok(Some(format!(
            "counters: program {got:?}, model {:?}",
            model.deltas
        )));
    }
    Ok(None)
}

/// Shortest frame the kernel's test run accepts: an Ethernet header.
pub const MIN_FRAME: usize = 14;
/// Most predicate calls [`minimise`] makes for the fuzzer.
pub const MINIMISE_STEPS: usize = 4_000;

/// Offset of the IPv6 header of `f`, behind up to three VLAN tags.
fn ipv6_offset(f: &[u8]) -> Option<usize> {
    let mut at = 12;
    for _ in 0..=3 {
        match f.get(at..at + 2)? {
            [0x81, 0x00] | [0x88, 0xa8] => at += 4,
            [0x86, 0xdd] => return Some(at + 2),
            _ => return None,
        }
    }
    None
}

/// `cand` (a shorter `orig`) with its IPv6 payload length lowered to what
/// it now carries, when `orig`'s length was exact: cutting a frame must not
/// turn it into a malformed one, or the failure would change its nature.
fn fix_payload_len(orig: &[u8], mut cand: Vec<u8>) -> Option<Vec<u8>> {
    let ip = ipv6_offset(orig)?;
    let len = |f: &[u8]| {
        f.get(ip + 4..ip + 6)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    };
    if ipv6_offset(&cand) != Some(ip) || len(orig)? + ip + 40 != orig.len() {
        return None;
    }
    let now = u16::try_from(cand.len().checked_sub(ip + 40)?).ok()?;
    cand[ip + 4..ip + 6].copy_from_slice(&now.to_be_bytes());
    Some(cand)
}

/// Shrinks `frame` while `fails` holds: cuts the tail (halving the cut),
/// drops chunks of 16, 4 and 1 bytes from the end towards the start (each
/// cut also tried with the IPv6 payload length lowered to match), and
/// zeroes bytes, round after round until a round changes nothing or
/// `budget` calls of `fails` are spent. Never goes under [`MIN_FRAME`]
/// bytes. Returns the smallest failing frame found and the calls made.
pub fn minimise(
    frame: &[u8],
    mut fails: impl FnMut(&[u8]) -> bool,
    budget: usize,
) -> (Vec<u8>, usize) {
    let mut best = frame.to_vec();
    let mut steps = 0;
    let mut attempt = |cand: Vec<u8>, best: &mut Vec<u8>, steps: &mut usize| {
        let fixed = (cand.len() < best.len())
            .then(|| fix_payload_len(best, cand.clone()))
            .flatten();
        for cand in std::iter::once(cand).chain(fixed) {
            if *steps >= budget || cand.len() < MIN_FRAME {
                return false;
            }
            *steps += 1;
            if fails(&cand) {
                *best = cand;
                return true;
            }
        }
        false
    };
    loop {
        let start = best.clone();
        let mut cut = best.len() / 2;
        while cut > 0 && steps < budget {
            let cand = best[..best.len().saturating_sub(cut)].to_vec();
            if !attempt(cand, &mut best, &mut steps) {
                cut /= 2;
            }
        }
        for size in [16, 4, 1] {
            let mut at = best.len().saturating_sub(size);
            while at > 0 && steps < budget {
                let mut cand = best.clone();
                cand.drain(at..(at + size).min(best.len()));
                attempt(cand, &mut best, &mut steps);
                at = at.saturating_sub(size);
            }
        }
        for i in 0..best.len() {
            if best[i] != 0 && steps < budget {
                let mut cand = best.clone();
                cand[i] = 0;
                attempt(cand, &mut best, &mut steps);
            }
        }
        if best == start || steps >= budget {
            return (best, steps);
        }
    }
}

/// The error for a frame on which the program and the model disagree
/// (`what`, found at `at`): the frame, the same frame minimised, and the
/// regression case written to `corpus` when given.
pub fn report(
    p: &ProgramUnderTest,
    at: &str,
    frame: &[u8],
    what: &str,
    corpus: Option<&Path>,
) -> anyhow::Error {
    let (small, steps) = minimise(
        frame,
        |f| matches!(disagreement(p, f), Ok(Some(_))),
        MINIMISE_STEPS,
    );
    let now = disagreement(p, &small).ok().flatten();
    let mut msg = format!("{at}: {what}\nframe: {}", hex(frame));
    match &now {
        Some(d) => {
            let _ = write!(
                msg,
                "\nminimised to {} bytes in {steps} steps: {d}\nminimised frame: {}",
                small.len(),
                hex(&small)
            );
        }
        None => msg.push_str("\n(the disagreement does not reproduce on its own)"),
    }
    if let (Some(dir), Some(d)) = (corpus, &now) {
        let name = at.replace([',', ' '], "-").replace("--", "-");
        let comment = format!(
            "found by the fuzzer ({at}, {:?} interface, {:?}): {d}",
            p.iface.role, p.iface.source_action
        );
        match write_case(dir, &format!("fuzz-{name}"), &comment, &small) {
            Ok(path) => {
                let _ = write!(msg, "\nregression case written to {}", path.display());
            }
            Err(e) => {
                let _ = write!(msg, "\nwriting the regression case failed: {e:#}");
            }
        }
    }
    anyhow!(msg)
}

/// One frame of the regression corpus (`tests/corpus/*.hex`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorpusCase {
    /// File name.
    pub name: String,
    /// The comment lines (`#`), without the `#`.
    pub comment: Vec<String>,
    /// From an `# edge: FINAL [OTHER...]` line: on an edge interface, the
    /// global counter the frame must end in, then others it must move.
    pub edge_counters: Vec<String>,
    /// The frame.
    pub frame: Vec<u8>,
}

/// Parses a corpus file: `#` comment lines, then the frame as hex (any
/// whitespace between bytes).
pub fn parse_case(name: &str, text: &str) -> Result<CorpusCase> {
    let mut comment = Vec::new();
    let mut digits = String::new();
    for line in text.lines() {
        match line.trim().strip_prefix('#') {
            Some(c) => comment.push(c.trim().to_string()),
            None => digits.extend(line.chars().filter(|c| !c.is_whitespace())),
        }
    }
    if !digits.len().is_multiple_of(2) {
        bail!("{name}: an odd number of hex digits");
    }
    let frame = (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .with_context(|| format!("{name}: not hex"))?;
    if comment.is_empty() {
        bail!("{name}: no comment line saying what the frame exercises");
    }
    let edge_counters = comment
        .iter()
        .find_map(|c| c.strip_prefix("edge:"))
        .map(|c| c.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    Ok(CorpusCase {
        name: name.to_string(),
        comment,
        edge_counters,
        frame,
    })
}

/// Every `*.hex` file of `dir`, sorted by name.
pub fn read_corpus(dir: &Path) -> Result<Vec<CorpusCase>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "hex") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            out.push(parse_case(&name, &text)?);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Writes `frame` as `dir/NAME.hex` with `comment` (one or more lines), 32
/// bytes a line.
pub fn write_case(dir: &Path, name: &str, comment: &str, frame: &[u8]) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{name}.hex"));
    let mut text = String::new();
    for line in comment.lines() {
        let _ = writeln!(text, "# {line}");
    }
    for chunk in frame.chunks(32) {
        let _ = writeln!(text, "{}", hex(chunk));
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut r = Rng::new(seed);
        (0..n).map(|_| 1 + r.below(255) as u8).collect()
    }

    #[test]
    fn the_minimiser_keeps_only_what_the_failure_needs() {
        // Fails while the frame holds a 0xab anywhere: one byte of it
        // survives, at the minimum length, every other byte zero.
        let mut f = noise(300, 1);
        f.iter_mut()
            .for_each(|b| *b = if *b == 0xab { 1 } else { *b });
        f[150] = 0xab;
        let (small, steps) = minimise(&f, |f| f.contains(&0xab), MINIMISE_STEPS);
        assert_eq!(small.len(), MIN_FRAME);
        assert_eq!(
            small.iter().filter(|b| **b != 0).collect::<Vec<_>>(),
            [&0xab]
        );
        assert!(steps < MINIMISE_STEPS, "{steps}");

        // Fails while bytes 12..14 say IPv6 and the frame is longer than 60:
        // 61 bytes, zeros but the EtherType.
        let mut f = noise(500, 2);
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        let fails = |f: &[u8]| f.len() > 60 && f[12..14] == [0x86, 0xdd];
        let (small, _) = minimise(&f, fails, MINIMISE_STEPS);
        assert_eq!(small.len(), 61);
        assert!(fails(&small));
        assert!(
            small
                .iter()
                .enumerate()
                .all(|(i, b)| *b == 0 || i == 12 || i == 13)
        );

        // Fails while a well-formed IPv6 packet comes from one source: the
        // tail goes and the payload length follows it down to one byte.
        let src: Ipv6Addr = "2001:db8::5".parse().expect("address");
        let mut b = FrameBuilder::udp(src, ANY, 1000, 53, &[7; 200]);
        b.vlans = vec![(wire::ETH_P_8021Q, 7)];
        let fails = |f: &[u8]| {
            let pl = f
                .get(22..24)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
            f.get(26..42) == Some(&src.octets()[..])
                && pl.is_some_and(|n| n > 0 && 58 + n == f.len())
        };
        let (small, _) = minimise(&b.build(), fails, MINIMISE_STEPS);
        assert_eq!(small.len(), 14 + 4 + 40 + 1, "{small:02x?}");
        assert!(fails(&small));

        // A frame that cannot shrink stays as it is; the budget is kept.
        let f = noise(40, 3);
        let (small, steps) = minimise(&f, |x| x == f.as_slice(), 25);
        assert_eq!(small, f);
        assert_eq!(steps, 25);
    }

    #[test]
    fn corpus_files_round_trip() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("anycast-corpus-{}", std::process::id()));
        let frame = noise(70, 4);
        let path = write_case(
            &dir,
            "x",
            "what it is\nedge: redirected flow_misses",
            &frame,
        )?;
        let cases = read_corpus(&dir)?;
        std::fs::remove_dir_all(&dir)?;
        assert_eq!(path.file_name().and_then(|n| n.to_str()), Some("x.hex"));
        assert_eq!(cases.len(), 1);
        assert_eq!(cases[0].frame, frame);
        assert_eq!(
            cases[0].comment,
            ["what it is", "edge: redirected flow_misses"]
        );
        assert_eq!(cases[0].edge_counters, ["redirected", "flow_misses"]);
        assert!(parse_case("odd", "# c\nabc").is_err());
        assert!(parse_case("bad", "# c\nzz").is_err());
        assert!(parse_case("bare", "00").is_err());
        Ok(())
    }
}
