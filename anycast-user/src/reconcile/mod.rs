//! Makes the pinned state match a configuration file: what is missing is
//! added, what differs is changed, and addresses, members and groups the
//! file no longer names are removed.
//!
//! [`apply_config`] works out a plan first, from the file and the maps as
//! they are, and checks it against the tables' capacities: a file that does
//! not fit changes nothing. Then it executes the plan in an order the data
//! plane can follow at every step. Each group's selection is published
//! once, however many of its members change. The CLI and the daemon both
//! call it.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    net::Ipv6Addr,
};

use anycast_common::{Affinity, Fallback, GroupInfo, MemberInfo, MemberKind, MemberState};

mod change;
mod scoped;

use self::change::change;
pub use self::{
    change::{Change, ChangeAction, ChangeKind, Tally},
    scoped::{System, interface_exists},
};
use crate::{
    addr::{AnycastPrefix, subnet_text},
    config::{Capacities, Config, MemberConfig},
    error::{Error, Result},
    group::GroupOptions,
    members::{MemberVia, Via, format_mac, new_member, same_link, same_way, source_key},
    names::GroupName,
    state::{MemberList, State},
};

/// A group's settings as the file wants them: `current` with every setting
/// back to its default, then the file's.
fn wanted_settings(current: &GroupInfo, o: &GroupOptions) -> GroupInfo {
    let mut info = GroupInfo {
        fallback: 0,
        has_tunnel_source: 0,
        tunnel_source: [0; 16],
        affinity: 0,
        tcp_timeout: 0,
        other_timeout: 0,
        table_size: 0,
        ..*current
    };
    o.apply_to(&mut info);
    info
}

/// The settings that differ between two groups, as `name old -> new`.
fn settings_diff(old: &GroupInfo, new: &GroupInfo) -> Vec<String> {
    let tunnel = |g: &GroupInfo| {
        if g.has_tunnel_source != 0 {
            Ipv6Addr::from(g.tunnel_source).to_string()
        } else {
            "none".into()
        }
    };
    let affinity = |g: &GroupInfo| Affinity::from_u8(g.affinity).to_string();
    let secs = |g: &GroupInfo, proto| (g.flow_timeout_ns(proto) / 1_000_000_000).to_string();
    let tcp = anycast_common::wire::IPPROTO_TCP;
    let fields = [
        (
            "fallback",
            Fallback::from_u8(old.fallback).to_string(),
            Fallback::from_u8(new.fallback).to_string(),
        ),
        ("affinity", affinity(old), affinity(new)),
        ("flow-timeout", secs(old, tcp), secs(new, tcp)),
        ("flow-timeout-other", secs(old, 0), secs(new, 0)),
        (
            "table-size",
            old.maglev_size().to_string(),
            new.maglev_size().to_string(),
        ),
        ("tunnel-source", tunnel(old), tunnel(new)),
    ];
    fields
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(k, a, b)| format!("{k} {a} -> {b}"))
        .collect()
}

/// The member fields that differ, as `name old -> new`.
fn member_diff(old: &MemberInfo, new: &MemberInfo) -> Vec<String> {
    let st = |m: &MemberInfo| MemberState::from_u8(m.state);
    let mut d = Vec::new();
    if old.metric != new.metric {
        d.push(format!("metric {} -> {}", old.metric, new.metric));
    }
    if old.weight.max(1) != new.weight.max(1) {
        d.push(format!(
            "weight {} -> {}",
            old.weight.max(1),
            new.weight.max(1)
        ));
    }
    if old.state != new.state {
        d.push(format!("state {} -> {}", st(old), st(new)));
    }
    d
}

/// A member as the file gives it, e.g. `eth1 02:00:00:00:00:01, metric 10, weight 1, up`.
fn describe(m: &MemberConfig) -> String {
    let via = match &m.via {
        MemberVia::Encap(a) => format!("encap {a}"),
        MemberVia::Neighbour { iface, addr } => format!("{iface} {addr} (MAC from the neighbours)"),
        l2 => l2.to_string(),
    };
    format!(
        "{via}, metric {}, weight {}, {}",
        m.metric, m.weight, m.state
    )
}

/// What [`apply_config`] will do, worked out before anything changes.
#[derive(Default)]
struct Plan {
    changes: Vec<Change>,
    /// Groups the file no longer names: (id, every member of theirs).
    groups_removed: Vec<(u32, MemberList)>,
    /// Groups to create, by name.
    groups_new: Vec<GroupName>,
    /// Settings to write, by group name (new and changed groups).
    settings: Vec<(String, GroupOptions)>,
    /// Members of kept groups to remove (gone from the file, or replaced).
    members_removed: MemberList,
    /// Members to add: their group's name, their entry (group id unset).
    members_new: Vec<(String, MemberInfo)>,
    /// Members changed in place (metric, weight, state, an on-link
    /// member's MAC).
    members_changed: MemberList,
    /// Of those, the on-link members whose MAC changes, as they are now:
    /// their source entries move to the new MAC (id, counters and flows
    /// stay).
    macs_changed: MemberList,
    /// Groups whose selection must be published (by name).
    publish: BTreeSet<String>,
    addresses_removed: Vec<(AnycastPrefix, u32)>,
    /// Addresses to add, or to give another scope: with their group's
    /// name and their scope's interfaces.
    addresses_new: Vec<(AnycastPrefix, String, Vec<String>)>,
    /// The subnets to register (or register again) and to forget.
    subnets: Vec<scoped::WantedSubnet>,
    subnets_gone: Vec<[u8; 8]>,
    /// How much it removes.
    removal: Removal,
}

/// How [`apply_config`] goes about it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Only say what would change.
    pub dry_run: bool,
    /// Apply a file that names no group, removing everything.
    pub allow_empty: bool,
    /// Apply a file that removes more than half of the anycast addresses.
    pub force: bool,
}

/// Makes `state` match `cfg` (see the module doc) and returns what
/// changed; with `opts.dry_run`, only says what would change. `resolve`
/// finds an on-link member's interface (index and MAC). The file is
/// checked against the tables' capacities before the first change: a file
/// that does not fit changes nothing. Nor does a file that would remove
/// everything (it names no group: [`Error::EmptyConfig`], unless
/// `allow_empty`) or more than half of the anycast addresses and prefixes
/// ([`Error::RemovesMostAddresses`], unless `force`); a dry run is never
/// refused for that.
pub fn apply_config(
    state: &mut State,
    cfg: &Config,
    resolve: &mut dyn FnMut(&MemberVia) -> Result<Via>,
    opts: ApplyOptions,
) -> Result<Vec<Change>> {
    // No attachments: a scope the file makes admits none until an attach
    // or a repair sets its bits (`Dataplane::apply_config` gives them).
    let (mut carrying, mut exists) = (crate::link::interfaces_carrying, scoped::interface_exists);
    let sys = &mut System::here(resolve, &mut carrying, &mut exists, &[])?;
    apply_config_in(state, cfg, sys, opts)
}

/// [`apply_config`] with what it needs of the system given: how members
/// are reached, which interfaces carry a subnet and exist, the attachments.
pub fn apply_config_in(
    state: &mut State,
    cfg: &Config,
    sys: &mut System<'_>,
    opts: ApplyOptions,
) -> Result<Vec<Change>> {
    let plan = plan(state, cfg, sys)?;
    if opts.dry_run {
        return Ok(plan.changes);
    }
    plan.removal.check(opts)?;
    execute(state, sys, plan)
}

/// How much a plan removes, for [`ApplyOptions::allow_empty`] and
/// [`ApplyOptions::force`].
#[derive(Clone, Copy, Debug, Default)]
struct Removal {
    /// The file names no group.
    empty_file: bool,
    /// Groups, members and addresses configured now.
    groups: usize,
    members: usize,
    addresses: usize,
    /// Addresses and prefixes the file does not name at all (not moved to
    /// another group: gone).
    addresses_gone: usize,
}

impl Removal {
    /// Refuses the plan when it removes more than `opts` allows.
    fn check(&self, opts: ApplyOptions) -> Result<()> {
        let something = self.groups + self.members + self.addresses > 0;
        if self.empty_file && something {
            if opts.allow_empty {
                return Ok(());
            }
            return Err(Error::EmptyConfig {
                groups: self.groups,
                members: self.members,
                addresses: self.addresses,
            });
        }
        if !opts.force && self.addresses_gone * 2 > self.addresses {
            return Err(Error::RemovesMostAddresses {
                removed: self.addresses_gone,
                total: self.addresses,
            });
        }
        Ok(())
    }
}

/// Works out what to change, and checks that it fits.
fn plan(state: &State, cfg: &Config, sys: &mut System<'_>) -> Result<Plan> {
    let mut p = Plan::default();
    // Every member as the file wants it, with its way in resolved.
    let mut wanted: HashMap<(&str, &str), MemberInfo> = HashMap::new();
    for ((g, n), via) in cfg.resolve(sys.resolve)? {
        let mc = &cfg.groups[g].members[n];
        let mut m = new_member(n, via, mc.metric, mc.weight);
        m.set_state(mc.state);
        wanted.insert((g.as_str(), n.as_str()), m);
    }

    let groups_now = state.groups_in_use()?;
    let names: HashMap<u32, String> = groups_now
        .iter()
        .map(|(id, g)| (*id, g.name_str()))
        .collect();
    let ids: HashMap<&str, (u32, GroupInfo)> = groups_now
        .iter()
        .map(|(id, g)| (names[id].as_str(), (*id, *g)))
        .collect();
    let members_now = state.members_in_use()?;

    // Groups.
    for (id, _) in &groups_now {
        if !cfg.groups.contains_key(names[id].as_str()) {
            let mine = members_now
                .iter()
                .filter(|(_, m)| m.group_id == *id)
                .copied()
                .collect();
            p.groups_removed.push((*id, mine));
        }
    }
    for (g, gc) in &cfg.groups {
        match ids.get(g.as_str()) {
            None => {
                p.groups_new.push(g.clone());
                p.settings.push((g.to_string(), gc.options));
                p.publish.insert(g.to_string());
                p.changes.push(change(
                    ChangeAction::Added,
                    ChangeKind::Group,
                    g.as_str(),
                    String::new(),
                ));
            }
            Some((_, info)) => {
                let want = wanted_settings(info, &gc.options);
                let diff = settings_diff(info, &want);
                if !diff.is_empty() {
                    if want.maglev_size() != info.maglev_size() {
                        p.publish.insert(g.to_string());
                    }
                    p.settings.push((g.to_string(), gc.options));
                    let mut c = change(
                        ChangeAction::Changed,
                        ChangeKind::Group,
                        g.as_str(),
                        String::new(),
                    );
                    c.detail = diff.join(", ");
                    p.changes.push(c);
                }
            }
        }
    }

    // Members.
    let mut present: HashSet<(String, String)> = HashSet::new();
    for &(id, m) in &members_now {
        let g = &names[&m.group_id];
        let n = m.name_str();
        let Some(gc) = cfg.groups.get(g.as_str()) else {
            p.changes
                .push(change(ChangeAction::Removed, ChangeKind::Member, g, n));
            continue;
        };
        let Some(want) = wanted.get(&(g.as_str(), n.as_str())) else {
            p.members_removed.push((id, m));
            p.publish.insert(g.clone());
            p.changes
                .push(change(ChangeAction::Removed, ChangeKind::Member, g, n));
            continue;
        };
        present.insert((g.clone(), n.clone()));
        if !same_way(&m, want) && same_link(&m, want) {
            // Only the MAC is new (a member given by address whose
            // neighbour entry changed, or a file with another mac): the
            // member is changed in place, keeping its flows.
            let mut diff = vec![format!(
                "mac {} -> {}",
                format_mac(&m.mac),
                format_mac(&want.mac)
            )];
            diff.extend(member_diff(&m, want));
            let mut now = m;
            now.mac = want.mac;
            now.metric = want.metric;
            now.weight = want.weight;
            now.set_state(MemberState::from_u8(want.state));
            p.macs_changed.push((id, m));
            p.members_changed.push((id, now));
            p.publish.insert(g.clone());
            let mut c = change(ChangeAction::Changed, ChangeKind::Member, g, n);
            c.detail = diff.join(", ");
            p.changes.push(c);
            continue;
        }
        if !same_way(&m, want) {
            p.members_removed.push((id, m));
            p.members_new.push((g.clone(), *want));
            p.publish.insert(g.clone());
            let mut c = change(ChangeAction::Replaced, ChangeKind::Member, g, n.clone());
            c.detail = format!("now {}", describe(&gc.members[n.as_str()]));
            p.changes.push(c);
            continue;
        }
        let diff = member_diff(&m, want);
        if !diff.is_empty() {
            let mut m = m;
            m.metric = want.metric;
            m.weight = want.weight;
            m.set_state(MemberState::from_u8(want.state));
            p.members_changed.push((id, m));
            p.publish.insert(g.clone());
            let mut c = change(ChangeAction::Changed, ChangeKind::Member, g, n);
            c.detail = diff.join(", ");
            p.changes.push(c);
        }
    }
    for (g, gc) in &cfg.groups {
        for (n, mc) in &gc.members {
            if !present.contains(&(g.to_string(), n.to_string())) {
                p.members_new
                    .push((g.to_string(), wanted[&(g.as_str(), n.as_str())]));
                p.publish.insert(g.to_string());
                let mut c = change(
                    ChangeAction::Added,
                    ChangeKind::Member,
                    g.as_str(),
                    n.to_string(),
                );
                c.detail = describe(mc);
                p.changes.push(c);
            }
        }
    }

    // Addresses, with the subnets' and the scopes.
    let subnets_now = state.subnets()?;
    let wanted_addr = scoped::wanted(cfg, sys, &subnets_now)?;
    let want_addr = &wanted_addr.addresses;
    let addrs_now = state.address_scopes()?;
    let mut kept: HashSet<AnycastPrefix> = HashSet::new();
    for (a, id, scope) in &addrs_now {
        let (a, id) = (*a, *id);
        let g = names.get(&id).map_or("", String::as_str);
        if let Some((wg, wscope)) = want_addr.get(&a)
            && wg == g
        {
            kept.insert(a);
            if wscope != scope {
                p.addresses_new.push((a, g.to_string(), wscope.clone()));
                let mut c = change(ChangeAction::Changed, ChangeKind::Address, g, a.to_string());
                c.detail = format!(
                    "scope {} -> {}",
                    scoped::scope_text(scope),
                    scoped::scope_text(wscope)
                );
                p.changes.push(c);
            }
        } else {
            p.addresses_removed.push((a, id));
            p.changes.push(change(
                ChangeAction::Removed,
                ChangeKind::Address,
                g,
                a.to_string(),
            ));
        }
    }
    for (g, gc) in &cfg.groups {
        for a in gc.all_addresses() {
            if !kept.contains(&a) {
                let scope = want_addr[&a].1.clone();
                p.addresses_new.push((a, g.to_string(), scope));
                p.changes.push(change(
                    ChangeAction::Added,
                    ChangeKind::Address,
                    g.as_str(),
                    a.to_string(),
                ));
            }
        }
    }
    p.changes
        .extend(scoped::subnet_changes(&subnets_now, &wanted_addr.subnets));
    p.subnets_gone = subnets_now
        .iter()
        .filter(|e| {
            !wanted_addr
                .subnets
                .iter()
                .any(|s| subnet_text(s.prefix) == e.subnet)
        })
        .filter_map(|e| e.subnet.parse::<AnycastPrefix>().ok())
        .map(|p| crate::addr::prefix64(p.addr))
        .collect();
    p.subnets = wanted_addr.subnets;
    for (id, _) in &p.groups_removed {
        p.changes.push(change(
            ChangeAction::Removed,
            ChangeKind::Group,
            &names[id],
            String::new(),
        ));
    }

    // Capacities: refuse now rather than fail half-way. The file becomes
    // the whole state, so its own counts are what the tables must hold.
    let (addresses, prefixes) = state.address_capacities();
    cfg.check_fits(&Capacities {
        groups: state.group_capacity(),
        members: state.member_capacity(),
        addresses,
        prefixes,
        ..Capacities::BUILT_IN
    })?;
    p.removal = Removal {
        empty_file: cfg.groups.is_empty(),
        groups: groups_now.len(),
        members: members_now.len(),
        addresses: addrs_now.len(),
        addresses_gone: addrs_now
            .iter()
            .filter(|(a, _, _)| !want_addr.contains_key(a))
            .count(),
    };
    p.changes.sort_by_key(|c| {
        (
            c.action == ChangeAction::Removed,
            c.kind,
            c.group.clone(),
            c.name.clone(),
        )
    });
    Ok(p)
}

/// Makes the changes of `p`, in an order the data plane can follow.
fn execute(state: &mut State, sys: &System<'_>, mut p: Plan) -> Result<Vec<Change>> {
    // On-link members' egress ports first: harmless, and the one step
    // (besides the plan) that the kernel may refuse.
    for (_, m) in &p.members_new {
        if m.kind == MemberKind::L2 as u8 {
            state.add_tx_port(m.ifindex)?;
        }
    }
    // Addresses out first: no packet reaches what is being removed.
    state.remove_addresses(&p.addresses_removed)?;
    // Groups the file no longer names: an empty selection, then their
    // members' slots, then the group itself and its flows.
    let mut gone = BTreeSet::new();
    for (id, members) in &p.groups_removed {
        state.publish_selection(*id, &[])?;
        for (mid, m) in members {
            state.forget_member(*mid, m)?;
        }
        state.release_group(*id)?;
        gone.insert(*id);
    }
    if !gone.is_empty() {
        state.flush_flows_where(|g| gone.contains(&g))?;
    }

    let mut members = state.members_in_use()?;
    let removed_ids: HashSet<u32> = p.members_removed.iter().map(|(id, _)| *id).collect();
    // New members take slots that are free now, so a removed member
    // stays valid until the selection without it is published. When
    // that cannot be (a full table, or a new member reached the way a
    // removed one is), removed members leave first, in one publish per
    // group.
    let key = |m: &MemberInfo| bytemuck::cast::<_, [u8; 32]>(source_key(m));
    let taken: HashSet<[u8; 32]> = p.members_removed.iter().map(|(_, m)| key(m)).collect();
    let free = state.member_capacity() as usize - members.len();
    let mut early = p.members_new.len() > free;
    let mut group_ids: HashMap<String, u32> = state
        .groups_in_use()?
        .into_iter()
        .map(|(id, g)| (g.name_str(), id))
        .collect();
    for (g, m) in &p.members_new {
        if let Some(&gid) = group_ids.get(g) {
            let mut k = *m;
            k.group_id = gid;
            early |= taken.contains(&key(&k));
        }
    }
    let moved: HashSet<u32> = p.macs_changed.iter().map(|(id, _)| *id).collect();
    for (id, m) in &p.members_changed {
        early |= moved.contains(id) && taken.contains(&key(m));
    }
    if early {
        members.retain(|(id, _)| !removed_ids.contains(id));
        let groups: BTreeSet<u32> = p.members_removed.iter().map(|(_, m)| m.group_id).collect();
        for gid in groups {
            state.publish_selection(gid, &members)?;
        }
        for (id, m) in std::mem::take(&mut p.members_removed) {
            state.forget_member(id, &m)?;
        }
    }

    // New groups, then settings.
    let mut free_groups = (1..=state.group_capacity())
        .filter(|id| !group_ids.values().any(|g| g == id))
        .collect::<Vec<_>>()
        .into_iter();
    for g in &p.groups_new {
        let id = free_groups.next().ok_or_else(|| state.group_table_full())?;
        state.create_group_at(id, g)?;
        group_ids.insert(g.to_string(), id);
    }
    for (g, o) in &p.settings {
        let id = group_ids[g];
        let info = state.group(id)?;
        state.set_group(id, wanted_settings(&info, o))?;
    }

    // Members: new ones installed (not yet selected), changed ones
    // rewritten, then one publish per group, then removed ones freed.
    let mut ids = state.free_member_ids(&members).into_iter();
    for (g, m) in &p.members_new {
        let id = ids.next().ok_or_else(|| state.member_table_full())?;
        let mut m = *m;
        m.group_id = group_ids[g];
        state.install_member(id, &m)?;
        members.push((id, m));
    }
    // A MAC that changed: the old source entries out first (two members
    // may swap MACs), the new ones in after the slots are rewritten.
    for (_, old) in &p.macs_changed {
        state.remove_member_source(old)?;
    }
    for (id, m) in &p.members_changed {
        state.write_member(*id, m)?;
        if moved.contains(id) {
            state.add_member_source(*id, m)?;
        }
        if let Some(slot) = members.iter_mut().find(|(i, _)| i == id) {
            slot.1 = *m;
        }
    }
    members.retain(|(id, _)| !p.members_removed.iter().any(|(r, _)| r == id));
    let mut by_group: BTreeMap<u32, MemberList> = BTreeMap::new();
    for &(id, m) in &members {
        by_group.entry(m.group_id).or_default().push((id, m));
    }
    for g in &p.publish {
        let gid = group_ids[g];
        state.publish_selection(gid, by_group.get(&gid).map_or(&[], Vec::as_slice))?;
    }
    for (id, m) in &p.members_removed {
        state.forget_member(*id, m)?;
    }

    // Addresses last: traffic starts once the members are in place.
    scoped::execute(
        state,
        sys,
        &p.addresses_new,
        &group_ids,
        &p.subnets,
        &p.subnets_gone,
    )?;
    Ok(p.changes)
}

#[cfg(test)]
mod tests {
    use bytemuck::Zeroable as _;

    use super::*;

    #[test]
    fn settings_differences_are_named() {
        let old = GroupInfo::zeroed();
        let o = GroupOptions {
            fallback: Some(Fallback::Drop),
            table_size: Some(4093),
            ..GroupOptions::default()
        };
        let new = wanted_settings(&old, &o);
        assert_eq!(
            settings_diff(&old, &new),
            ["fallback pass -> drop", "table-size 1021 -> 4093"]
        );
        // Back to defaults: explicit defaults and omitted settings agree.
        let explicit = GroupOptions {
            tcp_timeout: Some(300),
            table_size: Some(1021),
            ..GroupOptions::default()
        };
        assert!(
            settings_diff(&old, &wanted_settings(&new, &explicit))
                .iter()
                .all(|d| d.starts_with("fallback"))
        );
    }
}
