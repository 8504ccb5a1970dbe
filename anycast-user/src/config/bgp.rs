//! The `[bgp]` table and each group's `announce` and
//! `announce-min-members`: which prefixes the service puts into the
//! routing table a BGP speaker exports, and when (docs/BGP.md).

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{Checker, ConfigError};
use crate::{
    addr::{AnycastPrefix, parse_anycast},
    error::Error,
};

/// The `[bgp]` table of a [`super::Config`] (its defaults when absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BgpConfig {
    /// The kernel routing table of the announced prefixes (`table`).
    pub table: u32,
    /// The route protocol number of the service's routes (`protocol`).
    pub protocol: u8,
    /// How long forwarding goes on after a withdraw on maintenance or
    /// SIGTERM (`drain-time`).
    pub drain_time: Duration,
    /// How long a group's condition must hold before its prefixes are
    /// announced again (`hold-down`).
    pub hold_down: Duration,
}

impl Default for BgpConfig {
    fn default() -> Self {
        BgpConfig {
            table: 100,
            protocol: 250,
            drain_time: Duration::from_secs(5),
            hold_down: Duration::from_secs(3),
        }
    }
}

/// Route protocol numbers the service must not use, and why: the
/// kernel's own (a kernel table speaker ignores or owns them), and those of
/// routing daemons (BIRD's `learn` ignores `bird` routes; FRR's zebra
/// removes routes of its own numbers when it starts).
pub const RESERVED_PROTOCOLS: &[(u8, &str)] = &[
    (0, "unspec"),
    (1, "redirect"),
    (2, "kernel"),
    (3, "boot"),
    (4, "static"),
    (11, "zebra"),
    (12, "bird"),
    (186, "bgp (FRR)"),
    (187, "isis (FRR)"),
    (188, "ospf (FRR)"),
    (189, "rip (FRR)"),
    (192, "eigrp (FRR)"),
];

/// Routing tables the service must not fill: unspec, and the kernel's
/// default, main and local tables.
const RESERVED_TABLES: [u32; 4] = [0, 253, 254, 255];

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawBgp {
    table: Option<Spanned<i64>>,
    protocol: Option<Spanned<i64>>,
    drain_time: Option<Spanned<f64>>,
    hold_down: Option<Spanned<f64>>,
}

fn bad(s: impl Into<String>) -> Error {
    Error::InvalidAnnounce(s.into())
}

/// Validates `[bgp]`.
pub(super) fn parse(c: &Checker, raw: &RawBgp) -> Result<BgpConfig, ConfigError> {
    let mut b = BgpConfig::default();
    let f = |key: &'static str| move || format!("bgp.{key}");
    if let Some(t) = &raw.table {
        b.table = c.check(
            t,
            f("table"),
            u32::try_from(*t.get_ref())
                .ok()
                .filter(|t| !RESERVED_TABLES.contains(t))
                .ok_or_else(|| {
                    bad("a routing table number from 1 to 4294967295, \
                         not 253 (default), 254 (main) or 255 (local)")
                }),
        )?;
    }
    if let Some(p) = &raw.protocol {
        let n = *p.get_ref();
        let r = match u8::try_from(n) {
            Err(_) => Err(bad("a route protocol number from 0 to 255")),
            Ok(n) => match RESERVED_PROTOCOLS.iter().find(|(r, _)| *r == n) {
                Some((_, name)) => Err(bad(format!(
                    "route protocol {n} is `{name}`, reserved: take a number of the \
                     service's own, e.g. 250"
                ))),
                None => Ok(n),
            },
        };
        b.protocol = c.check(p, f("protocol"), r)?;
    }
    let seconds = |v: &Option<Spanned<f64>>, key: &'static str, default: Duration| match v {
        Some(s) => c.check(
            s,
            f(key),
            Duration::try_from_secs_f64(*s.get_ref())
                .ok()
                .filter(|d| *d <= Duration::from_secs(3600))
                .ok_or_else(|| bad("seconds, from 0 to 3600")),
        ),
        None => Ok(default),
    };
    b.drain_time = seconds(&raw.drain_time, "drain-time", b.drain_time)?;
    b.hold_down = seconds(&raw.hold_down, "hold-down", b.hold_down)?;
    Ok(b)
}

/// A group's announcements, as the file gives them.
#[derive(Default)]
pub(super) struct RawAnnounce<'a> {
    pub(super) announce: Option<&'a Vec<Spanned<String>>>,
    pub(super) min_members: Option<&'a Spanned<i64>>,
}

/// Validates group `group`'s `announce` (each prefix covers every one of
/// `addresses`, and no other group announces it: `taken`) and
/// `announce-min-members` (1 up to the number of its `members`).
pub(super) fn parse_group(
    c: &Checker,
    group: &str,
    raw: RawAnnounce<'_>,
    addresses: &[AnycastPrefix],
    members: usize,
    taken: &mut Vec<(AnycastPrefix, String)>,
) -> Result<(Vec<AnycastPrefix>, u32), ConfigError> {
    let f = |key: &'static str| move || format!("group.{group}.{key}");
    let mut announce = Vec::new();
    for a in raw.announce.into_iter().flatten() {
        let p = c.check(a, f("announce"), parse_anycast(a.get_ref()))?;
        let uncovered = addresses
            .iter()
            .find(|x| x.len < p.len || !p.contains(x.addr));
        let r = if let Some(x) = uncovered {
            Err(bad(format!(
                "{p} does not cover the group's address {x}: a prefix announced must \
                 cover all of the group's addresses"
            )))
        } else if addresses.is_empty() {
            Err(bad(format!(
                "{p} is announced for a group with no addresses"
            )))
        } else if let Some((_, other)) = taken.iter().find(|(t, _)| *t == p) {
            Err(bad(if other == group {
                format!("{p} is listed twice")
            } else {
                format!("{p} is announced by group {other} too")
            }))
        } else {
            Ok(())
        };
        c.check(a, f("announce"), r)?;
        taken.push((p, group.to_string()));
        announce.push(p);
    }
    let min = match raw.min_members {
        None => 1,
        Some(n) => c.check(
            n,
            f("announce-min-members"),
            u32::try_from(*n.get_ref())
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad("a count of members, at least 1"))
                .and_then(|n| {
                    if n as usize > members && !announce.is_empty() {
                        Err(bad(format!(
                            "{n} members needed to announce, but the group has {members}"
                        )))
                    } else {
                        Ok(n)
                    }
                }),
        )?,
    };
    Ok((announce, min))
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    const EXAMPLE: &str = include_str!("../../../examples/bgp.toml");

    fn err(text: &str) -> String {
        Config::parse(text).expect_err(text).to_string()
    }

    const GROUP: &str = "[group.dns]\naddresses = [\"2001:db8:53::1\", \"2001:db8:53:1::/64\"]\n\
                         member.m1 = { encap = \"fd00:9::1\" }\nmember.m2 = { encap = \"fd00:9::2\" }\n";

    #[test]
    fn the_example_parses_with_the_issues_values() {
        let cfg = Config::parse(EXAMPLE).expect("examples/bgp.toml");
        assert_eq!(cfg.bgp, BgpConfig::default());
        assert_eq!(
            (cfg.bgp.table, cfg.bgp.protocol),
            (100, 250),
            "the example writes the defaults"
        );
        let dns = &cfg.groups["dns"];
        assert_eq!(dns.announce.len(), 1);
        assert_eq!(dns.announce[0].to_string(), "2001:db8:53::/48");
        assert_eq!(dns.announce_min_members, 1);
        assert!(cfg.announces());
    }

    #[test]
    fn defaults_when_absent_and_values_when_given() {
        let cfg = Config::parse(GROUP).expect("no bgp");
        assert_eq!(cfg.bgp, BgpConfig::default());
        assert!(!cfg.announces());
        assert_eq!(cfg.groups["dns"].announce_min_members, 1);
        let cfg = Config::parse(&format!(
            "[bgp]\ntable = 1000\nprotocol = 201\ndrain-time = 0.5\nhold-down = 0\n{GROUP}\
             announce = [\"2001:db8:53::/48\", \"2001:db8::/32\"]\nannounce-min-members = 2\n"
        ))
        .expect("all given");
        assert_eq!(
            cfg.bgp,
            BgpConfig {
                table: 1000,
                protocol: 201,
                drain_time: Duration::from_millis(500),
                hold_down: Duration::ZERO,
            }
        );
        let g = &cfg.groups["dns"];
        assert_eq!((g.announce.len(), g.announce_min_members), (2, 2));
    }

    #[test]
    fn reserved_protocols_and_tables_are_refused_with_line_and_field() {
        for (p, name) in [
            (2, "kernel"),
            (3, "boot"),
            (4, "static"),
            (12, "bird"),
            (0, "unspec"),
        ] {
            let e = err(&format!("[bgp]\nprotocol = {p}\n"));
            assert!(e.starts_with("line 2: bgp.protocol"), "{e}");
            assert!(e.contains(&format!("`{name}`, reserved")), "{e}");
        }
        let e = err("[bgp]\ntable = 1\nprotocol = 256\n");
        assert!(
            e.starts_with("line 3: bgp.protocol") && e.contains("0 to 255"),
            "{e}"
        );
        for t in ["254", "255", "0", "-1"] {
            let e = err(&format!("\n[bgp]\ntable = {t}\n"));
            assert!(e.starts_with("line 3: bgp.table"), "{e}");
        }
        for key in ["drain-time", "hold-down"] {
            let e = err(&format!("[bgp]\n{key} = -1.0\n"));
            assert!(e.starts_with(&format!("line 2: bgp.{key}")), "{e}");
        }
        let e = err("[bgp]\ntabel = 100\n");
        assert!(e.contains("tabel"), "{e}");
    }

    #[test]
    fn an_announced_prefix_must_cover_every_address_of_its_group() {
        // A prefix elsewhere, or one beside the group's /64, does not cover it.
        let e = err(&format!("{GROUP}announce = [\"2001:db8:54::/48\"]\n"));
        assert!(e.starts_with("line 5: group.dns.announce"), "{e}");
        assert!(
            e.contains("does not cover the group's address 2001:db8:53::1"),
            "{e}"
        );
        let e = err(&format!("{GROUP}announce = [\"2001:db8:53::/64\"]\n"));
        assert!(
            e.contains("does not cover the group's address 2001:db8:53:1::/64"),
            "{e}"
        );
        // A longer prefix than a group's prefix does not cover it.
        let e = err(&format!("{GROUP}announce = [\"2001:db8:53:1::/96\"]\n"));
        assert!(e.contains("does not cover"), "{e}");
        let e = err(&format!(
            "{GROUP}announce = [\"2001:db8::/32\", \"2001:db8::/32\"]\n"
        ));
        assert!(e.contains("listed twice"), "{e}");
        let e = err(&format!(
            "{GROUP}announce = [\"2001:db8::/32\"]\n[group.z]\naddresses = [\"2001:db8:1::1\"]\n\
             announce = [\"2001:db8::/32\"]\n"
        ));
        assert!(
            e.starts_with("line 8: group.z.announce") && e.contains("group dns too"),
            "{e}"
        );
        let e = err("[group.e]\nannounce = [\"2001:db8::/32\"]\n");
        assert!(e.contains("no addresses"), "{e}");
        let e = err(&format!("{GROUP}announce = [\"not a prefix\"]\n"));
        assert!(e.starts_with("line 5: group.dns.announce"), "{e}");
    }

    #[test]
    fn the_minimum_of_members_is_at_least_one_and_at_most_the_group() {
        for n in ["0", "-3"] {
            let e = err(&format!("{GROUP}announce-min-members = {n}\n"));
            assert!(
                e.starts_with("line 5: group.dns.announce-min-members"),
                "{e}"
            );
        }
        let e = err(&format!(
            "{GROUP}announce = [\"2001:db8::/32\"]\nannounce-min-members = 3\n"
        ));
        assert!(
            e.starts_with("line 6: group.dns.announce-min-members")
                && e.contains("3 members needed to announce, but the group has 2"),
            "{e}"
        );
    }
}
