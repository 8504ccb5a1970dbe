//! What the service follows of the network for its members: the MACs of
//! on-link members given by address ([`Neighbours`]) and the metrics of
//! members with `metric = "route"` ([`RouteMetrics`]); and the file as it
//! stands with them ([`Follow::effective`]): the MAC and metric filled in,
//! a member that cannot be reached down.

use std::{
    net::Ipv6Addr,
    time::{Duration, Instant},
};

use anycast_common::MemberState;

use super::socket::Reachability;
use crate::{
    config::{Config, MemberConfig, MetricSource},
    error::Result,
    members::{MemberVia, format_mac},
    neighbours::Neighbours,
    routes::RouteMetrics,
};

/// The address whose route gives a member's metric: its encap address, or
/// an on-link member's `addr`.
fn route_addr(mc: &MemberConfig) -> Option<Ipv6Addr> {
    match mc.via {
        MemberVia::Encap(a) => Some(a),
        _ => mc.addr,
    }
}

/// The neighbours and routes of a file's members.
#[derive(Debug, Default)]
pub struct Follow {
    /// The MACs of members given by address.
    pub neighbours: Neighbours,
    /// The metrics of members with `metric = "route"`.
    pub routes: RouteMetrics,
}

impl Follow {
    /// Follows the members of `cfg` from now on; addresses not followed
    /// before are solicited and waited for, at most `wait`.
    pub fn want(&mut self, cfg: &Config, wait: Duration) -> Result<()> {
        let members = || cfg.groups.values().flat_map(|g| g.members.values());
        let new = self
            .neighbours
            .want(members().filter_map(|mc| match &mc.via {
                MemberVia::Neighbour { iface, addr } => Some((iface.clone(), *addr)),
                _ => None,
            }))?;
        self.routes.want(
            members()
                .filter(|mc| mc.metric_source == MetricSource::Route)
                .filter_map(route_addr),
        );
        let deadline = Instant::now() + wait;
        // Bounded by the deadline: one look per 100 ms.
        while !self.neighbours.known(&new) && Instant::now() < deadline {
            for line in self.neighbours.tick(Instant::now()) {
                log::warn!("{line}");
            }
            std::thread::sleep(Duration::from_millis(100));
            self.neighbours.resync()?;
        }
        Ok(())
    }

    /// Why member `mc` cannot be reached now, if it cannot.
    pub fn problem(&self, mc: &MemberConfig) -> Option<String> {
        let neighbour = match &mc.via {
            MemberVia::Neighbour { iface, addr } => self.neighbours.view(iface, *addr).problem,
            _ => None,
        };
        let route = match (mc.metric_source, route_addr(mc)) {
            (MetricSource::Route, Some(a)) => self.routes.get(a).problem(),
            _ => None,
        };
        match (neighbour, route) {
            (Some(n), Some(r)) => Some(format!("{n}; {r}")),
            (n, r) => n.or(r),
        }
    }

    /// `cfg` as the data plane should have it now: members given by
    /// address with the MAC resolved (those never resolved left out: there
    /// is nothing to send to), metrics from routes, and a member that
    /// cannot be reached down.
    pub fn effective(&self, cfg: &Config) -> Config {
        let mut out = cfg.clone();
        for gc in out.groups.values_mut() {
            gc.members.retain(|_, mc| match &mc.via {
                MemberVia::Neighbour { iface, addr } => self.neighbours.mac(iface, *addr).is_some(),
                _ => true,
            });
            for mc in gc.members.values_mut() {
                if self.problem(mc).is_some() {
                    mc.state = MemberState::Down;
                }
                if let MemberVia::Neighbour { iface, addr } = &mc.via
                    && let Some(mac) = self.neighbours.mac(iface, *addr)
                {
                    mc.via = MemberVia::L2 {
                        iface: iface.clone(),
                        mac,
                    };
                }
                if mc.metric_source == MetricSource::Route {
                    if let Some(m) = route_addr(mc).and_then(|a| self.routes.last_metric(a)) {
                        mc.metric = m;
                    }
                    mc.metric_source = MetricSource::File;
                }
            }
        }
        out
    }

    /// How each member of `cfg` is reached, for `anycast status`.
    pub fn reachability(&self, cfg: &Config, effective: &Config) -> Vec<Reachability> {
        let mut out = Vec::new();
        for (g, gc) in &cfg.groups {
            for (m, mc) in &gc.members {
                let now = effective.groups.get(g).and_then(|e| e.members.get(m));
                let (via, mac, neighbour) = match &mc.via {
                    MemberVia::L2 { mac, .. } => ("mac", Some(format_mac(mac)), None),
                    MemberVia::Neighbour { iface, addr } => {
                        let v = self.neighbours.view(iface, *addr);
                        ("neighbour", v.mac.as_ref().map(format_mac), Some(v.state))
                    }
                    MemberVia::Encap(_) => ("encap", None, None),
                };
                let metric = match (mc.metric_source, route_addr(mc)) {
                    (MetricSource::Route, Some(a)) => self.routes.get(a).metric(),
                    _ => now.map_or(Some(mc.metric), |e| Some(e.metric)),
                };
                out.push(Reachability {
                    group: g.to_string(),
                    member: m.to_string(),
                    via: via.into(),
                    mac,
                    neighbour,
                    metric_source: mc.metric_source,
                    metric,
                    down_reason: self.problem(mc),
                });
            }
        }
        out
    }
}
