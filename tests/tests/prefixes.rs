//! Program tests of the prefix lookup (the prefix trie in arrays, and the
//! LPM trie where it asks): many lengths, nested prefixes of different
//! groups, removals, the edges of each prefix, 10,000 prefixes, a full
//! trie copy and a full prefix table. Every packet is checked against the
//! reference model (the longest match, `anycast_common::model`), and the
//! group that answers is asserted where it is the point.

use std::{
    net::Ipv6Addr,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anycast::AnycastPrefix;
use anycast_common::{IfaceRole, SourceAction, frame::FrameBuilder, map_names, program_names};
use anycast_tests::{
    held::HeldRun,
    prog::{ProgramUnderTest, branching_64s},
    require_root,
};
use anyhow::{Context as _, Result};

const SERVER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 2, 0, 0, 0, 2);
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

fn udp(src: Ipv6Addr) -> Vec<u8> {
    FrameBuilder::udp(src, SERVER, 4242, 53, b"prefix test").build()
}

/// The group whose anycast-source drops a packet from `src` counts (the
/// program checked against the model too), `None` when it passes.
fn source_group(p: &ProgramUnderTest, src: Ipv6Addr) -> Result<Option<String>> {
    let before = p.stats()?;
    p.check(&udp(src))?;
    let after = p.stats()?;
    let moved: Vec<String> = after
        .groups
        .iter()
        .filter(|(name, g)| {
            let was = before
                .groups
                .get(*name)
                .map_or(0, |b| b.counters["anycast_source_drops"]);
            g.counters["anycast_source_drops"] > was
        })
        .map(|(name, _)| name.clone())
        .collect();
    assert!(moved.len() <= 1, "{src}: more than one group counted");
    Ok(moved.into_iter().next())
}

/// The first and last address of a prefix.
fn bounds(p: &AnycastPrefix) -> (u128, u128) {
    let a = u128::from(p.addr);
    let host = if p.len == 0 {
        u128::MAX
    } else {
        u128::MAX >> p.len
    };
    (a, a | host)
}

/// Each prefix's first and last address and the addresses just outside,
/// checked against the model.
fn check_edges(p: &ProgramUnderTest, list: &[AnycastPrefix]) -> Result<()> {
    for q in list {
        let (first, last) = bounds(q);
        for a in [first, last, first.wrapping_sub(1), last.wrapping_add(1)] {
            p.check(&udp(Ipv6Addr::from(a)))
                .with_context(|| format!("{} near {q}", Ipv6Addr::from(a)))?;
        }
    }
    Ok(())
}

/// A ladder of nested prefixes of 13 lengths around one address, each of
/// its own group.
const LADDER: [&str; 13] = [
    "2000::/3",
    "2000::/7",
    "2001::/16",
    "2001::/17",
    "2001:d00::/24",
    "2001:db8::/32",
    "2001:db8:1::/48",
    "2001:db8:1:f00::/56",
    "2001:db8:1:ffe::/63",
    "2001:db8:1:fff::/64",
    "2001:db8:1:fff:8000::/65",
    "2001:db8:1:fff:8000::/100",
    "2001:db8:1:fff:8000::4/127",
];

fn ladder() -> Result<Vec<AnycastPrefix>> {
    LADDER.iter().map(|s| Ok(s.parse()?)).collect()
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn many_nested_lengths_answer_the_longest_match() -> Result<()> {
    require_root()?;
    let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
    let list = ladder()?;
    for (i, q) in list.iter().enumerate() {
        p.add(&q.to_string(), &format!("l{}", q.len))?;
        // Each step: the longest so far answers at its own last address
        // (the last is never a special address).
        let (_, last) = bounds(q);
        assert_eq!(
            source_group(&p, Ipv6Addr::from(last))?,
            Some(format!("l{}", q.len)),
            "after adding {} prefixes",
            i + 1
        );
    }
    // Inside each prefix but outside the next longer one: that prefix.
    for w in list.windows(2) {
        let (outer, inner) = (&w[0], &w[1]);
        let (first, last) = bounds(inner);
        let (o_first, o_last) = bounds(outer);
        let beside = if first > o_first { first - 1 } else { last + 1 };
        assert!(beside >= o_first && beside <= o_last);
        assert_eq!(
            source_group(&p, Ipv6Addr::from(beside))?,
            Some(format!("l{}", outer.len)),
            "{} is in {outer}, not in {inner}",
            Ipv6Addr::from(beside)
        );
    }
    check_edges(&p, &list)?;
    // Outside all of them.
    assert_eq!(source_group(&p, "8000::1".parse()?)?, None);
    assert_eq!(p.run(&udp("fd00::7".parse()?))?.action, XDP_PASS);
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn removing_a_nested_prefix_restores_the_shorter_one() -> Result<()> {
    require_root()?;
    let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
    p.add("2001:db8::/32", "outer")?;
    p.add("2001:db8:5::/48", "inner")?;
    p.add("2001:db8:5:1::/64", "innermost")?;
    let a: Ipv6Addr = "2001:db8:5:1::9".parse()?;
    let b: Ipv6Addr = "2001:db8:5:2::9".parse()?;
    assert_eq!(source_group(&p, a)?.as_deref(), Some("innermost"));
    assert_eq!(source_group(&p, b)?.as_deref(), Some("inner"));
    p.del("2001:db8:5:1::/64")?;
    assert_eq!(source_group(&p, a)?.as_deref(), Some("inner"));
    p.del("2001:db8:5::/48")?;
    assert_eq!(source_group(&p, a)?.as_deref(), Some("outer"));
    assert_eq!(source_group(&p, b)?.as_deref(), Some("outer"));
    p.add("2001:db8:5::/48", "inner")?;
    assert_eq!(source_group(&p, a)?.as_deref(), Some("inner"));
    p.del("2001:db8::/32")?;
    assert_eq!(source_group(&p, "2001:db8:6::1".parse()?)?, None);
    assert_eq!(source_group(&p, a)?.as_deref(), Some("inner"));
    // Every ladder prefix in and out again, longest first: each removal
    // hands its addresses to the next shorter.
    let list = ladder()?;
    for q in &list {
        p.add(&q.to_string(), &format!("l{}", q.len))?;
    }
    for (i, q) in list.iter().enumerate().rev() {
        p.del(&q.to_string())?;
        let (_, last) = bounds(q);
        let want = i.checked_sub(1).map(|j| format!("l{}", list[j].len));
        // 2001:db8:5::/48 ("inner") covers none of the ladder's lasts.
        assert_eq!(source_group(&p, Ipv6Addr::from(last))?, want, "{q} removed");
    }
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn a_change_that_fails_after_a_prefix_left_still_publishes_the_trie() -> Result<()> {
    require_root()?;
    let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
    p.add("2001:db8::/32", "outer")?;
    p.add("2001:db8:5::/48", "inner")?;
    let a: Ipv6Addr = "2001:db8:5::9".parse()?;
    assert_eq!(source_group(&p, a)?.as_deref(), Some("inner"));
    // The /48 leaves the prefix table, then the change fails: the data
    // plane must answer from the table as it is, not from the old trie.
    p.fail_after_forgetting("2001:db8:5::/48")?;
    assert!(!p.state.journal_open()?, "the journal is closed");
    assert_eq!(source_group(&p, a)?.as_deref(), Some("outer"));
    Ok(())
}

/// A prefix change rewrites the trie copy the last flip left only once
/// every program run that may still walk it has ended: while a run that
/// began before the change is under way (the peers' `hold` program, one
/// run of about 100 ms; any program's run counts, the wait is the
/// kernel's), that copy does not change, and the change does not return.
#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn a_trie_copy_is_rewritten_only_after_the_runs_that_may_walk_it_end() -> Result<()> {
    require_root()?;
    for attempt in 1..=3 {
        let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
        // Copy 1 is read now, copy 0 is empty: the next change rewrites
        // copy 0, where the root node of byte 0x20 gets a child at byte 0x01.
        p.add("2001:db8::/32", "outer")?;
        let nodes = p.state.prefix_trie_reader()?;
        let watched = || -> Result<u32> { Ok(nodes.get(&0x20, 0)?.slots[0x01]) };
        anyhow::ensure!(watched()? == 0, "copy 0 is empty before the change");
        let run = HeldRun::start()?;
        let in_flight = !run.finished()?;
        let done = AtomicBool::new(false);
        let (change, early) = std::thread::scope(|s| -> Result<(Duration, bool)> {
            // Watches copy 0 until it changes: the run must have ended by
            // then (read after the copy, so a run that had not ended when
            // the copy was read shows as not ended).
            let watcher = s.spawn(|| -> Result<Option<bool>> {
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    let rewritten = watched()? != 0;
                    let ended = run.finished()?;
                    if rewritten {
                        return Ok(Some(!ended));
                    }
                    if done.load(Ordering::Acquire) && watched()? == 0 {
                        return Ok(None);
                    }
                }
                Ok(None)
            });
            let t = Instant::now();
            let r = p.add(
                &format!("2001:db8:{attempt}::/48"),
                &format!("inner{attempt}"),
            );
            let change = t.elapsed();
            done.store(true, Ordering::Release);
            r?;
            let seen = watcher
                .join()
                .map_err(|_| anyhow::anyhow!("the watcher panicked"))??;
            let early = seen.context("the watcher never saw copy 0 rewritten")?;
            Ok((change, early))
        })?;
        let finished = run.finished()?;
        let held = run.join()?;
        if !in_flight {
            // The run ended before the change began (a stalled test
            // thread): it proves nothing, try again.
            continue;
        }
        assert!(
            !early,
            "copy 0 was rewritten while a run that began before the change was under way \
             (the change took {change:?}, the run {held:?})"
        );
        assert!(
            finished,
            "the change returned after {change:?}, while a run that began before it was under way \
             (the run took {held:?})"
        );
        let a: Ipv6Addr = format!("2001:db8:{attempt}::9").parse()?;
        assert_eq!(
            source_group(&p, a)?,
            Some(format!("inner{attempt}")),
            "the new trie answers"
        );
        return Ok(());
    }
    anyhow::bail!("the held run ended before the change began, three times")
}

/// 10,000 prefixes of 10 lengths (20 to 127), nested in places, spread
/// over 2001:db8::/32 and a few other /16s.
fn ten_thousand() -> Vec<AnycastPrefix> {
    const LENS: [u8; 10] = [20, 24, 32, 40, 48, 52, 56, 60, 64, 127];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut set = std::collections::BTreeSet::new();
    while set.len() < 10_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = LENS[(x % 10) as usize];
        let top: u128 = match x >> 60 {
            0 => 0x2a00_0000,
            1 => 0x2c0f_0000,
            _ => 0x2001_0db8,
        };
        let bits = top << 96 | u128::from(x.rotate_left(17)) << 32 | u128::from(x as u32);
        let mask = u128::MAX << (128 - u32::from(len));
        set.insert(AnycastPrefix {
            addr: Ipv6Addr::from(bits & mask),
            len,
        });
    }
    set.into_iter().collect()
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn ten_thousand_prefixes_of_ten_lengths() -> Result<()> {
    require_root()?;
    let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
    let list = ten_thousand();
    assert_eq!(p.add_list(&list, "many")?, 10_000);
    let (nodes, overflowed) = p.state.prefix_trie_use()?;
    assert_eq!(overflowed, 0, "{nodes} nodes: all in the trie");
    // Their edges, one prefix in 25 (a few thousand packets).
    let sample: Vec<AnycastPrefix> = list.iter().step_by(25).copied().collect();
    check_edges(&p, &sample)?;
    for q in &sample {
        assert_eq!(p.run(&udp(q.addr))?.action, XDP_DROP, "{q}");
    }
    // Non-anycast neighbours pass.
    for i in 0..200u128 {
        let a = Ipv6Addr::from((0xfd00u128 << 112) | (i * 0x1_0000_0001));
        assert_eq!(p.run(&udp(a))?.action, XDP_PASS, "{a}");
    }
    // A prefix nested in another of the list, removed: the shorter again.
    p.del(&sample[3].to_string())?;
    check_edges(&p, &sample[..10])?;
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn a_full_trie_copy_leaves_the_rest_to_the_lpm_trie() -> Result<()> {
    require_root()?;
    let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
    // /64s branching at every level in 300 /16s: 63 nodes each, more
    // than a copy holds.
    let list = branching_64s(0x2000, 300, 32);
    assert_eq!(p.add_list(&list, "spread")?, 9600);
    let (_, overflowed) = p.state.prefix_trie_use()?;
    assert!(overflowed > 0, "the copy must be full for this test");
    let sample: Vec<AnycastPrefix> = list.iter().step_by(20).copied().collect();
    check_edges(&p, &sample)?;
    // The last prefixes made are the ones past the copy: still found.
    for q in &list[9500..] {
        assert_eq!(p.run(&udp(q.addr))?.action, XDP_DROP, "{q}");
    }
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn a_full_prefix_table_refuses_and_changes_nothing() -> Result<()> {
    require_root()?;
    let mut p = ProgramUnderTest::load_sized(
        program_names::ANYCAST,
        IfaceRole::Edge,
        SourceAction::Drop,
        &[(map_names::ANYCAST_PREFIX, 20)],
    )?;
    let list = ladder()?;
    for q in &list {
        p.add(&q.to_string(), "ladder")?;
    }
    let more: Vec<AnycastPrefix> = (0..10u128)
        .map(|i| AnycastPrefix {
            addr: Ipv6Addr::from(0xfd10_0000u128 << 96 | i << 80),
            len: 48,
        })
        .collect();
    let before = p.stats()?;
    let err = p
        .add_list(&more, "more")
        .expect_err("the prefix table is full");
    assert!(
        err.to_string()
            .contains("anycast prefix table is full (20 entries)"),
        "{err}"
    );
    assert_eq!(p.stats()?, before, "nothing changed");
    // The ladder answers as before, the refused prefixes not at all.
    check_edges(&p, &list)?;
    for q in &more {
        assert_eq!(p.run(&udp(q.addr))?.action, XDP_PASS, "{q} was refused");
    }
    Ok(())
}
