//! The scopes and subnets of a file: which scope each wanted address has,
//! the registry of subnets it wants, and the scope ids they get when the
//! plan is carried out.

use std::collections::{BTreeMap, HashMap};

use anycast_common::{IfaceConfig, NetnsId};

use super::{Change, ChangeAction, ChangeKind, change};
use crate::{
    addr::{AnycastPrefix, subnet_text},
    config::Config,
    error::{ConfigError, Error, Result},
    link::ifindex,
    members::{MemberVia, Via},
    state::{State, SubnetEntry},
};

/// What applying a file needs from the system besides the maps.
pub struct System<'a> {
    /// How a member is reached (its interface and MAC resolved).
    pub resolve: &'a mut dyn FnMut(&MemberVia) -> Result<Via>,
    /// The interfaces that carry a subnet (a subnet's scope by default).
    pub carrying: &'a mut dyn FnMut([u8; 8]) -> Result<Vec<String>>,
    /// Whether an interface of a scope exists.
    pub exists: &'a mut dyn FnMut(&str) -> Result<()>,
    /// The network namespace the file's interface names are in.
    pub netns: NetnsId,
    /// Every attachment (the scopes follow them).
    pub attached: &'a [(u32, IfaceConfig)],
}

impl<'a> System<'a> {
    /// The system of the current network namespace, with `resolve` and
    /// the attachments `attached`.
    pub fn here(
        resolve: &'a mut dyn FnMut(&MemberVia) -> Result<Via>,
        carrying: &'a mut dyn FnMut([u8; 8]) -> Result<Vec<String>>,
        exists: &'a mut dyn FnMut(&str) -> Result<()>,
        attached: &'a [(u32, IfaceConfig)],
    ) -> Result<Self> {
        Ok(System {
            resolve,
            carrying,
            exists,
            netns: crate::netns::current()?,
            attached,
        })
    }
}

/// Whether interface `name` exists in the current network namespace.
pub fn interface_exists(name: &str) -> Result<()> {
    ifindex(name).map(|_| ())
}

/// A subnet as the file wants it registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct WantedSubnet {
    pub(super) prefix: [u8; 8],
    pub(super) group: String,
    pub(super) ids: Vec<u8>,
    pub(super) subnet_router: bool,
    /// Its scope's interface names, and whether the file gave them.
    pub(super) scope: (Vec<String>, bool),
}

/// What the file wants of addresses: each with its group and scope
/// (interface names, sorted; empty: none), and the subnets it registers.
pub(super) struct Wanted {
    pub(super) addresses: HashMap<AnycastPrefix, (String, Vec<String>)>,
    pub(super) subnets: Vec<WantedSubnet>,
}

/// Works out [`Wanted`]: every scope's interfaces must exist; a subnet
/// without a scope gets the interfaces that carry it. When none does, one
/// registered already keeps the scope it has (an interface that lost its
/// address for a while, e.g. down, must not fail the whole file, which the
/// service applies again on every reload); a new one is an error.
pub(super) fn wanted(
    cfg: &Config,
    sys: &mut System<'_>,
    registered: &[SubnetEntry],
) -> Result<Wanted> {
    let at = |line: usize, field: String, error: Error| {
        Error::Config(ConfigError::Invalid {
            line,
            field,
            error: Box::new(error),
        })
    };
    let mut w = Wanted {
        addresses: HashMap::new(),
        subnets: Vec::new(),
    };
    for (g, gc) in &cfg.groups {
        for name in &gc.scope {
            (sys.exists)(name).map_err(|e| at(gc.scope_line, format!("group.{g}.scope"), e))?;
        }
        for a in &gc.addresses {
            w.addresses.insert(*a, (g.to_string(), gc.scope.clone()));
        }
        for s in &gc.subnets {
            let field = || format!("group.{g}.subnets");
            let scope = match &s.scope {
                Some(names) => {
                    for name in names {
                        (sys.exists)(name).map_err(|e| at(s.line, field(), e))?;
                    }
                    (names.clone(), true)
                }
                None => {
                    let names = (sys.carrying)(s.prefix)?;
                    let text = subnet_text(s.prefix);
                    let before = registered
                        .iter()
                        .find(|e| e.subnet == text && e.scope_from == "carried");
                    match before {
                        _ if !names.is_empty() => (names, false),
                        Some(e) => {
                            log::warn!(
                                "no interface has an address in {text} now; its anycast \
                                 addresses keep their scope ({})",
                                e.scope.join(", ")
                            );
                            (e.scope.clone(), false)
                        }
                        None => return Err(at(s.line, field(), Error::SubnetNowhere(text))),
                    }
                }
            };
            for a in s.addresses() {
                w.addresses.insert(a, (g.to_string(), scope.0.clone()));
            }
            w.subnets.push(WantedSubnet {
                prefix: s.prefix,
                group: g.to_string(),
                ids: s.ids.clone(),
                subnet_router: s.subnet_router,
                scope,
            });
        }
    }
    Ok(w)
}

/// A scope for people: its interfaces, or `everywhere`.
pub(super) fn scope_text(names: &[String]) -> String {
    if names.is_empty() {
        "everywhere".to_string()
    } else {
        names.join(",")
    }
}

/// The registry's changes: subnets added, changed and removed.
pub(super) fn subnet_changes(now: &[SubnetEntry], want: &[WantedSubnet]) -> Vec<Change> {
    let mut out = Vec::new();
    for s in want {
        let text = subnet_text(s.prefix);
        let ids: Vec<String> = s.ids.iter().map(u8::to_string).collect();
        let detail = format!(
            "IDs {}{}, scope {}",
            ids.join(","),
            if s.subnet_router {
                " and subnet-router"
            } else {
                ""
            },
            scope_text(&s.scope.0)
        );
        match now.iter().find(|e| e.subnet == text) {
            None => {
                let mut c = change(ChangeAction::Added, ChangeKind::Subnet, &s.group, text);
                c.detail = detail;
                out.push(c);
            }
            Some(e) => {
                let same = e.group == s.group
                    && e.ids == s.ids
                    && e.subnet_router == s.subnet_router
                    && e.scope == s.scope.0
                    && (e.scope_from == "given") == s.scope.1;
                if !same {
                    let mut c = change(ChangeAction::Changed, ChangeKind::Subnet, &s.group, text);
                    c.detail = detail;
                    out.push(c);
                }
            }
        }
    }
    for e in now {
        if !want.iter().any(|s| subnet_text(s.prefix) == e.subnet) {
            out.push(change(
                ChangeAction::Removed,
                ChangeKind::Subnet,
                &e.group,
                e.subnet.clone(),
            ));
        }
    }
    out
}

/// Adds `list` (each address with its group name and scope names) by
/// scope, and writes the registry as `subnets` says, removing `gone`.
pub(super) fn execute(
    state: &mut State,
    sys: &System<'_>,
    list: &[(AnycastPrefix, String, Vec<String>)],
    group_ids: &HashMap<String, u32>,
    subnets: &[WantedSubnet],
    gone: &[[u8; 8]],
) -> Result<()> {
    let mut ids: BTreeMap<Vec<String>, u16> = BTreeMap::new();
    let mut scope_id = |state: &mut State, names: &[String]| -> Result<u16> {
        if names.is_empty() {
            return Ok(0);
        }
        if let Some(id) = ids.get(names) {
            return Ok(*id);
        }
        let id = state.scope_id(sys.netns, names, sys.attached)?;
        ids.insert(names.to_vec(), id);
        Ok(id)
    };
    let mut by_scope: BTreeMap<Vec<String>, Vec<(AnycastPrefix, u32)>> = BTreeMap::new();
    for (a, g, scope) in list {
        by_scope
            .entry(scope.clone())
            .or_default()
            .push((*a, group_ids[g]));
    }
    for (scope, batch) in by_scope {
        let id = scope_id(state, &scope)?;
        state.insert_addresses(&batch, Some(id))?;
    }
    for prefix in gone {
        state.unregister_subnet(*prefix)?;
    }
    for s in subnets {
        let id = scope_id(state, &s.scope.0)?;
        state.register_subnet(
            s.prefix,
            group_ids[&s.group],
            &s.ids,
            s.subnet_router,
            (id, s.scope.1),
        )?;
    }
    Ok(())
}
