//! Lab tests of the service with a real DNS server (dnsmasq) on each
//! member, checked with `kind = "dns"` at the anycast address: the
//! client's queries follow the servers' health, and restarts of the
//! service lose none of them.

use std::{
    net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anycast_tests::{
    dns::{Dnsmasq, NAME, ask},
    lab::{ANYCAST, CLIENT, LabFile, Lines, MemberLab, Running},
    require_root,
};
use anyhow::{Context, Result, bail, ensure};

const M1: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xb, 1, 0, 0, 0, 0, 2);
const M2: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xb, 2, 0, 0, 0, 0, 2);
/// What each member's server answers for [`NAME`]: who answered.
const A1: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xff, 0, 0, 0, 0, 0, 1);
const A2: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xff, 0, 0, 0, 0, 0, 2);
/// How long a service may take to start: it loads and verifies the program
/// once per interface it attaches, which takes seconds on a busy machine.
const STARTUP: Duration = Duration::from_secs(60);
/// The checks' interval and rise (fall is the same, timeout 0.1 s).
const INTERVAL: Duration = Duration::from_millis(200);
const RISE: u32 = 2;
/// How long a client waits for an answer before it counts the query lost.
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// m1 (metric 10) and m2 (metric 20), each with a dns check of the
/// default target: the anycast address, along the member's path.
fn config(ml: &MemberLab) -> Result<String> {
    let member = |name: &str, iface: &str, metric: u32| -> Result<String> {
        Ok(format!(
            "[group.dns.member.{name}]\niface = \"{iface}\"\nmac = \"{}\"\nmetric = {metric}\n\
             [group.dns.member.{name}.check]\nkind = \"dns\"\nquery = \"{NAME}\"\n\
             interval = {}\ntimeout = 0.1\nrise = {RISE}\nfall = 2\n",
            ml.member_mac(name)?,
            INTERVAL.as_secs_f64(),
        ))
    };
    Ok(format!(
        "[interface.c0]\nrole = \"edge\"\n[interface.r1]\nrole = \"member\"\n\
         [interface.r2]\nrole = \"member\"\n\
         [group.dns]\naddresses = [\"{ANYCAST}\"]\n{}{}",
        member("m1", "r1", 10)?,
        member("m2", "r2", 20)?
    ))
}

/// A member's dnsmasq, on the anycast address and its own.
fn dnsmasq(ml: &MemberLab, node: &str, own: Ipv6Addr, answer: Ipv6Addr) -> Result<Dnsmasq> {
    Dnsmasq::start(ml.lab.ns(node)?, &[ANYCAST, own], answer)
}

/// One query to the anycast address from a new socket of the client's (a
/// new flow, as a stub resolver's random source port makes): the answer's
/// address, if one came within 100 ms.
fn who(ml: &MemberLab, id: u16) -> Result<Option<Ipv6Addr>> {
    let sock = ml.client_socket()?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    Ok(ask(&sock, ANYCAST, id))
}

/// Asks (new flows, every 20 ms, at most `within`) until `want` answers;
/// how long that took.
fn until_answered_by(ml: &MemberLab, want: Ipv6Addr, within: Duration) -> Result<Duration> {
    let start = Instant::now();
    let mut seen = Vec::new();
    for id in 1..=u16::MAX {
        let got = who(ml, id)?;
        if got == Some(want) {
            return Ok(start.elapsed());
        }
        seen.push(got);
        if start.elapsed() > within {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    bail!(
        "no answer from {want} within {within:?}; the answers: {:?}",
        &seen[seen.len().saturating_sub(10)..]
    )
}

/// The service started on `file`, serving, and its lines.
fn start_service(ml: &MemberLab, file: &str) -> Result<(Running, Lines)> {
    let lab = &ml.lab;
    let (running, stdout) =
        lab.spawn_anycast(&lab.pin_dir, "router", &["run", "--config", file])?;
    let mut lines = Lines::new(stdout);
    lines.expect(&["serving", "2 members checked"], STARTUP)?;
    Ok((running, lines))
}

/// The lab with a dnsmasq on m1 and m2 and the service serving, both
/// members found healthy by their dns checks and m1 answering (nearest).
/// Fields drop in their order: the service, the servers, the file, the lab.
struct Served {
    running: Running,
    lines: Lines,
    m1: Dnsmasq,
    /// Kept to serve (and be killed on drop).
    _m2: Dnsmasq,
    file: LabFile,
    ml: MemberLab,
}

impl Served {
    fn new(test: &str) -> Result<Self> {
        require_root()?;
        let ml = MemberLab::new(test)?;
        let file = ml.lab.file("service.toml", &config(&ml)?)?;
        let m1 = dnsmasq(&ml, "m1", M1, A1)?;
        let m2 = dnsmasq(&ml, "m2", M2, A2)?;
        let (running, mut lines) = start_service(&ml, file.arg())?;
        let slow = Duration::from_secs(5);
        lines.expect(&["member m1 of group dns: healthy", "dns check"], slow)?;
        lines.expect(&["member m2 of group dns: healthy", "dns check"], slow)?;
        until_answered_by(&ml, A1, slow).context("m1 is nearest")?;
        Ok(Served {
            ml,
            file,
            m1,
            _m2: m2,
            running,
            lines,
        })
    }
}

#[test]
#[ignore = "needs root (namespaces, BPF, dnsmasq): run with `cargo xtask test`"]
fn a_stopped_dns_server_moves_its_queries_and_a_started_one_gets_them_back() -> Result<()> {
    let mut s = Served::new("svcdns")?;
    let ml = &s.ml;
    let slow = Duration::from_secs(5);

    // m1's server stops: its queries are answered by m2 within fall x
    // interval + timeout (0.5 s), with a bounded margin for a busy machine.
    let stopped = Instant::now();
    s.m1.stop()?;
    let moved = until_answered_by(ml, A2, slow)?;
    ensure!(moved < Duration::from_secs(2), "moved after {moved:?}");
    let line = s
        .lines
        .expect(&["member m1 of group dns: failing", "; down"], slow)?;
    ensure!(line.contains("dns check"), "{line}");
    ensure!(ml.member_state("dns", "m1")? == "down");
    // And they stay there: every new flow is answered, by m2.
    for id in 0..20 {
        ensure!(who(ml, id)? == Some(A2), "query {id} after the move");
    }
    eprintln!(
        "m2 answered {moved:?} after m1's server stopped ({:?} ago)",
        stopped.elapsed()
    );

    // m1's server starts again: its traffic returns once rise checks in a
    // row passed, so never before (rise - 1) x interval after it started
    // listening, and within a bounded margin.
    let starting = Instant::now();
    s.m1 = dnsmasq(ml, "m1", M1, A1)?;
    let ready = starting.elapsed();
    let back = until_answered_by(ml, A1, slow)? + ready;
    // Less the timer's slack: a tick a few ms late keeps its schedule.
    let least = INTERVAL * (RISE - 1) - Duration::from_millis(10);
    ensure!(
        back >= least,
        "m1 answered {back:?} after its server started: before {RISE} checks could pass"
    );
    ensure!(back < ready + Duration::from_secs(2), "back after {back:?}");
    s.lines
        .expect(&["member m1 of group dns: healthy", "; up"], slow)?;
    ensure!(ml.member_state("dns", "m1")? == "up");
    eprintln!("m1 answered again {back:?} after its server was started ({ready:?} to listen)");

    s.running.signal(libc::SIGTERM)?;
    ensure!(s.running.wait(slow)?.success());
    Ok(())
}

/// A client's stream of DNS queries to the anycast address, in a thread of
/// the client's namespace: one at a time, each from a new socket, each
/// waited for at most [`QUERY_TIMEOUT`] and never sent again (a query
/// unanswered is lost), until told to stop or [`Stream::MAX`] were sent.
struct Stream {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    handle: Option<thread::JoinHandle<Result<Tally>>>,
}

/// What a stream saw.
#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    answered: usize,
    by_m1: usize,
    by_m2: usize,
    /// The first queries lost, by number.
    lost: Vec<usize>,
}

impl Stream {
    /// The bound on a stream, whatever the test does: at 5 ms a query,
    /// about two minutes.
    const MAX: usize = 20_000;

    fn start(ml: &MemberLab) -> Result<Self> {
        let ns = format!("/run/netns/{}", ml.lab.ns("client")?.name);
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let (flag, count) = (stop.clone(), sent.clone());
        let handle = thread::spawn(move || -> Result<Tally> {
            anycast::netns::enter(&ns)?;
            let mut t = Tally::default();
            while !flag.load(Ordering::Relaxed) && t.sent < Self::MAX {
                let sock = UdpSocket::bind(SocketAddr::V6(SocketAddrV6::new(CLIENT, 0, 0, 0)))?;
                sock.set_read_timeout(Some(QUERY_TIMEOUT))?;
                #[allow(clippy::cast_possible_truncation)]
                let got = ask(&sock, ANYCAST, t.sent as u16);
                t.sent += 1;
                count.store(t.sent, Ordering::Relaxed);
                match got {
                    Some(A1) => t.by_m1 += 1,
                    Some(A2) => t.by_m2 += 1,
                    _ if t.lost.len() < 20 => t.lost.push(t.sent - 1),
                    _ => {}
                }
                if got.is_some() {
                    t.answered += 1;
                }
                thread::sleep(Duration::from_millis(5));
            }
            Ok(t)
        });
        Ok(Stream {
            stop,
            sent,
            handle: Some(handle),
        })
    }

    fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    /// Waits (at most `within`) until `n` queries were sent.
    fn until_sent(&self, n: usize, within: Duration) -> Result<()> {
        let start = Instant::now();
        while self.sent() < n {
            if start.elapsed() > within || self.handle.as_ref().is_none_or(|h| h.is_finished()) {
                bail!("the stream sent {} queries, not {n}", self.sent());
            }
            thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Tally> {
        self.stop.store(true, Ordering::Relaxed);
        let handle = self.handle.take().context("finished twice")?;
        handle
            .join()
            .map_err(|_| anyhow::anyhow!("the stream panicked"))?
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
#[ignore = "needs root (namespaces, BPF, dnsmasq): run with `cargo xtask test`"]
fn restarts_of_the_service_lose_none_of_a_stream_of_dns_queries() -> Result<()> {
    let mut s = Served::new("svcstream")?;
    let ml = &s.ml;
    let slow = Duration::from_secs(5);

    let stream = Stream::start(ml)?;
    stream.until_sent(100, slow)?;
    // SIGTERM, then a new service on the same file, while the stream flows.
    s.running.signal(libc::SIGTERM)?;
    ensure!(s.running.wait(slow)?.success());
    let before = stream.sent();
    (s.running, s.lines) = start_service(ml, s.file.arg())?;
    // Its own checks decide, and m1 stays what it was.
    s.lines.expect(&["member m1 of group dns: healthy"], slow)?;
    ensure!(stream.sent() > before, "the stream stopped flowing");
    stream.until_sent(stream.sent() + 100, slow)?;
    // kill -9, then a new service adopts the state.
    s.running.signal(libc::SIGKILL)?;
    s.running.wait(slow)?;
    let before = stream.sent();
    (s.running, s.lines) = start_service(ml, s.file.arg())?;
    // Its own checks decide, and m1 stays what it was.
    s.lines.expect(&["member m1 of group dns: healthy"], slow)?;
    ensure!(stream.sent() > before, "the stream stopped flowing");
    // A bounded stream of at least 1,000 queries, the last 100 of them
    // after the last start.
    stream.until_sent((stream.sent() + 100).max(1000), STARTUP)?;
    let t = stream.finish()?;
    eprintln!("{t:?}");
    ensure!(
        t.answered == t.sent,
        "{} of {} queries lost, the first: {:?}",
        t.sent - t.answered,
        t.sent,
        t.lost
    );
    ensure!(t.sent >= 1000 && t.sent < Stream::MAX, "{t:?}");
    // All to the nearest member: the restarts moved nothing.
    ensure!(t.by_m1 == t.sent, "{t:?}");
    ensure!(ml.member_state("dns", "m1")? == "up");
    // The last service checks on: m1's server stops, its traffic moves.
    s.m1.stop()?;
    s.lines
        .expect(&["member m1 of group dns: failing", "; down"], slow)?;
    until_answered_by(ml, A2, slow)?;
    s.running.signal(libc::SIGTERM)?;
    ensure!(s.running.wait(slow)?.success());
    Ok(())
}
