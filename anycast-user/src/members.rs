//! Members of anycast groups, their metrics and states, and the published
//! selection of the nearest ones.
//!
//! Every change recomputes the group's selection (members up, at the lowest
//! metric) into the slot the data plane is not reading, then flips the
//! group's `active_slot`: a packet sees the old selection or the new one,
//! never a mix.

use std::net::Ipv6Addr;

use anycast_common::{
    Affinity, Fallback, GroupInfo, MAGLEV_MAX, MAX_MEMBERS, MEMBER_NAME_LEN, MemberCounters,
    MemberInfo, MemberKind, MemberSourceKey, MemberState, Selection, maglev, map_names,
};
use aya::maps::MapError;
use bytemuck::Zeroable as _;
use serde::Serialize;

use crate::{
    error::{Error, Result, map_errno},
    state::{State, map_err, valid_name, validate_group_name, zeroed_per_cpu},
};

/// How to reach a new member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// On-link: egress interface index, the member's MAC, the interface's MAC.
    L2 {
        /// Egress interface index.
        ifindex: u32,
        /// The member's MAC.
        mac: [u8; 6],
        /// The egress interface's own MAC.
        src_mac: [u8; 6],
    },
    /// Routed: the member's unicast address (IPv6-in-IPv6).
    Encap(Ipv6Addr),
}

/// A member as `member list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberEntry {
    /// Its group.
    pub group: String,
    /// Its name.
    pub name: String,
    /// Member id.
    pub id: u32,
    /// Metric: lower is nearer.
    pub metric: u32,
    /// `up`, `down` or `draining`.
    pub state: &'static str,
    /// Relative share among tied members.
    pub weight: u8,
    /// `l2` or `encap`.
    pub via: &'static str,
    /// L2: egress ifindex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ifindex: Option<u32>,
    /// L2: the member's MAC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Encap: the member's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<Ipv6Addr>,
    /// Gets new flows (up and at the nearest metric).
    pub nearest: bool,
    /// Live flows it holds in the flow table.
    pub flows: u64,
    /// Packets redirected to it.
    pub packets: u64,
    /// Bytes redirected to it.
    pub bytes: u64,
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-`).
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let bad = || Error::InvalidMac(s.to_string());
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(parts) {
        if p.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if mac == [0; 6] || mac[0] & 1 == 1 {
        return Err(Error::InvalidMac(format!("{s} (not a unicast MAC)")));
    }
    Ok(mac)
}

/// Name of a member state in output.
pub const fn state_name(s: MemberState) -> &'static str {
    match s {
        MemberState::Up => "up",
        MemberState::Down => "down",
        MemberState::Draining => "draining",
    }
}

/// Checks a weight: 1 to 100.
pub fn validate_weight(w: u8) -> Result<()> {
    if (1..=100).contains(&w) {
        Ok(())
    } else {
        Err(Error::InvalidWeight(w))
    }
}

/// Checks a member name: 1 to 31 characters of `[A-Za-z0-9._-]`.
pub fn validate_member_name(name: &str) -> Result<()> {
    if valid_name(name, MEMBER_NAME_LEN) {
        Ok(())
    } else {
        Err(Error::InvalidMemberName(name.to_string()))
    }
}

pub(crate) fn source_key(m: &MemberInfo) -> MemberSourceKey {
    match MemberKind::from_u8(m.kind) {
        MemberKind::L2 => MemberSourceKey::on_link(m.group_id, m.ifindex, m.mac),
        _ => MemberSourceKey::tunnel(m.group_id, m.addr),
    }
}

/// Every member with its id, as `members_in_use` returns them.
pub(crate) type Members = Vec<(u32, MemberInfo)>;

/// A member's stored entry (group id still zero), up, from its settings.
pub(crate) fn new_member(name: &str, via: Via, metric: u32, weight: u8) -> MemberInfo {
    let mut m = MemberInfo::zeroed();
    m.name[..name.len()].copy_from_slice(name.as_bytes());
    m.metric = metric;
    m.up = MemberState::Up as u8;
    m.weight = weight;
    match via {
        Via::L2 {
            ifindex,
            mac,
            src_mac,
        } => {
            m.kind = MemberKind::L2 as u8;
            m.ifindex = ifindex;
            m.mac = mac;
            m.src_mac = src_mac;
        }
        Via::Encap(addr) => {
            m.kind = MemberKind::Encap as u8;
            m.addr = addr.octets();
        }
    }
    m
}

/// Index in `members` of member `name` of group `group_id`.
fn find(members: &[(u32, MemberInfo)], group_id: u32, name: &str) -> Option<usize> {
    members
        .iter()
        .position(|(_, m)| m.group_id == group_id && m.name_str() == name)
}

impl State {
    /// Every allocated member, by id.
    ///
    /// Every member has exactly one entry in `MEMBER_SOURCES`, whose value is
    /// its id: walking that small hash map finds the members without reading
    /// all 65,536 slots of `MEMBERS` (which made every change take 0.1 s).
    pub(crate) fn members_in_use(&self) -> Result<Members> {
        let mut ids = Vec::new();
        for entry in self.member_sources.iter() {
            let (_, id) = entry.map_err(map_err(map_names::MEMBER_SOURCES))?;
            ids.push(id);
        }
        ids.sort_unstable();
        ids.dedup();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let m = self
                .members
                .get(&id, 0)
                .map_err(map_err(map_names::MEMBERS))?;
            if m.kind != MemberKind::None as u8 {
                out.push((id, m));
            }
        }
        Ok(out)
    }

    /// The id of group `group`.
    pub fn group_id_of(&self, group: &str) -> Result<u32> {
        Ok(self.group_id(group)?.0)
    }

    fn group_id(&self, group: &str) -> Result<(u32, GroupInfo)> {
        self.group_by_name(group)?
            .ok_or_else(|| Error::UnknownGroup(group.to_string()))
    }

    /// Recomputes `group_id`'s consistent-hash table from `members` (a
    /// snapshot of every member, as it is now) into the idle slot and flips
    /// to it.
    pub(crate) fn publish_selection(
        &mut self,
        group_id: u32,
        members: &[(u32, MemberInfo)],
    ) -> Result<()> {
        let mine: Vec<(u32, MemberInfo)> = members
            .iter()
            .filter(|(_, m)| m.group_id == group_id)
            .copied()
            .collect();
        let mut info = self
            .groups
            .get(&group_id, 0)
            .map_err(map_err(map_names::GROUPS))?;
        let size = info.maglev_size();
        let table = maglev::table_for(&mine, size);
        let mut sel = Selection::zeroed();
        sel.size = size;
        sel.count = maglev::tied(&mine).len() as u32;
        sel.table[..table.len()].copy_from_slice(&table);
        let idle = 1 - (info.active_slot & 1);
        self.selection
            .set(group_id * 2 + idle, sel, 0)
            .map_err(map_err(map_names::SELECTION))?;
        info.active_slot = idle;
        self.set_group(group_id, info)
    }

    /// Republishes a group's table (after a change of its table size).
    pub(crate) fn republish(&mut self, group_id: u32) -> Result<()> {
        let members = self.members_in_use()?;
        self.publish_selection(group_id, &members)
    }

    /// Adds member `name` to `group` (created when new), up, with `metric`
    /// and `weight` (1..=100). Nothing changes when it fails.
    pub fn add_member(
        &mut self,
        group: &str,
        name: &str,
        via: Via,
        metric: u32,
        weight: u8,
    ) -> Result<u32> {
        validate_weight(weight)?;
        validate_group_name(group)?;
        validate_member_name(name)?;
        let existing = self.group_by_name(group)?;
        let mut members = self.members_in_use()?;
        if let Some((gid, _)) = existing
            && find(&members, gid, name).is_some()
        {
            return Err(Error::MemberExists {
                group: group.to_string(),
                member: name.to_string(),
            });
        }
        let id = self
            .free_member_ids(&members)
            .next()
            .ok_or_else(|| self.member_table_full())?;
        let mut m = new_member(name, via, metric, weight);
        if let Some((gid, _)) = existing {
            m.group_id = gid;
            if self.member_sources.get(&source_key(&m), 0).is_ok() {
                return Err(Error::MemberSourceTaken(match via {
                    Via::L2 { mac, .. } => format_mac(&mac),
                    Via::Encap(a) => a.to_string(),
                }));
            }
        }
        if let Via::L2 { ifindex, .. } = via {
            self.add_tx_port(ifindex)?;
        }

        let (gid, _) = match existing {
            Some(g) => g,
            None => self.create_group(group)?,
        };
        m.group_id = gid;
        if let Err(e) = self.install_member(id, &m) {
            if existing.is_none() {
                // Undo the group made for this member, so nothing changed.
                self.set_group(gid, GroupInfo::zeroed())?;
            }
            return Err(e);
        }
        members.push((id, m));
        self.publish_selection(gid, &members)?;
        Ok(id)
    }

    /// How many members the table holds (id 0 is never used).
    pub(crate) fn member_capacity(&self) -> u32 {
        self.members.len() - 1
    }

    /// The error of a full member table.
    pub(crate) fn member_table_full(&self) -> Error {
        Error::TableFull {
            table: "member table",
            capacity: self.member_capacity(),
        }
    }

    /// The member ids not held by any of `members`, ascending.
    pub(crate) fn free_member_ids(
        &self,
        members: &[(u32, MemberInfo)],
    ) -> impl Iterator<Item = u32> {
        let used: std::collections::HashSet<u32> = members.iter().map(|(id, _)| *id).collect();
        (1..self.members.len()).filter(move |id| !used.contains(id))
    }

    /// Lets on-link members be reached through `ifindex` (bulked redirect).
    pub(crate) fn add_tx_port(&mut self, ifindex: u32) -> Result<()> {
        self.tx_ports
            .insert(ifindex, ifindex, None, 0)
            .map_err(|source| Error::Redirect { ifindex, source })
    }

    /// Zeroes the member's counters, registers its source and writes its slot.
    pub(crate) fn install_member(&mut self, id: u32, m: &MemberInfo) -> Result<()> {
        self.member_stats
            .set(id, zeroed_per_cpu::<MemberCounters>()?, 0)
            .map_err(map_err(map_names::MEMBER_STATS))?;
        if let Err(e) = self.member_sources.insert(source_key(m), id, 0) {
            return Err(match map_errno(&e) {
                Some(libc::E2BIG) | Some(libc::ENOSPC) => Error::TableFull {
                    table: "member source table",
                    capacity: MAX_MEMBERS,
                },
                _ => map_err(map_names::MEMBER_SOURCES)(e),
            });
        }
        self.members
            .set(id, *m, 0)
            .map_err(map_err(map_names::MEMBERS))
    }

    /// Member `name` of `group`: the group id, every member now, and the
    /// index of that member among them.
    fn locate(&self, group: &str, name: &str) -> Result<(u32, Members, usize)> {
        let (gid, _) = self.group_id(group)?;
        let members = self.members_in_use()?;
        let idx = find(&members, gid, name).ok_or_else(|| Error::UnknownMember {
            group: group.to_string(),
            member: name.to_string(),
        })?;
        Ok((gid, members, idx))
    }

    /// Changes a member's metric, state and/or weight, then republishes the
    /// group's table.
    pub fn set_member(
        &mut self,
        group: &str,
        name: &str,
        metric: Option<u32>,
        state: Option<MemberState>,
        weight: Option<u8>,
    ) -> Result<()> {
        if let Some(w) = weight {
            validate_weight(w)?;
        }
        let (gid, mut members, idx) = self.locate(group, name)?;
        let (id, m) = &mut members[idx];
        if let Some(metric) = metric {
            m.metric = metric;
        }
        if let Some(st) = state {
            m.up = st as u8;
        }
        if let Some(w) = weight {
            m.weight = w;
        }
        self.members
            .set(*id, *m, 0)
            .map_err(map_err(map_names::MEMBERS))?;
        self.publish_selection(gid, &members)
    }

    /// Removes a member: first from the selection, then its source and slot.
    pub fn del_member(&mut self, group: &str, name: &str) -> Result<()> {
        let (gid, mut members, idx) = self.locate(group, name)?;
        // Out of the selection first, so that the data plane stops choosing
        // it before its slot is freed.
        let (id, m) = members.remove(idx);
        self.publish_selection(gid, &members)?;
        self.forget_member(id, &m)
    }

    /// Frees a member's source entry and slot; it must be out of every
    /// published selection already.
    pub(crate) fn forget_member(&mut self, id: u32, m: &MemberInfo) -> Result<()> {
        match self.member_sources.remove(&source_key(m)) {
            Ok(()) | Err(MapError::KeyNotFound) => {}
            Err(e) => return Err(map_err(map_names::MEMBER_SOURCES)(e)),
        }
        self.members
            .set(id, MemberInfo::zeroed(), 0)
            .map_err(map_err(map_names::MEMBERS))
    }

    /// Members of `group`, or of every group, with their counters.
    pub fn list_members(&self, group: Option<&str>) -> Result<Vec<MemberEntry>> {
        let filter = match group {
            Some(g) => Some(self.group_id(g)?.0),
            None => None,
        };
        let mut out = Vec::new();
        let groups: std::collections::HashMap<u32, GroupInfo> =
            self.groups_in_use()?.into_iter().collect();
        let all = self.members_in_use()?;
        let flows = self.flows_per_member()?;
        // Each group's members, and those that get new flows, worked out once.
        let mut by_group: std::collections::HashMap<u32, Members> = Default::default();
        for &(id, m) in &all {
            by_group.entry(m.group_id).or_default().push((id, m));
        }
        let live: std::collections::HashSet<u32> = by_group
            .values()
            .flat_map(|mine| maglev::tied(mine).into_iter().map(|(i, _)| i))
            .collect();
        for &(id, m) in &all {
            if filter.is_some_and(|g| g != m.group_id) {
                continue;
            }
            let Some(info) = groups.get(&m.group_id) else {
                continue;
            };
            let per_cpu = self
                .member_stats
                .get(&id, 0)
                .map_err(map_err(map_names::MEMBER_STATS))?;
            let l2 = m.kind == MemberKind::L2 as u8;
            out.push(MemberEntry {
                group: info.name_str(),
                name: m.name_str(),
                id,
                metric: m.metric,
                state: state_name(MemberState::from_u8(m.up)),
                weight: m.weight.max(1),
                via: if l2 { "l2" } else { "encap" },
                ifindex: l2.then_some(m.ifindex),
                mac: l2.then(|| format_mac(&m.mac)),
                addr: (!l2).then(|| m.addr.into()),
                nearest: live.contains(&id),
                flows: flows.get(&id).copied().unwrap_or(0),
                packets: per_cpu.iter().map(|c| c.packets).sum(),
                bytes: per_cpu.iter().map(|c| c.bytes).sum(),
            });
        }
        out.sort_by(|a, b| (&a.group, a.metric, &a.name).cmp(&(&b.group, b.metric, &b.name)));
        Ok(out)
    }

    /// Sets a group's options (the group is created when new). Nothing
    /// changes when one of them is refused.
    pub fn set_group_options(&mut self, group: &str, o: &GroupOptions) -> Result<()> {
        validate_group_name(group)?;
        o.validate()?;
        let (gid, mut info) = match self.group_by_name(group)? {
            Some(g) => g,
            None => self.create_group(group)?,
        };
        let resize = o.table_size.is_some_and(|n| n != info.maglev_size());
        o.apply_to(&mut info);
        self.set_group(gid, info)?;
        if resize {
            self.republish(gid)?;
        }
        Ok(())
    }
}

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
    /// Checks every option that is set: a unicast tunnel source, a prime
    /// table size from 7 to [`MAGLEV_MAX`], timeouts from 1 to 86400 s.
    pub fn validate(&self) -> Result<()> {
        if let Some(a) = self.tunnel_source
            && (a.is_unspecified() || a.is_multicast() || a.is_loopback())
        {
            return Err(Error::InvalidAddress {
                input: a.to_string(),
                reason: "a tunnel source must be a unicast address".into(),
            });
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

impl State {
    /// Every allocated member with its id, as stored (for tests and models).
    pub fn member_infos(&self) -> Result<Vec<(u32, MemberInfo)>> {
        self.members_in_use()
    }

    /// A group's stored settings.
    pub fn group_info(&self, id: u32) -> Result<GroupInfo> {
        self.groups.get(&id, 0).map_err(map_err(map_names::GROUPS))
    }

    /// Whether `key` is a registered member source.
    pub fn has_member_source(&self, key: &MemberSourceKey) -> bool {
        self.member_sources.get(key, 0).is_ok()
    }
}

impl State {
    /// One member's stored entry.
    pub fn member_info(&self, id: u32) -> Result<MemberInfo> {
        self.members
            .get(&id, 0)
            .map_err(map_err(map_names::MEMBERS))
    }

    /// One member's counters, summed over CPUs: (packets, bytes).
    pub fn member_counters(&self, id: u32) -> Result<(u64, u64)> {
        let per_cpu = self
            .member_stats
            .get(&id, 0)
            .map_err(map_err(map_names::MEMBER_STATS))?;
        Ok((
            per_cpu.iter().map(|c| c.packets).sum(),
            per_cpu.iter().map(|c| c.bytes).sum(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_and_print() {
        let m = parse_mac("02:AB:cd:00:00:01").expect("mac");
        assert_eq!(m, [0x02, 0xab, 0xcd, 0, 0, 1]);
        assert_eq!(format_mac(&m), "02:ab:cd:00:00:01");
        assert_eq!(parse_mac("02-ab-cd-00-00-01").expect("dashes"), m);
        for bad in [
            "",
            "02:ab:cd:00:00",
            "02:ab:cd:00:00:01:02",
            "0g:00:00:00:00:01",
            "2:0:0:0:0:1",
            "00:00:00:00:00:00",
            "ff:ff:ff:ff:ff:ff",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn member_names() {
        assert!(validate_member_name("m1.fra-2_a").is_ok());
        for bad in ["", "a b", "x/y", &"n".repeat(32)] {
            assert!(validate_member_name(bad).is_err(), "{bad}");
        }
    }
}
