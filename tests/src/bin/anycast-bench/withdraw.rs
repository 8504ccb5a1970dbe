//! Withdraw latency (issue 16): how long after the cause an announced
//! prefix leaves the node's kernel table 100 (where BIRD learns it) and the
//! upstream's kernel table (where BIRD installed it via the node), for each
//! cause of a withdraw: the last member's check failing, `anycast
//! maintenance on`, SIGTERM and SIGKILL to the service.
//!
//! ```text
//!  node (the service + BIRD, docs/BGP.md) n0 ---- u0 up (BIRD, docs/BGP.md)
//!  table 100: 2001:db8:ef::/48 dev anycast-bgp0     main: 2001:db8:ef::/48 via fd00:bb::2
//!  fd00:bb::2/64                                    fd00:bb::1/64
//! ```
//!
//! One eBGP session with BFD, as in the lab test
//! `bird_exports_the_prefix_and_withdraws_it_when_the_service_is_killed`.
//! Both ends of the measurement are route events: a netlink socket
//! subscribed to `RTMGRP_IPV6_ROUTE` in each namespace, read by a thread
//! of its own that stamps each `RTM_DELROUTE` of the prefix with the wall
//! clock as it arrives. The starts:
//!
//! - last member down: the member's check is an exec of a shell that tests
//!   a file and, when it is missing, writes the wall clock (`date +%s%N`)
//!   just before it exits with the failure; the bench removes the file, and
//!   the first such time after that is the deciding check result (fall 1).
//!   The service's own log line of the member failing, as read from its
//!   standard output, is also kept: the report gives the time from it to
//!   the node's event as well.
//! - maintenance on: just before `anycast maintenance on --no-wait` is
//!   started (the CLI's start and its request over the state socket count).
//! - SIGTERM, SIGKILL: just before kill(2).
//!
//! Between trials the bench restores (the file back, maintenance off, the
//! service started again) and waits until the upstream has the route again.
//! Triggers are interleaved (A B C D, A B C D, ...). Nothing is asserted
//! about speed: the goals are reported.

use std::{
    fmt::Write as _,
    fs,
    io::{BufRead as _, BufReader},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anycast_tests::{
    bgp::{self, Bird},
    lab::{End, Lab, LabFile, NetNs, Running, wait_until},
};
use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

/// The prefix announced.
const PREFIX: &str = "2001:db8:ef::/48";
const PREFIX_ADDR: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0xef, 0, 0, 0, 0, 0);
const PREFIX_LEN: u8 = 48;
/// The main table, where the upstream's BIRD installs what it learns.
const MAIN_TABLE: u32 = 254;
/// The node's address on the link to the upstream (the upstream's next hop).
const NODE_ADDR: &str = "fd00:bb::2";
/// The goals of the issue, in ms.
const NODE_GOAL_MS: f64 = 10.0;
const UPSTREAM_GOAL_MS: f64 = 50.0;
/// How long a withdraw may take before the bench gives up on the trial.
const EVENT_WAIT: Duration = Duration::from_secs(5);

/// Trials per trigger.
pub(crate) struct Shape {
    pub trials: usize,
}

impl Shape {
    pub(crate) fn new(quick: bool) -> Self {
        Shape {
            trials: if quick { 3 } else { 10 },
        }
    }
}

/// What causes the withdraw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    MemberDown,
    Maintenance,
    Sigterm,
    Sigkill,
}

impl Trigger {
    const ALL: [Trigger; 4] = [
        Trigger::MemberDown,
        Trigger::Maintenance,
        Trigger::Sigterm,
        Trigger::Sigkill,
    ];

    fn name(self) -> &'static str {
        match self {
            Trigger::MemberDown => "last member down (from the deciding check result)",
            Trigger::Maintenance => "anycast maintenance on (from the command's start)",
            Trigger::Sigterm => "SIGTERM to the service",
            Trigger::Sigkill => "SIGKILL to the service",
        }
    }
}

/// One trigger's trials, in ms from the start.
pub(crate) struct Measured {
    trigger: Trigger,
    /// The route gone from the node's table 100.
    pub node: Vec<f64>,
    /// The route via the node gone from the upstream's table.
    pub upstream: Vec<f64>,
    /// Last member down only: from the service's log line of the member
    /// failing (as read from its output) to the node's event.
    pub from_log: Vec<f64>,
}

/// A netlink socket of one namespace subscribed to its IPv6 route events,
/// read by a thread that sends the wall-clock time of each removal of
/// [`PREFIX`] from table `table`.
struct RouteWatch {
    rx: mpsc::Receiver<SystemTime>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

/// Opens a `NETLINK_ROUTE` socket subscribed to `RTMGRP_IPV6_ROUTE` in the
/// calling thread's namespace, with a receive timeout (so that its reader
/// can stop).
fn route_socket() -> std::io::Result<OwnedFd> {
    // SAFETY: a plain socket call; the descriptor is owned at once.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: an all-zero sockaddr_nl is valid; family and groups set below.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr.nl_groups = libc::RTMGRP_IPV6_ROUTE as u32;
    // SAFETY: `addr` is a valid sockaddr_nl of the size given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: a timeval option, passed with its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// Whether the netlink datagram `b` removes [`PREFIX`] from `table`.
fn removes_prefix(mut b: &[u8], table: u32) -> bool {
    let mut found = false;
    // Each message: nlmsghdr (len u32, type u16, flags, seq, pid), payload,
    // padded to 4 bytes.
    while b.len() >= 16 {
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let kind = u16::from_ne_bytes([b[4], b[5]]);
        if len < 16 || len > b.len() {
            break;
        }
        if kind == libc::RTM_DELROUTE
            && let Some(r) = anycast::netlink::route::parse(&b[16..len])
        {
            found |= r.dst == PREFIX_ADDR && r.dst_len == PREFIX_LEN && r.table == table;
        }
        b = &b[len.next_multiple_of(4).min(b.len())..];
    }
    found
}

impl RouteWatch {
    fn open(ns: &NetNs, table: u32) -> Result<Self> {
        let fd = ns.run(route_socket)??;
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !flag.load(Ordering::Relaxed) {
                // SAFETY: `buf` is writable for its length.
                let n =
                    unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                // Stamped before anything else is done with it.
                let at = SystemTime::now();
                if n <= 0 {
                    // A timeout (to look at the flag), EINTR, or ENOBUFS
                    // (unlikely: only this prefix's routes change here).
                    continue;
                }
                if removes_prefix(&buf[..n as usize], table) && tx.send(at).is_err() {
                    return;
                }
            }
        });
        Ok(RouteWatch {
            rx,
            stop,
            thread: Some(thread),
        })
    }

    /// Forgets the events so far.
    fn clear(&self) {
        while self.rx.try_recv().is_ok() {}
    }

    /// The time of the next removal, waiting at most [`EVENT_WAIT`].
    fn next(&self, what: &str) -> Result<SystemTime> {
        self.rx
            .recv_timeout(EVENT_WAIT)
            .with_context(|| format!("no removal of {PREFIX} {what} within {EVENT_WAIT:?}"))
    }
}

impl Drop for RouteWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The service in the node, its standard output read by a thread that
/// stamps each line with the wall clock.
struct Service {
    running: Running,
    lines: mpsc::Receiver<(SystemTime, String)>,
}

impl Service {
    fn start(lab: &Lab, config: &LabFile, log: &LabFile) -> Result<Self> {
        let mut child = lab
            .anycast_cmd(&lab.pin_dir, "node", &["run", "--config", config.arg()])?
            .stdout(Stdio::piped())
            .stderr(
                fs::OpenOptions::new()
                    .append(true)
                    .open(log.path())
                    .context("the service's stderr file")?,
            )
            .spawn()
            .context("starting the service")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((SystemTime::now(), line)).is_err() {
                    return;
                }
            }
        });
        let mut s = Service {
            running: Running(child),
            lines,
        };
        s.line("serving", Duration::from_secs(60))
            .context("the service did not start")?;
        Ok(s)
    }

    /// The first line from now on that contains `needle`, and when it came.
    fn line(&mut self, needle: &str, within: Duration) -> Result<SystemTime> {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok((at, line)) if line.contains(needle) => return Ok(at),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        bail!("the service printed no line with `{needle}` within {within:?}")
    }

    /// Forgets the lines so far.
    fn clear(&self) {
        while self.lines.try_recv().is_ok() {}
    }

    /// Sends `sig`, returning when it was sent.
    fn signal(&self, sig: i32) -> Result<SystemTime> {
        let at = SystemTime::now();
        self.running.signal(sig)?;
        Ok(at)
    }
}

/// `b - a` in ms (negative when `b` came first).
fn ms(a: SystemTime, b: SystemTime) -> f64 {
    match b.duration_since(a) {
        Ok(d) => d.as_secs_f64() * 1e3,
        Err(e) => -e.duration().as_secs_f64() * 1e3,
    }
}

/// The lab and what runs in it.
struct Bench {
    lab: Lab,
    config: LabFile,
    log: LabFile,
    /// The member is healthy while this file exists.
    ok: std::path::PathBuf,
    /// Where failing probes write their time.
    fails: LabFile,
    node: RouteWatch,
    upstream: RouteWatch,
}

impl Bench {
    /// Whether the upstream has the route via the node, and the node its
    /// route in table 100.
    fn announced(&self) -> bool {
        let up = self
            .lab
            .ns("up")
            .and_then(|ns| ns.ip(&["-6", "route", "show", PREFIX]))
            .unwrap_or_default();
        let node = self
            .lab
            .ns("node")
            .and_then(|ns| ns.ip(&["-6", "route", "show", "table", "100"]))
            .unwrap_or_default();
        up.contains(&format!("via {NODE_ADDR}")) && node.contains(PREFIX)
    }

    fn wait_announced(&self, within: Duration) -> Result<()> {
        wait_until("the upstream's route via the node", within, || {
            self.announced()
        })
        .with_context(|| {
            let text = fs::read_to_string(self.log.path()).unwrap_or_default();
            format!("the service's stderr: {text}")
        })?;
        // Let BIRD's and BFD's work of the re-announcement settle.
        thread::sleep(Duration::from_millis(300));
        Ok(())
    }

    /// The first failing probe's time after `after`.
    fn first_failure(&self, after: SystemTime) -> Result<SystemTime> {
        let since = after.duration_since(UNIX_EPOCH)?.as_nanos();
        let text = fs::read_to_string(self.fails.path())?;
        let ns = text
            .lines()
            .filter_map(|l| l.trim().parse::<u128>().ok())
            .find(|&t| t > since)
            .context("no failing probe recorded its time")?;
        Ok(UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns)?))
    }

    /// One trial of `t`: (node ms, upstream ms, log line to node ms); the
    /// service is running and announcing before and after.
    fn trial(&self, t: Trigger, service: &mut Service) -> Result<(f64, f64, Option<f64>)> {
        self.node.clear();
        self.upstream.clear();
        service.clear();
        let (start, node, up, from_log) = match t {
            Trigger::MemberDown => {
                let removed = SystemTime::now();
                fs::remove_file(&self.ok)?;
                let node = self.node.next("from the node's table 100")?;
                let up = self.upstream.next("from the upstream's table")?;
                let logged = service.line("member m1 of group g: failing", EVENT_WAIT)?;
                let start = self.first_failure(removed)?;
                fs::write(&self.ok, "")?;
                (start, node, up, Some(ms(logged, node)))
            }
            Trigger::Maintenance => {
                let start = SystemTime::now();
                self.lab
                    .anycast_ok("node", &["maintenance", "on", "--no-wait"])?;
                let node = self.node.next("from the node's table 100")?;
                let up = self.upstream.next("from the upstream's table")?;
                self.lab.anycast_ok("node", &["maintenance", "off"])?;
                (start, node, up, None)
            }
            Trigger::Sigterm | Trigger::Sigkill => {
                let sig = if t == Trigger::Sigterm {
                    libc::SIGTERM
                } else {
                    libc::SIGKILL
                };
                let start = service.signal(sig)?;
                let node = self.node.next("from the node's table 100")?;
                let up = self.upstream.next("from the upstream's table")?;
                // SIGTERM: it exits after the drain time.
                service.running.wait(Duration::from_secs(10))?;
                *service = Service::start(&self.lab, &self.config, &self.log)?;
                (start, node, up, None)
            }
        };
        self.wait_announced(Duration::from_secs(30))?;
        Ok((ms(start, node), ms(start, up), from_log))
    }
}

/// The service's configuration: one group, one member checked by an exec
/// of `sh` every 0.2 s (fall and rise 1), the prefix announced; short
/// drain and hold-down times, so that trials are quick.
fn config(ok: &std::path::Path, fails: &std::path::Path) -> String {
    let script = format!(
        "test -e {} || {{ date +%s%N >> {}; exit 1; }}",
        ok.display(),
        fails.display()
    );
    format!(
        "[bgp]\ntable = {}\nprotocol = {}\ndrain-time = 0.5\nhold-down = 0.5\n\
         [group.g]\naddresses = [\"2001:db8:ef::1\"]\nannounce = [\"{PREFIX}\"]\n\
         announce-min-members = 1\n\
         [group.g.member.m1]\nencap = \"fd00:ef::2\"\n\
         [group.g.member.m1.check]\nkind = \"exec\"\ncommand = [\"sh\", \"-c\", \"{script}\"]\n\
         interval = 0.2\ntimeout = 0.2\nrise = 1\nfall = 1\n",
        bgp::TABLE,
        bgp::PROTOCOL
    )
}

/// Builds the lab, runs the trials, and measures.
pub(crate) fn run(shape: &Shape) -> Result<Vec<Measured>> {
    let mut lab = Lab::new("withdraw")?;
    lab.node("node", true)?;
    lab.node("up", true)?;
    lab.link(
        End {
            node: "node",
            ifname: "n0",
            addr: "fd00:bb::2/64",
        },
        End {
            node: "up",
            ifname: "u0",
            addr: "fd00:bb::1/64",
        },
    )?;
    let ok = std::env::temp_dir().join(format!("{}-m1-ok", lab.prefix));
    fs::write(&ok, "")?;
    let fails = lab.file("probe-failures", "")?;
    let config = lab.file("withdraw.toml", &config(&ok, fails.path()))?;
    let log = lab.file("service.log", "")?;
    let node = RouteWatch::open(lab.ns("node")?, bgp::TABLE)?;
    let upstream = RouteWatch::open(lab.ns("up")?, MAIN_TABLE)?;
    let bench = Bench {
        lab,
        config,
        log,
        ok,
        fails,
        node,
        upstream,
    };
    let _up_bird = Bird::start(
        &bench.lab,
        "up",
        &bgp::upstream_conf("192.0.2.1", "u0", &[NODE_ADDR]),
    )?;
    let _node_bird = Bird::start(
        &bench.lab,
        "node",
        &bgp::node_conf("192.0.2.11", "n0", "fd00:bb::1"),
    )?;
    let started = Instant::now();
    let mut service = Service::start(&bench.lab, &bench.config, &bench.log)?;
    // The BGP session comes up first (BIRD's connect delay).
    bench.wait_announced(Duration::from_secs(60))?;
    println!(
        "withdraw bench: the upstream has the route {:.1?} after the start",
        started.elapsed()
    );
    let mut out: Vec<Measured> = Trigger::ALL
        .iter()
        .map(|&trigger| Measured {
            trigger,
            node: Vec::new(),
            upstream: Vec::new(),
            from_log: Vec::new(),
        })
        .collect();
    for i in 0..shape.trials {
        for m in &mut out {
            let (node, up, from_log) = bench
                .trial(m.trigger, &mut service)
                .with_context(|| format!("trial {} of {}", i + 1, m.trigger.name()))?;
            m.node.push(node);
            m.upstream.push(up);
            m.from_log.extend(from_log);
        }
    }
    drop(service);
    let _ = fs::remove_file(&bench.ok);
    Ok(out)
}

/// min / median / max.
fn mmm(v: &[f64]) -> [f64; 3] {
    let s = crate::stat(v.to_vec());
    [s.min, s.median, s.max]
}

/// The report's section.
pub(crate) fn report(md: &mut String, rows: &[Measured], shape: &Shape) {
    let _ = writeln!(
        md,
        "## withdraw latency (BGP, BIRD)\n\n\
         A node (the service and BIRD with docs/BGP.md's configuration) and an upstream (BIRD), \
         one eBGP session with BFD. From the cause to the route's removal as netlink route events \
         show it (a socket subscribed to RTMGRP_IPV6_ROUTE in each namespace, stamped on \
         arrival): at the node, the prefix leaving kernel table 100; at the upstream, its route \
         via the node leaving the main table. {} trials per trigger, interleaved; ms, min / \
         median / max. Last member down counts from the failing probe's exit (the check command \
         writes the time just before it exits); maintenance on from the start of `anycast \
         maintenance on --no-wait`; the signals from kill(2).\n",
        shape.trials
    );
    let _ = writeln!(
        md,
        "| trigger | at the node | at the upstream |\n|---|---:|---:|"
    );
    for r in rows {
        let [a, b, c] = mmm(&r.node);
        let [d, e, f] = mmm(&r.upstream);
        let _ = writeln!(
            md,
            "| {} | {a:.2} / {b:.2} / {c:.2} | {d:.2} / {e:.2} / {f:.2} |",
            r.trigger.name()
        );
    }
    if let Some(r) = rows.iter().find(|r| !r.from_log.is_empty()) {
        let [a, b, c] = mmm(&r.from_log);
        let _ = writeln!(
            md,
            "\nLast member down, from the service's log line of the member failing (read from its \
             output) to the node's event: {a:.2} / {b:.2} / {c:.2} ms (negative: the event came \
             first)."
        );
    }
    let _ = writeln!(md);
}

/// The goals of the issue, judged on the medians (the max is printed).
pub(crate) fn targets(rows: &[Measured]) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for (what, goal, pick) in [
        (
            "the node's table",
            NODE_GOAL_MS,
            (|r: &Measured| r.node.clone()) as fn(&Measured) -> Vec<f64>,
        ),
        ("the upstream's table", UPSTREAM_GOAL_MS, |r: &Measured| {
            r.upstream.clone()
        }),
    ] {
        for r in rows {
            let [_, median, max] = mmm(&pick(r));
            out.push((
                format!(
                    "withdraw on {}: out of {what} within {goal} ms (median)",
                    r.trigger.name()
                ),
                format!("{median:.2} ms (max {max:.2} ms)"),
                median < goal,
            ));
        }
    }
    out
}

/// The measurements, for results.json.
pub(crate) fn json(rows: &[Measured]) -> Value {
    let one = |v: &[f64]| {
        let [min, median, max] = mmm(v);
        json!({"min_ms": min, "median_ms": median, "max_ms": max, "trials_ms": v})
    };
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "trigger": r.trigger.name(),
                    "node": one(&r.node),
                    "upstream": one(&r.upstream),
                    "from_log_line_to_node": (!r.from_log.is_empty()).then(|| one(&r.from_log)),
                })
            })
            .collect(),
    )
}
