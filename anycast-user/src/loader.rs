//! The eBPF objects built by `build.rs`, and loading them: maps reused from
//! (or created and pinned in) a pin dir, programs verified.

use std::path::PathBuf;

use anycast_common::{
    EXACT_INDEX_BUCKETS, IfaceRole, SourceAction, exact_index_bits, exact_index_buckets, explain,
    globals, map_names, prefix_trie, trace_map_names,
};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Map, MapError, MapInfo},
    programs::{ProgramError, Xdp},
};

use crate::{
    error::{Error, Result},
    pin::PinDir,
};

/// The eBPF object built by `build.rs` (empty when built with `ANYCAST_EBPF_STUB=1`).
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/anycast"));

/// The benchmark's peer programs (generator, sink, trivial ceilings; see
/// `anycast_common::peer_names`), from the same eBPF crate. Not used by the
/// data plane.
pub static PEERS_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/peers"));

/// Loads the eBPF object: maps reused from (or created and pinned in) `pin`
/// when given, fresh maps otherwise (program tests); the anycast program's
/// role and source action set as load-time constants.
pub fn load_object(pin: Option<&PinDir>, role: IfaceRole, action: SourceAction) -> Result<Ebpf> {
    load_object_sized(pin, role, action, &[])
}

/// [`load_object`] with some maps created at other capacities than the
/// built-in ones, as `(map name, max entries)`; only maps created by this
/// load are affected (pinned ones keep their size). The exact-address
/// index follows the exact table's size unless given one of its own
/// (`anycast_common::exact_index_buckets`).
pub fn load_object_sized(
    pin: Option<&PinDir>,
    role: IfaceRole,
    action: SourceAction,
    sizes: &[(&'static str, u32)],
) -> Result<Ebpf> {
    load_object_from(EBPF_OBJECT, pin, role, action, sizes)
}

/// [`load_object_sized`] for another build of the eBPF object (benchmarks
/// compare two builds in one run); it must pin the same maps.
pub fn load_object_from(
    object: &[u8],
    pin: Option<&PinDir>,
    role: IfaceRole,
    action: SourceAction,
    sizes: &[(&'static str, u32)],
) -> Result<Ebpf> {
    load_instance(object, pin, role, action, sizes, &Instance::default())
}

/// What sets an instance of the program apart besides its interface's
/// role and source action.
#[derive(Debug, Default)]
pub struct Instance<'a> {
    /// The explain instance (`anycast_common::explain`): it writes no
    /// shared state and records its decision trail.
    pub explain: bool,
    /// Pin paths of maps that are otherwise the instance's own, as `(map
    /// name, path)`: the explain instance reads the fragment table of the
    /// program it explains through one.
    pub shared: &'a [(&'static str, std::path::PathBuf)],
    /// The attachment's id in `IFACES`, which scopes name (0: none, which
    /// no scope admits).
    pub attachment: u32,
}

/// [`load_object_from`] for an [`Instance`].
pub fn load_instance(
    object: &[u8],
    pin: Option<&PinDir>,
    role: IfaceRole,
    action: SourceAction,
    sizes: &[(&'static str, u32)],
    instance: &Instance<'_>,
) -> Result<Ebpf> {
    if object.is_empty() {
        return Err(Error::EmptyObject);
    }
    let role = role as u8;
    let action = action as u8;
    let mut loader = EbpfLoader::new();
    if let Some(pin) = pin {
        // The trace maps too: created by the first load that lacks them
        // (a pin dir of an older version), shared by every instance.
        for name in map_names::ALL.into_iter().chain(trace_map_names::ALL) {
            loader.map_pin_path(name, pin.map_path(name));
        }
    }
    for (name, path) in instance.shared {
        loader.map_pin_path(name, path.as_path());
    }
    let sizes = with_index_size(sizes);
    for (name, size) in &sizes {
        loader.map_max_entries(name, *size);
    }
    let given = |name, default| given_size(name, pin, instance.shared, &sizes, default);
    let buckets = given(map_names::EXACT_INDEX, EXACT_INDEX_BUCKETS)?;
    let index_bits = exact_index_bits(buckets).ok_or(Error::BadIndexSize {
        name: map_names::EXACT_INDEX,
        buckets,
    })?;
    loader.override_global(globals::EXACT_INDEX_BITS, &index_bits, false);
    let nodes = given(map_names::PREFIX_NODES, prefix_trie::PREFIX_NODES)?;
    let copy_nodes = prefix_trie::copy_nodes_of_map(nodes).ok_or(Error::BadTrieSize {
        name: map_names::PREFIX_NODES,
        nodes,
    })?;
    // Not required: an older build (the bench's baseline) has fixed copies.
    loader.override_global(globals::PREFIX_COPY_NODES, &copy_nodes, false);
    let explain = u8::from(instance.explain);
    loader.override_global(globals::ROLE, &role, true);
    loader.override_global(globals::SOURCE_ACTION, &action, true);
    // Not required: an older build (the bench's baseline) has no scopes.
    loader.override_global(globals::ATTACHMENT, &instance.attachment, false);
    // Required only of the explain instance: an older build (the bench's
    // baseline) has no such constant.
    loader.override_global(explain::EXPLAIN, &explain, instance.explain);
    let ebpf = loader.load(object).map_err(|e| match e {
        aya::EbpfError::MapError(MapError::CreateError { ref io_error, .. })
        | aya::EbpfError::MapError(MapError::SyscallError(aya::sys::SyscallError {
            ref io_error,
            ..
        })) if io_error.raw_os_error() == Some(libc::EPERM) => Error::NotRoot {
            what: "creating BPF maps".into(),
        },
        e => Error::Load(e),
    })?;
    // The index and the trie the program got are the ones its constants
    // were made for (a pin replaced meanwhile would not be).
    if let Some(buckets) = array_size(&ebpf, map_names::EXACT_INDEX)?
        && exact_index_bits(buckets) != Some(index_bits)
    {
        return Err(Error::BadIndexSize {
            name: map_names::EXACT_INDEX,
            buckets,
        });
    }
    if let Some(nodes) = array_size(&ebpf, map_names::PREFIX_NODES)?
        && prefix_trie::copy_nodes_of_map(nodes) != Some(copy_nodes)
    {
        return Err(Error::BadTrieSize {
            name: map_names::PREFIX_NODES,
            nodes,
        });
    }
    Ok(ebpf)
}

/// The size (max entries) of array map `name` of `ebpf`, if it has one.
fn array_size(ebpf: &Ebpf, name: &'static str) -> Result<Option<u32>> {
    match ebpf.map(name) {
        Some(Map::Array(m)) => Ok(Some(
            m.info()
                .map_err(|source| Error::Map { name, source })?
                .max_entries(),
        )),
        _ => Ok(None),
    }
}

/// `sizes` with the exact-address index's size added when only the exact
/// table's is given (the index follows the table), and the prefix trie's
/// when only the prefix table's is (its copies follow the table).
fn with_index_size(sizes: &[(&'static str, u32)]) -> Vec<(&'static str, u32)> {
    let mut out = sizes.to_vec();
    let find = |name| sizes.iter().find(|(n, _)| *n == name).map(|(_, n)| *n);
    if let (Some(n), None) = (find(map_names::ANYCAST_ADDRS), find(map_names::EXACT_INDEX)) {
        out.push((map_names::EXACT_INDEX, exact_index_buckets(n)));
    }
    if let (Some(n), None) = (
        find(map_names::ANYCAST_PREFIX),
        find(map_names::PREFIX_NODES),
    ) {
        out.push((
            map_names::PREFIX_NODES,
            prefix_trie::COPIES * prefix_trie::copy_nodes(n),
        ));
    }
    out
}

/// The size (max entries) of map `name` as the program will be given it:
/// that of the map pinned for it (shared with the instance, or in the pin
/// dir) when there is one, so that a program loaded on an existing state
/// always matches it whatever the command line says; else the size in
/// `sizes`; else `default`, the built-in size.
fn given_size(
    name: &'static str,
    pin: Option<&PinDir>,
    shared: &[(&'static str, PathBuf)],
    sizes: &[(&'static str, u32)],
    default: u32,
) -> Result<u32> {
    let pinned = shared
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| p.clone())
        .or_else(|| pin.map(|p| p.map_path(name)))
        .filter(|p| p.exists());
    if let Some(p) = pinned {
        return Ok(MapInfo::from_pin(&p)
            .map_err(|source| Error::Map { name, source })?
            .max_entries());
    }
    Ok(sizes
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(default, |(_, n)| *n))
}

/// Loads and verifies the program `name` of `ebpf`, returning it.
pub fn load_program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or_else(|| Error::Program(ProgramError::NotLoaded))?
        .try_into()
        .map_err(Error::Program)?;
    prog.load().map_err(|e| match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
            // ANYCAST_VERIFIER_LOG=1 shows the whole log, for debugging the program.
            let keep = if std::env::var_os("ANYCAST_VERIFIER_LOG").is_some() {
                lines.len()
            } else {
                8
            };
            let tail = lines[lines.len().saturating_sub(keep)..].join("\n");
            match io_error.raw_os_error() {
                Some(libc::EPERM) => Error::NotRoot {
                    what: "loading XDP programs".into(),
                },
                _ => Error::Verifier {
                    errno: io_error,
                    log_tail: tail,
                },
            }
        }
        e => Error::Program(e),
    })?;
    Ok(prog)
}
