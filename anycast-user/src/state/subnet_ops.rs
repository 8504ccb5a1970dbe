//! Scoped addresses and subnets on [`State`]: the scope ids addresses
//! carry, and the reserved subnet anycast addresses (RFC 2526) and
//! subnet-router anycast address (RFC 4291) of registered subnets.

use std::{
    collections::{HashMap, HashSet},
    net::Ipv6Addr,
};

use anycast_common::{
    IfaceConfig, MAX_SUBNET_ANYCAST_ID, NetnsId, SubnetInfo, subnet_anycast, subnet_anycast_id,
    subnet_anycast_meaning, subnet_router_anycast,
};
use serde::Serialize;

use super::{AddressEntry, State, scopes};
use crate::{
    addr::{AnycastPrefix, prefix64, subnet_text},
    error::{Error, Result},
    names::GroupName,
};

/// A subnet to register: its reserved anycast addresses of `ids`, and its
/// subnet-router anycast address when `subnet_router`, for `group`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetSpec {
    /// The 64-bit prefix.
    pub prefix: [u8; 8],
    /// The group of its addresses (created when new).
    pub group: GroupName,
    /// The anycast IDs, 0 to 127.
    pub ids: Vec<u8>,
    /// The subnet-router anycast address too.
    pub subnet_router: bool,
}

impl SubnetSpec {
    /// The anycast IDs of `list` (e.g. from `--ids`), each checked.
    pub fn ids_from(list: &[u32]) -> Result<Vec<u8>> {
        let mut ids = Vec::new();
        for &id in list {
            if id > u32::from(MAX_SUBNET_ANYCAST_ID) {
                return Err(Error::BadAnycastId(id));
            }
            ids.push(id as u8);
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// The addresses it registers.
    pub fn addresses(&self) -> Vec<AnycastPrefix> {
        subnet_addresses(self.prefix, &self.ids, self.subnet_router)
    }
}

/// The anycast addresses of the subnet with 64-bit prefix `prefix`: those
/// of anycast IDs `ids`, then its subnet-router anycast address when
/// `subnet_router`.
pub fn subnet_addresses(prefix: [u8; 8], ids: &[u8], subnet_router: bool) -> Vec<AnycastPrefix> {
    addresses_of(prefix, &info_ids(ids), subnet_router)
}

/// The ID bits of `ids`.
fn info_ids(ids: &[u8]) -> [u64; 2] {
    let mut bits = [0u64; 2];
    for &id in ids {
        bits[usize::from(id / 64)] |= 1 << (id % 64);
    }
    bits
}

/// The IDs of `bits`.
fn ids_of(bits: &[u64; 2]) -> Vec<u8> {
    (0..=MAX_SUBNET_ANYCAST_ID)
        .filter(|id| bits[usize::from(id / 64)] >> (id % 64) & 1 != 0)
        .collect()
}

/// The addresses of a subnet with ID bits `ids`.
fn addresses_of(prefix: [u8; 8], ids: &[u64; 2], subnet_router: bool) -> Vec<AnycastPrefix> {
    let exact = |a: [u8; 16]| AnycastPrefix {
        addr: a.into(),
        len: 128,
    };
    let mut out: Vec<AnycastPrefix> = ids_of(ids)
        .into_iter()
        .map(|id| exact(subnet_anycast(prefix, id)))
        .collect();
    if subnet_router {
        out.push(exact(subnet_router_anycast(prefix)));
    }
    out
}

/// A registered subnet, as `subnet list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubnetEntry {
    /// `PREFIX/64`.
    pub subnet: String,
    /// Its group.
    pub group: String,
    /// The anycast IDs configured.
    pub ids: Vec<u8>,
    /// Whether the subnet-router anycast address is configured.
    pub subnet_router: bool,
    /// The interfaces its addresses may be reached from.
    pub scope: Vec<String>,
    /// `given` (`--scope`) or `carried` (the interfaces that had an address
    /// in the subnet when it was added).
    pub scope_from: &'static str,
    /// Its addresses, with their origin.
    pub addresses: Vec<SubnetAddress>,
}

/// One address of a subnet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubnetAddress {
    /// The address.
    pub address: Ipv6Addr,
    /// Its anycast ID; `null` for the subnet-router anycast address.
    pub id: Option<u8>,
    /// What it is for.
    pub meaning: &'static str,
}

/// Where an address came from, when not from `addr add` or the file's
/// `addresses`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AddressOrigin {
    /// The subnet, `PREFIX/64`.
    pub subnet: String,
    /// Its anycast ID; `null` for the subnet-router anycast address.
    pub id: Option<u8>,
    /// What it is for: IANA's meaning of the ID, or subnet-router anycast.
    pub meaning: &'static str,
}

/// What the subnet-router anycast address is for (RFC 4291 section 2.6.1).
const SUBNET_ROUTER: &str = "subnet-router anycast";

/// The origin of address `a` if it is an address `info` registers.
fn origin_in(prefix: [u8; 8], info: &SubnetInfo, a: &[u8; 16]) -> Option<AddressOrigin> {
    let subnet = subnet_text(prefix);
    match subnet_anycast_id(a) {
        Some(id) if info.has_id(id) => Some(AddressOrigin {
            subnet,
            id: Some(id),
            meaning: subnet_anycast_meaning(id),
        }),
        None if info.subnet_router != 0 && a[8..] == [0; 8] => Some(AddressOrigin {
            subnet,
            id: None,
            meaning: SUBNET_ROUTER,
        }),
        _ => None,
    }
}

impl State {
    /// The id of the scope of interfaces `names` of `netns` (see
    /// [`super::scopes::Scopes::find_or_add`]); `attached`: every
    /// attachment.
    pub(crate) fn scope_id(
        &mut self,
        netns: NetnsId,
        names: &[String],
        attached: &[(u32, IfaceConfig)],
    ) -> Result<u16> {
        let (addresses, subnets) = (&self.addresses, &self.subnets);
        let id = self.scopes.find_or_add(netns, names, attached, || {
            let mut used: HashSet<u32> = addresses
                .all_values()?
                .into_iter()
                .map(|(_, v)| u32::from(v.scope_id))
                .collect();
            used.extend(subnets.all()?.into_iter().map(|(_, s)| s.scope_id));
            Ok(used)
        })?;
        Ok(id as u16)
    }

    /// Sets every scope's attachments from `attached`; returns how many
    /// were wrong (rewritten with `fix`).
    pub(crate) fn sync_scopes(
        &mut self,
        attached: &[(u32, IfaceConfig)],
        fix: bool,
    ) -> Result<u64> {
        self.scopes.sync(attached, fix)
    }

    /// The interface names of scope `id` (none for 0).
    pub(crate) fn scope_names(&self, id: u16) -> Result<Vec<String>> {
        if id == 0 {
            return Ok(Vec::new());
        }
        Ok(scopes::names_of(&self.scopes.get(u32::from(id))?))
    }

    /// [`State::load_addresses`] with scope `scope` (0: none): entries the
    /// group has already get that scope. A subnet's address is refused
    /// (its subnet says its scope).
    pub fn load_addresses_scoped(
        &mut self,
        list: &[AnycastPrefix],
        group: &GroupName,
        scope: u16,
    ) -> Result<usize> {
        self.refuse_subnet_addresses(list)?;
        self.load_into_group(list, group, Some(scope))
    }

    /// Refuses any of `list` that a registered subnet holds.
    pub(crate) fn refuse_subnet_addresses(&self, list: &[AnycastPrefix]) -> Result<()> {
        for p in list {
            if let Some(o) = self.subnet_holding(p)? {
                return Err(Error::AddressOfSubnet {
                    addr: p.addr.to_string(),
                    subnet: o.subnet,
                });
            }
        }
        Ok(())
    }

    /// Registers subnet `spec` with scope `scope` (`explicit`: given, not
    /// the interfaces that carry it), or makes a registered one so: its
    /// addresses that `spec` no longer names go. Returns how many
    /// addresses were added. A subnet of another group is refused.
    pub fn set_subnet(&mut self, spec: &SubnetSpec, scope: u16, explicit: bool) -> Result<usize> {
        let old = self.subnets.get(spec.prefix)?;
        if let Some(old) = old {
            let holder = self.groups.name_of(old.group_id)?;
            if holder != spec.group.as_str() {
                return Err(Error::AddressInOtherGroup {
                    addr: subnet_text(spec.prefix),
                    group: holder,
                });
            }
        }
        if spec.ids.is_empty() && !spec.subnet_router {
            return Err(Error::BadSubnet {
                subnet: subnet_text(spec.prefix),
                why: "no anycast ID and no subnet-router address: it would have no address",
            });
        }
        let wanted = spec.addresses();
        self.check_new_addresses(&wanted)?;
        let existing = self.groups.find(spec.group.as_str())?;
        let (gid, _) = match existing {
            Some(g) => g,
            None => self.create_group(&spec.group)?,
        };
        // The registry first (a full one refuses before any address is
        // added), undone with the group made for it should the addresses
        // be refused.
        let undo = |s: &mut Self| -> Result<()> {
            match old {
                Some(o) => s.subnets.set(spec.prefix, o)?,
                None => s.unregister_subnet(spec.prefix)?,
            }
            if existing.is_none() {
                s.groups.release(gid)?;
            }
            Ok(())
        };
        let registered = self.register_subnet(
            spec.prefix,
            gid,
            &spec.ids,
            spec.subnet_router,
            (scope, explicit),
        );
        let added = match registered.and_then(|()| {
            let list: Vec<(AnycastPrefix, u32)> = wanted.iter().map(|p| (*p, gid)).collect();
            self.insert_addresses(&list, Some(scope))
        }) {
            Ok(n) => n,
            Err(e) => {
                undo(self)?;
                return Err(e);
            }
        };
        if let Some(old) = old {
            let gone: Vec<(AnycastPrefix, u32)> =
                addresses_of(spec.prefix, &old.ids, old.subnet_router != 0)
                    .into_iter()
                    .filter(|p| !wanted.contains(p))
                    .map(|p| (p, gid))
                    .collect();
            self.remove_held(&gone)?;
        }
        Ok(added)
    }

    /// Removes those of `list` that their group still holds.
    fn remove_held(&mut self, list: &[(AnycastPrefix, u32)]) -> Result<()> {
        let mut held = Vec::new();
        for &(p, g) in list {
            if self.addresses.group_of(&p)? == Some(g) {
                held.push((p, g));
            }
        }
        self.remove_addresses(&held)
    }

    /// Removes a registered subnet and its addresses. A group left with no
    /// address and no member is freed; its name is returned.
    pub fn del_subnet(&mut self, prefix: [u8; 8]) -> Result<Option<String>> {
        let Some(info) = self.subnets.get(prefix)? else {
            return Err(Error::SubnetNotFound(subnet_text(prefix)));
        };
        let list: Vec<(AnycastPrefix, u32)> =
            addresses_of(prefix, &info.ids, info.subnet_router != 0)
                .into_iter()
                .map(|p| (p, info.group_id))
                .collect();
        self.remove_held(&list)?;
        self.subnets.remove(prefix)?;
        self.free_if_empty(info.group_id)
    }

    /// Every configured address and prefix with its group id and the
    /// interface names of its scope (empty: none), unsorted.
    pub(crate) fn address_scopes(&self) -> Result<Vec<(AnycastPrefix, u32, Vec<String>)>> {
        let mut names = HashMap::new();
        let mut out = Vec::new();
        for (p, v) in self.addresses.all_values()? {
            let scope = self.scope_names_cached(&mut names, v.scope_id)?;
            out.push((p, u32::from(v.group_id), scope));
        }
        Ok(out)
    }

    /// [`Self::scope_names`], each scope read once per `cache`: a listing
    /// of many addresses shares few scopes.
    fn scope_names_cached(
        &self,
        cache: &mut HashMap<u16, Vec<String>>,
        id: u16,
    ) -> Result<Vec<String>> {
        if let Some(n) = cache.get(&id) {
            return Ok(n.clone());
        }
        let n = self.scope_names(id)?;
        cache.insert(id, n.clone());
        Ok(n)
    }

    /// Writes subnet `prefix`'s registry entry (its addresses are the
    /// caller's): group `group`, `ids`, the subnet-router address when
    /// `subnet_router`, scope `scope` (`explicit`: given).
    pub(crate) fn register_subnet(
        &mut self,
        prefix: [u8; 8],
        group: u32,
        ids: &[u8],
        subnet_router: bool,
        scope: (u16, bool),
    ) -> Result<()> {
        let info = SubnetInfo {
            group_id: group,
            scope_id: u32::from(scope.0),
            ids: info_ids(ids),
            subnet_router: u8::from(subnet_router),
            explicit_scope: u8::from(scope.1),
            _pad: [0; 6],
        };
        self.subnets.set(prefix, info)
    }

    /// Forgets subnet `prefix`'s registry entry (its addresses are the
    /// caller's).
    pub(crate) fn unregister_subnet(&mut self, prefix: [u8; 8]) -> Result<()> {
        self.subnets.remove(prefix).map(|_| ())
    }

    /// Registry entries of a group that is not in use, or none of whose
    /// addresses its group holds (a command killed half-way): how many
    /// (removed with `fix`).
    pub(crate) fn repair_subnets(&mut self, fix: bool) -> Result<u64> {
        let mut wrong = 0;
        for (prefix, info) in self.subnets.all()? {
            let group_in_use = self.groups.get(info.group_id)?.in_use != 0;
            let mut held = false;
            for p in addresses_of(prefix, &info.ids, info.subnet_router != 0) {
                held |= self.addresses.group_of(&p)? == Some(info.group_id);
            }
            if !group_in_use || !held {
                wrong += 1;
                if fix {
                    self.subnets.remove(prefix)?;
                }
            }
        }
        Ok(wrong)
    }

    /// Forgets the subnets of group `id` (being freed).
    pub(crate) fn forget_subnets_of(&mut self, id: u32) -> Result<()> {
        for (prefix, info) in self.subnets.all()? {
            if info.group_id == id {
                self.subnets.remove(prefix)?;
            }
        }
        Ok(())
    }

    /// The subnet that registers exact address `p`, if one does: only its
    /// subnet may remove it.
    pub(crate) fn subnet_holding(&self, p: &AnycastPrefix) -> Result<Option<AddressOrigin>> {
        if !p.is_exact() {
            return Ok(None);
        }
        let prefix = prefix64(p.addr);
        Ok(self
            .subnets
            .get(prefix)?
            .and_then(|info| origin_in(prefix, &info, &p.addr.octets())))
    }

    /// Every registered subnet, sorted.
    pub fn subnets(&self) -> Result<Vec<SubnetEntry>> {
        let mut out = Vec::new();
        for (prefix, info) in self.subnets.all()? {
            let mut addresses = Vec::new();
            for p in addresses_of(prefix, &info.ids, info.subnet_router != 0) {
                // Those its group holds (all, unless a command was killed
                // half-way through adding them).
                if self.addresses.group_of(&p)? != Some(info.group_id) {
                    continue;
                }
                if let Some(o) = origin_in(prefix, &info, &p.addr.octets()) {
                    addresses.push(SubnetAddress {
                        address: p.addr,
                        id: o.id,
                        meaning: o.meaning,
                    });
                }
            }
            out.push(SubnetEntry {
                subnet: subnet_text(prefix),
                group: self.groups.name_of(info.group_id)?,
                ids: ids_of(&info.ids),
                subnet_router: info.subnet_router != 0,
                scope: self.scope_names(info.scope_id as u16)?,
                scope_from: if info.explicit_scope != 0 {
                    "given"
                } else {
                    "carried"
                },
                addresses,
            });
        }
        out.sort_by(|a, b| a.subnet.cmp(&b.subnet));
        Ok(out)
    }

    /// Every configured address and prefix with its scope and origin, sorted.
    pub fn addresses(&self) -> Result<Vec<AddressEntry>> {
        let subnets: HashMap<[u8; 8], SubnetInfo> = self.subnets.all()?.into_iter().collect();
        let mut names = HashMap::new();
        let mut out = Vec::new();
        for (prefix, v) in self.addresses.all_values()? {
            let origin = if prefix.is_exact() {
                let p64 = prefix64(prefix.addr);
                subnets
                    .get(&p64)
                    .and_then(|info| origin_in(p64, info, &prefix.addr.octets()))
            } else {
                None
            };
            out.push(AddressEntry {
                prefix,
                group: self.groups.name_of(u32::from(v.group_id))?,
                scope: self.scope_names_cached(&mut names, v.scope_id)?,
                origin,
            });
        }
        out.sort_by(|a, b| (&a.group, a.prefix).cmp(&(&b.group, b.prefix)));
        Ok(out)
    }
}

/// A subnet's registry entry as a test expects it (zeroed but for what
/// is given).
#[cfg(test)]
fn info(group: u32, ids: &[u8]) -> SubnetInfo {
    use bytemuck::Zeroable as _;
    SubnetInfo {
        group_id: group,
        ids: info_ids(ids),
        ..SubnetInfo::zeroed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: [u8; 8] = [0xfd, 0, 0, 0x18, 0, 1, 0, 0];

    #[test]
    fn ids_round_trip_through_bits() {
        let ids = vec![0, 63, 64, 126, 127];
        assert_eq!(ids_of(&info_ids(&ids)), ids);
    }

    #[test]
    fn ids_above_127_are_refused() {
        assert!(matches!(
            SubnetSpec::ids_from(&[126, 128]),
            Err(Error::BadAnycastId(128))
        ));
        assert_eq!(
            SubnetSpec::ids_from(&[126, 5, 126]).ok(),
            Some(vec![5, 126])
        );
    }

    #[test]
    fn origins_only_for_registered_ids() {
        let i = info(3, &[126]);
        let ha = subnet_anycast(PREFIX, 126);
        let o = origin_in(PREFIX, &i, &ha).expect("ID 126 is registered");
        assert_eq!(
            (o.id, o.meaning),
            (Some(126), "Mobile IPv6 Home-Agents anycast")
        );
        assert_eq!(o.subnet, "fd00:18:1::/64");
        assert!(origin_in(PREFIX, &i, &subnet_anycast(PREFIX, 125)).is_none());
        assert!(origin_in(PREFIX, &i, &subnet_router_anycast(PREFIX)).is_none());
        let with_router = SubnetInfo {
            subnet_router: 1,
            ..i
        };
        let r = origin_in(PREFIX, &with_router, &subnet_router_anycast(PREFIX));
        assert_eq!(r.map(|o| o.id), Some(None));
    }
}
