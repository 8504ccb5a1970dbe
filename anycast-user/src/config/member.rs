//! One `[group.G.member.M]` of the file: how it is reached (on-link by MAC
//! or by address, or routed), its metric (a number or `"route"`), weight,
//! state and check.

use std::net::Ipv6Addr;

use anycast_common::MemberState;
use serde::Deserialize;
use toml::Spanned;

use super::{Checker, DEFAULT_METRIC, MemberConfig, check::RawCheck};
use crate::{
    addr::{AnycastPrefix, parse_unicast},
    error::{ConfigError, Endpoint, Error},
    health::{Probe, Target},
    members::{MemberVia, parse_mac, weight},
    names::MemberName,
};

/// Where a member's metric comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricSource {
    /// The file's number (`metric = 10`, or the default).
    #[default]
    File,
    /// The kernel's route to the member's address (`metric = "route"`):
    /// the route's metric, followed by the service.
    Route,
}

impl std::fmt::Display for MetricSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MetricSource::File => "file",
            MetricSource::Route => "route",
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMember {
    iface: Option<Spanned<String>>,
    mac: Option<Spanned<String>>,
    encap: Option<Spanned<String>>,
    metric: Option<Spanned<RawMetric>>,
    weight: Option<Spanned<i64>>,
    state: Option<RawState>,
    addr: Option<Spanned<String>>,
    check: Option<RawCheck>,
}

/// `metric = 10` or `metric = "route"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawMetric {
    Number(i64),
    Word(String),
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawState {
    Up,
    Down,
    #[serde(alias = "draining")]
    Drain,
}

/// Validates member `mname` of group `gname` (whose addresses are
/// `addresses`), noting its addresses in `endpoints` (none may be anycast).
pub(super) fn parse(
    c: &Checker,
    gname: &str,
    mname: &Spanned<String>,
    m: RawMember,
    addresses: &[AnycastPrefix],
    endpoints: &mut Vec<(Ipv6Addr, Endpoint, usize, String)>,
) -> Result<(MemberName, MemberConfig), ConfigError> {
    let mn = mname.get_ref().clone();
    let mf = |key: &str| format!("group.{gname}.member.{mn}{key}");
    let member = c.check(mname, || mf(""), MemberName::new(&mn))?;
    let mut addr = None;
    if let Some(a) = &m.addr {
        if m.encap.is_some() {
            let e = Error::InvalidCheck(
                "a routed member is reached at its encap address; addr is for on-link members"
                    .into(),
            );
            return Err(c.check(a, || mf(".addr"), Err(e))?);
        }
        let role = Endpoint::MemberAddr;
        let parsed = c.check(a, || mf(".addr"), parse_unicast(a.get_ref(), role))?;
        endpoints.push((parsed, role, c.line(a), mf(".addr")));
        addr = Some(parsed);
    }
    let via = match (&m.iface, &m.mac, &m.encap) {
        (Some(iface), mac, None) if mac.is_some() || addr.is_some() => {
            if iface.get_ref().is_empty() || iface.get_ref().len() >= 16 {
                let e = Error::UnknownInterface(iface.get_ref().clone());
                return Err(c.check(iface, || mf(".iface"), Err(e))?);
            }
            let iface = iface.get_ref().clone();
            match (mac, addr) {
                (Some(mac), _) => MemberVia::L2 {
                    iface,
                    mac: c.check(mac, || mf(".mac"), parse_mac(mac.get_ref()))?,
                },
                // The MAC from the neighbour table.
                (None, Some(addr)) => MemberVia::Neighbour { iface, addr },
                (None, None) => return Err(c.check(mname, || mf(""), Err(Error::MemberVia))?),
            }
        }
        (None, None, Some(a)) => {
            let role = Endpoint::Encap;
            let addr = c.check(a, || mf(".encap"), parse_unicast(a.get_ref(), role))?;
            endpoints.push((addr, role, c.line(a), mf(".encap")));
            MemberVia::Encap(addr)
        }
        _ => return Err(c.check(mname, || mf(""), Err(Error::MemberVia))?),
    };
    let (metric, metric_source) = match &m.metric {
        None => (DEFAULT_METRIC, MetricSource::File),
        Some(at) => {
            let r = match at.get_ref() {
                RawMetric::Number(n) => u32::try_from(*n)
                    .map(|n| (n, MetricSource::File))
                    .map_err(|_| Error::InvalidMetric(n.to_string())),
                RawMetric::Word(w) if w == "route" => match via {
                    MemberVia::L2 { .. } if addr.is_none() => Err(Error::InvalidMetric(
                        "\"route\" without addr: the metric is that of the route to the member's addr"
                            .into(),
                    )),
                    _ => Ok((DEFAULT_METRIC, MetricSource::Route)),
                },
                RawMetric::Word(w) => Err(Error::InvalidMetric(format!("\"{w}\""))),
            };
            c.check(at, || mf(".metric"), r)?
        }
    };
    let weight = match &m.weight {
        Some(w) => c.check(w, || mf(".weight"), weight(*w.get_ref()))?,
        None => 1,
    };
    let state = match m.state {
        None | Some(RawState::Up) => MemberState::Up,
        Some(RawState::Down) => MemberState::Down,
        Some(RawState::Drain) => MemberState::Draining,
    };
    let check = match &m.check {
        None => None,
        Some(raw) => {
            let check = raw.check(c, &mf(""))?;
            if check.target == Target::Anycast
                && !matches!(check.probe, Probe::Exec { .. })
                && !addresses.iter().any(AnycastPrefix::is_exact)
            {
                return Err(ConfigError::Invalid {
                    line: c.line(mname),
                    field: mf(".check.target"),
                    error: Box::new(Error::InvalidCheck(
                        "a check with target = \"anycast\" probes the group's first anycast address, and the group has none (only prefixes)".into(),
                    )),
                });
            }
            if check.target == Target::Unicast
                && addr.is_none()
                && matches!(via, MemberVia::L2 { .. })
            {
                return Err(ConfigError::Invalid {
                    line: c.line(mname),
                    field: mf(".addr"),
                    error: Box::new(Error::InvalidCheck(
                        "a check with target = \"unicast\" of an on-link member needs its addr"
                            .into(),
                    )),
                });
            }
            Some(check)
        }
    };
    Ok((
        member,
        MemberConfig {
            line: c.line(mname),
            via,
            metric,
            metric_source,
            weight,
            state,
            addr,
            check,
        },
    ))
}
