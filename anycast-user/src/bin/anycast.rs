//! `anycast`: the command line of the anycast data plane.
//!
//! Every command edits the pinned maps of the running data plane; nothing
//! here has to keep running for packets to be filtered, except `run`, which
//! attaches, prints live counters, and detaches on Ctrl-C.

use std::{net::Ipv6Addr, path::PathBuf, process::ExitCode, time::Duration};

use anycast::{
    AnycastPrefix, AttachMode, AttachOptions, DEFAULT_PIN_DIR, Dataplane, Interface, PinDir,
    dataplane::{MemberVia, require_root},
    members::MemberEntry,
    netns,
    state::{AddOutcome, Stats},
};
use anycast_common::{Fallback, IfaceRole, SourceAction};
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
    /// Manage the members of anycast groups (where their traffic goes).
    #[command(subcommand)]
    Member(MemberCommand),
    /// Manage group settings.
    #[command(subcommand)]
    Group(GroupCommand),
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

#[derive(Subcommand, Debug)]
enum MemberCommand {
    /// Add a member, on-link or routed, e.g.
    /// `anycast member add dns m1 --iface eth1 --mac 02:00:00:00:00:01 --metric 10` or
    /// `anycast member add dns far --encap 2001:db8:f::2 --metric 20`.
    Add {
        /// Group, e.g. dns (created when new).
        group: String,
        /// Member name, unique in the group, e.g. m1.
        name: String,
        /// On-link: the interface the member is reached through, e.g. eth1.
        #[arg(long, requires = "mac", conflicts_with = "encap")]
        iface: Option<String>,
        /// On-link: the member's MAC, e.g. 02:00:00:00:00:01.
        #[arg(long, requires = "iface")]
        mac: Option<String>,
        /// Routed: the member's unicast address, reached by IPv6-in-IPv6, e.g. 2001:db8:f::2.
        #[arg(long)]
        encap: Option<String>,
        /// Metric: lower is nearer; the nearest live members get the traffic.
        #[arg(long, default_value_t = 100)]
        metric: u32,
    },
    /// Change a member's metric or state, e.g. `anycast member set dns m1 --metric 30 --down`.
    Set {
        /// Group, e.g. dns.
        group: String,
        /// Member name, e.g. m1.
        name: String,
        /// New metric.
        #[arg(long)]
        metric: Option<u32>,
        /// Mark the member up (it may get traffic).
        #[arg(long, conflicts_with = "down")]
        up: bool,
        /// Mark the member down (it gets no new traffic).
        #[arg(long)]
        down: bool,
    },
    /// Remove a member, e.g. `anycast member del dns m1`.
    Del {
        /// Group, e.g. dns.
        group: String,
        /// Member name, e.g. m1.
        name: String,
    },
    /// List members with their metric, state and counters.
    List {
        /// Only this group, e.g. dns.
        group: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum GroupCommand {
    /// Set what a group does with no live member, and the outer source of its
    /// encapsulated packets, e.g. `anycast group set dns --fallback drop --tunnel-source 2001:db8::1`.
    Set {
        /// Group, e.g. dns (created when new).
        name: String,
        /// `pass`: the kernel routes the packet (default); `drop`: drop it.
        #[arg(long, value_enum)]
        fallback: Option<FallbackArg>,
        /// Outer source address for encapsulated members (default: chosen by the kernel's route).
        #[arg(long)]
        tunnel_source: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FallbackArg {
    Pass,
    Drop,
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

/// `stats --json`: interfaces, counters, and members with theirs.
#[derive(Serialize)]
struct Report {
    interfaces: Vec<Interface>,
    #[serde(flatten)]
    stats: Stats,
    members: Vec<MemberEntry>,
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
        Command::Member(cmd) => member_command(pin, cmd)?,
        Command::Group(GroupCommand::Set {
            name,
            fallback,
            tunnel_source,
        }) => {
            let tunnel_source = tunnel_source.as_deref().map(parse_unicast).transpose()?;
            anycast::state::validate_group_name(&name)?;
            let fallback = fallback.map(|f| match f {
                FallbackArg::Pass => Fallback::Pass,
                FallbackArg::Drop => Fallback::Drop,
            });
            let mut dp = Dataplane::open_or_create(pin)?;
            dp.set_group(&name, fallback, tunnel_source)?;
            println!("group {name} updated");
        }
        Command::Stats { json } => {
            let dp = Dataplane::open(pin)?;
            let report = Report {
                interfaces: dp.interfaces()?,
                stats: dp.stats()?,
                members: dp.members(None)?,
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

/// A unicast IPv6 address from the command line.
fn parse_unicast(s: &str) -> anyhow::Result<Ipv6Addr> {
    let p: AnycastPrefix = s.parse()?;
    if !p.is_exact() {
        anyhow::bail!("`{s}` is a prefix; an address is needed here");
    }
    Ok(p.addr)
}

fn member_command(pin: PinDir, cmd: MemberCommand) -> anyhow::Result<()> {
    match cmd {
        MemberCommand::Add {
            group,
            name,
            iface,
            mac,
            encap,
            metric,
        } => {
            anycast::state::validate_group_name(&group)?;
            anycast::members::validate_member_name(&name)?;
            let via = match (iface, mac, encap) {
                (Some(iface), Some(mac), None) => MemberVia::L2 {
                    iface,
                    mac: anycast::members::parse_mac(&mac)?,
                },
                (None, None, Some(addr)) => MemberVia::Encap(parse_unicast(&addr)?),
                _ => return Err(anycast::Error::MemberVia.into()),
            };
            let mut dp = Dataplane::open_or_create(pin)?;
            let id = dp.add_member(&group, &name, via, metric)?;
            println!("added member {name} (id {id}) to group {group}, metric {metric}");
        }
        MemberCommand::Set {
            group,
            name,
            metric,
            up,
            down,
        } => {
            let state = match (up, down) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            if metric.is_none() && state.is_none() {
                anyhow::bail!("nothing to change: give --metric N, --up or --down");
            }
            let mut dp = Dataplane::open(pin)?;
            dp.set_member(&group, &name, metric, state)?;
            println!("member {name} of group {group} updated");
        }
        MemberCommand::Del { group, name } => {
            let mut dp = Dataplane::open(pin)?;
            dp.del_member(&group, &name)?;
            println!("deleted member {name} from group {group}");
        }
        MemberCommand::List { group, json } => {
            let dp = Dataplane::open(pin)?;
            let list = dp.members(group.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!(
                    "{:<16} {:<16} {:>8} {:<5} {:<7} {:<28} {:>12} {:>14}",
                    "GROUP", "MEMBER", "METRIC", "STATE", "NEAREST", "VIA", "PACKETS", "BYTES"
                );
                for m in list {
                    let via = match (&m.mac, m.ifindex, m.addr) {
                        (Some(mac), Some(idx), _) => format!("l2 if{idx} {mac}"),
                        (_, _, Some(a)) => format!("encap {a}"),
                        _ => String::new(),
                    };
                    println!(
                        "{:<16} {:<16} {:>8} {:<5} {:<7} {:<28} {:>12} {:>14}",
                        m.group,
                        m.name,
                        m.metric,
                        m.state,
                        if m.nearest { "yes" } else { "" },
                        via,
                        m.packets,
                        m.bytes
                    );
                }
            }
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
        "redirected",
        "fallback_passed",
        "spoof_drops",
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
        println!(
            "  {name}: addresses {}, fallback {}{}",
            g.addresses,
            g.fallback,
            g.tunnel_source
                .map(|a| format!(", tunnel source {a}"))
                .unwrap_or_default()
        );
        let counters: Vec<String> = g
            .counters
            .iter()
            .filter(|(_, v)| **v != 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if !counters.is_empty() {
            println!("    {}", counters.join("  "));
        }
    }
    println!("members:");
    if r.members.is_empty() {
        println!("  (none)");
    }
    for m in &r.members {
        println!(
            "  {}/{:<12} metric {:<6} {:<4}{} packets {} bytes {}",
            m.group,
            m.name,
            m.metric,
            m.state,
            if m.nearest { " nearest" } else { "" },
            m.packets,
            m.bytes
        );
    }
}
