//! The kernel's LRU hash alone, the flow table's map type (issue 19, item
//! 1): what a new flow costs it, by key size and LRU list, apart from our
//! program. The peers object's `lru_*` programs each take a new key per
//! run (see `anycast_common::peer_names::LRU_FLOOR`); timed with
//! BPF_PROG_TEST_RUN against `lru_floor` (the same key, no map), on tables
//! first filled with twice the entries the timed list holds, so that
//! every insert evicts, as in a flow table that new flows have filled.
//! The table with a list per CPU is made CPUs times larger: the kernel
//! splits its entries between the CPUs' lists, and the one CPU timed must
//! hold as many as the other tables.

use anycast::PEERS_OBJECT;
use anycast_common::peer_names::{
    LRU_FLOOR, LRU_INSERT_NARROW, LRU_INSERT_PER_CPU, LRU_INSERT_WIDE, LRU_MISS, LRU_NARROW,
    LRU_PER_CPU, LRU_SEQ, LRU_UNEXPECTED, LRU_WIDE,
};
use anyhow::{Context as _, Result, ensure};
use aya::{
    Ebpf, EbpfLoader,
    maps::PerCpuArray,
    programs::{TestRun as _, TestRunOptions, Xdp},
};

use crate::{Row, XDP_DROP, XDP_PASS, round_order, stat, stat_over};

/// The report's section.
pub(crate) const SECTION: &str = "lru";

/// Its heading in the report.
pub(crate) const HEADING: &str = "the flow table's map type alone (the kernel's LRU hash)\n\nWhat a new flow costs the kernel's LRU hash apart from our program, by key size (the flow table's 44 bytes against 16) and LRU list (common, or one per CPU: `BPF_F_NO_COMMON_LRU`); the kernel refuses an LRU hash that is not preallocated (`BPF_F_NO_PREALLOC`: ENOTSUPP). Each run takes a key no run took before; the tables were first filled with twice the entries the timed list holds, so every insert evicts; the table with a list per CPU has CPUs times the entries, so that the list of the one CPU timed holds as many entries as the other tables (the kernel splits the entries between the lists). Every run is checked to have taken the path its row names. Over floor: over a program that makes the key and touches no map, interleaved, on one CPU.";

/// The cases: program, what a row says it does, the action every run returns.
const CASES: [(&str, &str, u32); 4] = [
    (
        LRU_MISS,
        "lookup of a new key, 44-byte key (a new flow under the flood guard)",
        XDP_PASS,
    ),
    (
        LRU_INSERT_WIDE,
        "lookup and insert of a new key, 44-byte key, common LRU list (a new flow)",
        XDP_DROP,
    ),
    (
        LRU_INSERT_NARROW,
        "lookup and insert of a new key, 16-byte key, common LRU list",
        XDP_DROP,
    ),
    (
        LRU_INSERT_PER_CPU,
        "lookup and insert of a new key, 44-byte key, a list per CPU holding as many (the table CPUs times larger)",
        XDP_DROP,
    ),
];

/// The rows of [`SECTION`]: table sizes, rounds and runs per round.
pub(crate) fn costs(quick: bool) -> Result<Vec<Row>> {
    let (sizes, rounds, repeat): (&[u32], usize, u32) = if quick {
        (&[65_536], 3, 20_000)
    } else {
        (&[65_536, 1_048_576], 11, 200_000)
    };
    // On a thread held to one CPU: a table's per-CPU lists are filled on
    // the CPU that times them.
    std::thread::spawn(move || -> Result<Vec<Row>> {
        anycast_tests::pin_to_this_cpu()?;
        let mut rows = Vec::new();
        for &n in sizes {
            rows.extend(size_rows(n, rounds, repeat)?);
        }
        Ok(rows)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the LRU measurement's thread panicked"))?
}

/// The rows for tables of `n` entries.
fn size_rows(n: u32, rounds: usize, repeat: u32) -> Result<Vec<Row>> {
    let cpus = u32::try_from(anycast_tests::prog::possible_cpus()?)?;
    let mut ebpf = EbpfLoader::new()
        .map_max_entries(LRU_WIDE, n)
        .map_max_entries(LRU_NARROW, n)
        .map_max_entries(LRU_PER_CPU, n * cpus)
        .load(PEERS_OBJECT)
        .context("loading the peer programs with LRU tables")?;
    for name in std::iter::once(LRU_FLOOR).chain(CASES.iter().map(|c| c.0)) {
        let p: &mut Xdp = ebpf
            .program_mut(name)
            .with_context(|| format!("no program {name}"))?
            .try_into()?;
        p.load().with_context(|| format!("loading {name}"))?;
    }
    // Filled with twice the entries this CPU's list holds: after the
    // first n inserts, every insert evicts.
    for (name, _, action) in CASES.iter().filter(|c| c.0 != LRU_MISS) {
        time(&ebpf, name, 2 * n, *action)?;
    }
    let mut floor = Vec::with_capacity(rounds);
    let mut samples = vec![Vec::with_capacity(rounds); CASES.len()];
    for round in 0..rounds {
        floor.push(time(&ebpf, LRU_FLOOR, repeat, XDP_PASS)?);
        for i in round_order(round, CASES.len()) {
            let (name, _, action) = CASES[i];
            samples[i].push(time(&ebpf, name, repeat, action)?);
        }
    }
    let floor_median = stat(floor.clone()).median;
    Ok(CASES
        .iter()
        .zip(samples)
        .map(|((_, what, _), v)| Row {
            section: SECTION,
            name: format!("{n} entries: {what}"),
            stat: stat_over(v, &floor),
            floor: floor_median,
        })
        .collect())
}

/// `repeat` runs of program `name`: the kernel's mean ns per run. Fails
/// unless the last run returned `action` and no run took another path
/// (the programs count those in `LRU_SEQ`).
fn time(ebpf: &Ebpf, name: &str, repeat: u32, action: u32) -> Result<f64> {
    let p: &Xdp = ebpf
        .program(name)
        .with_context(|| format!("no program {name}"))?
        .try_into()?;
    let frame = [0u8; 64];
    let r = p
        .test_run(TestRunOptions {
            data_in: Some(&frame),
            repeat,
            ..TestRunOptions::default()
        })
        .with_context(|| format!("running {name}"))?;
    ensure!(
        r.return_value == action,
        "{name} returned {} where {action} was expected",
        r.return_value
    );
    let seq: PerCpuArray<_, u64> = ebpf
        .map(LRU_SEQ)
        .with_context(|| format!("no map {LRU_SEQ}"))?
        .try_into()?;
    let unexpected: u64 = seq.get(&LRU_UNEXPECTED, 0)?.iter().sum();
    ensure!(
        unexpected == 0,
        "{unexpected} runs of the LRU programs took another path than the one timed (the last: {name})"
    );
    Ok(r.duration.as_nanos() as f64)
}
