//! Differential fuzzing of the XDP program against the reference model.
//!
//! CI runs a fixed seed (`ANYCAST_FUZZ_SEED`, default 1) over
//! `ANYCAST_FUZZ_FRAMES` frames (default 100,000) for each interface kind.
//! `cargo xtask fuzz --seconds N` sets `ANYCAST_FUZZ_SECONDS`: random seeds
//! until the time is up; a failure names its seed.

use std::time::{Duration, Instant};

use anycast_common::{IfaceRole, SourceAction};
use anycast_tests::{fuzz, require_root};
use anyhow::{Context as _, Result};

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
    let p = fuzz::fuzz_target(role, action)?;
    if let Ok(secs) = std::env::var("ANYCAST_FUZZ_SECONDS") {
        let secs: u64 = secs.parse().context("ANYCAST_FUZZ_SECONDS")?;
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut seeds = fuzz::Rng::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos() as u64,
        );
        let mut frames = 0;
        while Instant::now() < deadline {
            let seed = seeds.next_u64();
            fuzz::run(&p, seed, 10_000)?;
            frames += 10_000;
        }
        println!("{frames} frames agreed ({role:?}, {action:?})");
        return Ok(());
    }
    let seed = env_u64("ANYCAST_FUZZ_SEED", 1)?;
    let frames = env_u64("ANYCAST_FUZZ_FRAMES", 100_000)?;
    fuzz::run(&p, seed, frames)
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
