//! `anycast run`: attach for the run and print live counters, and, with
//! `--config FILE`, the service: the file applied, the members' checks
//! acted on, SIGHUP re-reading the file.

use std::{
    io::{self, Write},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anycast::{Dataplane, Interface, PinDir, link::LinkEvents, service::Service, stats::Stats};
use anyhow::Context as _;
use tokio::{
    signal::unix::{Signal, SignalKind, signal},
    sync::mpsc::UnboundedReceiver,
};

use crate::{OutputError, cli::RunArgs};

/// An attachment `anycast run` made: detached when dropped, whatever ends
/// the run (a signal, a closed output, an error, a panic).
struct Attached {
    dp: Dataplane,
    iface: Option<Interface>,
}

impl Attached {
    /// Detaches now, reporting the error a drop would swallow; whether the
    /// attachment was still there to detach.
    fn detach(&mut self) -> anycast::Result<bool> {
        match self.iface.take() {
            Some(i) => self.dp.detach_interface(&i),
            None => Ok(false),
        }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        if let Err(e) = self.detach() {
            let _ = writeln!(io::stderr(), "anycast: error: detaching: {e}");
        }
    }
}

/// The signals `anycast run` handles.
struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

/// `anycast run`: attaches (when given an interface), starts the service
/// (when given a file), prints a line of counters every interval, and
/// ends on SIGINT or SIGTERM, when its output is closed, and on any error,
/// detaching what it attached. SIGHUP re-reads the file of a service, and
/// ends a run without one. Link events (netlink) refresh the state at
/// once: members whose interface goes away stop getting traffic, and the
/// run ends when its own interface is deleted.
pub(crate) fn run(
    pin: PinDir,
    flow_table: Option<u32>,
    args: &RunArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        // The handlers are in place before the program is attached, so
        // that no signal can end the process with the program attached.
        let mut signals = Signals {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        };
        // Opened in this thread's network namespace (that of --netns).
        let events = LinkEvents::subscribe()?;
        let mut run = match &args.iface {
            Some(name) => {
                let (dp, i) =
                    Dataplane::create_and_attach(pin, flow_table, name, args.how.options())?;
                say!(
                    out,
                    "attached to {} ({} / {} / {}); Ctrl-C detaches",
                    i.name,
                    i.role,
                    i.source_action,
                    i.mode
                );
                Attached { dp, iface: Some(i) }
            }
            None => Attached {
                dp: Dataplane::open_or_create_with(pin, flow_table)?,
                iface: None,
            },
        };
        let service = match &args.config {
            Some(file) => {
                let opts = anycast::reconcile::ApplyOptions {
                    dry_run: false,
                    allow_empty: args.allow_empty,
                    force: args.force,
                };
                let (service, changes) = Service::start(&mut run.dp, file, opts)?;
                for c in &changes {
                    say!(out, "{c}");
                }
                say!(
                    out,
                    "serving {}: {} changed, {} members checked; SIGHUP re-reads it",
                    file.display(),
                    changes.len(),
                    service.checked()
                );
                Some(service)
            }
            None => None,
        };
        let every = Duration::from_secs(args.interval.max(1));
        let watched = watch(&mut run, service, events, every, out, &mut signals).await;
        let detached = run.detach();
        watched?;
        if let (true, Some(name)) = (detached?, &args.iface) {
            say!(out, "detached from {name}");
        }
        Ok(())
    })
}

/// The body of `anycast run`, until a signal, a closed output or an error.
async fn watch(
    run: &mut Attached,
    mut service: Option<Service>,
    events: LinkEvents,
    every: Duration,
    out: &mut impl Write,
    signals: &mut Signals,
) -> anyhow::Result<()> {
    // Link events come from a thread that waits on the netlink socket; it
    // looks at `stop` at least twice a second.
    let changed = Arc::new(tokio::sync::Notify::new());
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (changed, stop) = (changed.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match events.wait(Duration::from_millis(500)) {
                    Ok(true) => changed.notify_one(),
                    Ok(false) => {}
                    Err(e) => {
                        log::warn!("link events: {e}; interfaces are checked no more");
                        return;
                    }
                }
            }
        })
    };
    let mut tick = tokio::time::interval(every);
    let mut last: Option<Stats> = None;
    let dp = &mut run.dp;
    let own = run.iface.clone();
    let mut outcomes = service.as_mut().and_then(Service::take_outcomes);
    let result = async {
        loop {
            tokio::select! {
                _ = signals.int.recv() => break,
                _ = signals.term.recv() => break,
                _ = signals.hup.recv() => match service.as_mut() {
                    Some(s) => {
                        for line in s.reload(dp) {
                            log::info!("{line}");
                            say!(out, "{line}");
                        }
                    }
                    None => break,
                },
                Some(o) = next(&mut outcomes) => {
                    if let Some(s) = service.as_mut()
                        && let Some(line) = s.record(dp, o)
                    {
                        log::info!("{line}");
                        say!(out, "{line}");
                    }
                }
                _ = changed.notified() => {
                    let r = dp.refresh()?;
                    for line in r.lines() {
                        say!(out, "{line}");
                    }
                    if let Some(i) = &own
                        && r.stale.iter().any(|s| s.interface.netns == i.netns && s.interface.ifindex == i.ifindex)
                    {
                        anyhow::bail!("interface {} was deleted", i.name);
                    }
                }
                _ = tick.tick() => {
                    let now = dp.stats()?;
                    if let Some(prev) = &last {
                        say!(out, "{}", now.rate_line(prev, every));
                    }
                    last = Some(now);
                }
            }
        }
        Ok(())
    }
    .await;
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    result
}

/// The service's next probe result; never, without a service.
async fn next(
    outcomes: &mut Option<UnboundedReceiver<anycast::service::Outcome>>,
) -> Option<anycast::service::Outcome> {
    match outcomes {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
