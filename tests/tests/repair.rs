//! `State::repair` (and so `anycast repair` and the repair the next command
//! makes after a killed one) finds each kind of damage a command killed
//! half-way can leave, says what it was, and fixes it: the program, which
//! missed an address, a prefix or a member because of it, gets them right
//! again. The crash test (`crash.rs`) kills real commands; this one plants
//! each kind of damage on its own, so that every kind is seen.

use std::net::Ipv6Addr;

use anycast::{AnycastPrefix, GroupName, group::GroupOptions, repair::RepairReport, state::Tamper};
use anycast_common::{Affinity, IfaceRole, SourceAction, frame::FrameBuilder};
use anycast_tests::{prog::ProgramUnderTest, require_root};
use anyhow::Result;

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;

const ANY: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 0x53);
const IN_WEB: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 7, 0, 0, 0, 1);
const CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 2);

fn udp(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    FrameBuilder::udp(src, dst, 4000, 53, b"x").build()
}

/// The damage `t` does: what the program does with `frame` while it is
/// there (`missed`), what a check reports, and that a repair reports the
/// same, fixes it (the program returns `right` again) and leaves nothing.
fn plant(
    p: &mut ProgramUnderTest,
    t: Tamper<'_>,
    frame: &[u8],
    (missed, right): (u32, u32),
    want: RepairReport,
) -> Result<()> {
    assert_eq!(p.run(frame)?.action, right, "{t:?}: before the damage");
    p.state.tamper(t)?;
    assert_eq!(p.run(frame)?.action, missed, "{t:?}: the damage shows");
    let found = p.state.repair(false)?;
    assert_eq!(found, want, "{t:?}: what a check finds");
    assert_eq!(
        p.run(frame)?.action,
        missed,
        "{t:?}: a check changes nothing"
    );
    assert_eq!(p.state.repair(true)?, want, "{t:?}: what a repair finds");
    assert_eq!(p.run(frame)?.action, right, "{t:?}: repaired");
    let after = p.state.repair(false)?;
    assert!(
        after.is_clean() && !after.interrupted,
        "{t:?}: left {after}"
    );
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn repair_finds_and_fixes_each_kind_of_damage() -> Result<()> {
    require_root()?;
    let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
    p.add(&ANY.to_string(), "dns")?;
    p.add("2001:db8:b::/48", "web")?;
    p.add_l2_member("dns", "m1", [0x02, 0xbb, 0, 0, 0, 1], 10)?;
    // Stateless, so that every frame goes by the selection (a flow-table
    // hit would keep its member whatever the selection says).
    p.state.set_group_options(
        &GroupName::new("dns")?,
        &GroupOptions {
            affinity: Some(Affinity::None),
            ..GroupOptions::default()
        },
    )?;
    assert_eq!(p.state.repair(false)?, RepairReport::default());

    // The bug the issue found: an address in the table that the index
    // hides, so a packet from it crossed the edge.
    plant(
        &mut p,
        Tamper::IndexPlace(ANY),
        &udp(ANY, CLIENT),
        (XDP_PASS, XDP_DROP),
        RepairReport {
            index_buckets: 1,
            index_other_counts: 1,
            ..RepairReport::default()
        },
    )?;
    // The /16 filter without the address's bit: the data plane does not
    // read the index for it (the filter guards only exact lookups: the
    // prefixes of that /16 answer as before).
    plant(
        &mut p,
        Tamper::Slash16(ANY),
        &udp(ANY, CLIENT),
        (XDP_PASS, XDP_DROP),
        RepairReport {
            index_slash16_bits: 1,
            ..RepairReport::default()
        },
    )?;
    let web: AnycastPrefix = "2001:db8:b::/48".parse()?;
    plant(
        &mut p,
        Tamper::PrefixTrie(web),
        &udp(IN_WEB, CLIENT),
        (XDP_PASS, XDP_DROP),
        RepairReport {
            prefix_trie_nodes: 1,
            ..RepairReport::default()
        },
    )?;
    plant(
        &mut p,
        Tamper::Selection("dns"),
        &udp(CLIENT, ANY),
        (XDP_PASS, XDP_REDIRECT),
        RepairReport {
            selections: 1,
            ..RepairReport::default()
        },
    )?;

    // Damage the program does not show at once.
    p.state.tamper(Tamper::GroupCount("dns"))?;
    let found = p.state.repair(true)?;
    assert_eq!(found.group_address_counts, 1, "{found}");
    assert_eq!(p.stats()?.groups["dns"].addresses, 1);

    let member = p.state.member_infos()?[0].1;
    p.state.tamper(Tamper::MemberSource("dns", "m1"))?;
    assert!(
        p.state.member_infos()?.is_empty(),
        "the member is lost to the listings"
    );
    let found = p.state.repair(true)?;
    assert_eq!(found.member_sources_added, 1, "{found}");
    assert_eq!(p.state.member_infos()?[0].1, member);

    // An on-link member's egress port gone from the devmap (the map is
    // typed only when used: it must still be read and written right).
    p.state.tamper(Tamper::TxPort(member.ifindex))?;
    assert_eq!(p.state.repair(false)?.tx_ports, 1);
    assert_eq!(p.state.repair(true)?.tx_ports, 1);
    assert_eq!(p.state.repair(false)?, RepairReport::default());

    p.state.tamper(Tamper::Journal)?;
    let found = p.state.repair(false)?;
    assert!(found.interrupted && found.is_clean(), "{found}");
    assert!(p.state.repair(true)?.interrupted);
    assert!(!p.state.repair(false)?.interrupted);
    Ok(())
}
