//! The group and member tables at their production sizes (1023 groups,
//! 65535 members, as `anycast-common` sizes them): filled through the
//! configuration file's bulk path, then the next group or member is refused
//! with a clear error, nothing changes, and the program still forwards.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::Ipv6Addr,
    time::{Duration, Instant},
};

use anycast::{
    GroupName, MemberName,
    config::Config,
    members::{MemberVia, Via, format_mac},
    reconcile::{ApplyOptions, ChangeAction, ChangeKind, apply_config},
    state::{AddressEntry, State},
    stats::Stats,
};
use anycast_common::{
    IfaceRole, MAX_GROUPS, MAX_MEMBERS, MemberInfo, SourceAction, frame::FrameBuilder,
};
use anycast_tests::{
    prog::{ProgramUnderTest, TEST_RUN_IFINDEX},
    require_root,
};
use anyhow::{Context as _, Result, ensure};

const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;
const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 2);

/// Group `g`'s anycast address.
fn addr(g: u32) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x1, g as u16, 0, 0, 0, 1)
}

/// A unique unicast MAC for member `n`.
fn mac(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x02, 0xcc, b[0], b[1], b[2], b[3]]
}

/// A configuration file: `groups` groups with one address each, and
/// `members` on-link members spread over them (member `n` in group
/// `n % groups`), every group's members tied at metric 10 but one at 20.
fn toml(groups: u32, members: u32) -> String {
    let mut by_group: Vec<Vec<u32>> = vec![Vec::new(); groups as usize];
    for n in 0..members {
        by_group[(n % groups) as usize].push(n);
    }
    let mut text = String::new();
    for (g, list) in by_group.iter().enumerate() {
        let _ = writeln!(
            text,
            "[group.g{g:04}]\naddresses = [\"{}\"]",
            addr(g as u32)
        );
        for &n in list {
            let metric = if n < groups { 20 } else { 10 };
            let _ = writeln!(
                text,
                "member.m{n:05} = {{ iface = \"lo\", mac = \"{}\", metric = {metric} }}",
                format_mac(&mac(n))
            );
        }
    }
    text
}

/// Interfaces as the program test sees them: every on-link member behind
/// the test run's interface.
fn resolve(v: &MemberVia) -> anycast::Result<Via> {
    Ok(match v {
        MemberVia::L2 { mac, .. } => Via::L2 {
            ifindex: TEST_RUN_IFINDEX,
            mac: *mac,
            src_mac: [0x02, 0xaa, 0, 0, 0, 1],
            ifname: [0; 16],
            netns: anycast_common::NetnsId::default(),
        },
        MemberVia::Encap(a) => Via::Encap(*a),
        MemberVia::Neighbour { iface, .. } => {
            return Err(anycast::Error::UnknownInterface(iface.clone()));
        }
    })
}

/// Everything a refused change must leave as it was: group settings and
/// counters, addresses, and every member's stored entry.
type Snapshot = (Stats, Vec<AddressEntry>, Vec<(u32, MemberInfo)>);

fn snapshot(s: &State) -> Result<Snapshot> {
    Ok((s.stats()?, s.addresses()?, s.member_infos()?))
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn production_size_group_and_member_tables_fill_and_refuse_the_next_entry() -> Result<()> {
    require_root()?;
    let start = Instant::now();
    let (groups, members) = (MAX_GROUPS - 1, MAX_MEMBERS - 1);
    let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
    let text = toml(groups, members);
    let t = Instant::now();
    let full = Config::parse(&text)?;
    eprintln!(
        "parsed a file of {groups} groups and {members} members ({} kB) in {:.1?}",
        text.len() / 1000,
        t.elapsed()
    );

    let t = Instant::now();
    let changes = apply_config(&mut p.state, &full, &mut resolve, ApplyOptions::default())?;
    let filled = t.elapsed();
    let added = |kind: ChangeKind| {
        changes
            .iter()
            .filter(|c| c.action == ChangeAction::Added && c.kind == kind)
            .count()
    };
    assert_eq!(added(ChangeKind::Group), groups as usize);
    assert_eq!(added(ChangeKind::Member), members as usize);
    assert_eq!(added(ChangeKind::Address), groups as usize);
    let stats = p.stats()?;
    assert_eq!(stats.groups.len(), groups as usize);
    assert_eq!(p.state.member_infos()?.len(), members as usize);
    eprintln!("filled {groups} groups and {members} members in {filled:.1?}");

    // The program forwards to the group's nearest members, first to last group.
    let forwards = |p: &ProgramUnderTest| -> Result<()> {
        let infos = p.state.member_infos()?;
        for g in [0, groups / 2, groups - 1] {
            let gid = p.state.group_id_of(&format!("g{g:04}"))?;
            let out = p.run(&FrameBuilder::udp(CLIENT, addr(g), 40000, 53, b"q").build())?;
            ensure!(
                out.action == XDP_REDIRECT,
                "group {g}: action {}",
                out.action
            );
            let dst: [u8; 6] = out.data[..6].try_into()?;
            let m = infos
                .iter()
                .find(|(_, m)| m.mac == dst)
                .with_context(|| format!("group {g}: redirected to {dst:02x?}, not a member"))?;
            ensure!(m.1.group_id == gid && m.1.metric == 10, "group {g}: {m:?}");
        }
        let out = p.run(&FrameBuilder::udp(CLIENT, addr(groups), 40000, 53, b"q").build())?;
        ensure!(out.action == XDP_PASS, "a unicast address: {}", out.action);
        Ok(())
    };
    forwards(&p)?;

    // Each group's selection was published once: a new group's active
    // slot starts at 0 and every publish flips it.
    let slots = |p: &ProgramUnderTest| -> Result<BTreeMap<String, u32>> {
        let mut out = BTreeMap::new();
        for (name, g) in p.stats()?.groups {
            out.insert(name, p.state.group_info(g.id)?.active_slot);
        }
        Ok(out)
    };
    let published = slots(&p)?;
    assert!(published.values().all(|s| *s == 1), "{published:?}");

    // Applied again: nothing to do, nothing published.
    let t = Instant::now();
    let again = apply_config(&mut p.state, &full, &mut resolve, ApplyOptions::default())?;
    assert!(again.is_empty(), "{:?}", &again[..again.len().min(5)]);
    assert_eq!(slots(&p)?, published);
    eprintln!("re-applied (no change) in {:.1?}", t.elapsed());

    // The 63 nearest members of the last group farther: one publish, of
    // that group alone.
    let farther = Config::parse(&text.replace("metric = 10 }", "metric = 11 }").replacen(
        "metric = 11 }",
        "metric = 10 }",
        (members - groups) as usize - 63,
    ))?;
    let changed = apply_config(
        &mut p.state,
        &farther,
        &mut resolve,
        ApplyOptions::default(),
    )?;
    assert_eq!(changed.len(), 63, "{:?}", &changed[..changed.len().min(5)]);
    let group = &changed[0].group;
    assert!(
        changed
            .iter()
            .all(|c| c.action == ChangeAction::Changed && &c.group == group)
    );
    let mut want = published.clone();
    want.insert(group.clone(), 0);
    assert_eq!(slots(&p)?, want);
    apply_config(&mut p.state, &full, &mut resolve, ApplyOptions::default())?;

    let before = snapshot(&p.state)?;
    // One group more: through the file and through the CLI's path.
    let mut more = full.clone();
    let extra = Config::parse(&toml(groups + 1, 0))?
        .groups
        .pop_last()
        .context("the extra group")?;
    more.groups.insert(extra.0, extra.1);
    let refused = |p: &mut ProgramUnderTest, cfg: &Config| {
        let r = apply_config(&mut p.state, cfg, &mut resolve, ApplyOptions::default());
        r.map(|c| c.len()).map_err(|e| e.to_string())
    };
    assert_eq!(
        refused(&mut p, &more),
        Err(
            "the file needs 1024 entries of the group table, which holds 1023; nothing was changed"
                .into()
        )
    );
    let e = p
        .add(&addr(groups).to_string(), "one-too-many")
        .expect_err("the group table is full");
    assert!(
        e.to_string().contains("group table is full (1023 entries)"),
        "{e}"
    );

    // One member more: through the file and one by one.
    let mut more = full.clone();
    let g0 = more.groups.values_mut().next().context("a group")?;
    let mut m = g0.members.values().next().context("a member")?.clone();
    m.via = MemberVia::Encap("2001:db8:f::1".parse()?);
    g0.members.insert(MemberName::new("extra")?, m);
    assert_eq!(
        refused(&mut p, &more),
        Err("the file needs 65536 entries of the member table, which holds 65535; nothing was changed".into())
    );
    let e = p
        .state
        .add_member(
            &GroupName::new("g0000")?,
            &MemberName::new("extra")?,
            Via::Encap("2001:db8:f::1".parse()?),
            30,
            1,
        )
        .expect_err("the member table is full");
    assert!(
        e.to_string()
            .contains("member table is full (65535 entries)"),
        "{e}"
    );

    assert_eq!(
        snapshot(&p.state)?,
        before,
        "a refused change changed the state"
    );
    forwards(&p)?;

    // The listing works at this size (one pass per group, not per member).
    let t = Instant::now();
    let list = p.state.list_members(None)?;
    assert_eq!(list.len(), members as usize);
    assert_eq!(
        list.iter().filter(|m| m.nearest).count(),
        (members - groups) as usize
    );
    eprintln!("listed in {:.1?}", t.elapsed());

    let took = start.elapsed();
    eprintln!("done in {took:.1?}");
    assert!(took < Duration::from_secs(90), "took {took:?}");
    Ok(())
}
