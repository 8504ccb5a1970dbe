//! The sizes of the pinned state chosen when it is created: the exact
//! table's capacity (`--max-addresses`, which sizes its index too), the
//! prefix table's (`--max-prefixes`, which sizes the prefix trie too) and
//! the flow table's (`--flow-table-size`), from the command line or the
//! file's `[state]`. A state that exists keeps its sizes: one asked for
//! that differs is an error, never a silent no-op.

use std::path::Path;

use anycast_common::{
    MAX_ANYCAST_ADDRS_LIMIT, MAX_ANYCAST_PREFIXES_LIMIT, exact_index_buckets, map_names,
    prefix_trie,
};
use aya::maps::MapInfo;

use super::Dataplane;
use crate::{
    config::StateConfig,
    error::{Error, Result},
    pin::PinDir,
};

/// A size asked for, and who asks (for errors: `--max-addresses`, or the
/// file's key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asked {
    /// The size.
    pub n: u32,
    /// Who asks for it.
    pub by: String,
}

/// The sizes a command asks of the pinned state; none: the built-in ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateSizes {
    /// Capacity of the exact-address table (`/128` addresses); its index
    /// follows (`anycast_common::exact_index_buckets`).
    pub addresses: Option<Asked>,
    /// Capacity of the flow table (all groups together).
    pub flows: Option<Asked>,
    /// Capacity of the prefix table; the prefix trie's copies follow
    /// (`anycast_common::prefix_trie::copy_nodes`).
    pub prefixes: Option<Asked>,
}

impl StateSizes {
    /// The sizes of the command line's `--max-addresses`,
    /// `--flow-table-size` and `--max-prefixes`.
    pub fn from_options(addresses: Option<u32>, flows: Option<u32>, prefixes: Option<u32>) -> Self {
        let asked = |n: Option<u32>, by: &str| {
            n.map(|n| Asked {
                n,
                by: by.to_string(),
            })
        };
        StateSizes {
            addresses: asked(addresses, "--max-addresses"),
            flows: asked(flows, "--flow-table-size"),
            prefixes: asked(prefixes, "--max-prefixes"),
        }
    }

    /// These sizes, and those of a file's `[state]` (`file` names it)
    /// where these give none; a size both give differently is an error.
    pub fn with_file(self, state: &StateConfig, file: &str) -> Result<Self> {
        let merge = |mine: Option<Asked>, theirs: Option<u32>, key: &str| {
            let by = format!("state.{key} in {file}");
            match (mine, theirs) {
                (Some(m), Some(t)) if m.n != t => Err(Error::StateSizeConflict {
                    first: format!("{} {}", m.by, m.n),
                    second: format!("state.{key} = {t} in {file}"),
                }),
                (Some(m), _) => Ok(Some(m)),
                (None, t) => Ok(t.map(|n| Asked { n, by })),
            }
        };
        Ok(StateSizes {
            addresses: merge(self.addresses, state.max_addresses, "max-addresses")?,
            flows: merge(self.flows, state.flow_table_size, "flow-table-size")?,
            prefixes: merge(self.prefixes, state.max_prefixes, "max-prefixes")?,
        })
    }

    /// Checks the ranges: 1 to 2^24 addresses and prefixes, at least one
    /// flow.
    pub fn validate(&self) -> Result<()> {
        for (asked, max) in [
            (&self.addresses, MAX_ANYCAST_ADDRS_LIMIT),
            (&self.flows, u32::MAX),
            (&self.prefixes, MAX_ANYCAST_PREFIXES_LIMIT),
        ] {
            if let Some(a) = asked
                && (a.n == 0 || a.n > max)
            {
                return Err(Error::InvalidStateSize {
                    what: a.by.clone(),
                    given: i64::from(a.n),
                    min: 1,
                    max,
                });
            }
        }
        Ok(())
    }

    /// The maps' capacities to create, as the loader takes them (the
    /// index follows the exact table there, the trie the prefix table).
    pub(crate) fn map_sizes(&self) -> Vec<(&'static str, u32)> {
        let mut out = Vec::new();
        if let Some(a) = &self.addresses {
            out.push((map_names::ANYCAST_ADDRS, a.n));
        }
        if let Some(f) = &self.flows {
            out.push((map_names::FLOWS, f.n));
        }
        if let Some(p) = &self.prefixes {
            out.push((map_names::ANYCAST_PREFIX, p.n));
        }
        out
    }
}

/// The sizes of the maps sized at creation that are pinned at `pin`, and
/// those of `asked` for the ones that are not, as the loader takes them:
/// maps recreated by `repair` (and the index, which follows the exact
/// table, and the trie, which follows the prefix table) get the sizes of
/// the state they join. Checked before anything is made: a size asked of
/// a pinned map must be its own, and a lost exact (prefix) table whose
/// index (trie) survives needs a size that fits it.
pub(super) fn pinned_sizes(pin: &PinDir, asked: &StateSizes) -> Result<Vec<(&'static str, u32)>> {
    let mut out = asked.map_sizes();
    for (name, a, what) in [
        (map_names::ANYCAST_ADDRS, &asked.addresses, "addresses"),
        (map_names::FLOWS, &asked.flows, "flows"),
        (map_names::ANYCAST_PREFIX, &asked.prefixes, "prefixes"),
    ] {
        if let Ok(info) = MapInfo::from_pin(pin.map_path(name)) {
            let actual = info.max_entries();
            same_size(a, actual, what, pin.path())?;
            out.retain(|(n, _)| *n != name);
            out.push((name, actual));
        }
    }
    let table_lost = MapInfo::from_pin(pin.map_path(map_names::ANYCAST_ADDRS)).is_err();
    if table_lost && let Ok(index) = MapInfo::from_pin(pin.map_path(map_names::EXACT_INDEX)) {
        let buckets = index.max_entries();
        let fits = asked
            .addresses
            .as_ref()
            .is_some_and(|a| exact_index_buckets(a.n) == buckets);
        if !fits {
            return Err(Error::LostTableSize {
                buckets,
                asked: asked
                    .addresses
                    .as_ref()
                    .map_or(String::new(), |a| format!("; not {}", a.n)),
                path: pin.path().to_path_buf(),
            });
        }
    }
    let prefixes_lost = MapInfo::from_pin(pin.map_path(map_names::ANYCAST_PREFIX)).is_err();
    if prefixes_lost && let Ok(trie) = MapInfo::from_pin(pin.map_path(map_names::PREFIX_NODES)) {
        let nodes = trie.max_entries();
        let fits = asked
            .prefixes
            .as_ref()
            .is_some_and(|a| prefix_trie::COPIES * prefix_trie::copy_nodes(a.n) == nodes);
        if !fits {
            return Err(Error::LostPrefixTableSize {
                nodes,
                asked: asked
                    .prefixes
                    .as_ref()
                    .map_or(String::new(), |a| format!("; not {}", a.n)),
                path: pin.path().to_path_buf(),
            });
        }
    }
    Ok(out)
}

/// Fails unless `asked` (of table `what`) is none or `actual`, the size of
/// the state pinned at `path` (see [`Error::StateSizeMismatch`]).
fn same_size(asked: &Option<Asked>, actual: u32, what: &'static str, path: &Path) -> Result<()> {
    match asked {
        Some(a) if a.n != actual => Err(Error::StateSizeMismatch {
            asked_by: a.by.clone(),
            what,
            asked: a.n,
            actual,
            path: path.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

impl Dataplane {
    /// The sizes the pinned state was created with: (exact-address table,
    /// flow table, prefix table).
    pub fn sizes(&self) -> (u32, u32, u32) {
        self.state.created_sizes()
    }

    /// Fails unless every size of `asked` is the pinned state's (see
    /// [`Error::StateSizeMismatch`]).
    pub fn check_sizes(&self, asked: &StateSizes) -> Result<()> {
        let (addresses, flows, prefixes) = self.sizes();
        for (a, actual, what) in [
            (&asked.addresses, addresses, "addresses"),
            (&asked.flows, flows, "flows"),
            (&asked.prefixes, prefixes, "prefixes"),
        ] {
            same_size(a, actual, what, self.pin.path())?;
        }
        Ok(())
    }
}
