//! `anycast trace`, the data plane's side: the program writes a record of
//! a decision only while a trace's deadline lasts, with the right fields,
//! through the filters, the sampling and the rate limit; a deadline that
//! has passed (a killed trace process) writes nothing and is turned off.
//! And the CLI in a lab: real packets' decisions, its filters, Ctrl-C and
//! SIGKILL leaving tracing off.

use std::{
    io::{BufRead as _, BufReader},
    net::{Ipv6Addr, SocketAddr, SocketAddrV6},
    time::{Duration, Instant},
};

use anycast::{
    PinDir,
    trace::{TraceEvent, TraceFilter, Tracer, monotonic_ns},
};
use anycast_common::{GlobalStat, IfaceRole, SourceAction, TraceControl, frame::FrameBuilder};
use anycast_tests::{
    lab::{ANYCAST, CLIENT as LAB_CLIENT, MemberLab, wait_until},
    prog::ProgramUnderTest,
    require_root,
};
use anyhow::{Context as _, Result, bail};

const ANY: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 0x53);
const CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 2);
const OTHER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 9, 0, 0, 0, 9);
const M1_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 0x01];

fn names(e: u32) -> Option<String> {
    Some(e.to_string())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn records_only_while_the_deadline_lasts_with_the_decisions_fields() -> Result<()> {
    require_root()?;
    let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
    p.add(&ANY.to_string(), "dns")?;
    let m1 = p.add_l2_member("dns", "m1", M1_MAC, 10)?;
    p.add("2001:db8:b::/48", "web")?;
    let mut t = p.tracer(TraceFilter::default())?;
    let redirected = FrameBuilder::udp(CLIENT, ANY, 4000, 53, b"q").build();
    let unicast = FrameBuilder::udp(CLIENT, OTHER, 4001, 53, b"q").build();
    let spoofed = FrameBuilder::udp(ANY, OTHER, 53, 4002, b"a").build();

    // Off: nothing written.
    p.run(&redirected)?;
    assert!(t.next_record().is_none(), "a record while tracing is off");
    assert_eq!(t.losses()?.written, 0);

    // On: one record per decision, in order, with its fields.
    t.renew()?;
    let (redirect, pass, drop) = (p.run(&redirected)?, p.run(&unicast)?, p.run(&spoofed)?);
    assert_eq!((redirect.action, pass.action, drop.action), (4, 2, 1));
    let ev = |r| TraceEvent::new(&r, |i| i.to_string(), names, names);
    let r = t.next_record().context("no record of the redirect")?;
    assert_eq!(r.member, m1);
    let e = ev(r);
    assert_eq!((e.action, e.reason), ("redirect", "redirected"));
    assert_eq!((e.src, e.dst), (Some(CLIENT), Some(ANY)));
    assert_eq!(
        (e.proto, e.sport, e.dport),
        (Some(17), Some(4000), Some(53))
    );
    assert!(e.group.is_some() && e.flow.is_some(), "{e:?}");
    let e = ev(t.next_record().context("no record of the pass")?);
    assert_eq!(
        (e.action, e.reason, e.member),
        ("pass", "unicast_passed", None)
    );
    assert_eq!(e.dst, Some(OTHER));
    let e = ev(t.next_record().context("no record of the drop")?);
    assert_eq!(
        (e.action, e.reason, e.src),
        ("drop", GlobalStat::AnycastSourceDropped.name(), Some(ANY))
    );
    assert!(t.next_record().is_none(), "more records than decisions");
    assert_eq!(t.losses()?.written, 3);

    // Off again: nothing.
    t.disable()?;
    p.run(&redirected)?;
    assert!(t.next_record().is_none(), "a record after disable");

    // A deadline that has passed (a trace process killed): nothing, and
    // the program turns it off (0) so that it costs one read again.
    t.set_control(TraceControl {
        deadline_ns: monotonic_ns() - 1,
        ..TraceControl::default()
    })?;
    p.run(&redirected)?;
    assert!(t.next_record().is_none(), "a record after the deadline");
    assert_eq!(t.control()?.deadline_ns, 0);
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn group_filter_sampling_and_rate_limit_act_in_the_kernel() -> Result<()> {
    require_root()?;
    let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
    p.add(&ANY.to_string(), "dns")?;
    p.add_l2_member("dns", "m1", M1_MAC, 10)?;
    p.add("2001:db8:b::/48", "web")?;
    let web = p.state.stats()?.groups["web"].id;
    let to_web = FrameBuilder::udp(CLIENT, "2001:db8:b::1".parse()?, 4000, 80, b"g").build();
    let to_dns = FrameBuilder::udp(CLIENT, ANY, 4000, 53, b"q").build();

    // Group: only web's packets.
    let mut t = p.tracer(TraceFilter {
        group: web,
        ..TraceFilter::default()
    })?;
    t.renew()?;
    p.run(&to_dns)?;
    p.run(&to_web)?;
    let r = t.next_record().context("no record of web's packet")?;
    assert_eq!(r.group, web);
    assert!(t.next_record().is_none(), "dns's packet was traced");

    // Sampling: one in 4 of 20 packets (a test run stays on one CPU).
    t.set_control(TraceControl {
        deadline_ns: monotonic_ns() + 10_000_000_000,
        sample: 4,
        ..TraceControl::default()
    })?;
    for _ in 0..20 {
        p.run(&to_dns)?;
    }
    let n = std::iter::from_fn(|| t.next_record()).count();
    assert_eq!(n, 5);

    // Rate limit: 10 a second; a burst of 50 packets writes at most a
    // second's worth (plus what the clock earns meanwhile) and counts the rest.
    let before = t.losses()?;
    t.set_control(TraceControl {
        deadline_ns: monotonic_ns() + 10_000_000_000,
        rate: 10,
        ..TraceControl::default()
    })?;
    for _ in 0..50 {
        p.run(&to_dns)?;
    }
    let n = std::iter::from_fn(|| t.next_record()).count() as u64;
    let lost = t.losses()?.since(&before);
    assert!((1..=12).contains(&n), "{n} records under a rate of 10/s");
    assert_eq!(lost.written, n);
    assert_eq!(lost.rate_limited, 50 - n);
    Ok(())
}

/// A running `anycast trace` in the lab's router, its JSON lines on a channel.
struct LiveTrace {
    proc: anycast_tests::lab::Running,
    lines: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl LiveTrace {
    fn start(ml: &MemberLab, args: &[&str]) -> Result<Self> {
        let mut all = vec!["trace", "--json", "--iface", "c0"];
        all.extend_from_slice(args);
        let (proc, stdout) = ml.lab.spawn_anycast(&ml.lab.pin_dir, "router", &all)?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v = serde_json::from_str(&line).unwrap_or(serde_json::Value::String(line));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Ok(LiveTrace { proc, lines })
    }

    /// Calls `send` every 100 ms until a line comes (at most 10 s).
    fn next_while(&mut self, mut send: impl FnMut() -> Result<()>) -> Result<serde_json::Value> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            send()?;
            if let Ok(v) = self.lines.recv_timeout(Duration::from_millis(100)) {
                return Ok(v);
            }
        }
        // SIGTERM: it says what it wrote and lost on its way out.
        let _ = self.proc.signal(libc::SIGTERM);
        let _ = self.proc.wait(Duration::from_secs(3));
        let mut err = String::new();
        if let Some(mut e) = self.proc.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        bail!("no trace line within 10 s; its standard error: {err}")
    }
}

/// Sends one datagram from `src` (an address the client holds) to `dst`.
fn sender(ml: &MemberLab, src: Ipv6Addr, dst: Ipv6Addr) -> Result<impl FnMut() -> Result<()>> {
    let sock = ml
        .lab
        .ns("client")?
        .udp(SocketAddr::V6(SocketAddrV6::new(src, 0, 0, 0)))?;
    Ok(move || {
        sock.send_to(
            b"traced",
            SocketAddr::V6(SocketAddrV6::new(dst, 5353, 0, 0)),
        )?;
        Ok(())
    })
}

const M1_ADDR: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xb, 1, 0, 0, 0, 0, 2);
const M2_ADDR: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xb, 2, 0, 0, 0, 0, 2);

#[test]
#[ignore = "needs root (namespaces, XDP): run with `cargo xtask test`"]
fn the_cli_streams_real_decisions_and_never_leaves_tracing_on() -> Result<()> {
    require_root()?;
    let ml = MemberLab::attached("trace", "dns")?;
    ml.add_member("dns", "m1", "r1", 10)?;

    // Redirected to m1, by group.
    let mut t = LiveTrace::start(&ml, &["--group", "dns", "--count", "1"])?;
    let v = t
        .next_while(sender(&ml, LAB_CLIENT, ANYCAST)?)
        .context("the redirect")?;
    assert_eq!(v["version"], 1, "{v}");
    assert_eq!(
        (&v["action"], &v["member"]),
        (&"redirect".into(), &"m1".into()),
        "{v}"
    );
    assert_eq!(
        (&v["reason"], &v["group"]),
        (&"redirected".into(), &"dns".into()),
        "{v}"
    );
    assert_eq!(
        (&v["dst"], &v["dport"]),
        (&ANYCAST.to_string().into(), &5353.into()),
        "{v}"
    );
    assert_eq!(v["iface"], "c0");

    // Passed: unicast, by address.
    let mut t = LiveTrace::start(&ml, &["--addr", &M1_ADDR.to_string(), "--count", "1"])?;
    let v = t
        .next_while(sender(&ml, LAB_CLIENT, M1_ADDR)?)
        .context("the pass")?;
    assert_eq!(
        (&v["action"], &v["reason"]),
        (&"pass".into(), &"unicast_passed".into()),
        "{v}"
    );
    assert_eq!(v["member"], serde_json::Value::Null);
    drop(t);

    let tracer = Tracer::open(&PinDir::new(&ml.lab.pin_dir), TraceFilter::default())?;
    let mut send = sender(&ml, LAB_CLIENT, ANYCAST)?;

    // Ctrl-C: off at once.
    let mut t = LiveTrace::start(&ml, &[])?;
    t.next_while(sender(&ml, LAB_CLIENT, ANYCAST)?)
        .context("before Ctrl-C")?;
    t.proc.signal(libc::SIGINT)?;
    t.proc.wait(Duration::from_secs(5))?;
    assert_eq!(
        tracer.control()?.deadline_ns,
        0,
        "tracing left on after Ctrl-C"
    );
    let written = tracer.losses()?.written;
    for _ in 0..10 {
        send()?;
    }
    assert_eq!(tracer.losses()?.written, written, "records after Ctrl-C");

    // Killed: off by itself once the lease runs out, and the program
    // turns the deadline back to 0.
    let mut t = LiveTrace::start(&ml, &[])?;
    t.next_while(sender(&ml, LAB_CLIENT, ANYCAST)?)
        .context("before SIGKILL")?;
    t.proc.signal(libc::SIGKILL)?;
    t.proc.wait(Duration::from_secs(5))?;
    assert_ne!(
        tracer.control()?.deadline_ns,
        0,
        "the killed trace left nothing to expire"
    );
    wait_until(
        "the lease of the killed trace to end",
        Duration::from_secs(5),
        || {
            let _ = send();
            std::thread::sleep(Duration::from_millis(50));
            tracer.control().is_ok_and(|c| c.deadline_ns == 0)
        },
    )?;
    let written = tracer.losses()?.written;
    for _ in 0..10 {
        send()?;
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        tracer.losses()?.written,
        written,
        "records after the lease ended"
    );

    // Dropped: an anycast source on the edge, by address. Last: the
    // client holds the anycast address for this, and its packets to the
    // address stay inside it from then on.
    let client = ml.lab.ns("client")?;
    let claim = format!("{ANYCAST}/128");
    client.ip(&["addr", "add", &claim, "dev", "eth0", "nodad"])?;
    let mut t = LiveTrace::start(&ml, &["--addr", &M2_ADDR.to_string(), "--count", "1"])?;
    let v = t
        .next_while(sender(&ml, ANYCAST, M2_ADDR)?)
        .context("the drop")?;
    assert_eq!(
        (&v["action"], &v["member"]),
        (&"drop".into(), &serde_json::Value::Null),
        "{v}"
    );
    assert_eq!(
        (&v["reason"], &v["group"]),
        (&"anycast_source_drops".into(), &"dns".into()),
        "{v}"
    );
    assert!(
        t.proc.wait(Duration::from_secs(5))?.success(),
        "--count 1 did not end it"
    );

    Ok(())
}
