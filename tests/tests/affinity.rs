//! Program tests of flow affinity: the flow table, the consistent-hash
//! table, draining, the flood guard and ICMPv6 errors that follow their flow.

use std::{collections::BTreeMap, net::Ipv6Addr, thread, time::Duration};

use anycast::{GroupName, group::GroupOptions};
use anycast_common::{
    Affinity, FLOW_CACHE_SLOTS, FlowKey, IfaceRole, MemberState, SourceAction,
    frame::{FrameBuilder, L4, icmpv6_error},
    hash,
    model::Verdict,
    wire,
};
use anycast_tests::{pin_to_this_cpu, prog::ProgramUnderTest, require_root};
use anyhow::Result;

const ANY: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 0x53);
const CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 2);
const M1_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 0x01];
const M2_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 0x02];

fn query(sport: u16) -> Vec<u8> {
    FrameBuilder::udp(CLIENT, ANY, sport, 53, b"query").build()
}

fn mac(frame: &[u8]) -> [u8; 6] {
    let mut m = [0u8; 6];
    m.copy_from_slice(&frame[..6]);
    m
}

fn two_members() -> Result<ProgramUnderTest> {
    require_root()?;
    let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
    p.add(&ANY.to_string(), "dns")?;
    p.add_l2_member("dns", "m1", M1_MAC, 10)?;
    p.add_l2_member("dns", "m2", M2_MAC, 20)?;
    Ok(p)
}

fn set_group(p: &mut ProgramUnderTest, o: GroupOptions) -> Result<()> {
    Ok(p.state.set_group_options(&GroupName::new("dns")?, &o)?)
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn a_known_flow_keeps_its_member_across_a_metric_change() -> Result<()> {
    let mut p = two_members()?;
    let flow = query(4000);
    let out = p.check(&flow)?;
    assert_eq!(mac(&out.frame), M1_MAC);
    assert!(out.deltas.iter().any(|d| d.1 == "flow_misses"));
    p.state.set_member("dns", "m2", Some(5), None, None)?;
    // The running flow stays on m1 (a flow-table hit); a new one goes to m2.
    let out = p.check(&flow)?;
    assert_eq!(mac(&out.frame), M1_MAC);
    assert!(out.deltas.iter().any(|d| d.1 == "flow_hits"));
    assert_eq!(mac(&p.check(&query(4001))?.frame), M2_MAC);
    // m1 down: its flow moves.
    p.state
        .set_member("dns", "m1", None, Some(MemberState::Down), None)?;
    assert_eq!(mac(&p.check(&flow)?.frame), M2_MAC);
    let s = p.stats()?;
    assert_eq!(s.groups["dns"].counters["flow_hits"], 1);
    assert_eq!(s.groups["dns"].counters["flow_misses"], 3);
    Ok(())
}

/// The flow-cache tests' start, on a thread pinned to one CPU (the cache is
/// per CPU): the query from `sport` recorded on m1, in the table and in this
/// CPU's cache, then m2 made the nearest member.
fn cached_on_m1_with_m2_nearest(sport: u16) -> Result<(ProgramUnderTest, Vec<u8>)> {
    pin_to_this_cpu()?;
    let mut p = two_members()?;
    let flow = query(sport);
    assert_eq!(mac(&p.check(&flow)?.frame), M1_MAC);
    p.state.set_member("dns", "m2", Some(5), None, None)?;
    Ok((p, flow))
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn cached_flows_keep_the_table_current_and_a_flush_forgets_them() -> Result<()> {
    let (mut p, flow) = cached_on_m1_with_m2_nearest(4100)?;
    let idle = |p: &ProgramUnderTest| -> Result<f64> {
        let flows = p.state.list_flows(None, 16)?;
        let f = flows
            .iter()
            .find(|f| f.sport == Some(4100))
            .ok_or_else(|| anyhow::anyhow!("the flow is not in the table: {flows:?}"))?;
        Ok(f.idle_secs)
    };
    // Cache hits keep the flow on m1 and, a second on, refresh the table's
    // entry (the truth for other CPUs and for `anycast flows`).
    thread::sleep(Duration::from_millis(1500));
    assert!(idle(&p)? >= 1.4, "not refreshed yet");
    let out = p.check(&flow)?;
    assert_eq!(mac(&out.frame), M1_MAC);
    assert!(out.deltas.iter().any(|d| d.1 == "flow_hits"));
    assert!(
        idle(&p)? < 0.5,
        "a cache hit refreshes the table after a second"
    );
    // A flush empties the table, and the cache forgets what it remembered:
    // the flow is chosen afresh and goes to the nearest member now.
    p.state.flush_flows(None)?;
    let out = p.check(&flow)?;
    assert_eq!(mac(&out.frame), M2_MAC);
    assert!(out.deltas.iter().any(|d| d.1 == "flow_misses"));
    Ok(())
}

/// The flow cache's slot of the query from source port `sport`.
fn cache_slot(sport: u16) -> u32 {
    let (hs, hd) = hash::addr_hashes(&CLIENT.octets(), &ANY.octets());
    let [s0, s1] = sport.to_be_bytes();
    let tail = hash::key_tail(wire::IPPROTO_UDP, Some([s0, s1, 0, 53]), 0);
    hash::flow_hash(hs, hd, tail) & (FLOW_CACHE_SLOTS - 1)
}

/// Whether `k` is the key of the query from `sport`.
fn is_query(k: &FlowKey, sport: u16) -> bool {
    k.by_label == 0 && k.tail[..2] == sport.to_be_bytes()
}

/// A source port sharing `sport`'s flow-cache slot.
fn slot_sharer(sport: u16) -> Result<u16> {
    let slot = cache_slot(sport);
    (sport + 1..u16::MAX)
        .find(|&s| cache_slot(s) == slot)
        .ok_or_else(|| anyhow::anyhow!("no source port shares cache slot {slot}"))
}

/// Source ports of the flows in the table.
fn table_ports(p: &ProgramUnderTest) -> Result<Vec<u16>> {
    Ok(p.state
        .list_flows(None, 64)?
        .into_iter()
        .filter_map(|f| f.sport)
        .collect())
}

/// A flush's walk runs between two bumps of the caches' epoch; a cache may
/// remember, during the walk, a flow the walk then removes. Neither its
/// once-a-second refresh nor its write-back on eviction may put the flow
/// back into the table: the flush would be undone.
#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn a_flow_removed_by_a_flush_is_not_put_back_by_a_cache() -> Result<()> {
    let (mut p, flow) = cached_on_m1_with_m2_nearest(4200)?;
    p.state.begin_flows_flush()?;
    // The refresh: cached again during the walk (the table still holds the
    // flow on m1), then removed by the walk.
    assert_eq!(mac(&p.check(&flow)?.frame), M1_MAC);
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(p.state.remove_flows_unannounced(|k| is_query(k, 4200))?, 1);
    // Its next packet is due a refresh, finds no entry, and is a new flow:
    // chosen afresh (the nearest member is m2 now) and recorded so (`check`
    // compares the table's entry with the model's).
    let out = p.check(&flow)?;
    assert_eq!(mac(&out.frame), M2_MAC, "the flushed flow was put back");
    assert!(out.deltas.iter().any(|d| d.1 == "flow_misses"));

    // The write-back: a flow seen again since its last refresh, removed by
    // the walk, then evicted from the cache by a flow sharing its slot.
    let evicted = 4300;
    let newcomer = slot_sharer(evicted)?;
    assert_eq!(mac(&p.check(&query(evicted))?.frame), M2_MAC);
    // The coarse clock moves at least every 10 ms: the second packet is
    // seen at a later time than the cache last wrote to the table.
    thread::sleep(Duration::from_millis(30));
    assert_eq!(mac(&p.run(&query(evicted))?.data), M2_MAC);
    assert_eq!(
        p.state.remove_flows_unannounced(|k| is_query(k, evicted))?,
        1
    );
    assert_eq!(mac(&p.check(&query(newcomer))?.frame), M2_MAC);
    let left = table_ports(&p)?;
    assert!(
        !left.contains(&evicted),
        "the flushed flow was written back into the table: {left:?}"
    );
    assert!(left.contains(&newcomer), "{left:?}");
    // And it was evicted from the cache: its next packet is a miss (`check`
    // holds the program to the model's counters).
    let out = p.check(&query(evicted))?;
    assert!(out.deltas.iter().any(|d| d.1 == "flow_misses"));
    p.state.end_flows_flush(2)?;
    Ok(())
}

/// Outside a flush, an entry missing under a cached flow was evicted by the
/// LRU, which sees a busy cached flow only at its refreshes: a live hit puts
/// it back with its member, so the flow keeps it. A flow leaving the cache
/// is not put back: it may have gone idle or lost its member since.
#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn a_cached_flow_outlives_the_eviction_of_its_entry() -> Result<()> {
    // The refresh puts it back.
    let (mut p, flow) = cached_on_m1_with_m2_nearest(4400)?;
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(p.state.remove_flows_unannounced(|k| is_query(k, 4400))?, 1);
    assert_eq!(mac(&p.run(&flow)?.data), M1_MAC, "the flow lost its member");
    assert_eq!(p.stats()?.global["flow_entries_restored"], 1);
    // In the table again, on m1: the model (which reads the table) agrees.
    let out = p.check(&flow)?;
    assert_eq!(mac(&out.frame), M1_MAC);
    assert!(out.deltas.iter().any(|d| d.1 == "flow_hits"));

    // The write-back does not: a flow cached on m2, m1 the nearest again,
    // its entry evicted, then the flow evicted from the cache. Its next
    // packet is a new flow (`check`: the model's member and counters).
    let evicted = 4500;
    let newcomer = slot_sharer(evicted)?;
    assert_eq!(mac(&p.check(&query(evicted))?.frame), M2_MAC);
    p.state.set_member("dns", "m2", Some(20), None, None)?;
    thread::sleep(Duration::from_millis(30));
    assert_eq!(mac(&p.run(&query(evicted))?.data), M2_MAC);
    assert_eq!(
        p.state.remove_flows_unannounced(|k| is_query(k, evicted))?,
        1
    );
    assert_eq!(mac(&p.check(&query(newcomer))?.frame), M1_MAC);
    assert!(!table_ports(&p)?.contains(&evicted), "put back on eviction");
    let out = p.check(&query(evicted))?;
    assert_eq!(mac(&out.frame), M1_MAC);
    assert!(out.deltas.iter().any(|d| d.1 == "flow_misses"));
    assert_eq!(p.stats()?.global["flow_entries_restored"], 1);
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn without_affinity_the_flow_follows_the_metric() -> Result<()> {
    let mut p = two_members()?;
    set_group(
        &mut p,
        GroupOptions {
            affinity: Some(Affinity::None),
            ..GroupOptions::default()
        },
    )?;
    let flow = query(4000);
    assert_eq!(mac(&p.check(&flow)?.frame), M1_MAC);
    p.state.set_member("dns", "m2", Some(5), None, None)?;
    assert_eq!(mac(&p.check(&flow)?.frame), M2_MAC);
    assert_eq!(p.stats()?.global["flow_misses"], 0);
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn an_idle_flow_is_forgotten_after_its_timeout() -> Result<()> {
    let mut p = two_members()?;
    set_group(
        &mut p,
        GroupOptions {
            other_timeout: Some(1),
            ..GroupOptions::default()
        },
    )?;
    let flow = query(4000);
    assert_eq!(mac(&p.check(&flow)?.frame), M1_MAC);
    p.state.set_member("dns", "m2", Some(5), None, None)?;
    assert_eq!(mac(&p.run(&flow)?.data), M1_MAC);
    thread::sleep(Duration::from_millis(1300));
    assert_eq!(
        mac(&p.check(&flow)?.frame),
        M2_MAC,
        "idle past 1 s: a new flow"
    );
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn draining_keeps_flows_and_takes_no_new_ones() -> Result<()> {
    let mut p = two_members()?;
    let flow = query(4000);
    assert_eq!(mac(&p.check(&flow)?.frame), M1_MAC);
    p.state
        .set_member("dns", "m1", None, Some(MemberState::Draining), None)?;
    assert_eq!(
        mac(&p.check(&flow)?.frame),
        M1_MAC,
        "established flow stays"
    );
    assert_eq!(
        mac(&p.check(&query(4001))?.frame),
        M2_MAC,
        "new flows avoid it"
    );
    let flows = p.state.flows_per_member()?;
    assert_eq!(flows.values().sum::<u64>(), 2);
    Ok(())
}

/// Member MAC of each of `n` flows (source ports 20000..).
fn spread(p: &ProgramUnderTest, n: u16) -> Result<Vec<[u8; 6]>> {
    (0..n)
        .map(|i| Ok(mac(&p.check(&query(20_000 + i))?.frame)))
        .collect()
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn consistent_hash_spreads_and_moves_only_the_leavers_flows() -> Result<()> {
    require_root()?;
    let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
    p.add(&ANY.to_string(), "dns")?;
    let macs: Vec<[u8; 6]> = (1..=4u8).map(|i| [0x02, 0xbb, 0, 0, 1, i]).collect();
    for (i, m) in macs.iter().enumerate() {
        p.add_l2_member("dns", &format!("m{i}"), *m, 10)?;
    }
    const FLOWS: u16 = 1000;
    let first = spread(&p, FLOWS)?;
    let mut count: BTreeMap<[u8; 6], usize> = BTreeMap::new();
    for m in &first {
        *count.entry(*m).or_default() += 1;
    }
    for m in &macs {
        let n = count.get(m).copied().unwrap_or(0);
        assert!(
            // Four standard deviations of a fair split of 1,000 flows (the
            // hash's own evenness is a unit test of anycast-common).
            (195..=305).contains(&n),
            "not within 22% of even: {count:?}"
        );
    }

    // Without the flow table (flushed), the same tied set maps every flow alike.
    p.state.flush_flows(None)?;
    assert_eq!(spread(&p, FLOWS)?, first);

    // m3 leaves: its flows move, every other flow keeps its member.
    p.state.del_member("dns", "m3")?;
    let after = spread(&p, FLOWS)?;
    for (b, a) in first.iter().zip(&after) {
        if *b == macs[3] {
            assert_ne!(a, b);
        } else {
            assert_eq!(a, b, "a flow of a staying member moved");
        }
    }
    // And with the table flushed too (consistent hashing alone), nearly all stay.
    p.state.flush_flows(None)?;
    let rehashed = spread(&p, FLOWS)?;
    let moved = first
        .iter()
        .zip(&rehashed)
        .filter(|(b, a)| **b != macs[3] && a != b)
        .count();
    assert!(
        moved < usize::from(FLOWS) / 20,
        "{moved} flows of staying members moved"
    );
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn packet_too_big_reaches_the_member_that_sent_the_packet() -> Result<()> {
    let mut p = two_members()?;
    // A TCP flow from the client, taken by m1.
    let syn = FrameBuilder::tcp(CLIENT, ANY, 40000, 443, 0x02).build();
    assert_eq!(mac(&p.check(&syn)?.frame), M1_MAC);
    // m2 becomes nearer: new flows go there.
    p.state.set_member("dns", "m2", Some(5), None, None)?;
    // A router on the way back sends Packet Too Big for m1's reply (from the
    // anycast address to the client) to the anycast address.
    let reply = FrameBuilder::tcp(ANY, CLIENT, 443, 40000, 0x10).build();
    let router: Ipv6Addr = "fd00:0:0:9::1".parse()?;
    let ptb = FrameBuilder::new(router, ANY, icmpv6_error(2, &reply, None)).build();
    let out = p.check(&ptb)?;
    assert_eq!(
        mac(&out.frame),
        M1_MAC,
        "the error follows the flow it quotes"
    );
    assert_eq!(p.stats()?.groups["dns"].counters["icmp_errors_steered"], 1);
    // An echo request is no error: it goes by its own flow, to the nearest.
    let echo = FrameBuilder::new(
        router,
        ANY,
        L4::Icmpv6 {
            ty: 128,
            code: 0,
            body: vec![0; 8],
        },
    )
    .build();
    assert_eq!(mac(&p.check(&echo)?.frame), M2_MAC);
    // A truncated quote (no complete IPv6 header) names no flow: the
    // kernel gets it, no member.
    let short = FrameBuilder::new(
        router,
        ANY,
        L4::Icmpv6 {
            ty: 2,
            code: 0,
            body: vec![0; 20],
        },
    )
    .build();
    let out = p.check(&short)?;
    assert_eq!(
        (out.verdict, out.stat),
        (Verdict::Pass, anycast_common::GlobalStat::IcmpErrorsPassed)
    );
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn flood_guard_stops_recording_new_flows() -> Result<()> {
    let mut p = two_members()?;
    const RATE: u32 = 10;
    p.state.set_flood_rate(RATE)?;
    const NEW: u16 = 60;
    for i in 0..NEW {
        let r = p.run(&query(30_000 + i))?;
        assert_eq!(mac(&r.data), M1_MAC, "bypassed flows are still steered");
    }
    let s = p.stats()?;
    let cpus = anycast_tests::prog::possible_cpus()? as u64;
    let recorded = s.global["flow_misses"];
    let bypassed = s.global["flood_bypasses"];
    assert_eq!(recorded + bypassed, u64::from(NEW));
    assert!(
        recorded >= u64::from(RATE) && recorded <= cpus * u64::from(RATE),
        "recorded {recorded}"
    );
    assert_eq!(s.groups["dns"].counters["flood_bypasses"], bypassed);
    assert_eq!(p.state.flow_table_stats()?.entries, recorded);
    // Known flows still hit while the guard holds.
    let before = p.stats()?.global["flow_hits"];
    p.run(&query(30_000))?;
    assert_eq!(p.stats()?.global["flow_hits"], before + 1);
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn a_full_flow_table_forgets_and_counts_evictions() -> Result<()> {
    require_root()?;
    let mut p = ProgramUnderTest::load_sized(
        anycast_common::program_names::ANYCAST,
        IfaceRole::Edge,
        SourceAction::Drop,
        &[(anycast_common::map_names::FLOWS, 128)],
    )?;
    p.add(&ANY.to_string(), "dns")?;
    p.add_l2_member("dns", "m1", M1_MAC, 10)?;
    const NEW: u16 = 600;
    for i in 0..NEW {
        assert_eq!(mac(&p.run(&query(40_000 + i))?.data), M1_MAC);
    }
    let t = p.state.flow_table_stats()?;
    assert_eq!(t.capacity, 128);
    assert!(t.entries <= 128 && t.entries > 0, "{t:?}");
    assert_eq!(t.evictions, u64::from(NEW) - t.entries, "{t:?}");
    let flushed = p.state.flush_flows(None)?;
    assert_eq!(flushed, t.entries);
    assert_eq!(
        p.state.flow_table_stats()?.evictions,
        t.evictions,
        "a flush is no eviction"
    );
    Ok(())
}
