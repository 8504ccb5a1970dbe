//! `anycast doctor` on a working lab says all is well (exit 0); then each
//! way of breaking forwarding, made on purpose one at a time and undone
//! before the next, is named by the right check (FAIL or WARN) with a fix
//! that says what to do, and a FAIL makes the exit status non-zero.

use std::{path::Path, time::Duration};

use anycast::{Dataplane, PinDir, state::Tamper};
use anycast_common::peer_names;
use anycast_tests::{
    lab::{M3, MemberLab, sh, wait_until},
    require_root,
};
use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// `anycast --netns router doctor --json`: its exit status and report.
fn doctor(ml: &MemberLab) -> Result<(bool, Value)> {
    let out = ml.lab.anycast_in("router", &["doctor", "--json"])?;
    let report: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "doctor --json: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    if report["version"] != 1 {
        bail!("doctor --json has no version 1: {report}");
    }
    Ok((out.status.success(), report))
}

/// Every check that is not OK, one per line (for messages).
fn not_ok(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c["status"] != "ok")
                .map(|c| c.to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (bounded) until doctor says all is well and exits 0.
fn all_ok(ml: &MemberLab, after: &str) -> Result<()> {
    let mut last = Value::Null;
    let r = wait_until(
        &format!("doctor all OK after {after}"),
        Duration::from_secs(15),
        || match doctor(ml) {
            Ok((ok, report)) => {
                let good = ok && report["status"] == "ok" && not_ok(&report).is_empty();
                last = report;
                good
            }
            Err(_) => false,
        },
    );
    r.with_context(|| format!("not OK: {:#?}", not_ok(&last)))
}

/// Requires doctor to name check `name` on `subject` with `status` and a
/// fix containing `fix`, and to exit non-zero exactly when something FAILs.
fn names(ml: &MemberLab, name: &str, subject: &str, status: &str, fix: &str) -> Result<()> {
    let (exit_ok, report) = doctor(ml)?;
    let checks = report["checks"].as_array().context("checks")?;
    let hit = checks
        .iter()
        .find(|c| c["name"] == name && c["subject"] == subject && c["status"] == status);
    let Some(hit) = hit else {
        bail!(
            "no {status} {name} {subject}; not OK: {:#?}",
            not_ok(&report)
        );
    };
    let got = hit["fix"].as_str().unwrap_or_default();
    if !got.contains(fix) {
        bail!("{name} {subject}: fix `{got}` does not say `{fix}`");
    }
    let fails = checks.iter().any(|c| c["status"] == "fail");
    assert_eq!(exit_ok, !fails, "exit status against the FAILs: {report}");
    assert_eq!(report["status"], if fails { "fail" } else { "warn" });
    // The text output names it too, on one line with its fix.
    let out = ml.lab.anycast_in("router", &["doctor"])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = match subject {
        "" => format!("{} {name}: ", status.to_uppercase()),
        s => format!("{} {name} {s}: ", status.to_uppercase()),
    };
    assert!(
        text.lines()
            .any(|l| l.starts_with(&line) && l.contains(fix)),
        "no line `{line}...{fix}` in:\n{text}"
    );
    assert_eq!(out.status.success(), exit_ok);
    Ok(())
}

/// Brings `r1` back as the lab made it: up, its address, the static
/// neighbour of m1, and GRO switched on again on both ends (a veth
/// advertises redirect support only when GRO is switched on while both
/// ends are up).
fn restore_r1(ml: &MemberLab, mac: &str) -> Result<()> {
    let (router, m1) = (ml.lab.ns("router")?, ml.lab.ns("m1")?);
    router.ip(&["link", "set", "r1", "mtu", "1500", "up"])?;
    router.ip(&["addr", "replace", "fd00:b:1::1/64", "dev", "r1", "nodad"])?;
    router.ip(&[
        "neigh",
        "replace",
        "fd00:b:1::2",
        "lladdr",
        mac,
        "dev",
        "r1",
        "nud",
        "permanent",
    ])?;
    wait_until("r1 up", Duration::from_secs(5), || {
        router
            .ip(&["link", "show", "dev", "r1"])
            .is_ok_and(|s| s.contains("LOWER_UP"))
    })?;
    for (ns, dev) in [(router, "r1"), (m1, "eth0")] {
        ns.exec(&["ethtool", "-K", dev, "gro", "off"])?;
        ns.exec(&["ethtool", "-K", dev, "gro", "on"])?;
    }
    Ok(())
}

/// `nsenter --net=<router's namespace> ip ...`: unlike `ip -n`, it keeps
/// this mount namespace, so bpffs pins are in sight.
fn ip_in_router(ml: &MemberLab, args: &[&str]) -> Result<String> {
    let net = format!("--net=/run/netns/{}", ml.lab.ns("router")?.name);
    let mut v = vec!["nsenter", net.as_str(), "ip"];
    v.extend_from_slice(args);
    sh(&v)
}

/// A pinned program's file, removed on drop (the lab's clean-up removes
/// pin directories, not files).
struct PinnedFile(std::path::PathBuf);

impl Drop for PinnedFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Loads the peers' `pass_all` program and pins it at `path`.
fn pin_pass_all(path: &Path) -> Result<aya::Ebpf> {
    let mut ebpf = aya::Ebpf::load(anycast::PEERS_OBJECT).context("loading the peer programs")?;
    let p: &mut aya::programs::Xdp = ebpf
        .program_mut(peer_names::PASS_ALL)
        .context("no pass_all")?
        .try_into()?;
    p.load()?;
    p.pin(path).context("pinning pass_all")?;
    Ok(ebpf)
}

#[test]
#[ignore = "needs root (network namespaces, BPF): run with `cargo xtask test`"]
fn doctor_names_each_way_forwarding_is_broken() -> Result<()> {
    require_root()?;
    let ml = MemberLab::attached("doctor", "dns")?;
    let lab = &ml.lab;
    ml.add_member("dns", "m1", "r1", 10)?;
    ml.add_member("dns", "m2", "r2", 10)?;
    lab.anycast_ok(
        "router",
        &[
            "member",
            "add",
            "dns",
            "m3",
            "--encap",
            &M3.to_string(),
            "--metric",
            "20",
        ],
    )?;
    let m1_mac = ml.member_mac("m1")?;
    all_ok(&ml, "building the lab")?;
    let (ok, report) = doctor(&ml)?;
    assert!(ok);
    let checks = report["checks"].as_array().context("checks")?;
    for want in [
        ("xdp.attached", "c0"),
        ("xdp.mode", "r1"),
        ("state.consistent", ""),
        ("member.redirect", "dns/m1"),
        ("member.neighbour", "dns/m2"),
        ("encap.mtu", "dns/m3"),
        ("forwarding", ""),
        ("service", ""),
        ("kernel.features", ""),
    ] {
        assert!(
            checks
                .iter()
                .any(|c| c["name"] == want.0 && c["subject"] == want.1),
            "no check {want:?} in {report}"
        );
    }
    let router = lab.ns("router")?;

    // A scoped address whose scope names no attached interface (loopback
    // exists, unattached), then one that does.
    let scoped = "2001:db8:ac::99";
    lab.anycast_ok(
        "router",
        &["addr", "add", scoped, "--group", "dns", "--scope", "lo"],
    )?;
    names(&ml, "scope.attached", "lo", "warn", "anycast attach lo")?;
    lab.anycast_ok(
        "router",
        &["addr", "add", scoped, "--group", "dns", "--scope", "c0"],
    )?;
    all_ok(&ml, "a scope of an attached interface")?;
    lab.anycast_ok("router", &["addr", "del", scoped])?;

    // The member's egress interface down.
    router.ip(&["link", "set", "r1", "down"])?;
    names(
        &ml,
        "member.link",
        "dns/m1",
        "fail",
        "ip link set dev r1 up",
    )?;
    restore_r1(&ml, &m1_mac)?;
    all_ok(&ml, "r1 up again")?;

    // GRO off on the veth peer, which has no XDP program: r1 no longer
    // takes redirected frames.
    lab.ns("m1")?
        .exec(&["ethtool", "-K", "eth0", "gro", "off"])?;
    names(&ml, "member.redirect", "dns/m1", "fail", "gro on")?;
    lab.ns("m1")?
        .exec(&["ethtool", "-K", "eth0", "gro", "on"])?;
    all_ok(&ml, "GRO on again")?;

    // The member's neighbour entry missing, failed, then with another MAC.
    router.ip(&["neigh", "del", "fd00:b:1::2", "dev", "r1"])?;
    names(
        &ml,
        "member.neighbour",
        "dns/m1",
        "warn",
        "ip -6 neigh show dev r1",
    )?;
    router.ip(&[
        "neigh",
        "replace",
        "fd00:b:1::2",
        "dev",
        "r1",
        "nud",
        "failed",
    ])?;
    names(&ml, "member.neighbour", "dns/m1", "warn", "--mac")?;
    router.ip(&[
        "neigh",
        "replace",
        "fd00:b:1::2",
        "lladdr",
        "02:ac:00:00:99:99",
        "dev",
        "r1",
        "nud",
        "permanent",
    ])?;
    names(&ml, "member.neighbour", "dns/m1", "warn", "--mac")?;
    restore_r1(&ml, &m1_mac)?;
    all_ok(&ml, "the neighbour entry back")?;

    // The link MTU below the IPv6 minimum (IPv6 goes off on it).
    router.ip(&["link", "set", "r1", "mtu", "1200"])?;
    names(&ml, "member.mtu", "dns/m1", "fail", "mtu 1500")?;
    restore_r1(&ml, &m1_mac)?;
    all_ok(&ml, "the MTU back")?;

    // A route MTU that leaves less than 1280 inside the tunnel.
    router.ip(&[
        "-6",
        "route",
        "replace",
        "fd00:c:2::/64",
        "via",
        "fd00:c:1::2",
        "mtu",
        "1300",
    ])?;
    names(&ml, "encap.mtu", "dns/m3", "fail", "1320")?;
    router.ip(&[
        "-6",
        "route",
        "replace",
        "fd00:c:2::/64",
        "via",
        "fd00:c:1::2",
    ])?;
    all_ok(&ml, "the route's MTU gone")?;

    // The encapsulated member without a route.
    router.ip(&["-6", "route", "del", "fd00:c:2::/64"])?;
    names(&ml, "encap.route", "dns/m3", "fail", "ip -6 route add")?;
    lab.route("router", "fd00:c:2::/64", "fd00:c:1::2")?;
    all_ok(&ml, "the route back")?;

    // Forwarding off while the group's fallback is pass.
    router.sysctl("net.ipv6.conf.all.forwarding", "0")?;
    names(
        &ml,
        "forwarding",
        "c0,r1,r2",
        "fail",
        "net.ipv6.conf.all.forwarding=1",
    )?;
    router.sysctl("net.ipv6.conf.all.forwarding", "1")?;
    all_ok(&ml, "forwarding on again")?;

    // Another XDP program: on an interface anycast does not use, and on
    // one anycast is recorded as attached to (its link pin removed, which
    // detached anycast's program).
    let prog_pin = std::path::PathBuf::from(format!("/sys/fs/bpf/{}-pass-all", lab.prefix));
    let _prog = pin_pass_all(&prog_pin)?;
    let _unpin = PinnedFile(prog_pin.clone());
    let pinned = prog_pin.to_str().context("path")?;
    ip_in_router(
        &ml,
        &["link", "set", "dev", "t0", "xdpgeneric", "pinned", pinned],
    )?;
    names(
        &ml,
        "xdp.other",
        "t0",
        "warn",
        "ip link set dev t0 xdpgeneric off",
    )?;
    ip_in_router(&ml, &["link", "set", "dev", "t0", "xdpgeneric", "off"])?;
    all_ok(&ml, "t0's program gone")?;
    let ino = std::fs::metadata(format!("/run/netns/{}", router.name))?;
    let c0_index = router
        .ip(&["-o", "link", "show", "dev", "c0"])?
        .split(':')
        .next()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .context("index of c0")?;
    let link = lab.pin_dir.join(format!(
        "link_{}_{c0_index}",
        std::os::unix::fs::MetadataExt::ino(&ino)
    ));
    std::fs::remove_file(&link).with_context(|| format!("removing {}", link.display()))?;
    ip_in_router(
        &ml,
        &["link", "set", "dev", "c0", "xdpgeneric", "pinned", pinned],
    )?;
    names(
        &ml,
        "xdp.other",
        "c0",
        "fail",
        "ip link set dev c0 xdpgeneric off",
    )?;
    names(
        &ml,
        "xdp.attached",
        "c0",
        "fail",
        "anycast attach c0 --role edge",
    )?;
    ip_in_router(&ml, &["link", "set", "dev", "c0", "xdpgeneric", "off"])?;
    // The attach's refresh forgets the attachment whose pin went.
    lab.anycast_ok("router", &["attach", "c0", "--role", "edge"])?;
    all_ok(&ml, "c0 attached again")?;

    // The pinned state inconsistent, as a killed command can leave it.
    {
        let mut dp = Dataplane::open_unchanged(PinDir::new(&lab.pin_dir))?;
        dp.state_mut().tamper(Tamper::Selection("dns"))?;
    }
    names(&ml, "state.consistent", "", "fail", "anycast repair")?;
    lab.anycast_ok("router", &["repair"])?;
    all_ok(&ml, "the repair")?;

    // --iface limits the interface checks to that interface.
    let out = lab.anycast_ok("router", &["doctor", "--iface", "r2", "--json"])?;
    let report: Value = serde_json::from_str(&out)?;
    let subjects: Vec<&str> = report["checks"]
        .as_array()
        .context("checks")?
        .iter()
        .filter_map(|c| c["subject"].as_str())
        .collect();
    assert!(
        subjects.contains(&"dns/m2") && subjects.contains(&"r2"),
        "{subjects:?}"
    );
    assert!(
        !subjects
            .iter()
            .any(|s| ["dns/m1", "dns/m3", "c0", "r1"].contains(s)),
        "{subjects:?}"
    );
    Ok(())
}
