//! What `config apply` did (or, in a dry run, would do): one [`Change`]
//! per group, member, address, subnet or interface, and their [`Tally`].

use std::fmt;

use serde::Serialize;

/// What a [`Change`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeAction {
    /// Made anew.
    Added,
    /// Changed in place.
    Changed,
    /// A member reached another way: removed and added again (new id, new
    /// counters).
    Replaced,
    /// Removed.
    Removed,
}

impl ChangeAction {
    /// The action's name in output.
    pub const fn name(self) -> &'static str {
        match self {
            ChangeAction::Added => "added",
            ChangeAction::Changed => "changed",
            ChangeAction::Replaced => "replaced",
            ChangeAction::Removed => "removed",
        }
    }
}

/// What a [`Change`] is about; changes are listed in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// A group (its settings).
    Group,
    /// A member.
    Member,
    /// An anycast address or prefix.
    Address,
    /// A registered subnet (`subnets`): its anycast addresses are listed
    /// as addresses.
    Subnet,
    /// An interface the program is attached to (`[interface.NAME]`).
    Interface,
}

impl ChangeKind {
    /// The kind's name in output.
    pub const fn name(self) -> &'static str {
        match self {
            ChangeKind::Group => "group",
            ChangeKind::Member => "member",
            ChangeKind::Address => "address",
            ChangeKind::Subnet => "subnet",
            ChangeKind::Interface => "interface",
        }
    }
}

impl fmt::Display for ChangeAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// One change [`apply_config`] made (or, in a dry run, would make).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Added, changed, replaced or removed.
    pub action: ChangeAction,
    /// Of a group, an address or a member.
    pub kind: ChangeKind,
    /// The group.
    pub group: String,
    /// The address or the member (empty for a group).
    pub name: String,
    /// What changed, e.g. `metric 10 -> 20`.
    pub detail: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ChangeKind::Group => write!(f, "{} group {}", self.action, self.group)?,
            ChangeKind::Address | ChangeKind::Subnet => {
                let to = if self.action == ChangeAction::Removed {
                    "from"
                } else {
                    "to"
                };
                write!(
                    f,
                    "{} {} {} {to} group {}",
                    self.action, self.kind, self.name, self.group
                )?
            }
            ChangeKind::Interface => write!(f, "{} interface {}", self.action, self.name)?,
            ChangeKind::Member => write!(
                f,
                "{} {} {}/{}",
                self.action, self.kind, self.group, self.name
            )?,
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// How many changes of each action: the summary of `config apply`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Added.
    pub added: usize,
    /// Changed in place.
    pub changed: usize,
    /// Replaced.
    pub replaced: usize,
    /// Removed.
    pub removed: usize,
}

impl Tally {
    /// Counts `changes`.
    pub fn of(changes: &[Change]) -> Self {
        let mut t = Tally::default();
        for c in changes {
            *match c.action {
                ChangeAction::Added => &mut t.added,
                ChangeAction::Changed => &mut t.changed,
                ChangeAction::Replaced => &mut t.replaced,
                ChangeAction::Removed => &mut t.removed,
            } += 1;
        }
        t
    }
}

impl fmt::Display for Tally {
    /// `N added, N changed, N replaced, N removed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} added, {} changed, {} replaced, {} removed",
            self.added, self.changed, self.replaced, self.removed
        )
    }
}

pub(super) fn change(action: ChangeAction, kind: ChangeKind, group: &str, name: String) -> Change {
    Change {
        action,
        kind,
        group: group.to_string(),
        name,
        detail: String::new(),
    }
}
