//! A group's settings as operators give them: what happens with no live
//! member, the tunnel source, flow affinity and timeouts, the table size.

use std::net::Ipv6Addr;

use anycast_common::{Affinity, Fallback, GroupInfo, MAGLEV_MAX, maglev, wire::IPPROTO_TCP};
use serde::Serialize;

use crate::{
    addr::check_endpoint,
    error::{Endpoint, Error, Result},
};

/// Group settings to change; `None` leaves one as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupOptions {
    /// What happens with no live member.
    pub fallback: Option<Fallback>,
    /// Outer source of encapsulated packets.
    pub tunnel_source: Option<Ipv6Addr>,
    /// Flow affinity on or off.
    pub affinity: Option<Affinity>,
    /// Idle timeout of TCP flows, seconds.
    pub tcp_timeout: Option<u32>,
    /// Idle timeout of other flows, seconds.
    pub other_timeout: Option<u32>,
    /// Consistent-hash table size (a prime).
    pub table_size: Option<u32>,
}

impl GroupOptions {
    /// Whether no setting is given (nothing to change).
    pub fn is_empty(&self) -> bool {
        *self == GroupOptions::default()
    }

    /// Checks every option that is set: a unicast tunnel source (see
    /// [`check_endpoint`]; whether it is anycast is the state's to say), a prime
    /// table size from 7 to [`MAGLEV_MAX`], timeouts from 1 to 86400 s.
    pub fn validate(&self) -> Result<()> {
        if let Some(a) = self.tunnel_source {
            check_endpoint(a, Endpoint::TunnelSource)?;
        }
        if let Some(n) = self.table_size
            && (!maglev::is_prime(n) || n as usize > MAGLEV_MAX || n < 7)
        {
            return Err(Error::InvalidTableSize(n));
        }
        for t in [self.tcp_timeout, self.other_timeout].into_iter().flatten() {
            if t == 0 || t > 86_400 {
                return Err(Error::InvalidTimeout(t));
            }
        }
        Ok(())
    }

    /// Writes the options that are set into a group's stored settings.
    pub(crate) fn apply_to(&self, info: &mut GroupInfo) {
        if let Some(f) = self.fallback {
            info.fallback = f as u8;
        }
        if let Some(a) = self.tunnel_source {
            info.tunnel_source = a.octets();
            info.has_tunnel_source = 1;
        }
        if let Some(a) = self.affinity {
            info.affinity = a as u8;
        }
        if let Some(t) = self.tcp_timeout {
            info.tcp_timeout = t;
        }
        if let Some(t) = self.other_timeout {
            info.other_timeout = t;
        }
        if let Some(n) = self.table_size {
            info.table_size = n;
        }
    }
}

/// A group's settings as they are stored (defaults filled in), as `stats`
/// and `group list` show them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupSettings {
    /// `pass` or `drop`: what happens when no member is up.
    pub fallback: Fallback,
    /// Outer source of encapsulated packets, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel_source: Option<Ipv6Addr>,
    /// `flow` or `none`.
    pub affinity: Affinity,
    /// Idle timeout of TCP flows, seconds.
    pub tcp_timeout: u32,
    /// Idle timeout of other flows, seconds.
    pub other_timeout: u32,
    /// Consistent-hash table size.
    pub table_size: u32,
}

impl GroupSettings {
    /// The settings of a group's stored entry.
    pub(crate) fn of(info: &GroupInfo) -> Self {
        GroupSettings {
            fallback: Fallback::from_u8(info.fallback),
            tunnel_source: (info.has_tunnel_source != 0).then(|| info.tunnel_source.into()),
            affinity: Affinity::from_u8(info.affinity),
            tcp_timeout: (info.flow_timeout_ns(IPPROTO_TCP) / 1_000_000_000) as u32,
            other_timeout: (info.flow_timeout_ns(0) / 1_000_000_000) as u32,
            table_size: info.maglev_size(),
        }
    }
}

/// A group as `group list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupEntry {
    /// Its name.
    pub name: String,
    /// Group id.
    pub id: u32,
    /// How many anycast addresses and prefixes it has.
    pub addresses: u32,
    /// How many members it has.
    pub members: usize,
    /// Its settings.
    #[serde(flatten)]
    pub settings: GroupSettings,
}

impl GroupEntry {
    /// Group `id` as listed, from its stored entry and its number of members.
    pub(crate) fn new(id: u32, info: &GroupInfo, members: usize) -> Self {
        GroupEntry {
            name: info.name_str(),
            id,
            addresses: info.addresses,
            members,
            settings: GroupSettings::of(info),
        }
    }
}
