//! The member commands on [`State`]: add, set, delete and list members,
//! with the checks that span groups and links.

use std::collections::{HashMap, HashSet};

use anycast_common::{
    GroupInfo, IfaceLink, MAX_TIED, MemberInfo, MemberKind, MemberState, NetnsId, maglev,
};

use super::{LinkChange, State, members::MemberList};
use crate::{
    error::{Endpoint, Error, Result},
    flows::monotonic_ns,
    members::{
        MemberActivity, MemberEntry, Via, format_mac, new_member, source_key, validate_weight,
    },
    names::{GroupName, MemberName},
};

/// Refuses `extra` more members up at `metric` in group `group_id`
/// (`group`) when `members` (every member but those) already has so many
/// there that more than [`MAX_TIED`] would be: only that many share the
/// group's traffic.
fn check_ties(
    group: &str,
    group_id: u32,
    metric: u32,
    extra: usize,
    members: &[(u32, MemberInfo)],
) -> Result<()> {
    let count = extra
        + members
            .iter()
            .filter(|(_, m)| {
                m.group_id == group_id && m.metric == metric && m.up == MemberState::Up as u8
            })
            .count();
    if count > MAX_TIED {
        return Err(Error::TooManyTied {
            group: group.to_string(),
            metric,
            count,
            limit: MAX_TIED,
        });
    }
    Ok(())
}

/// Index in `members` of member `name` of group `group_id`.
fn find(members: &[(u32, MemberInfo)], group_id: u32, name: &str) -> Option<usize> {
    members
        .iter()
        .position(|(_, m)| m.group_id == group_id && m.name_str() == name)
}

impl State {
    /// Every allocated member, by id.
    pub(crate) fn members_in_use(&self) -> Result<MemberList> {
        self.members.in_use()
    }

    /// How many members the table holds.
    pub(crate) fn member_capacity(&self) -> u32 {
        self.members.capacity()
    }

    /// The error of a full member table.
    pub(crate) fn member_table_full(&self) -> Error {
        self.members.table_full()
    }

    /// The member ids not held by any of `members`, ascending.
    pub(crate) fn free_member_ids(&self, members: &[(u32, MemberInfo)]) -> Vec<u32> {
        self.members.free_ids(members).collect()
    }

    /// Lets on-link members be reached through `ifindex` (bulked redirect).
    pub(crate) fn add_tx_port(&mut self, ifindex: u32) -> Result<()> {
        self.members.add_tx_port(ifindex)
    }

    /// Zeroes the member's counters, registers its source and writes its slot.
    pub(crate) fn install_member(&mut self, id: u32, m: &MemberInfo) -> Result<()> {
        self.members.install(id, m)
    }

    /// Rewrites member `id` (metric, weight, state); publish its group's
    /// selection after.
    pub(crate) fn write_member(&mut self, id: u32, m: &MemberInfo) -> Result<()> {
        self.members.write(id, m)
    }

    /// Removes the source entry of `m`'s way in (its MAC is changing).
    pub(crate) fn remove_member_source(&mut self, m: &MemberInfo) -> Result<()> {
        self.members.remove_source(m)
    }

    /// Registers `m`'s way in as member `id`'s source.
    pub(crate) fn add_member_source(&mut self, id: u32, m: &MemberInfo) -> Result<()> {
        self.members.add_source(id, m)
    }

    /// Frees a member's source entry and slot; it must be out of every
    /// published selection already.
    pub(crate) fn forget_member(&mut self, id: u32, m: &MemberInfo) -> Result<()> {
        self.members.forget(id, m)
    }

    /// Recomputes `group_id`'s consistent-hash table from `members` (a
    /// snapshot of every member, as it is now) into the idle slot and flips
    /// the group's `active_slot` to it: a packet sees the old selection or
    /// the new one, never a mix.
    pub(crate) fn publish_selection(
        &mut self,
        group_id: u32,
        members: &[(u32, MemberInfo)],
    ) -> Result<()> {
        let mut info = self.groups.get(group_id)?;
        info.active_slot = self.members.fill_idle_slot(group_id, &info, members)?;
        self.groups.set(group_id, info)
    }

    /// Adds member `name` to `group` (created when new), up, with `metric`
    /// and `weight` (1..=100). Nothing changes when it fails.
    pub fn add_member(
        &mut self,
        group: &GroupName,
        name: &MemberName,
        via: Via,
        metric: u32,
        weight: u8,
    ) -> Result<u32> {
        validate_weight(weight)?;
        if let Via::Encap(a) = via {
            self.check_not_anycast(a, Endpoint::Encap)?;
        }
        let existing = self.groups.find(group.as_str())?;
        let mut members = self.members.in_use()?;
        if let Some((gid, _)) = existing {
            if find(&members, gid, name.as_str()).is_some() {
                return Err(Error::MemberExists {
                    group: group.to_string(),
                    member: name.to_string(),
                });
            }
            check_ties(group.as_str(), gid, metric, 1, &members)?;
        }
        let id = self
            .members
            .free_ids(&members)
            .next()
            .ok_or_else(|| self.members.table_full())?;
        let mut m = new_member(name, via, metric, weight);
        if let Some((gid, _)) = existing {
            m.group_id = gid;
            if self.members.has_source(&source_key(&m)) {
                return Err(Error::MemberSourceTaken(match via {
                    Via::L2 { mac, .. } => format_mac(&mac),
                    Via::Encap(a) => a.to_string(),
                }));
            }
        }
        if let Via::L2 { ifindex, .. } = via {
            self.members.add_tx_port(ifindex)?;
        }

        let (gid, _) = match existing {
            Some(g) => g,
            None => self.create_group(group)?,
        };
        m.group_id = gid;
        if let Err(e) = self.members.install(id, &m) {
            if existing.is_none() {
                // Undo the group made for this member, so nothing changed.
                self.groups.release(gid)?;
            }
            return Err(e);
        }
        members.push((id, m));
        self.publish_selection(gid, &members)?;
        Ok(id)
    }

    /// Member `name` of `group`: the group id, every member now, and the
    /// index of that member among them.
    pub(super) fn locate(&self, group: &str, name: &str) -> Result<(u32, MemberList, usize)> {
        let (gid, _) = self.groups.named(group)?;
        let members = self.members.in_use()?;
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
        let before = members[idx].1;
        let (id, m) = &mut members[idx];
        if let Some(metric) = metric {
            m.metric = metric;
        }
        if let Some(st) = state {
            m.set_state(st);
        }
        if let Some(w) = weight {
            m.weight = w;
        }
        let (id, m) = (*id, *m);
        let up = |m: &MemberInfo| m.up == MemberState::Up as u8;
        // Only a member that joins the members up at a metric can make too many.
        if up(&m) && (!up(&before) || before.metric != m.metric) {
            let others: MemberList = members.iter().filter(|(i, _)| *i != id).copied().collect();
            check_ties(group, gid, m.metric, 1, &others)?;
        }
        self.members.write(id, &m)?;
        self.publish_selection(gid, &members)
    }

    /// Removes a member: first from the selection, then its source and
    /// slot. A group left with no address and no member is freed; its name
    /// is returned.
    pub fn del_member(&mut self, group: &str, name: &str) -> Result<Option<String>> {
        let (gid, mut members, idx) = self.locate(group, name)?;
        // Out of the selection first, so that the data plane stops choosing
        // it before its slot is freed.
        let (id, m) = members.remove(idx);
        self.publish_selection(gid, &members)?;
        self.members.forget(id, &m)?;
        self.free_if_empty(gid)
    }

    /// Checks the interface of every on-link member recorded in namespace
    /// `netns` against `ifaces` (that namespace's interfaces, index ->
    /// name). A member whose index is gone, or now belongs to an interface
    /// of another name, is down for the data plane (out of its group's
    /// selection, its flows moved) until that same interface (index and
    /// name) is back; the state the operator set stays as it was. Each
    /// group that changes is republished once. Members of other namespaces
    /// (or none recorded) cannot be checked from here and are left alone.
    pub(crate) fn check_member_links(
        &mut self,
        netns: NetnsId,
        ifaces: &HashMap<u32, String>,
    ) -> Result<Vec<LinkChange>> {
        let mut members = self.members.in_use()?;
        let mut changed = Vec::new();
        let mut groups: HashSet<u32> = HashSet::new();
        for (id, m) in members.iter_mut() {
            if m.kind != MemberKind::L2 as u8 || m.netns != netns || netns == NetnsId::default() {
                continue;
            }
            let name = m.ifname_str();
            let now = match ifaces.get(&m.ifindex) {
                None => IfaceLink::Gone,
                Some(n) if *n == name => IfaceLink::Present,
                Some(_) => IfaceLink::Replaced,
            };
            if now == IfaceLink::from_u8(m.link) {
                continue;
            }
            if now == IfaceLink::Present {
                // The kernel dropped the port from the devmap with the
                // device; without it the redirect still works, unbulked.
                if let Err(e) = self.members.add_tx_port(m.ifindex) {
                    log::warn!("{name}: {e}");
                }
            }
            m.set_link(now);
            self.members.write(*id, m)?;
            groups.insert(m.group_id);
            changed.push((m.group_id, m.name_str(), name, m.ifindex, now));
        }
        let mut groups: Vec<u32> = groups.into_iter().collect();
        groups.sort_unstable();
        for g in groups {
            self.publish_selection(g, &members)?;
        }
        changed
            .into_iter()
            .map(|(g, member, iface, ifindex, link)| {
                Ok(LinkChange {
                    group: self.groups.name_of(g)?,
                    member,
                    iface,
                    ifindex,
                    link,
                })
            })
            .collect()
    }

    /// Members of `group`, or of every group, with their counters.
    pub fn list_members(&self, group: Option<&str>) -> Result<Vec<MemberEntry>> {
        let filter = match group {
            Some(g) => Some(self.groups.named(g)?.0),
            None => None,
        };
        let mut out = Vec::new();
        let groups: HashMap<u32, GroupInfo> = self.groups.in_use()?.into_iter().collect();
        let all = self.members.in_use()?;
        let flows = self
            .flows
            .per_member(&self.groups.by_id()?, monotonic_ns())?;
        // Each group's members, and those that get new flows, worked out once.
        let mut by_group: HashMap<u32, MemberList> = HashMap::new();
        for &(id, m) in &all {
            by_group.entry(m.group_id).or_default().push((id, m));
        }
        let live: HashSet<u32> = by_group
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
            let activity = MemberActivity {
                nearest: live.contains(&id),
                flows: flows.get(&id).copied().unwrap_or(0),
                counters: self.members.counters(id)?,
            };
            out.push(MemberEntry::new(info.name_str(), id, &m, activity));
        }
        out.sort_by(|a, b| (&a.group, a.metric, &a.name).cmp(&(&b.group, b.metric, &b.name)));
        Ok(out)
    }
}
