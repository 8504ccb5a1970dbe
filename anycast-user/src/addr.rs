//! Anycast addresses and prefixes as operators write them.

use std::{fmt, net::Ipv6Addr, str::FromStr};

use crate::error::Error;

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
    /// (0..=127) in the /64 `subnet`, for EUI-64 format interface identifiers:
    /// the identifier is all ones except the universal/local bit and the last
    /// 7 bits, which hold the id. Id 126 is the Mobile IPv6 home-agents
    /// anycast address (RFC 6275).
    pub fn subnet_anycast(subnet: Ipv6Addr, id: u8) -> Option<Self> {
        if id > 127 {
            return None;
        }
        let mut o = subnet.octets();
        // 0xfdff:ffff:ffff:ff80 | id (RFC 2526 section 2).
        o[8..16].copy_from_slice(&[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x80 | id]);
        Some(AnycastPrefix {
            addr: Ipv6Addr::from(o),
            len: 128,
        })
    }
}

/// A unicast IPv6 address (not a prefix), e.g. a member's `--encap` or a
/// group's `--tunnel-source`.
pub fn parse_unicast(s: &str) -> Result<Ipv6Addr, Error> {
    let p: AnycastPrefix = s.parse()?;
    let bad = |reason: &str| Error::InvalidAddress {
        input: s.to_string(),
        reason: reason.into(),
    };
    if !p.is_exact() {
        return Err(bad("is a prefix; an address is needed here"));
    }
    if p.addr.is_unspecified() || p.addr.is_multicast() || p.addr.is_loopback() {
        return Err(bad("must be a unicast address"));
    }
    Ok(p.addr)
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
/// line; `#` starts a comment; blank lines are skipped.
pub fn parse_address_list(text: &str) -> Result<Vec<AnycastPrefix>, AddressListError> {
    let mut list = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let p = line
            .parse()
            .map_err(|error| AddressListError { line: n + 1, error })?;
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

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |reason: String| Error::InvalidAddress {
            input: s.to_string(),
            reason,
        };
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: Ipv6Addr = addr
            .trim()
            .parse()
            .map_err(|_| bad("not an IPv6 address".into()))?;
        let len = match len {
            None => 128,
            Some(l) => {
                let l: u8 = l
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("prefix length `{l}` is not a number")))?;
                if l > 128 {
                    return Err(bad(format!("prefix length {l} is over 128")));
                }
                l
            }
        };
        let bits = u128::from(addr);
        let mask = if len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(len))
        };
        if bits & !mask != 0 {
            let net = Ipv6Addr::from(bits & mask);
            return Err(bad(format!(
                "host bits are set after /{len}; did you mean {net}/{len}?"
            )));
        }
        if len == 0 {
            return Err(bad("a /0 would make every address anycast".into()));
        }
        Ok(AnycastPrefix { addr, len })
    }
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
