//! End to end in the namespace lab: a live-frames generator pushes frames
//! into the router's edge interface and the bench counts what the router
//! handled (dropped, or delivered to the member), for the anycast program
//! and, in the same interleaved rounds, for what an operator would use
//! instead: kernel forwarding, nftables, xdp-filter, and trivial XDP
//! programs as the ceiling.
//!
//! ```text
//!  gen eth0 ---------- e0  router  m0 ---------- eth0 member
//!  fd00:e:1::2/64   fd00:e:1::1   fd00:e:2::1   fd00:e:2::2/64
//!  (gen_tx, live frames)                          (sink: count, drop)
//! ```
//!
//! The generator is BPF_PROG_TEST_RUN in live-frames mode running `gen_tx`
//! (XDP_TX) with the generator's veth as ingress: each frame goes out of
//! `gen/eth0` into `router/e0`; for new flows, the bench's own generator
//! ([`FlowGen`]) varies the source address and port of every frame. Generator, router and member run on one CPU
//! (the bench thread is pinned and the kernel processes the frames in
//! softirq on the CPU that sent them), which PERF-NOTES found the steadiest;
//! the rates are therefore of the whole chain and compare cases, not CPUs.
//! Then, for issue 19, the router on its own CPU (its edge veth in threaded
//! NAPI pinned to CPU 1, the generator on CPU 0), and the flow-hit redirect
//! from one CPU to two receive queues on two CPUs.

use std::{
    fmt::Write as _,
    fs,
    net::Ipv6Addr,
    path::PathBuf,
    time::{Duration, Instant},
};

use anycast::{PEERS_OBJECT, members::parse_mac};
use anycast_common::{
    GlobalCounters, GlobalStat,
    frame::FrameBuilder,
    map_names,
    peer_names::{self, GEN_HEADER_LEN},
};
use anycast_tests::lab::{End, Lab, NetNs, sh, wait_until};
use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    maps::{Array, DevMap, Map, MapData, PerCpuArray},
    programs::{TestRun as _, TestRunAttrs, TestRunOptions, Xdp},
};

use crate::{Stat, flowgen::FlowGen, stat};

/// The anycast address of the bench.
const ANY: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 0x53);
/// The anycast address of a group whose one member is encapsulated
/// (IPv6-in-IPv6 to the member's address).
const ANY_ENCAP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 0x54);
/// The same, for a group whose outer source is configured
/// (`--tunnel-source`): the FIB lookup then selects no source address.
const ANY_ENCAP_SOURCED: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 0x55);
/// The router's address towards the member: the configured outer source.
const ROUTER_M0: &str = "fd00:e:2::1";
/// The flood guard's rate in the guarded case: new flows recorded per
/// second per CPU (the rest go by the consistent hash alone).
const GUARD_RATE: &str = "1000";
/// A client address behind the generator.
const CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xe, 0x10, 0, 0, 0, 0, 2);
/// A non-anycast destination the router routes to the member.
const OTHER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xe, 0x99, 0, 0, 0, 0, 1);
const MEMBER_ADDR: &str = "fd00:e:2::2";

/// How long each case runs, and how many interleaved rounds.
pub(crate) struct Shape {
    /// Rounds (the report gives min / median / max over them).
    pub(crate) rounds: usize,
    /// Generator time per case per round.
    pub(crate) per_case: Duration,
    /// The split arrangement (router on its own CPU) for every case and the
    /// scaling of the redirect; else (quick mode) both only for trivial
    /// programs, whose attach is cheap: a proof that they work.
    pub(crate) split_every_case: bool,
}

/// Which frames a case is fed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Traffic {
    /// CLIENT -> ANY: traffic for the anycast service.
    ToAnycast,
    /// CLIENT -> ANY_ENCAP: traffic for the encapsulated member's group.
    ToEncap,
    /// CLIENT -> ANY_ENCAP_SOURCED: the same, outer source configured.
    ToEncapSourced,
    /// CLIENT -> OTHER: ordinary transit traffic.
    Transit,
    /// ANY -> OTHER: a spoofed anycast source from the edge.
    Spoofed,
}

/// Where a case's handled packets are counted.
#[derive(Clone, Copy)]
enum Counter {
    /// The member's sink: packets delivered.
    Member,
    /// XDP drops on the router's edge interface (veth `rx_queue_*_xdp_drops`).
    XdpDrops,
    /// The nftables rule's counter.
    Nft,
}

/// How the router is set up for a case.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Router {
    KernelForwarding,
    Anycast,
    /// The anycast program with the group's flow affinity off.
    AnycastStateless,
    /// The anycast program with the flood guard at [`GUARD_RATE`].
    AnycastGuarded,
    NftIngress,
    NftPrerouting,
    XdpFilter,
    Trivial(&'static str),
}

/// Which generator pushes a case's frames.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gen {
    /// `gen_tx`: the frame as built, every time.
    Fixed,
    /// The new-flow generator ([`FlowGen`]) with its variation off: one
    /// flow, at the generator's cost of the next one.
    OneFlow,
    /// The new-flow generator: a new source address and port per frame.
    NewFlows,
}

/// One case of the end-to-end bench.
struct Case {
    name: &'static str,
    router: Router,
    traffic: Traffic,
    counter: Counter,
    /// External tool the case needs (skipped, and said so, when missing).
    needs: Option<&'static str>,
    generator: Gen,
    /// The path check: a global counter of the anycast program (`stats`)
    /// that must move by at least this share of the packets handled while
    /// the case is counted, or the bench fails (the case took another path).
    expect: Option<(GlobalStat, f64)>,
}

/// The encapsulated redirect (a group whose one member is reached
/// IPv6-in-IPv6).
const ENCAP: &str = "anycast redirect IPv6-in-IPv6, flow-table hit";
/// The encapsulated redirect with the group's outer source configured.
const ENCAP_SOURCED: &str =
    "anycast redirect IPv6-in-IPv6, flow-table hit, outer source configured";
/// The flow-hit case with the new-flow generator's cost: the base of the
/// new-flow cases' ratios.
const ONE_FLOW: &str = "anycast redirect L2, one flow (new-flow generator, variation off)";
/// Every frame a new flow (source address and port), flood guard off.
const NEW_FLOWS: &str = "anycast redirect L2, every frame a new flow, flood guard off";
/// Every frame a new flow, flood guard on.
const NEW_FLOWS_GUARDED: &str =
    "anycast redirect L2, every frame a new flow, flood guard on (1000/s per CPU)";

const CASES: &[Case] = &[
    Case {
        name: "kernel forwarding (route to the member)",
        router: Router::KernelForwarding,
        traffic: Traffic::ToAnycast,
        counter: Counter::Member,
        needs: None,
        generator: Gen::Fixed,
        expect: None,
    },
    Case {
        name: "anycast redirect L2, flow-table hit",
        router: Router::Anycast,
        traffic: Traffic::ToAnycast,
        counter: Counter::Member,
        needs: None,
        generator: Gen::Fixed,
        expect: Some((GlobalStat::FlowHits, 0.95)),
    },
    Case {
        name: "anycast redirect L2, no affinity (Maglev only)",
        router: Router::AnycastStateless,
        traffic: Traffic::ToAnycast,
        counter: Counter::Member,
        needs: None,
        generator: Gen::Fixed,
        expect: Some((GlobalStat::Redirected, 0.95)),
    },
    Case {
        name: ENCAP,
        router: Router::Anycast,
        traffic: Traffic::ToEncap,
        counter: Counter::Member,
        needs: None,
        generator: Gen::Fixed,
        expect: Some((GlobalStat::FlowHits, 0.95)),
    },
    Case {
        name: ENCAP_SOURCED,
        router: Router::Anycast,
        traffic: Traffic::ToEncapSourced,
        counter: Counter::Member,
        needs: None,
        generator: Gen::Fixed,
        expect: Some((GlobalStat::FlowHits, 0.95)),
    },
    Case {
        name: ONE_FLOW,
        router: Router::Anycast,
        traffic: Traffic::ToAnycast,
        counter: Counter::Member,
        needs: None,
        generator: Gen::OneFlow,
        expect: Some((GlobalStat::FlowHits, 0.95)),
    },
    Case {
        name: NEW_FLOWS,
        router: Router::Anycast,
        traffic: Traffic::ToAnycast,
        counter: Counter::Member,
        needs: None,
        generator: Gen::NewFlows,
        expect: Some((GlobalStat::FlowMisses, 0.95)),
    },
    Case {
        name: NEW_FLOWS_GUARDED,
        router: Router::AnycastGuarded,
        traffic: Traffic::ToAnycast,
        counter: Counter::Member,
        needs: None,
        generator: Gen::NewFlows,
        expect: Some((GlobalStat::FloodBypasses, 0.95)),
    },
    Case {
        name: "trivial devmap redirect",
        router: Router::Trivial(peer_names::REDIRECT_ALL),
        traffic: Traffic::ToAnycast,
        counter: Counter::Member,
        needs: None,
        generator: Gen::Fixed,
        expect: None,
    },
    Case {
        name: "anycast attached, transit forwarded by the kernel",
        router: Router::Anycast,
        traffic: Traffic::Transit,
        counter: Counter::Member,
        needs: None,
        generator: Gen::Fixed,
        expect: None,
    },
    Case {
        name: "trivial XDP_PASS attached, transit forwarded by the kernel",
        router: Router::Trivial(peer_names::PASS_ALL),
        traffic: Traffic::Transit,
        counter: Counter::Member,
        needs: None,
        generator: Gen::Fixed,
        expect: None,
    },
    Case {
        name: "anycast-source drop",
        router: Router::Anycast,
        traffic: Traffic::Spoofed,
        counter: Counter::XdpDrops,
        needs: None,
        generator: Gen::Fixed,
        expect: Some((GlobalStat::AnycastSourceDropped, 0.95)),
    },
    Case {
        name: "nftables drop, netdev ingress",
        router: Router::NftIngress,
        traffic: Traffic::Spoofed,
        counter: Counter::Nft,
        needs: Some("nft"),
        generator: Gen::Fixed,
        expect: None,
    },
    Case {
        name: "nftables drop, inet prerouting",
        router: Router::NftPrerouting,
        traffic: Traffic::Spoofed,
        counter: Counter::Nft,
        needs: Some("nft"),
        generator: Gen::Fixed,
        expect: None,
    },
    Case {
        name: "xdp-filter source deny",
        router: Router::XdpFilter,
        traffic: Traffic::Spoofed,
        counter: Counter::XdpDrops,
        needs: Some("xdp-filter"),
        generator: Gen::Fixed,
        expect: None,
    },
    Case {
        name: "trivial hash lookup then drop",
        router: Router::Trivial(peer_names::LOOKUP_DROP),
        traffic: Traffic::Spoofed,
        counter: Counter::XdpDrops,
        needs: None,
        generator: Gen::Fixed,
        expect: None,
    },
    Case {
        name: "trivial XDP_DROP",
        router: Router::Trivial(peer_names::DROP_ALL),
        traffic: Traffic::Spoofed,
        counter: Counter::XdpDrops,
        needs: None,
        generator: Gen::Fixed,
        expect: None,
    },
];

const DROP: &str = "anycast-source drop";
const REDIRECT: &str = "anycast redirect L2, flow-table hit";
const DEVMAP: &str = "trivial devmap redirect";
const KERNEL_FORWARDING: &str = "kernel forwarding (route to the member)";
const NFT_INGRESS: &str = "nftables drop, netdev ingress";
const LOOKUP: &str = "trivial hash lookup then drop";

/// Frame sizes measured (bytes on the wire without the FCS).
pub(crate) const FRAME_SIZES: [usize; 2] = [64, 512];

/// One measured case at one frame size: Mpps per round.
pub(crate) struct E2eRow {
    /// Frame size in bytes.
    pub(crate) size: usize,
    /// Case name.
    pub(crate) name: &'static str,
    /// Mpps over the rounds.
    pub(crate) mpps: Stat,
    /// Mpps of each round, in round order (for per-round ratios).
    pub(crate) rounds: Vec<f64>,
    /// Lowest share of the generated frames the router handled (1.0: none lost).
    pub(crate) handled: f64,
    /// ns per run of the XDP program on the edge interface, measured in
    /// place with `kernel.bpf_stats_enabled` (64-byte frames; None without
    /// a program there).
    pub(crate) in_place_ns: Option<f64>,
}

/// The lab and the peer programs, removed on drop.
struct Bench {
    lab: Lab,
    peers: Ebpf,
    peer_pins: PathBuf,
    _pins: PinsGuard,
    gen_ifindex: u32,
    nft_file: PathBuf,
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.nft_file);
    }
}

/// Removes a pin directory on drop, also when building the bench fails
/// half-way.
struct PinsGuard(PathBuf);

impl Drop for PinsGuard {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs `args` in `ns`'s network namespace, keeping the mount namespace
/// (bpffs pins stay visible; `ip netns exec` and `ip -n` would hide them).
fn in_ns(ns: &NetNs, args: &[&str]) -> Result<String> {
    let net = format!("--net=/run/netns/{}", ns.name);
    let mut v = vec!["nsenter", net.as_str()];
    v.extend_from_slice(args);
    sh(&v)
}

fn have(tool: &str) -> bool {
    sh(&["sh", "-c", &format!("command -v {tool}")]).is_ok()
}

/// A frame of `size` bytes for `traffic`, addressed gen -> router.
fn frame(traffic: Traffic, size: usize) -> Result<Vec<u8>> {
    let (src, dst) = match traffic {
        Traffic::ToAnycast => (CLIENT, ANY),
        Traffic::ToEncap => (CLIENT, ANY_ENCAP),
        Traffic::ToEncapSourced => (CLIENT, ANY_ENCAP_SOURCED),
        Traffic::Transit => (CLIENT, OTHER),
        Traffic::Spoofed => (ANY, OTHER),
    };
    // Ethernet 14 + IPv6 40 + UDP 8.
    let payload = vec![
        0x5a;
        size.checked_sub(62)
            .context("frames are at least 62 bytes")?
    ];
    let mut b = FrameBuilder::udp(src, dst, 4000, 53, &payload);
    b.dst_mac = parse_mac(&Lab::mac(1, 2))?;
    b.src_mac = parse_mac(&Lab::mac(1, 1))?;
    Ok(b.build())
}

impl Bench {
    fn build() -> Result<Self> {
        let mut lab = Lab::new("bench-e2e")?;
        for (n, fwd) in [("gen", false), ("router", true), ("member", false)] {
            lab.node(n, fwd)?;
        }
        let e = |node, ifname, addr| End { node, ifname, addr };
        lab.link(
            e("gen", "eth0", "fd00:e:1::2/64"),
            e("router", "e0", "fd00:e:1::1/64"),
        )?;
        lab.link(
            e("router", "m0", "fd00:e:2::1/64"),
            e("member", "eth0", "fd00:e:2::2/64"),
        )?;
        // Standard routing: the anycast address and the transit prefix both
        // lead to the member.
        lab.route("router", &format!("{ANY}/128"), MEMBER_ADDR)?;
        lab.route("router", "fd00:e:99::/64", MEMBER_ADDR)?;

        let peer_pins = PathBuf::from(format!("/sys/fs/bpf/{}-peers", lab.prefix));
        fs::create_dir_all(&peer_pins)
            .with_context(|| format!("creating {}", peer_pins.display()))?;
        let pins = PinsGuard(peer_pins.clone());
        let mut peers = Ebpf::load(PEERS_OBJECT).context("loading the peer programs")?;
        for name in [
            peer_names::GEN_TX,
            peer_names::SINK,
            peer_names::DROP_ALL,
            peer_names::PASS_ALL,
            peer_names::REDIRECT_ALL,
            peer_names::LOOKUP_DROP,
        ] {
            let p: &mut Xdp = peers
                .program_mut(name)
                .with_context(|| format!("no program {name}"))?
                .try_into()?;
            p.load().with_context(|| format!("loading {name}"))?;
            p.pin(peer_pins.join(name))
                .with_context(|| format!("pinning {name}"))?;
        }
        peers
            .map_mut(peer_names::PEER_PORT)
            .context("no PEER_PORT")?
            .pin(peer_pins.join(peer_names::PEER_PORT))?;
        {
            let mut deny: aya::maps::HashMap<_, [u8; 16], u8> = aya::maps::HashMap::try_from(
                peers
                    .map_mut(peer_names::DENY_SOURCES)
                    .context("no DENY_SOURCES")?,
            )?;
            deny.insert(ANY.octets(), 1, 0)?;
        }

        // The member counts and drops what reaches it.
        let pin = |name: &str| peer_pins.join(name).display().to_string();
        in_ns(
            lab.ns("member")?,
            &[
                "ip",
                "link",
                "set",
                "dev",
                "eth0",
                "xdpdrv",
                "pinned",
                &pin(peer_names::SINK),
            ],
        )?;
        // The devmap holds an ifindex of the router's namespace: set it there.
        let port_pin = peer_pins.join(peer_names::PEER_PORT);
        lab.ns("router")?.run(move || -> Result<()> {
            let ifindex = anycast::link::ifindex("m0")?;
            let data = MapData::from_pin(&port_pin)?;
            let mut map = Map::from_map_data(data)?;
            DevMap::try_from(&mut map)?.set(0, ifindex, None, 0)?;
            Ok(())
        })??;
        let gen_ifindex = lab.ns("gen")?.run(|| anycast::link::ifindex("eth0"))??;

        // The anycast data plane: the group and its on-link member are
        // configured once; the program is attached only for its cases.
        // Lab MACs are fixed: link 2, side 2 is the member's eth0.
        let member_mac = Lab::mac(2, 2);
        lab.anycast_ok(
            "router",
            &["addr", "add", &ANY.to_string(), "--group", "dns"],
        )?;
        lab.anycast_ok(
            "router",
            &[
                "member",
                "add",
                "dns",
                "m1",
                "--iface",
                "m0",
                "--mac",
                &member_mac,
                "--metric",
                "10",
            ],
        )?;
        // The encapsulated member: the member's own address, reached
        // through m0 (a permanent neighbour entry, so that the program's
        // FIB lookup finds the MAC at once).
        lab.anycast_ok(
            "router",
            &["addr", "add", &ANY_ENCAP.to_string(), "--group", "far"],
        )?;
        lab.anycast_ok(
            "router",
            &[
                "member",
                "add",
                "far",
                "f1",
                "--encap",
                MEMBER_ADDR,
                "--metric",
                "10",
            ],
        )?;
        lab.anycast_ok(
            "router",
            &[
                "addr",
                "add",
                &ANY_ENCAP_SOURCED.to_string(),
                "--group",
                "far-sourced",
            ],
        )?;
        lab.anycast_ok(
            "router",
            &[
                "member",
                "add",
                "far-sourced",
                "f2",
                "--encap",
                MEMBER_ADDR,
                "--metric",
                "10",
            ],
        )?;
        lab.anycast_ok(
            "router",
            &["group", "set", "far-sourced", "--tunnel-source", ROUTER_M0],
        )?;
        lab.ns("router")?.ip(&[
            "-6",
            "neigh",
            "replace",
            MEMBER_ADDR,
            "lladdr",
            &member_mac,
            "dev",
            "m0",
            "nud",
            "permanent",
        ])?;
        let nft_file = PathBuf::from(format!("/tmp/{}-nft.conf", lab.prefix));
        Ok(Bench {
            lab,
            peers,
            peer_pins,
            _pins: pins,
            gen_ifindex,
            nft_file,
        })
    }

    fn router(&self) -> Result<&NetNs> {
        self.lab.ns("router")
    }

    /// Runs `args` in the router's network namespace.
    fn in_router(&self, args: &[&str]) -> Result<String> {
        in_ns(self.router()?, args)
    }

    /// Sets the router up for a case; on failure, undoes what it can.
    fn setup(&self, router: Router) -> Result<()> {
        let r = self.try_setup(router);
        if r.is_err() {
            let _ = self.teardown(router);
        }
        r
    }

    fn try_setup(&self, router: Router) -> Result<()> {
        match router {
            Router::KernelForwarding => {}
            Router::Anycast | Router::AnycastStateless | Router::AnycastGuarded => {
                let affinity = if router == Router::AnycastStateless {
                    "none"
                } else {
                    "flow"
                };
                self.lab
                    .anycast_ok("router", &["group", "set", "dns", "--affinity", affinity])?;
                if router == Router::AnycastGuarded {
                    self.lab
                        .anycast_ok("router", &["flows", "guard", "--rate", GUARD_RATE])?;
                }
                self.lab.anycast_ok(
                    "router",
                    &["attach", "e0", "--role", "edge", "--mode", "native"],
                )?;
            }
            Router::NftIngress | Router::NftPrerouting => {
                let rules = if router == Router::NftIngress {
                    format!(
                        "table netdev acbench {{\n chain edge {{\n  type filter hook ingress device \"e0\" priority 0;\n  ip6 saddr {ANY} counter drop\n }}\n}}\n"
                    )
                } else {
                    format!(
                        "table inet acbench {{\n chain edge {{\n  type filter hook prerouting priority -300;\n  ip6 saddr {ANY} counter drop\n }}\n}}\n"
                    )
                };
                fs::write(&self.nft_file, rules)?;
                self.in_router(&["nft", "-f", &self.nft_file.display().to_string()])?;
            }
            Router::XdpFilter => {
                self.in_router(&["xdp-filter", "load", "e0", "--mode", "native", "-f", "ipv6"])?;
                self.in_router(&["xdp-filter", "ip", "--mode", "src", &ANY.to_string()])?;
            }
            Router::Trivial(name) => {
                let pin = self.peer_pins.join(name).display().to_string();
                self.in_router(&["ip", "link", "set", "dev", "e0", "xdpdrv", "pinned", &pin])?;
            }
        }
        Ok(())
    }

    fn teardown(&self, router: Router) -> Result<()> {
        match router {
            Router::KernelForwarding => {}
            Router::Anycast | Router::AnycastStateless | Router::AnycastGuarded => {
                self.lab.anycast_ok("router", &["detach", "e0"])?;
                if router == Router::AnycastGuarded {
                    self.lab
                        .anycast_ok("router", &["flows", "guard", "--rate", "0"])?;
                }
            }
            Router::NftIngress => {
                self.in_router(&["nft", "delete", "table", "netdev", "acbench"])?;
            }
            Router::NftPrerouting => {
                self.in_router(&["nft", "delete", "table", "inet", "acbench"])?;
            }
            Router::XdpFilter => {
                self.in_router(&["xdp-filter", "unload", "e0"])?;
            }
            Router::Trivial(_) => {
                self.router()?
                    .ip(&["link", "set", "dev", "e0", "xdpdrv", "off"])?;
            }
        }
        Ok(())
    }

    fn count(&self, counter: Counter, router: Router) -> Result<u64> {
        match counter {
            Counter::Member => {
                let sink: PerCpuArray<_, u64> = PerCpuArray::try_from(
                    self.peers
                        .map(peer_names::SINK_PACKETS)
                        .context("no SINK_PACKETS")?,
                )?;
                Ok(sink.get(&0, 0)?.iter().sum())
            }
            Counter::XdpDrops => {
                let out = self.in_router(&["ethtool", "-S", "e0"])?;
                Ok(out
                    .lines()
                    .filter_map(|l| l.trim().split_once(':'))
                    .filter(|(k, _)| k.starts_with("rx_queue_") && k.ends_with("_xdp_drops"))
                    .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
                    .sum())
            }
            Counter::Nft => {
                let family = if router == Router::NftIngress {
                    "netdev"
                } else {
                    "inet"
                };
                let out = self.in_router(&["nft", "list", "table", family, "acbench"])?;
                out.split("counter packets ")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
                    .context("no counter in the nftables rule")
            }
        }
    }

    /// The id of the XDP program attached to the router's edge interface
    /// (libxdp's dispatcher for xdp-filter).
    fn edge_prog_id(&self) -> Result<u32> {
        let out = self.router()?.ip(&["-j", "link", "show", "dev", "e0"])?;
        let v: serde_json::Value = serde_json::from_str(&out)?;
        let xdp = &v[0]["xdp"];
        xdp["prog"]["id"]
            .as_u64()
            .or_else(|| xdp["attached"][0]["prog"]["id"].as_u64())
            .and_then(|id| u32::try_from(id).ok())
            .context("no XDP program on e0")
    }

    /// The edge program's mean run time per packet while `frame` flows for
    /// `time` (needs [`BpfStats`]).
    fn in_place(&self, frame: &[u8], time: Duration, kind: Gen) -> Result<f64> {
        self.generate(frame, Duration::ZERO, kind)?;
        let id = self.edge_prog_id()?;
        let sample = || -> Result<(Duration, u64)> {
            let p = aya::programs::loaded_programs()
                .filter_map(Result::ok)
                .find(|p| p.id() == id)
                .context("the edge program is gone")?;
            Ok((p.run_time(), p.run_count()))
        };
        let (t0, n0) = sample()?;
        self.generate(frame, time, kind)?;
        let (t1, n1) = sample()?;
        let runs = n1.saturating_sub(n0);
        if runs == 0 {
            bail!("the edge program did not run");
        }
        Ok(t1.saturating_sub(t0).as_nanos() as f64 / runs as f64)
    }

    /// Pushes `frame` for about `time` (at least one call) with generator
    /// `kind`, from CPU 0.
    fn generate(&self, frame: &[u8], time: Duration, kind: Gen) -> Result<Generated> {
        self.generate_on(frame, time, kind, &[0])?
            .pop()
            .context("no generator ran")
    }

    /// [`Bench::generate`] from one thread per CPU of `cpus` at once (each
    /// pinned to its CPU); what each did, in the order of `cpus`.
    fn generate_on(
        &self,
        frame: &[u8],
        time: Duration,
        kind: Gen,
        cpus: &[usize],
    ) -> Result<Vec<Generated>> {
        let mut header = [0u64; GEN_HEADER_LEN / 8];
        header_words(&mut header, frame)?;
        let ifindex = self.gen_ifindex;
        let ns = format!("/run/netns/{}", self.lab.ns("gen")?.name);
        // The threads start pushing together, each after loading its own
        // generator (milliseconds).
        let start = std::sync::Arc::new(std::sync::Barrier::new(cpus.len()));
        let threads: Vec<_> = cpus
            .iter()
            .map(|&cpu| {
                let (frame, ns, start) = (frame.to_vec(), ns.clone(), start.clone());
                std::thread::spawn(move || -> Result<Generated> {
                    // A failure before the barrier would leave the others
                    // waiting: wait first, fail after.
                    let ready = (|| -> Result<Generator> {
                        anycast::netns::enter(&ns)?;
                        pin_to_cpu(cpu)?;
                        // A generator of its own for each case: the program
                        // must run in this namespace's thread (the kernel
                        // resolves the ingress ifindex here), and loading it
                        // takes milliseconds.
                        Generator::load(kind, header)
                    })();
                    start.wait();
                    push_for(&ready?, &frame, ifindex, time)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .map_err(|_| anyhow::anyhow!("a generator thread panicked"))?
            })
            .collect()
    }

    /// Counts case `c` for about `time` with one generator per CPU of
    /// `cpus`: (Mpps, share of the generated frames handled). With more than
    /// one CPU the rate is the sum over CPUs of each one's handled packets
    /// (the member's per-CPU count) per second of its generator's loop.
    fn measure_case(
        &self,
        c: &Case,
        f: &[u8],
        time: Duration,
        cpus: &[usize],
    ) -> Result<(f64, f64)> {
        // The first frames after an attach are slow (pages, queues): warm
        // up outside the count.
        self.generate_on(f, Duration::ZERO, c.generator, cpus)?;
        let path_before = c
            .expect
            .map(|(stat, _)| self.global_counter(stat))
            .transpose()?;
        let per_cpu = cpus.len() > 1;
        if per_cpu && !matches!(c.counter, Counter::Member) {
            bail!("more than one generator needs the member's per-CPU count");
        }
        let before = self.count(c.counter, c.router)?;
        let before_cpu = if per_cpu {
            self.member_per_cpu()?
        } else {
            Vec::new()
        };
        let g = self.generate_on(f, time, c.generator, cpus)?;
        let after = self.count(c.counter, c.router)?;
        let handled = after.saturating_sub(before);
        if handled == 0 {
            bail!("nothing was counted: the lab is broken");
        }
        if let (Some((stat, share)), Some(path_before)) = (c.expect, path_before) {
            let moved = self.global_counter(stat)?.saturating_sub(path_before);
            let name = stat.name();
            if (moved as f64) < share * handled as f64 {
                bail!(
                    "the path check failed: `{name}` moved by {moved} while {handled} packets were handled (at least {:.0}% expected): the case took another path",
                    share * 100.0
                );
            }
        }
        let frames: u64 = g.iter().map(|g| g.frames).sum();
        let mpps = if per_cpu {
            let after_cpu = self.member_per_cpu()?;
            let mut mpps = 0.0;
            for (&cpu, g) in cpus.iter().zip(&g) {
                let n = after_cpu.get(cpu).copied().unwrap_or(0)
                    - before_cpu.get(cpu).copied().unwrap_or(0);
                if n == 0 {
                    let stats = |node: &str, ifname: &str| {
                        self.lab
                            .ns(node)
                            .and_then(|ns| ns.exec(&["ethtool", "-S", ifname]))
                            .unwrap_or_else(|e| format!("{e:#}"))
                    };
                    bail!(
                        "CPU {cpu} handled nothing: its chain is broken (router e0: {}; member eth0: {})",
                        stats("router", "e0"),
                        stats("member", "eth0")
                    );
                }
                mpps += n as f64 / g.busy.as_secs_f64() / 1e6;
            }
            mpps
        } else {
            let busy = g.first().context("no generator ran")?.busy;
            handled as f64 / busy.as_secs_f64() / 1e6
        };
        Ok((mpps, handled as f64 / frames as f64))
    }

    /// The member's sink count per CPU.
    fn member_per_cpu(&self) -> Result<Vec<u64>> {
        let sink: PerCpuArray<_, u64> = PerCpuArray::try_from(
            self.peers
                .map(peer_names::SINK_PACKETS)
                .context("no SINK_PACKETS")?,
        )?;
        Ok(sink.get(&0, 0)?.iter().copied().collect())
    }

    /// The split arrangement: the router's e0 in threaded NAPI, its
    /// threads pinned to [`ROUTER_CPU`]. Returns their thread ids.
    fn split_on(&self) -> Result<Vec<u32>> {
        let before = napi_threads("e0")?;
        self.router_sysfs("echo 1 > /sys/class/net/e0/threaded")?;
        // The kernel starts the threads at once; ours are the new ones
        // (another lab may have an e0 of its own).
        let mut ours = Vec::new();
        wait_until("the router's NAPI thread", Duration::from_secs(5), || {
            ours = napi_threads("e0")
                .unwrap_or_default()
                .into_iter()
                .filter(|t| !before.contains(t))
                .collect();
            !ours.is_empty()
        })?;
        for &tid in &ours {
            set_affinity(tid, ROUTER_CPU)?;
            // Real-time, as a router's NAPI threads are run: on this
            // shared VM a builder on that CPU would otherwise take turns
            // with the router, and its receive ring would overflow while
            // the generator's clock runs.
            let param = libc::sched_param { sched_priority: 50 };
            // SAFETY: a valid sched_param for a thread id.
            if unsafe { libc::sched_setscheduler(tid as libc::pid_t, libc::SCHED_FIFO, &param) }
                != 0
            {
                bail!(
                    "sched_setscheduler({tid}, SCHED_FIFO): {}",
                    std::io::Error::last_os_error()
                );
            }
        }
        Ok(ours)
    }

    fn split_off(&self) -> Result<()> {
        self.router_sysfs("echo 0 > /sys/class/net/e0/threaded")
    }

    /// Runs `script` in the router's namespace with its own sysfs
    /// (`ip netns exec` mounts one: /sys/class/net is per namespace).
    fn router_sysfs(&self, script: &str) -> Result<()> {
        let ns = &self.router()?.name;
        sh(&["ip", "netns", "exec", ns, "sh", "-c", script])?;
        Ok(())
    }

    /// `n` receive and transmit queues on every veth of the chain (veths
    /// are made with one in use and one per CPU possible). A veth refuses
    /// to send on more queues than an XDP-attached peer receives on: the
    /// receivers go first when adding queues, last when removing them.
    fn queues(&self, n: usize) -> Result<()> {
        let mut ends = [
            ("member", "eth0"),
            ("router", "m0"),
            ("router", "e0"),
            ("gen", "eth0"),
        ];
        if n == 1 {
            ends.reverse();
        }
        let n = n.to_string();
        for (node, ifname) in ends {
            self.lab
                .ns(node)?
                .exec(&["ethtool", "-L", ifname, "rx", &n, "tx", &n])
                .with_context(|| format!("ethtool -L {node}/{ifname}"))?;
        }
        // The queues a veth gains run no XDP program until one is
        // attached again (their frames would pass the sink uncounted).
        let member = self.lab.ns("member")?;
        member.ip(&["link", "set", "dev", "eth0", "xdpdrv", "off"])?;
        let sink = self.peer_pins.join(peer_names::SINK).display().to_string();
        in_ns(
            member,
            &[
                "ip", "link", "set", "dev", "eth0", "xdpdrv", "pinned", &sink,
            ],
        )?;
        Ok(())
    }

    /// The anycast program's global counter `stat`, summed over CPUs,
    /// read from its pinned map (`anycast stats` would also walk the flow
    /// table, which takes seconds once new flows have filled it).
    fn global_counter(&self, stat: GlobalStat) -> Result<u64> {
        let data = MapData::from_pin(self.lab.pin_dir.join(map_names::GLOBAL_STATS))
            .context("opening the pinned global counters")?;
        let map = Map::from_map_data(data)?;
        let counters: PerCpuArray<_, GlobalCounters> = PerCpuArray::try_from(&map)?;
        Ok(counters
            .get(&0, 0)?
            .iter()
            .map(|c| c.counters[stat as usize])
            .sum())
    }
}

/// A loaded generator (see [`Gen`]).
enum Generator {
    /// The peers object, `gen_tx` loaded.
    Tx(Ebpf),
    Flows(FlowGen),
}

impl Generator {
    fn load(kind: Gen, header: [u64; GEN_HEADER_LEN / 8]) -> Result<Self> {
        Ok(match kind {
            Gen::Fixed => {
                let mut ebpf = Ebpf::load(PEERS_OBJECT).context("loading the generator")?;
                Array::<_, [u64; GEN_HEADER_LEN / 8]>::try_from(
                    ebpf.map_mut(peer_names::GEN_HEADER)
                        .context("no GEN_HEADER")?,
                )?
                .set(0, header, 0)?;
                let prog: &mut Xdp = ebpf
                    .program_mut(peer_names::GEN_TX)
                    .context("no gen_tx")?
                    .try_into()?;
                prog.load()?;
                Generator::Tx(ebpf)
            }
            Gen::OneFlow | Gen::NewFlows => {
                Generator::Flows(FlowGen::load(&header, kind == Gen::NewFlows)?)
            }
        })
    }

    /// One live-frames call of `repeat` frames; the kernel's mean time per frame.
    fn push(&self, frame: &[u8], ctx: &[u8], repeat: u32) -> Result<Duration> {
        match self {
            Generator::Tx(ebpf) => {
                let prog: &Xdp = ebpf
                    .program(peer_names::GEN_TX)
                    .context("no gen_tx")?
                    .try_into()?;
                let mut opts = TestRunOptions::new();
                opts.data_in = Some(frame);
                opts.ctx_in = Some(ctx);
                opts.repeat = repeat;
                opts.attrs = TestRunAttrs::new().xdp_live_frames(64);
                Ok(prog
                    .test_run(opts)
                    .context("live-frames test run")?
                    .duration)
            }
            Generator::Flows(g) => g.run(frame, ctx, repeat, 64),
        }
    }
}

/// What the generator did.
#[derive(Default)]
struct Generated {
    /// Frames pushed.
    frames: u64,
    /// Time in the kernel's timed loop: generating and, in softirq on the
    /// same CPU, everything the router and the member did with the frames.
    /// It leaves out the RCU wait at the end of each call and any time the
    /// thread was scheduled out.
    busy: Duration,
}

/// The first GEN_HEADER_LEN bytes of `frame` as the u64 words gen_tx copies.
fn header_words(out: &mut [u64; GEN_HEADER_LEN / 8], frame: &[u8]) -> Result<()> {
    let head = frame
        .get(..GEN_HEADER_LEN)
        .context("frame shorter than the generator's header")?;
    for (w, chunk) in out.iter_mut().zip(head.chunks_exact(8)) {
        *w = u64::from_ne_bytes(chunk.try_into()?);
    }
    Ok(())
}

/// Pushes `frame` with `generator` for about `time` (at least one call)
/// from the calling thread.
fn push_for(
    generator: &Generator,
    frame: &[u8],
    ifindex: u32,
    time: Duration,
) -> Result<Generated> {
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
    // rx_queue_index, egress_ifindex.
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
    let started = Instant::now();
    // Calls of about a quarter of the case each: a live-frames call
    // waits several ms for RCU on return.
    let mut repeat = 100_000u32;
    let mut calls = 0;
    let mut done = Generated::default();
    while calls == 0 || (started.elapsed() < time && calls < 1000) {
        let t = Instant::now();
        let per_frame = generator.push(frame, &ctx, repeat)?;
        calls += 1;
        done.frames += u64::from(repeat);
        done.busy += per_frame * repeat;
        let rate = f64::from(repeat) / t.elapsed().as_secs_f64().max(1e-6);
        repeat = (rate * time.as_secs_f64() / 4.0).clamp(10_000.0, 50_000_000.0) as u32;
    }
    Ok(done)
}

fn pin_to_cpu(cpu: usize) -> Result<()> {
    set_affinity(0, cpu)
}

/// Pins thread `tid` (0: the calling thread) to `cpu`.
fn set_affinity(tid: u32, cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(tid as libc::pid_t, size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!(
                "sched_setaffinity({tid}): {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

/// What the end-to-end lab measured.
#[derive(Default)]
pub(crate) struct E2e {
    /// Generator, router and member on one CPU: every case at every frame size.
    pub(crate) shared: Vec<E2eRow>,
    /// The generator on CPU 0, the router's receive in threaded NAPI on
    /// CPU 1: the cases at 64 bytes (quick mode: only those its targets judge).
    pub(crate) split: Vec<E2eRow>,
    /// One generator on one CPU against two on two CPUs, two receive queues.
    pub(crate) scaling: Vec<ScaleRow>,
    /// Skipped cases and the like.
    pub(crate) notes: Vec<String>,
    /// How long the split arrangement and the scaling took together.
    pub(crate) arrangements_took: Duration,
}

/// A case measured with one and with two generators (two receive queues).
pub(crate) struct ScaleRow {
    pub(crate) name: &'static str,
    /// Mpps with one generator (CPU 0), per round.
    pub(crate) one: Vec<f64>,
    /// Mpps with two generators (CPUs 0 and 1, one receive queue each), per round.
    pub(crate) two: Vec<f64>,
}

impl ScaleRow {
    /// Median over rounds of two / one.
    pub(crate) fn factor(&self) -> f64 {
        let v: Vec<f64> = self.two.iter().zip(&self.one).map(|(t, o)| t / o).collect();
        stat(v).median
    }
}

/// The cases of the scaling measurement (item 5 of issue 19): the
/// redirect with a flow hit, and the trivial devmap redirect beside it as
/// what this VM's two CPUs allow.
const SCALED: [&str; 2] = [REDIRECT, DEVMAP];

/// The cases quick mode runs with the router on its own CPU (and, of
/// them, scales): trivial programs, attached in milliseconds (an attach
/// of the anycast program takes the verifier seconds on this VM).
const QUICK_SPLIT: [&str; 2] = [DEVMAP, DROP_CHAIN];

/// Runs every case at every frame size, interleaved over `shape.rounds`,
/// then (full mode) the split arrangement and the scaling.
pub(crate) fn run(shape: &Shape) -> Result<E2e> {
    let bench = Bench::build()?;
    let mut notes = Vec::new();
    // ANYCAST_BENCH_CASES=a,b: only cases whose names contain a or b (for
    // profiling one case with perf while it runs).
    let only = std::env::var("ANYCAST_BENCH_CASES").ok();
    let cases: Vec<&Case> = CASES
        .iter()
        .filter(|c| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|w| c.name.contains(w)))
        })
        .filter(|c| match c.needs {
            Some(tool) if !have(tool) => {
                notes.push(format!("{}: skipped, `{tool}` is not installed", c.name));
                false
            }
            _ => true,
        })
        .collect();
    let mut shared = measure(&bench, &cases, shape, &FRAME_SIZES)?;
    // The profile: each edge program's own time per packet, in place.
    {
        let _stats = BpfStats::enable()?;
        for c in &cases {
            if c.router == Router::KernelForwarding
                || c.router == Router::NftIngress
                || c.router == Router::NftPrerouting
            {
                continue;
            }
            let f = frame(c.traffic, 64)?;
            bench.setup(c.router)?;
            let ns = bench.in_place(&f, shape.per_case / 2, c.generator);
            bench.teardown(c.router)?;
            let ns = ns.with_context(|| format!("profiling `{}`", c.name))?;
            if let Some(r) = shared.iter_mut().find(|r| r.size == 64 && r.name == c.name) {
                r.in_place_ns = Some(ns);
            }
        }
    }
    let arrangements = Instant::now();
    let split_cases: Vec<&Case> = cases
        .iter()
        .copied()
        .filter(|c| shape.split_every_case || QUICK_SPLIT.contains(&c.name))
        .collect();
    let napi = bench
        .split_on()
        .context("threaded NAPI for the router's e0")?;
    let measured = measure_split(&bench, &split_cases, shape, &napi);
    let off = bench.split_off();
    let split = measured.context("the split arrangement")?;
    off.context("threaded NAPI off again")?;
    let scaled: Vec<&Case> = cases
        .iter()
        .copied()
        .filter(|c| SCALED.contains(&c.name))
        .filter(|c| shape.split_every_case || QUICK_SPLIT.contains(&c.name))
        .collect();
    bench.queues(2).context("two queues on the veths")?;
    let measured = measure_scaling(&bench, &scaled, shape);
    let back = bench.queues(1);
    let scaling = measured.context("the scaling over two CPUs")?;
    back.context("one queue on the veths again")?;
    Ok(E2e {
        shared,
        split,
        scaling,
        notes,
        arrangements_took: arrangements.elapsed(),
    })
}

/// The split arrangement's rounds, checking after each case that the
/// router's NAPI thread still exists and ran on CPU 1.
fn measure_split(
    bench: &Bench,
    cases: &[&Case],
    shape: &Shape,
    napi: &[u32],
) -> Result<Vec<E2eRow>> {
    let check = || -> Result<()> {
        for &tid in napi {
            let cpu = last_cpu(tid)?;
            if cpu != ROUTER_CPU {
                bail!("the router's NAPI thread {tid} last ran on CPU {cpu}, not {ROUTER_CPU}");
            }
        }
        Ok(())
    };
    measure_with(bench, cases, shape, &[64], &check)
}

/// Every case at each of `sizes`, interleaved over `shape.rounds`.
fn measure(bench: &Bench, cases: &[&Case], shape: &Shape, sizes: &[usize]) -> Result<Vec<E2eRow>> {
    measure_with(bench, cases, shape, sizes, &|| Ok(()))
}

/// [`measure`], calling `after_case` after each case is counted.
fn measure_with(
    bench: &Bench,
    cases: &[&Case],
    shape: &Shape,
    sizes: &[usize],
    after_case: &dyn Fn() -> Result<()>,
) -> Result<Vec<E2eRow>> {
    let mut samples = vec![vec![Vec::new(); cases.len()]; sizes.len()];
    let mut handled_share = samples.clone();
    for _ in 0..shape.rounds {
        for (si, &size) in sizes.iter().enumerate() {
            for (ci, c) in cases.iter().enumerate() {
                let f = frame(c.traffic, size)?;
                bench
                    .setup(c.router)
                    .with_context(|| format!("setting up `{}`", c.name))?;
                let measured = bench.measure_case(c, &f, shape.per_case, &[0]);
                bench
                    .teardown(c.router)
                    .with_context(|| format!("tearing down `{}`", c.name))?;
                let (mpps, share) = measured.with_context(|| format!("`{}`", c.name))?;
                after_case().with_context(|| format!("`{}`", c.name))?;
                samples[si][ci].push(mpps);
                handled_share[si][ci].push(share);
            }
        }
    }
    let mut rows = Vec::new();
    for (si, &size) in sizes.iter().enumerate() {
        for (ci, c) in cases.iter().enumerate() {
            let rounds = samples[si][ci].clone();
            rows.push(E2eRow {
                size,
                name: c.name,
                mpps: stat(rounds.clone()),
                rounds,
                handled: stat(handled_share[si][ci].clone()).min,
                in_place_ns: None,
            });
        }
    }
    Ok(rows)
}

/// One generator on CPU 0 against two on CPUs 0 and 1 (each CPU's frames
/// go to its own receive queue of e0, and on to its own queue of the
/// member's eth0), interleaved, 64-byte frames.
fn measure_scaling(bench: &Bench, cases: &[&Case], shape: &Shape) -> Result<Vec<ScaleRow>> {
    let mut rows: Vec<ScaleRow> = cases
        .iter()
        .map(|c| ScaleRow {
            name: c.name,
            one: Vec::new(),
            two: Vec::new(),
        })
        .collect();
    for _ in 0..shape.rounds {
        for (c, row) in cases.iter().zip(rows.iter_mut()) {
            let f = frame(c.traffic, 64)?;
            bench
                .setup(c.router)
                .with_context(|| format!("setting up `{}`", c.name))?;
            let measured = (|| -> Result<(f64, f64)> {
                let (one, _) = bench.measure_case(c, &f, shape.per_case, &[0])?;
                let (two, _) = bench.measure_case(c, &f, shape.per_case, &[0, ROUTER_CPU])?;
                Ok((one, two))
            })();
            bench
                .teardown(c.router)
                .with_context(|| format!("tearing down `{}`", c.name))?;
            let (one, two) = measured.with_context(|| format!("scaling `{}`", c.name))?;
            row.one.push(one);
            row.two.push(two);
        }
    }
    Ok(rows)
}

/// The CPU the router's receive runs on in the split arrangement (the
/// generator runs on CPU 0).
const ROUTER_CPU: usize = 1;

/// The CPU thread `tid` last ran on (`/proc/TID/stat`, field 39).
fn last_cpu(tid: u32) -> Result<usize> {
    let stat = fs::read_to_string(format!("/proc/{tid}/stat"))
        .with_context(|| format!("thread {tid} is gone"))?;
    // The command may hold spaces: count fields after its closing parenthesis.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    rest.split_whitespace()
        .nth(39 - 3)
        .and_then(|f| f.parse().ok())
        .with_context(|| format!("no CPU in /proc/{tid}/stat"))
}

/// Thread ids of the kernel's NAPI threads of devices named `ifname`
/// (in any namespace: `napi/IFNAME-ID`).
fn napi_threads(ifname: &str) -> Result<Vec<u32>> {
    let prefix = format!("napi/{ifname}-");
    let mut out = Vec::new();
    for e in fs::read_dir("/proc")? {
        let e = e?;
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim().starts_with(&prefix)) {
            out.push(pid);
        }
    }
    Ok(out)
}

/// `kernel.bpf_stats_enabled` on while alive (it costs throughput: on only
/// for the profile), restored on drop.
struct BpfStats(String);

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    fn enable() -> Result<Self> {
        let old = fs::read_to_string(BPF_STATS).with_context(|| format!("reading {BPF_STATS}"))?;
        fs::write(BPF_STATS, "1").with_context(|| format!("writing {BPF_STATS}"))?;
        Ok(BpfStats(old.trim().to_string()))
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = fs::write(BPF_STATS, &self.0);
    }
}

/// Median over rounds of `f(a, b)`, `a` and `b` in Mpps measured in the same round.
fn per_round(
    rows: &[E2eRow],
    size: usize,
    a: &str,
    b: &str,
    f: impl Fn(f64, f64) -> f64,
) -> Option<f64> {
    let find = |n: &str| rows.iter().find(|r| r.size == size && r.name == n);
    let (a, b) = (find(a)?, find(b)?);
    let v: Vec<f64> = a
        .rounds
        .iter()
        .zip(&b.rounds)
        .map(|(x, y)| f(*x, *y))
        .collect();
    (!v.is_empty()).then(|| stat(v).median)
}

/// Median per-round ratio `a / b` of two cases' rates.
pub(crate) fn ratio(rows: &[E2eRow], size: usize, a: &str, b: &str) -> Option<f64> {
    per_round(rows, size, a, b, |x, y| x / y)
}

/// Name of the cheapest chain: generator, one veth, XDP_DROP.
const DROP_CHAIN: &str = "trivial XDP_DROP";

/// The end-to-end section of the report.
pub(crate) fn report(md: &mut String, rows: &[E2eRow], notes: &[String], shape: &Shape) {
    let _ = writeln!(
        md,
        "## end to end (namespace lab, live-frames generator)\n\n{} interleaved rounds of {:.1?} per case. Rate: packets the router handled (dropped, or delivered to the member) per second of the kernel's timed generator loop, in Mpps, min / median / max; the median per-round ratio to kernel forwarding; the router's own cost, i.e. ns per packet over the cheapest chain (generator, one veth, XDP_DROP), median per round; the lowest share of generated frames that were handled (100%: nothing lost on the way); and the profile: the edge XDP program's own mean run time per packet in the live chain (64-byte frames, `kernel.bpf_stats_enabled` on for that pass only; helpers it calls included). Generator, router and member share one CPU (the kernel runs the router and the member in softirq on the generator's CPU), so the rates are of the whole chain: the generator's fixed cost shrinks every ratio against it.\n",
        shape.rounds, shape.per_case
    );
    for size in FRAME_SIZES {
        let _ = writeln!(
            md,
            "### {size}-byte frames\n\n| case | min Mpps | median Mpps | max Mpps | vs kernel forwarding | ns over the drop chain | handled | edge program, ns in place |\n|---|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in rows.iter().filter(|r| r.size == size) {
            let vs = ratio(rows, size, r.name, CASES[0].name)
                .map(|x| format!("{x:.2}x"))
                .unwrap_or_default();
            let over = per_round(rows, size, r.name, DROP_CHAIN, |x, y| 1e3 / x - 1e3 / y)
                .map(|x| format!("{x:+.0}"))
                .unwrap_or_default();
            let _ = writeln!(
                md,
                "| {} | {:.2} | {:.2} | {:.2} | {vs} | {over} | {:.1}% | {} |",
                r.name,
                r.mpps.min,
                r.mpps.median,
                r.mpps.max,
                r.handled * 100.0,
                r.in_place_ns.map(|n| format!("{n:.0}")).unwrap_or_default()
            );
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(
        md,
        "New flows and the encapsulation (median per-round ratios of rates measured in the same rounds; the new-flow generator, a dozen BPF instructions of the bench, XORs a random 32 bits into the source address and port of every frame, or nothing for the one-flow case, at the same cost):\n"
    );
    for size in FRAME_SIZES {
        let line = |a: &str, b: &str| {
            ratio(rows, size, a, b)
                .map(|r| format!("{r:.2}x"))
                .unwrap_or_else(|| "not measured".into())
        };
        let _ = writeln!(
            md,
            "- {size}-byte frames: every frame a new flow, flood guard off: {} of one flow; flood guard on: {}; the IPv6-in-IPv6 redirect: {} of the L2 redirect (flow hits), {} with its outer source configured.",
            line(NEW_FLOWS, ONE_FLOW),
            line(NEW_FLOWS_GUARDED, ONE_FLOW),
            line(ENCAP, "anycast redirect L2, flow-table hit"),
            line(ENCAP_SOURCED, "anycast redirect L2, flow-table hit"),
        );
    }
    let _ = writeln!(md);
    for n in notes {
        let _ = writeln!(md, "- {n}");
    }
}

/// Judges `a / b` (median per-round ratio, 64-byte frames) against
/// `want`; `ceiling`: the same ratio for the trivial program that does the
/// same kind of work, i.e. what bounds any program in this chain.
fn judge(
    t: &mut Vec<(String, String, bool)>,
    rows: &[E2eRow],
    what: &str,
    (a, b): (&str, &str),
    want: f64,
    ceiling: Option<(&str, &str)>,
) {
    if let Some(r) = ratio(rows, 64, a, b) {
        let bound = ceiling
            .and_then(|(c, label)| Some((ratio(rows, 64, c, b)?, label)))
            .map(|(c, label)| format!(" ({label}: {c:.2}x)"))
            .unwrap_or_default();
        t.push((what.to_string(), format!("{r:.2}x{bound}"), r >= want));
    }
}

/// The issue's ratio targets on 64-byte frames: (what, measured, met).
pub(crate) fn targets(rows: &[E2eRow]) -> Vec<(String, String, bool)> {
    let mut t = Vec::new();
    let mut check = |what: &str, a: &str, b: &str, want: f64, ceiling: Option<(&str, &str)>| {
        judge(&mut t, rows, what, (a, b), want, ceiling);
    };
    check(
        "anycast-source drop at least 1.2x xdp-filter",
        DROP,
        "xdp-filter source deny",
        1.2,
        Some((LOOKUP, "a trivial hash lookup then drop reaches")),
    );
    for hook in ["netdev ingress", "inet prerouting"] {
        check(
            &format!("anycast-source drop at least 5x nftables ({hook})"),
            DROP,
            &format!("nftables drop, {hook}"),
            5.0,
            Some((DROP_CHAIN, "XDP_DROP itself reaches")),
        );
    }
    check(
        "redirect L2 (flow hit) at least 3.5x kernel forwarding",
        REDIRECT,
        "kernel forwarding (route to the member)",
        3.5,
        Some((DEVMAP, "the trivial devmap redirect reaches")),
    );
    check(
        "redirect L2 (flow hit) at least 85% of the trivial devmap redirect",
        REDIRECT,
        DEVMAP,
        0.85,
        None,
    );
    check(
        "(issue 19) redirect L2 (flow hit) at least 0.9x the trivial devmap redirect, shared CPU",
        REDIRECT,
        DEVMAP,
        0.9,
        None,
    );
    check(
        "(issue 19) anycast-source drop at least 0.95x the trivial XDP_DROP, shared CPU",
        DROP,
        DROP_CHAIN,
        0.95,
        None,
    );
    check(
        "every frame a new flow (flood guard off) at least half the rate of one flow (same generator)",
        NEW_FLOWS,
        ONE_FLOW,
        0.5,
        None,
    );
    check(
        "every frame a new flow (flood guard on) at least half the rate of one flow (same generator)",
        NEW_FLOWS_GUARDED,
        ONE_FLOW,
        0.5,
        None,
    );
    t
}

/// Issue 19's targets in the split arrangement (the router on its own
/// CPU), 64-byte frames.
pub(crate) fn split_targets(rows: &[E2eRow]) -> Vec<(String, String, bool)> {
    let mut t = Vec::new();
    let x = "XDP_DROP itself reaches";
    judge(
        &mut t,
        rows,
        "(issue 19) router on its own CPU: anycast-source drop at least 5x nftables (netdev ingress)",
        (DROP, NFT_INGRESS),
        5.0,
        Some((DROP_CHAIN, x)),
    );
    judge(
        &mut t,
        rows,
        "(issue 19) router on its own CPU: anycast-source drop at least 0.9x the trivial XDP_DROP",
        (DROP, DROP_CHAIN),
        0.9,
        // XDP_DROP never reads the frame, whose first cache line the
        // generator on the other CPU has just written; any program that
        // looks at the source address pays for that line.
        Some((
            LOOKUP,
            "a trivial hash lookup of the source then drop reaches",
        )),
    );
    judge(
        &mut t,
        rows,
        "(issue 19) router on its own CPU: redirect L2 (flow hit) at least 4x kernel forwarding",
        (REDIRECT, KERNEL_FORWARDING),
        4.0,
        Some((DEVMAP, "the trivial devmap redirect reaches")),
    );
    judge(
        &mut t,
        rows,
        "(issue 19) router on its own CPU: redirect L2 (flow hit) at least 0.9x the trivial devmap redirect",
        (REDIRECT, DEVMAP),
        0.9,
        None,
    );
    t
}

/// The split arrangement's and the scaling's sections of the report.
pub(crate) fn report_arrangements(md: &mut String, e: &E2e, shape: &Shape) {
    if !e.split.is_empty() {
        let _ = writeln!(
            md,
            "## end to end, the router on its own CPU\n\n{} interleaved rounds of {:.1?} per case, 64-byte frames. The generator runs on CPU 0; the router's edge veth `e0` receives in threaded NAPI (`/sys/class/net/e0/threaded`), its kernel thread pinned to CPU {ROUTER_CPU} (checked after every case: it last ran there) and real-time (SCHED_FIFO 50, so that other work on that CPU does not take turns with it), and the member's receive follows the router's redirect or forward onto that CPU. Rate: packets handled per second of the generator's timed loop. A case that handled 100% of the frames was bounded by the generator, not by the router; below 100%, the router's receive ring overflowed (the router was the bottleneck).\n\n| case | min Mpps | median Mpps | max Mpps | vs kernel forwarding | vs the same case, shared CPU | handled |\n|---|---:|---:|---:|---:|---:|---:|",
            shape.rounds, shape.per_case
        );
        for r in &e.split {
            let vs = ratio(&e.split, 64, r.name, KERNEL_FORWARDING)
                .map(|x| format!("{x:.2}x"))
                .unwrap_or_default();
            let shared = e
                .shared
                .iter()
                .find(|s| s.size == 64 && s.name == r.name)
                .map(|s| format!("{:.2}x", r.mpps.median / s.mpps.median))
                .unwrap_or_default();
            let _ = writeln!(
                md,
                "| {} | {:.2} | {:.2} | {:.2} | {vs} | {shared} | {:.1}% |",
                r.name,
                r.mpps.min,
                r.mpps.median,
                r.mpps.max,
                r.handled * 100.0
            );
        }
        let _ = writeln!(md);
    }
    if !e.scaling.is_empty() {
        let _ = writeln!(
            md,
            "## scaling over two CPUs\n\n{} interleaved rounds of {:.1?} per case and count, 64-byte frames. Every veth of the chain has two receive and transmit queues; one generator on CPU 0, then two at once, on CPUs 0 and 1: a veth queues each frame on the receive queue of the sending CPU, so each CPU runs its own generator, the router's receive of its own queue and the member's, in softirq (with two CPUs there is no CPU left for the router alone). Rate with two: the sum over CPUs of each CPU's packets delivered (the member's per-CPU count) per second of its generator's loop. Factor: median per-round ratio of two to one.\n\n| case | one CPU, median Mpps | two CPUs, median Mpps | factor |\n|---|---:|---:|---:|",
            shape.rounds, shape.per_case
        );
        for r in &e.scaling {
            let _ = writeln!(
                md,
                "| {} | {:.2} | {:.2} | {:.2}x |",
                r.name,
                stat(r.one.clone()).median,
                stat(r.two.clone()).median,
                r.factor()
            );
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(
        md,
        "The router on its own CPU and the scaling took {:.1?} of the run.\n",
        e.arrangements_took
    );
}
