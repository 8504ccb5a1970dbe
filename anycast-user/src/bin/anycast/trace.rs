//! `anycast trace`: prints the data plane's decisions as they happen
//! ([`anycast::trace`]), one line each or one JSON object each, and turns
//! tracing off on its way out (--count reached, Ctrl-C, SIGTERM, a closed
//! output).

use std::{
    collections::HashMap,
    io::Write,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anycast::{
    Dataplane, PinDir, link,
    trace::{TraceEvent, TraceFilter, TraceLosses, Tracer},
};
use anycast_common::TRACE_RENEW_NS;
use anyhow::Context as _;

use crate::{OutputError, cli::TraceArgs, print};

/// Set by SIGINT and SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// How often the losses are shown while tracing.
const LOSS_REPORT: Duration = Duration::from_secs(5);

/// Names of groups, members and interfaces, by id.
struct Names {
    groups: HashMap<u32, String>,
    members: HashMap<u32, String>,
}

impl Names {
    fn read(pin: &PinDir) -> anyhow::Result<Self> {
        let dp = Dataplane::open(pin.clone())?;
        Ok(Names {
            groups: dp.groups()?.into_iter().map(|g| (g.id, g.name)).collect(),
            members: dp
                .members(None)?
                .into_iter()
                .map(|m| (m.id, m.name))
                .collect(),
        })
    }
}

/// The name of interface `ifindex`, or its index.
fn ifname(ifindex: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has room for IF_NAMESIZE bytes, as the call needs.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return ifindex.to_string();
    }
    // SAFETY: filled in with a NUL-terminated name.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Runs the trace until done; turns tracing off however it ends.
pub(crate) fn trace(pin: PinDir, args: &TraceArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let names = Names::read(&pin)?;
    let group = match &args.group {
        Some(g) => {
            *names
                .groups
                .iter()
                .find(|(_, n)| *n == g)
                .with_context(|| format!("no group `{g}`"))?
                .0
        }
        None => 0,
    };
    let ifindex = match &args.iface {
        Some(i) => link::ifindex(i)?,
        None => 0,
    };
    let filter = TraceFilter {
        ifindex,
        group,
        sample: args.sample,
        rate: args.rate,
    };
    let mut tracer = Tracer::open(&pin, filter)?;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    let base = tracer.losses()?;
    tracer.renew()?;
    let result = stream(&mut tracer, &names, args, out);
    // Off at once, whatever happened (the lease would end it in 2 s).
    let off = tracer.disable();
    let lost = tracer.losses().map(|l| l.since(&base));
    if let Ok(l) = &lost {
        eprintln!("{}", losses_line(l));
    }
    result?;
    off?;
    Ok(())
}

fn losses_line(l: &TraceLosses) -> String {
    format!(
        "trace: {} records written, {} lost to the rate limit, {} to a full ring buffer",
        l.written, l.rate_limited, l.ring_full
    )
}

fn stream(
    tracer: &mut Tracer,
    names: &Names,
    args: &TraceArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let renew_every = Duration::from_nanos(TRACE_RENEW_NS);
    let mut renewed = Instant::now();
    let mut reported = Instant::now();
    let mut shown = 0u64;
    let base = tracer.losses()?;
    let mut last_lost = (0, 0);
    while !STOP.load(Ordering::Relaxed) {
        if renewed.elapsed() >= renew_every {
            tracer.renew()?;
            renewed = Instant::now();
        }
        if reported.elapsed() >= LOSS_REPORT {
            let l = tracer.losses()?.since(&base);
            if (l.rate_limited, l.ring_full) != last_lost {
                eprintln!("{}", losses_line(&l));
                last_lost = (l.rate_limited, l.ring_full);
            }
            reported = Instant::now();
        }
        tracer.wait(100);
        while let Some(r) = tracer.next_record() {
            let e = TraceEvent::new(
                &r,
                ifname,
                |g| names.groups.get(&g).cloned().or(Some(g.to_string())),
                |m| names.members.get(&m).cloned().or(Some(m.to_string())),
            );
            if args.addr.is_some_and(|a| !e.involves(a)) {
                continue;
            }
            if args.json {
                say!(out, "{}", serde_json::to_string(&print::versioned(&e))?);
            } else {
                say!(out, "{}", line(&e));
            }
            shown += 1;
            if args.count.is_some_and(|c| shown >= c) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The line a person reads.
fn line(e: &TraceEvent) -> String {
    let end = |a: Option<std::net::Ipv6Addr>, p: Option<u16>| match (a, p) {
        (Some(a), Some(p)) => format!("[{a}]:{p}"),
        (Some(a), None) => a.to_string(),
        (None, _) => "-".into(),
    };
    let mut s = format!(
        "{:<10} {} -> {} {:<8} {}",
        e.iface,
        end(e.src, e.sport),
        end(e.dst, e.dport),
        e.action,
        e.reason
    );
    if let Some(g) = &e.group {
        s.push_str(&format!(" group={g}"));
    }
    if let Some(m) = &e.member {
        s.push_str(&format!(" member={m}"));
    }
    if let Some(f) = e.flow {
        s.push_str(&format!(" flow={f}"));
    }
    s
}
