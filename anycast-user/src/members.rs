//! Members of anycast groups as operators name them: how a member is
//! reached (on-link or routed), its stored entry, and how `member list`
//! shows it. The maps of members are `state::members`.

use std::net::Ipv6Addr;

use anycast_common::{IfaceLink, MemberInfo, MemberKind, MemberSourceKey, MemberState, NetnsId};
use bytemuck::Zeroable as _;
use serde::Serialize;

use crate::{
    addr::parse_unicast,
    error::{Endpoint, Error, MacProblem, Result},
    link::{iface_mac, ifindex},
    names::MemberName,
    netns,
};

/// How to reach a new member, with its interface resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// On-link: egress interface index, the member's MAC, the interface's
    /// MAC, and the interface's name and namespace (its identity, with the
    /// index).
    L2 {
        /// Egress interface index.
        ifindex: u32,
        /// The member's MAC.
        mac: [u8; 6],
        /// The egress interface's own MAC.
        src_mac: [u8; 6],
        /// The egress interface's name, NUL-padded.
        ifname: [u8; 16],
        /// The egress interface's network namespace; all zero: not
        /// recorded, and the interface is never checked (program tests).
        netns: NetnsId,
    },
    /// Routed: the member's unicast address (IPv6-in-IPv6).
    Encap(Ipv6Addr),
}

/// How operators name a new member's way in (the CLI, the configuration file).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MemberVia {
    /// On-link: egress interface name and the member's MAC.
    L2 {
        /// Egress interface.
        iface: String,
        /// The member's MAC.
        mac: [u8; 6],
    },
    /// On-link, by address: egress interface name and the member's own
    /// address on that link, its MAC taken from the kernel's neighbour table.
    Neighbour {
        /// Egress interface.
        iface: String,
        /// The member's address on the link.
        addr: Ipv6Addr,
    },
    /// Routed: the member's unicast address.
    Encap(Ipv6Addr),
}

/// How long `config apply` waits for an on-link member given by address
/// to be resolved (the kernel gives up after 3 solicitations 1 s apart).
pub const RESOLVE_WAIT: std::time::Duration = std::time::Duration::from_millis(3500);

impl std::fmt::Display for MemberVia {
    /// `eth1 02:00:00:00:00:01`, `eth1 fd00:1::2`, or the encap address.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemberVia::L2 { iface, mac } => write!(f, "{iface} {}", format_mac(mac)),
            MemberVia::Neighbour { iface, addr } => write!(f, "{iface} {addr}"),
            MemberVia::Encap(a) => write!(f, "{a}"),
        }
    }
}

impl MemberVia {
    /// The way in from the command line's options: an interface and a MAC
    /// (on-link), or an address (routed), never both.
    pub fn from_args(
        iface: Option<String>,
        mac: Option<&str>,
        encap: Option<&str>,
    ) -> Result<Self> {
        match (iface, mac, encap) {
            (Some(iface), Some(mac), None) => Ok(MemberVia::L2 {
                iface,
                mac: parse_mac(mac)?,
            }),
            (None, None, Some(addr)) => Ok(MemberVia::Encap(parse_unicast(addr, Endpoint::Encap)?)),
            _ => Err(Error::MemberVia),
        }
    }

    /// Resolves an on-link member's interface name to its index and MAC, in
    /// the current network namespace (which it records); a member given by
    /// address gets the MAC its neighbour entry has, solicited and waited
    /// for (at most [`RESOLVE_WAIT`]) when there is none.
    pub fn resolve(&self) -> Result<Via> {
        let l2 = |iface: &str, mac| -> Result<Via> {
            Ok(Via::L2 {
                ifindex: ifindex(iface)?,
                mac,
                src_mac: iface_mac(iface)?,
                ifname: ifname_bytes(iface),
                netns: netns::current()?,
            })
        };
        match self {
            MemberVia::L2 { iface, mac } => l2(iface, *mac),
            MemberVia::Neighbour { iface, addr } => {
                let mac = crate::neighbours::resolve_once(iface, *addr, RESOLVE_WAIT)?;
                l2(iface, mac)
            }
            MemberVia::Encap(addr) => Ok(Via::Encap(*addr)),
        }
    }

    /// As [`MemberVia::resolve`], but a member given by address is not
    /// resolved (its MAC is left zero): for checking a file without
    /// soliciting anything (`config check`, which needs no privileges).
    pub fn resolve_offline(&self) -> Result<Via> {
        match self {
            MemberVia::Neighbour { iface, .. } => MemberVia::L2 {
                iface: iface.clone(),
                mac: [0; 6],
            }
            .resolve(),
            other => other.resolve(),
        }
    }
}

/// A member as `member list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberEntry {
    /// Its group.
    pub group: String,
    /// Its name.
    pub name: String,
    /// Member id.
    pub id: u32,
    /// Metric: lower is nearer.
    pub metric: u32,
    /// `up`, `down` or `draining`, as the operator set it (the data plane
    /// treats the member as down while `link` is not `present`).
    pub state: MemberState,
    /// L2: whether its interface is still there: `present`, `gone` (no
    /// interface has its index), or `replaced` (another interface has it).
    pub link: IfaceLink,
    /// L2: how often its interface was found gone or replaced.
    pub link_losses: u32,
    /// Relative share among tied members.
    pub weight: u8,
    /// `l2` or `encap`.
    pub via: MemberKind,
    /// L2: egress ifindex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ifindex: Option<u32>,
    /// L2: the egress interface's name, as recorded when the member was added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    /// L2: the member's MAC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Encap: the member's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<Ipv6Addr>,
    /// L2: the egress interface's network namespace (inode), when recorded.
    #[serde(skip)]
    pub netns: Option<u64>,
    /// Gets new flows (up and at the nearest metric).
    pub nearest: bool,
    /// Live flows it holds in the flow table.
    pub flows: u64,
    /// Packets redirected to it.
    pub packets: u64,
    /// Bytes redirected to it.
    pub bytes: u64,
}

/// What `member list` adds to a member's stored entry.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MemberActivity {
    /// Gets new flows.
    pub(crate) nearest: bool,
    /// Live flows in the flow table.
    pub(crate) flows: u64,
    /// Packets and bytes redirected to it.
    pub(crate) counters: (u64, u64),
}

impl MemberEntry {
    /// Member `id` of group `group` as listed, from its stored entry.
    pub(crate) fn new(group: String, id: u32, m: &MemberInfo, a: MemberActivity) -> Self {
        let l2 = m.kind == MemberKind::L2 as u8;
        MemberEntry {
            group,
            name: m.name_str(),
            id,
            metric: m.metric,
            state: MemberState::from_u8(m.state),
            link: IfaceLink::from_u8(m.link),
            link_losses: m.link_losses,
            weight: m.weight.max(1),
            via: if l2 {
                MemberKind::L2
            } else {
                MemberKind::Encap
            },
            ifindex: l2.then_some(m.ifindex),
            iface: l2.then(|| m.ifname_str()),
            mac: l2.then(|| format_mac(&m.mac)),
            addr: (!l2).then(|| m.addr.into()),
            netns: (l2 && m.netns.ino != 0).then_some(m.netns.ino),
            nearest: a.nearest,
            flows: a.flows,
            packets: a.counters.0,
            bytes: a.counters.1,
        }
    }
}

/// An interface name as stored: NUL-padded, cut at 15 bytes (longer names
/// do not resolve).
pub fn ifname_bytes(name: &str) -> [u8; 16] {
    let mut b = [0u8; 16];
    let n = name.len().min(15);
    b[..n].copy_from_slice(&name.as_bytes()[..n]);
    b
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-`).
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let bad = |problem| Error::InvalidMac {
        input: s.to_string(),
        problem,
    };
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad(MacProblem::Syntax));
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(parts) {
        if p.len() != 2 {
            return Err(bad(MacProblem::Syntax));
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad(MacProblem::Syntax))?;
    }
    if mac == [0; 6] {
        return Err(bad(MacProblem::Zero));
    }
    if mac[0] & 1 == 1 {
        return Err(bad(MacProblem::Multicast));
    }
    Ok(mac)
}

/// The lightest and the heaviest weight of a member.
pub const WEIGHTS: std::ops::RangeInclusive<i64> = 1..=100;

/// Checks a weight: 1 to 100 (the same limits for the command line, the
/// configuration file and the library).
pub fn weight(w: i64) -> Result<u8> {
    match u8::try_from(w) {
        Ok(v) if WEIGHTS.contains(&w) => Ok(v),
        _ => Err(Error::InvalidWeight(w)),
    }
}

/// Checks a weight: 1 to 100.
pub fn validate_weight(w: u8) -> Result<()> {
    weight(i64::from(w)).map(drop)
}

/// The key under which the data plane recognises the member's packets.
pub(crate) fn source_key(m: &MemberInfo) -> MemberSourceKey {
    match MemberKind::from_u8(m.kind) {
        MemberKind::L2 => MemberSourceKey::on_link(m.group_id, m.ifindex, m.mac),
        _ => MemberSourceKey::tunnel(m.group_id, m.addr),
    }
}

/// Whether two members are reached the same way (a change of it replaces
/// the member: new id, new counters).
pub(crate) fn same_way(a: &MemberInfo, b: &MemberInfo) -> bool {
    a.kind == b.kind
        && match MemberKind::from_u8(a.kind) {
            MemberKind::L2 => {
                (a.ifindex, a.mac, a.src_mac, a.ifname, a.netns)
                    == (b.ifindex, b.mac, b.src_mac, b.ifname, b.netns)
            }
            _ => a.addr == b.addr,
        }
}

/// Whether two on-link members leave through the same interface (they
/// may differ in the MAC they are sent to).
pub(crate) fn same_link(a: &MemberInfo, b: &MemberInfo) -> bool {
    a.kind == MemberKind::L2 as u8
        && b.kind == MemberKind::L2 as u8
        && (a.ifindex, a.src_mac, a.ifname, a.netns) == (b.ifindex, b.src_mac, b.ifname, b.netns)
}

/// A member's stored entry (group id still zero), up, from its settings.
pub(crate) fn new_member(name: &MemberName, via: Via, metric: u32, weight: u8) -> MemberInfo {
    let name = name.as_str();
    let mut m = MemberInfo::zeroed();
    m.name[..name.len()].copy_from_slice(name.as_bytes());
    m.metric = metric;
    m.set_state(MemberState::Up);
    m.weight = weight;
    match via {
        Via::L2 {
            ifindex,
            mac,
            src_mac,
            ifname,
            netns,
        } => {
            m.kind = MemberKind::L2 as u8;
            m.ifindex = ifindex;
            m.mac = mac;
            m.src_mac = src_mac;
            m.ifname = ifname;
            m.netns = netns;
        }
        Via::Encap(addr) => {
            m.kind = MemberKind::Encap as u8;
            m.addr = addr.octets();
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::fuzz::{Rng, text};

    #[test]
    fn macs_parse_and_print() {
        let m = parse_mac("02:AB:cd:00:00:01").expect("mac");
        assert_eq!(m, [0x02, 0xab, 0xcd, 0, 0, 1]);
        assert_eq!(format_mac(&m), "02:ab:cd:00:00:01");
        assert_eq!(parse_mac("02-ab-cd-00-00-01").expect("dashes"), m);
        for bad in [
            "",
            "02:ab:cd:00:00",
            "02:ab:cd:00:00:01:02",
            "0g:00:00:00:00:01",
            "2:0:0:0:0:1",
            "00:00:00:00:00:00",
            "ff:ff:ff:ff:ff:ff",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn random_text_is_never_misread_as_a_mac() {
        let mut r = Rng(0x5eed_1234_abcd_ef01);
        for _ in 0..200_000 {
            let t = text(&mut r);
            if let Err(e) = parse_mac(&t) {
                assert!(e.to_string().starts_with("invalid MAC address"), "{t:?}");
            }
        }
    }

    #[test]
    fn every_unicast_mac_prints_and_parses_back_and_the_others_are_refused() {
        let mut r = Rng(0x0a1b_2c3d_4e5f_6071);
        for i in 0..100_000 {
            let b = r.next_u64().to_be_bytes();
            let mut mac = [b[0], b[1], b[2], b[3], b[4], b[5]];
            if i % 1000 == 0 {
                mac = [0; 6];
            }
            let unicast = mac != [0; 6] && mac[0] & 1 == 0;
            let text = format_mac(&mac);
            let forms = [text.clone(), text.to_uppercase(), text.replace(':', "-")];
            for t in forms {
                match parse_mac(&t) {
                    Ok(m) => assert!(unicast && m == mac, "{t}"),
                    Err(e) => assert!(
                        !unicast && e.to_string().contains("not a unicast MAC"),
                        "{t}: {e}"
                    ),
                }
            }
            // One octet cut short, or one too many: refused, never misread.
            assert!(parse_mac(&text[1..]).is_err(), "{text}");
            assert!(parse_mac(&format!("{text}:00")).is_err(), "{text}");
        }
    }

    #[test]
    fn mac_errors_read_as_sentences() {
        for (bad, want) in [
            (
                "01:00:5e:00:00:01",
                "invalid MAC address `01:00:5e:00:00:01`: it is a multicast address, not a unicast MAC",
            ),
            (
                "00:00:00:00:00:00",
                "invalid MAC address `00:00:00:00:00:00`: it is all zeros, not a unicast MAC",
            ),
            (
                "zz",
                "invalid MAC address `zz`: write it as six pairs of hex digits, e.g. 02:00:00:00:00:01",
            ),
        ] {
            assert_eq!(parse_mac(bad).expect_err(bad).to_string(), want);
        }
    }

    #[test]
    fn weights_are_1_to_100_wherever_they_come_from() {
        assert_eq!(weight(1).ok(), Some(1));
        assert_eq!(weight(100).ok(), Some(100));
        for bad in [0, 101, 255, 256, 300, -1] {
            let e = weight(bad).expect_err("out of range").to_string();
            assert_eq!(e, format!("invalid weight {bad}: use 1 to 100"));
        }
        assert!(validate_weight(0).is_err() && validate_weight(101).is_err());
    }

    #[test]
    fn member_via_from_args() {
        let l2 = MemberVia::from_args(Some("eth1".into()), Some("02:00:00:00:00:01"), None);
        assert!(matches!(l2, Ok(MemberVia::L2 { ref iface, .. }) if iface == "eth1"));
        let encap = MemberVia::from_args(None, None, Some("2001:db8:f::2"));
        assert!(matches!(encap, Ok(MemberVia::Encap(_))));
        for (iface, mac, encap, want) in [
            (None, None, None, "either on-link"),
            (Some("eth1"), Some("zz"), None, "invalid MAC address `zz`"),
            (None, None, Some("2001:db8::/64"), "is a prefix"),
            (
                None,
                None,
                Some("ff02::1"),
                "invalid encap address `ff02::1`: it is in multicast",
            ),
        ] {
            let e = MemberVia::from_args(iface.map(String::from), mac, encap)
                .expect_err(want)
                .to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
