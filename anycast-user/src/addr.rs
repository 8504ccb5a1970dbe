//! Anycast addresses and prefixes as operators write them.

use std::{fmt, net::Ipv6Addr, str::FromStr};

use crate::error::{Endpoint, Error, quote};

/// An IPv6 address (`/128`) or prefix, with no host bits set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AnycastPrefix {
    /// The network address, host bits zero.
    pub addr: Ipv6Addr,
    /// Prefix length, 0..=128.
    pub len: u8,
}

impl AnycastPrefix {
    /// Whether this is a single address (`/128`).
    pub const fn is_exact(&self) -> bool {
        self.len == 128
    }

    /// The reserved subnet anycast address of RFC 2526 with anycast id `id`
    /// (0..=127) in the /64 `subnet` (see
    /// [`anycast_common::subnet_anycast`]). Id 126 is the Mobile IPv6
    /// home-agents anycast address (RFC 6275).
    pub fn subnet_anycast(subnet: Ipv6Addr, id: u8) -> Option<Self> {
        if id > anycast_common::MAX_SUBNET_ANYCAST_ID {
            return None;
        }
        Some(AnycastPrefix {
            addr: anycast_common::subnet_anycast(prefix64(subnet), id).into(),
            len: 128,
        })
    }
}

/// The first 64 bits of `a`.
pub fn prefix64(a: Ipv6Addr) -> [u8; 8] {
    let mut p = [0; 8];
    p.copy_from_slice(&a.octets()[..8]);
    p
}

/// Parses a subnet for its reserved anycast addresses: `PREFIX/64`, host
/// bits zero (RFC 2526 defines them for 64-bit interface identifiers
/// only). Returns the 64-bit prefix.
pub fn parse_subnet(s: &str) -> Result<[u8; 8], Error> {
    let p = s.trim().parse::<AnycastPrefix>()?;
    if p.len != 64 {
        return Err(Error::BadSubnet {
            subnet: s.to_string(),
            why: "only /64 subnets are supported (the reserved subnet anycast addresses of 64-bit interface identifiers, RFC 2526 section 2)",
        });
    }
    Ok(prefix64(p.addr))
}

/// A 64-bit prefix as `ADDR/64`.
pub fn subnet_text(prefix: [u8; 8]) -> String {
    format!(
        "{}/64",
        Ipv6Addr::from(anycast_common::subnet_router_anycast(prefix))
    )
}

/// Address blocks that are never anycast and never a tunnel's end: the
/// unspecified and loopback addresses, IPv4-compatible and IPv4-mapped
/// space, link-local, deprecated site-local (RFC 3879) and multicast space.
/// The exact addresses come first, so that `::` and `::1` are named as such.
const SPECIAL: [(&str, u128, u8); 7] = [
    ("the unspecified address", 0, 128),
    ("the loopback address", 1, 128),
    ("IPv4-compatible space", 0, 96),
    ("IPv4-mapped space", 0xffff << 32, 96),
    ("link-local space", 0xfe80 << 112, 10),
    (
        "site-local space, deprecated by RFC 3879,",
        0xfec0 << 112,
        10,
    ),
    ("multicast space", 0xff << 120, 8),
];

/// The mask of a prefix length (0..=128).
const fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len as u32)
    }
}

/// Why `p` touches special space ([`SPECIAL`]), as `it is in link-local
/// space (fe80::/10)`; `None` for global unicast and unique-local space.
fn special_reason(p: &AnycastPrefix) -> Option<String> {
    let bits = u128::from(p.addr);
    SPECIAL.iter().find_map(|&(name, block, len)| {
        let shared = mask(p.len.min(len));
        if bits & shared != block & shared {
            return None;
        }
        let b = AnycastPrefix {
            addr: Ipv6Addr::from(block),
            len,
        };
        Some(if p.len == 128 && len == 128 {
            format!("it is {name} ({b})")
        } else if p.len >= len {
            format!("it is in {name} ({b})")
        } else {
            format!("it overlaps {name} ({b})")
        })
    })
}

impl AnycastPrefix {
    /// Whether `addr` is in this prefix.
    pub fn contains(&self, addr: Ipv6Addr) -> bool {
        (u128::from(addr) ^ u128::from(self.addr)) & mask(self.len) == 0
    }

    /// Checks that this can be anycast: global unicast or unique-local
    /// (RFC 4291: anycast addresses are taken from unicast space), with
    /// no part in the unspecified, loopback, IPv4-compatible, IPv4-mapped,
    /// link-local, site-local or multicast blocks. A prefix is checked for
    /// overlap, not only its first address (`::/1` is refused).
    pub fn check_anycast(&self) -> Result<(), Error> {
        match special_reason(self) {
            None => Ok(()),
            Some(why) => Err(Error::InvalidAddress {
                input: self.to_string(),
                reason: format!(
                    "{why}; anycast addresses and prefixes must be global unicast or \
                     unique-local"
                ),
            }),
        }
    }
}

/// An anycast address or prefix as operators write it: well-formed (see
/// [`AnycastPrefix`]'s `FromStr`) and allowed ([`AnycastPrefix::check_anycast`]).
pub fn parse_anycast(s: &str) -> Result<AnycastPrefix, Error> {
    let p: AnycastPrefix = s.parse()?;
    p.check_anycast()?;
    Ok(p)
}

/// Checks that `addr` can be the data plane's unicast `role` address (a
/// member's `--encap`, a group's `--tunnel-source`): not unspecified,
/// loopback, IPv4-compatible or -mapped, link-local, site-local or
/// multicast. Whether it is anycast is the pinned state's to say.
pub fn check_endpoint(addr: Ipv6Addr, role: Endpoint) -> Result<(), Error> {
    let p = AnycastPrefix { addr, len: 128 };
    match special_reason(&p) {
        None => Ok(()),
        Some(why) => Err(Error::InvalidEndpoint {
            role,
            input: addr.to_string(),
            reason: format!("{why}; it must be a global or unique-local unicast address"),
        }),
    }
}

/// A unicast IPv6 address (not a prefix) for `role`: a member's `--encap`
/// or a group's `--tunnel-source` (see [`check_endpoint`]).
pub fn parse_unicast(s: &str, role: Endpoint) -> Result<Ipv6Addr, Error> {
    let bad = |reason: String| Error::InvalidEndpoint {
        role,
        input: s.to_string(),
        reason,
    };
    let p = parse_prefix(s).map_err(bad)?;
    if !p.is_exact() {
        return Err(bad("it is a prefix; an address is needed here".into()));
    }
    check_endpoint(p.addr, role)?;
    Ok(p.addr)
}

/// A set of anycast addresses and prefixes that says which of them covers
/// an address, in one hash lookup per distinct prefix length.
#[derive(Clone, Debug, Default)]
pub struct PrefixSet {
    /// Networks by prefix length, longest first.
    by_len: std::collections::BTreeMap<std::cmp::Reverse<u8>, std::collections::HashSet<u128>>,
}

impl PrefixSet {
    /// The set of `prefixes`.
    pub fn new<'a>(prefixes: impl IntoIterator<Item = &'a AnycastPrefix>) -> Self {
        let mut set = PrefixSet::default();
        for p in prefixes {
            set.by_len
                .entry(std::cmp::Reverse(p.len))
                .or_default()
                .insert(u128::from(p.addr));
        }
        set
    }

    /// The longest address or prefix of the set that covers `addr`.
    pub fn covering(&self, addr: Ipv6Addr) -> Option<AnycastPrefix> {
        let bits = u128::from(addr);
        self.by_len.iter().find_map(|(len, nets)| {
            let net = bits & mask(len.0);
            nets.contains(&net).then(|| AnycastPrefix {
                addr: Ipv6Addr::from(net),
                len: len.0,
            })
        })
    }
}

/// A line of an address list that is not an address or prefix.
#[derive(Debug, thiserror::Error)]
#[error("line {line}")]
pub struct AddressListError {
    /// 1-based line.
    pub line: usize,
    /// Why it was refused.
    #[source]
    pub error: Error,
}

/// Parses an address list (`anycast addr load`): one address or prefix a
/// line, each allowed as anycast ([`parse_anycast`]); `#` starts a
/// comment; blank lines are skipped.
pub fn parse_address_list(text: &str) -> Result<Vec<AnycastPrefix>, AddressListError> {
    let mut list = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let p = parse_anycast(line).map_err(|error| AddressListError { line: n + 1, error })?;
        list.push(p);
    }
    Ok(list)
}

impl fmt::Display for AnycastPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_exact() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }
}

impl FromStr for AnycastPrefix {
    type Err = Error;

    /// A well-formed address or prefix: `ADDR`, `ADDR/LEN` (1 to 128, host
    /// bits zero). Whether it may be anycast is [`AnycastPrefix::check_anycast`]'s.
    fn from_str(s: &str) -> Result<Self, Error> {
        parse_prefix(s).map_err(|reason| Error::InvalidAddress {
            input: s.to_string(),
            reason,
        })
    }
}

/// Parses `ADDR` or `ADDR/LEN`, or says why not.
fn parse_prefix(s: &str) -> Result<AnycastPrefix, String> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: Ipv6Addr = addr
        .trim()
        .parse()
        .map_err(|_| "not an IPv6 address".to_string())?;
    let len = match len {
        None => 128,
        Some(l) => {
            let l: u8 = l
                .trim()
                .parse()
                .map_err(|_| format!("prefix length `{}` is not a number", quote(l)))?;
            if l > 128 {
                return Err(format!("prefix length {l} is over 128"));
            }
            l
        }
    };
    let bits = u128::from(addr);
    if bits & !mask(len) != 0 {
        let net = Ipv6Addr::from(bits & mask(len));
        return Err(format!(
            "host bits are set after /{len}; did you mean {net}/{len}?"
        ));
    }
    if len == 0 {
        return Err("a /0 would make every address anycast".into());
    }
    Ok(AnycastPrefix { addr, len })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_and_prefixes() {
        let p: AnycastPrefix = "2001:db8::1".parse().expect("exact");
        assert!(p.is_exact());
        assert_eq!(p.to_string(), "2001:db8::1");
        let p: AnycastPrefix = "2001:db8:a::/48".parse().expect("prefix");
        assert_eq!((p.len, p.to_string().as_str()), (48, "2001:db8:a::/48"));
        let p: AnycastPrefix = "2001:db8::1/128".parse().expect("/128");
        assert!(p.is_exact());
    }

    #[test]
    fn rejects_bad_input_with_reasons() {
        for (input, needle) in [
            ("10.0.0.1", "not an IPv6"),
            ("2001:db8::/129", "over 128"),
            ("2001:db8::/x", "not a number"),
            ("2001:db8::1/64", "did you mean 2001:db8::/64"),
            ("::/0", "every address"),
            ("", "not an IPv6"),
            ("2001:db8::1/", "not a number"),
        ] {
            let e = input.parse::<AnycastPrefix>().expect_err(input);
            assert!(e.to_string().contains(needle), "{input}: {e}");
        }
    }

    #[test]
    fn only_global_unicast_and_unique_local_space_can_be_anycast() {
        for ok in [
            "2001:db8::1",
            "2001:db8:a::/48",
            "2a00:1450::/32",
            "fd00:53::1",
            "fc00::/7",
            "2000::/3",
            "64:ff9b::1",
            "::1:0:0:0/80",
        ] {
            let p: AnycastPrefix = ok.parse().expect(ok);
            assert!(p.check_anycast().is_ok(), "{ok}");
            assert_eq!(parse_anycast(ok).ok(), Some(p));
        }
        for (bad, why) in [
            ("::", "it is the unspecified address (::)"),
            ("::1", "it is the loopback address (::1)"),
            ("::2", "it is in IPv4-compatible space (::/96)"),
            ("::192.0.2.1", "it is in IPv4-compatible space (::/96)"),
            (
                "::ffff:192.0.2.1",
                "it is in IPv4-mapped space (::ffff:0.0.0.0/96)",
            ),
            ("::ffff:0:0/96", "it is in IPv4-mapped space"),
            ("fe80::1", "it is in link-local space (fe80::/10)"),
            ("fe80::/10", "it is in link-local space (fe80::/10)"),
            ("febf::/16", "it is in link-local space"),
            (
                "fec0::1",
                "it is in site-local space, deprecated by RFC 3879, (fec0::/10)",
            ),
            ("ff02::1", "it is in multicast space (ff00::/8)"),
            ("ff02::/16", "it is in multicast space (ff00::/8)"),
            // Prefixes whose first address is fine but that reach into special space.
            ("::/1", "it overlaps the unspecified address (::)"),
            ("::/64", "it overlaps the unspecified address (::)"),
            ("fc00::/6", "it overlaps link-local space (fe80::/10)"),
            ("fe00::/7", "it overlaps link-local space (fe80::/10)"),
            ("f000::/4", "it overlaps link-local space (fe80::/10)"),
            ("8000::/1", "it overlaps link-local space (fe80::/10)"),
        ] {
            let e = parse_anycast(bad).expect_err(bad).to_string();
            let shown = bad.parse::<AnycastPrefix>().map(|p| p.to_string());
            assert!(
                e.starts_with(&format!("invalid anycast address `{bad}`: {why}"))
                    || shown.is_ok_and(
                        |b| e.starts_with(&format!("invalid anycast address `{b}`: {why}"))
                    ),
                "{bad}: {e}"
            );
            assert!(e.ends_with("must be global unicast or unique-local"), "{e}");
            // Well-formed all the same: `addr del` can still name it.
            assert!(bad.parse::<AnycastPrefix>().is_ok(), "{bad}");
        }
        let e = parse_address_list("2001:db8::1\nff02::1:2\n").expect_err("multicast");
        assert_eq!(e.line, 2);
        assert!(
            e.error.to_string().contains("multicast space"),
            "{}",
            e.error
        );
    }

    #[test]
    fn tunnel_ends_are_unicast_and_their_errors_name_their_role() {
        for ok in ["2001:db8::2", "fd00:c:2::2", "2a00::1"] {
            assert!(parse_unicast(ok, Endpoint::Encap).is_ok(), "{ok}");
        }
        for (bad, role, want) in [
            (
                "ff02::1",
                Endpoint::TunnelSource,
                "invalid tunnel source `ff02::1`: it is in multicast space",
            ),
            (
                "fe80::1",
                Endpoint::Encap,
                "invalid encap address `fe80::1`: it is in link-local space",
            ),
            (
                "::1",
                Endpoint::Encap,
                "invalid encap address `::1`: it is the loopback address",
            ),
            (
                "::",
                Endpoint::TunnelSource,
                "invalid tunnel source `::`: it is the unspecified address",
            ),
            (
                "::ffff:10.0.0.1",
                Endpoint::Encap,
                "it is in IPv4-mapped space",
            ),
            (
                "2001:db8::/64",
                Endpoint::Encap,
                "invalid encap address `2001:db8::/64`: it is a prefix",
            ),
            (
                "nope",
                Endpoint::TunnelSource,
                "invalid tunnel source `nope`: not an IPv6 address",
            ),
        ] {
            let e = parse_unicast(bad, role).expect_err(bad).to_string();
            assert!(e.starts_with("invalid ") && e.contains(want), "{bad}: {e}");
            assert!(!e.contains("anycast address"), "{e}");
        }
    }

    #[test]
    fn a_prefix_set_finds_the_longest_cover() {
        let list: Vec<AnycastPrefix> = ["2001:db8::/32", "2001:db8:a::/48", "2001:db8:a::53"]
            .iter()
            .map(|s| s.parse().expect(s))
            .collect();
        let set = PrefixSet::new(&list);
        let cover = |a: &str| set.covering(a.parse().expect(a)).map(|p| p.to_string());
        assert_eq!(cover("2001:db8:a::53").as_deref(), Some("2001:db8:a::53"));
        assert_eq!(cover("2001:db8:a::54").as_deref(), Some("2001:db8:a::/48"));
        assert_eq!(cover("2001:db8:b::1").as_deref(), Some("2001:db8::/32"));
        assert_eq!(cover("2001:db9::1"), None);
        assert!(list[1].contains("2001:db8:a:ffff::1".parse().expect("addr")));
        assert!(!list[1].contains("2001:db8:b::".parse().expect("addr")));
    }

    #[test]
    fn address_lists_skip_comments_and_blank_lines() {
        let list = parse_address_list("# anycast\n2001:db8::1\n\n  2001:db8:a::/48  # web\n")
            .expect("list");
        let shown: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["2001:db8::1", "2001:db8:a::/48"]);
        assert!(parse_address_list("").expect("empty").is_empty());
        let e = parse_address_list("2001:db8::1\n# x\n2001:db8::1/64\n").expect_err("host bits");
        assert_eq!(e.line, 3);
        assert!(e.error.to_string().contains("host bits"), "{}", e.error);
    }

    #[test]
    fn rfc2526_home_agents_address() {
        let p = AnycastPrefix::subnet_anycast("2001:db8:1:2::".parse().expect("subnet"), 126)
            .expect("id 126");
        assert_eq!(
            p.addr,
            "2001:db8:1:2:fdff:ffff:ffff:fffe"
                .parse::<Ipv6Addr>()
                .expect("addr")
        );
        assert!(AnycastPrefix::subnet_anycast(Ipv6Addr::UNSPECIFIED, 128).is_none());
    }
}

#[cfg(test)]
pub(crate) mod fuzz {
    //! Randomised checks of the operator-facing parsers: no input panics,
    //! every rejection says why, and what is printed parses back.
    use super::*;

    /// A small deterministic generator (xorshift64) for the parsers' fuzz tests.
    pub(crate) struct Rng(pub(crate) u64);
    impl Rng {
        pub(crate) fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// A value in `0..n`.
        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next_u64() % n.max(1) as u64) as usize
        }
    }

    const ALPHABET: &[u8] = b"0123456789abcdefABCDEF:/.-_ x%[]\\\n\t\xc3\xa9";

    /// Random text of up to 47 characters, mostly from the parsers' alphabets.
    pub(crate) fn text(r: &mut Rng) -> String {
        let len = (r.next_u64() % 48) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| ALPHABET[(r.next_u64() % ALPHABET.len() as u64) as usize])
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn random_text_never_panics_and_rejections_explain() {
        let mut r = Rng(0x5eed_1234_abcd_ef01);
        for _ in 0..200_000 {
            let t = text(&mut r);
            match t.parse::<AnycastPrefix>() {
                Ok(p) => assert_eq!(
                    p.to_string().parse::<AnycastPrefix>().ok(),
                    Some(p),
                    "{t:?}"
                ),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.starts_with("invalid anycast address"), "{t:?}: {msg}");
                    assert!(!msg.contains('\n') || t.contains('\n'), "{t:?}: {msg}");
                }
            }
        }
    }

    #[test]
    fn every_prefix_prints_and_parses_back() {
        let mut r = Rng(0x1234_5678_9abc_def1);
        for _ in 0..100_000 {
            let len = 1 + (r.next_u64() % 128) as u8;
            let bits = (u128::from(r.next_u64()) << 64) | u128::from(r.next_u64());
            let mask = u128::MAX << (128 - u32::from(len));
            let p = AnycastPrefix {
                addr: Ipv6Addr::from(bits & mask),
                len,
            };
            assert_eq!(p.to_string().parse::<AnycastPrefix>().ok(), Some(p));
            if len < 128 && bits & !mask != 0 {
                let with_host_bits = format!("{}/{len}", Ipv6Addr::from(bits));
                let e = with_host_bits
                    .parse::<AnycastPrefix>()
                    .expect_err(&with_host_bits);
                assert!(e.to_string().contains("host bits"), "{e}");
            }
        }
    }
}
