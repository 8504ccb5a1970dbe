//! Program tests of groups as they come and go: a group left with no
//! address and no member is freed, a freed group's id taken again shows
//! nothing of the group before (selection, flows, counters), group ids never
//! run out, and no more members of a group are up at one metric than share
//! its traffic.

use std::net::Ipv6Addr;

use anycast::{GroupName, MemberName, members::Via};
use anycast_common::{
    IfaceRole, MAX_GROUPS, MAX_TIED, MemberState, SourceAction, frame::FrameBuilder, model::Verdict,
};
use anycast_tests::{prog::ProgramUnderTest, require_root};
use anyhow::Result;

const A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 0x53);
const C: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 0x53);
const CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 2);
const M1_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 0x01];
const C1_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 0x0c];

fn program() -> Result<ProgramUnderTest> {
    require_root()?;
    ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)
}

/// The error of a refused change.
fn refused<T>(r: anycast::Result<T>) -> String {
    match r {
        Ok(_) => "accepted".to_string(),
        Err(e) => e.to_string(),
    }
}

fn query(dst: Ipv6Addr, sport: u16) -> Vec<u8> {
    FrameBuilder::udp(CLIENT, dst, sport, 53, b"q").build()
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn a_freed_group_id_taken_again_shows_nothing_of_the_group_before() -> Result<()> {
    let mut p = program()?;
    p.add(&A.to_string(), "a")?;
    p.add(&C.to_string(), "c")?;
    p.add_l2_member("a", "m1", M1_MAC, 10)?;
    // A second publish: the live selection is now in slot 0, the slot a new
    // group starts from.
    p.state.set_member("a", "m1", Some(20), None, None)?;
    let flow = query(A, 4000);
    assert!(matches!(p.check(&flow)?.verdict, Verdict::Redirect(_)));
    let a = p.state.group_id_of("a")?;
    assert_eq!(p.state.flow_table_stats()?.entries, 1);

    // The last address, then the last member: the group goes, with its flow.
    p.del(&A.to_string())?;
    assert_eq!(p.state.group_id_of("a")?, a, "a member is left");
    assert_eq!(p.state.del_member("a", "m1")?.as_deref(), Some("a"));
    assert!(p.state.group_id_of("a").is_err(), "group a freed");
    assert_eq!(p.state.flow_table_stats()?.entries, 0, "its flows flushed");

    // Another group's member takes m1's id; a new group takes a's id.
    p.add_l2_member("c", "c1", C1_MAC, 10)?;
    p.add(&A.to_string(), "b")?;
    assert_eq!(p.state.group_id_of("b")?, a, "the freed id is taken again");
    // b has no member: its traffic falls back to the kernel (the model
    // agrees), and does not go by a's old table to c1.
    let out = p.check(&query(A, 4001))?;
    assert_eq!(out.verdict, Verdict::Pass);
    assert_eq!(p.run(&flow)?.action, 2, "a's flow is not b's");
    let b = &p.stats()?.groups["b"];
    assert_eq!(b.counters["destined_packets"], 2, "b counts from zero");
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn group_ids_never_run_out_as_groups_come_and_go() -> Result<()> {
    let mut p = program()?;
    p.add("2001:db8:ffff::1", "stays")?;
    // More groups than the table holds, one after the other.
    for i in 0..MAX_GROUPS + 100 {
        let a = format!("2001:db8:1:{i:x}::1");
        let g = GroupName::new(&format!("g{i}"))?;
        p.state.add_address(a.parse()?, &g)?;
        let freed = p.state.del_address(a.parse()?)?;
        assert_eq!(freed.as_deref(), Some(g.as_str()));
    }
    // Through members as well.
    for i in 0..MAX_GROUPS + 100 {
        let g = GroupName::new(&format!("h{i}"))?;
        let m = MemberName::new("m")?;
        p.state
            .add_member(&g, &m, Via::Encap("2001:db8:f::1".parse()?), 10, 1)?;
        assert_eq!(
            p.state.del_member(g.as_str(), "m")?.as_deref(),
            Some(g.as_str())
        );
    }
    let left: Vec<String> = p.stats()?.groups.into_keys().collect();
    assert_eq!(left, ["stays"]);
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn no_more_than_64_members_of_a_group_are_up_at_one_metric() -> Result<()> {
    let mut p = program()?;
    p.add(&A.to_string(), "g")?;
    let encap = |i: usize| Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, i as u16 + 1);
    for i in 0..MAX_TIED {
        p.add_encap_member("g", &format!("m{i}"), encap(i), 10)?;
    }
    let before = p.state.member_infos()?;
    let want = "group `g` would have 65 members up at metric 10; at most 64";
    // A 65th member up at metric 10: refused, nothing changed.
    let e = refused(p.state.add_member(
        &GroupName::new("g")?,
        &MemberName::new("extra")?,
        Via::Encap(encap(100)),
        10,
        1,
    ));
    assert!(e.starts_with(want), "{e}");
    assert_eq!(p.state.member_infos()?, before);
    // At another metric it is welcome, but may not join the 64 there.
    p.add_encap_member("g", "extra", encap(100), 20)?;
    let e = refused(p.state.set_member("g", "extra", Some(10), None, None));
    assert!(e.starts_with(want), "{e}");
    // Down, it may go there; up again, it may not.
    p.state
        .set_member("g", "extra", Some(10), Some(MemberState::Down), None)?;
    let e = refused(
        p.state
            .set_member("g", "extra", None, Some(MemberState::Up), None),
    );
    assert!(e.starts_with(want), "{e}");
    // Taking a member down, draining or reweighting one is never refused.
    p.state
        .set_member("g", "m0", None, Some(MemberState::Draining), None)?;
    p.state
        .set_member("g", "extra", None, Some(MemberState::Up), None)?;
    p.state.set_member("g", "m1", None, None, Some(5))?;
    let e = refused(
        p.state
            .set_member("g", "m0", None, Some(MemberState::Up), None),
    );
    assert!(e.starts_with(want), "{e}");
    // Every one of the 64 up members shares the traffic.
    let listed = p.state.list_members(Some("g"))?;
    assert_eq!(listed.iter().filter(|m| m.nearest).count(), MAX_TIED);
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn a_change_finds_a_group_past_the_first_batch_and_every_member_around_a_hole() -> Result<()> {
    use anycast_common::{map_names, program_names};
    require_root()?;
    // Tables are read in batches (a group's name in batches of 64 slots,
    // the members up to the highest id in use): group 100 is found, and
    // the members on both sides of a freed id are seen.
    let mut p = ProgramUnderTest::load_sized(
        program_names::ANYCAST,
        IfaceRole::Edge,
        SourceAction::Drop,
        &[(map_names::FLOWS, 1024)],
    )?;
    for g in 0..100u16 {
        let a = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, g + 1);
        p.add(&a.to_string(), &format!("g{g}"))?;
    }
    for i in 0..3u8 {
        p.add_l2_member("g99", &format!("m{i}"), [0x02, 0xbb, 0, 0, 0, i], 10)?;
    }
    p.state.del_member("g99", "m1")?;
    p.state
        .set_member("g99", "m2", None, Some(MemberState::Down), None)?;
    let states: Vec<(String, MemberState, bool)> = p
        .state
        .list_members(Some("g99"))?
        .into_iter()
        .map(|m| (m.name, m.state, m.nearest))
        .collect();
    assert_eq!(
        states,
        [
            ("m0".to_string(), MemberState::Up, true),
            ("m2".to_string(), MemberState::Down, false)
        ]
    );
    Ok(())
}
