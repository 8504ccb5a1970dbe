//! The configuration file: every group with its settings, anycast addresses
//! and members, in TOML (format in docs/CONFIG.md).
//!
//! [`Config::parse`] validates a whole file; every error names its line and
//! field. Nothing here touches a map: `reconcile` makes the pinned state
//! match a [`Config`].

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt,
    net::{Ipv6Addr, SocketAddr},
    path::PathBuf,
};

use anycast_common::{
    Affinity, Fallback, IfaceRole, MAX_ANYCAST_ADDRS, MAX_ANYCAST_PREFIXES, MAX_GROUPS,
    MAX_MEMBERS, MAX_TIED, MAX_TX_PORTS, MemberState, SourceAction,
};
use serde::Deserialize;
use toml::Spanned;

use crate::{
    addr::{AnycastPrefix, PrefixSet, parse_anycast, parse_unicast},
    error::{ConfigError, Endpoint, Error, Result, one_line, shorten_quoted},
    group::GroupOptions,
    health::Check,
    iface::{AttachMode, AttachOptions},
    members::{MemberVia, Via},
    names::{GroupName, MemberName},
    service::logging::LogLevel,
};

/// Metric of a member that names none.
pub const DEFAULT_METRIC: u32 = 100;

/// The rules of `config apply` that [`Config::parse`] and [`Config::check`]
/// cannot check, for want of the pinned state (readable by root only).
pub const NEEDS_THE_PINNED_STATE: [&str; 4] = [
    "how much applying the file removes (a file with no group needs --allow-empty, \
     one that removes more than half of the anycast addresses --force)",
    "whether the kernel takes the on-link members' interfaces for XDP redirect",
    "whether the pinned state was made by a compatible build",
    "whether an existing state has the sizes of `[state]` (they apply when it is created)",
];

/// The sizes of the tables a configuration must fit in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacities {
    /// Groups.
    pub groups: u32,
    /// Members, all groups together.
    pub members: u32,
    /// Exact anycast addresses (`/128`).
    pub addresses: u32,
    /// Anycast prefixes.
    pub prefixes: u32,
    /// Distinct egress interfaces of on-link members.
    pub egress_ports: u32,
}

impl Capacities {
    /// The sizes this build gives the tables when it creates them (the
    /// flow table, the one sized at creation, is not part of a file).
    pub const BUILT_IN: Capacities = Capacities {
        groups: MAX_GROUPS - 1,
        members: MAX_MEMBERS - 1,
        addresses: MAX_ANYCAST_ADDRS,
        prefixes: MAX_ANYCAST_PREFIXES,
        egress_ports: MAX_TX_PORTS,
    };
}

/// A validated configuration file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Every group, by name.
    pub groups: BTreeMap<GroupName, GroupConfig>,
    /// The interfaces to attach (in the namespace the file is applied in),
    /// by name.
    pub interfaces: BTreeMap<String, InterfaceConfig>,
    /// The service's settings (`[service]`).
    pub service: ServiceConfig,
    /// How groups' prefixes are announced (`[bgp]`; its defaults when absent).
    pub bgp: BgpConfig,
    /// The sizes of the pinned state (`[state]`).
    pub state: StateConfig,
}

/// The `[service]` table of a [`Config`]: what only `anycast run --config`
/// uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Where to serve the Prometheus metrics (`metrics`); none: not served.
    pub metrics: Option<SocketAddr>,
    /// The state socket of `anycast status` and `reload` (`socket`); none:
    /// the path derived from the pin dir.
    pub socket: Option<PathBuf>,
    /// The service's log level (`log-level`); none: `info`. `RUST_LOG`,
    /// when set, overrides it.
    pub log_level: Option<LogLevel>,
}

/// One `[interface.NAME]` of a [`Config`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// Line of the interface's name.
    pub line: usize,
    /// How it is attached.
    pub options: AttachOptions,
}

/// One group of a [`Config`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    /// Line of the group's name.
    pub line: usize,
    /// The settings the file gives; the others take their defaults.
    pub options: GroupOptions,
    /// Its anycast addresses and prefixes, in file order.
    pub addresses: Vec<AnycastPrefix>,
    /// The interfaces its `addresses` may be reached from (`scope`,
    /// sorted); empty: every interface.
    pub scope: Vec<String>,
    /// Line of its `scope` (0: none).
    pub scope_line: usize,
    /// Its registered subnets (`subnets`), whose anycast addresses it
    /// holds besides `addresses`.
    pub subnets: Vec<SubnetConfig>,
    /// Its members, by name.
    pub members: BTreeMap<MemberName, MemberConfig>,
    /// The prefixes announced while it can be served (`announce`), each
    /// covering all of its addresses.
    pub announce: Vec<AnycastPrefix>,
    /// How many live members it needs for them to be announced
    /// (`announce-min-members`, at least 1).
    pub announce_min_members: u32,
}

impl GroupConfig {
    /// Its addresses and prefixes, then its subnets' anycast addresses.
    pub fn all_addresses(&self) -> impl Iterator<Item = AnycastPrefix> + '_ {
        self.addresses
            .iter()
            .copied()
            .chain(self.subnets.iter().flat_map(SubnetConfig::addresses))
    }
}

/// One member of a [`GroupConfig`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberConfig {
    /// Line of the member's name.
    pub line: usize,
    /// On-link (interface and MAC) or routed (address).
    pub via: MemberVia,
    /// Lower is nearer: the file's number, or (with `metric_source`
    /// [`MetricSource::Route`]) the route's metric once the service knows it.
    pub metric: u32,
    /// Where the metric comes from (`metric = N` or `metric = "route"`).
    pub metric_source: MetricSource,
    /// Share among tied members, 1..=100.
    pub weight: u8,
    /// Up, down or draining.
    pub state: MemberState,
    /// An on-link member's own unicast address on its link (`addr`); with
    /// no `mac`, its MAC comes from the neighbour table ([`MemberVia::Neighbour`]).
    pub addr: Option<Ipv6Addr>,
    /// Its health check, when it has one.
    pub check: Option<Check>,
}

impl MemberConfig {
    /// The address a check with target `unicast` probes: `addr`, or a
    /// routed member's encap address.
    pub fn unicast(&self) -> Option<Ipv6Addr> {
        match (&self.via, self.addr) {
            (_, Some(a)) => Some(a),
            (MemberVia::Encap(a) | MemberVia::Neighbour { addr: a, .. }, None) => Some(*a),
            (MemberVia::L2 { .. }, None) => None,
        }
    }
}

/// The file as TOML has it, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    group: BTreeMap<Spanned<String>, RawGroup>,
    #[serde(default)]
    interface: BTreeMap<Spanned<String>, RawInterface>,
    service: Option<RawService>,
    bgp: Option<bgp::RawBgp>,
    state: Option<state::RawState>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawService {
    metrics: Option<Spanned<String>>,
    socket: Option<Spanned<String>>,
    log_level: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawInterface {
    role: Option<RawRole>,
    source_action: Option<RawSourceAction>,
    mode: Option<RawMode>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawRole {
    Edge,
    Member,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawSourceAction {
    Drop,
    Count,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawMode {
    Auto,
    Native,
    Skb,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawGroup {
    fallback: Option<RawFallback>,
    affinity: Option<RawAffinity>,
    flow_timeout: Option<Spanned<u32>>,
    flow_timeout_other: Option<Spanned<u32>>,
    table_size: Option<Spanned<u32>>,
    tunnel_source: Option<Spanned<String>>,
    #[serde(default)]
    addresses: Vec<Spanned<String>>,
    scope: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    subnets: Vec<subnet::RawSubnet>,
    #[serde(default)]
    member: BTreeMap<Spanned<String>, member::RawMember>,
    announce: Option<Vec<Spanned<String>>>,
    announce_min_members: Option<Spanned<i64>>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawFallback {
    Pass,
    Drop,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawAffinity {
    Flow,
    None,
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// Turns the TOML parser's error into one line: position, message, and
/// the offending line of the file (which names the key).
fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
    let mut message = shorten_quoted(&e.message().split_whitespace().collect::<Vec<_>>().join(" "));
    if let Some(l) = text.lines().nth(line - 1).map(str::trim)
        && !l.is_empty()
    {
        let shown = one_line(&l.chars().take(60).collect::<String>());
        let more = if l.chars().count() > 60 { "..." } else { "" };
        message = format!("{message} (in `{shown}{more}`)");
    }
    ConfigError::Syntax {
        line,
        column,
        message,
    }
}

/// Validates one file's values, remembering where each came from.
struct Checker {
    /// Byte offset of the start of every line after the first.
    line_starts: Vec<usize>,
}

impl Checker {
    fn new(text: &str) -> Self {
        let line_starts = text.match_indices('\n').map(|(i, _)| i + 1).collect();
        Checker { line_starts }
    }

    /// The 1-based line of a value (a binary search: large files have
    /// a line for each of tens of thousands of members).
    fn line<T>(&self, s: &Spanned<T>) -> usize {
        self.line_starts
            .partition_point(|&start| start <= s.span().start)
            + 1
    }

    fn check<T, U>(
        &self,
        at: &Spanned<T>,
        field: impl FnOnce() -> String,
        r: Result<U>,
    ) -> Result<U, ConfigError> {
        r.map_err(|e| ConfigError::Invalid {
            line: self.line(at),
            field: field(),
            error: Box::new(e),
        })
    }
}

impl Config {
    /// Parses and validates a whole file: every value, every name, no
    /// address in two groups, no two members of a group reached the same way.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| syntax_error(text, &e))?;
        let c = Checker::new(text);
        let mut cfg = Config::default();
        let mut owner: HashMap<AnycastPrefix, String> = HashMap::new();
        // Members' encap addresses and tunnel sources, with where they are:
        // none may be anycast.
        let mut endpoints: Vec<(Ipv6Addr, Endpoint, usize, String)> = Vec::new();
        let mut announced = Vec::new();
        for (name, g) in raw.group {
            let gname = name.get_ref().clone();
            let f = |key: &str| format!("group.{gname}.{key}");
            let group = c.check(&name, || format!("group.{gname}"), GroupName::new(&gname))?;
            let mut options = GroupOptions {
                fallback: g.fallback.map(|f| match f {
                    RawFallback::Pass => Fallback::Pass,
                    RawFallback::Drop => Fallback::Drop,
                }),
                affinity: g.affinity.map(|a| match a {
                    RawAffinity::Flow => Affinity::Flow,
                    RawAffinity::None => Affinity::None,
                }),
                ..GroupOptions::default()
            };
            // Each setting validated alone, so that an error names its own line.
            let mut one = |at: &Spanned<u32>, key: &str, set: &dyn Fn(&mut GroupOptions)| {
                let mut o = GroupOptions::default();
                set(&mut o);
                c.check(at, || f(key), o.validate())?;
                set(&mut options);
                Ok::<_, ConfigError>(())
            };
            if let Some(t) = &g.flow_timeout {
                one(t, "flow-timeout", &|o| o.tcp_timeout = Some(*t.get_ref()))?;
            }
            if let Some(t) = &g.flow_timeout_other {
                one(t, "flow-timeout-other", &|o| {
                    o.other_timeout = Some(*t.get_ref())
                })?;
            }
            if let Some(n) = &g.table_size {
                one(n, "table-size", &|o| o.table_size = Some(*n.get_ref()))?;
            }
            if let Some(a) = &g.tunnel_source {
                let role = Endpoint::TunnelSource;
                let addr = c.check(a, || f("tunnel-source"), parse_unicast(a.get_ref(), role))?;
                endpoints.push((addr, role, c.line(a), f("tunnel-source")));
                options.tunnel_source = Some(addr);
            }
            let mut addresses = Vec::with_capacity(g.addresses.len());
            for a in &g.addresses {
                let p = c.check(a, || f("addresses"), parse_anycast(a.get_ref()))?;
                if let Some(other) = owner.insert(p, gname.clone()) {
                    let e = if other == gname {
                        Error::InvalidAddress {
                            input: p.to_string(),
                            reason: "listed twice".into(),
                        }
                    } else {
                        Error::AddressInOtherGroup {
                            addr: p.to_string(),
                            group: other,
                        }
                    };
                    return Err(c.check(a, || f("addresses"), Err(e))?);
                }
                addresses.push(p);
            }
            let (scope, scope_line) = match &g.scope {
                Some(sc) => (subnet::parse_scope(&c, &|| f("scope"), sc)?, c.line(sc)),
                None => (Vec::new(), 0),
            };
            let subnets = subnet::parse(&c, &gname, &g.subnets)?;
            // The subnets' addresses are the group's too: in no other
            // group, not also listed, covered by what it announces.
            let mut all_addresses = addresses.clone();
            for (s, raw) in subnets.iter().zip(&g.subnets) {
                for p in s.addresses() {
                    if let Some(other) = owner.insert(p, gname.clone()) {
                        let e = Error::AddressInOtherGroup {
                            addr: p.to_string(),
                            group: other,
                        };
                        return Err(c.check(raw.prefix(), || f("subnets"), Err(e))?);
                    }
                    all_addresses.push(p);
                }
            }
            let addresses_only = addresses;
            let addresses = all_addresses;
            let mut members = BTreeMap::new();
            let mut ways: HashSet<MemberVia> = HashSet::new();
            for (mname, m) in g.member {
                let (name, mc) = member::parse(&c, &gname, &mname, m, &addresses, &mut endpoints)?;
                if !ways.insert(mc.via.clone()) {
                    let e = Error::MemberSourceTaken(mc.via.to_string());
                    return Err(c.check(
                        &mname,
                        || format!("group.{gname}.member.{name}"),
                        Err(e),
                    )?);
                }
                members.insert(name, mc);
            }
            check_ties(&group, &members)?;
            let wants = bgp::RawAnnounce {
                announce: g.announce.as_ref(),
                min_members: g.announce_min_members.as_ref(),
            };
            let (announce, announce_min_members) =
                bgp::parse_group(&c, &gname, wants, &addresses, members.len(), &mut announced)?;
            let line = c.line(&name);
            cfg.groups.insert(
                group,
                GroupConfig {
                    line,
                    options,
                    addresses: addresses_only,
                    scope,
                    scope_line,
                    subnets,
                    members,
                    announce,
                    announce_min_members,
                },
            );
        }
        for (name, i) in raw.interface {
            let n = name.get_ref();
            if !subnet::valid_ifname(n) {
                let e = Error::UnknownInterface(n.clone());
                return Err(c.check(&name, || format!("interface.{n}"), Err(e))?);
            }
            let options = AttachOptions {
                role: match i.role {
                    None | Some(RawRole::Edge) => IfaceRole::Edge,
                    Some(RawRole::Member) => IfaceRole::Member,
                },
                source_action: match i.source_action {
                    None | Some(RawSourceAction::Drop) => SourceAction::Drop,
                    Some(RawSourceAction::Count) => SourceAction::Count,
                },
                mode: match i.mode {
                    None | Some(RawMode::Auto) => AttachMode::Auto,
                    Some(RawMode::Native) => AttachMode::Native,
                    Some(RawMode::Skb) => AttachMode::Skb,
                },
            };
            let line = c.line(&name);
            cfg.interfaces
                .insert(n.clone(), InterfaceConfig { line, options });
        }
        if let Some(m) = raw.service.as_ref().and_then(|s| s.metrics.as_ref()) {
            let addr = c.check(
                m,
                || "service.metrics".into(),
                m.get_ref()
                    .parse::<SocketAddr>()
                    .map_err(|_| Error::InvalidMetricsAddress(m.get_ref().clone())),
            )?;
            cfg.service.metrics = Some(addr);
        }
        if let Some(p) = raw.service.as_ref().and_then(|s| s.socket.as_ref()) {
            let path = PathBuf::from(p.get_ref());
            let ok = path.is_absolute() && path.file_name().is_some() && p.get_ref().len() < 100;
            c.check(
                p,
                || "service.socket".into(),
                if ok {
                    Ok(())
                } else {
                    Err(Error::InvalidSocketPath(p.get_ref().clone()))
                },
            )?;
            cfg.service.socket = Some(path);
        }
        if let Some(l) = raw.service.as_ref().and_then(|s| s.log_level.as_ref()) {
            let level = c.check(l, || "service.log-level".into(), l.get_ref().parse());
            cfg.service.log_level = Some(level?);
        }
        if let Some(b) = &raw.bgp {
            cfg.bgp = bgp::parse(&c, b)?;
        }
        if let Some(s) = &raw.state {
            cfg.state = state::parse(&c, s)?;
        }
        let anycast = PrefixSet::new(owner.keys());
        for (addr, role, line, field) in endpoints {
            if let Some(p) = anycast.covering(addr) {
                return Err(ConfigError::Invalid {
                    line,
                    field,
                    error: Box::new(Error::EndpointIsAnycast {
                        role,
                        addr,
                        anycast: p.to_string(),
                        group: owner[&p].clone(),
                    }),
                });
            }
        }
        Ok(cfg)
    }

    /// Every rule of `config apply` that needs no pinned state beyond
    /// [`Config::parse`]'s: on-link members' interfaces exist (`resolve`
    /// looks them up, in the current network namespace) and the file fits
    /// the tables of this build ([`Capacities::BUILT_IN`], with the
    /// file's `state.max-addresses` and `state.max-prefixes`). What is left is
    /// [`NEEDS_THE_PINNED_STATE`].
    pub fn check(&self, resolve: &mut dyn FnMut(&MemberVia) -> Result<Via>) -> Result<()> {
        self.resolve(resolve)?;
        for (name, i) in &self.interfaces {
            crate::link::ifindex(name).map_err(|e| ConfigError::Invalid {
                line: i.line,
                field: format!("interface.{name}"),
                error: Box::new(e),
            })?;
        }
        self.check_fits(&Capacities {
            addresses: self
                .state
                .max_addresses
                .unwrap_or(Capacities::BUILT_IN.addresses),
            prefixes: self
                .state
                .max_prefixes
                .unwrap_or(Capacities::BUILT_IN.prefixes),
            ..Capacities::BUILT_IN
        })
    }

    /// Every member's way in, resolved by `resolve` (an on-link member's
    /// interface to its index and MAC); an error names the member's line
    /// and field.
    pub fn resolve(
        &self,
        resolve: &mut dyn FnMut(&MemberVia) -> Result<Via>,
    ) -> Result<HashMap<(&GroupName, &MemberName), Via>, ConfigError> {
        let mut out = HashMap::new();
        for (g, gc) in &self.groups {
            for (n, mc) in &gc.members {
                let via = resolve(&mc.via).map_err(|e| {
                    let key = match mc.via {
                        MemberVia::L2 { .. } => ".iface",
                        MemberVia::Neighbour { .. } => ".addr",
                        MemberVia::Encap(_) => ".encap",
                    };
                    ConfigError::Invalid {
                        line: mc.line,
                        field: format!("group.{g}.member.{n}{key}"),
                        error: Box::new(e),
                    }
                })?;
                out.insert((g, n), via);
            }
        }
        Ok(out)
    }

    /// Checks that the file fits tables of `capacities`: it becomes the
    /// whole state, so its own counts are what the tables must hold.
    pub fn check_fits(&self, capacities: &Capacities) -> Result<()> {
        let (_, members) = self.totals();
        let all = || self.groups.values().flat_map(GroupConfig::all_addresses);
        let exact = all().filter(|a| a.is_exact()).count();
        let ports: HashSet<&str> = self
            .groups
            .values()
            .flat_map(|g| g.members.values())
            .filter_map(|m| match &m.via {
                MemberVia::L2 { iface, .. } | MemberVia::Neighbour { iface, .. } => {
                    Some(iface.as_str())
                }
                MemberVia::Encap(_) => None,
            })
            .collect();
        for (table, capacity, needed) in [
            ("group table", capacities.groups, self.groups.len()),
            ("member table", capacities.members, members),
            ("anycast address table", capacities.addresses, exact),
            (
                "anycast prefix table",
                capacities.prefixes,
                all().count() - exact,
            ),
            ("egress port table", capacities.egress_ports, ports.len()),
        ] {
            if needed > capacity as usize {
                return Err(Error::ConfigTooBig {
                    table,
                    capacity,
                    needed,
                });
            }
        }
        Ok(())
    }

    /// Whether any group announces a prefix (the service then keeps the
    /// routes of `[bgp]`).
    pub fn announces(&self) -> bool {
        self.groups.values().any(|g| !g.announce.is_empty())
    }

    /// How many addresses and prefixes, and how many members, in all groups.
    pub fn totals(&self) -> (usize, usize) {
        self.groups.values().fold((0, 0), |(a, m), g| {
            (a + g.all_addresses().count(), m + g.members.len())
        })
    }
}

/// Refuses a group with more than [`MAX_TIED`] members up at one metric
/// (only that many share its traffic), naming the first member, in file
/// order, past the limit. Metrics from routes are not known here: the
/// data plane refuses such ties when they come.
fn check_ties(
    group: &GroupName,
    members: &BTreeMap<MemberName, MemberConfig>,
) -> Result<(), ConfigError> {
    let mut up: Vec<(&MemberName, &MemberConfig)> = members
        .iter()
        .filter(|(_, m)| m.state == MemberState::Up && m.metric_source == MetricSource::File)
        .collect();
    up.sort_by_key(|(_, m)| m.line);
    let mut at: HashMap<u32, usize> = HashMap::new();
    for (name, m) in up {
        let n = at.entry(m.metric).or_default();
        *n += 1;
        if *n > MAX_TIED {
            let count = members
                .values()
                .filter(|o| {
                    o.state == MemberState::Up
                        && o.metric_source == MetricSource::File
                        && o.metric == m.metric
                })
                .count();
            return Err(ConfigError::Invalid {
                line: m.line,
                field: format!("group.{group}.member.{name}"),
                error: Box::new(Error::TooManyTied {
                    group: group.to_string(),
                    metric: m.metric,
                    count,
                    limit: MAX_TIED,
                }),
            });
        }
    }
    Ok(())
}

impl fmt::Display for Config {
    /// A summary: totals, then one line per group.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, m) = self.totals();
        writeln!(
            f,
            "{} groups, {a} addresses and prefixes, {m} members, {} interfaces",
            self.groups.len(),
            self.interfaces.len()
        )?;
        for (name, g) in &self.groups {
            let up = g
                .members
                .values()
                .filter(|m| m.state == MemberState::Up)
                .count();
            writeln!(
                f,
                "  {name}: {} addresses, {} members ({up} up)",
                g.all_addresses().count(),
                g.members.len()
            )?;
        }
        Ok(())
    }
}

mod bgp;
mod check;
mod member;
mod state;
mod subnet;

pub use bgp::{BgpConfig, RESERVED_PROTOCOLS};
pub use member::MetricSource;
pub use state::StateConfig;
pub use subnet::SubnetConfig;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;
