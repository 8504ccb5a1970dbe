//! `anycast`: the command line of the anycast data plane.
//!
//! Every command edits the pinned maps of the running data plane; nothing
//! here has to keep running for packets to be filtered, except `run`, which
//! attaches, prints live counters, and detaches on Ctrl-C (or SIGTERM,
//! SIGHUP, a closed output, an error), and `run --config FILE`, the service
//! that keeps the file applied and acts on the members' health checks.
//!
//! A closed output (`anycast addr list | head -1`) ends the printing, not
//! in a panic: the exit status is 0, as the reader chose to stop reading
//! (and a change was made, whole, before anything was printed).

mod cli;
mod explain;
mod manual;
mod print;

use std::{
    io::{self, Write},
    path::Path,
    process::ExitCode,
    time::Duration,
};

use anycast::{
    AnycastPrefix, Dataplane, Error, GroupName, MemberName, PinDir,
    addr::{parse_address_list, parse_anycast, parse_unicast},
    config::{self, Config},
    dataplane::StateSizes,
    dataplane::require_root,
    error::Endpoint,
    group::GroupOptions,
    members::{self, MemberVia},
    netns,
    reconcile::{ApplyOptions, ChangeAction, Tally},
    service::socket::{Reloaded, Request, Status, ask, socket_path},
    state::AddOutcome,
};
use anycast_common::{Affinity, Fallback, MemberState};
use anyhow::Context as _;
use clap::Parser;

use crate::cli::{
    AddrCommand, Cli, Command, ConfigCommand, FlowsCommand, GroupCommand, MemberCommand,
};

/// Standard output failed (the command's report, not the command).
#[derive(Debug, thiserror::Error)]
#[error("writing to standard output: {0}")]
struct OutputError(#[source] io::Error);

/// `writeln!` to the command's output; a failure is an [`OutputError`].
macro_rules! say {
    ($out:expr) => {
        writeln!($out).map_err(OutputError)?
    };
    ($out:expr, $($arg:tt)*) => {
        writeln!($out, $($arg)*).map_err(OutputError)?
    };
}

mod doctor;
mod run;
mod subnet;
mod trace;

fn main() -> ExitCode {
    let cli = Cli::try_parse().unwrap_or_else(|e| usage_error(e));
    init_logger(matches!(&cli.command, Command::Run(a) if a.config.is_some()));
    let changes = cli.command.changes_state();
    // Not locked for the whole command: the service's log goes to standard
    // output too, from any thread.
    let mut out = io::stdout();
    let result = run(cli, &mut out).and_then(|()| out.flush().map_err(|e| OutputError(e).into()));
    // Standard error may be closed too: nothing to report that on.
    let mut err = io::stderr().lock();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<OutputError>() {
            // The reader went away (`anycast addr list | head -1`): it
            // chose to read no more. Whatever the command changed stays
            // changed and it succeeded; `run` has detached.
            Some(OutputError(io)) if io.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            // The report could not be written (a full disk...): a change
            // was made all the same, a listing was not delivered.
            Some(OutputError(io)) if changes => {
                let _ = writeln!(
                    err,
                    "anycast: warning: done, but its report was not written: {io}"
                );
                ExitCode::SUCCESS
            }
            _ => {
                let _ = writeln!(err, "anycast: error: {}", one_message(&e));
                ExitCode::FAILURE
            }
        },
    }
}

/// The logger: `RUST_LOG` when set, else `warn` for a command. The service
/// (`run --config`) logs its events to standard output (its report, and the
/// journal under systemd), one line each, at the level of its file
/// ([`anycast::service::logging`]), which it can change on reload: the
/// logger then lets everything through and the `log` crate's maximum level
/// filters.
fn init_logger(service: bool) {
    let mut b = env_logger::Builder::new();
    if anycast::service::logging::rust_log_is_set() {
        b.parse_env("RUST_LOG");
    } else {
        b.filter_level(log::LevelFilter::Trace);
    }
    if service {
        b.target(env_logger::Target::Stdout);
    }
    b.format(|buf, record| {
        let level = record.level().to_string().to_lowercase();
        writeln!(buf, "anycast: {level}: {}", record.args())
    })
    .init();
    if !anycast::service::logging::rust_log_is_set() {
        log::set_max_level(if service {
            anycast::service::logging::SERVICE_DEFAULT.filter()
        } else {
            log::LevelFilter::Warn
        });
    }
}

/// Exits on a command-line error as clap would, but with every argument
/// that is long or holds control characters quoted as the library's errors
/// quote bad input (at most 80 characters, control characters escaped).
fn usage_error(e: clap::Error) -> ! {
    if !e.use_stderr() {
        e.exit(); // --help, --version
    }
    // With clap's styling, which leaves the arguments as they were typed.
    let mut msg = e.render().ansi().to_string();
    for arg in std::env::args_os().skip(1) {
        let arg = arg.to_string_lossy();
        let shown = anycast::error::quote(&arg);
        if shown != arg {
            msg = msg.replace(arg.as_ref(), &shown);
        }
    }
    eprint!("{}", without_styling(&msg));
    std::process::exit(e.exit_code())
}

/// `s` without ANSI escape sequences (`ESC [ ... final byte`).
fn without_styling(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

/// An error and its causes on one line, `a: b: c`, leaving out a cause
/// that the message before it already says (many errors quote their cause).
fn one_message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn run(cli: Cli, out: &mut impl Write) -> anyhow::Result<()> {
    if let Some(ns) = &cli.netns {
        // Before any other thread exists: setns moves only the calling thread.
        netns::enter(ns)?;
    }
    let pin = PinDir::new(&cli.pin_dir);
    let ft = &StateSizes::from_options(cli.max_addresses, cli.flow_table_size, cli.max_prefixes);
    match cli.command {
        Command::Attach(args) => {
            let (_, i) = Dataplane::create_and_attach(pin, ft, &args.iface, args.how.options())?;
            say!(
                out,
                "attached to {} (ifindex {}): role {}, source action {}, mode {}",
                i.name,
                i.ifindex,
                i.role,
                i.source_action,
                i.mode
            );
        }
        Command::Detach { iface, purge } => {
            require_root("detaching")?;
            let dp = match Dataplane::open(pin.clone()) {
                Ok(dp) => dp,
                Err(anycast::Error::NotConfigured(_)) => {
                    say!(out, "nothing pinned at {}", cli.pin_dir.display());
                    return Ok(());
                }
                // Another build's state, or a damaged one, cannot be
                // opened; --purge is how to start afresh.
                Err(
                    anycast::Error::IncompatibleState { .. } | anycast::Error::PartialState { .. },
                ) if purge && iface.is_none() => {
                    let purged = Dataplane::purge_unopenable(pin)?;
                    return print::purged(out, &cli.pin_dir, &purged).map_err(output);
                }
                Err(e) => return Err(e.into()),
            };
            let mut dp = dp;
            let done = dp.detach(iface.as_deref())?;
            if done.is_empty() {
                say!(out, "no interface was attached");
            }
            for name in &done {
                say!(out, "detached from {name}");
            }
            if purge {
                let purged = dp.purge()?;
                print::purged(out, &cli.pin_dir, &purged).map_err(output)?;
            }
        }
        Command::Addr(AddrCommand::Add {
            addr,
            group,
            scope: Some(scope),
        }) => subnet::add_scoped(pin, ft, &addr, &group, &scope, out)?,
        Command::Addr(AddrCommand::Add {
            addr,
            group,
            scope: None,
        }) => {
            let p = parse_anycast(&addr)?;
            let group = GroupName::new(&group)?;
            let (_, added) =
                Dataplane::open_or_create_then(pin, ft, |dp| dp.add_address(p, &group))?;
            match added {
                AddOutcome::Added => say!(out, "added {p} to group {group}"),
                AddOutcome::AlreadyPresent => say!(out, "{p} is already in group {group}"),
                AddOutcome::Unscoped(was) => say!(
                    out,
                    "{p} is in group {group}, now reached from every interface (its scope was {})",
                    was.join(", ")
                ),
            }
        }
        Command::Subnet(cmd) => subnet::command(pin, ft, cmd, out)?,
        Command::Addr(AddrCommand::Load { file, group }) => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let list = parse_address_list(&text).map_err(|e| {
                anyhow::Error::new(e.error).context(format!("{} line {}", file.display(), e.line))
            })?;
            let group = GroupName::new(&group)?;
            let start = std::time::Instant::now();
            let (_, added) =
                Dataplane::open_or_create_then(pin, ft, |dp| dp.load_addresses(&list, &group))?;
            say!(
                out,
                "added {added} of {} entries to group {group} in {:.2?}",
                list.len(),
                start.elapsed()
            );
        }
        Command::Addr(AddrCommand::Del { addr }) => {
            let p: AnycastPrefix = addr.parse()?;
            let mut dp = Dataplane::open(pin)?;
            let freed = dp.del_address(p)?;
            say!(out, "deleted {p}");
            print_freed(out, freed)?;
        }
        Command::Addr(AddrCommand::List { json }) => {
            let dp = Dataplane::open(pin)?;
            let list = dp.addresses()?;
            if json {
                say!(out, "{}", serde_json::to_string_pretty(&list)?);
            } else {
                print::addresses(out, &list).map_err(output)?;
            }
        }
        Command::Member(cmd) => member_command(pin, ft, cmd, out)?,
        Command::Group(GroupCommand::List { json }) => {
            let list = Dataplane::open(pin)?.groups()?;
            if json {
                say!(out, "{}", serde_json::to_string_pretty(&list)?);
            } else {
                print::groups(out, &list).map_err(output)?;
            }
        }
        Command::Group(GroupCommand::Del { name, force }) => {
            let (addresses, members) = Dataplane::open(pin)?.del_group(&name, force)?;
            say!(
                out,
                "deleted group {name} ({addresses} addresses, {members} members)"
            );
        }
        Command::Group(GroupCommand::Set {
            name,
            fallback,
            tunnel_source,
            affinity,
            flow_timeout,
            flow_timeout_other,
            table_size,
        }) => {
            let name = GroupName::new(&name)?;
            let options = GroupOptions {
                fallback: fallback.map(Fallback::from),
                tunnel_source: tunnel_source
                    .as_deref()
                    .map(|a| parse_unicast(a, Endpoint::TunnelSource))
                    .transpose()?,
                affinity: affinity.map(Affinity::from),
                tcp_timeout: flow_timeout,
                other_timeout: flow_timeout_other,
                table_size,
            };
            if options.is_empty() {
                anyhow::bail!("nothing to change: give at least one option (see --help)");
            }
            let mut dp = Dataplane::open(pin)?;
            dp.set_group(&name, &options)?;
            say!(out, "group {name} updated");
        }
        Command::Flows(cmd) => flows_command(pin, cmd, out)?,
        Command::Config(cmd) => config_command(pin, ft.clone(), cmd, out)?,
        Command::Repair { check, json } => {
            let (mut dp, recreated) = Dataplane::open_repairing(pin, !check, ft)?;
            if !recreated.is_empty() {
                log::warn!(
                    "these maps were missing and are recreated empty (what they held is lost;                      `config apply` or the commands that filled them fill them again): {}",
                    recreated.join(", ")
                );
            }
            let report = dp.repair(!check)?;
            if json {
                say!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&print::versioned(&report))?
                );
            } else if report.is_clean() {
                say!(out, "{report}");
            } else if check {
                say!(out, "inconsistent: {report}; `anycast repair` rebuilds it");
            } else {
                say!(out, "repaired: {report}");
            }
            if check && !report.is_clean() {
                return Err(anyhow::anyhow!("the pinned state needs repair"));
            }
        }
        Command::Stats { json } => {
            let dp = Dataplane::open(pin)?;
            let report = print::Report {
                interfaces: dp.interfaces()?,
                stats: dp.stats()?,
                flow_table: dp.flows(None, 0)?.0,
                members: dp.members(None)?,
                maps: dp.map_memory()?,
            };
            if json {
                say!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&print::versioned(&report))?
                );
            } else {
                let here = netns::current()?.ino;
                print::report(out, &report, here).map_err(output)?;
            }
        }
        Command::Run(args) => run::run(pin, ft, &args, out)?,
        Command::Doctor(args) => doctor::doctor(&pin, &args, out)?,
        Command::Explain(args) => explain::explain(pin, &args, out)?,
        Command::Trace(args) => trace::trace(pin, &args, out)?,
        Command::Status { json, socket } => {
            let path = socket.unwrap_or_else(|| socket_path(pin.path()));
            let answer = ask(&path, Request::Status, Duration::from_secs(5))?;
            let status: Status = serde_json::from_str(&answer)
                .with_context(|| format!("reading the service's answer: {answer}"))?;
            if json {
                say!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&print::versioned(&status))?
                );
            } else {
                print::status(out, &status).map_err(output)?;
            }
        }
        Command::Reload { socket } => {
            let path = socket.unwrap_or_else(|| socket_path(pin.path()));
            // A reload applies a whole file: give it time.
            let answer = ask(&path, Request::Reload, Duration::from_secs(120))?;
            let r: Reloaded = serde_json::from_str(&answer)
                .with_context(|| format!("reading the service's answer: {answer}"))?;
            if !r.applied {
                anyhow::bail!("{}", r.lines.join("; "));
            }
            for line in &r.lines {
                say!(out, "{line}");
            }
        }
        Command::Completions { shell } => manual::completions(shell, out).map_err(output)?,
        Command::Man { out: None } => manual::man_page(out).map_err(output)?,
        Command::Man { out: Some(dir) } => {
            for page in manual::man_pages(&dir)? {
                say!(out, "wrote {}", page.display());
            }
        }
        Command::Maintenance {
            state,
            no_wait,
            socket,
        } => {
            let path = socket.unwrap_or_else(|| socket_path(pin.path()));
            let on = state == cli::OnOff::On;
            maintenance(out, &path, on, no_wait)?;
        }
    }
    Ok(())
}

/// `anycast maintenance on|off`: asks the service, prints its lines, and
/// (on, unless `no_wait`) waits for the drain time and says drained.
fn maintenance(out: &mut impl Write, path: &Path, on: bool, no_wait: bool) -> anyhow::Result<()> {
    use anycast::service::announce::MaintenanceAnswer;
    let answer = ask(path, Request::Maintenance(on), Duration::from_secs(10))?;
    let r: MaintenanceAnswer = serde_json::from_str(&answer)
        .with_context(|| format!("reading the service's answer: {answer}"))?;
    for line in &r.lines {
        say!(out, "{line}");
    }
    if !on || no_wait {
        return Ok(());
    }
    std::thread::sleep(Duration::from_secs_f64(r.drain_left));
    // The service says when the drain time has passed (its clock decides);
    // asked a few times at most.
    for _ in 0..50 {
        let answer = ask(path, Request::Status, Duration::from_secs(5))?;
        let status: Status = serde_json::from_str(&answer)
            .with_context(|| format!("reading the service's answer: {answer}"))?;
        if !status.announcements.maintenance {
            anyhow::bail!("maintenance was turned off before the node was drained");
        }
        if status.announcements.drained {
            say!(
                out,
                "drained: nothing announced, running flows had the drain time to finish"
            );
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("the service did not report the node drained")
}

/// An [`OutputError`] as the commands return it.
fn output(e: io::Error) -> anyhow::Error {
    OutputError(e).into()
}

/// Reads and validates a configuration file; its errors name the file.
fn load_config(file: &Path) -> anyhow::Result<Config> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    Config::parse(&text).map_err(|e| in_file(file, e.into()))
}

/// A configuration error (which names a line) prefixed with its file.
fn in_file(file: &Path, e: anycast::Error) -> anyhow::Error {
    match e {
        anycast::Error::Config(_) => anyhow::Error::new(e).context(file.display().to_string()),
        e => e.into(),
    }
}

fn config_command(
    pin: PinDir,
    sizes: StateSizes,
    cmd: ConfigCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Check { file } => {
            let cfg = load_config(&file)?;
            cfg.check(&mut MemberVia::resolve_offline)
                .map_err(|e| in_file(&file, e))?;
            write!(out, "{}: valid; {cfg}", file.display()).map_err(output)?;
            say!(
                out,
                "not checked without the pinned state (`config apply --dry-run` as root checks them):"
            );
            for rule in config::NEEDS_THE_PINNED_STATE {
                say!(out, "  {rule}");
            }
        }
        ConfigCommand::Apply {
            file,
            dry_run,
            allow_empty,
            force,
        } => {
            let cfg = load_config(&file)?;
            let sizes = sizes
                .with_file(&cfg.state, &file.display().to_string())
                .map_err(|e| in_file(&file, e))?;
            let start = std::time::Instant::now();
            let opts = ApplyOptions {
                dry_run,
                allow_empty,
                force,
            };
            let result = if dry_run {
                Dataplane::open(pin.clone()).and_then(|mut dp| {
                    dp.check_sizes(&sizes)?;
                    dp.apply_config(&cfg, opts)
                })
            } else {
                Dataplane::open_or_create_then(pin.clone(), &sizes, |dp| {
                    dp.apply_config(&cfg, opts)
                })
                .map(|(_, c)| c)
            };
            let changes = match result {
                Ok(c) => c,
                Err(e @ (Error::EmptyConfig { .. } | Error::RemovesMostAddresses { .. })) => {
                    // Say what would go; the error says how to let it.
                    let dry = ApplyOptions {
                        dry_run: true,
                        ..opts
                    };
                    if let Ok(mut dp) = Dataplane::open(pin) {
                        for c in dp.apply_config(&cfg, dry)? {
                            if c.action == ChangeAction::Removed {
                                say!(out, "would have {c}");
                            }
                        }
                    }
                    return Err(in_file(&file, e));
                }
                Err(e) => return Err(in_file(&file, e)),
            };
            // Applied already: printing comes after the change, whole.
            for c in &changes {
                say!(out, "{}{c}", if dry_run { "would have " } else { "" });
            }
            say!(
                out,
                "{} {}: {}{}",
                if dry_run { "checked" } else { "applied" },
                file.display(),
                Tally::of(&changes),
                if dry_run {
                    " (dry run: nothing changed)".to_string()
                } else {
                    format!(" in {:.2?}", start.elapsed())
                }
            );
        }
    }
    Ok(())
}

fn flows_command(pin: PinDir, cmd: FlowsCommand, out: &mut impl Write) -> anyhow::Result<()> {
    match cmd {
        FlowsCommand::List { group, limit, json } => {
            let dp = Dataplane::open(pin)?;
            let (table, flows) = dp.flows(group.as_deref(), limit)?;
            if json {
                let report = print::FlowsReport {
                    flow_table: &table,
                    flows: &flows,
                };
                say!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&print::versioned(&report))?
                );
            } else {
                print::flows(out, &table, &flows).map_err(output)?;
            }
        }
        FlowsCommand::Flush { group } => {
            let mut dp = Dataplane::open(pin)?;
            let n = dp.flush_flows(group.as_deref())?;
            say!(out, "forgot {n} flows");
        }
        FlowsCommand::Guard { rate } => {
            let mut dp = Dataplane::open(pin)?;
            if let Some(r) = rate {
                dp.set_flood_rate(r)?;
            }
            match dp.flood_rate()? {
                0 => say!(out, "flood guard off: every new flow is recorded"),
                r => say!(
                    out,
                    "flood guard: at most {r} new flows recorded per second per CPU"
                ),
            }
        }
    }
    Ok(())
}

fn member_command(
    pin: PinDir,
    sizes: &StateSizes,
    cmd: MemberCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match cmd {
        MemberCommand::Add {
            group,
            name,
            iface,
            mac,
            encap,
            metric,
            weight,
        } => {
            let group = GroupName::new(&group)?;
            let name = MemberName::new(&name)?;
            let via = MemberVia::from_args(iface, mac.as_deref(), encap.as_deref())?;
            let weight = members::weight(weight)?;
            let (_, id) = Dataplane::open_or_create_then(pin, sizes, |dp| {
                dp.add_member(&group, &name, via, metric, weight)
            })?;
            say!(
                out,
                "added member {name} (id {id}) to group {group}, metric {metric}"
            );
        }
        MemberCommand::Set {
            group,
            name,
            metric,
            up,
            down,
            drain,
            weight,
        } => {
            let state = match (up, down, drain) {
                (true, _, _) => Some(MemberState::Up),
                (_, true, _) => Some(MemberState::Down),
                (_, _, true) => Some(MemberState::Draining),
                _ => None,
            };
            if metric.is_none() && state.is_none() && weight.is_none() {
                anyhow::bail!(
                    "nothing to change: give --metric N, --weight N, --up, --down or --drain"
                );
            }
            let weight = weight.map(members::weight).transpose()?;
            let mut dp = Dataplane::open(pin)?;
            dp.set_member(&group, &name, metric, state, weight)?;
            say!(out, "member {name} of group {group} updated");
        }
        MemberCommand::Del { group, name } => {
            let mut dp = Dataplane::open(pin)?;
            let freed = dp.del_member(&group, &name)?;
            say!(out, "deleted member {name} from group {group}");
            print_freed(out, freed)?;
        }
        MemberCommand::List { group, json } => {
            let dp = Dataplane::open(pin)?;
            let list = dp.members(group.as_deref())?;
            if json {
                say!(out, "{}", serde_json::to_string_pretty(&list)?);
            } else {
                print::members(out, &list).map_err(output)?;
            }
        }
    }
    Ok(())
}

/// Says that a group was deleted with its last address or member.
fn print_freed(out: &mut impl Write, group: Option<String>) -> anyhow::Result<()> {
    if let Some(g) = group {
        say!(
            out,
            "deleted group {g}: it had no address and no member left"
        );
    }
    Ok(())
}
