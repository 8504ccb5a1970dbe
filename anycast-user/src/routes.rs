//! The metrics of members with `metric = "route"`: the metric
//! (`RTA_PRIORITY`, `ip -6 route`'s `metric`) of the route the kernel would
//! send a packet to the member's address along (RTM_GETROUTE with
//! `RTM_F_FIB_MATCH`: policy rules, the longest matching prefix, the lowest
//! metric among routes to it), asked again whenever an IPv6 route changes.
//! A routing daemon (FRR, BIRD) installing its routes with its measure of
//! distance as their metric thereby decides which member is nearest.

use std::{collections::BTreeMap, net::Ipv6Addr};

use crate::{
    config::{Config, MetricSource},
    error::{ConfigError, Error},
    members::MemberVia,
    netlink::{
        Socket,
        route::{self, Route},
    },
};

/// What is known of the route to one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteTo {
    /// A route forwards there.
    Route(Route),
    /// None does (no route, or an unreachable, blackhole or prohibit one).
    NoRoute,
    /// The kernel could not be asked.
    Unknown(String),
}

impl RouteTo {
    /// The member's metric, when it has a route.
    pub fn metric(&self) -> Option<u32> {
        match self {
            RouteTo::Route(r) => Some(r.metric),
            _ => None,
        }
    }

    /// Why its member is down, if it is.
    pub fn problem(&self) -> Option<String> {
        match self {
            RouteTo::Route(_) => None,
            RouteTo::NoRoute => Some("no route".into()),
            RouteTo::Unknown(e) => Some(format!("route unknown: {e}")),
        }
    }
}

/// The addresses whose routes are followed.
#[derive(Debug, Default)]
pub struct RouteMetrics {
    watched: BTreeMap<Ipv6Addr, RouteTo>,
    /// The last metric each address had: a member without a route keeps it
    /// in the data plane (down), so that coming back changes only its state.
    last: BTreeMap<Ipv6Addr, u32>,
}

impl RouteMetrics {
    /// Follows exactly `wanted` from now on, and asks their routes.
    pub fn want(&mut self, wanted: impl IntoIterator<Item = Ipv6Addr>) {
        self.watched = wanted
            .into_iter()
            .map(|a| (a, RouteTo::Unknown("not asked yet".into())))
            .collect();
        self.last.retain(|a, _| self.watched.contains_key(a));
        self.refresh();
    }

    /// Whether any address is followed.
    pub fn is_empty(&self) -> bool {
        self.watched.is_empty()
    }

    /// Asks every route again; whether a metric or a problem changed.
    pub fn refresh(&mut self) -> bool {
        let mut changed = false;
        // One socket for every lookup of the round.
        let mut sock = Socket::open(0);
        for (addr, known) in &mut self.watched {
            let asked = match &mut sock {
                Ok(s) => route::lookup(s, *addr),
                Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
            };
            let now = match asked {
                Ok(Some(r)) => RouteTo::Route(r),
                Ok(None) => RouteTo::NoRoute,
                Err(e) => RouteTo::Unknown(e.to_string()),
            };
            changed |= (known.metric(), known.problem()) != (now.metric(), now.problem());
            if let Some(m) = now.metric() {
                self.last.insert(*addr, m);
            }
            *known = now;
        }
        changed
    }

    /// The metric the route to `addr` has, or had last.
    pub fn last_metric(&self, addr: Ipv6Addr) -> Option<u32> {
        self.last.get(&addr).copied()
    }

    /// What is known of the route to `addr`.
    pub fn get(&self, addr: Ipv6Addr) -> RouteTo {
        self.watched
            .get(&addr)
            .cloned()
            .unwrap_or_else(|| RouteTo::Unknown("not followed".into()))
    }
}

/// `cfg` with each `metric = "route"` taken once, now, from the route to
/// the member's address (what `config apply` does, as it runs once). A
/// member with no route is refused, with its line.
pub fn metrics_now(cfg: &Config) -> Result<Config, ConfigError> {
    let mut out = cfg.clone();
    for (g, gc) in &mut out.groups {
        for (m, mc) in &mut gc.members {
            if mc.metric_source != MetricSource::Route {
                continue;
            }
            let addr = match mc.via {
                MemberVia::Encap(a) => Some(a),
                _ => mc.addr,
            };
            let err = |error| ConfigError::Invalid {
                line: mc.line,
                field: format!("group.{g}.member.{m}.metric"),
                error: Box::new(error),
            };
            let Some(addr) = addr else {
                return Err(err(Error::InvalidMetric("\"route\" without addr".into())));
            };
            match route::to(addr) {
                Ok(Some(r)) => mc.metric = r.metric,
                Ok(None) => return Err(err(Error::NoRoute(addr))),
                Err(source) => {
                    return Err(err(Error::Io {
                        path: "rtnetlink (routes)".into(),
                        source,
                    }));
                }
            }
            mc.metric_source = MetricSource::File;
        }
    }
    Ok(out)
}
