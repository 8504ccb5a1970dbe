//! The `[state]` table of a configuration file: the sizes the pinned state
//! is created with (`max-addresses`, `flow-table-size`, `max-prefixes`),
//! as the command line's `--max-addresses`, `--flow-table-size` and
//! `--max-prefixes`.

use anycast_common::{MAX_ANYCAST_ADDRS_LIMIT, MAX_ANYCAST_PREFIXES_LIMIT};
use serde::Deserialize;
use toml::Spanned;

use super::{Checker, ConfigError};
use crate::error::Error;

/// The `[state]` table of a [`Config`](super::Config): sizes used when the
/// state is created, and checked against it when it exists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateConfig {
    /// Capacity of the exact-address table (`max-addresses`); none: the
    /// built-in one.
    pub max_addresses: Option<u32>,
    /// Capacity of the flow table (`flow-table-size`); none: the built-in one.
    pub flow_table_size: Option<u32>,
    /// Capacity of the prefix table (`max-prefixes`), which sizes the
    /// prefix trie; none: the built-in one.
    pub max_prefixes: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawState {
    max_addresses: Option<Spanned<i64>>,
    flow_table_size: Option<Spanned<i64>>,
    max_prefixes: Option<Spanned<i64>>,
}

/// Validates `[state]`: 1 to 2^24 addresses and prefixes, 1 to 2^32 - 1
/// flows.
pub(super) fn parse(c: &Checker, raw: &RawState) -> Result<StateConfig, ConfigError> {
    let size = |v: &Option<Spanned<i64>>, key: &str, max: u32| {
        v.as_ref()
            .map(|v| {
                let n = *v.get_ref();
                let r = u32::try_from(n)
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or(Error::InvalidStateSize {
                        what: "the size".into(),
                        given: n,
                        min: 1,
                        max,
                    });
                c.check(v, || format!("state.{key}"), r)
            })
            .transpose()
    };
    Ok(StateConfig {
        max_addresses: size(&raw.max_addresses, "max-addresses", MAX_ANYCAST_ADDRS_LIMIT)?,
        flow_table_size: size(&raw.flow_table_size, "flow-table-size", u32::MAX)?,
        max_prefixes: size(
            &raw.max_prefixes,
            "max-prefixes",
            MAX_ANYCAST_PREFIXES_LIMIT,
        )?,
    })
}
