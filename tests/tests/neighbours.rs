//! Lab tests of what the service follows of the network (issue 15):
//! on-link members given by address get their MAC from the neighbour table
//! and follow a new one in place; `metric = "route"` takes a member's
//! metric from the kernel's route to it.

use std::{net::Ipv6Addr, time::Duration};

use anycast::{
    neighbours::Neighbours,
    netlink::events::{NetEvent, NetEvents},
};
use anycast_tests::{
    lab::{ANYCAST, Lab, Lines, MemberLab, Service, wait_until},
    require_root,
};
use anyhow::{Context, Result, ensure};

const M1: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xb, 1, 0, 0, 0, 0, 2);
const M2: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xb, 2, 0, 0, 0, 0, 2);
/// An address on m2's link that no host has.
const GHOST: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xb, 2, 0, 0, 0, 0, 0x99);
/// Where clients ask, on the anycast address.
const PORT: u16 = 5390;
/// How long a service may take to start (see tests/tests/service.rs).
const STARTUP: Duration = Duration::from_secs(60);
/// How long the service may take to follow a change: an unsolicited
/// advertisement or a route event is taken at once; the bound is generous
/// for a busy machine, not a measure of speed.
const FOLLOW: Duration = Duration::from_secs(15);

const HEAD: &str = "[interface.c0]\nrole = \"edge\"\n[interface.r1]\nrole = \"member\"\n\
                    [interface.r2]\nrole = \"member\"\n";

/// `anycast status --json`'s reachability row of `member`.
fn reach(ml: &MemberLab, member: &str) -> Result<serde_json::Value> {
    let status: serde_json::Value =
        serde_json::from_str(&ml.lab.anycast_ok("router", &["status", "--json"])?)?;
    status["reachability"]
        .as_array()
        .and_then(|a| a.iter().find(|m| m["member"] == member))
        .cloned()
        .with_context(|| format!("{member} not in {status}"))
}

/// `member list --json`'s entry of `name` in group dns.
fn listed(ml: &MemberLab, name: &str) -> Result<serde_json::Value> {
    let list: serde_json::Value = serde_json::from_str(
        &ml.lab
            .anycast_ok("router", &["member", "list", "dns", "--json"])?,
    )?;
    list.as_array()
        .and_then(|a| a.iter().find(|m| m["name"] == name))
        .cloned()
        .with_context(|| format!("{name} not in {list}"))
}

/// m1's and m2's servers on the anycast address, each answering its name.
fn servers(ml: &MemberLab) -> Result<[Service; 2]> {
    Ok([
        Service::start(ml.lab.ns("m1")?, ANYCAST, PORT, "m1")?,
        Service::start(ml.lab.ns("m2")?, ANYCAST, PORT, "m2")?,
    ])
}

/// Who answers one query on `sock` (one flow), if anyone.
fn asked(ml: &MemberLab, sock: &std::net::UdpSocket) -> Result<Option<String>> {
    Ok(ml.query(sock, PORT)?.map(|(tag, _)| tag))
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn members_by_address_are_resolved_and_follow_a_new_mac() -> Result<()> {
    require_root()?;
    let ml = MemberLab::new("neigh")?;
    let lab = &ml.lab;
    let router = lab.ns("router")?;
    // The router learns the members' MACs by Neighbour Discovery: no
    // static entries. m1 announces a new MAC (unsolicited advertisement).
    router.ip(&["neigh", "del", &M1.to_string(), "dev", "r1"])?;
    router.ip(&["neigh", "del", &M2.to_string(), "dev", "r2"])?;
    lab.ns("m1")?
        .sysctl("net.ipv6.conf.eth0.ndisc_notify", "1")?;
    // m2 announces nothing: the router finds its new MAC when its entry
    // goes stale and is probed (made quick here: reachable for about 1 s,
    // probed 1 s after use, 3 probes 300 ms apart).
    for (key, value) in [
        ("base_reachable_time_ms", "1000"),
        ("delay_first_probe_time", "1"),
        ("retrans_time_ms", "300"),
    ] {
        router.sysctl(&format!("net.ipv6.neigh.r2.{key}"), value)?;
    }
    let _servers = servers(&ml)?;
    // ghost would be nearest, but no host has its address.
    let text = format!(
        "{HEAD}[group.dns]\naddresses = [\"{ANYCAST}\"]\n\
         [group.dns.member.ghost]\niface = \"r2\"\naddr = \"{GHOST}\"\nmetric = 5\n\
         [group.dns.member.m1]\niface = \"r1\"\naddr = \"{M1}\"\nmetric = 10\n\
         [group.dns.member.m2]\niface = \"r2\"\naddr = \"{M2}\"\nmetric = 20\n"
    );
    let file = lab.file("neigh.toml", &text)?;
    // The one-shot CLI resolves once, and refuses what it cannot resolve.
    lab.anycast_refused(
        "router",
        &["config", "apply", file.arg()],
        &format!("line 9: group.dns.member.ghost.addr: {GHOST} on r2 is not resolved"),
    )?;
    let (_running, stdout) =
        lab.spawn_anycast(&lab.pin_dir, "router", &["run", "--config", file.arg()])?;
    let mut lines = Lines::new(stdout);
    lines.expect(&["serving"], STARTUP)?;
    lines.expect(
        &[
            "member ghost of group dns: down",
            &format!("neighbour {GHOST} on r2"),
        ],
        FOLLOW,
    )?;

    // Resolved, and forwarded to: m1 answers.
    let m1 = reach(&ml, "m1")?;
    ensure!(
        m1["via"] == "neighbour" && m1["mac"] == ml.member_mac("m1")?.as_str(),
        "{m1}"
    );
    ensure!(
        m1["metric_source"] == "file" && m1["down_reason"].is_null(),
        "{m1}"
    );
    let sock = ml.client_socket()?;
    ensure!(asked(&ml, &sock)?.as_deref() == Some("m1"), "m1 answers");
    // The unresolvable member is down, with the reason, and gets nothing.
    let ghost = reach(&ml, "ghost")?;
    ensure!(
        ghost["down_reason"]
            .as_str()
            .is_some_and(|r| r.contains(&format!("neighbour {GHOST} on r2"))),
        "{ghost}"
    );
    ensure!(ghost["mac"].is_null(), "{ghost}");
    let text = lab.anycast_ok("router", &["status"])?;
    ensure!(
        text.lines()
            .any(|l| l.contains("ghost") && l.contains("neighbour") && l.contains("not resolved")),
        "{text}"
    );
    let before = listed(&ml, "m1")?;

    // m1's interface gets a new MAC: the service follows, in place.
    let new_mac = "02:ac:00:00:ee:01";
    lab.ns("m1")?
        .ip(&["link", "set", "dev", "eth0", "address", new_mac])?;
    wait_until("m1's new MAC in the data plane", FOLLOW, || {
        listed(&ml, "m1").is_ok_and(|m| m["mac"] == new_mac)
    })?;
    lines.expect(&["changed member dns/m1", &format!("-> {new_mac}")], FOLLOW)?;
    ensure!(reach(&ml, "m1")?["mac"] == new_mac);
    // The same flow reaches m1 again, within a bounded number of tries.
    let mut again = None;
    for _ in 0..10 {
        again = asked(&ml, &sock)?;
        if again.is_some() {
            break;
        }
    }
    ensure!(
        again.as_deref() == Some("m1"),
        "the flow reaches m1: {again:?}"
    );
    // The same member (id), holding its flow.
    let after = listed(&ml, "m1")?;
    ensure!(after["id"] == before["id"], "{before} -> {after}");
    ensure!(after["flows"].as_u64() >= Some(1), "{after}");
    ensure!(ml.answerer(PORT)? == "m1", "new flows too");

    // m2 gets a new MAC and says nothing: its stale entry is probed, the
    // probes of the old MAC fail, the solicitation sent at once finds the
    // new one, and the member follows in place.
    let m2_before = listed(&ml, "m2")?;
    let m2_mac = "02:ac:00:00:ee:02";
    lab.ns("m2")?
        .ip(&["link", "set", "dev", "eth0", "address", m2_mac])?;
    wait_until("m2's new MAC in the data plane", FOLLOW, || {
        listed(&ml, "m2").is_ok_and(|m| m["mac"] == m2_mac)
    })?;
    let m2_after = listed(&ml, "m2")?;
    ensure!(
        m2_after["id"] == m2_before["id"] && m2_after["state"] == "up",
        "{m2_after}"
    );
    // Forwarding follows: with m1 taken down by hand, m2 answers.
    lab.anycast_ok("router", &["member", "set", "dns", "m1", "--down"])?;
    ensure!(ml.answerer(PORT)? == "m2", "m2 answers at its new MAC");
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn metrics_from_routes_move_traffic_and_no_route_is_down() -> Result<()> {
    require_root()?;
    let ml = MemberLab::new("route")?;
    let lab = &ml.lab;
    let router = lab.ns("router")?;
    let _servers = servers(&ml)?;
    let host = |m: Ipv6Addr| format!("{m}/128");
    router.ip(&[
        "-6",
        "route",
        "replace",
        &host(M1),
        "dev",
        "r1",
        "metric",
        "10",
    ])?;
    router.ip(&[
        "-6",
        "route",
        "replace",
        &host(M2),
        "dev",
        "r2",
        "metric",
        "20",
    ])?;
    let text = format!(
        "{HEAD}[group.dns]\naddresses = [\"{ANYCAST}\"]\n\
         [group.dns.member.m1]\niface = \"r1\"\nmac = \"{}\"\naddr = \"{M1}\"\nmetric = \"route\"\n\
         [group.dns.member.m2]\niface = \"r2\"\nmac = \"{}\"\naddr = \"{M2}\"\nmetric = \"route\"\n",
        ml.member_mac("m1")?,
        ml.member_mac("m2")?,
    );
    let file = lab.file("route.toml", &text)?;
    let (_running, stdout) =
        lab.spawn_anycast(&lab.pin_dir, "router", &["run", "--config", file.arg()])?;
    let mut lines = Lines::new(stdout);
    lines.expect(&["serving"], STARTUP)?;
    let m1 = reach(&ml, "m1")?;
    ensure!(m1["metric_source"] == "route" && m1["metric"] == 10, "{m1}");
    ensure!(listed(&ml, "m2")?["metric"] == 20);
    ensure!(ml.answerer(PORT)? == "m1", "m1 nearest by its route");

    // A nearer route to m2 (ip adds it beside the one of metric 20).
    router.ip(&[
        "-6",
        "route",
        "replace",
        &host(M2),
        "dev",
        "r2",
        "metric",
        "5",
    ])?;
    lines.expect(&["changed member dns/m2: metric 20 -> 5"], FOLLOW)?;
    ensure!(reach(&ml, "m2")?["metric"] == 5);
    ensure!(
        ml.answerer(PORT)? == "m2",
        "m2 nearest after the route change"
    );

    // No route to m2 at all: it is down, with the reason.
    // (Bounded: two routes to it were added.)
    for _ in 0..4 {
        if router.ip(&["-6", "route", "del", &host(M2)]).is_err() {
            break;
        }
    }
    router.ip(&["-6", "route", "del", "fd00:b:2::/64", "dev", "r2"])?;
    lines.expect(&["member m2 of group dns: down (no route)"], FOLLOW)?;
    let m2 = reach(&ml, "m2")?;
    ensure!(
        m2["down_reason"] == "no route" && m2["metric"].is_null(),
        "{m2}"
    );
    ensure!(listed(&ml, "m2")?["state"] == "down");
    ensure!(ml.answerer(PORT)? == "m1", "m1 takes over");
    // The one-shot CLI refuses a member without a route.
    lab.anycast_refused(
        "router",
        &["config", "apply", "--dry-run", file.arg()],
        &format!("group.dns.member.m2.metric: no route to {M2}"),
    )?;

    // The route comes back: so does m2.
    router.ip(&[
        "-6",
        "route",
        "replace",
        &host(M2),
        "dev",
        "r2",
        "metric",
        "7",
    ])?;
    lines.expect(&["member m2 of group dns: reachable again"], FOLLOW)?;
    wait_until("m2 up at metric 7", FOLLOW, || {
        listed(&ml, "m2").is_ok_and(|m| m["state"] == "up" && m["metric"] == 7)
    })?;
    ensure!(ml.answerer(PORT)? == "m2", "m2 nearest again");
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn a_new_mac_in_the_file_changes_the_member_in_place() -> Result<()> {
    require_root()?;
    let ml = MemberLab::new("macs")?;
    let lab = &ml.lab;
    let real = ml.member_mac("m1")?;
    let other = "02:ac:00:00:ee:42";
    let file = |m1: &str, spare: &str| {
        format!(
            "{HEAD}[group.dns]\naddresses = [\"{ANYCAST}\"]\n\
             [group.dns.member.m1]\niface = \"r1\"\nmac = \"{m1}\"\nmetric = 10\n\
             [group.dns.member.spare]\niface = \"r1\"\nmac = \"{spare}\"\nmetric = 20\n"
        )
    };
    let v1 = lab.file("v1.toml", &file(&real, other))?;
    lab.anycast_ok("router", &["config", "apply", v1.arg()])?;
    let _server = Service::start(lab.ns("m1")?, ANYCAST, PORT, "m1")?;
    let sock = ml.client_socket()?;
    ensure!(asked(&ml, &sock)?.as_deref() == Some("m1"), "m1 answers");
    let (m1, spare) = (listed(&ml, "m1")?, listed(&ml, "spare")?);
    // The two swap MACs: both changed in place, neither replaced (the
    // old source entries leave before the new ones come).
    let v2 = lab.file("v2.toml", &file(other, &real))?;
    let out = lab.anycast_ok("router", &["config", "apply", v2.arg()])?;
    ensure!(
        out.contains(&format!("changed member dns/m1: mac {real} -> {other}"))
            && out.contains(&format!("changed member dns/spare: mac {other} -> {real}"))
            && out.contains("0 replaced"),
        "{out}"
    );
    let (m1_now, spare_now) = (listed(&ml, "m1")?, listed(&ml, "spare")?);
    ensure!(m1_now["id"] == m1["id"] && spare_now["id"] == spare["id"]);
    ensure!(m1_now["mac"] == other && spare_now["mac"] == real.as_str());
    // m1 keeps its flow, which now goes to the MAC nobody has.
    ensure!(m1_now["flows"].as_u64() >= Some(1), "{m1_now}");
    ensure!(
        asked(&ml, &sock)?.is_none(),
        "sent to the MAC m1 no longer has"
    );
    // And back: the flow reaches m1 again.
    lab.anycast_ok("router", &["config", "apply", v1.arg()])?;
    ensure!(asked(&ml, &sock)?.as_deref() == Some("m1"), "m1 again");
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces): run with `cargo xtask test`"]
fn an_overrun_event_socket_says_so_and_a_resync_finds_what_it_lost() -> Result<()> {
    require_root()?;
    let mut lab = Lab::new("overrun")?;
    lab.node("n", false)?;
    let ns = lab.ns("n")?;
    ns.ip(&["link", "add", "a0", "type", "veth", "peer", "name", "a1"])?;
    ns.ip(&["link", "set", "a0", "up"])?;
    // A socket with the smallest buffer, then a flood of neighbour events.
    let events = ns.run(|| NetEvents::with_buffer(1))??;
    let count = 3000;
    let batch: String = (1..=count)
        .map(|i| {
            format!(
                "neigh add fd00:f::{i:x} lladdr 02:00:00:00:{:02x}:{:02x} dev a0 nud permanent\n",
                i >> 8,
                i & 0xff
            )
        })
        .collect();
    let file = lab.file("flood", &batch)?;
    ns.ip(&["-batch", file.arg()])?;
    let mut got = Vec::new();
    for _ in 0..20 {
        let more = events.wait(Duration::from_millis(100))?;
        if more.is_empty() {
            break;
        }
        got.extend(more);
    }
    ensure!(
        got.contains(&NetEvent::Overrun),
        "no overrun among {} events",
        got.len()
    );
    let seen = got
        .iter()
        .filter(|e| matches!(e, NetEvent::Neighbour { .. }))
        .count();
    ensure!(
        seen < count,
        "all {seen} events came: the buffer did not overflow"
    );
    // Reading the table whole finds the last entry, whatever events were lost.
    let last: Ipv6Addr = format!("fd00:f::{count:x}").parse()?;
    let mac = ns.run(move || -> anyhow::Result<Option<[u8; 6]>> {
        let mut n = Neighbours::default();
        n.want([("a0".to_string(), last)])?;
        Ok(n.mac("a0", last))
    })??;
    ensure!(mac == Some([2, 0, 0, 0, 0x0b, 0xb8]), "{mac:?}");
    Ok(())
}
