//! Differential fuzzing: random and mutated frames through the XDP program
//! (BPF_PROG_TEST_RUN) and through the reference model; both must agree on
//! the action and the bytes out of every frame, and on every counter.

use std::{collections::BTreeMap, net::Ipv6Addr};

use anycast_common::{
    IfaceRole, SourceAction,
    frame::{Ext, FrameBuilder, L4, icmpv6_error},
    model::Scope,
    wire,
};
use anyhow::{Result, bail};

use crate::prog::{ProgramUnderTest, deltas};

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
const NET: &str = "2001:db8:b::/48";
const MEMBER_MACS: [[u8; 6]; 4] = [
    [0x02, 0xbb, 0, 0, 0, 1],
    [0x02, 0xbb, 0, 0, 0, 2],
    [0x02, 0xbb, 0, 0, 0, 3],
    [0x02, 0xbb, 0, 0, 0, 4],
];

/// The program and configuration the fuzzer runs against.
pub fn fuzz_target(role: IfaceRole, action: SourceAction) -> Result<ProgramUnderTest> {
    let mut p = ProgramUnderTest::load(role, action)?;
    p.add(&ANY.to_string(), "dns")?;
    p.add(NET, "web")?;
    for (i, mac) in MEMBER_MACS.iter().enumerate() {
        let group = if i < 3 { "dns" } else { "web" };
        p.add_l2_member(group, &format!("m{i}"), *mac, if i == 2 { 20 } else { 10 })?;
    }
    Ok(p)
}

fn addr(r: &mut Rng) -> Ipv6Addr {
    match r.below(6) {
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
        _ => Ipv6Addr::from((u128::from(r.next_u64()) << 64) | u128::from(r.next_u64())),
    }
}

fn ext(r: &mut Rng) -> Ext {
    match r.below(6) {
        0 => Ext::HopByHop(r.below(3) as u8),
        1 => Ext::DestOpts(r.below(3) as u8),
        2 => Ext::Routing(r.below(3) as u8),
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
    let payload = vec![0xa5; r.below(40) as usize];
    match r.below(6) {
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
        3 => L4::Icmpv6 {
            ty: 128,
            code: 0,
            body: payload,
        },
        4 => {
            // An ICMPv6 error quoting a reply from `dst` back to `src`.
            let quoted = FrameBuilder::udp(dst, src, 53, r.below(65536) as u16, b"answer").build();
            let cut = r.below((quoted.len() - 14) as u64 + 1) as usize;
            icmpv6_error(1 + r.below(4) as u8, &quoted, Some(cut))
        }
        _ => L4::Raw {
            proto: r.below(256) as u8,
            bytes: payload,
        },
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

/// Runs `count` frames from `seed` through `p` and the model. Fails with
/// the seed, the frame's index and its bytes at the first disagreement;
/// counters are compared every `batch` frames.
pub fn run(p: &ProgramUnderTest, seed: u64, count: u64) -> Result<()> {
    let mut r = Rng::new(seed);
    let batch = 5_000;
    let mut before = p.counters()?;
    let mut want: BTreeMap<(Scope, &'static str), u64> = BTreeMap::new();
    for i in 0..count {
        let f = frame(&mut r);
        let model = p.model(&f);
        let got = p.run(&f)?;
        if got.action != model.verdict.xdp_action() || got.data != model.frame {
            bail!(
                "seed {seed}, frame {i}: program returned {} ({} bytes), model {:?} ({} bytes)\nframe: {}",
                got.action,
                got.data.len(),
                model.verdict,
                model.frame.len(),
                hex(&f)
            );
        }
        for (scope, name, n) in model.deltas {
            *want.entry((scope, name)).or_default() += n;
        }
        if (i + 1) % batch == 0 || i + 1 == count {
            let after = p.counters()?;
            let got: Vec<_> = deltas(&before, &after);
            let want_v: Vec<_> = want.iter().map(|((s, n), v)| (*s, *n, *v)).collect();
            if got != want_v {
                bail!(
                    "seed {seed}, frames up to {i}: counters differ\nprogram: {got:?}\nmodel:   {want_v:?}"
                );
            }
            before = after;
            want.clear();
        }
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
