//! A group's `scope` (the interfaces its `addresses` may be reached from)
//! and `subnets` (registered subnets' reserved anycast addresses, RFC 2526).

use serde::Deserialize;
use toml::Spanned;

use super::{Checker, ConfigError};
use crate::{
    addr::{AnycastPrefix, parse_subnet},
    error::Error,
    state::{SubnetSpec, subnet_addresses},
};

/// One entry of a group's `subnets`, as the file gives it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawSubnet {
    prefix: Spanned<String>,
    ids: Option<Vec<Spanned<i64>>>,
    #[serde(default)]
    subnet_router: bool,
    scope: Option<Spanned<Vec<String>>>,
}

impl RawSubnet {
    /// Its `prefix`, where errors about the whole entry point.
    pub(super) fn prefix(&self) -> &Spanned<String> {
        &self.prefix
    }
}

/// One registered subnet of a group (`subnets`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetConfig {
    /// Line of its `prefix`.
    pub line: usize,
    /// The 64-bit prefix.
    pub prefix: [u8; 8],
    /// Its anycast IDs (default: 126, home agents).
    pub ids: Vec<u8>,
    /// Its subnet-router anycast address too (`subnet-router`).
    pub subnet_router: bool,
    /// The interfaces its addresses may be reached from (`scope`); none:
    /// those that carry the subnet when the file is applied.
    pub scope: Option<Vec<String>>,
}

impl SubnetConfig {
    /// Its anycast addresses.
    pub fn addresses(&self) -> Vec<AnycastPrefix> {
        subnet_addresses(self.prefix, &self.ids, self.subnet_router)
    }
}

/// Whether `n` may be an interface name (what Linux accepts).
pub(super) fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() < 16
        && !n.contains(['/', ':'])
        && !n.chars().any(|ch| ch.is_whitespace() || ch.is_control())
}

/// Validates a list of interface names (`scope`): 1 to
/// [`anycast_common::MAX_SCOPE_IFACES`] valid names, each once. Sorted.
pub(super) fn parse_scope(
    c: &Checker,
    field: &dyn Fn() -> String,
    raw: &Spanned<Vec<String>>,
) -> Result<Vec<String>, ConfigError> {
    let mut names = raw.get_ref().clone();
    if let Some(bad) = names.iter().find(|n| !valid_ifname(n)) {
        return Err(c.check(raw, field, Err(Error::UnknownInterface(bad.clone())))?);
    }
    names.sort();
    names.dedup();
    let most = anycast_common::MAX_SCOPE_IFACES;
    if names.is_empty() || names.len() > most {
        let e = Error::ScopeSize {
            given: names.len(),
            most,
        };
        return Err(c.check(raw, field, Err(e))?);
    }
    Ok(names)
}

/// Validates group `group`'s `subnets`.
pub(super) fn parse(
    c: &Checker,
    group: &str,
    raw: &[RawSubnet],
) -> Result<Vec<SubnetConfig>, ConfigError> {
    let f = || format!("group.{group}.subnets");
    let mut out: Vec<SubnetConfig> = Vec::new();
    for s in raw {
        let prefix = c.check(&s.prefix, f, parse_subnet(s.prefix.get_ref()))?;
        if out.iter().any(|o| o.prefix == prefix) {
            let e = Error::InvalidAddress {
                input: s.prefix.get_ref().clone(),
                reason: "listed twice".into(),
            };
            return Err(c.check(&s.prefix, f, Err(e))?);
        }
        let ids = match &s.ids {
            None => vec![anycast_common::HOME_AGENTS_ANYCAST_ID],
            Some(list) => {
                let mut ids = Vec::new();
                for id in list {
                    let n = u32::try_from(*id.get_ref()).unwrap_or(u32::MAX);
                    ids.extend(c.check(id, f, SubnetSpec::ids_from(&[n]))?);
                }
                ids.sort_unstable();
                ids.dedup();
                ids
            }
        };
        if ids.is_empty() && !s.subnet_router {
            let e = Error::BadSubnet {
                subnet: s.prefix.get_ref().clone(),
                why: "no anycast ID and no subnet-router address: it would have no address",
            };
            return Err(c.check(&s.prefix, f, Err(e))?);
        }
        let scope = match &s.scope {
            Some(sc) => Some(parse_scope(c, &f, sc)?),
            None => None,
        };
        out.push(SubnetConfig {
            line: c.line(&s.prefix),
            prefix,
            ids,
            subnet_router: s.subnet_router,
            scope,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    fn err(text: &str) -> String {
        Config::parse(text).expect_err(text).to_string()
    }

    const GROUP: &str = "[group.ha]\nmember.h1 = { encap = \"fd00:9::1\" }\n";

    #[test]
    fn subnets_and_scope_parse() {
        let text = format!(
            "{GROUP}addresses = [\"2001:db8:53::1\"]\nscope = [\"eth1\", \"eth0\", \"eth1\"]\n\
             subnets = [{{ prefix = \"2001:db8:1:2::/64\" }},\n  \
             {{ prefix = \"fd00:18:1::/64\", ids = [127, 126], subnet-router = true, scope = [\"home\"] }}]\n"
        );
        let cfg = Config::parse(&text).expect("valid");
        let g = &cfg.groups["ha"];
        assert_eq!(g.scope, ["eth0", "eth1"]);
        assert_eq!(g.subnets.len(), 2);
        assert_eq!(
            (g.subnets[0].ids.clone(), g.subnets[0].scope.clone()),
            (vec![126], None)
        );
        assert_eq!(g.subnets[1].ids, [126, 127]);
        assert!(g.subnets[1].subnet_router);
        assert_eq!(g.subnets[1].line, 6);
        let all: Vec<String> = g.all_addresses().map(|a| a.to_string()).collect();
        assert_eq!(
            all,
            [
                "2001:db8:53::1",
                "2001:db8:1:2:fdff:ffff:ffff:fffe",
                "fd00:18:1:0:fdff:ffff:ffff:fffe",
                "fd00:18:1:0:fdff:ffff:ffff:ffff",
                "fd00:18:1::"
            ]
        );
        assert_eq!(cfg.totals().0, 5);
    }

    #[test]
    fn what_the_rfcs_do_not_allow_names_its_line() {
        let e = err(&format!(
            "{GROUP}subnets = [{{ prefix = \"2001:db8:1::/48\" }}]\n"
        ));
        assert!(e.contains("line 3") && e.contains("only /64"), "{e}");
        let e = err(&format!(
            "{GROUP}subnets = [{{ prefix = \"2001:db8:1:2::/64\", ids = [128] }}]\n"
        ));
        assert!(e.contains("line 3") && e.contains("0 to 127"), "{e}");
        let e = err(&format!(
            "{GROUP}subnets = [{{ prefix = \"2001:db8:1:2::/64\", ids = [] }}]\n"
        ));
        assert!(e.contains("line 3") && e.contains("no address"), "{e}");
        let e = err(&format!("{GROUP}scope = []\n"));
        assert!(e.contains("1 to 8 interfaces"), "{e}");
        let e = err(&format!("{GROUP}scope = [\"a/b\"]\n"));
        assert!(e.contains("a/b"), "{e}");
        let e = err(&format!(
            "{GROUP}subnets = [{{ prefix = \"2001:db8:1:2::/64\", colour = 1 }}]\n"
        ));
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn a_subnet_address_in_two_places_is_refused() {
        let e = err(&format!(
            "{GROUP}addresses = [\"2001:db8:1:2:fdff:ffff:ffff:fffe\"]\n\
             subnets = [{{ prefix = \"2001:db8:1:2::/64\" }}]\n"
        ));
        assert!(e.contains("line 4"), "{e}");
        let e = err(&format!(
            "{GROUP}subnets = [{{ prefix = \"2001:db8:1:2::/64\" }}]\n\
             [group.other]\nsubnets = [{{ prefix = \"2001:db8:1:2::/64\" }}]\n"
        ));
        assert!(
            e.contains("group `ha`") || e.contains("group `other`"),
            "{e}"
        );
    }
}
