//! Program-test harness: the XDP program loaded with fresh (unpinned) maps,
//! run on crafted frames with BPF_PROG_TEST_RUN.

use std::net::Ipv6Addr;

use anycast::{
    AnycastPrefix,
    dataplane::{load_object_sized, load_program},
    state::{State, Stats},
};
use anycast_common::{
    IfaceRole, SourceAction,
    model::{self, Iface, Outcome},
    program_names,
};
use anyhow::{Context as _, Result};
use aya::{
    Ebpf,
    programs::{TestRun as _, TestRunOptions, Xdp},
};

/// One loaded program with its own maps.
pub struct ProgramUnderTest {
    ebpf: Ebpf,
    /// The program's maps.
    pub state: State,
    /// The interface settings the program was loaded with.
    pub iface: Iface,
    /// Configured anycast entries with their group ids, for the model's lookup.
    entries: Vec<(AnycastPrefix, u32)>,
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

    /// Loads program `name` of the object (e.g. the pass floor).
    pub fn load_named(name: &str, role: IfaceRole, action: SourceAction) -> Result<Self> {
        Self::load_sized(name, role, action, &[])
    }

    /// Loads program `name` with some maps at other capacities (`(map, max entries)`).
    pub fn load_sized(
        name: &str,
        role: IfaceRole,
        action: SourceAction,
        sizes: &[(&'static str, u32)],
    ) -> Result<Self> {
        let mut ebpf =
            load_object_sized(None, role, action, sizes).context("loading the object")?;
        let state = State::from_ebpf(&mut ebpf).context("taking the maps")?;
        load_program(&mut ebpf, name).context("loading the program")?;
        Ok(ProgramUnderTest {
            ebpf,
            state,
            iface: Iface {
                role,
                source_action: action,
            },
            entries: Vec::new(),
        })
    }

    /// Adds an anycast address or prefix to `group`.
    pub fn add(&mut self, prefix: &str, group: &str) -> Result<()> {
        let p: AnycastPrefix = prefix.parse()?;
        self.state.add_address(p, group)?;
        let id = self
            .state
            .stats()?
            .groups
            .get(group)
            .map(|g| g.id)
            .context("group missing after add")?;
        self.entries.push((p, id));
        Ok(())
    }

    /// Removes an anycast address or prefix.
    pub fn del(&mut self, prefix: &str) -> Result<()> {
        let p: AnycastPrefix = prefix.parse()?;
        self.state.del_address(p)?;
        self.entries.retain(|(q, _)| *q != p);
        Ok(())
    }

    fn program(&self, name: &str) -> Result<&Xdp> {
        let prog: &Xdp = self
            .ebpf
            .program(name)
            .context("no such program")?
            .try_into()?;
        Ok(prog)
    }

    /// Runs the anycast program once on `frame`.
    pub fn run(&self, frame: &[u8]) -> Result<RunResult> {
        self.run_named(program_names::ANYCAST, frame)
    }

    /// Runs program `name` once on `frame`.
    pub fn run_named(&self, name: &str, frame: &[u8]) -> Result<RunResult> {
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

    /// Counters now.
    pub fn stats(&self) -> Result<Stats> {
        Ok(self.state.stats()?)
    }

    /// The group id the model should see for `addr`: exact first, then longest prefix.
    pub fn group_of(&self, addr: &[u8; 16]) -> Option<u32> {
        let a = u128::from(Ipv6Addr::from(*addr));
        self.entries
            .iter()
            .filter(|(p, _)| {
                let mask = u128::MAX << (128 - u32::from(p.len));
                a & mask == u128::from(p.addr)
            })
            .max_by_key(|(p, _)| p.len)
            .map(|(_, id)| *id)
    }

    /// What the reference model says about `frame`.
    pub fn model(&self, frame: &[u8]) -> Outcome {
        model::classify(frame, self.iface, &|a| self.group_of(a))
    }
}

/// The counter changes an outcome implies, as `(scope, name, delta)` with
/// scope `global` or a group name.
pub fn expected_deltas(
    out: &Outcome,
    frame_len: usize,
    group_name: impl Fn(u32) -> String,
) -> Vec<(String, &'static str, u64)> {
    let mut v = vec![("global".to_string(), out.stat.name(), 1)];
    if out.source_counted {
        v.push(("global".into(), "anycast_source_counted", 1));
    }
    if let Some(g) = out.source_group {
        let name = if out.source_counted {
            "anycast_source_counted"
        } else {
            "anycast_source_drops"
        };
        v.push((group_name(g), name, 1));
    }
    if let Some(g) = out.dest_group {
        v.push((group_name(g), "destined_packets", 1));
        v.push((group_name(g), "destined_bytes", frame_len as u64));
    }
    v
}

/// The difference between two snapshots, as `(scope, name, delta)` for every counter that moved.
pub fn stat_deltas(before: &Stats, after: &Stats) -> Vec<(String, &'static str, u64)> {
    let mut v = Vec::new();
    for (name, a) in &after.global {
        let b = before.global.get(name).copied().unwrap_or(0);
        if *a != b {
            v.push(("global".to_string(), *name, a - b));
        }
    }
    for (group, g) in &after.groups {
        for (name, a) in &g.counters {
            let b = before
                .groups
                .get(group)
                .and_then(|bg| bg.counters.get(name))
                .copied()
                .unwrap_or(0);
            if *a != b {
                v.push((group.clone(), *name, a - b));
            }
        }
    }
    v
}
