//! How operators see the enums: one name each, shown by `Display` (padded,
//! so tables can align it) and by serde. Userspace only (`user` feature).

use core::fmt;

/// `Display` and `Serialize` from a type's `name()`.
macro_rules! shown_by_name {
    ($($ty:ident),+ $(,)?) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.name())
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }
    )+};
}

/// A `name()` for each variant, and `Display` and `Serialize` from it.
macro_rules! named {
    ($($ty:ident { $($variant:ident => $name:literal),+ $(,)? })+) => {$(
        impl $ty {
            /// The name in output (text and JSON) and on the command line.
            pub const fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        shown_by_name!($ty);
    )+};
}

use crate::{
    Affinity, Fallback, GlobalStat, GroupStat, IfaceLink, IfaceRole, MemberKind, MemberState,
    SourceAction,
};

named! {
    IfaceRole { Edge => "edge", Member => "member" }
    SourceAction { Drop => "drop", Count => "count" }
    Fallback { Pass => "pass", Drop => "drop" }
    Affinity { Flow => "flow", None => "none" }
    MemberState { Down => "down", Up => "up", Draining => "draining" }
    MemberKind { None => "none", L2 => "l2", Encap => "encap" }
    IfaceLink { Present => "present", Gone => "gone", Replaced => "replaced" }
}

// The counters already have their names next to their definitions.
shown_by_name!(GlobalStat, GroupStat);
