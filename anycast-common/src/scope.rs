//! Scoped anycast addresses and the subnet anycast addresses of RFC 2526:
//! the scope table the data plane reads (`SCOPES`), the registry of
//! subnets userspace keeps (`SUBNETS`), and how a subnet's reserved
//! anycast addresses are made.
//!
//! A scope is a set of interfaces by name, in one network namespace; the
//! data plane knows an interface by its attachment id (the load-time
//! constant `ATTACHMENT`), so userspace keeps in each scope the ids of the
//! attachments of its interfaces, and keeps them right as interfaces are
//! attached and detached.

use bytemuck::{Pod, Zeroable};

use crate::{MAX_IFACES, NetnsId};

/// Number of scope ids; id 0 means "no scope" (reached from everywhere)
/// and is never allocated.
pub const MAX_SCOPES: u32 = 256;
/// Most interfaces one scope names.
pub const MAX_SCOPE_IFACES: usize = 8;
/// Capacity of the subnet registry.
pub const MAX_SUBNETS: u32 = 4096;

// Scope ids live in the high half of an address's word.
const _: () = assert!(MAX_SCOPES <= 1 << 16);
// One bit per attachment id, 1 to `MAX_IFACES` (id 256 takes bit 0, which
// id 0, never allocated, would have).
const _: () = assert!(MAX_IFACES <= 256);

/// A scope, indexed by its id in `SCOPES`. Id 0 is never used.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ScopeInfo {
    /// The attachments from which the scope's addresses may be reached:
    /// bit `id % 256` for attachment `id`. What the data plane reads.
    pub attachments: [u64; 4],
    /// The interfaces the scope names, NUL-padded (unused: all zero).
    /// Userspace only, as the rest below.
    pub ifaces: [[u8; 16]; MAX_SCOPE_IFACES],
    /// The network namespace of those interfaces.
    pub netns: NetnsId,
    /// 1 when the id is allocated, 0 when free.
    pub in_use: u32,
    /// Reserved, zero.
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<ScopeInfo>() == 32 + 16 * MAX_SCOPE_IFACES + 24);

impl ScopeInfo {
    /// Whether attachment `id` is in the scope (never id 0: an instance
    /// that is no attachment's).
    #[inline(always)]
    pub const fn admits(&self, id: u32) -> bool {
        let bit = id % 256;
        id != 0 && self.attachments[(bit / 64) as usize] >> (bit % 64) & 1 != 0
    }

    /// Puts attachment `id` in the scope (or takes it out).
    pub const fn set_attachment(&mut self, id: u32, on: bool) {
        let bit = id % 256;
        let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
        if on {
            self.attachments[word] |= mask;
        } else {
            self.attachments[word] &= !mask;
        }
    }
}

/// Key of the subnet registry: the 64-bit prefix of a subnet.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct SubnetKey {
    /// The prefix's first 8 bytes (network byte order).
    pub prefix: [u8; 8],
}
const _: () = assert!(core::mem::size_of::<SubnetKey>() == 8);

/// A registered subnet: which of its reserved anycast addresses are
/// configured, for which group, with which scope. Userspace only: the
/// addresses themselves are exact addresses like any other.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct SubnetInfo {
    /// The group of its addresses.
    pub group_id: u32,
    /// The scope of its addresses (0: none).
    pub scope_id: u32,
    /// The anycast IDs configured: bit `id` of the 128.
    pub ids: [u64; 2],
    /// 1 when the subnet-router anycast address is configured too.
    pub subnet_router: u8,
    /// 1 when the scope was given; 0 when it is the interfaces that
    /// carried the subnet when it was added.
    pub explicit_scope: u8,
    /// Reserved, zero.
    pub _pad: [u8; 6],
}
const _: () = assert!(core::mem::size_of::<SubnetInfo>() == 32);

impl SubnetInfo {
    /// Whether anycast ID `id` is configured.
    pub const fn has_id(&self, id: u8) -> bool {
        id < 128 && self.ids[(id / 64) as usize] >> (id % 64) & 1 != 0
    }
}

/// The anycast ID of the Mobile IPv6 Home-Agents anycast address (RFC
/// 6275 section 10.5; IANA, "IPv6 Subnet Anycast Addresses").
pub const HOME_AGENTS_ANYCAST_ID: u8 = 0x7e;
/// The largest anycast ID: 7 bits (RFC 2526 section 2).
pub const MAX_SUBNET_ANYCAST_ID: u8 = 0x7f;

/// The reserved subnet anycast address `id` (0 to 127) of the subnet with
/// 64-bit prefix `prefix` (RFC 2526 section 2): the prefix, then 57 bits
/// `1111110111...1` (the universal/local bit 0, as the interface
/// identifier is not globally unique), then the 7-bit ID: interface
/// identifiers FDFF:FFFF:FFFF:FF80 to FDFF:FFFF:FFFF:FFFF.
pub const fn subnet_anycast(prefix: [u8; 8], id: u8) -> [u8; 16] {
    let mut a = [0xff; 16];
    let mut i = 0;
    while i < 8 {
        a[i] = prefix[i];
        i += 1;
    }
    a[8] = 0xfd;
    a[15] = 0x80 | (id & MAX_SUBNET_ANYCAST_ID);
    a
}

/// The subnet-router anycast address of the subnet (RFC 4291 section
/// 2.6.1): the prefix with an all-zero interface identifier.
pub const fn subnet_router_anycast(prefix: [u8; 8]) -> [u8; 16] {
    let mut a = [0; 16];
    let mut i = 0;
    while i < 8 {
        a[i] = prefix[i];
        i += 1;
    }
    a
}

/// The anycast ID of `addr` when its interface identifier is a reserved
/// subnet anycast one ([`subnet_anycast`]).
pub const fn subnet_anycast_id(addr: &[u8; 16]) -> Option<u8> {
    let iid_ok = addr[8] == 0xfd
        && addr[9] == 0xff
        && addr[10] == 0xff
        && addr[11] == 0xff
        && addr[12] == 0xff
        && addr[13] == 0xff
        && addr[14] == 0xff
        && addr[15] & 0x80 != 0;
    if iid_ok {
        Some(addr[15] & MAX_SUBNET_ANYCAST_ID)
    } else {
        None
    }
}

/// What IANA's registry of IPv6 subnet anycast addresses says of ID `id`:
/// 126 is the Mobile IPv6 Home-Agents anycast ID, every other ID is
/// reserved.
pub const fn subnet_anycast_meaning(id: u8) -> &'static str {
    if id == HOME_AGENTS_ANYCAST_ID {
        "Mobile IPv6 Home-Agents anycast"
    } else {
        "reserved"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: [u8; 8] = [0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x02];

    #[test]
    fn home_agents_address_of_a_prefix() {
        // 2001:db8:1:2:fdff:ffff:ffff:fffe (RFC 2526 section 2, ID 0x7E).
        let a = subnet_anycast(PREFIX, HOME_AGENTS_ANYCAST_ID);
        assert_eq!(
            a,
            [
                0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x02, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xfe
            ]
        );
        assert_eq!(subnet_anycast_id(&a), Some(126));
    }

    #[test]
    fn the_id_range_ends_at_ff80_and_ffff() {
        let low = subnet_anycast(PREFIX, 0);
        let high = subnet_anycast(PREFIX, 127);
        assert_eq!(low[8..], [0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x80]);
        assert_eq!(high[8..], [0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        for id in 0..=127 {
            assert_eq!(subnet_anycast_id(&subnet_anycast(PREFIX, id)), Some(id));
        }
        // The universal/local bit set, or the top bit of the last byte
        // clear: not reserved subnet anycast.
        let mut u = low;
        u[8] = 0xff;
        assert_eq!(subnet_anycast_id(&u), None);
        let mut below = low;
        below[15] = 0x7f;
        assert_eq!(subnet_anycast_id(&below), None);
    }

    #[test]
    fn subnet_router_is_the_prefix_alone() {
        let a = subnet_router_anycast(PREFIX);
        assert_eq!(a[..8], PREFIX);
        assert_eq!(a[8..], [0; 8]);
        assert_eq!(subnet_anycast_id(&a), None);
    }

    #[test]
    fn meanings() {
        assert_eq!(
            subnet_anycast_meaning(126),
            "Mobile IPv6 Home-Agents anycast"
        );
        assert_eq!(subnet_anycast_meaning(127), "reserved");
        assert_eq!(subnet_anycast_meaning(0), "reserved");
    }

    #[test]
    fn scope_bits() {
        let mut s = ScopeInfo::zeroed();
        for id in [1, 63, 64, 200, 255, 256] {
            assert!(!s.admits(id));
            s.set_attachment(id, true);
            assert!(s.admits(id));
        }
        assert!(!s.admits(2));
        // Id 256 has bit 0; id 0 is never admitted.
        assert!(s.admits(256) && !s.admits(0));
        s.set_attachment(64, false);
        assert!(!s.admits(64) && s.admits(63));
    }
}
