//! Lab tests of the service's BGP announcements (issue 16): each announced
//! prefix is a route in table 100 with the service's protocol, through a
//! tun device the service holds (fate-sharing). A member's health is an
//! exec check of a file's existence, so the test decides it.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anycast_tests::{
    bgp::{self, Bird},
    lab::{Lab, LabFile, Lines, Running, wait_until},
    require_root,
};
use anyhow::{Context as _, Result, ensure};

/// How long a service may take to start (it loads the program).
const STARTUP: Duration = Duration::from_secs(60);
/// The prefix announced, and the route the service makes for it.
const PREFIX: &str = "2001:db8:ef::/48";
const ROUTE: &str = "2001:db8:ef::/48 dev anycast-bgp0 proto 250";

/// A service in a namespace of its own, with one checked member whose
/// health is whether `ok` exists.
struct Node {
    lab: Lab,
    ok: PathBuf,
    file: LabFile,
}

impl Node {
    fn new(test: &str, drain: f64) -> Result<Self> {
        let mut lab = Lab::new(test)?;
        lab.node("node", true)?;
        let ok = std::env::temp_dir().join(format!("{}-m1-ok", lab.prefix));
        std::fs::write(&ok, "")?;
        let text = format!(
            "[bgp]\ntable = 100\nprotocol = 250\ndrain-time = {drain:.1}\nhold-down = 0.5\n\
             [group.g]\naddresses = [\"2001:db8:ef::1\"]\nannounce = [\"{PREFIX}\"]\n\
             announce-min-members = 1\n\
             [group.g.member.m1]\nencap = \"fd00:ef::2\"\n\
             [group.g.member.m1.check]\nkind = \"exec\"\ncommand = [\"test\", \"-e\", \"{}\"]\n\
             interval = 0.2\ntimeout = 0.2\nrise = 1\nfall = 1\n",
            ok.display()
        );
        let file = lab.file("bgp.toml", &text)?;
        Ok(Node { lab, ok, file })
    }

    fn start(&self) -> Result<(Running, Lines)> {
        let (running, stdout) = self.lab.spawn_anycast(
            &self.lab.pin_dir,
            "node",
            &["run", "--config", self.file.arg()],
        )?;
        let mut lines = Lines::new(stdout);
        lines.expect(&["serving"], STARTUP)?;
        Ok((running, lines))
    }

    /// `ip -6 route show table 100` in the node.
    fn table(&self) -> Result<String> {
        self.lab
            .ns("node")?
            .ip(&["-6", "route", "show", "table", "100"])
    }

    fn announced(&self) -> bool {
        self.table().is_ok_and(|t| t.contains(ROUTE))
    }

    fn withdrawn(&self) -> bool {
        self.table().is_ok_and(|t| t.trim().is_empty())
    }

    fn status_json(&self) -> Result<serde_json::Value> {
        let out = self.lab.anycast_ok("node", &["status", "--json"])?;
        Ok(serde_json::from_str(&out)?)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ok);
    }
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn a_prefix_is_announced_while_its_member_is_live_and_maintenance_and_sigterm_withdraw_it()
-> Result<()> {
    require_root()?;
    let node = Node::new("bgpann", 2.0)?;
    let (mut running, mut lines) = node.start()?;
    // Healthy member: announced (after rise and the hold-down), with the
    // service's protocol, in table 100.
    wait_until("the route in table 100", Duration::from_secs(10), || {
        node.announced()
    })?;
    let line = lines.expect(
        &["prefix 2001:db8:ef::/48 of group g: announced"],
        Duration::from_secs(5),
    )?;
    ensure!(line.contains("1 live members, 1 needed"), "{line}");
    let st = node.status_json()?;
    let p = &st["announcements"]["prefixes"][0];
    ensure!(p["announced"] == true && p["prefix"] == PREFIX, "{st}");
    ensure!(p["since"].as_f64().is_some_and(|s| s > 1.0e9), "{st}");
    let text = node.lab.anycast_ok("node", &["status"])?;
    ensure!(
        text.contains("announcements: routes in table 100 proto 250 dev anycast-bgp0")
            && text
                .lines()
                .any(|l| l.starts_with(PREFIX) && l.contains("announced")),
        "{text}"
    );

    // The last member's check fails: withdrawn within the detection time
    // (fall x interval + timeout = 0.4 s) plus 1 s.
    std::fs::remove_file(&node.ok)?;
    let failed = Instant::now();
    wait_until("the route withdrawn", Duration::from_secs(5), || {
        node.withdrawn()
    })?;
    let took = failed.elapsed();
    ensure!(
        took <= Duration::from_millis(1400),
        "withdrawn after {took:?}"
    );
    let line = lines.expect(
        &["prefix 2001:db8:ef::/48 of group g: withdrawn"],
        Duration::from_secs(5),
    )?;
    ensure!(line.contains("0 live members, 1 needed"), "{line}");
    // Healthy again: announced again (after the hold-down).
    std::fs::write(&node.ok, "")?;
    wait_until("the route back", Duration::from_secs(10), || {
        node.announced()
    })?;

    // Maintenance on: withdrawn at once, drained after the drain time,
    // the member still up in the data plane (forwarding goes on).
    let out = node.lab.anycast_ok("node", &["maintenance", "on"])?;
    ensure!(
        out.contains("withdrawn (maintenance)") && out.contains("drained"),
        "{out}"
    );
    ensure!(node.withdrawn(), "{}", node.table()?);
    let members = node.lab.anycast_ok("node", &["member", "list", "--json"])?;
    ensure!(
        members.contains("\"up\"") || members.contains("Up"),
        "{members}"
    );
    let st = node.status_json()?;
    ensure!(
        st["announcements"]["maintenance"] == true && st["announcements"]["drained"] == true,
        "{st}"
    );
    lines.expect(&["maintenance: drained"], Duration::from_secs(5))?;
    let out = node.lab.anycast_ok("node", &["maintenance", "off"])?;
    ensure!(out.contains("announced"), "{out}");
    ensure!(node.announced(), "{}", node.table()?);

    // SIGTERM: the route goes first, while the service still runs for the
    // drain time (2 s), then it exits.
    running.signal(libc::SIGTERM)?;
    wait_until(
        "the route withdrawn on SIGTERM",
        Duration::from_secs(2),
        || node.withdrawn(),
    )?;
    ensure!(
        running.0.try_wait()?.is_none(),
        "exited before the drain time"
    );
    lines.expect(
        &["withdrawn (the service is stopping)"],
        Duration::from_secs(2),
    )?;
    let exit = running.wait(Duration::from_secs(10))?;
    ensure!(exit.success(), "{exit}");
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn sigkill_of_the_service_removes_its_routes() -> Result<()> {
    require_root()?;
    let node = Node::new("bgpkill", 5.0)?;
    let (running, _lines) = node.start()?;
    wait_until("the route in table 100", Duration::from_secs(10), || {
        node.announced()
    })?;
    running.signal(libc::SIGKILL)?;
    // The kernel removes the tun device with the process, and its routes.
    wait_until(
        "the route gone with the process",
        Duration::from_secs(5),
        || node.withdrawn(),
    )
    .with_context(|| format!("table 100: {:?}", node.table()))?;
    let links = node.lab.ns("node")?.ip(&["link", "show"])?;
    ensure!(!links.contains("anycast-bgp0"), "{links}");
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF) and bird2: run with `cargo xtask test`"]
fn bird_exports_the_prefix_and_withdraws_it_when_the_service_is_killed() -> Result<()> {
    require_root()?;
    let mut node = Node::new("bgpbird", 5.0)?;
    node.lab.node("up", true)?;
    node.lab.link(
        anycast_tests::lab::End {
            node: "node",
            ifname: "n0",
            addr: "fd00:bb::2/64",
        },
        anycast_tests::lab::End {
            node: "up",
            ifname: "u0",
            addr: "fd00:bb::1/64",
        },
    )?;
    // The node's and the upstream's configurations of docs/BGP.md, with
    // this lab's interfaces and addresses.
    let up_bird = Bird::start(
        &node.lab,
        "up",
        &bgp::upstream_conf("192.0.2.1", "u0", &["fd00:bb::2"]),
    )?;
    let _node_bird = Bird::start(
        &node.lab,
        "node",
        &bgp::node_conf("192.0.2.11", "n0", "fd00:bb::1"),
    )?;
    let (running, _lines) = node.start()?;
    let up = node.lab.ns("up")?;
    let upstream_route = || up.ip(&["-6", "route", "show", PREFIX]).unwrap_or_default();
    // The service announces (table 100), BIRD learns and exports it, the
    // upstream installs it via the node.
    wait_until(
        "the upstream's route via the node",
        Duration::from_secs(60),
        || {
            let r = upstream_route();
            r.contains("via fd00:bb::2") && r.contains("proto bird")
        },
    )
    .with_context(|| format!("node table 100: {:?}", node.table()))?;
    // SIGKILL: the kernel removes the route, BIRD sees it go and withdraws
    // it by an update: the upstream drops it long before any hold timer
    // (240 s by default), and the session stays up.
    running.signal(libc::SIGKILL)?;
    let killed = Instant::now();
    wait_until("the upstream's route gone", Duration::from_secs(5), || {
        upstream_route().trim().is_empty()
    })?;
    eprintln!(
        "upstream dropped the route {:?} after SIGKILL",
        killed.elapsed()
    );
    let protocols = up_bird.birdc(&["show", "protocols", "node1"])?;
    ensure!(protocols.contains("Established"), "{protocols}");
    Ok(())
}
