//! `anycast run`: attach for the run and print live counters, and, with
//! `--config FILE`, the service: the file applied, the members' checks
//! acted on, SIGHUP re-reading the file.

use std::{
    io::{self, Write},
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anycast::{
    Dataplane, Interface, PinDir,
    dataplane::StateSizes,
    link::LinkEvents,
    netlink::events::{NetEvent, NetEvents},
    service::{
        Service, logging,
        socket::{self, Kept, Reloaded, Request, StateSocket, socket_path},
        systemd::Notifier,
    },
    stats::Stats,
};
use anyhow::Context as _;
use log::Level;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
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
    sizes: &StateSizes,
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
        // Opened in this thread's network namespace (that of --netns),
        // before the service reads the tables: no change falls between.
        let events = LinkEvents::subscribe()?;
        let net_events = match &args.config {
            Some(_) => Some(NetEvents::subscribe()?),
            None => None,
        };
        // Before anything changes: a second service on this pin dir stops
        // here.
        let pin_path = pin.path().to_path_buf();
        let mut sizes = sizes.clone();
        let socket = match &args.config {
            Some(file) => {
                // The file may name the socket: read it first (a file that
                // does not validate stops the service here, before any
                // change).
                let cfg = anycast::service::load(file)?;
                // The file's `[state]` sizes a state this run creates.
                sizes = sizes.with_file(&cfg.state, &file.display().to_string())?;
                // The file's log level, from the first line on.
                if let Some(line) = logging::apply(cfg.service.log_level) {
                    log::info!("{line}");
                }
                let named = cfg.service.socket;
                let path = args
                    .socket
                    .clone()
                    .or(named)
                    .unwrap_or_else(|| socket_path(&pin_path));
                Some(StateSocket::bind(&path, &pin_path)?)
            }
            None => None,
        };
        let opts = anycast::reconcile::ApplyOptions {
            dry_run: false,
            allow_empty: args.allow_empty,
            force: args.force,
        };
        let service = args.config.is_some();
        let (mut run, mut started) = match &args.iface {
            Some(name) => {
                let (dp, i) = Dataplane::create_and_attach(pin, &sizes, name, args.how.options())?;
                let line = format!(
                    "attached to {} ({} / {} / {}); Ctrl-C detaches",
                    i.name, i.role, i.source_action, i.mode
                );
                report(out, service, Level::Info, &line)?;
                (Attached { dp, iface: Some(i) }, None)
            }
            // A service alone: a data plane it had to create goes again
            // when the file cannot be applied.
            None => {
                let file = args.config.as_deref().context("an interface or --config")?;
                let (dp, started) = Dataplane::open_or_create_then(pin, &sizes, |dp| {
                    Service::start(dp, file, opts)
                })?;
                (Attached { dp, iface: None }, Some(started))
            }
        };
        if let (None, Some(file)) = (&started, &args.config) {
            started = Some(Service::start(&mut run.dp, file, opts)?);
        }
        let service = match (started, &args.config) {
            (Some((service, changes)), Some(file)) => {
                for c in &changes {
                    log::info!("{c}");
                }
                log::info!(
                    "serving {}: {} changed, {} members checked; SIGHUP re-reads it",
                    file.display(),
                    changes.len(),
                    service.checked()
                );
                Some(service)
            }
            _ => None,
        };
        let every = Duration::from_secs(args.interval.max(1));
        let served = Served {
            service,
            socket,
            pin: pin_path,
        };
        let watched = watch(
            &mut run,
            served,
            (events, net_events),
            (every, args.detach_on_exit),
            out,
            &mut signals,
        )
        .await;
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
    served: Served,
    (events, net_events): (LinkEvents, Option<NetEvents>),
    (every, detach_on_exit): (Duration, bool),
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
    // Neighbour and route events come from a thread of their own, which
    // stops when the channel closes or `stop` is set.
    let (net_tx, mut net_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<NetEvent>>();
    let net_reader = net_events.map(|net| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match net.wait(Duration::from_millis(500)) {
                    Ok(e) if e.is_empty() => {}
                    Ok(e) => {
                        if net_tx.send(e).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        log::warn!("neighbour and route events: {e}; followed no more");
                        return;
                    }
                }
            }
        })
    });
    // Unresolved members' addresses are solicited again on this beat.
    let mut solicit = tokio::time::interval(Duration::from_millis(250));
    let mut tick = tokio::time::interval(every);
    let mut last: Option<Stats> = None;
    let dp = &mut run.dp;
    let own = run.iface.clone();
    let Served {
        mut service,
        mut socket,
        pin,
    } = served;
    // Whether the state socket is still there (something may remove it),
    // the metrics port free, if it was not, and the announced routes in
    // their table.
    let mut keep_socket = tokio::time::interval(Duration::from_secs(1));
    let notifier = Notifier::from_env();
    if let Some(s) = &service {
        notifier.notify(&format!("READY=1\nSTATUS=serving {}", s.file().display()));
    }
    // The watchdog is pinged from this loop: a hung loop is a hung service.
    let mut watchdog = notifier.watchdog_every().map(tokio::time::interval);
    let mut outcomes = service.as_mut().and_then(Service::take_outcomes);
    let mut metrics = Metrics::default();
    // Whether "drained" was logged for this maintenance.
    let mut drained_said: Option<bool> = None;
    if let Some(s) = service.as_mut() {
        for (level, line) in metrics.follow(s.metrics_addr()).await {
            log::log!(level, "{line}");
        }
        for line in s.problems_changed() {
            log::warn!("{line}");
        }
    }
    // After SIGTERM or SIGINT: when forwarding stops (the drain time after
    // the withdraw), if anything was announced.
    let mut stopping: Option<tokio::time::Instant> = None;
    let result = async {
        loop {
            // A hold-down ending, or the end of a drain not yet said.
            let wakeup = service.as_ref().and_then(|s| {
                let drain = s.drain_ends().filter(|_| drained_said != Some(true));
                s.announce_wakeup().into_iter().chain(drain).min()
            });
            tokio::select! {
                _ = signals.int.recv() => if stop_announcing(&mut service, &mut stopping) { break },
                _ = signals.term.recv() => if stop_announcing(&mut service, &mut stopping) { break },
                _ = sleep_until(stopping) => break,
                _ = sleep_until(wakeup.map(tokio::time::Instant::from_std)) => {
                    if let Some(s) = service.as_mut() {
                        for line in s.announce() {
                            log::info!("{line}");
                        }
                        if s.drained() && drained_said != Some(true) {
                            drained_said = Some(true);
                            log::info!("maintenance: drained (the drain time has passed)");
                        }
                    }
                }
                _ = signals.hup.recv() => match service.as_mut() {
                    Some(s) => {
                        reload(s, dp, &mut metrics, &notifier).await?;
                    }
                    None => break,
                },
                Some(()) = next_tick(&mut watchdog) => notifier.notify("WATCHDOG=1"),
                Some(conn) = next_client(&socket) => {
                    if let Some((conn, request)) = socket::read_request(conn).await
                        && let Some(s) = service.as_mut()
                    {
                        let answer = match request {
                            Request::Status => serde_json::to_string(&s.status(&pin))?,
                            Request::Reload => {
                                serde_json::to_string(&reload(s, dp, &mut metrics, &notifier).await?)?
                            }
                            Request::Maintenance(on) => {
                                let a = s.maintenance(on);
                                for line in &a.lines {
                                    log::info!("{line}");
                                }
                                drained_said = None;
                                serde_json::to_string(&a)?
                            }
                        };
                        tokio::spawn(socket::answer(conn, answer));
                    }
                }
                Some(conn) = metrics.accept() => {
                    if let Some(s) = &service {
                        let body = s.metrics(dp);
                        tokio::spawn(answer(conn, body.map_err(|e| e.to_string())));
                    }
                }
                Some(o) = next(&mut outcomes) => {
                    if let Some(s) = service.as_mut()
                        && let Some(line) = s.record(dp, o)
                    {
                        log::info!("{line}");
                        for line in s.announce() {
                            log::info!("{line}");
                        }
                    }
                }
                Some(e) = net_rx.recv() => {
                    if let Some(s) = service.as_mut() {
                        for line in s.net_events(dp, e) {
                            log::info!("{line}");
                        }
                        for line in s.announce() {
                            log::info!("{line}");
                        }
                    }
                }
                _ = solicit.tick(), if service.as_ref().is_some_and(Service::follows_neighbours) => {
                    if let Some(s) = service.as_mut() {
                        for line in s.solicit() {
                            log::warn!("{line}");
                        }
                    }
                }
                _ = changed.notified() => {
                    let r = dp.refresh()?;
                    for line in r.lines() {
                        report(out, service.is_some(), Level::Info, &line)?;
                    }
                    if let Some(s) = service.as_mut() {
                        for line in s.links_changed(dp) {
                            log::info!("{line}");
                        }
                        for line in s.announce() {
                            log::info!("{line}");
                        }
                    }
                    if let Some(i) = &own
                        && r.stale.iter().any(|s| s.interface.netns == i.netns && s.interface.ifindex == i.ifindex)
                    {
                        anyhow::bail!("interface {} was deleted", i.name);
                    }
                }
                _ = keep_socket.tick(), if service.is_some() => {
                    if let Some(line) = metrics.retry().await {
                        log::info!("{line}");
                    }
                    if let Some(s) = service.as_mut() {
                        for line in s.keep_announcements() {
                            log::warn!("{line}");
                        }
                    }
                    if let Some(socket) = socket.as_mut() {
                        let path = socket.path().display().to_string();
                        match socket.keep() {
                            Ok(Kept::Unchanged) => {}
                            Ok(Kept::Rebound) => {
                                log::warn!("state socket {path} was gone; listening there again");
                            }
                            Ok(Kept::Taken) => log::warn!(
                                "state socket {path} was taken by another program; \
                                 status and reload reach this service no more"
                            ),
                            Err(e) => log::warn!("state socket {path}: {e}"),
                        }
                    }
                }
                _ = tick.tick() => {
                    let now = dp.stats()?;
                    if let Some(prev) = &last {
                        // Not an event: in the service's log only at debug.
                        report(out, service.is_some(), Level::Debug, &now.rate_line(prev, every))?;
                    }
                    last = Some(now);
                }
            }
        }
        Ok(())
    }
    .await;
    if service.is_some() {
        notifier.notify("STOPPING=1");
    }
    if let (true, Some(s)) = (detach_on_exit, &service) {
        for name in s.interfaces() {
            match dp.detach(Some(name)) {
                Ok(_) => log::info!("detached from {name}"),
                Err(e) => log::warn!("detaching {name}: {e}"),
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    drop(net_rx);
    if let Some(r) = net_reader {
        let _ = r.join();
    }
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

/// The metrics endpoint of a service, when its file names one.
#[derive(Default)]
struct Metrics {
    listener: Option<(SocketAddr, TcpListener)>,
    /// The address the file names, bound or not (a port another program
    /// holds is tried again each second).
    wanted: Option<SocketAddr>,
}

impl Metrics {
    /// Serves on `addr` from now on (or no more, for none); lines to
    /// report, with their level. An address that cannot be bound is
    /// reported, and the service goes on without metrics.
    async fn follow(&mut self, addr: Option<SocketAddr>) -> Vec<(Level, String)> {
        if self.listener.as_ref().map(|(a, _)| *a) == addr {
            return Vec::new();
        }
        self.listener = None;
        self.wanted = addr;
        let Some(addr) = addr else {
            return vec![(Level::Info, "metrics: no more served".into())];
        };
        match self.bind(addr).await {
            Ok(line) => vec![(Level::Info, line)],
            Err(e) => vec![(
                Level::Warn,
                format!(
                    "metrics: cannot serve on {addr}: {e}; going on without, trying again each second"
                ),
            )],
        }
    }

    /// Tries the wanted address again when it could not be bound; the line
    /// to report once it is.
    async fn retry(&mut self) -> Option<String> {
        match (self.wanted, &self.listener) {
            (Some(addr), None) => self.bind(addr).await.ok(),
            _ => None,
        }
    }

    async fn bind(&mut self, addr: SocketAddr) -> std::io::Result<String> {
        let l = TcpListener::bind(addr).await?;
        self.listener = Some((addr, l));
        Ok(format!("metrics: serving http://{addr}/metrics"))
    }

    /// The next connection; never, when not serving.
    async fn accept(&self) -> Option<TcpStream> {
        match &self.listener {
            Some((_, l)) => l.accept().await.ok().map(|(c, _)| c),
            None => std::future::pending().await,
        }
    }
}

/// Answers one HTTP request on `conn`: `body` for `GET /metrics`, 404 for
/// other paths, 500 when the counters could not be read. A client gets
/// two seconds to send its request.
async fn answer(mut conn: TcpStream, body: Result<String, String>) {
    let mut head = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(2), conn.read(&mut head)).await;
    let Ok(Ok(n)) = read else { return };
    let request = String::from_utf8_lossy(&head[..n]);
    let path = request.split_whitespace().nth(1).unwrap_or_default();
    let (status, text) = match (path, body) {
        ("/metrics", Ok(b)) => ("200 OK", b),
        ("/metrics", Err(e)) => ("500 Internal Server Error", format!("{e}\n")),
        _ => ("404 Not Found", "try /metrics\n".to_string()),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.write_all(reply.as_bytes())).await;
}

/// What a service run holds beside the data plane.
struct Served {
    service: Option<Service>,
    socket: Option<StateSocket>,
    pin: PathBuf,
}

/// Has `service` re-read its file (SIGHUP, `anycast reload`), follows its
/// log level and metrics address, and logs each line (a refused file as a
/// warning).
async fn reload(
    service: &mut Service,
    dp: &mut Dataplane,
    metrics: &mut Metrics,
    notifier: &Notifier,
) -> anyhow::Result<Reloaded> {
    notifier.reloading();
    let mut r = service.reload(dp);
    r.lines.extend(service.announce());
    notifier.notify("READY=1");
    let level = if r.applied { Level::Info } else { Level::Warn };
    let mut lines: Vec<(Level, String)> = r.lines.drain(..).map(|l| (level, l)).collect();
    lines.extend(logging::apply(service.log_level()).map(|l| (Level::Info, l)));
    lines.extend(metrics.follow(service.metrics_addr()).await);
    for (level, line) in lines {
        log::log!(level, "{line}");
        r.lines.push(line);
    }
    Ok(r)
}

/// Reports an event of `anycast run`: a line of its output, or, when it is
/// the service, a record of its log at `level` (which goes to the same
/// output, when the level lets it). A log line that cannot be written is
/// dropped: a service does not end because its output was closed.
fn report(out: &mut impl Write, service: bool, level: Level, line: &str) -> anyhow::Result<()> {
    if service {
        log::log!(level, "{line}");
    } else {
        say!(out, "{line}");
    }
    Ok(())
}

/// On SIGTERM or SIGINT: withdraws every announced prefix (logged) and
/// sets when forwarding stops (after the drain time); whether to end now
/// (nothing was announced, no service, or a second signal).
fn stop_announcing(
    service: &mut Option<Service>,
    stopping: &mut Option<tokio::time::Instant>,
) -> bool {
    if stopping.is_some() {
        return true;
    }
    let Some(s) = service.as_mut() else {
        return true;
    };
    let (lines, drain) = s.withdraw_all();
    for line in lines {
        log::info!("{line}");
    }
    match drain {
        Some(d) if !d.is_zero() => {
            log::info!(
                "stopping: withdrawn, forwarding for the drain time ({:.1} s) before exiting",
                d.as_secs_f64()
            );
            *stopping = Some(tokio::time::Instant::now() + d);
            false
        }
        _ => true,
    }
}

/// Waits until `at`; never, without one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The next tick of `interval`; never, without one.
async fn next_tick(interval: &mut Option<tokio::time::Interval>) -> Option<()> {
    match interval {
        Some(i) => {
            i.tick().await;
            Some(())
        }
        None => std::future::pending().await,
    }
}

/// The next client of the state socket; never, without one. Safe to
/// cancel: the request is read after `select!` chose this branch.
async fn next_client(socket: &Option<StateSocket>) -> Option<tokio::net::UnixStream> {
    match socket {
        Some(s) => s.accept().await,
        None => std::future::pending().await,
    }
}
