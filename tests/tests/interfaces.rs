//! Lab tests of interfaces that come and go: attachments keyed by network
//! namespace and interface, forgotten when their interface is deleted; and
//! on-link members whose interface goes away, is replaced, or comes back.

use std::{
    io::{BufRead as _, BufReader},
    sync::{Arc, Mutex},
    thread,
    time::Duration,
};

use anycast_tests::{
    lab::{ANYCAST, Lab, MemberLab, Service, wait_until},
    require_root,
};
use anyhow::{Context as _, Result, ensure};
use serde_json::Value;

/// The index of interface `iface` in `node`.
fn ifindex(lab: &Lab, node: &str, iface: &str) -> Result<u32> {
    let shown = lab.ns(node)?.ip(&["-o", "link", "show", "dev", iface])?;
    shown
        .split(':')
        .next()
        .and_then(|s| s.trim().parse().ok())
        .with_context(|| format!("ifindex of {iface}: {shown}"))
}

/// `member list --json`, the member named `name`.
fn member(lab: &Lab, name: &str) -> Result<Value> {
    let list: Value =
        serde_json::from_str(&lab.anycast_ok("router", &["member", "list", "--json"])?)?;
    list.as_array()
        .and_then(|l| l.iter().find(|m| m["name"] == name))
        .cloned()
        .with_context(|| format!("no member {name}: {list}"))
}

/// Makes m1 (on r1, metric 10) and m2 (on r2, metric 20) members of group
/// `dns`, each serving `port`.
fn members_m1_m2(ml: &MemberLab, port: u16) -> Result<Vec<Service>> {
    ml.add_member("dns", "m1", "r1", 10)?;
    ml.add_member("dns", "m2", "r2", 20)?;
    ["m1", "m2"]
        .iter()
        .map(|m| Service::start(ml.lab.ns(m)?, ANYCAST, port, m))
        .collect()
}

/// Makes the router's link to m1 again as `MemberLab` made it (link 2:
/// r1 fd00:b:1::1 on the router, eth0 fd00:b:1::2 in m1, the same MACs),
/// with r1 at index `index`.
fn relink_m1(ml: &MemberLab, index: u32) -> Result<()> {
    let lab = &ml.lab;
    let (router, m1) = (lab.ns("router")?, lab.ns("m1")?);
    let (mac_r, mac_m) = (Lab::mac(2, 1), Lab::mac(2, 2));
    router.ip(&[
        "link",
        "add",
        "r1",
        "index",
        &index.to_string(),
        "address",
        &mac_r,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &m1.name,
        "address",
        &mac_m,
    ])?;
    for (ns, dev, addr, peer, peer_mac) in [
        (router, "r1", "fd00:b:1::1/64", "fd00:b:1::2", &mac_m),
        (m1, "eth0", "fd00:b:1::2/64", "fd00:b:1::1", &mac_r),
    ] {
        ns.ip(&["addr", "add", addr, "dev", dev, "nodad"])?;
        ns.ip(&["link", "set", dev, "up"])?;
        ns.ip(&[
            "neigh",
            "replace",
            peer,
            "lladdr",
            peer_mac,
            "dev",
            dev,
            "nud",
            "permanent",
        ])?;
    }
    lab.route("m1", "default", "fd00:b:1::1")?;
    for (ns, dev) in [(router, "r1"), (m1, "eth0")] {
        wait_until(&format!("{dev} up"), Duration::from_secs(5), || {
            ns.ip(&["link", "show", "dev", dev])
                .is_ok_and(|s| s.contains("LOWER_UP"))
        })?;
        // As `Lab::link`: redirected frames need GRO on the peer.
        ns.exec(&["ethtool", "-K", dev, "tx", "off", "gro", "on"])?;
    }
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn a_member_whose_interface_goes_is_down_until_that_interface_is_back() -> Result<()> {
    require_root()?;
    let ml = MemberLab::attached("ifgone", "dns")?;
    let lab = &ml.lab;
    let _svc = members_m1_m2(&ml, 5700)?;
    assert_eq!(ml.answerer(5700)?, "m1");
    let m1 = member(lab, "m1")?;
    assert_eq!(m1["iface"], "r1");
    assert_eq!(m1["link"], "present");
    let index = ifindex(lab, "router", "r1")?;

    // r1 is deleted (and m1's end with it).
    lab.ns("router")?.ip(&["link", "del", "r1"])?;
    let m1 = member(lab, "m1")?;
    assert_eq!(m1["state"], "up", "the operator's state stays: {m1}");
    assert_eq!(m1["link"], "gone", "{m1}");
    assert_eq!(m1["nearest"], false, "{m1}");
    assert_eq!(m1["link_losses"], 1, "{m1}");
    assert_eq!(member(lab, "m2")?["nearest"], true);
    assert_eq!(ml.answerer(5700)?, "m2");
    // Nothing more went to m1.
    assert_eq!(member(lab, "m1")?["packets"], m1["packets"]);
    // r1's attachment went with it.
    let s = lab.stats("router")?;
    let names: Vec<&Value> = s["interfaces"]
        .as_array()
        .map(|a| a.iter().map(|i| &i["name"]).collect())
        .unwrap_or_default();
    ensure!(!names.contains(&&Value::from("r1")), "{names:?}");

    // Another interface takes r1's index: not m1's interface.
    let router = lab.ns("router")?;
    router.ip(&[
        "link",
        "add",
        "r9",
        "index",
        &index.to_string(),
        "type",
        "veth",
        "peer",
        "name",
        "r9p",
    ])?;
    router.ip(&["link", "set", "r9", "up"])?;
    let m1 = member(lab, "m1")?;
    assert_eq!(m1["link"], "replaced", "{m1}");
    assert_eq!(m1["nearest"], false, "{m1}");
    assert_eq!(m1["link_losses"], 1, "{m1}");
    assert_eq!(ml.answerer(5700)?, "m2");
    // While it is down, the operator can still change it; it stays down.
    lab.anycast_ok("router", &["member", "set", "dns", "m1", "--metric", "5"])?;
    assert_eq!(member(lab, "m1")?["nearest"], false);
    assert_eq!(ml.answerer(5700)?, "m2");

    // r1 itself is back (same name, same index): so is m1.
    router.ip(&["link", "del", "r9"])?;
    relink_m1(&ml, index)?;
    let m1 = member(lab, "m1")?;
    assert_eq!(m1["link"], "present", "{m1}");
    assert_eq!(m1["nearest"], true, "{m1}");
    assert_eq!(m1["metric"], 5);
    assert_eq!(ml.answerer(5700)?, "m1");
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn anycast_run_follows_link_events() -> Result<()> {
    require_root()?;
    let ml = MemberLab::new("runevents")?;
    let lab = &ml.lab;
    lab.anycast_ok("router", &["attach", "r1", "--role", "member"])?;
    lab.anycast_ok("router", &["attach", "r2", "--role", "member"])?;
    lab.anycast_ok(
        "router",
        &["addr", "add", &ANYCAST.to_string(), "--group", "dns"],
    )?;
    let _svc = members_m1_m2(&ml, 5710)?;
    let (run, stdout) =
        lab.spawn_anycast(&lab.pin_dir, "router", &["run", "c0", "--interval", "60"])?;
    // What run prints, read by a thread that ends with run's output.
    let said = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let said = said.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(mut v) = said.lock() {
                    v.push(line);
                }
            }
        })
    };
    let saw = |needle: &str| {
        said.lock()
            .is_ok_and(|v| v.iter().any(|l| l.contains(needle)))
    };
    wait_until("run attached", Duration::from_secs(10), || {
        saw("attached to c0")
    })?;
    assert_eq!(ml.answerer(5710)?, "m1");

    // No command runs from here on: only run can notice.
    lab.ns("router")?.ip(&["link", "del", "r1"])?;
    wait_until(
        "run reports m1's interface gone",
        Duration::from_secs(5),
        || saw("member m1 of group dns: interface r1"),
    )?;
    wait_until("m2 answers", Duration::from_secs(10), || {
        ml.answerer(5710).is_ok_and(|t| t == "m2")
    })?;
    ensure!(
        saw("interface r1 (ifindex"),
        "{:?}",
        said.lock().map(|v| v.clone())
    );

    run.signal(libc::SIGTERM)?;
    let mut run = run;
    ensure!(run.wait(Duration::from_secs(10))?.success());
    let _ = reader.join();
    let m1 = member(lab, "m1")?;
    assert_eq!(m1["link"], "gone", "{m1}");
    assert_eq!(m1["link_losses"], 1, "{m1}");
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn attachments_know_their_namespace_and_forget_deleted_interfaces() -> Result<()> {
    require_root()?;
    let mut lab = Lab::new("ifacens")?;
    const INDEX: &str = "4242";
    for node in ["a", "b", "c"] {
        let ns = lab.node(node, false)?;
        if node != "c" {
            ns.ip(&[
                "link", "add", "x0", "index", INDEX, "type", "veth", "peer", "name", "x1",
            ])?;
            ns.ip(&["link", "set", "x0", "up"])?;
            ns.ip(&["link", "set", "x1", "up"])?;
        }
    }
    let xdp = |node: &str| -> Result<bool> {
        Ok(lab
            .ns(node)?
            .ip(&["link", "show", "dev", "x0"])?
            .contains("xdp"))
    };
    let attached = |lab: &Lab| -> Result<Vec<(String, u64, u64)>> {
        let s = lab.stats("a")?;
        Ok(s["interfaces"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|i| {
                        (
                            i["name"].as_str().unwrap_or("").to_string(),
                            i["ifindex"].as_u64().unwrap_or(0),
                            i["netns"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    };

    // The same index in two namespaces: two attachments.
    lab.anycast_ok("a", &["attach", "x0"])?;
    lab.anycast_ok("b", &["attach", "x0"])?;
    ensure!(xdp("a")? && xdp("b")?);
    let both = attached(&lab)?;
    assert_eq!(both.len(), 2, "{both:?}");
    ensure!(
        both.iter().all(|(n, i, _)| n == "x0" && *i == 4242),
        "{both:?}"
    );
    ensure!(both[0].2 != both[1].2, "one namespace for both: {both:?}");
    lab.anycast_refused("b", &["attach", "x0"], "already attached")?;

    // Detaching in one namespace leaves the other.
    lab.anycast_refused("c", &["detach", "x0"], "in another one")?;
    lab.anycast_ok("b", &["detach", "x0"])?;
    ensure!(xdp("a")? && !xdp("b")?);
    assert_eq!(attached(&lab)?.len(), 1);

    // x0 deleted: the next command forgets its attachment ...
    lab.ns("a")?.ip(&["link", "del", "x0"])?;
    assert_eq!(attached(&lab)?, Vec::new());
    let pins: Vec<String> = std::fs::read_dir(&lab.pin_dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("link_"))
        .collect();
    assert_eq!(pins, Vec::<String>::new());
    // ... and a new x0 with the same index attaches.
    lab.ns("a")?.ip(&[
        "link", "add", "x0", "index", INDEX, "type", "veth", "peer", "name", "x1",
    ])?;
    lab.ns("a")?.ip(&["link", "set", "x0", "up"])?;
    lab.anycast_ok("a", &["attach", "x0"])?;
    ensure!(xdp("a")?);
    assert_eq!(attached(&lab)?.len(), 1);
    lab.anycast_ok("a", &["detach", "--purge"])?;
    Ok(())
}
