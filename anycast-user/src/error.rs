//! Typed errors of the anycast library. The CLI prints them on one line.

use std::{io, path::PathBuf};

/// Everything that can go wrong while managing the data plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller lacks the privileges to manage BPF objects.
    #[error("permission denied: {what} needs root (CAP_BPF and CAP_NET_ADMIN)")]
    NotRoot {
        /// What was attempted.
        what: String,
    },
    /// Text that is not an IPv6 address or prefix.
    #[error("invalid anycast address `{input}`: {reason}")]
    InvalidAddress {
        /// The text given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// Text that is not a unicast MAC address.
    #[error("invalid MAC address `{0}`: write it as aa:bb:cc:dd:ee:ff")]
    InvalidMac(String),
    /// A member name outside the allowed alphabet or length.
    #[error(
        "invalid member name `{0}`: use 1 to 31 characters from letters, digits, '.', '_' and '-'"
    )]
    InvalidMemberName(String),
    /// No group by that name.
    #[error("no group `{0}`")]
    UnknownGroup(String),
    /// No member by that name in the group.
    #[error("group `{group}` has no member `{member}`")]
    UnknownMember {
        /// The group.
        group: String,
        /// The member.
        member: String,
    },
    /// A member by that name exists already.
    #[error("group `{group}` already has a member `{member}`")]
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
    InvalidWeight(u8),
    /// A consistent-hash table size that is not a prime in range.
    #[error("invalid table size {0}: use a prime from 7 to 4093 (e.g. 251, 1021, 4093)")]
    InvalidTableSize(u32),
    /// A flow timeout out of range.
    #[error("invalid flow timeout {0}: use 1 to 86400 seconds")]
    InvalidTimeout(u32),
    /// Neither or both ways to reach a member were given.
    #[error("a member is reached either on-link (--iface IF --mac MAC) or routed (--encap ADDR)")]
    MemberVia,
    /// A group name outside the allowed alphabet or length.
    #[error(
        "invalid group name `{0}`: use 1 to 31 characters from letters, digits, '.', '_' and '-'"
    )]
    InvalidGroupName(String),
    /// The named interface does not exist (in this network namespace).
    #[error("unknown interface `{0}`")]
    UnknownInterface(String),
    /// The interface already runs the anycast program.
    #[error("interface `{0}` is already attached (detach it first)")]
    AlreadyAttached(String),
    /// The interface does not run the anycast program.
    #[error("interface `{0}` is not attached")]
    NotAttached(String),
    /// Another XDP program holds the interface.
    #[error(
        "interface `{iface}` already has another XDP program attached (see `ip link show {iface}`)"
    )]
    InterfaceBusy {
        /// The interface.
        iface: String,
    },
    /// The data plane refused an attach mode or the attach itself.
    #[error("attaching to `{iface}` failed: {source}")]
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
    #[error("{path}: {source}")]
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
    #[error("line {line}: {}: {}", one_line(field), one_line(&error.to_string()))]
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

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
