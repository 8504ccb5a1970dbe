//! The members of groups as the data plane stores them: state, transport,
//! the `MEMBERS` entry, the member-source key and per-member counters.

use bytemuck::{Pod, Zeroable};

use super::MEMBER_NAME_LEN;

/// A member's state.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// Gets no traffic; its flows move.
    Down = 0,
    /// Gets new flows and keeps its own.
    Up = 1,
    /// Keeps its flows until they go idle, gets no new ones (maintenance).
    Draining = 2,
}

impl MemberState {
    /// Decodes the wire value.
    pub const fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Up,
            2 => Self::Draining,
            _ => Self::Down,
        }
    }
}

/// How a member is reached.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberKind {
    /// Free slot.
    None = 0,
    /// On-link: rewrite MACs and redirect out of `ifindex`.
    L2 = 1,
    /// Routed: IPv6-in-IPv6 to `addr`, next hop from the FIB.
    Encap = 2,
}

impl MemberKind {
    /// Decodes the wire value.
    pub const fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::L2,
            2 => Self::Encap,
            _ => Self::None,
        }
    }
}

/// Whether an on-link member's interface is still the one it was added on
/// (same index and name, in the same network namespace). Userspace checks
/// it on every command and on link events (`anycast run`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfaceLink {
    /// Present, as recorded (encapsulated members are always `Present`).
    Present = 0,
    /// No interface has the recorded index any more.
    Gone = 1,
    /// The recorded index now belongs to an interface of another name.
    Replaced = 2,
}

impl IfaceLink {
    /// Decodes the wire value.
    pub const fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Gone,
            2 => Self::Replaced,
            _ => Self::Present,
        }
    }
}

/// A network namespace's identity: the device and inode of its nsfs file
/// (`/proc/thread-self/ns/net`), host byte order. All zero: not recorded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct NetnsId {
    /// `st_dev` of the namespace file.
    pub dev: u64,
    /// `st_ino` of the namespace file.
    pub ino: u64,
}
const _: () = assert!(core::mem::size_of::<NetnsId>() == 16);

/// A member of a group, indexed by member id in `MEMBERS`.
///
/// The data plane reads the first 76 bytes (through `addr`); the rest is
/// userspace's record of the member's interface.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct MemberInfo {
    /// Member name, NUL-padded; unique within its group.
    pub name: [u8; MEMBER_NAME_LEN],
    /// Its group (host byte order).
    pub group_id: u32,
    /// Metric: lower is nearer (host byte order).
    pub metric: u32,
    /// [`MemberKind`] as `u8`.
    pub kind: u8,
    /// The [`MemberState`] the data plane acts on, as `u8`: the operator's
    /// [`state`](Self::state), or `Down` while [`link`](Self::link) is not
    /// `Present` (written only through [`MemberInfo::set_state`] and
    /// [`MemberInfo::set_link`]).
    pub up: u8,
    /// Relative share among tied members, 1..=100 (0 counts as 1).
    pub weight: u8,
    /// [`IfaceLink`] as `u8`: whether an on-link member's interface is there.
    pub link: u8,
    /// L2: egress interface index (host byte order).
    pub ifindex: u32,
    /// L2: the member's MAC.
    pub mac: [u8; 6],
    /// L2: the egress interface's MAC (the rewritten source).
    pub src_mac: [u8; 6],
    /// Encap: the member's unicast address, network byte order.
    pub addr: [u8; 16],
    /// L2: the egress interface's name when the member was added, NUL-padded.
    pub ifname: [u8; 16],
    /// The [`MemberState`] the operator set, as `u8`.
    pub state: u8,
    /// Reserved, zero.
    pub _pad: [u8; 3],
    /// How many times the member's interface was found gone or replaced
    /// (host byte order).
    pub link_losses: u32,
    /// Reserved, zero.
    pub _pad2: u32,
    /// L2: the network namespace of the egress interface.
    pub netns: NetnsId,
}
const _: () = assert!(core::mem::size_of::<MemberInfo>() == 120);
// The XDP program copies both MACs as three 32-bit words.
const _: () = assert!(
    core::mem::offset_of!(MemberInfo, mac) % 4 == 0
        && core::mem::offset_of!(MemberInfo, src_mac) == core::mem::offset_of!(MemberInfo, mac) + 6
);
// ... and the encapsulated member's address as 32-bit words.
const _: () = assert!(core::mem::offset_of!(MemberInfo, addr) % 4 == 0);
// What the data plane reads stays where layout 7 had it.
const _: () = assert!(core::mem::offset_of!(MemberInfo, ifname) == 76);

impl MemberInfo {
    /// Sets the operator's state; the data plane's follows it unless the
    /// interface is lost.
    pub fn set_state(&mut self, state: MemberState) {
        self.state = state as u8;
        self.sync_up();
    }

    /// Records whether the interface is there; a loss (from `Present`) is
    /// counted, and the data plane's state is `Down` until it is back.
    pub fn set_link(&mut self, link: IfaceLink) {
        if IfaceLink::from_u8(self.link) == IfaceLink::Present && link != IfaceLink::Present {
            self.link_losses = self.link_losses.wrapping_add(1);
        }
        self.link = link as u8;
        self.sync_up();
    }

    fn sync_up(&mut self) {
        self.up = match IfaceLink::from_u8(self.link) {
            IfaceLink::Present => self.state,
            IfaceLink::Gone | IfaceLink::Replaced => MemberState::Down as u8,
        };
    }
}

/// Key of `MEMBER_SOURCES`: who may send with a group's anycast source on a
/// `member` interface. L2 members: ingress ifindex and source MAC, `addr`
/// zero. Encapsulated members: `addr` (the outer source), ifindex and MAC
/// zero. The group is part of the key: one host may serve several groups.
/// The value is the member id.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct MemberSourceKey {
    /// The group whose anycast source is vouched for (host byte order).
    pub group_id: u32,
    /// Ingress interface index (host byte order), L2 only.
    pub ifindex: u32,
    /// Source MAC, L2 only.
    pub mac: [u8; 6],
    /// Reserved, zero.
    pub _pad: [u8; 2],
    /// Outer source address, network byte order, encapsulated only.
    pub addr: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<MemberSourceKey>() == 32);

impl MemberSourceKey {
    /// The key of an on-link member of `group`: ingress interface and source MAC.
    #[inline(always)]
    pub const fn on_link(group_id: u32, ifindex: u32, mac: [u8; 6]) -> Self {
        MemberSourceKey {
            group_id,
            ifindex,
            mac,
            _pad: [0; 2],
            addr: [0; 16],
        }
    }

    /// The key of an encapsulated member of `group`: the outer source address.
    #[inline(always)]
    pub const fn tunnel(group_id: u32, addr: [u8; 16]) -> Self {
        MemberSourceKey {
            group_id,
            ifindex: 0,
            mac: [0; 6],
            _pad: [0; 2],
            addr,
        }
    }
}

/// Per-CPU counters of one member.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct MemberCounters {
    /// Packets redirected to the member.
    pub packets: u64,
    /// Bytes (frames as received) redirected to the member.
    pub bytes: u64,
}
