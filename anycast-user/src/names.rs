//! Group and member names, checked once: a [`GroupName`] or a
//! [`MemberName`] is valid by construction, so whatever takes one need not
//! check it again.

use std::{borrow::Borrow, fmt, str::FromStr};

use anycast_common::{GROUP_NAME_LEN, MEMBER_NAME_LEN};

use crate::error::{Error, Result};

/// Whether `name` is 1 to `limit - 1` characters of `[A-Za-z0-9._-]`.
fn valid(name: &str, limit: usize) -> bool {
    !name.is_empty()
        && name.len() < limit
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A checked name type: the constructor, the conversions, and `Borrow<str>`
/// so that maps keyed by names can be indexed by `&str`.
macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $limit:expr, $invalid:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $ty(String);

        impl $ty {
            /// Checks `name`: 1 to 31 characters of `[A-Za-z0-9._-]`.
            pub fn new(name: &str) -> Result<Self> {
                if valid(name, $limit) {
                    Ok($ty(name.to_string()))
                } else {
                    Err(Error::$invalid(name.to_string()))
                }
            }

            /// The name.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A group's name: 1 to 31 characters of `[A-Za-z0-9._-]`.
    GroupName,
    GROUP_NAME_LEN,
    InvalidGroupName
);

name_type!(
    /// A member's name, unique in its group: 1 to 31 characters of `[A-Za-z0-9._-]`.
    MemberName,
    MEMBER_NAME_LEN,
    InvalidMemberName
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::fuzz::{Rng, text};

    #[test]
    fn member_names() {
        assert!(MemberName::new("m1.fra-2_a").is_ok());
        for bad in ["", "a b", "x/y", &"n".repeat(32)] {
            assert!(MemberName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn group_names() {
        let g: GroupName = "dns-1.a_b".parse().expect("valid");
        assert_eq!(g.as_str(), "dns-1.a_b");
        assert!(GroupName::new(&"g".repeat(31)).is_ok());
        for bad in ["", "bad name!", "é", &"g".repeat(32)] {
            let e = GroupName::new(bad).expect_err(bad).to_string();
            assert!(e.starts_with("invalid group name"), "{e}");
        }
    }

    #[test]
    fn random_text_is_refused_with_a_reason_or_accepted() {
        let mut r = Rng(0x5eed_1234_abcd_ef01);
        for _ in 0..200_000 {
            let t = text(&mut r);
            match GroupName::new(&t) {
                Ok(g) => assert_eq!(g.as_str(), t),
                Err(e) => assert!(e.to_string().starts_with("invalid group name"), "{t:?}"),
            }
        }
    }
}
