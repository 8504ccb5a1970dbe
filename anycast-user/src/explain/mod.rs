//! `anycast explain`: why a packet goes where it goes, answered by the
//! loaded program on the live maps.
//!
//! The explain instance is the anycast program loaded once more with the
//! load-time constant `EXPLAIN` set (see `anycast_common::explain`): on the
//! pinned maps, and on the fragment table of the program attached to the
//! interface, it writes no shared state and records its decision trail in
//! a map of its own. [`Explainer::run`] runs one frame through it with
//! `BPF_PROG_TEST_RUN` (as if it arrived on the interface) and reads the
//! trail back; [`report`] turns the trail and the live state into what an
//! operator reads; [`input`] makes the frame (fields, hex, pcap).

pub mod input;
pub mod report;

use std::path::PathBuf;

use anycast_common::{
    IfaceRole, SourceAction,
    explain::{EXPLAIN_TRAIL, ExplainTrail, reached},
    map_names, program_names,
};
use aya::{
    Ebpf,
    maps::{MapData, MapError, PerCpuArray, PerCpuValues},
    programs::{ProgramError, TestRun as _, TestRunOptions, Xdp, loaded_programs},
};
use bytemuck::Zeroable as _;

use crate::{
    Dataplane,
    dataplane::Interface,
    link::{ifindex, xdp_attachment},
    loader::{EBPF_OBJECT, Instance, load_instance, load_program},
    netns,
    pin::PinDir,
};

/// What can go wrong while explaining.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The data plane refused (pins, maps, loading).
    #[error(transparent)]
    Dataplane(#[from] crate::Error),
    /// The program is not attached to that interface here.
    #[error(
        "anycast is not attached to `{0}` in this network namespace (see `anycast iface list`)"
    )]
    NotAttached(String),
    /// The interface has no XDP program the kernel shows, or not ours.
    #[error("no XDP program runs on `{0}` (its attachment is recorded, but the link is gone)")]
    NoProgram(String),
    /// A map of the attached program could not be read or shared.
    #[error("the attached program's {map} map: {source}")]
    Map {
        /// The map.
        map: &'static str,
        /// Why.
        #[source]
        source: MapError,
    },
    /// Pinning a map for the explain instance failed.
    #[error("pinning {path} for the explain instance: {source}")]
    Pin {
        /// The pin path.
        path: PathBuf,
        /// Why.
        #[source]
        source: aya::pin::PinError,
    },
    /// The test run of the frame failed.
    #[error("running the frame through the explain instance: {0}")]
    Run(#[source] ProgramError),
    /// The run recorded no trail (a program without the explain instance?).
    #[error("the explain instance recorded no decision for the frame")]
    NoTrail,
    /// The frame could not be made from the input.
    #[error("{0}")]
    Input(String),
}

/// Result of the explain operations.
pub type Result<T, E = ExplainError> = std::result::Result<T, E>;

/// The explain instance, loaded.
pub struct Explainer {
    ebpf: Ebpf,
    trail: PerCpuArray<MapData, ExplainTrail>,
    /// The ingress interface the frames arrive on (`None`: the test run's
    /// default, loopback).
    ingress: Option<u32>,
}

/// One frame run through the explain instance.
#[derive(Clone, Debug)]
pub struct Explained {
    /// The XDP action it returned.
    pub action: u32,
    /// The frame as the program left it.
    pub data: Vec<u8>,
    /// What it found.
    pub trail: ExplainTrail,
}

impl Explainer {
    /// Loads the explain instance on the maps pinned at `pin`, for an
    /// interface of `role` and `action` whose attachment id is `attachment`
    /// (for the scopes; 0: in no scope); `shared` gives pin paths of the
    /// explained program's own maps it reads ([`SHARED`]: its fragment
    /// table and Packet Too Big buckets), by name; those not given are the
    /// instance's own, empty. Frames arrive on `ingress` (an ifindex of
    /// the current network namespace), or on loopback.
    pub fn load(
        pin: &PinDir,
        role: IfaceRole,
        action: SourceAction,
        attachment: u32,
        shared: &[(&'static str, PathBuf)],
        ingress: Option<u32>,
    ) -> Result<Self> {
        let instance = Instance {
            explain: true,
            shared,
            attachment,
        };
        let mut ebpf = load_instance(EBPF_OBJECT, Some(pin), role, action, &[], &instance)?;
        let map = ebpf.take_map(EXPLAIN_TRAIL).ok_or(ExplainError::NoTrail)?;
        let trail = PerCpuArray::try_from(map).map_err(|source| ExplainError::Map {
            map: EXPLAIN_TRAIL,
            source,
        })?;
        load_program(&mut ebpf, program_names::ANYCAST)?;
        Ok(Explainer {
            ebpf,
            trail,
            ingress,
        })
    }

    /// Runs `frame` through the explain instance and reads its trail.
    pub fn run(&mut self, frame: &[u8]) -> Result<Explained> {
        let map_err = |source| ExplainError::Map {
            map: EXPLAIN_TRAIL,
            source,
        };
        // Every CPU's trail zeroed, then the one the run filled in is the
        // one marked done: no need to keep this thread on one CPU.
        let cpus = aya::util::nr_cpus()
            .map_err(|(_, e)| ExplainError::Input(format!("counting CPUs: {e}")))?;
        let zero = PerCpuValues::try_from(vec![ExplainTrail::zeroed(); cpus])
            .map_err(|e| ExplainError::Input(format!("the trail's per-CPU values: {e}")))?;
        self.trail.set(0, zero, 0).map_err(map_err)?;
        let prog: &Xdp = self
            .ebpf
            .program(program_names::ANYCAST)
            .ok_or(ExplainError::Run(ProgramError::NotLoaded))?
            .try_into()
            .map_err(ExplainError::Run)?;
        // Room for an outer header or a Packet Too Big in front, and slack.
        let mut out = vec![0u8; frame.len().max(1280) + 256];
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
        // rx_queue_index, egress_ifindex (six u32s).
        // The kernel wants data_end to be the frame's length.
        let mut ctx = [0u8; 24];
        if let Some(i) = self.ingress {
            let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
            ctx[4..8].copy_from_slice(&len.to_ne_bytes());
            ctx[12..16].copy_from_slice(&i.to_ne_bytes());
        }
        let r = prog
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ctx_in: self.ingress.map(|_| &ctx[..]),
                ..TestRunOptions::default()
            })
            .map_err(ExplainError::Run)?;
        out.truncate(r.data_size_out as usize);
        let trails = self.trail.get(&0, 0).map_err(map_err)?;
        let trail = trails
            .iter()
            .find(|t| t.reached & reached::DONE != 0)
            .copied()
            .ok_or(ExplainError::NoTrail)?;
        Ok(Explained {
            action: r.return_value,
            data: out,
            trail,
        })
    }
}

/// The maps of an attached program, not pinned, that the explain instance
/// reads from it: the fragment table (a later fragment follows its first)
/// and the Packet Too Big buckets (the rate limit). Its flow cache is not
/// among them: the explain instance asks the flow table, the truth every
/// CPU shares.
pub const SHARED: [&str; 2] = [map_names::FRAGMENTS, map_names::TOO_BIG_LIMIT];

/// The attachment of `iface` in the current network namespace, with the
/// explain instance for it: the interface's role and source action as
/// recorded, the attached program's fragment table, frames arriving on
/// the interface.
pub fn for_interface(dp: &Dataplane, iface: &str) -> Result<(Explainer, Interface)> {
    let here = netns::current()?;
    let idx = ifindex(iface)?;
    let attached = dp
        .interfaces()?
        .into_iter()
        .find(|i| i.netns == here.ino && i.ifindex == idx)
        .ok_or_else(|| ExplainError::NotAttached(iface.to_string()))?;
    let x = xdp_attachment(idx)?;
    let prog = [x.native_prog, x.skb_prog]
        .into_iter()
        .find(|p| *p != 0)
        .ok_or_else(|| ExplainError::NoProgram(iface.to_string()))?;
    let maps = own_maps_of(prog)?;
    forget_dead_explains(dp.pin_dir().path());
    // Pinned for as long as the load takes (the loader shares maps by pin
    // path); the loaded instance then holds the maps itself.
    let mut shared = Vec::new();
    for (name, map) in &maps {
        let path = dp
            .pin_dir()
            .path()
            .join(format!("explain_{}_{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        if let Err(source) = map.pin(&path) {
            unpin(&shared);
            return Err(ExplainError::Pin { path, source });
        }
        shared.push((*name, path));
    }
    let attachment = dp.attachment_id(here, idx)?.unwrap_or(0);
    let loaded = Explainer::load(
        dp.pin_dir(),
        attached.role,
        attached.source_action,
        attachment,
        &shared,
        Some(idx),
    );
    unpin(&shared);
    Ok((loaded?, attached))
}

/// Removes the pins an explain killed during its load left in `dir`
/// (`explain_<pid>_<map>` of a process that is gone), so that they do not
/// keep the maps, or the directory after `detach --purge`.
fn forget_dead_explains(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix("explain_"))
            .and_then(|rest| rest.split_once('_'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn unpin(pins: &[(&'static str, PathBuf)]) {
    for (_, path) in pins {
        let _ = std::fs::remove_file(path);
    }
}

/// The maps of [`SHARED`] of the loaded program `prog` (an id).
fn own_maps_of(prog: u32) -> Result<Vec<(&'static str, MapData)>> {
    let info = loaded_programs()
        .filter_map(|p| p.ok())
        .find(|p| p.id() == prog)
        .ok_or(ExplainError::NoProgram(format!("program id {prog}")))?;
    let ids = info
        .map_ids()
        .map_err(ExplainError::Run)?
        .unwrap_or_default();
    let mut out = Vec::new();
    for id in ids {
        let err = |source| ExplainError::Map {
            map: "of the attached program",
            source,
        };
        let map = MapData::from_id(id).map_err(err)?;
        let info = map.info().map_err(err)?;
        if let Some(name) = SHARED.iter().find(|n| info.name_as_str() == Some(**n)) {
            out.push((*name, map));
        }
    }
    if out.len() != SHARED.len() {
        return Err(ExplainError::NoProgram(format!(
            "program id {prog} (not anycast's program of this build: its maps differ)"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_dead_explains_pins_are_removed() {
        let dir = std::env::temp_dir().join(format!("explain-pins-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        // No pid reaches 999999999 (the kernel's limit is 2^22).
        let names = [
            "explain_999999999_FRAGMENTS".to_string(),
            format!("explain_{}_FRAGMENTS", std::process::id()),
            "explain_notapid_X".to_string(),
            "MEMBERS".to_string(),
        ];
        for n in &names {
            std::fs::write(dir.join(n), "").expect("file");
        }
        super::forget_dead_explains(&dir);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .expect("read")
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        left.sort();
        let _ = std::fs::remove_dir_all(&dir);
        let mut want = names[1..].to_vec();
        want.sort();
        assert_eq!(left, want);
    }
}
