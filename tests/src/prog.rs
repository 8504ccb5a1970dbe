//! Program-test harness: the XDP program loaded with fresh (unpinned) maps,
//! run on crafted frames with BPF_PROG_TEST_RUN, and the reference model fed
//! the same configuration.

use std::{collections::BTreeMap, net::Ipv6Addr};

use anycast::{
    AnycastPrefix, GroupName, MemberName,
    flows::monotonic_ns,
    loader::{EBPF_OBJECT, Instance, load_instance, load_program},
    members::Via,
    state::State,
    stats::Stats,
};
use anycast_common::{
    FlowEntry, FlowKey, FragmentEntry, FragmentKey, GroupInfo, IfaceRole, MemberInfo,
    MemberSourceKey, NetnsId, SourceAction, TooBigLimit, map_names,
    model::{self, Config, Delta, Fib, Iface, Outcome, Scope},
    program_names,
};
use anyhow::{Context as _, Result};
use aya::{
    Ebpf,
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray, PerCpuValues},
    programs::{TestRun as _, TestRunOptions, Xdp},
};

/// The ingress ifindex BPF_PROG_TEST_RUN reports without a context: loopback.
pub const TEST_RUN_IFINDEX: u32 = 1;
/// The attachment id programs loaded for tests have (their `ATTACHMENT`),
/// which scopes admit or not.
pub const TEST_ATTACHMENT: u32 = 1;
/// Flow-table capacity of programs loaded for tests (the default, 1M, would
/// preallocate over 100 MB per load).
pub const TEST_FLOW_TABLE: u32 = 1 << 16;

/// A model of the kernel's FIB answers, for encapsulated members.
pub type FibModel = Box<dyn Fn(Option<[u8; 16]>, &[u8; 16], usize) -> Fib>;

/// The MTU of loopback as Linux creates it.
pub const LOOPBACK_MTU: u32 = 65536;

/// One loaded program with its own maps.
pub struct ProgramUnderTest {
    ebpf: Ebpf,
    /// The program's maps.
    pub state: State,
    /// The interface settings the program was loaded with.
    pub iface: Iface,
    /// Configured anycast entries with their group ids and whether their
    /// scope admits this program (true when unscoped), for the model.
    entries: Vec<(AnycastPrefix, u32, bool)>,
    /// What the model assumes the FIB answers (default: a miss).
    pub fib: FibModel,
    /// The MTU of the test-run interface (loopback) the model assumes:
    /// [`LOOPBACK_MTU`] unless [`Self::set_loopback_mtu`] changed it.
    loopback_mtu: u32,
    /// Ids of the members added through this harness.
    member_ids: Vec<u32>,
}

/// What one test run returned.
#[derive(Debug)]
pub struct RunResult {
    /// The XDP action.
    pub action: u32,
    /// The frame as the program left it.
    pub data: Vec<u8>,
}

impl ProgramUnderTest {
    /// Loads the anycast program for an interface with `role` and `action`.
    pub fn load(role: IfaceRole, action: SourceAction) -> Result<Self> {
        Self::load_named(program_names::ANYCAST, role, action)
    }

    /// Loads program `name` of the object (e.g. the pass floor), with a
    /// flow table of [`TEST_FLOW_TABLE`] entries.
    pub fn load_named(name: &str, role: IfaceRole, action: SourceAction) -> Result<Self> {
        Self::load_sized(name, role, action, &[(map_names::FLOWS, TEST_FLOW_TABLE)])
    }

    /// Loads program `name` with some maps at other capacities (`(map, max entries)`).
    pub fn load_sized(
        name: &str,
        role: IfaceRole,
        action: SourceAction,
        sizes: &[(&'static str, u32)],
    ) -> Result<Self> {
        Self::load_from(EBPF_OBJECT, name, role, action, sizes)
    }

    /// The anycast program on the maps pinned at `pin` (a data plane the
    /// CLI manages), for an interface with `role` and `action`: frames run
    /// against the real state. The reference model knows nothing of it.
    pub fn load_pinned(
        pin: &std::path::Path,
        role: IfaceRole,
        action: SourceAction,
    ) -> Result<Self> {
        let pin = anycast::PinDir::new(pin);
        let instance = Instance {
            attachment: TEST_ATTACHMENT,
            ..Instance::default()
        };
        let ebpf = load_instance(EBPF_OBJECT, Some(&pin), role, action, &[], &instance)
            .context("loading the object on the pinned maps")?;
        Self::around(ebpf, program_names::ANYCAST, role, action)
    }

    /// The anycast program with its maps pinned at `pin` (created there,
    /// with a flow table of [`TEST_FLOW_TABLE`] entries), its fragment
    /// table and Packet Too Big buckets too (`FRAGMENTS`, `TOO_BIG_LIMIT`
    /// under `pin`): so that another instance, such as the explain
    /// instance, can share every map it reads.
    pub fn load_shared(
        pin: &std::path::Path,
        role: IfaceRole,
        action: SourceAction,
    ) -> Result<Self> {
        let dir = anycast::PinDir::new(pin);
        dir.create().context("creating the pin dir")?;
        let shared = [
            (map_names::FRAGMENTS, pin.join(map_names::FRAGMENTS)),
            (map_names::TOO_BIG_LIMIT, pin.join(map_names::TOO_BIG_LIMIT)),
        ];
        let instance = Instance {
            explain: false,
            shared: &shared,
            attachment: TEST_ATTACHMENT,
        };
        let sizes = [(map_names::FLOWS, TEST_FLOW_TABLE)];
        let ebpf = load_instance(EBPF_OBJECT, Some(&dir), role, action, &sizes, &instance)
            .context("loading the object on maps pinned for sharing")?;
        Self::around(ebpf, program_names::ANYCAST, role, action)
    }

    /// [`Self::load_sized`] from another build of the eBPF object (the
    /// benchmark's baseline).
    pub fn load_from(
        object: &[u8],
        name: &str,
        role: IfaceRole,
        action: SourceAction,
        sizes: &[(&'static str, u32)],
    ) -> Result<Self> {
        let instance = Instance {
            attachment: TEST_ATTACHMENT,
            ..Instance::default()
        };
        let ebpf = load_instance(object, None, role, action, sizes, &instance)
            .context("loading the object")?;
        Self::around(ebpf, name, role, action)
    }

    /// Takes the maps of the loaded object `ebpf` and loads its program
    /// `name`, for frames on an interface with `role` and `action`.
    fn around(mut ebpf: Ebpf, name: &str, role: IfaceRole, action: SourceAction) -> Result<Self> {
        let state = State::from_ebpf(&mut ebpf).context("taking the maps")?;
        load_program(&mut ebpf, name).context("loading the program")?;
        Ok(ProgramUnderTest {
            ebpf,
            state,
            iface: Iface {
                role,
                source_action: action,
                ifindex: TEST_RUN_IFINDEX,
                attachment: TEST_ATTACHMENT,
            },
            entries: Vec::new(),
            fib: Box::new(|_, _, _| Fib::Miss),
            loopback_mtu: LOOPBACK_MTU,
            member_ids: Vec::new(),
        })
    }

    fn group_id(&self, group: &str) -> Result<u32> {
        self.state
            .stats()?
            .groups
            .get(group)
            .map(|g| g.id)
            .with_context(|| format!("no group {group}"))
    }

    /// Adds an anycast address or prefix to `group`.
    pub fn add(&mut self, prefix: &str, group: &str) -> Result<()> {
        let p: AnycastPrefix = prefix.parse()?;
        self.state.add_address(p, &GroupName::new(group)?)?;
        let id = self.group_id(group)?;
        self.entries.retain(|(q, _, _)| *q != p);
        self.entries.push((p, id, true));
        Ok(())
    }

    /// A change that fails after it removed prefix `prefix` from the
    /// prefix table (`State::fail_after_forgetting`): the table of record,
    /// and so the model, no longer has it.
    pub fn fail_after_forgetting(&mut self, prefix: &str) -> Result<()> {
        let p: AnycastPrefix = prefix.parse()?;
        self.state.fail_after_forgetting(&p)?;
        self.entries.retain(|(q, _, _)| *q != p);
        Ok(())
    }

    /// Adds a list of anycast addresses and prefixes to `group` in one
    /// address load (one rebuild of the prefix trie); returns how many
    /// were new.
    pub fn add_list(&mut self, list: &[AnycastPrefix], group: &str) -> Result<usize> {
        let n = self.state.load_addresses(list, &GroupName::new(group)?)?;
        let id = self.group_id(group)?;
        let new: std::collections::HashSet<AnycastPrefix> = list.iter().copied().collect();
        self.entries.retain(|(q, _, _)| !new.contains(q));
        self.entries.extend(new.into_iter().map(|p| (p, id, true)));
        Ok(n)
    }

    /// A scope that admits this program (`admits`) or only another
    /// attachment.
    fn scope(&mut self, admits: bool) -> Result<u16> {
        Ok(if admits {
            self.state.test_scope("here", &[TEST_ATTACHMENT])?
        } else {
            self.state.test_scope("elsewhere", &[TEST_ATTACHMENT + 1])?
        })
    }

    /// Adds an anycast address or prefix to `group` with a scope that
    /// admits this program (`admits`) or only another attachment.
    pub fn add_scoped(&mut self, prefix: &str, group: &str, admits: bool) -> Result<()> {
        let p: AnycastPrefix = prefix.parse()?;
        let scope = self.scope(admits)?;
        self.state
            .load_addresses_scoped(&[p], &GroupName::new(group)?, scope)?;
        let id = self.group_id(group)?;
        self.entries.retain(|(q, _, _)| *q != p);
        self.entries.push((p, id, admits));
        Ok(())
    }

    /// Registers subnet `subnet` (`PREFIX/64`) for `group`: its anycast
    /// addresses of `ids` (and its subnet-router address with
    /// `subnet_router`), with a scope that admits this program (`admits`)
    /// or only another attachment. Returns the addresses.
    pub fn add_subnet(
        &mut self,
        subnet: &str,
        group: &str,
        ids: &[u32],
        subnet_router: bool,
        admits: bool,
    ) -> Result<Vec<AnycastPrefix>> {
        let spec = anycast::state::SubnetSpec {
            prefix: anycast::addr::parse_subnet(subnet)?,
            group: GroupName::new(group)?,
            ids: anycast::state::SubnetSpec::ids_from(ids)?,
            subnet_router,
        };
        let scope = self.scope(admits)?;
        self.state.set_subnet(&spec, scope, true)?;
        let id = self.group_id(group)?;
        let list = spec.addresses();
        for p in &list {
            self.entries.retain(|(q, _, _)| q != p);
            self.entries.push((*p, id, admits));
        }
        Ok(list)
    }

    /// Removes an anycast address or prefix.
    pub fn del(&mut self, prefix: &str) -> Result<()> {
        let p: AnycastPrefix = prefix.parse()?;
        self.state.del_address(p)?;
        self.entries.retain(|(q, _, _)| *q != p);
        Ok(())
    }

    /// Adds an on-link member reached through the test-run interface (loopback).
    pub fn add_l2_member(
        &mut self,
        group: &str,
        name: &str,
        mac: [u8; 6],
        metric: u32,
    ) -> Result<u32> {
        let via = Via::L2 {
            ifindex: TEST_RUN_IFINDEX,
            mac,
            src_mac: [0x02, 0xaa, 0, 0, 0, 0x01],
            ifname: [0; 16],
            netns: NetnsId::default(),
        };
        self.add_member(group, name, via, metric)
    }

    /// Adds an encapsulated member.
    pub fn add_encap_member(
        &mut self,
        group: &str,
        name: &str,
        addr: Ipv6Addr,
        metric: u32,
    ) -> Result<u32> {
        self.add_member(group, name, Via::Encap(addr), metric)
    }

    /// Adds a member of weight 1.
    pub fn add_member(&mut self, group: &str, name: &str, via: Via, metric: u32) -> Result<u32> {
        let id = self.state.add_member(
            &GroupName::new(group)?,
            &MemberName::new(name)?,
            via,
            metric,
            1,
        )?;
        self.member_ids.push(id);
        Ok(id)
    }

    fn program(&self, name: &str) -> Result<&Xdp> {
        let prog: &Xdp = self
            .ebpf
            .program(name)
            .context("no such program")?
            .try_into()?;
        Ok(prog)
    }

    /// How many instructions the verifier processed to accept program
    /// `name` (the kernel's `verified_insns`; its limit is 1,000,000).
    pub fn verified_insns(&self, name: &str) -> Result<u32> {
        self.program(name)?
            .info()?
            .verified_instruction_count()
            .context("the kernel does not report verified instructions (Linux 5.16 or later does)")
    }

    /// The size in bytes of program `name` as the verifier left it (its
    /// "xlated" size: dead branches of load-time constants removed).
    pub fn translated_size(&self, name: &str) -> Result<u32> {
        self.program(name)?
            .info()?
            .size_translated()
            .context("the kernel does not report the translated size")
    }

    /// Runs the anycast program once on `frame`.
    pub fn run(&self, frame: &[u8]) -> Result<RunResult> {
        self.run_named(program_names::ANYCAST, frame)
    }

    /// Runs program `name` once on `frame`.
    pub fn run_named(&self, name: &str, frame: &[u8]) -> Result<RunResult> {
        // Room for an outer header in front and slack behind.
        let mut out = vec![0u8; frame.len() + 256];
        let r = self.program(name)?.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..TestRunOptions::default()
        })?;
        out.truncate(r.data_size_out as usize);
        Ok(RunResult {
            action: r.return_value,
            data: out,
        })
    }

    /// Runs program `name` `repeat` times on `frame`; the kernel's average ns per run.
    pub fn time_named(&self, name: &str, frame: &[u8], repeat: u32) -> Result<f64> {
        let r = self.program(name)?.test_run(TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..TestRunOptions::default()
        })?;
        Ok(r.duration.as_nanos() as f64)
    }

    /// Runs program `name` `repeat` times on one copy of `frame` (each run
    /// sees what the one before left): the kernel's average ns per run, and
    /// the last run's action and frame.
    pub fn time_checked(&self, name: &str, frame: &[u8], repeat: u32) -> Result<(f64, RunResult)> {
        let mut out = vec![0u8; frame.len() + 256];
        let r = self.program(name)?.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            repeat,
            ..TestRunOptions::default()
        })?;
        out.truncate(r.data_size_out as usize);
        let result = RunResult {
            action: r.return_value,
            data: out,
        };
        Ok((r.duration.as_nanos() as f64, result))
    }

    /// Sets the MTU of loopback, the on-link members' egress in program
    /// tests, in the caller's network namespace (one the test made: see
    /// `lab::NetNs::run`), for the program and the model.
    pub fn set_loopback_mtu(&mut self, mtu: u32) -> Result<()> {
        crate::lab::sh(&["ip", "link", "set", "lo", "mtu", &mtu.to_string()])?;
        self.loopback_mtu = mtu;
        Ok(())
    }

    /// The program's Packet Too Big buckets (one per CPU).
    fn too_big_limit(&self) -> Result<PerCpuArray<&MapData, TooBigLimit>> {
        let map = self
            .ebpf
            .map(map_names::TOO_BIG_LIMIT)
            .context("no Packet Too Big limit map")?;
        Ok(PerCpuArray::try_from(map)?)
    }

    /// Empties every CPU's Packet Too Big bucket, refilling from an hour
    /// from now: the rate limit says no until then.
    pub fn exhaust_too_big_limit(&mut self) -> Result<()> {
        let empty = TooBigLimit {
            credit_ns: 0,
            last_ns: monotonic_ns() + 3_600_000_000_000,
        };
        let values = vec![empty; possible_cpus()?];
        let map = self
            .ebpf
            .map_mut(map_names::TOO_BIG_LIMIT)
            .context("no Packet Too Big limit map")?;
        PerCpuArray::<_, TooBigLimit>::try_from(map)?.set(0, PerCpuValues::try_from(values)?, 0)?;
        Ok(())
    }

    /// Takes the trace maps out of the program (once) as a tracer.
    pub fn tracer(
        &mut self,
        filter: anycast::trace::TraceFilter,
    ) -> Result<anycast::trace::Tracer> {
        let mut take = |name: &str| {
            self.ebpf
                .take_map(name)
                .with_context(|| format!("no map {name} (taken already?)"))
        };
        let [a, b, c] = anycast_common::trace_map_names::ALL;
        let maps = [take(a)?, take(b)?, take(c)?];
        Ok(anycast::trace::Tracer::from_maps(maps, filter)?)
    }

    /// Counters now.
    pub fn stats(&self) -> Result<Stats> {
        Ok(self.state.stats()?)
    }

    /// Every counter now, keyed like the model's deltas.
    pub fn counters(&self) -> Result<BTreeMap<(Scope, &'static str), u64>> {
        let stats = self.state.stats()?;
        let mut c = BTreeMap::new();
        for (name, v) in stats.global {
            c.insert((Scope::Global, name), v);
        }
        for g in stats.groups.values() {
            for (name, v) in &g.counters {
                c.insert((Scope::Group(g.id), *name), *v);
            }
        }
        for &id in &self.member_ids {
            let (packets, bytes) = self.state.member_counters(id)?;
            c.insert((Scope::Member(id), "packets"), packets);
            c.insert((Scope::Member(id), "bytes"), bytes);
        }
        Ok(c)
    }

    /// What the reference model says about `frame`.
    pub fn model(&self, frame: &[u8]) -> Outcome {
        model::classify(frame, self.iface, self)
    }

    /// Runs `frame` and checks it against the model: the action, the bytes
    /// out, and exactly the counters the model says move. Returns the model's
    /// outcome, for the caller's own expectations.
    pub fn check(&self, frame: &[u8]) -> Result<Outcome> {
        let want = self.model(frame);
        let before = self.counters()?;
        let got = self.run(frame)?;
        let after = self.counters()?;
        assert_eq!(
            got.action,
            want.verdict.xdp_action(),
            "action; model: {want:?}"
        );
        assert_eq!(got.data, want.frame, "bytes out; model: {want:?}");
        assert_eq!(
            deltas(&before, &after),
            want.deltas,
            "counters; model: {want:?}"
        );
        if let Some((key, member)) = want.flow {
            let entry = self.state.flow_entry(&key).map(|e| e.member_id);
            assert_eq!(entry, Some(member), "flow-table entry; model: {want:?}");
        }
        if let Some((key, member)) = want.fragment {
            let entry = self.fragment_entry(&key).map(|e| e.member_id);
            assert_eq!(entry, Some(member), "fragment-table entry; model: {want:?}");
        }
        Ok(want)
    }

    /// The program's fragment-table entry for `key` (its own map: not
    /// part of `state`).
    pub fn fragment_entry(&self, key: &FragmentKey) -> Option<FragmentEntry> {
        let map = self.ebpf.map(map_names::FRAGMENTS)?;
        let table = BpfHashMap::<&MapData, FragmentKey, FragmentEntry>::try_from(map).ok()?;
        table.get(key, 0).ok()
    }
}

impl ProgramUnderTest {
    /// The configured entry that covers `addr`: exact, else the longest prefix.
    fn entry_of(&self, addr: &[u8; 16]) -> Option<(AnycastPrefix, u32, bool)> {
        let a = u128::from(Ipv6Addr::from(*addr));
        self.entries
            .iter()
            .filter(|(p, _, _)| {
                let mask = u128::MAX << (128 - u32::from(p.len));
                a & mask == u128::from(p.addr)
            })
            .max_by_key(|(p, _, _)| p.len)
            .copied()
    }
}

impl Config for ProgramUnderTest {
    fn anycast_group(&self, addr: &[u8; 16]) -> Option<u32> {
        self.entry_of(addr).map(|(_, id, _)| id)
    }

    fn in_scope(&self, addr: &[u8; 16], attachment: u32) -> bool {
        self.entry_of(addr)
            .is_none_or(|(_, _, admits)| admits && attachment == TEST_ATTACHMENT)
    }

    fn group(&self, id: u32) -> Option<GroupInfo> {
        self.state.group_info(id).ok().filter(|g| g.in_use != 0)
    }

    fn members(&self, group: u32) -> Vec<(u32, MemberInfo)> {
        self.member_ids
            .iter()
            .filter_map(|&id| self.state.member_info(id).ok().map(|m| (id, m)))
            .filter(|(_, m)| m.kind != 0 && m.group_id == group)
            .collect()
    }

    fn member_source(&self, key: &MemberSourceKey) -> bool {
        self.state.has_member_source(key)
    }

    fn fib(&self, src: Option<[u8; 16]>, dst: &[u8; 16], tot_len: usize) -> Fib {
        (self.fib)(src, dst, tot_len)
    }

    fn flow(&self, key: &FlowKey) -> Option<FlowEntry> {
        self.state.flow_entry(key)
    }

    fn fragment(&self, key: &FragmentKey) -> Option<FragmentEntry> {
        self.fragment_entry(key)
    }

    fn now_ns(&self) -> u64 {
        monotonic_ns()
    }

    fn flood_allows(&self) -> bool {
        // Tests that set a rate check the flood guard on their own.
        self.state.flood_rate().is_ok_and(|r| r == 0)
    }

    fn link_mtu(&self, ifindex: u32) -> Option<u32> {
        // On-link members of program tests leave through loopback.
        (ifindex == TEST_RUN_IFINDEX).then_some(self.loopback_mtu)
    }

    fn too_big_allowed(&self) -> bool {
        // Whichever CPU runs the frame: every bucket agrees in tests.
        let now = monotonic_ns();
        self.too_big_limit()
            .and_then(|m| Ok(m.get(&0, 0)?))
            .is_ok_and(|v| v.iter().all(|b| b.clone().take(now)))
    }
}

/// The difference between two counter snapshots, as sorted deltas.
pub fn deltas(
    before: &BTreeMap<(Scope, &'static str), u64>,
    after: &BTreeMap<(Scope, &'static str), u64>,
) -> Vec<Delta> {
    let mut v: Vec<Delta> = after
        .iter()
        .filter_map(|(k, a)| {
            let b = before.get(k).copied().unwrap_or(0);
            (*a != b).then_some((k.0, k.1, a - b))
        })
        .collect();
    v.sort();
    v
}

/// Number of possible CPUs (per-CPU maps have a slot for each).
pub fn possible_cpus() -> Result<usize> {
    aya::util::nr_cpus().map_err(|(path, e)| anyhow::anyhow!("{path}: {e}"))
}

/// /64s that fill the prefix trie's nodes (see
/// `anycast_common::prefix_trie`): `per_16` (at most 32) in each of the
/// `sixteens` /16s from `first` on, parted in a bit of each of bytes 2..7
/// (one a byte), so that each of those levels branches, the levels are
/// kept, and each /64 ends in a node of its own: almost two nodes per
/// prefix, the most a prefix can take.
pub fn branching_64s(first: u16, sixteens: u16, per_16: u8) -> Vec<AnycastPrefix> {
    (0..sixteens)
        .flat_map(|g| {
            (0..per_16.min(32)).map(move |j| {
                let parted = (0..5).fold(0u128, |bits, k| {
                    bits | u128::from(j >> k & 1) << (7 + 8 * (5 - k))
                });
                AnycastPrefix {
                    addr: Ipv6Addr::from(
                        (u128::from(first) + u128::from(g)) << 112 | (parted | 1) << 64,
                    ),
                    len: 64,
                }
            })
        })
        .collect()
}
