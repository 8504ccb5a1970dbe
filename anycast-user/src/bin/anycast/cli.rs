//! The command line as clap parses it: every verb, flag and help text,
//! and the conversions from its argument enums to the library's types.

use std::path::PathBuf;

use anycast::{AttachMode, AttachOptions, DEFAULT_PIN_DIR};
use anycast_common::{Affinity, Fallback, IfaceRole, SourceAction};
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
pub(crate) struct Cli {
    /// Directory on bpffs where maps and links are pinned, e.g. /sys/fs/bpf/anycast-lab.
    #[arg(long, global = true, env = "ANYCAST_PIN_DIR", default_value = DEFAULT_PIN_DIR)]
    pub(crate) pin_dir: PathBuf,
    /// Run in this network namespace (a name under /run/netns, or a path), e.g. --netns router.
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) netns: Option<String>,
    /// Flow-table capacity (all groups; 128 bytes each, preallocated), used
    /// when the pinned state is created (a command that may create it, or
    /// `repair`, refuses another size than an existing state's); default
    /// 1048576. E.g. --flow-table-size 4194304.
    #[arg(long, global = true, env = "ANYCAST_FLOW_TABLE_SIZE", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) flow_table_size: Option<u32>,
    /// Capacity of the exact-address table (/128 anycast addresses, 1 to
    /// 16777216), which sizes its index (64 bytes per address, rounded up to
    /// a power of two), used when the pinned state is created (a command
    /// that may create it, or `repair`, refuses another size than an
    /// existing state's); default 1048576. E.g. --max-addresses 1000.
    #[arg(long, global = true, env = "ANYCAST_MAX_ADDRESSES", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(anycast_common::MAX_ANYCAST_ADDRS_LIMIT)))]
    pub(crate) max_addresses: Option<u32>,
    /// Capacity of the prefix table (anycast prefixes shorter than /128, 1
    /// to 16777216), which sizes the prefix trie the data plane walks (two
    /// copies of 256 + 1.5 nodes of 1,040 bytes per prefix, at most 16384 each:
    /// a set that needs more asks the LPM trie for the rest), used when the
    /// pinned state is created (a command that may create it, or `repair`,
    /// refuses another size than an existing state's); default 65536.
    /// E.g. --max-prefixes 1000.
    #[arg(long, global = true, env = "ANYCAST_MAX_PREFIXES", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(anycast_common::MAX_ANYCAST_PREFIXES_LIMIT)))]
    pub(crate) max_prefixes: Option<u32>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
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
    /// Manage subnets' reserved anycast addresses (RFC 2526), e.g. the
    /// Mobile IPv6 home-agents address of a home subnet.
    #[command(subcommand)]
    Subnet(SubnetCommand),
    /// Manage the members of anycast groups (where their traffic goes).
    #[command(subcommand)]
    Member(MemberCommand),
    /// List, change and delete groups (`addr add` and `member add` create them).
    #[command(subcommand)]
    Group(GroupCommand),
    /// Inspect and manage the flow table (flow affinity).
    #[command(subcommand)]
    Flows(FlowsCommand),
    /// Check or apply a configuration file (interfaces, groups, addresses, members; TOML).
    ///
    /// One table per interface, per group, per member (or an inline table):
    ///
    ///   [interface.eth1]
    ///   role = "member"              # or "edge" (default); source-action, mode
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
    ///   [group.dns.member.m2]
    ///   iface = "eth1"               # on-link by address: the MAC from
    ///   addr = "fd00:1::3"           #   the neighbour table (resolved)
    ///   metric = "route"             # the metric of the route to addr
    ///
    ///   [group.dns.member.far]
    ///   encap = "2001:db8:f::2"      # ... or routed, IPv6-in-IPv6
    ///   check = { kind = "dns", query = "example.org" }   # for `run --config`
    ///
    ///   [state]                      # sizes, used when the state is created
    ///   max-addresses = 1000         # as --max-addresses
    ///   max-prefixes = 1000          # as --max-prefixes
    ///   flow-table-size = 65536      # as --flow-table-size
    ///
    /// `apply` adds what is missing, changes what differs and removes the
    /// groups, addresses and members the file does not name. The whole file
    /// is validated first (every error names its line and field) and
    /// checked against the tables' sizes: a bad file changes nothing. A file
    /// that names no group needs --allow-empty, one that removes more than
    /// half of the anycast addresses --force. The interfaces it names are
    /// attached once the maps hold the file, never detached. Checks and the
    /// [service] table are for `run --config`, which also follows members'
    /// neighbour entries and routes; `apply` resolves a member given by
    /// address once (soliciting it, at most 3.5 s) and takes metrics from
    /// routes as they are, refusing what it cannot resolve or route to.
    /// See docs/CONFIG.md.
    #[command(subcommand, verbatim_doc_comment)]
    Config(ConfigCommand),
    /// Check the pinned state and rebuild what a killed command left
    /// inconsistent, e.g. `anycast repair --check`.
    ///
    /// The exact-address index, the prefix trie, the prefix settings, the
    /// groups' address counts, the member-source entries, the selections
    /// and the egress ports are rebuilt from the tables they derive from,
    /// and an `addr load` that did not finish is rolled back. Managing
    /// commands do this by themselves after a command was killed half-way.
    Repair {
        /// Only report what is wrong; change nothing (exits 1 when something is).
        #[arg(long)]
        check: bool,
        /// Print JSON (its fields: docs/JSON.md).
        #[arg(long)]
        json: bool,
    },
    /// Ask the running service (`anycast run --config`) for its file, last
    /// reload, each checked member's health, state, last result and
    /// latency, how each member is reached (the MAC resolved from the
    /// neighbour table, the metric and its source, why one is down), and how
    /// long its member updates took (from the deciding check result to the
    /// map write), and each prefix it announces by BGP (announced or not,
    /// since when, why), e.g. `anycast status --json`.
    Status {
        /// Print JSON (its fields: docs/JSON.md).
        #[arg(long)]
        json: bool,
        /// The service's state socket, when it was started with --socket.
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// Have the running service re-read its file (as SIGHUP does) and
    /// print what changed; fails when the file is refused.
    Reload {
        /// The service's state socket, when it was started with --socket.
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// Withdraw every prefix the running service announces by BGP
    /// (`on`: forwarding goes on, so running flows finish; it waits for
    /// the drain time of `[bgp]` and reports the node drained), or announce
    /// them again as their members allow (`off`), e.g. `anycast maintenance
    /// on`.
    Maintenance {
        /// `on` or `off`.
        state: OnOff,
        /// Return once withdrawn, without waiting for the drain time.
        #[arg(long)]
        no_wait: bool,
        /// The service's state socket, when it was started with --socket.
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// Check why the data plane might not forward, one line per check
    /// (OK, WARN or FAIL, what was seen, and the fix), e.g. `anycast
    /// --netns router doctor --iface r1`.
    ///
    /// Checks: the kernel (version, BTF, bpffs, the XDP program type, map
    /// types and helpers the program needs); the pinned state (there and
    /// consistent, as `repair --check`); each attachment (the program on
    /// it, its mode, native possible on the driver) and other XDP
    /// programs; each on-link member (egress up, takes redirected frames:
    /// for a veth, its peer needs GRO or an XDP program; its MAC in the
    /// neighbour table; MTU at least 1280); each encapsulated member (a
    /// route, its egress takes redirected frames, room for the 40-byte
    /// outer header); IPv6 forwarding where a group's fallback is pass;
    /// the service (pid, file, last reload). Changes nothing. Exits 1 when
    /// a check fails (not for warnings).
    Doctor(DoctorArgs),
    Explain(crate::explain::ExplainArgs),
    /// Watch the data plane's decisions live, one line per packet
    /// (interface, addresses and ports, action, reason, group, member,
    /// flow table) until --count lines or Ctrl-C, e.g. `anycast trace
    /// --group web --count 20`.
    ///
    /// Tracing is on only while this runs: it renews a two-second lease
    /// every half second, so a killed trace stops by itself. Costs nothing
    /// measurable while off; while on, records are sampled (--sample) and
    /// rate-limited per CPU (--rate), and the ones lost are counted and
    /// shown on standard error every 5 s and at the end.
    Trace(TraceArgs),
    /// Show counters, summed over CPUs, e.g. `anycast stats --json`.
    Stats {
        /// Print JSON (its fields: docs/JSON.md).
        #[arg(long)]
        json: bool,
    },
    /// Attach, print live counters until Ctrl-C (SIGTERM, SIGHUP, or a
    /// closed output), then detach, e.g. `anycast run eth0`. Link events
    /// take members whose interface goes away out at once. With `--config
    /// FILE` it is the service: it applies the file, runs the members'
    /// health checks (a failing member is down until its check passes
    /// again) and re-reads the file on SIGHUP, e.g. `anycast run --config
    /// /etc/anycast.toml`; the interface is then optional (and detached on
    /// exit when given).
    Run(RunArgs),
    /// Print the completion script of a shell, e.g. `anycast completions
    /// bash > /etc/bash_completion.d/anycast` (the Debian package installs
    /// all three).
    Completions {
        /// `bash`, `zsh` or `fish`.
        shell: CompletionShell,
    },
    /// Write the man pages: anycast.1 and one per subcommand (anycast-addr-add.1...),
    /// for `cargo xtask man` and the Debian package.
    #[command(hide = true)]
    Man {
        /// Folder to write the pages to; without it, anycast.1 goes to standard output.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// A shell `anycast completions` writes a script for.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// Interface to attach for the run, e.g. eth0 (needed without --config).
    #[arg(required_unless_present = "config")]
    pub(crate) iface: Option<String>,
    #[command(flatten)]
    pub(crate) how: AttachHow,
    /// Seconds between two lines of counters.
    #[arg(long, default_value_t = 1)]
    pub(crate) interval: u64,
    /// Run as the service of this configuration file. Its log, one line
    /// per event, goes to standard output at the file's `[service]
    /// log-level` (default info; RUST_LOG, when set, overrides it).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// With --config: apply a file that names no group (see `config apply`).
    #[arg(long, requires = "config")]
    pub(crate) allow_empty: bool,
    /// With --config: apply a file that removes more than half of the
    /// anycast addresses (see `config apply`).
    #[arg(long, requires = "config")]
    pub(crate) force: bool,
    /// With --config: the state socket (`anycast status`, `anycast
    /// reload`); default /run/anycast/ and the pin dir with `/` made `_`.
    #[arg(long, requires = "config", value_name = "PATH")]
    pub(crate) socket: Option<PathBuf>,
    /// With --config: detach the file's interfaces when the service ends
    /// (SIGTERM, SIGINT, an error). Without it they stay attached and the
    /// data plane keeps forwarding; either way the maps stay.
    #[arg(long, requires = "config")]
    pub(crate) detach_on_exit: bool,
}

#[derive(Args, Debug)]
pub(crate) struct TraceArgs {
    /// Only packets arriving on this interface, e.g. eth0 (filtered in the kernel).
    #[arg(long, value_name = "IF")]
    pub(crate) iface: Option<String>,
    /// Only packets from or to this address, e.g. 2001:db8::1 (filtered here).
    #[arg(long, value_name = "A")]
    pub(crate) addr: Option<std::net::Ipv6Addr>,
    /// Only packets of this group (to its addresses, or from them), e.g.
    /// web (filtered in the kernel).
    #[arg(long, value_name = "G")]
    pub(crate) group: Option<String>,
    /// Trace one packet in N on each CPU, e.g. 100.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) sample: u32,
    /// At most N records a second on each CPU, e.g. 1000.
    #[arg(long, value_name = "N", default_value_t = anycast_common::TRACE_DEFAULT_RATE)]
    pub(crate) rate: u32,
    /// Stop after N lines, e.g. 10.
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,
    /// Print JSON, one object per line: `version`, `action`, `member`,
    /// ... (docs/JSON.md).
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct DoctorArgs {
    /// Only the checks of this interface (its attachment, the members
    /// leaving by it), besides the system-wide ones, e.g. r1.
    #[arg(long, value_name = "IF")]
    pub(crate) iface: Option<String>,
    /// Print JSON: `version`, `status` (ok, warn, fail) and `checks`
    /// (name, subject, status, evidence, fix).
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct AttachArgs {
    /// Interface, e.g. eth0.
    pub(crate) iface: String,
    #[command(flatten)]
    pub(crate) how: AttachHow,
}

/// How an interface is attached.
#[derive(Args, Debug)]
pub(crate) struct AttachHow {
    /// `edge` drops anycast-sourced packets; `member` faces the group's members.
    #[arg(long, value_enum, default_value_t = Role::Edge)]
    pub(crate) role: Role,
    /// `drop` anycast-sourced packets, or only `count` them (monitor mode).
    #[arg(long, value_enum, default_value_t = Action::Drop)]
    pub(crate) source_action: Action,
    /// XDP mode: `native` (driver), `skb` (generic) or `auto`.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub(crate) mode: Mode,
}

#[derive(Subcommand, Debug)]
pub(crate) enum AddrCommand {
    /// Add an anycast address or prefix, e.g. `anycast addr add 2001:db8::53 --group dns`.
    Add {
        /// Address (ADDR or ADDR/128) or prefix (ADDR/LEN), e.g. 2001:db8:a::/48.
        addr: String,
        /// Group the address belongs to (created when new), e.g. dns.
        #[arg(long)]
        group: String,
        /// Reached only from these interfaces (in this network namespace),
        /// e.g. eth0,eth1: a packet for it that arrives on another
        /// attached interface is dropped (`out_of_scope_drops`). Without
        /// it, from every interface (an address added again loses its scope).
        #[arg(long, value_name = "IF[,IF...]", value_delimiter = ',')]
        scope: Option<Vec<String>>,
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
    /// List anycast addresses and prefixes with their groups, scopes and
    /// origins (the subnet and anycast ID of a subnet's address).
    List {
        /// Print JSON (its fields: docs/JSON.md).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum SubnetCommand {
    /// Register a /64 subnet's reserved anycast addresses (RFC 2526: the
    /// interface identifier FDFF:FFFF:FFFF:FF80 plus the anycast ID) for a
    /// group, e.g. `anycast subnet add 2001:db8:1:2::/64 --group home-agents`.
    /// They are reached only from the interfaces that have an address in
    /// the subnet, unless --scope says otherwise. Adding a registered
    /// subnet again makes it as given.
    Add {
        /// The subnet: PREFIX/64, e.g. 2001:db8:1:2::/64.
        subnet: String,
        /// Group of its addresses (created when new), e.g. home-agents.
        #[arg(long)]
        group: String,
        /// Anycast IDs, 0 to 127, e.g. 126 (the Mobile IPv6 Home-Agents
        /// anycast ID, RFC 6275) or 126,127.
        #[arg(
            long,
            value_name = "LIST",
            value_delimiter = ',',
            default_value = "126"
        )]
        ids: Vec<u32>,
        /// Also the subnet-router anycast address (RFC 4291: the prefix
        /// with an all-zero interface identifier). Never implied: a host may
        /// use that address.
        #[arg(long)]
        subnet_router: bool,
        /// Reached only from these interfaces (in this network namespace)
        /// instead of those that carry the subnet, e.g. eth0,eth1.
        #[arg(long, value_name = "IF[,IF...]", value_delimiter = ',')]
        scope: Option<Vec<String>>,
    },
    /// Delete a registered subnet and its anycast addresses, e.g.
    /// `anycast subnet del 2001:db8:1:2::/64`; a group left with no address
    /// and no member is deleted too.
    Del {
        /// The subnet, as added.
        subnet: String,
    },
    /// List registered subnets with their addresses and scopes.
    List {
        /// Print JSON (its fields: docs/JSON.md).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum MemberCommand {
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
        /// Print JSON (its fields: docs/JSON.md).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum GroupCommand {
    /// List groups with their settings and how many addresses and members
    /// they have, e.g. `anycast group list --json`.
    List {
        /// Print JSON (its fields: docs/JSON.md).
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
        /// Outer source address for encapsulated members (default: chosen by the kernel's route; a CPU reuses its choice toward a member for up to 100 ms).
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
pub(crate) enum ConfigCommand {
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
pub(crate) enum FlowsCommand {
    /// Show the flow table's occupancy and some flows, e.g. `anycast flows list --group dns`.
    List {
        /// Only this group.
        #[arg(long)]
        group: Option<String>,
        /// Most flows to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON (its fields: docs/JSON.md).
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
pub(crate) enum AffinityArg {
    Flow,
    None,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum FallbackArg {
    Pass,
    Drop,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Role {
    Edge,
    Member,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Action {
    Drop,
    Count,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Mode {
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

impl AttachHow {
    pub(crate) fn options(&self) -> AttachOptions {
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
    pub(crate) fn changes_state(&self) -> bool {
        match self {
            Command::Attach(_) | Command::Detach { .. } | Command::Run(_) => true,
            Command::Group(c) => !matches!(c, GroupCommand::List { .. }),
            Command::Addr(c) => !matches!(c, AddrCommand::List { .. }),
            Command::Subnet(c) => !matches!(c, SubnetCommand::List { .. }),
            Command::Member(c) => !matches!(c, MemberCommand::List { .. }),
            Command::Flows(c) => match c {
                FlowsCommand::List { .. } => false,
                FlowsCommand::Flush { .. } => true,
                FlowsCommand::Guard { rate } => rate.is_some(),
            },
            Command::Config(c) => matches!(c, ConfigCommand::Apply { dry_run: false, .. }),
            Command::Stats { .. } | Command::Status { .. } | Command::Doctor(_) => false,
            Command::Explain(_) | Command::Trace(_) => false,
            Command::Completions { .. } | Command::Man { .. } => false,
            Command::Reload { .. } | Command::Maintenance { .. } => true,
            Command::Repair { check, .. } => !check,
        }
    }
}

/// `on` or `off` (`anycast maintenance`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}
