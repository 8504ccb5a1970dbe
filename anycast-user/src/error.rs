//! Typed errors of the anycast library. The CLI prints them on one line.

use std::{io, path::PathBuf};

/// Everything that can go wrong while managing the data plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The trace maps are not pinned: no program of this version was
    /// loaded under the pin dir since it was created.
    #[error(
        "{} has no trace maps: attach an interface with this version of anycast first (or \
         re-attach after an upgrade)",
        .0.display()
    )]
    TraceUnavailable(std::path::PathBuf),
    /// The caller lacks the privileges to manage BPF objects.
    #[error("permission denied: {what} needs root (CAP_BPF and CAP_NET_ADMIN)")]
    NotRoot {
        /// What was attempted.
        what: String,
    },
    /// Text that is not an IPv6 address or prefix.
    #[error("invalid anycast address `{}`: {reason}", quote(.input))]
    InvalidAddress {
        /// The text given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// Text that is not a unicast MAC address.
    #[error("invalid MAC address `{}`: {problem}", quote(.input))]
    InvalidMac {
        /// The text given.
        input: String,
        /// What is wrong with it.
        problem: MacProblem,
    },
    /// A member name outside the allowed alphabet or length.
    #[error(
        "invalid member name `{}`: use 1 to 31 characters from letters, digits, '.', '_' and '-'",
        quote(.0)
    )]
    InvalidMemberName(String),
    /// No group by that name.
    #[error("no group `{}`", quote(.0))]
    UnknownGroup(String),
    /// No member by that name in the group.
    #[error("group `{}` has no member `{}`", quote(.group), quote(.member))]
    UnknownMember {
        /// The group.
        group: String,
        /// The member.
        member: String,
    },
    /// A member by that name exists already.
    #[error("group `{}` already has a member `{}`", quote(.group), quote(.member))]
    MemberExists {
        /// The group.
        group: String,
        /// The member.
        member: String,
    },
    /// Another member of the group is already reached that way.
    #[error("another member of the group is already reached through {0}")]
    MemberSourceTaken(String),
    /// The egress interface cannot take redirected packets.
    #[error("interface index {ifindex} cannot be used for XDP redirect")]
    Redirect {
        /// The interface.
        ifindex: u32,
        /// Why: the devmap refused it.
        #[source]
        source: aya::maps::xdp::XdpMapError,
    },
    /// A weight outside 1..=100.
    #[error("invalid weight {0}: use 1 to 100")]
    InvalidWeight(i64),
    /// A consistent-hash table size that is not a prime in range.
    #[error("invalid table size {0}: use a prime from 7 to 4093 (e.g. 251, 1021, 4093)")]
    InvalidTableSize(u32),
    /// A flow timeout out of range.
    #[error("invalid flow timeout {0}: use 1 to 86400 seconds")]
    InvalidTimeout(u32),
    /// Neither or both ways to reach a member were given.
    #[error(
        "a member is reached either on-link (--iface IF --mac MAC; in a file iface with mac, \
         or with addr for the MAC from the neighbour table) or routed (--encap ADDR)"
    )]
    MemberVia,
    /// A metric that is neither a number nor `"route"`.
    #[error("invalid metric {0}: give a number from 0 to 4294967295, or \"route\"")]
    InvalidMetric(String),
    /// No neighbour entry could be had for an on-link member's address.
    #[error(
        "{addr} on {iface} is not resolved ({state}): no neighbour advertisement came; check the member's address and link, or give its mac"
    )]
    Unresolved {
        /// The member's interface.
        iface: String,
        /// The member's address.
        addr: std::net::Ipv6Addr,
        /// What the neighbour table says of it.
        state: String,
    },
    /// No route forwards to a member whose metric is its route's.
    #[error("no route to {0}: metric = \"route\" takes the metric of the kernel's route to it")]
    NoRoute(std::net::Ipv6Addr),
    /// A member's health check that cannot run as written.
    #[error("{0}")]
    InvalidCheck(String),
    /// A `[bgp]` setting or a group's announcement that cannot work as
    /// written.
    #[error("{0}")]
    InvalidAnnounce(String),
    /// A service already runs on the pin dir.
    #[error(
        "a service already runs on {} (it answers at {}); stop it first, or use `anycast reload`",
        .pin.display(), .socket.display()
    )]
    ServiceRunning {
        /// The pin dir.
        pin: PathBuf,
        /// Its state socket.
        socket: PathBuf,
    },
    /// No service answers on the state socket.
    #[error("no anycast service answers at {} ({source}); is `anycast run --config` running with this --pin-dir?", .socket.display())]
    ServiceNotRunning {
        /// The socket tried.
        socket: PathBuf,
        /// Why it could not be reached.
        #[source]
        source: io::Error,
    },
    /// Not a path a unix socket can have.
    #[error("invalid socket path `{}`: give an absolute path of fewer than 100 bytes", quote(.0))]
    InvalidSocketPath(String),
    /// Not an address and port for the metrics endpoint.
    #[error("invalid metrics address `{}`: give an address and port, e.g. \"[::1]:9651\"", quote(.0))]
    InvalidMetricsAddress(String),
    /// Not a level of `[service] log-level`.
    #[error("invalid log level `{}`: give error, warn, info, debug or trace", quote(.0))]
    InvalidLogLevel(String),
    /// The route of a check's probes to the anycast address could not be
    /// installed.
    #[error("installing the probe path: {0}")]
    ProbePath(String),
    /// A group name outside the allowed alphabet or length.
    #[error(
        "invalid group name `{}`: use 1 to 31 characters from letters, digits, '.', '_' and '-'",
        quote(.0)
    )]
    InvalidGroupName(String),
    /// The named interface does not exist (in this network namespace).
    #[error("unknown interface `{}`", quote(.0))]
    UnknownInterface(String),
    /// The interface already runs the anycast program.
    #[error("interface `{}` is already attached (detach it first)", quote(.0))]
    AlreadyAttached(String),
    /// An interface attached otherwise than a configuration file says.
    #[error(
        "interface {iface} is attached as {attached}; the file says {wanted}: \
         `anycast detach {iface}` first to attach it so"
    )]
    AttachedOtherwise {
        /// The interface.
        iface: String,
        /// How it is attached (role / source action / mode).
        attached: String,
        /// How the file would attach it.
        wanted: String,
    },
    /// The interface does not run the anycast program.
    #[error("interface `{}` is not attached", quote(.0))]
    NotAttached(String),
    /// Another XDP program holds the interface.
    #[error(
        "interface `{0}` already has another XDP program attached (see `ip link show {0}`)",
        quote(.iface)
    )]
    InterfaceBusy {
        /// The interface.
        iface: String,
    },
    /// The data plane refused an attach mode or the attach itself.
    #[error("attaching to `{}` failed: {source}", quote(.iface))]
    Attach {
        /// The interface.
        iface: String,
        /// The underlying error.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// A table has no room for another entry.
    #[error("the {table} is full ({capacity} entries); nothing was changed")]
    TableFull {
        /// Which table, for operators.
        table: &'static str,
        /// Its capacity.
        capacity: u32,
    },
    /// The address is configured already, for another group.
    #[error("{addr} is already an anycast address of group `{group}`; delete it first")]
    AddressInOtherGroup {
        /// The address or prefix.
        addr: String,
        /// The group that has it.
        group: String,
    },
    /// The address is not configured.
    #[error("{0} is not a configured anycast address or prefix")]
    AddressNotFound(String),
    /// A subnet for reserved subnet anycast addresses that RFC 2526 does
    /// not allow.
    #[error("invalid subnet `{subnet}`: {why}")]
    BadSubnet {
        /// As given.
        subnet: String,
        /// What is wrong.
        why: &'static str,
    },
    /// An anycast ID above 127.
    #[error("invalid anycast ID {0}: subnet anycast IDs are 7 bits, 0 to 127 (RFC 2526)")]
    BadAnycastId(u32),
    /// The subnet is not registered.
    #[error("{0} is not a registered subnet (see `anycast subnet list`)")]
    SubnetNotFound(String),
    /// No interface carries the subnet, and no scope was given.
    #[error(
        "no interface here has an address in {0}, so its anycast addresses would be reached from nowhere; \
         give --scope IF[,IF...] (or `scope = [...]` in the file)"
    )]
    SubnetNowhere(String),
    /// A derived address, which only its subnet may remove.
    #[error(
        "{addr} is an anycast address of subnet {subnet}; change it with `anycast subnet add` or `anycast subnet del`"
    )]
    AddressOfSubnet {
        /// The address.
        addr: String,
        /// Its subnet.
        subnet: String,
    },
    /// A scope of no interface, or of too many.
    #[error(
        "a scope names 1 to {most} interfaces, not {given} (name at most {most} with --scope, or `scope` in the file)"
    )]
    ScopeSize {
        /// How many were given.
        given: usize,
        /// The most.
        most: usize,
    },
    /// A size of the state (`--max-addresses`, `--flow-table-size`, or
    /// the file's `[state]`) other than the one the pinned state was
    /// created with: sizes are chosen once, at creation.
    #[error(
        "{asked_by} asks for {asked} {what}, but the state pinned at {path} was created for \
         {actual}: sizes are chosen only when the state is created; ask for {actual} or for \
         nothing, or run `anycast detach --purge` and create the state again (nothing was changed)"
    )]
    StateSizeMismatch {
        /// Where the size comes from, e.g. `--max-addresses`.
        asked_by: String,
        /// What is sized: `addresses`, `flows`.
        what: &'static str,
        /// The size asked for.
        asked: u32,
        /// The size of the pinned state.
        actual: u32,
        /// The pin dir.
        path: PathBuf,
    },
    /// `repair` would make the exact-address table again while its index
    /// survives, and no size given fits that index: the table's capacity
    /// is lost with it, and a guess would resize the state.
    #[error(
        "the exact-address table of the state pinned at {path} is lost but its index \
         ({buckets} buckets) is not: give the capacity it was created with \
         (`--max-addresses N`, N rounded up to a power of two, at least 1024, \
         must be {buckets}{asked}), or run `anycast detach --purge` (nothing was changed)"
    )]
    LostTableSize {
        /// The surviving index's bucket count.
        buckets: u32,
        /// `; not N` when a size was given that does not fit, else empty.
        asked: String,
        /// The pin dir.
        path: PathBuf,
    },
    /// Two sizes of the state given for one table (the command line's and
    /// the file's).
    #[error("{first} and {second} differ: give one")]
    StateSizeConflict {
        /// The first, e.g. `--max-addresses 4096`.
        first: String,
        /// The second, e.g. `state.max-addresses = 1024 in FILE`.
        second: String,
    },
    /// A size of the state out of its range.
    #[error("{what} must be {min} to {max}, not {given}")]
    InvalidStateSize {
        /// Which size, e.g. `--max-addresses`.
        what: String,
        /// The size given.
        given: i64,
        /// The least.
        min: u32,
        /// The most.
        max: u32,
    },
    /// The exact-address index the program would be given has a bucket
    /// count the data plane's hash cannot address (not a power of two):
    /// not a map this build made.
    #[error(
        "the exact-address index ({name}) has {buckets} buckets, not a power of two; \
         run `anycast detach --purge` to start afresh"
    )]
    BadIndexSize {
        /// The map's name.
        name: &'static str,
        /// Its bucket count.
        buckets: u32,
    },
    /// The prefix trie the program would be given is not two copies of a
    /// size this build makes (`anycast_common::prefix_trie::copy_nodes_of_map`).
    #[error(
        "the prefix trie ({name}) has {nodes} nodes, not two copies of a size this build \
         makes; run `anycast detach --purge` to start afresh"
    )]
    BadTrieSize {
        /// The map's name.
        name: &'static str,
        /// Its node count.
        nodes: u32,
    },
    /// `repair` would make the prefix table again while its trie survives,
    /// and no size given fits that trie: the table's capacity is lost
    /// with it, and a guess would resize the state.
    #[error(
        "the prefix table of the state pinned at {path} is lost but its trie \
         ({nodes} nodes) is not: give the capacity it was created with \
         (`--max-prefixes N`, whose trie must have {nodes} nodes{asked}), or run \
         `anycast detach --purge` (nothing was changed)"
    )]
    LostPrefixTableSize {
        /// The surviving trie's node count (both copies).
        nodes: u32,
        /// `; not N` when a size was given that does not fit, else empty.
        asked: String,
        /// The pin dir.
        path: PathBuf,
    },
    /// Nothing is pinned at the pin dir.
    #[error("no anycast data plane at {0} (attach an interface or add an address first)")]
    NotConfigured(PathBuf),
    /// The pinned state was made by an incompatible build.
    #[error(
        "the state pinned at {path} has layout version {found}, this binary uses {expected}; \
         run `anycast detach --purge` to start afresh"
    )]
    IncompatibleState {
        /// The pin dir.
        path: PathBuf,
        /// Version found.
        found: u32,
        /// Version of this binary.
        expected: u32,
    },
    /// `--purge` while interfaces are still attached.
    #[error("still attached to {0}; detach them before purging the maps")]
    StillAttached(String),
    /// The pin dir is not on a BPF filesystem and cannot be.
    #[error("{0} is not on a bpf filesystem (mount one with `mount -t bpf bpf /sys/fs/bpf`)")]
    NotBpffs(PathBuf),
    /// A file-system or syscall error, with the path it concerns.
    #[error("{}: {source}", quote(&.path.to_string_lossy()))]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A map operation failed.
    #[error("map {name}: {source}")]
    Map {
        /// The map.
        name: &'static str,
        /// The error.
        #[source]
        source: aya::maps::MapError,
    },
    /// Waiting for the program runs under way to end failed (`quiesce`).
    #[error("waiting for the program runs under way to end ({call}): {source}")]
    Quiesce {
        /// The bpf call that failed.
        call: &'static str,
        /// Its error.
        #[source]
        source: std::io::Error,
    },
    /// The eBPF object could not be loaded.
    #[error("loading the eBPF object: {0}")]
    Load(#[source] aya::EbpfError),
    /// The program could not be loaded or found.
    #[error("the XDP program: {0}")]
    Program(#[source] aya::programs::ProgramError),
    /// The verifier rejected the program.
    #[error(
        "the kernel's verifier rejected the XDP program ({errno}); last lines of its log:\n{log_tail}"
    )]
    Verifier {
        /// The error of BPF_PROG_LOAD.
        errno: io::Error,
        /// The end of the verifier's log.
        log_tail: String,
    },
    /// The binary was built with the stub eBPF object.
    #[error(
        "this binary was built without its eBPF object (ANYCAST_EBPF_STUB=1); rebuild it with `cargo xtask build`"
    )]
    EmptyObject,
    /// A configuration file that does not parse or validate.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A configuration file that does not parse or validate, named.
    #[error("{}: {source}", .path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        #[source]
        source: ConfigError,
    },
    /// The pin dir, or a directory above it, could be changed by someone
    /// other than root.
    #[error("{}", untrusted(pin, dir, *problem))]
    UntrustedPinDir {
        /// The pin dir.
        pin: PathBuf,
        /// The directory at fault (the pin dir or one above it).
        dir: PathBuf,
        /// What is wrong with it, and how to fix it.
        problem: Untrusted,
    },
    /// The pin dir's bpf filesystem is private to this process's mount
    /// namespace (as under `ip netns exec`): what it pins would vanish.
    #[error(
        "{0} is not on the bpf filesystem the rest of the system sees (this process has a mount \
         namespace of its own, as under `ip netns exec`), so changes would vanish when it exits; \
         use `anycast --netns NAME ...` instead of `ip netns exec NAME anycast ...`"
    )]
    PrivateBpffs(PathBuf),
    /// Some but not all of the maps are pinned: the state was damaged.
    #[error(
        "the state pinned at {} is damaged: {} of its {} maps are missing ({}); nothing was \
         created in their place; run `anycast repair` to recreate them, or \
         `anycast detach --purge` to start afresh",
        path.display(), missing.len(), anycast_common::map_names::ALL.len(), missing.join(", ")
    )]
    PartialState {
        /// The pin dir.
        path: PathBuf,
        /// The maps that are not pinned.
        missing: Vec<&'static str>,
    },
    /// The interface is attached, but in another network namespace.
    #[error(
        "interface `{0}` is not attached in this network namespace but in another one; run the \
         command there (--netns NAME)"
    )]
    AttachedElsewhere(String),
    /// The link of an attachment could not be pinned or unpinned.
    #[error("pinning the XDP link at {path}")]
    Pin {
        /// The pin path.
        path: PathBuf,
        /// What failed.
        #[source]
        source: PinCause,
    },
    /// An address that cannot be a member's `--encap` address or a group's
    /// tunnel source.
    #[error("invalid {role} `{}`: {reason}", quote(.input))]
    InvalidEndpoint {
        /// Which address it was to be.
        role: Endpoint,
        /// The text given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// A member's `--encap` address or a group's tunnel source that is an
    /// anycast address (the packets to it would be steered again).
    #[error(
        "invalid {role} {addr}: it is an anycast address of group `{group}` ({anycast}); \
         use a unicast address outside every anycast address and prefix"
    )]
    EndpointIsAnycast {
        /// Which address it is.
        role: Endpoint,
        /// The address.
        addr: std::net::Ipv6Addr,
        /// The anycast address or prefix that covers it.
        anycast: String,
        /// Its group.
        group: String,
    },
    /// An anycast address or prefix that would cover a member's `--encap`
    /// address or a group's tunnel source.
    #[error(
        "{anycast} would make {role} {addr} of {owner} an anycast address; \
         change that first, or choose another anycast address or prefix"
    )]
    CoversEndpoint {
        /// The anycast address or prefix refused.
        anycast: String,
        /// What the covered address is.
        role: Endpoint,
        /// The covered address.
        addr: std::net::Ipv6Addr,
        /// Whose it is: `member dns/m1` or `group dns`.
        owner: String,
    },
    /// More members of a group up at one metric than share its traffic.
    #[error(
        "group `{group}` would have {count} members up at metric {metric}; at most {limit} \
         members of a group may be up at the same metric (give some another metric or \
         take them down)"
    )]
    TooManyTied {
        /// The group.
        group: String,
        /// The metric.
        metric: u32,
        /// How many members would be up at it.
        count: usize,
        /// The limit ([`anycast_common::MAX_TIED`]).
        limit: usize,
    },
    /// `group del` of a group that still has addresses or members.
    #[error(
        "group `{group}` still has {addresses} addresses and {members} members; delete them \
         first, or give --force to delete the group with them"
    )]
    GroupNotEmpty {
        /// The group.
        group: String,
        /// How many addresses and prefixes it has.
        addresses: usize,
        /// How many members it has.
        members: usize,
    },
    /// A configuration that needs more entries of a table than it holds.
    #[error(
        "the file needs {needed} entries of the {table}, which holds {capacity}; nothing was changed"
    )]
    ConfigTooBig {
        /// Which table, for operators.
        table: &'static str,
        /// Its capacity.
        capacity: u32,
        /// How many entries the file needs.
        needed: usize,
    },
    /// `config apply` of a file that names no group, while something is configured.
    #[error(
        "the file names no group: applying it would remove every group ({groups}), member \
         ({members}) and anycast address ({addresses}); give --allow-empty to do that \
         (nothing was changed)"
    )]
    EmptyConfig {
        /// Groups that would go.
        groups: usize,
        /// Members that would go.
        members: usize,
        /// Addresses and prefixes that would go.
        addresses: usize,
    },
    /// `config apply` of a file that would remove most anycast addresses.
    #[error(
        "applying the file would remove {removed} of the {total} anycast addresses and \
         prefixes (more than half); give --force to do that (nothing was changed)"
    )]
    RemovesMostAddresses {
        /// Addresses and prefixes that would no longer be anycast.
        removed: usize,
        /// Addresses and prefixes configured now.
        total: usize,
    },
}

/// What is wrong with a MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacProblem {
    /// Not six pairs of hex digits.
    Syntax,
    /// The group bit is set: a multicast or broadcast MAC.
    Multicast,
    /// All zeros.
    Zero,
}

impl std::fmt::Display for MacProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MacProblem::Syntax => "write it as six pairs of hex digits, e.g. 02:00:00:00:00:01",
            MacProblem::Multicast => "it is a multicast address, not a unicast MAC",
            MacProblem::Zero => "it is all zeros, not a unicast MAC",
        })
    }
}

/// A unicast address the data plane sends to or from (not an anycast one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A routed member's address (`--encap`, `encap`).
    Encap,
    /// A group's outer source address (`--tunnel-source`, `tunnel-source`).
    TunnelSource,
    /// An on-link member's own unicast address (`addr`).
    MemberAddr,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Endpoint::Encap => "encap address",
            Endpoint::TunnelSource => "tunnel source",
            Endpoint::MemberAddr => "member address",
        })
    }
}

/// Why a pin dir is not trusted ([`Error::UntrustedPinDir`]). Each names
/// the fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untrusted {
    /// The directory belongs to this user id, not root.
    Owner(u32),
    /// The directory is writable by group or others (this mode).
    Writable(u32),
}

/// The message of [`Error::UntrustedPinDir`]: what is wrong, and the fix.
fn untrusted(pin: &std::path::Path, dir: &std::path::Path, problem: Untrusted) -> String {
    let (pin, dir) = (pin.display(), dir.display());
    match problem {
        Untrusted::Owner(uid) => format!(
            "refusing the pin dir {pin}: {dir} belongs to uid {uid}, not root, who can then remove \
             or replace the pins; check what is in it, then remove it or give it to root \
             (`chown root:root {dir}`)"
        ),
        Untrusted::Writable(mode) => format!(
            "refusing the pin dir {pin}: {dir} is writable by others (mode {mode:04o}), who can \
             then remove or replace the pins; make it root-only (`chmod go-w {dir}`)"
        ),
    }
}

/// Why the link of an attachment could not be pinned or unpinned.
#[derive(Debug, thiserror::Error)]
pub enum PinCause {
    /// The kernel attached through netlink: there is no link to pin.
    #[error("the kernel attached through netlink, not a bpf_link (Linux 5.9 or later is needed)")]
    NotBpfLink,
    /// Pinning the link failed.
    #[error(transparent)]
    Pin(aya::pin::PinError),
    /// The pinned link could not be opened.
    #[error(transparent)]
    Open(aya::programs::links::LinkError),
    /// The pin could not be removed.
    #[error(transparent)]
    Unpin(io::Error),
}

/// Why a configuration file was refused. Each is one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not TOML, or a key or value of the wrong kind (from the TOML parser).
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// What is wrong, with the text of the line when it helps.
        message: String,
    },
    /// A value that is well-formed TOML but not a valid setting.
    #[error("line {line}: {}: {}", quote(field), one_line(&error.to_string()))]
    Invalid {
        /// 1-based line of the value.
        line: usize,
        /// Dotted path of the field, e.g. `group.dns.member.m1.mac`.
        field: String,
        /// Why it was refused.
        error: Box<Error>,
    },
}

/// `s` with control characters escaped (a quoted TOML key may hold a
/// newline), so that an error stays on one line.
pub(crate) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// How much of a piece of bad input an error quotes, in characters.
pub const QUOTE_LIMIT: usize = 80;

/// Bad input as an error quotes it: at most [`QUOTE_LIMIT`] characters
/// (then `...`), control characters escaped, so that an error stays one
/// short line whatever was typed.
pub fn quote(s: &str) -> String {
    let mut out = one_line(&s.chars().take(QUOTE_LIMIT).collect::<String>());
    if s.chars().nth(QUOTE_LIMIT).is_some() {
        out.push_str("...");
    }
    out
}

/// `message` (from a parser) with every quoted part longer than
/// [`QUOTE_LIMIT`] characters cut short as [`quote`] does, and control
/// characters escaped.
pub(crate) fn shorten_quoted(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(start) = rest.find(['`', '"']) {
        let q = &rest[start..start + 1];
        out.push_str(&rest[..=start]);
        rest = &rest[start + 1..];
        let end = rest.find(q).unwrap_or(rest.len());
        out.push_str(&quote(&rest[..end]));
        rest = &rest[end..];
        if !rest.is_empty() {
            out.push_str(q);
            rest = &rest[1..];
        }
    }
    out.push_str(&one_line(rest));
    out
}

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_quoted_short_and_without_control_characters() {
        assert_eq!(quote("eth0"), "eth0");
        let long = "é".repeat(200);
        let q = quote(&long);
        assert_eq!(q, format!("{}...", "é".repeat(QUOTE_LIMIT)));
        assert_eq!(quote("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
        let e = Error::UnknownInterface(format!("x\ny{}", "z".repeat(300))).to_string();
        assert!(e.starts_with("unknown interface `x\\ny"), "{e}");
        assert!(!e.chars().any(char::is_control) && e.len() < 120, "{e}");
        let e = Error::InvalidGroupName("\u{7}".repeat(100)).to_string();
        assert!(!e.chars().any(char::is_control), "{e}");
        assert_eq!(
            shorten_quoted(&format!(
                "invalid type: string \"{}\", expected u32",
                "q".repeat(99)
            )),
            format!(
                "invalid type: string \"{}...\", expected u32",
                "q".repeat(80)
            )
        );
        assert_eq!(
            shorten_quoted("unknown field `a\tb`, expected `c`"),
            "unknown field `a\\tb`, expected `c`"
        );
    }
}
