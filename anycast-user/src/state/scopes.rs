//! `SCOPES`: the scopes of scoped anycast addresses, by id. A scope names
//! interfaces (in one network namespace); the data plane knows its
//! attachments by id, so each scope also holds the ids of the attachments
//! of its interfaces, which [`Scopes::sync`] keeps right as interfaces are
//! attached and detached. Id 0 is "no scope" and never allocated.

use std::collections::HashSet;

use anycast_common::{IfaceConfig, MAX_SCOPE_IFACES, NetnsId, ScopeInfo, map_names};
use bytemuck::Zeroable as _;

use crate::{
    error::{Error, Result},
    maps::{ArrayMap, MapSource},
};

/// Owner of `SCOPES`.
pub(crate) struct Scopes {
    map: ArrayMap<ScopeInfo>,
}

/// The interface names of a scope, in the order stored.
pub(crate) fn names_of(s: &ScopeInfo) -> Vec<String> {
    s.ifaces
        .iter()
        .filter(|n| n[0] != 0)
        .map(|n| {
            let end = n.iter().position(|&c| c == 0).unwrap_or(n.len());
            String::from_utf8_lossy(&n[..end]).into_owned()
        })
        .collect()
}

/// The attachment bits of a scope naming `names` in `netns`.
fn with_attachments(mut s: ScopeInfo, attached: &[(u32, IfaceConfig)]) -> ScopeInfo {
    let names = names_of(&s);
    s.attachments = [0; 4];
    for (id, cfg) in attached {
        if cfg.netns == s.netns && names.contains(&cfg.name_str()) {
            s.set_attachment(*id, true);
        }
    }
    s
}

impl Scopes {
    /// Takes the map from `src`.
    pub(crate) fn take(src: &mut MapSource<'_>) -> Result<Self> {
        Ok(Scopes {
            map: ArrayMap::take(src, map_names::SCOPES)?,
        })
    }

    /// Scope `id`'s entry (a free id's is zeroed).
    pub(crate) fn get(&self, id: u32) -> Result<ScopeInfo> {
        self.map.get(id)
    }

    /// The id of the scope naming exactly `names` (sorted, deduplicated,
    /// 1 to [`MAX_SCOPE_IFACES`] interface names) in `netns`, allocated
    /// when there is none, with the bits of the attachments `attached`.
    /// `used` lists the scope ids addresses hold: when the table is full,
    /// the others are freed first.
    pub(crate) fn find_or_add(
        &mut self,
        netns: NetnsId,
        names: &[String],
        attached: &[(u32, IfaceConfig)],
        used: impl FnOnce() -> Result<HashSet<u32>>,
    ) -> Result<u32> {
        if names.is_empty() || names.len() > MAX_SCOPE_IFACES {
            return Err(Error::ScopeSize {
                given: names.len(),
                most: MAX_SCOPE_IFACES,
            });
        }
        let all = self.map.get_all()?;
        let same = |s: &ScopeInfo| s.in_use != 0 && s.netns == netns && names_of(s) == names;
        if let Some(id) = (1..all.len()).find(|&i| same(&all[i])) {
            return Ok(id as u32);
        }
        let mut free = (1..all.len()).find(|&i| all[i].in_use == 0);
        if free.is_none() {
            // Scopes no address names any more are freed only now: an id
            // stays while an address may still carry it.
            let used = used()?;
            for (i, s) in all.iter().enumerate().skip(1) {
                if s.in_use != 0 && !used.contains(&(i as u32)) {
                    self.map.set(i as u32, ScopeInfo::zeroed())?;
                    free = free.or(Some(i));
                }
            }
        }
        let id = free.ok_or(Error::TableFull {
            table: "scope table",
            capacity: self.map.len() - 1,
        })? as u32;
        let mut s = ScopeInfo::zeroed();
        for (slot, name) in s.ifaces.iter_mut().zip(names) {
            slot[..name.len()].copy_from_slice(name.as_bytes());
        }
        s.netns = netns;
        s.in_use = 1;
        self.map.set(id, with_attachments(s, attached))?;
        Ok(id)
    }

    /// Sets every scope's attachment bits from `attached` (after an attach
    /// or a detach); returns how many scopes were wrong (rewritten with
    /// `fix`).
    pub(crate) fn sync(&mut self, attached: &[(u32, IfaceConfig)], fix: bool) -> Result<u64> {
        let mut wrong = 0;
        for (i, s) in self.map.get_all()?.into_iter().enumerate().skip(1) {
            if s.in_use == 0 {
                continue;
            }
            let want = with_attachments(s, attached);
            if want != s {
                wrong += 1;
                if fix {
                    self.map.set(i as u32, want)?;
                }
            }
        }
        Ok(wrong)
    }
}
