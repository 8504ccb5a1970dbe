//! Program tests of subnet anycast (RFC 2526, RFC 4291 section 2.6.1) and
//! scoped anycast addresses: the addresses a registered subnet yields,
//! written out here byte by byte from the RFCs, reach the group's member;
//! their neighbours do not; a scoped address is steered from inside its
//! scope and dropped, counted, from outside. Every frame is held to the
//! reference model too.

use std::net::Ipv6Addr;

use anycast_common::{
    GlobalStat, IfaceRole, SourceAction, frame::FrameBuilder, model::Verdict,
    subnet_anycast_meaning,
};
use anycast_tests::{prog::ProgramUnderTest, require_root};
use anyhow::{Result, ensure};

const CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 2);
const MEMBER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];

fn udp(dst: Ipv6Addr) -> Vec<u8> {
    FrameBuilder::udp(CLIENT, dst, 4242, 434, b"subnet anycast").build()
}

/// An edge program with a member in group `ha`.
fn edge() -> Result<ProgramUnderTest> {
    require_root()?;
    let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
    p.add_l2_member("ha", "ha1", MEMBER_MAC, 10)?;
    Ok(p)
}

/// A subnet, its anycast IDs, whether with its subnet-router address, and
/// the addresses (the second all zero when there is only one).
type Case = (&'static str, [u32; 1], bool, [[u8; 16]; 2]);

/// Subnets and the addresses RFC 2526 and RFC 4291 give them, written out.
const CASES: [Case; 3] = [
    // ID 126 (0x7E): the Mobile IPv6 Home-Agents anycast address, and the
    // subnet-router anycast address (an all-zero interface identifier).
    (
        "2001:db8:1:2::/64",
        [126],
        true,
        [
            [
                0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x02, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xfe,
            ],
            [
                0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        ],
    ),
    // ID 0: the lowest, interface identifier FDFF:FFFF:FFFF:FF80.
    (
        "fd00:18:ab:cdef::/64",
        [0],
        false,
        [
            [
                0xfd, 0x00, 0x00, 0x18, 0x00, 0xab, 0xcd, 0xef, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0x80,
            ],
            [0; 16],
        ],
    ),
    // ID 127: the highest, FDFF:FFFF:FFFF:FFFF.
    (
        "2001:db8:ffff:ffff::/64",
        [127],
        false,
        [
            [
                0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0xff, 0xff, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff,
            ],
            [0; 16],
        ],
    ),
];

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn derived_addresses_byte_by_byte() -> Result<()> {
    for (subnet, ids, router, want) in CASES {
        let mut p = edge()?;
        let got = p.add_subnet(subnet, "ha", &ids, router, true)?;
        let want: Vec<[u8; 16]> = want.iter().copied().filter(|a| *a != [0; 16]).collect();
        let got_bytes: Vec<[u8; 16]> = got.iter().map(|a| a.addr.octets()).collect();
        ensure!(got_bytes == want, "{subnet}: {got:?}");
        for a in &want {
            let o = p.check(&udp(Ipv6Addr::from(*a)))?;
            ensure!(
                matches!(o.verdict, Verdict::Redirect(_)),
                "{subnet}: {} not steered: {o:?}",
                Ipv6Addr::from(*a)
            );
        }
        // Neighbours: another ID, the universal/local bit set, a host of
        // the subnet, and (without --subnet-router) the all-zero identifier.
        let mut other_id = want[0];
        other_id[15] ^= 0x01;
        let mut ul_set = want[0];
        ul_set[8] = 0xff;
        let mut host = want[0];
        host[8..].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        let mut neighbours = vec![other_id, ul_set, host];
        if !router {
            let mut zero = want[0];
            zero[8..].fill(0);
            neighbours.push(zero);
        }
        for a in neighbours {
            let o = p.check(&udp(Ipv6Addr::from(a)))?;
            ensure!(
                o.stat == GlobalStat::UnicastPassed,
                "{subnet}: {} is not anycast: {o:?}",
                Ipv6Addr::from(a)
            );
        }
        let listed = p.state.addresses()?;
        for a in &want {
            let e = listed
                .iter()
                .find(|e| e.prefix.addr.octets() == *a)
                .ok_or_else(|| anyhow::anyhow!("{} not listed", Ipv6Addr::from(*a)))?;
            let o = e
                .origin
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("no origin"))?;
            ensure!(o.subnet == subnet, "{o:?}");
            match o.id {
                Some(id) => {
                    ensure!(o.meaning == subnet_anycast_meaning(id) && ids == [u32::from(id)])
                }
                None => ensure!(a[8..] == [0; 8] && o.meaning == "subnet-router anycast"),
            }
        }
    }
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn in_scope_steered_out_of_scope_dropped() -> Result<()> {
    let mut p = edge()?;
    let home = p.add_subnet("2001:db8:1:2::/64", "ha", &[126], false, true)?;
    let away = p.add_subnet("2001:db8:9:9::/64", "ha", &[126], false, false)?;
    let o = p.check(&udp(home[0].addr))?;
    ensure!(matches!(o.verdict, Verdict::Redirect(_)), "{o:?}");
    let o = p.check(&udp(away[0].addr))?;
    ensure!(
        (o.verdict, o.stat) == (Verdict::Drop, GlobalStat::OutOfScopeDropped),
        "{o:?}"
    );
    // A plain address with a scope, and one whose scope changes in place.
    p.add_scoped("2001:db8:53::1", "ha", false)?;
    let dst: Ipv6Addr = "2001:db8:53::1".parse()?;
    ensure!(p.check(&udp(dst))?.stat == GlobalStat::OutOfScopeDropped);
    p.add_scoped("2001:db8:53::1", "ha", true)?;
    ensure!(matches!(p.check(&udp(dst))?.verdict, Verdict::Redirect(_)));
    // A scoped prefix.
    p.add_scoped("2001:db8:77::/48", "ha", false)?;
    let in_prefix: Ipv6Addr = "2001:db8:77::9".parse()?;
    ensure!(p.check(&udp(in_prefix))?.stat == GlobalStat::OutOfScopeDropped);
    let s = p.stats()?;
    ensure!(s.global["out_of_scope_drops"] == 3, "{:?}", s.global);
    ensure!(s.groups["ha"].counters["out_of_scope_drops"] == 3);
    ensure!(s.groups["ha"].counters["redirected"] == 2);
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn subnet_anycast_source_dropped_on_edge() -> Result<()> {
    let mut p = edge()?;
    let home = p.add_subnet("2001:db8:1:2::/64", "ha", &[126], true, true)?;
    for a in home {
        let f = FrameBuilder::udp(a.addr, CLIENT, 434, 4242, b"spoof").build();
        let o = p.check(&f)?;
        ensure!(o.stat == GlobalStat::AnycastSourceDropped, "{o:?}");
    }
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn subnet_changes_and_removal() -> Result<()> {
    let mut p = edge()?;
    p.add_subnet("2001:db8:1:2::/64", "ha", &[126, 127], true, true)?;
    ensure!(p.state.addresses()?.len() == 3);
    // Registered again with fewer addresses: the others go.
    p.add_subnet("2001:db8:1:2::/64", "ha", &[126], false, true)?;
    let left: Vec<Ipv6Addr> = p.state.addresses()?.iter().map(|e| e.prefix.addr).collect();
    ensure!(
        left == ["2001:db8:1:2:fdff:ffff:ffff:fffe".parse::<Ipv6Addr>()?],
        "{left:?}"
    );
    // Only the subnet removes its address.
    let e = p.state.del_address(left[0].to_string().parse()?);
    ensure!(e.is_err(), "deleting a subnet's address: {e:?}");
    p.state
        .del_subnet(anycast::addr::parse_subnet("2001:db8:1:2::/64")?)?;
    ensure!(p.state.addresses()?.is_empty() && p.state.subnets()?.is_empty());
    // Another group's subnet is refused.
    p.add_subnet("2001:db8:1:2::/64", "ha", &[126], false, true)?;
    ensure!(
        p.add_subnet("2001:db8:1:2::/64", "web", &[126], false, true)
            .is_err()
    );
    Ok(())
}

/// A file's subnets and scopes applied to a program's maps: the system as
/// the reconciler sees it is made up (interface `home` carries every
/// subnet; `home` and `away` exist), the frames tell what the data plane
/// does with it.
#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn config_apply_registers_subnets_and_scopes() -> Result<()> {
    use anycast::{
        config::Config,
        members::{MemberVia, Via},
        reconcile::{ApplyOptions, ChangeAction, ChangeKind, System, apply_config_in},
    };
    require_root()?;
    let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
    let mut resolve = |v: &MemberVia| match v {
        MemberVia::Encap(a) => Ok(Via::Encap(*a)),
        _ => Err(anycast::Error::UnknownInterface("none".into())),
    };
    let mut carrying = |_: [u8; 8]| Ok(vec!["home".to_string()]);
    let mut exists = |n: &str| match n {
        "home" | "away" => Ok(()),
        _ => Err(anycast::Error::UnknownInterface(n.to_string())),
    };
    let apply_as = |p: &mut ProgramUnderTest,
                    dry_run: bool,
                    text: &str,
                    resolve: &mut dyn FnMut(&MemberVia) -> anycast::Result<Via>,
                    carrying: &mut dyn FnMut([u8; 8]) -> anycast::Result<Vec<String>>,
                    exists: &mut dyn FnMut(&str) -> anycast::Result<()>|
     -> Result<Vec<anycast::reconcile::Change>> {
        let cfg = Config::parse(text)?;
        let sys = &mut System {
            resolve,
            carrying,
            exists,
            netns: anycast_common::NetnsId::default(),
            attached: &[],
        };
        Ok(apply_config_in(
            &mut p.state,
            &cfg,
            sys,
            ApplyOptions {
                force: true,
                dry_run,
                ..Default::default()
            },
        )?)
    };
    let apply = |p: &mut ProgramUnderTest,
                 text: &str,
                 resolve: &mut dyn FnMut(&MemberVia) -> anycast::Result<Via>,
                 carrying: &mut dyn FnMut([u8; 8]) -> anycast::Result<Vec<String>>,
                 exists: &mut dyn FnMut(&str) -> anycast::Result<()>| {
        apply_as(p, false, text, resolve, carrying, exists)
    };
    let base = "[group.ha]\nmember.h1 = { encap = \"fd00:9::1\" }\n";
    let text = format!(
        "{base}addresses = [\"2001:db8:53::1\"]\nscope = [\"away\"]\n\
         subnets = [{{ prefix = \"2001:db8:1:2::/64\", subnet-router = true }}]\n"
    );
    // A dry run says what would change, and changes nothing.
    let would = apply_as(
        &mut p,
        true,
        &text,
        &mut resolve,
        &mut carrying,
        &mut exists,
    )?;
    ensure!(!would.is_empty(), "{would:?}");
    ensure!(p.state.subnets()?.is_empty() && p.state.addresses()?.is_empty());
    // No scope was allocated: the first free id is still 1.
    ensure!(p.state.test_scope("probe", &[])? == 1);
    let changes = apply(&mut p, &text, &mut resolve, &mut carrying, &mut exists)?;
    let added = |kind| {
        changes
            .iter()
            .filter(|c| c.action == ChangeAction::Added && c.kind == kind)
            .count()
    };
    ensure!(
        added(ChangeKind::Address) == 3 && added(ChangeKind::Subnet) == 1,
        "{changes:?}"
    );
    let subnets = p.state.subnets()?;
    ensure!(
        subnets.len() == 1 && subnets[0].scope == ["home"] && subnets[0].scope_from == "carried",
        "{subnets:?}"
    );
    let listed = p.state.addresses()?;
    ensure!(
        listed.iter().filter(|e| e.origin.is_some()).count() == 2,
        "{listed:?}"
    );
    ensure!(
        listed
            .iter()
            .all(|e| e.scope == [if e.origin.is_some() { "home" } else { "away" }]),
        "{listed:?}"
    );
    // The program's attachment is in neither scope: every one is dropped.
    for e in &listed {
        let r = p.run(&udp(e.prefix.addr))?;
        ensure!(r.action == 1, "{}: action {}", e.prefix, r.action);
    }
    ensure!(p.stats()?.groups["ha"].counters["out_of_scope_drops"] == 3);
    // The same file again changes nothing; a new scope changes in place.
    let again = apply(&mut p, &text, &mut resolve, &mut carrying, &mut exists)?;
    ensure!(again.is_empty(), "{again:?}");
    let rescoped = text.replace("scope = [\"away\"]\n", "");
    let changes = apply(&mut p, &rescoped, &mut resolve, &mut carrying, &mut exists)?;
    ensure!(
        changes.len() == 1 && changes[0].detail == "scope away -> everywhere",
        "{changes:?}"
    );
    // Unscoped now: on to its member (whose route this namespace lacks:
    // passed to the kernel, not dropped as out of scope).
    let before = p.stats()?.global["out_of_scope_drops"];
    let r = p.run(&udp("2001:db8:53::1".parse()?))?;
    ensure!(r.action == 2, "unscoped now: action {}", r.action);
    ensure!(p.stats()?.global["out_of_scope_drops"] == before);
    // A scope of an interface that does not exist names its line.
    let missing = format!("{base}addresses = [\"2001:db8:53::1\"]\nscope = [\"nowhere\"]\n");
    let e = apply(&mut p, &missing, &mut resolve, &mut carrying, &mut exists)
        .expect_err("no such interface");
    ensure!(e.to_string().contains("line 4: "), "{e:#}");
    // No interface carries the subnet now (its interface down, say): a
    // registered one keeps its scope, and the rest of the file applies.
    let mut none = |_: [u8; 8]| Ok(Vec::new());
    let kept = apply(&mut p, &rescoped, &mut resolve, &mut none, &mut exists)?;
    ensure!(kept.is_empty(), "{kept:?}");
    ensure!(p.state.subnets()?[0].scope == ["home"]);
    // A new subnet no interface carries, with no scope given: refused.
    let new = format!("{base}subnets = [{{ prefix = \"2001:db8:5:5::/64\" }}]\n");
    let e = apply(&mut p, &new, &mut resolve, &mut none, &mut exists).expect_err("nowhere");
    ensure!(format!("{e:#}").contains("reached from nowhere"), "{e:#}");
    // Gone from the file: the subnet and its addresses go.
    let plain = format!("{base}addresses = [\"2001:db8:53::1\"]\n");
    apply(&mut p, &plain, &mut resolve, &mut carrying, &mut exists)?;
    ensure!(p.state.subnets()?.is_empty() && p.state.addresses()?.len() == 1);
    Ok(())
}
