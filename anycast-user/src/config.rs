//! The configuration file: every group with its settings, anycast addresses
//! and members, in TOML (format in docs/CONFIG.md).
//!
//! [`Config::parse`] validates a whole file; every error names its line and
//! field. Nothing here touches a map: `reconcile` makes the pinned state
//! match a [`Config`].

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt,
    net::Ipv6Addr,
};

use anycast_common::{
    Affinity, Fallback, MAX_ANYCAST_ADDRS, MAX_ANYCAST_PREFIXES, MAX_GROUPS, MAX_MEMBERS, MAX_TIED,
    MAX_TX_PORTS, MemberState,
};
use serde::Deserialize;
use toml::Spanned;

use crate::{
    addr::{AnycastPrefix, PrefixSet, parse_anycast, parse_unicast},
    error::{ConfigError, Endpoint, Error, Result, one_line, shorten_quoted},
    group::GroupOptions,
    members::{MemberVia, Via, format_mac, parse_mac, weight},
    names::{GroupName, MemberName},
};

/// Metric of a member that names none.
pub const DEFAULT_METRIC: u32 = 100;

/// The rules of `config apply` that [`Config::parse`] and [`Config::check`]
/// cannot check, for want of the pinned state (readable by root only).
pub const NEEDS_THE_PINNED_STATE: [&str; 3] = [
    "how much applying the file removes (a file with no group needs --allow-empty, \
     one that removes more than half of the anycast addresses --force)",
    "whether the kernel takes the on-link members' interfaces for XDP redirect",
    "whether the pinned state was made by a compatible build",
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
    /// Its members, by name.
    pub members: BTreeMap<MemberName, MemberConfig>,
}

/// One member of a [`GroupConfig`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberConfig {
    /// Line of the member's name.
    pub line: usize,
    /// On-link (interface and MAC) or routed (address).
    pub via: MemberVia,
    /// Lower is nearer.
    pub metric: u32,
    /// Share among tied members, 1..=100.
    pub weight: u8,
    /// Up, down or draining.
    pub state: MemberState,
}

/// The file as TOML has it, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    group: BTreeMap<Spanned<String>, RawGroup>,
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
    #[serde(default)]
    member: BTreeMap<Spanned<String>, RawMember>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    iface: Option<Spanned<String>>,
    mac: Option<Spanned<String>>,
    encap: Option<Spanned<String>>,
    metric: Option<u32>,
    weight: Option<Spanned<i64>>,
    state: Option<RawState>,
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

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawState {
    Up,
    Down,
    #[serde(alias = "draining")]
    Drain,
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
            let mut members = BTreeMap::new();
            let mut ways: HashSet<MemberVia> = HashSet::new();
            for (mname, m) in g.member {
                let mn = mname.get_ref().clone();
                let mf = |key: &str| format!("group.{gname}.member.{mn}{key}");
                let member = c.check(&mname, || mf(""), MemberName::new(&mn))?;
                let via = match (&m.iface, &m.mac, &m.encap) {
                    (Some(iface), Some(mac), None) => {
                        let mac = c.check(mac, || mf(".mac"), parse_mac(mac.get_ref()))?;
                        if iface.get_ref().is_empty() || iface.get_ref().len() >= 16 {
                            let e = Error::UnknownInterface(iface.get_ref().clone());
                            return Err(c.check(iface, || mf(".iface"), Err(e))?);
                        }
                        MemberVia::L2 {
                            iface: iface.get_ref().clone(),
                            mac,
                        }
                    }
                    (None, None, Some(a)) => {
                        let role = Endpoint::Encap;
                        let addr = c.check(a, || mf(".encap"), parse_unicast(a.get_ref(), role))?;
                        endpoints.push((addr, role, c.line(a), mf(".encap")));
                        MemberVia::Encap(addr)
                    }
                    _ => return Err(c.check(&mname, || mf(""), Err(Error::MemberVia))?),
                };
                if !ways.insert(via.clone()) {
                    let e = Error::MemberSourceTaken(match &via {
                        MemberVia::L2 { iface, mac } => format!("{iface} {}", format_mac(mac)),
                        MemberVia::Encap(a) => a.to_string(),
                    });
                    return Err(c.check(&mname, || mf(""), Err(e))?);
                }
                let weight = match &m.weight {
                    Some(w) => c.check(w, || mf(".weight"), weight(*w.get_ref()))?,
                    None => 1,
                };
                let state = match m.state {
                    None | Some(RawState::Up) => MemberState::Up,
                    Some(RawState::Down) => MemberState::Down,
                    Some(RawState::Drain) => MemberState::Draining,
                };
                let line = c.line(&mname);
                let metric = m.metric.unwrap_or(DEFAULT_METRIC);
                members.insert(
                    member,
                    MemberConfig {
                        line,
                        via,
                        metric,
                        weight,
                        state,
                    },
                );
            }
            check_ties(&group, &members)?;
            let line = c.line(&name);
            cfg.groups.insert(
                group,
                GroupConfig {
                    line,
                    options,
                    addresses,
                    members,
                },
            );
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
    /// the tables of this build ([`Capacities::BUILT_IN`]). What is left
    /// is [`NEEDS_THE_PINNED_STATE`].
    pub fn check(&self, resolve: &mut dyn FnMut(&MemberVia) -> Result<Via>) -> Result<()> {
        self.resolve(resolve)?;
        self.check_fits(&Capacities::BUILT_IN)
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
        let all = || self.groups.values().flat_map(|g| &g.addresses);
        let exact = all().filter(|a| a.is_exact()).count();
        let ports: HashSet<&str> = self
            .groups
            .values()
            .flat_map(|g| g.members.values())
            .filter_map(|m| match &m.via {
                MemberVia::L2 { iface, .. } => Some(iface.as_str()),
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

    /// How many addresses and prefixes, and how many members, in all groups.
    pub fn totals(&self) -> (usize, usize) {
        self.groups.values().fold((0, 0), |(a, m), g| {
            (a + g.addresses.len(), m + g.members.len())
        })
    }
}

/// Refuses a group with more than [`MAX_TIED`] members up at one metric
/// (only that many share its traffic), naming the first member, in file
/// order, past the limit.
fn check_ties(
    group: &GroupName,
    members: &BTreeMap<MemberName, MemberConfig>,
) -> Result<(), ConfigError> {
    let mut up: Vec<(&MemberName, &MemberConfig)> = members
        .iter()
        .filter(|(_, m)| m.state == MemberState::Up)
        .collect();
    up.sort_by_key(|(_, m)| m.line);
    let mut at: HashMap<u32, usize> = HashMap::new();
    for (name, m) in up {
        let n = at.entry(m.metric).or_default();
        *n += 1;
        if *n > MAX_TIED {
            let count = members
                .values()
                .filter(|o| o.state == MemberState::Up && o.metric == m.metric)
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
            "{} groups, {a} addresses and prefixes, {m} members",
            self.groups.len()
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
                g.addresses.len(),
                g.members.len()
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../examples/anycast.toml");

    fn err(text: &str) -> String {
        Config::parse(text).expect_err(text).to_string()
    }

    #[test]
    fn the_example_parses() {
        let cfg = Config::parse(EXAMPLE).expect("examples/anycast.toml");
        assert!(cfg.groups.len() >= 2, "{cfg}");
        let dns = &cfg.groups["dns"];
        assert_eq!(dns.options.fallback, Some(Fallback::Drop));
        assert_eq!(dns.members["m1"].metric, 10);
        assert!(matches!(dns.members["m1"].via, MemberVia::L2 { .. }));
        assert!(matches!(dns.members["far"].via, MemberVia::Encap(_)));
        assert_eq!(dns.members["far"].state, MemberState::Draining);
        assert_eq!(
            cfg.groups["web"].addresses[0].to_string(),
            "2001:db8:a::/48"
        );
    }

    #[test]
    fn defaults_and_inline_tables() {
        let cfg = Config::parse(
            "[group.g]\naddresses = [\"2001:db8::1\"]\nmember.a = { encap = \"2001:db8:f::1\" }\n",
        )
        .expect("minimal");
        let g = &cfg.groups["g"];
        assert_eq!(g.options, GroupOptions::default());
        let a = &g.members["a"];
        assert_eq!((a.metric, a.weight, a.state), (100, 1, MemberState::Up));
        assert_eq!(a.line, 3);
        assert_eq!(Config::parse("").expect("empty"), Config::default());
        assert!(
            Config::parse("# nothing\n")
                .expect("comment")
                .groups
                .is_empty()
        );
    }

    #[test]
    fn at_most_64_members_of_a_group_are_up_at_one_metric() {
        let file = |n: usize, metric_of_last: u32, state_of_last: &str| {
            let mut t = String::from("[group.g]\n");
            for i in 0..n {
                let (metric, state) = if i + 1 == n {
                    (metric_of_last, state_of_last)
                } else {
                    (10, "up")
                };
                t += &format!(
                    "member.m{i:03} = {{ encap = \"2001:db8:f::{i:x}\", metric = {metric}, state = \"{state}\" }}\n"
                );
            }
            t
        };
        assert!(Config::parse(&file(64, 10, "up")).is_ok());
        // A 65th up at another metric, or not up, is fine.
        assert!(Config::parse(&file(65, 11, "up")).is_ok());
        assert!(Config::parse(&file(65, 10, "down")).is_ok());
        assert!(Config::parse(&file(65, 10, "drain")).is_ok());
        let e = err(&file(65, 10, "up"));
        assert!(
            e.starts_with(
                "line 66: group.g.member.m064: group `g` would have 65 members up at metric 10; \
                 at most 64"
            ),
            "{e}"
        );
    }

    #[test]
    fn errors_quote_at_most_80_characters_of_bad_input_on_one_line() {
        let long = "x".repeat(500);
        for text in [
            format!("[group.dns]\naddresses = [\"{long}\"]\n"),
            format!("[group.dns]\nfallback = \"{long}\"\n"),
            format!("[group.\"{long}\"]\n"),
            format!("[group.dns.member.m1]\niface = \"eth1\"\nmac = \"{long}\"\n"),
            "[group.dns]\naddresses = [\"\\u0007\\n\\u001b[31m\"]\n".to_string(),
        ] {
            let e = err(&text);
            assert_eq!(e.lines().count(), 1, "{e}");
            assert!(!e.chars().any(char::is_control), "{e:?}");
            assert!(!e.contains(&"x".repeat(81)), "{e}");
        }
    }

    #[test]
    fn the_file_must_fit_the_tables_and_its_interfaces_must_exist() {
        let cfg = Config::parse(
            "[group.a]\naddresses = [\"2001:db8::1\", \"2001:db8:1::/48\"]\n\
             member.m1 = { iface = \"eth9\", mac = \"02:00:00:00:00:01\" }\n\
             [group.b]\nmember.m2 = { encap = \"2001:db8:f::2\" }\n",
        )
        .expect("valid");
        let fits = |c: Capacities| cfg.check_fits(&c).map_err(|e| e.to_string());
        let tight = Capacities {
            groups: 2,
            members: 2,
            addresses: 1,
            prefixes: 1,
            egress_ports: 1,
        };
        assert_eq!(fits(tight), Ok(()));
        for (c, want) in [
            (
                Capacities { groups: 1, ..tight },
                "needs 2 entries of the group table, which holds 1",
            ),
            (
                Capacities {
                    members: 1,
                    ..tight
                },
                "needs 2 entries of the member table",
            ),
            (
                Capacities {
                    addresses: 0,
                    ..tight
                },
                "needs 1 entries of the anycast address table",
            ),
            (
                Capacities {
                    prefixes: 0,
                    ..tight
                },
                "needs 1 entries of the anycast prefix table",
            ),
            (
                Capacities {
                    egress_ports: 0,
                    ..tight
                },
                "of the egress port table",
            ),
        ] {
            let e = fits(c).expect_err(want);
            assert!(e.contains(want), "{e}");
        }
        let e = cfg
            .check(&mut |v| match v {
                MemberVia::L2 { iface, .. } => Err(Error::UnknownInterface(iface.clone())),
                MemberVia::Encap(a) => Ok(Via::Encap(*a)),
            })
            .expect_err("eth9 is unknown")
            .to_string();
        assert_eq!(
            e,
            "line 3: group.a.member.m1.iface: unknown interface `eth9`"
        );
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        for (text, want) in [
            (
                "[group.dns]\nfallback = \"dorp\"\n",
                "line 2, column 12: unknown variant `dorp`",
            ),
            (
                "[group.dns]\nfalback = \"drop\"\n",
                "line 2, column 1: unknown field `falback`",
            ),
            (
                "[group.dns]\naddresses = [\"2001:db8::1/64\"]\n",
                "line 2: group.dns.addresses: invalid anycast address `2001:db8::1/64`",
            ),
            (
                "[group.dns]\naddresses = [\n  \"2001:db8::1\",\n  \"nope\",\n]\n",
                "line 4: group.dns.addresses: invalid anycast address `nope`",
            ),
            ("[group.\"a b\"]\n", "line 1: group.a b: invalid group name"),
            (
                "[group.dns]\ntable-size = 1000\n",
                "line 2: group.dns.table-size: invalid table size 1000",
            ),
            (
                "[group.dns]\nflow-timeout = 0\n",
                "line 2: group.dns.flow-timeout: invalid flow timeout 0",
            ),
            (
                "[group.dns]\nflow-timeout-other = -1\n",
                "line 2, column 22: invalid value: integer `-1`, expected u32",
            ),
            (
                "[group.dns]\ntunnel-source = \"ff02::1\"\n",
                "line 2: group.dns.tunnel-source: invalid tunnel source `ff02::1`: it is in multicast space (ff00::/8)",
            ),
            (
                "[group.dns.member.m1]\niface = \"eth1\"\nmac = \"01:00:00:00:00:01\"\n",
                "line 3: group.dns.member.m1.mac: invalid MAC address",
            ),
            (
                "[group.dns.member.m1]\niface = \"eth1\"\n",
                "line 1: group.dns.member.m1: a member is reached either on-link",
            ),
            (
                "[group.dns.member.m1]\niface = \"eth1\"\nmac = \"02:00:00:00:00:01\"\nencap = \"2001:db8::2\"\n",
                "group.dns.member.m1: a member is reached either",
            ),
            (
                "[group.dns.member.m1]\nencap = \"2001:db8::/64\"\n",
                "line 2: group.dns.member.m1.encap: invalid encap address `2001:db8::/64`: it is a prefix",
            ),
            (
                "[group.dns.member.m1]\nencap = \"2001:db8::2\"\nweight = 0\n",
                "line 3: group.dns.member.m1.weight: invalid weight 0",
            ),
            (
                "[group.dns.member.m1]\nencap = \"2001:db8::2\"\nweight = 300\n",
                "line 3: group.dns.member.m1.weight: invalid weight 300: use 1 to 100",
            ),
            (
                "[group.dns.member.m1]\nencap = \"2001:db8::2\"\nweight = -1\n",
                "line 3: group.dns.member.m1.weight: invalid weight -1: use 1 to 100",
            ),
            (
                "[group.dns]\naddresses = [\"fe80::/10\"]\n",
                "line 2: group.dns.addresses: invalid anycast address `fe80::/10`: it is in link-local space (fe80::/10)",
            ),
            (
                "[group.dns]\naddresses = [\"2001:db8::1\", \"fc00::/6\"]\n",
                "invalid anycast address `fc00::/6`: it overlaps link-local space (fe80::/10)",
            ),
            (
                "[group.dns.member.m1]\nencap = \"fe80::2\"\n",
                "line 2: group.dns.member.m1.encap: invalid encap address `fe80::2`: it is in link-local space (fe80::/10)",
            ),
            (
                "[group.dns]\naddresses = [\"2001:db8:a::/48\"]\n[group.dns.member.m1]\nencap = \"2001:db8:a::2\"\n",
                "line 4: group.dns.member.m1.encap: invalid encap address 2001:db8:a::2: it is an anycast address of group `dns` (2001:db8:a::/48)",
            ),
            (
                "[group.web]\ntunnel-source = \"2001:db8::53\"\n[group.dns]\naddresses = [\"2001:db8::53\"]\n",
                "line 2: group.web.tunnel-source: invalid tunnel source 2001:db8::53: it is an anycast address of group `dns`",
            ),
            (
                "[group.dns.member.m1]\nencap = \"2001:db8::2\"\nstate = \"sleepy\"\n",
                "line 3, column 9: unknown variant `sleepy`",
            ),
            (
                "[group.dns.member.\"m/1\"]\nencap = \"2001:db8::2\"\n",
                "line 1: group.dns.member.m/1: invalid member name",
            ),
            (
                "[group.dns.member.m1]\nencap = \"2001:db8::2\"\n[group.dns.member.m2]\nencap = \"2001:db8::2\"\n",
                "line 3: group.dns.member.m2: another member of the group is already reached through 2001:db8::2",
            ),
            (
                "[group.a]\naddresses = [\"2001:db8::1\"]\n[group.b]\naddresses = [\"2001:db8::1\"]\n",
                "line 4: group.b.addresses: 2001:db8::1 is already an anycast address of group `a`",
            ),
            (
                "[group.a]\naddresses = [\"2001:db8::1\", \"2001:db8::1\"]\n",
                "group.a.addresses: invalid anycast address `2001:db8::1`: listed twice",
            ),
            ("[group.a]\n[group.a]\n", "line 2, column 8: duplicate key"),
            ("[group.a\n", "line 1, column 9:"),
            ("groups = 1\n", "line 1, column 1: unknown field `groups`"),
            (
                "[group.a]\nmember = 3\n",
                "line 2, column 10: invalid type: integer `3`, expected a map",
            ),
        ] {
            let e = err(text);
            assert!(e.contains(want), "{text:?}\n  got:  {e}\n  want: {want}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }
}

#[cfg(test)]
mod fuzz {
    //! The TOML front end under random and mutated documents: no input
    //! panics, and every rejection is one line that names its line (and,
    //! for a bad value, its field).
    use super::*;

    use crate::addr::fuzz::Rng;

    fn pick<'a>(r: &mut Rng, from: &[&'a str]) -> &'a str {
        from[r.below(from.len())]
    }

    /// A key with values that fit and values that do not.
    type Key = (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
    );

    /// Keys of a group table.
    const GROUP_KEYS: &[Key] = &[
        ("fallback", &["\"pass\"", "\"drop\""], &["\"dorp\"", "1"]),
        (
            "affinity",
            &["\"flow\"", "\"none\""],
            &["\"sticky\"", "true"],
        ),
        (
            "flow-timeout",
            &["300", "1", "86400"],
            &["0", "86401", "-1"],
        ),
        ("flow-timeout-other", &["30", "60"], &["4294967296", "1.5"]),
        (
            "table-size",
            &["1021", "4093", "7", "251"],
            &["4099", "1000", "0"],
        ),
        (
            "tunnel-source",
            &["\"2001:db8::1\""],
            &["\"ff02::1\"", "\"::\"", "\"2001:db8::/64\""],
        ),
        (
            "addresses",
            &[
                "[\"2001:db8::53\", \"2001:db8:a::/48\"]",
                "[\"2001:db8::54\"]",
                "[]",
            ],
            &[
                "[\"2001:db8::1/64\"]",
                "[\"10.0.0.1\"]",
                "[\"2001:db8::55\", \"2001:db8::55\"]",
                "[1, 2]",
            ],
        ),
    ];
    /// Keys of a member table.
    const MEMBER_KEYS: &[Key] = &[
        (
            "iface",
            &["\"eth1\""],
            &["\"\"", "\"a-very-long-interface\""],
        ),
        (
            "mac",
            &["\"02:00:00:00:00:01\""],
            &["\"01:00:00:00:00:01\"", "\"02:00\""],
        ),
        (
            "encap",
            &["\"2001:db8:f::2\""],
            &["\"fe80::/10\"", "\"::1\""],
        ),
        (
            "metric",
            &["10", "20", "0", "4294967295"],
            &["-5", "4294967296"],
        ),
        ("weight", &["1", "2", "100"], &["0", "101", "256"]),
        (
            "state",
            &["\"up\"", "\"down\"", "\"drain\"", "\"draining\""],
            &["\"sleepy\""],
        ),
    ];
    const NAMES: &[&str] = &["dns", "web", "m1", "m2", "\"q\"", "\"n-_.9\"", "A_0"];
    /// Names that are bad TOML keys, or good keys but bad names.
    const BAD_NAMES: &[&str] = &["a.b", "x y", "\"x y\"", "é", "\"é\"", "\"\"", "\"a/b\""];

    fn name(r: &mut Rng) -> &'static str {
        if r.below(10) == 0 {
            pick(r, BAD_NAMES)
        } else {
            pick(r, NAMES)
        }
    }

    /// The keys of one table: mostly ones that belong there, each once,
    /// with values that mostly fit; now and then a stray key or value.
    fn table(r: &mut Rng, s: &mut String, keys: &[Key]) {
        let mut used = Vec::new();
        for _ in 0..r.below(keys.len() + 1) {
            let (k, good, bad) = keys[r.below(keys.len())];
            if used.contains(&k) && r.below(40) != 0 {
                continue;
            }
            used.push(k);
            let v = match r.below(40) {
                0 => keys[r.below(keys.len())].1,
                1..=2 => bad,
                _ => good,
            };
            let k = if r.below(80) == 0 { "bogus" } else { k };
            *s += &format!("{k} = {}\n", v[r.below(v.len())]);
        }
    }

    /// A plausible document: group and member tables with random keys and values.
    fn document(r: &mut Rng) -> String {
        let mut s = String::new();
        let mut groups: Vec<&str> = (0..1 + r.below(3)).map(|_| name(r)).collect();
        groups.sort_unstable();
        groups.dedup();
        for g in &groups {
            if r.below(8) != 0 {
                s += &format!("[group.{g}]\n");
                table(r, &mut s, GROUP_KEYS);
            }
            let mut members: Vec<&str> = (0..r.below(3)).map(|_| name(r)).collect();
            members.sort_unstable();
            members.dedup();
            for m in members {
                s += &format!("[group.{g}.member.{m}]\n");
                if r.below(2) == 0 {
                    s += "encap = \"2001:db8:f::9\"\n";
                    if r.below(6) == 0 {
                        // Both ways in, or half of the other one.
                        table(r, &mut s, &MEMBER_KEYS[..2]);
                    }
                } else {
                    s += "iface = \"eth1\"\nmac = \"02:00:00:00:00:09\"\n";
                }
                table(r, &mut s, &MEMBER_KEYS[3..]);
            }
        }
        s
    }

    /// A mutation: bytes flipped, dropped, duplicated or inserted from the
    /// TOML alphabet, or a line cut.
    fn mutate(r: &mut Rng, s: &str) -> String {
        let mut b = s.as_bytes().to_vec();
        for _ in 0..1 + r.below(3) {
            let i = r.below(b.len() + 1);
            match r.below(5) {
                0 if i < b.len() => b[i] = b"[]{}=\".,#\n '\\x0:/-"[r.below(18)],
                1 if i < b.len() => {
                    b.remove(i);
                }
                2 => b.insert(i, b"[]{}=\".,#\n '\\x0:/-"[r.below(18)]),
                3 if i < b.len() => b.truncate(i),
                _ if i < b.len() => b[i] ^= 1 << r.below(8),
                _ => {}
            }
        }
        String::from_utf8_lossy(&b).into_owned()
    }

    /// Checks one document; returns 0 when it was accepted, 1 when refused
    /// as TOML, 2 when refused as a setting.
    fn judge(text: &str) -> usize {
        match Config::parse(text) {
            Ok(cfg) => {
                // What passes is valid by construction of the library's checks.
                for (g, gc) in &cfg.groups {
                    GroupName::new(g.as_str()).expect("group name");
                    gc.options.validate().expect("options");
                }
                0
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.starts_with("line "), "{text:?}: {msg}");
                assert_eq!(msg.lines().count(), 1, "{text:?}: {msg}");
                match &e {
                    ConfigError::Invalid { field, line, .. } => {
                        assert!(field.starts_with("group."), "{text:?}: {msg}");
                        assert!(*line <= text.lines().count().max(1), "{text:?}: {msg}");
                        2
                    }
                    ConfigError::Syntax { .. } => 1,
                }
            }
        }
    }

    #[test]
    fn random_and_mutated_documents_never_panic_and_errors_are_one_line() {
        let mut r = Rng(0x7031_5eed_c0f1_9a11);
        let example = include_str!("../../examples/anycast.toml");
        let start = std::time::Instant::now();
        let mut seen = [0usize; 3];
        for _ in 0..50_000 {
            let base = match r.below(10) {
                0 => example.to_string(),
                _ => document(&mut r),
            };
            seen[judge(&base)] += 1;
            seen[judge(&mutate(&mut r, &base))] += 1;
        }
        eprintln!(
            "100000 documents in {:.1?}: {} accepted, {} refused as TOML, {} as settings",
            start.elapsed(),
            seen[0],
            seen[1],
            seen[2]
        );
        // Every outcome is exercised, not only the parser's refusals.
        assert!(seen.iter().all(|n| *n > 5_000), "{seen:?}");
    }
}
