//! The state's sizes chosen at creation (`--max-addresses`,
//! `--max-prefixes`, `--flow-table-size`, the file's `[state]`): a small
//! exact table gets a small index, a small prefix table a small prefix
//! trie, the program and userspace agree on the index's buckets and the
//! trie's copies (a program loaded on a state takes their sizes from the
//! pinned maps), the tables refuse what they cannot hold, a set that
//! overflows a small trie is answered by the LPM trie, and an existing
//! state of another size is reported, never silently kept as if resized.

use std::{
    net::Ipv6Addr,
    path::{Path, PathBuf},
};

use anycast::{
    AnycastPrefix, Dataplane, Error, GroupName, PinDir,
    dataplane::{Asked, StateSizes},
    explain::Explainer,
    state::Tamper,
};
use anycast_common::{
    IfaceRole, SourceAction, frame::FrameBuilder, map_names, prefix_trie, program_names,
};
use anycast_tests::{
    pinned::Pinned,
    prog::{ProgramUnderTest, TEST_FLOW_TABLE, branching_64s},
    require_root,
};
use anyhow::{Context as _, Result, bail};
use serde_json::Value;

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const SERVER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 2, 0, 0, 0, 2);

/// A frame from `src`: on an edge interface that drops anycast sources,
/// XDP_DROP says the program found `src` among the anycast addresses.
fn from(src: Ipv6Addr) -> Vec<u8> {
    FrameBuilder::udp(src, SERVER, 4242, 53, b"anycast test payload").build()
}

/// `n` consecutive documentation addresses from `first`.
fn in_a_row(first: u128, n: u128) -> Vec<AnycastPrefix> {
    (0..n)
        .map(|i| AnycastPrefix {
            addr: Ipv6Addr::from(first + i),
            len: 128,
        })
        .collect()
}

const ROW: u128 = 0x2001_0db8_0007_0000_0000_0000_0000_0000;

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn a_table_of_1000_addresses_has_a_small_index_that_finds_them_all() -> Result<()> {
    require_root()?;
    let mut p = ProgramUnderTest::load_sized(
        program_names::ANYCAST,
        IfaceRole::Edge,
        SourceAction::Drop,
        &[
            (map_names::ANYCAST_ADDRS, 1000),
            (map_names::FLOWS, TEST_FLOW_TABLE),
        ],
    )?;
    // 1024 buckets (64 KiB), not the default 2^20 (64 MiB).
    assert_eq!(p.state.index_buckets(), 1024);
    let row = in_a_row(ROW, 1000);
    let group = GroupName::new("big")?;
    // In bulk (BPF_MAP_UPDATE_BATCH), the table filled to the last entry.
    assert_eq!(p.state.load_address_list(&row, &group)?, 1000);
    let mut indexed = 0;
    for a in &row {
        assert_eq!(p.run(&from(a.addr))?.action, XDP_DROP, "{}", a.addr);
        indexed += usize::from(p.state.indexed(a.addr)?);
    }
    // Three places a bucket: few of 1000 addresses in 1024 buckets share
    // one with three others (about 1.5 % at random).
    assert!(indexed >= 950, "only {indexed} of 1000 in the index");
    // The program reads the bucket userspace wrote: an address whose place
    // is freed (and not counted) is missed, where a program that computed
    // another bucket would have asked the table.
    let a = row
        .iter()
        .map(|p| p.addr)
        .find(|a| p.state.indexed(*a).unwrap_or(false))
        .context("an indexed address")?;
    p.state.tamper(Tamper::IndexPlace(a))?;
    assert_eq!(p.run(&from(a))?.action, XDP_PASS, "{a} missed");
    p.state.repair(true)?;
    assert_eq!(p.run(&from(a))?.action, XDP_DROP, "{a} repaired");

    // Full: one more address is refused with the table's size, one at a
    // time and in bulk, and nothing changes.
    let before = p.stats()?;
    let err = p
        .add("2001:db8:8::1", "other")
        .expect_err("the table is full");
    assert!(
        err.to_string()
            .contains("anycast address table is full (1000 entries)"),
        "{err}"
    );
    let more = in_a_row(0x2001_0db8_0008_0000_0000_0000_0000_0000, 100);
    let err = p
        .state
        .load_address_list(&more, &GroupName::new("more")?)
        .expect_err("the table is full");
    assert!(
        err.to_string()
            .contains("anycast address table is full (1000 entries)"),
        "{err}"
    );
    assert_eq!(p.stats()?, before);
    assert_eq!(p.run(&from(more[0].addr))?.action, XDP_PASS);
    assert_eq!(p.run(&from(row[999].addr))?.action, XDP_DROP);
    Ok(())
}

/// Runs a frame from the first address of each of `list` and from just
/// past its last, checked against the model: the ones in must be dropped.
fn answered(p: &ProgramUnderTest, list: &[AnycastPrefix]) -> Result<()> {
    for q in list {
        let last = u128::from(q.addr) | u128::MAX >> q.len;
        p.check(&from(q.addr)).with_context(|| format!("{q}"))?;
        assert_eq!(p.run(&from(q.addr))?.action, XDP_DROP, "{q}");
        p.check(&from(Ipv6Addr::from(last)))
            .with_context(|| format!("the last of {q}"))?;
        p.check(&from(Ipv6Addr::from(last.wrapping_add(1))))
            .with_context(|| format!("past {q}"))?;
    }
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn a_table_of_1000_prefixes_has_a_small_trie_and_the_lpm_trie_answers_the_rest() -> Result<()> {
    require_root()?;
    let mut p = ProgramUnderTest::load_sized(
        program_names::ANYCAST,
        IfaceRole::Edge,
        SourceAction::Drop,
        &[
            (map_names::ANYCAST_PREFIX, 1000),
            (map_names::FLOWS, TEST_FLOW_TABLE),
        ],
    )?;
    let copy = prefix_trie::copy_nodes(1000);
    assert_eq!(copy, 1756);
    // 104 /48s of one /32: one node (the levels above it skipped), all
    // in the trie.
    let near: Vec<AnycastPrefix> = (0..104u128)
        .map(|i| AnycastPrefix {
            addr: Ipv6Addr::from(0x2001_0db8u128 << 96 | i << 80),
            len: 48,
        })
        .collect();
    assert_eq!(p.add_list(&near, "near")?, 104);
    assert_eq!(p.state.prefix_trie_use()?, (257, 0), "all in the trie");
    answered(&p, &near)?;
    // The program walks the trie userspace wrote, in the copy it reads: a
    // root node emptied misses the prefix (a program that took another
    // copy size would read past the map and ask the LPM trie, which finds
    // it). Checked in both copies: each change flips them.
    let tampered = |p: &mut ProgramUnderTest| -> Result<()> {
        p.state.tamper(Tamper::PrefixTrie(near[7]))?;
        assert_eq!(p.run(&from(near[7].addr))?.action, XDP_PASS, "missed");
        p.state.repair(true)?;
        assert_eq!(p.run(&from(near[7].addr))?.action, XDP_DROP, "repaired");
        Ok(())
    };
    tampered(&mut p)?;
    // 896 /64s in 28 /16s, branching at every level: 63 nodes a /16, more
    // than the copy of a table of 1000 holds; the subtrees past it ask the
    // LPM trie.
    let spread = branching_64s(0x3000, 28, 32);
    assert_eq!(p.add_list(&spread, "spread")?, 896);
    let (nodes, overflowed) = p.state.prefix_trie_use()?;
    assert_eq!(nodes, copy as usize, "the copy filled to its size");
    assert!(overflowed > 0, "the copy must be full for this test");
    answered(&p, &spread)?;
    answered(&p, &near)?;
    tampered(&mut p)?;
    // The table is full: one more is refused.
    let err = p.add("2001:db8:ffff::/48", "near").expect_err("full");
    assert!(
        err.to_string()
            .contains("anycast prefix table is full (1000 entries)"),
        "{err}"
    );
    Ok(())
}

/// What these tests read of a pinned state.
trait StateOf {
    /// The state as the library opens it.
    fn pin(&self) -> PinDir;
    /// Each map of `stats --json`.
    fn sizes(&self) -> Result<Value>;
    /// `max_entries` of the maps sized at creation.
    fn capacities(&self) -> Result<[u64; 3]>;
    /// `max_entries` of the prefix table and of the prefix trie.
    fn prefix_capacities(&self) -> Result<[u64; 2]>;
}

impl StateOf for Pinned {
    fn pin(&self) -> PinDir {
        PinDir::new(&self.dir)
    }

    fn sizes(&self) -> Result<Value> {
        let s: Value = serde_json::from_str(&self.ok(&["stats", "--json"])?)?;
        Ok(s["maps"].clone())
    }

    fn capacities(&self) -> Result<[u64; 3]> {
        let maps = self.sizes()?;
        Ok([
            map_names::ANYCAST_ADDRS,
            map_names::EXACT_INDEX,
            map_names::FLOWS,
        ]
        .map(|m| maps[m]["max_entries"].as_u64().unwrap_or(0)))
    }

    fn prefix_capacities(&self) -> Result<[u64; 2]> {
        let maps = self.sizes()?;
        Ok([map_names::ANYCAST_PREFIX, map_names::PREFIX_NODES]
            .map(|m| maps[m]["max_entries"].as_u64().unwrap_or(0)))
    }
}

/// A configuration file in the temp dir with `text`.
fn file(name: &str, text: &str) -> Result<PathBuf> {
    let f = std::env::temp_dir().join(format!("state-sizes-{}-{name}.toml", std::process::id()));
    std::fs::write(&f, text)?;
    Ok(f)
}

fn path(f: &Path) -> Result<&str> {
    f.to_str().context("temp path")
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn the_command_line_sizes_the_state_and_another_size_is_refused() -> Result<()> {
    require_root()?;
    let p = Pinned::new("cli");
    p.ok(&[
        "--max-addresses",
        "1000",
        "--flow-table-size",
        "4096",
        "addr",
        "add",
        "2001:db8:9::1",
        "--group",
        "dns",
    ])?;
    let maps = p.sizes()?;
    assert_eq!(maps["ANYCAST_ADDRS"]["max_entries"], 1000, "{maps}");
    assert_eq!(maps["EXACT_INDEX"]["max_entries"], 1024, "{maps}");
    assert_eq!(maps["FLOWS"]["max_entries"], 4096, "{maps}");
    // The index is 64 KiB, not 64 MiB.
    let index = maps["EXACT_INDEX"]["bytes"].as_u64().unwrap_or(0);
    assert!((64 << 10..1 << 20).contains(&index), "{maps}");
    // The same sizes again, or none: fine.
    p.ok(&[
        "--max-addresses",
        "1000",
        "addr",
        "add",
        "2001:db8:9::2",
        "--group",
        "dns",
    ])?;
    p.ok(&["addr", "add", "2001:db8:9::3", "--group", "dns"])?;
    // Another size: refused, nothing added, and said why.
    for (option, n) in [("--max-addresses", "2000"), ("--flow-table-size", "8192")] {
        let err = p.refused(&[option, n, "addr", "add", "2001:db8:9::4", "--group", "dns"])?;
        assert!(
            err.contains(option) && err.contains("was created for") && err.contains("--purge"),
            "{err}"
        );
    }
    let list = p.ok(&["addr", "list"])?;
    assert!(!list.contains("2001:db8:9::4"), "{list}");
    assert_eq!(p.capacities()?, [1000, 1024, 4096], "nothing resized");
    // Maps lost and made again by `repair` get the state's sizes: the
    // index that of the table, the flow table (which no other map tells)
    // the size given.
    for m in [map_names::EXACT_INDEX, map_names::FLOWS] {
        std::fs::remove_file(p.dir.join(m))?;
    }
    p.ok(&["repair", "--flow-table-size", "4096"])?;
    assert_eq!(
        p.capacities()?,
        [1000, 1024, 4096],
        "made again as they were"
    );
    // A size asked of a repair that differs from the pinned maps': refused
    // before anything is made (the lost flow table stays lost).
    std::fs::remove_file(p.dir.join(map_names::FLOWS))?;
    let err = p.refused(&["repair", "--max-addresses", "2000"])?;
    assert!(
        err.contains("was created for") && err.contains("nothing was changed"),
        "{err}"
    );
    assert!(!p.dir.join(map_names::FLOWS).exists(), "nothing made");
    p.ok(&["repair", "--flow-table-size", "4096"])?;
    // The exact table lost, its index kept: its capacity must be given,
    // and fit the index; a guess (the default) would resize the state.
    std::fs::remove_file(p.dir.join(map_names::ANYCAST_ADDRS))?;
    for asked in [None, Some("5000")] {
        let mut args = vec!["repair"];
        args.extend(asked.map(|n| ["--max-addresses", n]).into_iter().flatten());
        let err = p.refused(&args)?;
        assert!(
            err.contains("is lost but its index") && err.contains("1024"),
            "{err}"
        );
        assert!(
            !p.dir.join(map_names::ANYCAST_ADDRS).exists(),
            "nothing made"
        );
    }
    p.ok(&["repair", "--max-addresses", "1000"])?;
    assert_eq!(p.capacities()?, [1000, 1024, 4096], "made again as it was");
    // Out of range: refused before anything is done.
    let err = p.refused(&["--max-addresses", "0", "addr", "list"])?;
    assert!(err.contains("--max-addresses"), "{err}");
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn the_files_state_table_sizes_the_state_and_must_match_it() -> Result<()> {
    require_root()?;
    let p = Pinned::new("file");
    let text = |n: u32| {
        format!(
            "[state]\nmax-addresses = {n}\nflow-table-size = 2048\nmax-prefixes = 300\n\n\
             [group.dns]\naddresses = [\"2001:db8:9::1\"]\n"
        )
    };
    let small = file("small", &text(500))?;
    p.ok(&["config", "apply", path(&small)?])?;
    let maps = p.sizes()?;
    assert_eq!(maps["ANYCAST_ADDRS"]["max_entries"], 500, "{maps}");
    assert_eq!(maps["EXACT_INDEX"]["max_entries"], 1024, "{maps}");
    assert_eq!(maps["FLOWS"]["max_entries"], 2048, "{maps}");
    assert_eq!(maps["ANYCAST_PREFIX"]["max_entries"], 300, "{maps}");
    assert_eq!(maps["PREFIX_NODES"]["max_entries"], 2 * 706, "{maps}");
    // The file again: fine. Another size in it: refused, dry run or not.
    p.ok(&["config", "apply", path(&small)?])?;
    let other = file("other", &text(600))?;
    for dry in [false, true] {
        let mut args = vec!["config", "apply", path(&other)?];
        if dry {
            args.push("--dry-run");
        }
        let err = p.refused(&args)?;
        assert!(
            err.contains("state.max-addresses") && err.contains("was created for 500"),
            "{err}"
        );
    }
    // The command line and the file disagree: refused, and said so.
    let err = p.refused(&["--max-addresses", "700", "config", "apply", path(&small)?])?;
    assert!(err.contains("differ"), "{err}");
    assert_eq!(p.capacities()?, [500, 1024, 2048], "nothing resized");
    for f in [small, other] {
        let _ = std::fs::remove_file(f);
    }
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn a_program_loaded_on_a_state_takes_the_index_size_of_its_pins() -> Result<()> {
    require_root()?;
    let p = Pinned::new("pins");
    let sizes = StateSizes {
        addresses: Some(Asked {
            n: 1000,
            by: "the test".into(),
        }),
        flows: Some(Asked {
            n: 1024,
            by: "the test".into(),
        }),
        prefixes: None,
    };
    let mut dp = Dataplane::open_or_create_with(p.pin(), &sizes)?;
    assert_eq!(
        dp.sizes(),
        (1000, 1024, anycast_common::MAX_ANYCAST_PREFIXES)
    );
    assert_eq!(dp.map_memory()?[map_names::EXACT_INDEX].max_entries, 1024);
    let a = Ipv6Addr::new(0x2001, 0xdb8, 9, 0, 0, 0, 0, 1);
    dp.add_address(AnycastPrefix { addr: a, len: 128 }, &GroupName::new("dns")?)?;
    // Loaded with no size given: the explain instance finds `a`...
    let explain = |pin: &PinDir| -> Result<u32> {
        let mut x = Explainer::load(pin, IfaceRole::Edge, SourceAction::Drop, 0, &[], None)?;
        Ok(x.run(&from(a))?.action)
    };
    assert_eq!(explain(&p.pin())?, XDP_DROP);
    // ... through the bucket of the pinned 1024: freed there, it misses
    // `a` (a program sized otherwise would ask the exact table and find it).
    dp.state_mut().tamper(Tamper::IndexPlace(a))?;
    assert_eq!(explain(&p.pin())?, XDP_PASS);
    dp.repair(true)?;
    assert_eq!(explain(&p.pin())?, XDP_DROP);
    drop(dp);
    // Opened again with other sizes: refused, not resized.
    let bigger = StateSizes {
        addresses: Some(Asked {
            n: 2000,
            by: "the test".into(),
        }),
        flows: None,
        prefixes: None,
    };
    match Dataplane::open_or_create_with(p.pin(), &bigger) {
        Err(e @ Error::StateSizeMismatch { .. }) => {
            assert!(e.to_string().contains("created for 1000"), "{e}");
        }
        Err(e) => bail!("another error: {e}"),
        Ok(_) => bail!("a state of 1000 addresses opened as one of 2000"),
    }
    assert_eq!(
        Dataplane::open(p.pin())?.sizes(),
        (1000, 1024, anycast_common::MAX_ANYCAST_PREFIXES)
    );
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn max_prefixes_sizes_the_prefix_table_and_its_trie() -> Result<()> {
    require_root()?;
    let p = Pinned::new("prefixes");
    let nodes = u64::from(2 * prefix_trie::copy_nodes(1000));
    let add = |args: &[&str], prefix: &str| -> Result<String> {
        let mut all = args.to_vec();
        all.extend(["addr", "add", prefix, "--group", "dns"]);
        p.ok(&all)
    };
    add(&["--max-prefixes", "1000"], "2001:db8:9::/48")?;
    let maps = p.sizes()?;
    assert_eq!(p.prefix_capacities()?, [1000, nodes], "{maps}");
    assert_eq!(nodes, 3512);
    // 3.5 MiB, not 32.5.
    let bytes = maps["PREFIX_NODES"]["bytes"].as_u64().unwrap_or(0);
    assert!((3 << 20..4 << 20).contains(&bytes), "{maps}");
    // A program loaded on the state with no size (the explain instance)
    // walks the pinned trie's copies: a root node emptied misses the
    // prefix (a program of other copies would ask the LPM trie and find
    // it). Checked in both copies: each change flips them.
    let src = Ipv6Addr::new(0x2001, 0xdb8, 9, 0, 0, 0, 0, 5);
    let explain = || -> Result<u32> {
        let mut x = Explainer::load(&p.pin(), IfaceRole::Edge, SourceAction::Drop, 0, &[], None)?;
        Ok(x.run(&from(src))?.action)
    };
    for (i, more) in ["2001:db8:a::/48", "2001:db8:b::/48"]
        .into_iter()
        .enumerate()
    {
        assert_eq!(explain()?, XDP_DROP, "round {i}");
        let mut dp = Dataplane::open(p.pin())?;
        dp.state_mut()
            .tamper(Tamper::PrefixTrie("2001:db8:9::/48".parse()?))?;
        assert_eq!(explain()?, XDP_PASS, "round {i}: missed");
        dp.repair(true)?;
        assert_eq!(explain()?, XDP_DROP, "round {i}: repaired");
        drop(dp);
        add(&[], more)?;
    }
    // Another size: refused, nothing added.
    let err = p.refused(&[
        "--max-prefixes",
        "2000",
        "addr",
        "add",
        "2001:db8:c::/48",
        "--group",
        "dns",
    ])?;
    assert!(
        err.contains("--max-prefixes") && err.contains("was created for 1000"),
        "{err}"
    );
    let list = p.ok(&["addr", "list"])?;
    assert!(!list.contains("2001:db8:c::"), "{list}");
    // The trie lost: `repair` makes it again at the size of the prefix
    // table, and the program finds the prefixes through it again.
    std::fs::remove_file(p.dir.join(map_names::PREFIX_NODES))?;
    p.ok(&["repair"])?;
    assert_eq!(p.prefix_capacities()?, [1000, nodes], "made again");
    assert_eq!(explain()?, XDP_DROP, "found after repair");
    // The prefix table lost, its trie kept: its capacity must be given,
    // and fit the trie; a guess (the default) would resize the state.
    std::fs::remove_file(p.dir.join(map_names::ANYCAST_PREFIX))?;
    for asked in [None, Some("5000")] {
        let mut args = vec!["repair"];
        args.extend(asked.map(|n| ["--max-prefixes", n]).into_iter().flatten());
        let err = p.refused(&args)?;
        assert!(
            err.contains("is lost but its trie") && err.contains("3512"),
            "{err}"
        );
        assert!(
            !p.dir.join(map_names::ANYCAST_PREFIX).exists(),
            "nothing made"
        );
    }
    p.ok(&["repair", "--max-prefixes", "1000"])?;
    assert_eq!(
        p.prefix_capacities()?,
        [1000, nodes],
        "made again as it was"
    );
    // Out of range: refused before anything is done.
    let err = p.refused(&["--max-prefixes", "0", "addr", "list"])?;
    assert!(err.contains("--max-prefixes"), "{err}");
    Ok(())
}
