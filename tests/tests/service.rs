//! Lab tests of the service (`anycast run --config FILE`): members' health
//! checks move traffic by themselves, SIGHUP re-reads the file.

use std::{
    net::Ipv6Addr,
    time::{Duration, Instant},
};

use anycast_tests::{
    lab::{ANYCAST, Lines, M3, MemberLab, Running, Service},
    require_root,
};
use anyhow::{Context, Result, bail, ensure};

const M1: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xb, 1, 0, 0, 0, 0, 2);
const M2: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xb, 2, 0, 0, 0, 0, 2);
/// Where clients ask, on the anycast address.
const PORT: u16 = 5380;
/// Where the checks ask, on each member's own address.
const HEALTH: u16 = 5381;
/// How long a service may take to start: it loads and verifies the program
/// once per interface it attaches, which takes seconds on a busy machine.
const STARTUP: Duration = Duration::from_secs(60);
/// The metrics port, on the router's loopback.
const METRICS: u16 = 9651;

/// The service's metrics as a real Prometheus parser reads them: every
/// sample as `name{label="value",...}` (labels sorted) and its value.
fn scrape(ml: &MemberLab) -> Result<std::collections::BTreeMap<String, f64>> {
    let script = format!(
        "import json, urllib.request\n\
         from prometheus_client.parser import text_string_to_metric_families as parse\n\
         text = urllib.request.urlopen('http://[::1]:{METRICS}/metrics', timeout=3).read().decode()\n\
         out = {{}}\n\
         for family in parse(text):\n\
         \x20   for s in family.samples:\n\
         \x20       labels = ','.join('%s=\"%s\"' % kv for kv in sorted(s.labels.items()))\n\
         \x20       out['%s{{%s}}' % (s.name, labels)] = s.value\n\
         print(json.dumps(out))\n"
    );
    // Debian's python3-prometheus-client is for the system's interpreter.
    let json = ml
        .lab
        .ns("router")?
        .exec(&["/usr/bin/python3", "-c", &script])?;
    serde_json::from_str(&json).with_context(|| format!("parsing {json}"))
}

/// A member's server: it answers on the anycast address and on its own
/// (until dropped).
struct Server {
    _sockets: Vec<Service>,
}

fn server(ml: &MemberLab, node: &str, own: Ipv6Addr) -> Result<Server> {
    let ns = ml.lab.ns(node)?;
    Ok(Server {
        _sockets: vec![
            Service::start(ns, ANYCAST, PORT, node)?,
            Service::start(ns, own, HEALTH, node)?,
        ],
    })
}

fn config(ml: &MemberLab, m2_metric: u32) -> Result<String> {
    let member = |name: &str, iface: &str, addr: Ipv6Addr, metric: u32| -> Result<String> {
        Ok(format!(
            "[group.dns.member.{name}]\niface = \"{iface}\"\nmac = \"{}\"\naddr = \"{addr}\"\n\
             metric = {metric}\n[group.dns.member.{name}.check]\nkind = \"udp\"\nport = {HEALTH}\n\
             send = \"health\"\nexpect = \"{name}\"\ntarget = \"unicast\"\ninterval = 0.2\n\
             timeout = 0.1\nrise = 2\nfall = 2\n",
            ml.member_mac(name)?
        ))
    };
    Ok(format!(
        "[service]\nmetrics = \"[::1]:{METRICS}\"\n\
         [interface.c0]\nrole = \"edge\"\n[interface.r1]\nrole = \"member\"\n\
         [interface.r2]\nrole = \"member\"\n\
         [group.dns]\naddresses = [\"{ANYCAST}\"]\n{}{}",
        member("m1", "r1", M1, 10)?,
        member("m2", "r2", M2, m2_metric)?
    ))
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn checks_move_traffic_and_sighup_rereads_the_file() -> Result<()> {
    require_root()?;
    let ml = MemberLab::new("service")?;
    let lab = &ml.lab;
    let file = lab.file("service.toml", &config(&ml, 20)?)?;
    // An interface attached otherwise than the file says: refused, with
    // its line, and nothing is applied.
    lab.anycast_ok("router", &["attach", "r2", "--role", "edge"])?;
    lab.anycast_refused(
        "router",
        &["config", "apply", file.arg()],
        "line 7: interface.r2: interface r2 is attached as edge / drop / auto; the file says member / drop / auto",
    )?;
    ensure!(
        !lab.anycast_ok("router", &["addr", "list"])?
            .contains(&ANYCAST.to_string()),
        "applied in part"
    );
    lab.anycast_ok("router", &["detach", "r2"])?;
    let mut m1 = Some(server(&ml, "m1", M1)?);
    let _m2 = server(&ml, "m2", M2)?;
    let (mut running, stdout): (Running, _) =
        lab.spawn_anycast(&lab.pin_dir, "router", &["run", "--config", file.arg()])?;
    let mut lines = Lines::new(stdout);
    let slow = Duration::from_secs(5);
    // The service attaches the file's interfaces, after its maps are filled.
    lines.expect(
        &["added interface c0: attached as edge / drop / auto"],
        STARTUP,
    )?;
    lines.expect(&["serving", "2 members checked"], STARTUP)?;
    let attached = lab.stats("router")?["interfaces"]
        .as_array()
        .map_or(0, Vec::len);
    ensure!(attached == 3, "{attached} interfaces attached");
    lines.expect(&["member m1 of group dns: healthy"], slow)?;
    ensure!(ml.answerer(PORT)? == "m1", "m1 is nearest");
    // One service per pin dir.
    lab.anycast_refused(
        "router",
        &["run", "--config", file.arg()],
        "a service already runs on",
    )?;
    // `status` asks the service itself.
    let status: serde_json::Value =
        serde_json::from_str(&lab.anycast_ok("router", &["status", "--json"])?)?;
    ensure!(status["file"] == file.arg(), "{status}");
    let m1_status = status["members"]
        .as_array()
        .and_then(|a| a.iter().find(|m| m["member"] == "m1"))
        .with_context(|| format!("m1 in {status}"))?;
    ensure!(
        m1_status["health"] == "healthy" && m1_status["state"] == "up",
        "{m1_status}"
    );
    ensure!(
        m1_status["target"] == format!("unicast {M1}"),
        "{m1_status}"
    );

    // m1's server stops: within fall x interval (+ timeout) it is down, and
    // its traffic moves to m2.
    let stopped = Instant::now();
    drop(m1.take());
    let line = lines.expect(&["member m1 of group dns: failing", "; down"], slow)?;
    ensure!(line.contains("udp check"), "{line}");
    let text = lab.anycast_ok("router", &["status"])?;
    ensure!(
        text.lines()
            .any(|l| l.starts_with("dns") && l.contains("m1") && l.contains("failing")),
        "{text}"
    );
    let took = stopped.elapsed();
    ensure!(took < Duration::from_secs(2), "down after {took:?}");
    // The service timed each update (m1 and m2 healthy, m1 failing) from
    // the deciding result to the map write.
    ensure!(text.contains("3 member updates; the latest 3"), "{text}");
    let status: serde_json::Value =
        serde_json::from_str(&lab.anycast_ok("router", &["status", "--json"])?)?;
    let updates = &status["member_updates"];
    let recent = updates["recent_ms"].as_array().context("recent_ms")?;
    ensure!(updates["count"] == 3 && recent.len() == 3, "{updates}");
    ensure!(
        recent
            .iter()
            .all(|ms| ms.as_f64().is_some_and(|ms| ms > 0.0 && ms < 1000.0)),
        "{updates}"
    );
    ensure!(ml.member_state("dns", "m1")? == "down");
    ensure!(ml.answerer(PORT)? == "m2", "m2 took over");

    // kill -9: forwarding goes on without the service, and a new one
    // adopts the state: m1 stays down until its own check has decided.
    running.signal(libc::SIGKILL)?;
    running.wait(slow)?;
    ensure!(ml.answerer(PORT)? == "m2", "forwarding without the service");
    let (again, stdout) =
        lab.spawn_anycast(&lab.pin_dir, "router", &["run", "--config", file.arg()])?;
    running = again;
    lines = Lines::new(stdout);
    lines.expect(&["serving"], STARTUP)?;
    ensure!(
        ml.member_state("dns", "m1")? == "down",
        "m1 up again before its check"
    );
    ensure!(ml.answerer(PORT)? == "m2", "m2 still serves");
    lines.expect(&["member m1 of group dns: failing", "; down"], slow)?;

    // It comes back after rise x interval.
    m1 = Some(server(&ml, "m1", M1)?);
    lines.expect(&["member m1 of group dns: healthy", "; up"], slow)?;
    ensure!(ml.member_state("dns", "m1")? == "up");
    ensure!(ml.answerer(PORT)? == "m1", "m1 back");

    // A file that does not validate is refused whole; nothing changes.
    std::fs::write(file.arg(), "[group.dns]\naddresses = [\"nope\"]\n")?;
    running.signal(libc::SIGHUP)?;
    let line = lines.expect(&["reload refused"], slow)?;
    ensure!(line.contains("line 2"), "{line}");
    ensure!(ml.answerer(PORT)? == "m1", "unchanged by a bad file");

    // `anycast reload` of a bad file fails and says why.
    lab.anycast_refused("router", &["reload"], "reload refused")?;
    // An edited file is applied: m2 becomes nearest.
    std::fs::write(file.arg(), config(&ml, 5)?)?;
    let said = lab.anycast_ok("router", &["reload"])?;
    ensure!(
        said.contains("changed member dns/m2: metric 20 -> 5"),
        "{said}"
    );
    lines.expect(&["reloaded", "1 changed"], slow)?;
    ensure!(ml.answerer(PORT)? == "m2", "m2 nearest after the reload");

    // The metrics, read by Prometheus's own parser, count what happened.
    lines.expect(&["metrics: serving http://[::1]:9651/metrics"], slow)?;
    let m = scrape(&ml)?;
    let get = |k: &str| {
        m.get(k)
            .copied()
            .with_context(|| format!("no {k} in {m:?}"))
    };
    let members: serde_json::Value =
        serde_json::from_str(&lab.anycast_ok("router", &["member", "list", "--json"])?)?;
    for member in members.as_array().context("a list")? {
        let name = member["name"].as_str().unwrap_or_default();
        let key = format!("anycast_member_packets_total{{group=\"dns\",member=\"{name}\"}}");
        ensure!(
            get(&key)? == member["packets"].as_f64().unwrap_or(-1.0),
            "{key}: {m:?} against {member}"
        );
    }
    ensure!(get("anycast_member_packets_total{group=\"dns\",member=\"m1\"}")? >= 3.0);
    ensure!(get("anycast_check_healthy{group=\"dns\",kind=\"udp\",member=\"m1\"}")? == 1.0);
    // Failing, then healthy, as this service saw it.
    ensure!(get("anycast_check_transitions_total{group=\"dns\",member=\"m1\"}")? == 2.0);
    ensure!(get("anycast_reloads_total{result=\"refused\"}")? == 2.0);
    ensure!(get("anycast_reloads_total{result=\"applied\"}")? == 1.0);
    // This service's updates: m2 healthy, m1 failing, then healthy.
    let updates = get("anycast_member_update_seconds_count{}")?;
    ensure!(updates == 3.0, "{m:?}");
    ensure!(get("anycast_member_update_seconds_bucket{le=\"+Inf\"}")? == updates);
    ensure!(get("anycast_member_update_seconds_sum{}")? > 0.0);
    ensure!(get("anycast_packets_total{counter=\"redirected\"}")? >= 3.0);

    // SIGTERM ends the service and leaves the data plane as it is.
    running.signal(libc::SIGTERM)?;
    let status = running.wait(slow)?;
    ensure!(status.success(), "{status}");
    lab.anycast_refused("router", &["status"], "no anycast service answers at")?;
    ensure!(ml.answerer(PORT)? == "m2", "still forwarding");
    let attached = lab.stats("router")?["interfaces"]
        .as_array()
        .map_or(0, Vec::len);
    ensure!(
        attached == 3,
        "{attached} interfaces attached after the service"
    );
    drop(m1);
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn the_default_check_reaches_the_member_at_the_anycast_address() -> Result<()> {
    require_root()?;
    let ml = MemberLab::new("svcany")?;
    let lab = &ml.lab;
    // No target: each check probes the anycast address along its member's
    // path (on-link by MAC, routed by IPv6-in-IPv6).
    let check = |name: &str| {
        format!(
            "[group.dns.member.{name}.check]\nkind = \"udp\"\nport = {PORT}\nsend = \"health\"\n\
             expect = \"{name}\"\ninterval = 0.2\ntimeout = 0.1\nrise = 2\nfall = 2\n"
        )
    };
    let text = format!(
        "[interface.c0]\n[interface.r1]\nrole = \"member\"\n[interface.r2]\nrole = \"member\"\n\
         [group.dns]\naddresses = [\"{ANYCAST}\"]\n\
         [group.dns.member.m1]\niface = \"r1\"\nmac = \"{}\"\nmetric = 10\n{}\
         [group.dns.member.m2]\niface = \"r2\"\nmac = \"{}\"\nmetric = 20\n{}\
         [group.dns.member.m3]\nencap = \"{M3}\"\nmetric = 30\n\
         [group.dns.member.m3.check]\nkind = \"icmp\"\ninterval = 0.2\ntimeout = 0.1\n",
        ml.member_mac("m1")?,
        check("m1"),
        ml.member_mac("m2")?,
        check("m2"),
    );
    let file = lab.file("service.toml", &text)?;
    // m1 answers on its own address only: to its clients it is dead.
    let m1_own = Service::start(lab.ns("m1")?, M1, PORT, "m1")?;
    let _m2 = Service::start(lab.ns("m2")?, ANYCAST, PORT, "m2")?;
    let _m3 = Service::start(lab.ns("m3")?, ANYCAST, PORT, "m3")?;
    let (mut running, stdout) =
        lab.spawn_anycast(&lab.pin_dir, "router", &["run", "--config", file.arg()])?;
    let mut lines = Lines::new(stdout);
    let slow = Duration::from_secs(5);
    lines.expect(&["serving", "3 members checked"], STARTUP)?;
    lines.expect(&["member m1 of group dns: failing", "; down"], slow)?;
    // An echo request to the anycast address, IPv6-in-IPv6 to m3.
    lines.expect(&["member m3 of group dns: healthy", "icmp check"], slow)?;
    lines.expect(&["member m2 of group dns: healthy"], slow)?;
    ensure!(ml.member_state("dns", "m1")? == "down");
    ensure!(ml.answerer(PORT)? == "m2", "m2 serves while m1 is down");

    // m1's server now answers on the anycast address: m1 comes back.
    let _m1 = Service::start(lab.ns("m1")?, ANYCAST, PORT, "m1")?;
    lines.expect(&["member m1 of group dns: healthy", "; up"], slow)?;
    ensure!(ml.answerer(PORT)? == "m1", "m1 back");
    drop(m1_own);

    // The probe paths go with the service.
    let router = lab.ns("router")?;
    let rules = || router.ip(&["-6", "rule", "show", "pref", "900"]);
    ensure!(rules()?.lines().count() == 3, "{}", rules()?);
    running.signal(libc::SIGTERM)?;
    ensure!(running.wait(slow)?.success());
    ensure!(rules()?.trim().is_empty(), "left behind: {}", rules()?);
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn systemd_is_told_ready_reloading_and_stopping_and_the_watchdog_is_pinged() -> Result<()> {
    use std::os::unix::net::UnixDatagram;
    require_root()?;
    let mut lab = anycast_tests::lab::Lab::new("svcnotify")?;
    lab.node("router", true)?;
    // The file names its state socket.
    let state = std::env::temp_dir().join(format!("{}-state.sock", lab.prefix));
    let file = lab.file(
        "notify.toml",
        &format!(
            "[service]\nsocket = \"{}\"\n[group.g]\naddresses = [\"2001:db8:ee::1\"]\n",
            state.display()
        ),
    )?;
    let path = std::env::temp_dir().join(format!("{}-notify", lab.prefix));
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path)?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut cmd = lab.anycast_cmd(&lab.pin_dir, "router", &["run", "--config", file.arg()])?;
    cmd.env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "200000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut running = Running(cmd.spawn()?);
    let mut said: Vec<String> = Vec::new();
    let mut until = |what: &dyn Fn(&[String]) -> bool, within: Duration| -> Result<()> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let mut buf = [0u8; 512];
            if let Ok(n) = sock.recv(&mut buf) {
                said.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                if what(&said) {
                    return Ok(());
                }
            }
        }
        bail!("systemd was told only {said:?}")
    };
    let count = |said: &[String], m: &str| said.iter().filter(|s| s.starts_with(m)).count();
    // Ready once the file is applied, then a ping every 100 ms.
    until(
        &|s| count(s, "READY=1") == 1 && count(s, "WATCHDOG=1") >= 3,
        STARTUP,
    )?;
    let state_arg = state.to_string_lossy().into_owned();
    let status = lab.anycast_ok("router", &["status", "--json", "--socket", &state_arg])?;
    ensure!(status.contains("notify.toml"), "{status}");
    lab.anycast_refused("router", &["status"], "no anycast service answers at")?;
    running.signal(libc::SIGHUP)?;
    until(
        &|s| count(s, "RELOADING=1") == 1 && count(s, "READY=1") == 2,
        Duration::from_secs(5),
    )?;
    running.signal(libc::SIGTERM)?;
    until(&|s| count(s, "STOPPING=1") == 1, Duration::from_secs(5))?;
    ensure!(running.wait(Duration::from_secs(5))?.success());
    ensure!(!state.exists(), "the state socket stays after the service");
    drop(sock);
    std::fs::remove_file(&path)?;
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn a_service_whose_file_cannot_be_applied_leaves_nothing() -> Result<()> {
    require_root()?;
    let mut lab = anycast_tests::lab::Lab::new("svcfail")?;
    lab.node("router", true)?;
    // It parses, but its member's interface is not there.
    let file = lab.file(
        "fail.toml",
        "[group.g]\naddresses = [\"2001:db8:ef::1\"]\n\
         [group.g.member.m]\niface = \"nosuch0\"\nmac = \"02:00:00:00:00:01\"\n",
    )?;
    lab.anycast_refused(
        "router",
        &["run", "--config", file.arg()],
        "unknown interface `nosuch0`",
    )?;
    ensure!(!lab.pin_dir.exists(), "the data plane it created stayed");
    let socket = anycast::service::socket::socket_path(&lab.pin_dir);
    ensure!(!socket.exists(), "{} stayed", socket.display());
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn the_log_level_comes_from_the_file_and_follows_a_reload_unless_rust_log_is_set() -> Result<()> {
    require_root()?;
    let mut lab = anycast_tests::lab::Lab::new("svclog")?;
    lab.node("router", true)?;
    // One member whose check (a command that succeeds) runs every 0.2 s;
    // at debug each probe is a line, at info only changes of health are.
    let text = |level: &str, member: &str| {
        format!(
            "[service]\nlog-level = \"{level}\"\n[group.g]\naddresses = [\"2001:db8:ef::1\"]\n\
             [group.g.member.{member}]\nencap = \"fd00:ef::2\"\n\
             [group.g.member.{member}.check]\nkind = \"exec\"\ncommand = [\"true\"]\n\
             interval = 0.2\nrise = 1\nfall = 1\n"
        )
    };
    let file = lab.file("log.toml", &text("debug", "m1"))?;
    let start = |rust_log: Option<&str>| -> Result<(Running, Lines)> {
        let mut cmd = lab.anycast_cmd(&lab.pin_dir, "router", &["run", "--config", file.arg()])?;
        match rust_log {
            Some(v) => cmd.env("RUST_LOG", v),
            None => cmd.env_remove("RUST_LOG"),
        };
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        Ok((Running(child), Lines::new(stdout)))
    };
    let (mut running, mut lines) = start(None)?;
    let slow = Duration::from_secs(5);
    lines.expect(&["serving", "1 members checked"], STARTUP)?;
    lines.expect(
        &["anycast: debug: member m1 of group g: exec check of fd00:ef::2 passed in"],
        slow,
    )?;
    // At info: a probe is no line. The member is renamed, so that any line
    // naming it came after the reload.
    std::fs::write(file.arg(), text("info", "m2"))?;
    running.signal(libc::SIGHUP)?;
    lines.expect(&["anycast: info: log level: info"], slow)?;
    lines.expect(&["anycast: info: member m2 of group g: healthy"], slow)?;
    // Ten probes' time.
    let quiet = lines.expect(&["member m2", "check of"], Duration::from_secs(2));
    ensure!(quiet.is_err(), "a probe logged at info: {quiet:?}");
    // And back: m2's probes run, and are lines again at debug.
    std::fs::write(file.arg(), text("debug", "m2"))?;
    running.signal(libc::SIGHUP)?;
    lines.expect(&["anycast: info: log level: debug"], slow)?;
    lines.expect(
        &["anycast: debug: member m2 of group g: exec check of fd00:ef::2 passed in"],
        slow,
    )?;
    // A level the file cannot have: refused whole, as a warning, with its
    // line and key; the level stays.
    std::fs::write(file.arg(), text("verbose", "m2"))?;
    running.signal(libc::SIGHUP)?;
    lines.expect(
        &[
            "anycast: warn: reload refused",
            "line 2: service.log-level: invalid log level `verbose`",
        ],
        slow,
    )?;
    lines.expect(&["anycast: debug: member m2 of group g: exec check"], slow)?;
    running.signal(libc::SIGTERM)?;
    ensure!(running.wait(slow)?.success());

    // RUST_LOG, when set, overrides the file (which says debug).
    std::fs::write(file.arg(), text("debug", "m3"))?;
    let (mut running, mut lines) = start(Some("info"))?;
    lines.expect(&["RUST_LOG is set and overrides log-level debug"], STARTUP)?;
    lines.expect(&["anycast: info: member m3 of group g: healthy"], slow)?;
    let quiet = lines.expect(&["member m3", "check of"], Duration::from_secs(2));
    ensure!(
        quiet.is_err(),
        "a probe logged under RUST_LOG=info: {quiet:?}"
    );
    running.signal(libc::SIGTERM)?;
    ensure!(running.wait(slow)?.success());
    Ok(())
}
