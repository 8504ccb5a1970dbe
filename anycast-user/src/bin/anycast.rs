//! `anycast`: the command line of the anycast data plane.
//!
//! Every command edits the pinned maps of the running data plane; nothing
//! here has to keep running for packets to be filtered, except `run`, which
//! attaches, prints live counters, and detaches on Ctrl-C.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anycast::{
    AnycastPrefix, AttachMode, AttachOptions, DEFAULT_PIN_DIR, Dataplane, Interface, PinDir,
    dataplane::require_root,
    netns,
    state::{AddOutcome, Stats},
};
use anycast_common::{IfaceRole, SourceAction};
use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

/// IPv6 anycast filter and redirector (XDP).
///
/// Anycast addresses live in unicast space, so local configuration says which
/// addresses are anycast. On `edge` interfaces, packets that use one as their
/// source are dropped (or counted, in monitor mode).
#[derive(Parser, Debug)]
#[command(name = "anycast", version, propagate_version = true)]
struct Cli {
    /// Directory on bpffs where maps and links are pinned, e.g. /sys/fs/bpf/anycast-lab.
    #[arg(long, global = true, env = "ANYCAST_PIN_DIR", default_value = DEFAULT_PIN_DIR)]
    pin_dir: PathBuf,
    /// Run in this network namespace (a name under /run/netns, or a path), e.g. --netns router.
    #[arg(long, global = true, value_name = "NAME")]
    netns: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Attach the data plane to an interface, e.g. `anycast attach eth0 --role edge`.
    Attach(AttachArgs),
    /// Detach from IFACE, or from every interface; maps stay until --purge.
    Detach {
        /// Interface to detach, e.g. eth0; all when omitted.
        iface: Option<String>,
        /// Also remove every pinned map (only once nothing is attached).
        #[arg(long)]
        purge: bool,
    },
    /// Manage anycast addresses and prefixes.
    #[command(subcommand)]
    Addr(AddrCommand),
    /// Show counters, summed over CPUs, e.g. `anycast stats --json`.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Attach, print live counters until Ctrl-C, then detach, e.g. `anycast run eth0`.
    Run {
        #[command(flatten)]
        attach: AttachArgs,
        /// Seconds between two lines of counters.
        #[arg(long, default_value_t = 1)]
        interval: u64,
    },
}

#[derive(Args, Debug)]
struct AttachArgs {
    /// Interface, e.g. eth0.
    iface: String,
    /// `edge` drops anycast-sourced packets; `member` faces the group's members.
    #[arg(long, value_enum, default_value_t = Role::Edge)]
    role: Role,
    /// `drop` anycast-sourced packets, or only `count` them (monitor mode).
    #[arg(long, value_enum, default_value_t = Action::Drop)]
    source_action: Action,
    /// XDP mode: `native` (driver), `skb` (generic) or `auto`.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum AddrCommand {
    /// Add an anycast address or prefix, e.g. `anycast addr add 2001:db8::53 --group dns`.
    Add {
        /// Address (ADDR or ADDR/128) or prefix (ADDR/LEN), e.g. 2001:db8:a::/48.
        addr: String,
        /// Group the address belongs to (created when new), e.g. dns.
        #[arg(long)]
        group: String,
    },
    /// Delete an anycast address or prefix, e.g. `anycast addr del 2001:db8::53`.
    Del {
        /// Address or prefix, as added.
        addr: String,
    },
    /// List anycast addresses and prefixes with their groups.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Role {
    Edge,
    Member,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Action {
    Drop,
    Count,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    Auto,
    Native,
    Skb,
}

impl AttachArgs {
    fn options(&self) -> AttachOptions {
        AttachOptions {
            role: match self.role {
                Role::Edge => IfaceRole::Edge,
                Role::Member => IfaceRole::Member,
            },
            source_action: match self.source_action {
                Action::Drop => SourceAction::Drop,
                Action::Count => SourceAction::Count,
            },
            mode: match self.mode {
                Mode::Auto => AttachMode::Auto,
                Mode::Native => AttachMode::Native,
                Mode::Skb => AttachMode::Skb,
            },
        }
    }
}

/// `stats --json`: interfaces and counters.
#[derive(Serialize)]
struct Report {
    interfaces: Vec<Interface>,
    #[serde(flatten)]
    stats: Stats,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("anycast: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(ns) = &cli.netns {
        // Before any other thread exists: setns moves only the calling thread.
        netns::enter(ns)?;
    }
    let pin = PinDir::new(&cli.pin_dir);
    match cli.command {
        Command::Attach(args) => {
            let mut dp = Dataplane::open_or_create(pin)?;
            let i = dp.attach(&args.iface, args.options())?;
            println!(
                "attached to {} (ifindex {}): role {}, source action {}, mode {}",
                i.name, i.ifindex, i.role, i.source_action, i.mode
            );
        }
        Command::Detach { iface, purge } => {
            require_root("detaching")?;
            if !pin.exists() {
                println!("nothing pinned at {}", cli.pin_dir.display());
                return Ok(());
            }
            let mut dp = Dataplane::open(pin)?;
            let done = dp.detach(iface.as_deref())?;
            for name in &done {
                println!("detached from {name}");
            }
            if purge {
                dp.purge()?;
                println!("removed the maps pinned at {}", cli.pin_dir.display());
            }
        }
        Command::Addr(AddrCommand::Add { addr, group }) => {
            let p: AnycastPrefix = addr.parse()?;
            anycast::state::validate_group_name(&group)?;
            let mut dp = Dataplane::open_or_create(pin)?;
            match dp.add_address(p, &group)? {
                AddOutcome::Added => println!("added {p} to group {group}"),
                AddOutcome::AlreadyPresent => println!("{p} is already in group {group}"),
            }
        }
        Command::Addr(AddrCommand::Del { addr }) => {
            let p: AnycastPrefix = addr.parse()?;
            let mut dp = Dataplane::open(pin)?;
            dp.del_address(p)?;
            println!("deleted {p}");
        }
        Command::Addr(AddrCommand::List { json }) => {
            let dp = Dataplane::open(pin)?;
            let list = dp.addresses()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!("{:<44} GROUP", "ADDRESS");
                for e in list {
                    println!("{:<44} {}", e.prefix.to_string(), e.group);
                }
            }
        }
        Command::Stats { json } => {
            let dp = Dataplane::open(pin)?;
            let report = Report {
                interfaces: dp.interfaces()?,
                stats: dp.stats()?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_report(&report);
            }
        }
        Command::Run { attach, interval } => {
            let mut dp = Dataplane::open_or_create(pin)?;
            let i = dp.attach(&attach.iface, attach.options())?;
            println!(
                "attached to {} ({} / {} / {}); Ctrl-C detaches",
                i.name, i.role, i.source_action, i.mode
            );
            let watched = watch(&dp, Duration::from_secs(interval.max(1)));
            let detached = dp.detach(Some(&i.name));
            watched?;
            detached?;
            println!("detached from {}", i.name);
        }
    }
    Ok(())
}

/// Prints one line of counters per interval until SIGINT or SIGTERM.
fn watch(dp: &Dataplane, every: Duration) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let mut tick = tokio::time::interval(every);
        let mut last: Option<Stats> = None;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = tick.tick() => {
                    let now = dp.stats()?;
                    if let Some(prev) = &last {
                        println!("{}", rate_line(prev, &now, every));
                    }
                    last = Some(now);
                }
            }
        }
        Ok(())
    })
}

fn rate_line(prev: &Stats, now: &Stats, every: Duration) -> String {
    let secs = every.as_secs_f64();
    let names = [
        "unicast_passed",
        "anycast_source_drops",
        "anycast_source_counted",
        "anycast_destined",
        "malformed_passed",
        "non_ipv6_passed",
    ];
    names
        .iter()
        .map(|n| {
            let d =
                now.global.get(n).copied().unwrap_or(0) - prev.global.get(n).copied().unwrap_or(0);
            format!("{n} {:.0}/s", d as f64 / secs)
        })
        .collect::<Vec<_>>()
        .join("  ")
}

fn print_report(r: &Report) {
    println!("interfaces:");
    if r.interfaces.is_empty() {
        println!("  (none attached)");
    }
    for i in &r.interfaces {
        println!(
            "  {:<16} ifindex {:<5} role {:<7} source-action {:<6} mode {}",
            i.name, i.ifindex, i.role, i.source_action, i.mode
        );
    }
    println!("global:");
    for (name, v) in &r.stats.global {
        println!("  {name:<24} {v}");
    }
    println!("groups:");
    if r.stats.groups.is_empty() {
        println!("  (none)");
    }
    for (name, g) in &r.stats.groups {
        let counters: Vec<String> = g.counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!(
            "  {name:<16} addresses {:<4} {}",
            g.addresses,
            counters.join("  ")
        );
    }
}
