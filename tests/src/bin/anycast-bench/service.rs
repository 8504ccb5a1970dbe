//! The service (`anycast run --config FILE`) with 1,000 members checked
//! every second, in a namespace lab: its CPU share of one core and its
//! resident memory while the checks pass, then while some members go down
//! and come back, and the time from each deciding probe result to the map
//! update, as the service measures it (`anycast status --json`,
//! `member_updates`).
//!
//! ```text
//!  router (the service; r0 attached, edge) r0 ---- eth0 members
//!    fd00:5e:2::/112 via the members            1,000 addresses on lo,
//!                                               one TCP listener on [::]
//! ```
//!
//! Members are routed (`encap`) to fd00:5e:2::1 .. ::3e8, 20 groups of 50
//! (at most 64 may be up at one metric), every check `target = "unicast"`
//! at interval 1 s, rise and fall 2: even members a TCP connect to one
//! listener bound to [::] (accepted and closed by a thread of the bench),
//! odd ones an ICMPv6 echo the kernel answers. A member is taken down by
//! an `unreachable` route to its address in the router (its probes fail at
//! once) and brought back by deleting it.

use std::{
    fmt::Write as _,
    fs,
    io::ErrorKind,
    net::{Ipv6Addr, SocketAddr, TcpListener},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anycast_tests::lab::{End, Lab, LabFile, Lines, Running, wait_until};
use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// Members, groups, and the members of a group.
const MEMBERS: usize = 1000;
const GROUPS: usize = 20;
/// Where the TCP checks connect.
const PORT: u16 = 5390;
/// The members taken down (and back) at a time.
const FLIP: usize = 50;
/// How long a flipped member stays down, and up after: fall (rise) 2 at
/// 1 s decide within 2 s of the change, plus up to one interval.
const HOLD: Duration = Duration::from_millis(3500);
/// The goals of the service issue.
const CPU_GOAL: f64 = 5.0;
const RSS_GOAL_MB: f64 = 50.0;
const P99_GOAL_MS: f64 = 10.0;

/// How long each phase runs.
pub(crate) struct Shape {
    /// Checks passing, nothing changing.
    pub steady: Duration,
    /// Flip cycles (each takes 2 x [`HOLD`]).
    pub cycles: usize,
}

impl Shape {
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Shape {
                steady: Duration::from_secs(10),
                cycles: 1,
            }
        } else {
            Shape {
                steady: Duration::from_secs(30),
                cycles: 4,
            }
        }
    }
}

/// CPU and memory of the service over one phase.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Usage {
    /// Percent of one core (user + system time over wall time).
    pub cpu: f64,
    /// Largest VmRSS seen, in MB (10^6 bytes).
    pub rss_mb: f64,
    /// Threads of the process at the end.
    pub threads: u64,
    pub seconds: f64,
    /// The machine's 1-minute load average at the end (other work on the
    /// machine delays the service's updates).
    pub load: f64,
}

/// What the bench measured.
pub(crate) struct Measured {
    pub steady: Usage,
    pub flipping: Usage,
    /// The flip phase's member updates, from deciding result to map
    /// update, in ms.
    pub updates: Vec<f64>,
    /// Updates the flips should have made (each flipped member twice).
    pub expected: usize,
    /// Probes run and failed over the whole run (from the status).
    pub probes: u64,
    pub failures: u64,
}

fn member_addr(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x5e, 2, 0, 0, 0, 0, (i + 1) as u16)
}

fn config() -> String {
    let mut s = String::from("[interface.r0]\nrole = \"edge\"\n");
    let per = MEMBERS / GROUPS;
    for g in 0..GROUPS {
        let _ = writeln!(
            s,
            "\n[group.g{g:02}]\naddresses = [\"{}\"]",
            Ipv6Addr::new(0x2001, 0xdb8, 0x5e, 0, 0, 0, 0, g as u16 + 1)
        );
        for i in g * per..(g + 1) * per {
            let check = if i % 2 == 0 {
                format!("kind = \"tcp\", port = {PORT}")
            } else {
                "kind = \"icmp\"".to_string()
            };
            let _ = writeln!(
                s,
                "member.m{i:04} = {{ encap = \"{}\", metric = 10, check = {{ {check}, \
                 target = \"unicast\", interval = 1.0, timeout = 0.5, rise = 2, fall = 2 }} }}",
                member_addr(i)
            );
        }
    }
    s
}

/// A TCP listener on [::]:PORT in the members' namespace that accepts and
/// closes every connection, until dropped (or [`Responder::MAX_LIFE`]).
struct Responder {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<u64>>,
}

impl Responder {
    const MAX_LIFE: Duration = Duration::from_secs(600);

    fn start(lab: &Lab) -> Result<Self> {
        let listener = lab.ns("members")?.run(|| {
            let l = TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, PORT)))?;
            l.set_nonblocking(true)?;
            Ok::<_, std::io::Error>(l)
        })??;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let start = Instant::now();
            let mut accepted = 0u64;
            while !flag.load(Ordering::Relaxed) && start.elapsed() < Self::MAX_LIFE {
                match listener.accept() {
                    Ok(_) => accepted += 1,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
            accepted
        });
        Ok(Responder {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// utime + stime of process `pid`, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command (which may hold spaces) in parentheses.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("/proc/PID/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let ticks: u64 =
        f.get(11).context("utime")?.parse::<u64>()? + f.get(12).context("stime")?.parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    Ok(ticks as f64 / hz as f64)
}

/// A field of /proc/PID/status, as its first number (VmRSS in kB, Threads).
fn status_field(pid: u32, key: &str) -> Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("{key} in /proc/{pid}/status"))
}

/// The service's CPU and memory over `phase` (which runs the phase and is
/// called again until it returns false), sampled every second.
fn usage(pid: u32, mut phase: impl FnMut() -> Result<bool>) -> Result<Usage> {
    let start = Instant::now();
    let cpu0 = cpu_seconds(pid)?;
    let mut rss_kb = status_field(pid, "VmRSS:")?;
    while phase()? {
        rss_kb = rss_kb.max(status_field(pid, "VmRSS:")?);
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(pid)? - cpu0) / seconds * 100.0;
    rss_kb = rss_kb.max(status_field(pid, "VmRSS:")?);
    let load = fs::read_to_string("/proc/loadavg")?
        .split_whitespace()
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(f64::NAN);
    Ok(Usage {
        cpu,
        rss_mb: rss_kb as f64 * 1024.0 / 1e6,
        threads: status_field(pid, "Threads:")?,
        seconds,
        load,
    })
}

/// `anycast status --json` of the lab's service.
fn status(lab: &Lab) -> Result<Value> {
    Ok(serde_json::from_str(
        &lab.anycast_ok("router", &["status", "--json"])?,
    )?)
}

fn members_healthy(s: &Value) -> usize {
    s["members"]
        .as_array()
        .map_or(0, |m| m.iter().filter(|m| m["health"] == "healthy").count())
}

/// Adds (`add`) or deletes unreachable routes to members `flipped` in the
/// router, in one `ip -batch`.
fn unreachable(lab: &Lab, batch: &LabFile, flipped: &[usize], add: bool) -> Result<()> {
    let verb = if add { "add" } else { "del" };
    let text: String = flipped
        .iter()
        .map(|&i| format!("route {verb} unreachable {}/128\n", member_addr(i)))
        .collect();
    fs::write(batch.path(), text)?;
    lab.ns("router")?.ip(&["-batch", batch.arg()])?;
    Ok(())
}

/// Builds the lab, runs the service on it, and measures.
pub(crate) fn run(shape: &Shape) -> Result<Measured> {
    let mut lab = Lab::new("svcbench")?;
    lab.node("router", true)?;
    lab.node("members", false)?;
    let e = |node, ifname, addr| End { node, ifname, addr };
    lab.link(
        e("router", "r0", "fd00:5e:1::1/64"),
        e("members", "eth0", "fd00:5e:1::2/64"),
    )?;
    lab.route("router", "fd00:5e:2::/112", "fd00:5e:1::2")?;
    lab.route("members", "default", "fd00:5e:1::1")?;
    let addrs: String = (0..MEMBERS)
        .map(|i| format!("addr add {}/128 dev lo nodad\n", member_addr(i)))
        .collect();
    let batch = lab.file("ip-batch", &addrs)?;
    lab.ns("members")?.ip(&["-batch", batch.arg()])?;
    let _responder = Responder::start(&lab)?;
    let file = lab.file("service.toml", &config())?;

    // Its log goes to a file (a pipe nobody reads would fill and stop it).
    let log = lab.file("service.log", "")?;
    let mut cmd = lab.anycast_cmd(&lab.pin_dir, "router", &["run", "--config", file.arg()])?;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(fs::File::create(log.path())?)
        .spawn()
        .context("starting the service")?;
    let stdout = child.stdout.take().context("stdout")?;
    let running = Running(child);
    let pid = running.0.id();
    let mut lines = Lines::new(stdout);
    let started = Instant::now();
    let tail = || {
        let text = fs::read_to_string(log.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    };
    lines
        .expect(
            &["serving", &format!("{MEMBERS} members checked")],
            Duration::from_secs(120),
        )
        .with_context(|| format!("the service's log ends with: {}", tail()))?;
    let serving = started.elapsed();
    wait_until("every member healthy", Duration::from_secs(60), || {
        status(&lab).is_ok_and(|s| members_healthy(&s) == MEMBERS)
    })
    .with_context(|| {
        format!(
            "{} of {MEMBERS} healthy",
            status(&lab).map_or(0, |s| members_healthy(&s))
        )
    })?;
    println!(
        "service bench: serving {serving:.1?} after the start, {MEMBERS} members healthy after {:.1?}",
        started.elapsed()
    );

    let steady_end = Instant::now() + shape.steady;
    let steady = usage(pid, || {
        thread::sleep(Duration::from_secs(1));
        Ok(Instant::now() < steady_end)
    })?;

    let before = status(&lab)?["member_updates"]["count"]
        .as_u64()
        .context("member_updates.count in the status")?;
    let mut cycle = 0;
    let mut step = 0;
    let routes = lab.file("ip-routes", "")?;
    let flipping = usage(pid, || {
        // Each cycle takes FLIP other members down, then back up.
        let flipped: Vec<usize> = (0..FLIP)
            .map(|k| (cycle * FLIP + k) * 7 % MEMBERS)
            .collect();
        unreachable(&lab, &routes, &flipped, step == 0)?;
        thread::sleep(HOLD);
        step = 1 - step;
        if step == 0 {
            cycle += 1;
        }
        Ok(cycle < shape.cycles)
    })?;
    // The last ones to decide.
    let expected = 2 * FLIP * shape.cycles;
    let mut last = status(&lab)?;
    wait_until("the flips' updates", Duration::from_secs(10), || {
        status(&lab).is_ok_and(|s| {
            last = s;
            last["member_updates"]["count"].as_u64().unwrap_or(0) >= before + expected as u64
        })
    })
    .ok();
    let u = &last["member_updates"];
    let count = u["count"].as_u64().unwrap_or(0);
    let recent: Vec<f64> = u["recent_ms"]
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let new = usize::try_from(count.saturating_sub(before))?.min(recent.len());
    let updates = recent[recent.len() - new..].to_vec();
    if updates.is_empty() {
        bail!("the flips made no member update: {u}");
    }
    let sum = |key: &str| {
        last["members"]
            .as_array()
            .map_or(0, |m| m.iter().filter_map(|m| m[key].as_u64()).sum())
    };
    let measured = Measured {
        steady,
        flipping,
        updates,
        expected,
        probes: sum("probes"),
        failures: sum("failures"),
    };
    drop(running);
    Ok(measured)
}

/// min / median / p99 / max of `v` (nearest rank).
fn percentiles(v: &[f64]) -> [f64; 4] {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = |p: f64| s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
    [s[0], rank(0.5), rank(0.99), s[s.len() - 1]]
}

/// The report's section.
pub(crate) fn report(md: &mut String, m: &Measured, shape: &Shape) {
    let _ = writeln!(
        md,
        "## the service with {MEMBERS} members checked every second\n\n\
         `anycast run --config FILE` in a namespace lab: {MEMBERS} routed members in {GROUPS} groups, \
         every check `target = \"unicast\"` at interval 1 s (half TCP connect, half ICMPv6 echo), \
         rise and fall 2. CPU: user + system time of the process (/proc/PID/stat) over wall time, \
         in percent of one core; memory: the largest VmRSS sampled every second. Then {} cycles \
         take {FLIP} members down (an unreachable route to their addresses) and back up; the \
         service times each update from the probe result that decided it to the map write \
         returning (`anycast status --json`, `member_updates`).\n",
        shape.cycles
    );
    let _ = writeln!(
        md,
        "| phase | seconds | CPU, % of one core | max RSS, MB | threads | machine's load average |\n|---|---:|---:|---:|---:|---:|"
    );
    for (name, u) in [
        ("checks passing", &m.steady),
        ("members going down and up", &m.flipping),
    ] {
        let _ = writeln!(
            md,
            "| {name} | {:.0} | {:.2} | {:.1} | {} | {:.2} |",
            u.seconds, u.cpu, u.rss_mb, u.threads, u.load
        );
    }
    let [min, p50, p99, max] = percentiles(&m.updates);
    let _ = writeln!(
        md,
        "\nMember updates (deciding result to map update): {} of the {} the flips should make; \
         min {min:.2} ms, median {p50:.2} ms, 99th percentile {p99:.2} ms, max {max:.2} ms. \
         Probes over the run: {} ({} failed).\n",
        m.updates.len(),
        m.expected,
        m.probes,
        m.failures
    );
}

/// The goals of the service issue, judged.
pub(crate) fn targets(m: &Measured) -> Vec<(String, String, bool)> {
    let [_, p50, p99, _] = percentiles(&m.updates);
    let rss = m.steady.rss_mb.max(m.flipping.rss_mb);
    vec![
        (
            format!(
                "service with {MEMBERS} members checked every second: CPU under {CPU_GOAL} % of one core"
            ),
            format!(
                "{:.2} % with checks passing (judged), {:.2} % while {FLIP} members at a time go down and up",
                m.steady.cpu, m.flipping.cpu
            ),
            m.steady.cpu < CPU_GOAL,
        ),
        (
            format!("service with {MEMBERS} members: resident memory under {RSS_GOAL_MB} MB"),
            format!("{rss:.1} MB"),
            rss < RSS_GOAL_MB,
        ),
        (
            format!(
                "deciding check result to map update under {P99_GOAL_MS} ms at the 99th percentile"
            ),
            format!(
                "{p99:.2} ms (median {p50:.2} ms, {} updates)",
                m.updates.len()
            ),
            p99 < P99_GOAL_MS,
        ),
    ]
}

/// The measurements, for results.json.
pub(crate) fn json(m: &Measured) -> Value {
    let usage = |u: &Usage| serde_json::json!({"seconds": u.seconds, "cpu_percent": u.cpu, "max_rss_mb": u.rss_mb, "threads": u.threads, "load_average": u.load});
    let [min, p50, p99, max] = percentiles(&m.updates);
    serde_json::json!({
        "members": MEMBERS,
        "checks_passing": usage(&m.steady),
        "members_going_down_and_up": usage(&m.flipping),
        "updates": {"count": m.updates.len(), "expected": m.expected, "min_ms": min, "p50_ms": p50, "p99_ms": p99, "max_ms": max},
        "probes": m.probes,
        "probe_failures": m.failures,
    })
}
