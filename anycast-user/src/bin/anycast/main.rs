//! `anycast`: the command line of the anycast data plane.
//!
//! Every command edits the pinned maps of the running data plane; nothing
//! here has to keep running for packets to be filtered, except `run`, which
//! attaches, prints live counters, and detaches on Ctrl-C (or SIGTERM,
//! SIGHUP, a closed output, an error).
//!
//! A closed output (`anycast addr list | head -1`) ends the printing, not
//! in a panic: the exit status is 0, as the reader chose to stop reading
//! (and a change was made, whole, before anything was printed).

mod print;

use std::{
    io::{self, Write},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anycast::{
    AnycastPrefix, AttachMode, AttachOptions, DEFAULT_PIN_DIR, Dataplane, Error, GroupName,
    Interface, MemberName, PinDir,
    addr::{parse_address_list, parse_anycast, parse_unicast},
    config::{self, Config},
    dataplane::require_root,
    error::Endpoint,
    group::GroupOptions,
    link::LinkEvents,
    members::{self, MemberVia},
    netns,
    reconcile::{ApplyOptions, ChangeAction, Tally},
    state::AddOutcome,
    stats::Stats,
};
use anycast_common::{Affinity, Fallback, IfaceRole, MemberState, SourceAction};
use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// IPv6 anycast filter and redirector (XDP).
///
/// Anycast addresses live in unicast space, so local configuration says which
/// addresses are anycast (`addr`). Packets to one go to the nearest live
/// member of its group (`member`), and a running flow stays on its member
/// (`flows`, `group set --affinity`). On `edge` interfaces, packets that use
/// an anycast address as their source are dropped (or counted, in monitor
/// mode); `member` interfaces accept them only from registered members.
#[derive(Parser, Debug)]
#[command(name = "anycast", version, propagate_version = true)]
struct Cli {
    /// Directory on bpffs where maps and links are pinned, e.g. /sys/fs/bpf/anycast-lab.
    #[arg(long, global = true, env = "ANYCAST_PIN_DIR", default_value = DEFAULT_PIN_DIR)]
    pin_dir: PathBuf,
    /// Run in this network namespace (a name under /run/netns, or a path), e.g. --netns router.
    #[arg(long, global = true, value_name = "NAME")]
    netns: Option<String>,
    /// Flow-table capacity (all groups), used when the pinned state is first
    /// created; default 1048576. E.g. --flow-table-size 4194304.
    #[arg(long, global = true, env = "ANYCAST_FLOW_TABLE_SIZE", value_name = "N")]
    flow_table_size: Option<u32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Attach the data plane to an interface, e.g. `anycast attach eth0 --role edge`.
    Attach(AttachArgs),
    /// Detach from IFACE, or from every interface; maps stay until --purge.
    Detach {
        /// Interface to detach (in this network namespace), e.g. eth0; all
        /// attachments when omitted.
        iface: Option<String>,
        /// Also remove what anycast pinned (maps, links) and then the pin
        /// dir unless it holds other entries (only once nothing is
        /// attached); removes the pins of a state this build cannot open.
        #[arg(long)]
        purge: bool,
    },
    /// Manage anycast addresses and prefixes.
    #[command(subcommand)]
    Addr(AddrCommand),
    /// Manage the members of anycast groups (where their traffic goes).
    #[command(subcommand)]
    Member(MemberCommand),
    /// List, change and delete groups (`addr add` and `member add` create them).
    #[command(subcommand)]
    Group(GroupCommand),
    /// Inspect and manage the flow table (flow affinity).
    #[command(subcommand)]
    Flows(FlowsCommand),
    /// Check or apply a configuration file (groups, addresses, members; TOML).
    ///
    /// One table per group, one per member (or an inline table):
    ///
    ///   [group.dns]
    ///   addresses = ["2001:db8:53::1", "2001:db8:a::/48"]
    ///   fallback = "drop"            # or "pass" (default)
    ///   affinity = "flow"            # or "none"
    ///   flow-timeout = 300           # TCP, seconds; flow-timeout-other = 30
    ///   table-size = 1021            # a prime up to 4093
    ///   tunnel-source = "2001:db8::1"
    ///
    ///   [group.dns.member.m1]
    ///   iface = "eth1"               # on-link: interface and MAC ...
    ///   mac = "02:00:00:00:00:01"
    ///   metric = 10                  # default 100
    ///   weight = 1                   # 1 to 100
    ///   state = "up"                 # "down", "drain"
    ///
    ///   [group.dns.member.far]
    ///   encap = "2001:db8:f::2"      # ... or routed, IPv6-in-IPv6
    ///
    /// `apply` adds what is missing, changes what differs and removes the
    /// groups, addresses and members the file does not name. The whole file
    /// is validated first (every error names its line and field) and
    /// checked against the tables' sizes: a bad file changes nothing. A file
    /// that names no group needs --allow-empty, one that removes more than
    /// half of the anycast addresses --force. Interfaces are attached with
    /// `attach`, not here. See docs/CONFIG.md.
    #[command(subcommand, verbatim_doc_comment)]
    Config(ConfigCommand),
    /// Check the pinned state and rebuild what a killed command left
    /// inconsistent, e.g. `anycast repair --check`.
    ///
    /// The exact-address index, the prefilter, the prefix settings, the
    /// groups' address counts, the member-source entries, the selections
    /// and the egress ports are rebuilt from the tables they derive from,
    /// and an `addr load` that did not finish is rolled back. Managing
    /// commands do this by themselves after a command was killed half-way.
    Repair {
        /// Only report what is wrong; change nothing (exits 1 when something is).
        #[arg(long)]
        check: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show counters, summed over CPUs, e.g. `anycast stats --json`.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Attach, print live counters until Ctrl-C (SIGTERM, SIGHUP, or a
    /// closed output), then detach, e.g. `anycast run eth0`. Link events
    /// take members whose interface goes away out at once.
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
    /// Add every address or prefix of a file (one per line, `#` comments) to a
    /// group in one batch, all or nothing, e.g. `anycast addr load list.txt --group cdn`.
    Load {
        /// The file; `-` reads standard input.
        file: PathBuf,
        /// Group the addresses belong to (created when new).
        #[arg(long)]
        group: String,
    },
    /// Delete an anycast address or prefix, e.g. `anycast addr del 2001:db8::53`;
    /// a group left with no address and no member is deleted too.
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
        /// Share of new flows among members tied at the nearest metric, 1 to 100.
        #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
        weight: i64,
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
        /// Mark the member up (it may get new flows).
        #[arg(long, conflicts_with_all = ["down", "drain"])]
        up: bool,
        /// Mark the member down: it gets no traffic, its flows move.
        #[arg(long, conflicts_with = "drain")]
        down: bool,
        /// Drain the member: it keeps its flows until they go idle, gets no new ones.
        #[arg(long)]
        drain: bool,
        /// New weight, 1 to 100.
        #[arg(long, allow_negative_numbers = true)]
        weight: Option<i64>,
    },
    /// Remove a member, e.g. `anycast member del dns m1`; a group left with
    /// no address and no member is deleted too.
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
    /// List groups with their settings and how many addresses and members
    /// they have, e.g. `anycast group list --json`.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a group that has no address and no member (or, with --force,
    /// with its addresses and members), its flows and counters, e.g.
    /// `anycast group del dns`.
    Del {
        /// Group, e.g. dns.
        name: String,
        /// Also delete its addresses and members.
        #[arg(long)]
        force: bool,
    },
    /// Set what a group does with no live member, and the outer source of its
    /// encapsulated packets, e.g. `anycast group set dns --fallback drop --tunnel-source 2001:db8::1`.
    Set {
        /// An existing group, e.g. dns (`addr add` and `member add` create groups).
        name: String,
        /// `pass`: the kernel routes the packet (default); `drop`: drop it.
        #[arg(long, value_enum)]
        fallback: Option<FallbackArg>,
        /// Outer source address for encapsulated members (default: chosen by the kernel's route).
        #[arg(long)]
        tunnel_source: Option<String>,
        /// `flow` (default): a running flow stays on its member; `none`: stateless.
        #[arg(long, value_enum)]
        affinity: Option<AffinityArg>,
        /// Idle timeout of TCP flows, seconds (default 300).
        #[arg(long, value_name = "SECS")]
        flow_timeout: Option<u32>,
        /// Idle timeout of other flows (UDP, fragments, ...), seconds (default 30).
        #[arg(long, value_name = "SECS")]
        flow_timeout_other: Option<u32>,
        /// Consistent-hash table size, a prime up to 4093 (default 1021).
        #[arg(long, value_name = "PRIME")]
        table_size: Option<u32>,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Check a file as `apply` would, short of the pinned state: its syntax
    /// and values, the members' interfaces (in this network namespace), the
    /// tables' sizes; print a summary and what needs the pinned state.
    /// Changes nothing, needs no privileges, e.g. `anycast config check /etc/anycast.toml`.
    Check {
        /// The file, e.g. /etc/anycast.toml.
        file: PathBuf,
    },
    /// Make the pinned state match a file and print what changed, e.g.
    /// `anycast config apply /etc/anycast.toml`.
    Apply {
        /// The file, e.g. /etc/anycast.toml.
        file: PathBuf,
        /// Print what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Apply a file that names no group: remove every group, address and member.
        #[arg(long)]
        allow_empty: bool,
        /// Apply a file that removes more than half of the anycast addresses and prefixes.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
enum FlowsCommand {
    /// Show the flow table's occupancy and some flows, e.g. `anycast flows list --group dns`.
    List {
        /// Only this group.
        #[arg(long)]
        group: Option<String>,
        /// Most flows to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Forget the flows of a group, or all flows; they go by the consistent hash again.
    Flush {
        /// Group, e.g. dns; all groups when omitted.
        group: Option<String>,
    },
    /// Show or set the flood guard: at most RATE new flows recorded per second
    /// per CPU (0: no limit); past it, new flows are steered by the consistent
    /// hash alone, so a flood cannot flush the table. E.g. `anycast flows guard --rate 100000`.
    Guard {
        /// New rate.
        #[arg(long)]
        rate: Option<u32>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum AffinityArg {
    Flow,
    None,
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

impl From<FallbackArg> for Fallback {
    fn from(f: FallbackArg) -> Self {
        match f {
            FallbackArg::Pass => Fallback::Pass,
            FallbackArg::Drop => Fallback::Drop,
        }
    }
}

impl From<AffinityArg> for Affinity {
    fn from(a: AffinityArg) -> Self {
        match a {
            AffinityArg::Flow => Affinity::Flow,
            AffinityArg::None => Affinity::None,
        }
    }
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

impl Command {
    /// Whether the command changes the pinned state (or the attachments):
    /// once it has, failing to print its report is no failure of it.
    fn changes_state(&self) -> bool {
        match self {
            Command::Attach(_) | Command::Detach { .. } | Command::Run { .. } => true,
            Command::Group(c) => !matches!(c, GroupCommand::List { .. }),
            Command::Addr(c) => !matches!(c, AddrCommand::List { .. }),
            Command::Member(c) => !matches!(c, MemberCommand::List { .. }),
            Command::Flows(c) => match c {
                FlowsCommand::List { .. } => false,
                FlowsCommand::Flush { .. } => true,
                FlowsCommand::Guard { rate } => rate.is_some(),
            },
            Command::Config(c) => matches!(c, ConfigCommand::Apply { dry_run: false, .. }),
            Command::Stats { .. } => false,
            Command::Repair { check, .. } => !check,
        }
    }
}

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

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format(|buf, record| {
            let level = record.level().to_string().to_lowercase();
            writeln!(buf, "anycast: {level}: {}", record.args())
        })
        .init();
    let cli = Cli::try_parse().unwrap_or_else(|e| usage_error(e));
    let changes = cli.command.changes_state();
    let mut out = io::stdout().lock();
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
    let ft = cli.flow_table_size;
    match cli.command {
        Command::Attach(args) => {
            let (_, i) = Dataplane::create_and_attach(pin, ft, &args.iface, args.options())?;
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
        Command::Addr(AddrCommand::Add { addr, group }) => {
            let p = parse_anycast(&addr)?;
            let group = GroupName::new(&group)?;
            let (_, added) =
                Dataplane::open_or_create_then(pin, ft, |dp| dp.add_address(p, &group))?;
            match added {
                AddOutcome::Added => say!(out, "added {p} to group {group}"),
                AddOutcome::AlreadyPresent => say!(out, "{p} is already in group {group}"),
            }
        }
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
        Command::Config(cmd) => config_command(pin, ft, cmd, out)?,
        Command::Repair { check, json } => {
            let (mut dp, recreated) = Dataplane::open_repairing(pin, !check)?;
            if !recreated.is_empty() {
                log::warn!(
                    "these maps were missing and are recreated empty (what they held is lost;                      `config apply` or the commands that filled them fill them again): {}",
                    recreated.join(", ")
                );
            }
            let report = dp.repair(!check)?;
            if json {
                say!(out, "{}", serde_json::to_string_pretty(&report)?);
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
            };
            if json {
                say!(out, "{}", serde_json::to_string_pretty(&report)?);
            } else {
                let here = netns::current()?.ino;
                print::report(out, &report, here).map_err(output)?;
            }
        }
        Command::Run { attach, interval } => {
            let every = Duration::from_secs(interval.max(1));
            run_attached(pin, ft, &attach, every, out)?;
        }
    }
    Ok(())
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
    flow_table: Option<u32>,
    cmd: ConfigCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Check { file } => {
            let cfg = load_config(&file)?;
            cfg.check(&mut MemberVia::resolve)
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
            let start = std::time::Instant::now();
            let opts = ApplyOptions {
                dry_run,
                allow_empty,
                force,
            };
            let result = if dry_run {
                Dataplane::open(pin.clone()).and_then(|mut dp| dp.apply_config(&cfg, opts))
            } else {
                Dataplane::open_or_create_then(pin.clone(), flow_table, |dp| {
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
                let v = serde_json::json!({ "flow_table": table, "flows": flows });
                say!(out, "{}", serde_json::to_string_pretty(&v)?);
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
    flow_table: Option<u32>,
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
            let (_, id) = Dataplane::open_or_create_then(pin, flow_table, |dp| {
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

/// `anycast run`: attaches, prints a line of counters every `every`, and
/// detaches on SIGINT, SIGTERM or SIGHUP, when its output is closed, and on
/// any error. Link events (netlink) refresh the state at once: members
/// whose interface goes away stop getting traffic, and the run ends when
/// its own interface is deleted.
fn run_attached(
    pin: PinDir,
    flow_table: Option<u32>,
    args: &AttachArgs,
    every: Duration,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        // The handlers are in place before the program is attached, so
        // that no signal can end the process with the program attached.
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        // Opened in this thread's network namespace (that of --netns).
        let events = LinkEvents::subscribe()?;
        let (dp, i) = Dataplane::create_and_attach(pin, flow_table, &args.iface, args.options())?;
        let mut run = Attached {
            dp,
            iface: Some(i.clone()),
        };
        let watched = watch(
            &mut run.dp,
            &i,
            events,
            every,
            out,
            (&mut int, &mut term, &mut hup),
        )
        .await;
        let detached = run.detach();
        watched?;
        if detached? {
            say!(out, "detached from {}", i.name);
        }
        Ok(())
    })
}

/// The signals that end `anycast run`.
type Signals<'a> = (
    &'a mut tokio::signal::unix::Signal,
    &'a mut tokio::signal::unix::Signal,
    &'a mut tokio::signal::unix::Signal,
);

/// The body of `anycast run`, until a signal, a closed output or an error.
async fn watch(
    dp: &mut Dataplane,
    i: &Interface,
    events: LinkEvents,
    every: Duration,
    out: &mut impl Write,
    (int, term, hup): Signals<'_>,
) -> anyhow::Result<()> {
    say!(
        out,
        "attached to {} ({} / {} / {}); Ctrl-C detaches",
        i.name,
        i.role,
        i.source_action,
        i.mode
    );
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
    let result = async {
        loop {
            tokio::select! {
                _ = int.recv() => break,
                _ = term.recv() => break,
                _ = hup.recv() => break,
                _ = changed.notified() => {
                    let r = dp.refresh()?;
                    for line in r.lines() {
                        say!(out, "{line}");
                    }
                    if r.stale.iter().any(|s| s.interface.netns == i.netns && s.interface.ifindex == i.ifindex) {
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
