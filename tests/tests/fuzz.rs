//! Differential fuzzing of the XDP program against the reference model.
//!
//! CI runs a fixed seed (`ANYCAST_FUZZ_SEED`, default 1) over
//! `ANYCAST_FUZZ_FRAMES` frames (default 100,000) for each interface kind.
//! `cargo xtask fuzz --seconds N` sets `ANYCAST_FUZZ_SECONDS` and the run's
//! seed (`ANYCAST_FUZZ_SEED`, printed first, so that a run that passed can
//! be repeated): seeds drawn from it until the time is up, the same ones
//! for the same seed; a failure names its own seed and shows the frame
//! minimised, which is written to `ANYCAST_FUZZ_CORPUS_DIR` (the xtask sets
//! it to `tests/corpus`) as a regression case. Every run replays the corpus.

use std::{
    net::Ipv6Addr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anycast_common::{IfaceRole, SourceAction, model::Scope};
use anycast_tests::{
    fuzz,
    lab::{FibNode, Lab},
    prog::TEST_ATTACHMENT,
    require_root,
};
use anyhow::{Context as _, Result, bail, ensure};

fn env_u64(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v} is not a number")),
        Err(_) => Ok(default),
    }
}

fn fuzz(role: IfaceRole, action: SourceAction) -> Result<()> {
    require_root()?;
    // In a namespace of its own, whose loopback (the members' link) the
    // fuzzer narrows.
    let mut lab = Lab::new("fuzz")?;
    let node = FibNode::build(&mut lab, "fib")?;
    lab.ns("fib")?
        .run(move || fuzz_in_ns(role, action, &node))?
}

fn fuzz_in_ns(role: IfaceRole, action: SourceAction, node: &FibNode) -> Result<()> {
    let mut p = fuzz::fuzz_target(role, action)?;
    fuzz::narrow_member_link(&mut p, node)?;
    let corpus = std::env::var_os("ANYCAST_FUZZ_CORPUS_DIR").map(PathBuf::from);
    let corpus = corpus.as_deref();
    if let Ok(secs) = std::env::var("ANYCAST_FUZZ_SECONDS") {
        let secs: u64 = secs.parse().context("ANYCAST_FUZZ_SECONDS")?;
        let deadline = Instant::now() + Duration::from_secs(secs);
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64;
        let master = env_u64("ANYCAST_FUZZ_SEED", clock)?;
        println!("fuzzing {role:?}, {action:?} from seed {master}");
        let mut seeds = fuzz::Rng::new(master);
        let mut frames = 0;
        while Instant::now() < deadline {
            let seed = seeds.next_u64();
            fuzz::run(&p, seed, 10_000, corpus)?;
            frames += 10_000;
        }
        println!("{frames} frames agreed ({role:?}, {action:?}, from seed {master})");
        return Ok(());
    }
    let seed = env_u64("ANYCAST_FUZZ_SEED", 1)?;
    let frames = env_u64("ANYCAST_FUZZ_FRAMES", 100_000)?;
    fuzz::run(&p, seed, frames, corpus)
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn program_and_model_agree_on_an_edge_interface() -> Result<()> {
    fuzz(IfaceRole::Edge, SourceAction::Drop)
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn program_and_model_agree_on_a_member_interface_in_monitor_mode() -> Result<()> {
    fuzz(IfaceRole::Member, SourceAction::Count)
}

/// The interface kinds every corpus frame runs on.
const KINDS: [(IfaceRole, SourceAction); 2] = [
    (IfaceRole::Edge, SourceAction::Drop),
    (IfaceRole::Member, SourceAction::Count),
];

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn program_and_model_agree_on_every_frame_of_the_regression_corpus() -> Result<()> {
    require_root()?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let cases = fuzz::read_corpus(&dir)?;
    ensure!(
        cases.len() >= 10,
        "only {} cases in {}",
        cases.len(),
        dir.display()
    );
    for (role, action) in KINDS {
        let p = fuzz::fuzz_target(role, action)?;
        for c in &cases {
            let model = p.model(&c.frame);
            if let Some(what) = fuzz::disagreement(&p, &c.frame)? {
                bail!(
                    "{} ({role:?}): {what}\n# {}",
                    c.name,
                    c.comment.join("\n# ")
                );
            }
            // The frame still takes the path its comment names.
            if role == IfaceRole::Edge
                && let Some((last, others)) = c.edge_counters.split_first()
            {
                let moved = |name: &str| {
                    model
                        .deltas
                        .iter()
                        .any(|(s, n, v)| *s == Scope::Global && *n == name && *v >= 1)
                };
                ensure!(
                    model.stat.name() == last && others.iter().all(|n| moved(n)),
                    "{}: on an edge interface it ends in {} and moves {:?}; its comment says {:?}",
                    c.name,
                    model.stat.name(),
                    model.deltas,
                    c.edge_counters
                );
            }
        }
    }
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn a_disagreement_is_minimised_and_written_to_the_corpus() -> Result<()> {
    require_root()?;
    let mut p = fuzz::fuzz_target(IfaceRole::Edge, SourceAction::Drop)?;
    // Plant a disagreement: the address leaves the program's table behind
    // the model's back, so frames to it differ.
    let any: Ipv6Addr = "2001:db8:a::53".parse()?;
    p.state.del_address(anycast::AnycastPrefix {
        addr: any,
        len: 128,
    })?;
    let dir = std::env::temp_dir().join(format!("anycast-fuzz-corpus-{}", std::process::id()));
    let err = fuzz::run(&p, 1, 100_000, Some(&dir))
        .expect_err("the planted disagreement is found")
        .to_string();
    let cases = fuzz::read_corpus(&dir);
    std::fs::remove_dir_all(&dir).ok();
    let cases = cases?;
    ensure!(err.contains("seed 1, frame "), "{err}");
    ensure!(err.contains("minimised to "), "{err}");
    ensure!(cases.len() == 1, "{cases:?}");
    let small = &cases[0].frame;
    let found = err
        .lines()
        .find_map(|l| l.strip_prefix("frame: "))
        .context("the frame")?;
    // Shrunk, and still what the disagreement needs: IPv6 to the address.
    ensure!(small.len() * 2 < found.len(), "{err}");
    ensure!(small[12..14] == [0x86, 0xdd], "{err}");
    ensure!(
        small[22..38] == any.octets() || small[38..54] == any.octets(),
        "the address is the source or the destination: {err}"
    );
    ensure!(fuzz::disagreement(&p, small)?.is_some());
    ensure!(cases[0].comment[0].starts_with("found by the fuzzer (seed 1, frame "));
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn a_scope_the_model_does_not_know_is_found() -> Result<()> {
    require_root()?;
    let mut p = fuzz::fuzz_target(IfaceRole::Edge, SourceAction::Drop)?;
    // Unplanted first: a run reaches the scoped addresses from outside
    // their scope (and agrees).
    fuzz::run(&p, 2, 20_000, None)?;
    let drops = p.stats()?.global["out_of_scope_drops"];
    ensure!(drops > 0, "no frame reached a scoped address from outside");
    // Planted: the scoped prefix now admits this attachment, behind the
    // model's back.
    let admits = p.state.test_scope("here", &[TEST_ATTACHMENT])?;
    p.state.load_addresses_scoped(
        &["2001:db8:d::/48".parse()?],
        &anycast::GroupName::new("web")?,
        admits,
    )?;
    let err = fuzz::run(&p, 2, 100_000, None)
        .expect_err("the planted scope is found")
        .to_string();
    ensure!(err.contains("seed 2, frame "), "{err}");
    Ok(())
}
