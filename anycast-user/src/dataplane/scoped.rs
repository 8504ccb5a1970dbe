//! Scoped addresses and subnets on the [`Dataplane`]: interface names are
//! resolved here, in the current network namespace, against the
//! attachments the scopes follow.

use std::net::Ipv6Addr;

use crate::{
    addr::{AnycastPrefix, subnet_text},
    error::{Error, Result},
    link::ifindex,
    names::GroupName,
    netns,
    state::{SubnetEntry, SubnetSpec},
};

use super::{Dataplane, require_root};

/// The interfaces of the current network namespace that have an address
/// in the subnet with 64-bit prefix `prefix` (from the kernel's list of
/// IPv6 addresses, `/proc/thread-self/net/if_inet6`), sorted.
pub fn interfaces_carrying(prefix: [u8; 8]) -> Result<Vec<String>> {
    let path = std::path::Path::new("/proc/thread-self/net/if_inet6");
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for line in text.lines() {
        // "ADDRESS-HEX IFINDEX PREFIXLEN SCOPE FLAGS NAME".
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(hex), Some(name)) = (fields.first(), fields.last()) else {
            continue;
        };
        let Ok(bits) = u128::from_str_radix(hex, 16) else {
            continue;
        };
        if Ipv6Addr::from(bits).octets()[..8] == prefix && !out.contains(&name.to_string()) {
            out.push((*name).to_string());
        }
    }
    out.sort();
    Ok(out)
}

impl Dataplane {
    /// The scope id of interfaces `names` (each must exist in the current
    /// network namespace), allocated when new.
    fn scope_of(&mut self, names: &[String]) -> Result<u16> {
        let mut names: Vec<String> = names.to_vec();
        names.sort();
        names.dedup();
        for n in &names {
            ifindex(n)?;
        }
        let netns = netns::current()?;
        let attached = self.attachments.all()?;
        self.state.scope_id(netns, &names, &attached)
    }

    /// Adds anycast addresses and prefixes to a group, reached only from
    /// interfaces `scope` (of the current network namespace) when given,
    /// from everywhere otherwise; addresses the group has already take
    /// that scope.
    pub fn add_addresses_scoped(
        &mut self,
        list: &[AnycastPrefix],
        group: &GroupName,
        scope: Option<&[String]>,
    ) -> Result<usize> {
        require_root("changing anycast addresses")?;
        let _lock = self.lock()?;
        self.recover()?;
        self.state.begin_change()?;
        let r = match scope {
            Some(names) => self.scope_of(names),
            None => Ok(0),
        }
        .and_then(|id| self.state.load_addresses_scoped(list, group, id));
        self.state.end_change()?;
        r
    }

    /// Registers a subnet's anycast addresses (see [`State::set_subnet`]),
    /// scoped to interfaces `scope` when given, else to the interfaces of
    /// the current network namespace that carry the subnet (none is an
    /// error). Returns how many addresses were added.
    ///
    /// [`State::set_subnet`]: crate::state::State::set_subnet
    pub fn set_subnet(&mut self, spec: &SubnetSpec, scope: Option<&[String]>) -> Result<usize> {
        require_root("changing anycast addresses")?;
        let names = match scope {
            Some(n) => n.to_vec(),
            None => interfaces_carrying(spec.prefix)?,
        };
        if names.is_empty() {
            return Err(Error::SubnetNowhere(subnet_text(spec.prefix)));
        }
        let _lock = self.lock()?;
        self.recover()?;
        self.state.begin_change()?;
        let r = self
            .scope_of(&names)
            .and_then(|id| self.state.set_subnet(spec, id, scope.is_some()));
        self.state.end_change()?;
        r
    }

    /// Removes a registered subnet and its addresses; returns the name of
    /// its group if that was freed.
    pub fn del_subnet(&mut self, prefix: [u8; 8]) -> Result<Option<String>> {
        require_root("changing anycast addresses")?;
        self.change(|s| s.del_subnet(prefix))
    }

    /// Every registered subnet.
    pub fn subnets(&self) -> Result<Vec<SubnetEntry>> {
        self.state.subnets()
    }

    /// Brings every scope's attachments in line with the recorded
    /// attachments (after an attach or a detach).
    pub(super) fn sync_scopes(&mut self) -> Result<()> {
        let attached = self.attachments.all()?;
        self.state.sync_scopes(&attached, true)?;
        Ok(())
    }
}
