//! Lab tests of the service (`anycast run --config FILE`): members' health
//! checks move traffic by themselves, SIGHUP re-reads the file.

use std::{
    io::{BufRead, BufReader},
    net::Ipv6Addr,
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anycast_tests::{
    lab::{ANYCAST, MemberLab, Running, Service},
    require_root,
};
use anyhow::{Context, Result, bail, ensure};

const M1: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xb, 1, 0, 0, 0, 0, 2);
const M2: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xb, 2, 0, 0, 0, 0, 2);
/// Where clients ask, on the anycast address.
const PORT: u16 = 5380;
/// Where the checks ask, on each member's own address.
const HEALTH: u16 = 5381;

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
        "[group.dns]\naddresses = [\"{ANYCAST}\"]\n{}{}",
        member("m1", "r1", M1, 10)?,
        member("m2", "r2", M2, m2_metric)?
    ))
}

/// The lines the service prints, read by a thread.
struct Lines {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn new(stdout: std::process::ChildStdout) -> Self {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits (at most `within`) for a line containing every one of `needles`.
    fn expect(&mut self, needles: &[&str], within: Duration) -> Result<String> {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if needles.iter().all(|n| line.contains(n)) {
                        return Ok(line);
                    }
                }
                Err(_) => break,
            }
        }
        bail!(
            "no line with {needles:?} within {within:?}; the service said:\n{}",
            self.seen.join("\n")
        )
    }
}

fn member_state(ml: &MemberLab, name: &str) -> Result<String> {
    let list: serde_json::Value = serde_json::from_str(
        &ml.lab
            .anycast_ok("router", &["member", "list", "dns", "--json"])?,
    )?;
    let m = list
        .as_array()
        .and_then(|a| a.iter().find(|m| m["name"] == name))
        .with_context(|| format!("{name} not in {list}"))?;
    Ok(m["state"].as_str().unwrap_or_default().to_string())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn checks_move_traffic_and_sighup_rereads_the_file() -> Result<()> {
    require_root()?;
    let ml = MemberLab::attached("service", "dns")?;
    let lab = &ml.lab;
    let file = lab.file("service.toml", &config(&ml, 20)?)?;
    let mut m1 = Some(server(&ml, "m1", M1)?);
    let _m2 = server(&ml, "m2", M2)?;
    let (mut running, stdout): (Running, _) =
        lab.spawn_anycast(&lab.pin_dir, "router", &["run", "--config", file.arg()])?;
    let mut lines = Lines::new(stdout);
    let slow = Duration::from_secs(5);
    lines.expect(&["serving", "2 members checked"], slow)?;
    lines.expect(&["member m1 of group dns: healthy"], slow)?;
    ensure!(ml.answerer(PORT)? == "m1", "m1 is nearest");

    // m1's server stops: within fall x interval (+ timeout) it is down, and
    // its traffic moves to m2.
    let stopped = Instant::now();
    drop(m1.take());
    let line = lines.expect(&["member m1 of group dns: failing", "; down"], slow)?;
    ensure!(line.contains("udp check"), "{line}");
    let took = stopped.elapsed();
    ensure!(took < Duration::from_secs(2), "down after {took:?}");
    ensure!(member_state(&ml, "m1")? == "down");
    ensure!(ml.answerer(PORT)? == "m2", "m2 took over");

    // It comes back after rise x interval.
    m1 = Some(server(&ml, "m1", M1)?);
    lines.expect(&["member m1 of group dns: healthy", "; up"], slow)?;
    ensure!(member_state(&ml, "m1")? == "up");
    ensure!(ml.answerer(PORT)? == "m1", "m1 back");

    // A file that does not validate is refused whole; nothing changes.
    std::fs::write(file.arg(), "[group.dns]\naddresses = [\"nope\"]\n")?;
    running.signal(libc::SIGHUP)?;
    let line = lines.expect(&["reload refused"], slow)?;
    ensure!(line.contains("line 2"), "{line}");
    ensure!(ml.answerer(PORT)? == "m1", "unchanged by a bad file");

    // An edited file is applied: m2 becomes nearest.
    std::fs::write(file.arg(), config(&ml, 5)?)?;
    running.signal(libc::SIGHUP)?;
    lines.expect(&["reloaded", "1 changed"], slow)?;
    ensure!(ml.answerer(PORT)? == "m2", "m2 nearest after the reload");

    // SIGTERM ends the service and leaves the data plane as it is.
    running.signal(libc::SIGTERM)?;
    let status = running.wait(slow)?;
    ensure!(status.success(), "{status}");
    ensure!(ml.answerer(PORT)? == "m2", "still forwarding");
    drop(m1);
    Ok(())
}
