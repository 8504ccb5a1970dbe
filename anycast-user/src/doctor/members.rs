//! Each member's way out. On-link: its egress interface is there and up,
//! takes redirected frames, its MAC answers there, its MTU is enough.
//! Encapsulated: the FIB has a route to it, the route's egress takes
//! redirected frames, and leaves room for the 40-byte outer header.

use std::net::Ipv6Addr;

use anycast_common::MemberKind;

use super::{Check, Context, Status, kernel};
use crate::{
    members::{MemberEntry, format_mac, parse_mac},
    netlink::{
        link::Link,
        neigh::{Neighbour, NudState},
        netdev::{XdpFeatures, xdp_features},
        route,
    },
};

/// The IPv6 minimum MTU (RFC 8200 5): every link must carry it.
pub(crate) const MIN_MTU: u32 = 1280;
/// The outer IPv6 header of an encapsulated packet.
pub(crate) const OUTER_HEADER: u32 = 40;

pub(crate) fn checks(cx: &Context) -> Vec<Check> {
    let mut out = Vec::new();
    for m in &cx.members {
        match m.via {
            MemberKind::L2 => out.extend(on_link(cx, m)),
            MemberKind::Encap => out.extend(encapsulated(cx, m)),
            MemberKind::None => {}
        }
    }
    out
}

fn subject(m: &MemberEntry) -> String {
    format!("{}/{}", m.group, m.name)
}

fn on_link(cx: &Context, m: &MemberEntry) -> Vec<Check> {
    let who = subject(m);
    let iface = m.iface.clone().unwrap_or_default();
    if !cx.wants(&iface) {
        return Vec::new();
    }
    if let Some(ns) = m.netns
        && ns != cx.netns
    {
        return vec![Check::ok(
            "member.link",
            who,
            format!(
                "its interface {iface} is in another network namespace (inode {ns}): `anycast --netns NAME doctor` checks it there"
            ),
        )];
    }
    let ifindex = m.ifindex.unwrap_or(0);
    let Some(link) = cx.links.get(&ifindex).filter(|l| l.name == iface) else {
        return vec![Check::fail(
            "member.link",
            who,
            format!(
                "no interface {iface} with index {ifindex} here (deleted or replaced): the member is down for the data plane"
            ),
            format!(
                "bring {iface} back, or `anycast member del {} {}` and add it on the interface that replaced it",
                m.group, m.name
            ),
        )];
    };
    let mut out = vec![link_up(&who, link)];
    out.push(takes_redirects(cx, "member.redirect", &who, link));
    let mac = m
        .mac
        .as_deref()
        .and_then(|s| parse_mac(s).ok())
        .unwrap_or([0; 6]);
    let on_link: Vec<Neighbour> = cx
        .neighbours
        .iter()
        .filter(|n| n.ifindex == ifindex)
        .copied()
        .collect();
    out.push(neighbour(&who, &iface, mac, &on_link));
    out.push(link_mtu(&who, link));
    out
}

/// The egress interface is set up and has carrier.
fn link_up(who: &str, link: &Link) -> Check {
    let name = &link.name;
    if !link.is_up() {
        return Check::fail(
            "member.link",
            who,
            format!("its egress {name} is down: redirected frames are dropped"),
            format!("`ip link set dev {name} up`"),
        );
    }
    if !link.has_carrier() {
        return Check::fail(
            "member.link",
            who,
            format!("its egress {name} is up but has no carrier (the far end is down)"),
            format!("bring up the far end of {name} (for a veth: its peer)"),
        );
    }
    Check::ok(
        "member.link",
        who,
        format!("egress {name} is up, with carrier"),
    )
}

/// Whether frames redirected to `link` are sent: the kernel's `NDO_XMIT`
/// flag, and for a veth what its peer shows (GRO, an XDP program) when
/// the peer is in this namespace.
fn takes_redirects(cx: &Context, name: &'static str, who: &str, link: &Link) -> Check {
    let features = xdp_features(link.ifindex).ok().flatten();
    let peer = veth_peer(cx, link);
    let native = cx
        .attachments
        .iter()
        .any(|(i, _)| i.netns == cx.netns && i.mode == crate::AttachMode::Native);
    generic_redirects_need_no_xmit(judge_redirect(name, who, link, features, &peer), native)
}

/// A program in generic (skb) mode sends its redirected frames through
/// the stack, which needs no NDO_XMIT: with no native attachment here, a
/// device without it is no failure yet, only one once an attachment goes
/// native.
pub(crate) fn generic_redirects_need_no_xmit(c: Check, any_native: bool) -> Check {
    if c.status != Status::Fail || any_native {
        return c;
    }
    Check::warn(
        c.name,
        c.subject,
        format!(
            "{}; but every attachment here is in generic (skb) mode, whose redirects go through the stack: they arrive now, and would vanish once an attachment is native",
            c.evidence
        ),
        c.fix.unwrap_or_default(),
    )
}

/// What doctor sees of a veth's peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Peer {
    /// Not a veth.
    NotVeth,
    /// In this namespace: its name, GRO on (none: unknown), an XDP program.
    Here {
        name: String,
        gro: Option<bool>,
        xdp: bool,
    },
    /// In another namespace: its index there.
    Elsewhere { ifindex: Option<u32> },
}

fn veth_peer(cx: &Context, link: &Link) -> Peer {
    if link.kind.as_deref() != Some("veth") {
        return Peer::NotVeth;
    }
    match (link.peer, link.peer_netnsid) {
        (Some(p), None) => match cx.links.get(&p) {
            Some(pl) => Peer::Here {
                name: pl.name.clone(),
                gro: crate::link::gro_enabled(&pl.name).ok(),
                xdp: !pl.xdp.programs().is_empty(),
            },
            None => Peer::Elsewhere { ifindex: Some(p) },
        },
        (p, _) => Peer::Elsewhere { ifindex: p },
    }
}

pub(crate) fn judge_redirect(
    name: &'static str,
    who: &str,
    link: &Link,
    features: Option<XdpFeatures>,
    peer: &Peer,
) -> Check {
    let dev = &link.name;
    let peer_fix = match peer {
        Peer::Here { name: p, .. } => {
            format!("`ethtool -K {p} gro on` (with both ends up), or an XDP program on {p}")
        }
        _ => "on the veth's peer, in its namespace: `ethtool -K PEER gro on` (with both ends up), or an XDP program on the peer".to_string(),
    };
    let peer_says = match peer {
        Peer::NotVeth => String::new(),
        Peer::Here { name: p, gro, xdp } => format!(
            "; its veth peer {p}: GRO {}, {}",
            match gro {
                Some(true) => "on",
                Some(false) => "off",
                None => "unknown",
            },
            if *xdp {
                "an XDP program"
            } else {
                "no XDP program"
            }
        ),
        Peer::Elsewhere { ifindex } => format!(
            "; its veth peer{} is in another network namespace",
            ifindex.map_or(String::new(), |i| format!(" (index {i} there)"))
        ),
    };
    match features {
        Some(f) if f.takes_redirects() => Check::ok(
            name,
            who,
            format!("{dev} takes redirected frames (the kernel says NDO_XMIT){peer_says}"),
        ),
        Some(_) => {
            let fix = if matches!(peer, Peer::NotVeth) {
                format!(
                    "egress through a device whose driver takes XDP redirects (ndo_xdp_xmit), or attach it in a mode that does; {dev} cannot"
                )
            } else {
                peer_fix
            };
            Check::fail(
                name,
                who,
                format!(
                    "{dev} does not take redirected frames (no NDO_XMIT): they vanish{peer_says}"
                ),
                fix,
            )
        }
        // A kernel without the netdev family (before 6.3): the peer tells,
        // when it is in sight.
        None => match peer {
            Peer::Here {
                gro: Some(true), ..
            }
            | Peer::Here { xdp: true, .. } => Check::ok(
                name,
                who,
                format!("{dev} takes redirected frames{peer_says}"),
            ),
            Peer::Here {
                gro: Some(false), ..
            } => Check::fail(
                name,
                who,
                format!("{dev} does not take redirected frames: they vanish{peer_says}"),
                peer_fix,
            ),
            _ => Check::warn(
                name,
                who,
                format!(
                    "cannot tell whether {dev} takes redirected frames (kernel before 6.3){peer_says}"
                ),
                peer_fix,
            ),
        },
    }
}

/// The member's MAC in the neighbour table of its interface (`on_link`:
/// the entries of that interface).
pub(crate) fn neighbour(who: &str, iface: &str, mac: [u8; 6], on_link: &[Neighbour]) -> Check {
    let shown = format_mac(&mac);
    let entry = |n: &Neighbour| {
        format!(
            "{} lladdr {} {}",
            n.addr,
            n.mac.map_or("-".into(), |m| format_mac(&m)),
            n.state
        )
    };
    let with_mac: Vec<&Neighbour> = on_link.iter().filter(|n| n.mac == Some(mac)).collect();
    if let Some(n) = with_mac.iter().find(|n| n.state.usable()) {
        return Check::ok("member.neighbour", who, format!("{} on {iface}", entry(n)));
    }
    if let Some(n) = with_mac.first() {
        return Check::fail(
            "member.neighbour",
            who,
            format!(
                "{} on {iface}: the member's MAC did not answer Neighbour Solicitation",
                entry(n)
            ),
            format!(
                "check that the member is up on the link of {iface} (`ping {}`), and its MAC (`anycast member list`)",
                n.addr
            ),
        );
    }
    // Unanswered entries first: one of them may be the member's address
    // (a FAILED entry shows no MAC).
    let mut others: Vec<&Neighbour> = on_link
        .iter()
        .filter(|n| !n.addr.is_multicast() && n.state != NudState::NoArp)
        .collect();
    others.sort_by_key(|n| n.state.usable());
    let others: Vec<String> = others
        .into_iter()
        .take(4)
        .map(|n| match n.state {
            NudState::Failed | NudState::Incomplete => {
                format!("{} {} (did not answer)", n.addr, n.state)
            }
            _ => entry(n),
        })
        .collect();
    let seen = if others.is_empty() {
        format!("{iface} has no neighbour entries")
    } else {
        format!("{iface} has {}", others.join(", "))
    };
    Check::warn(
        "member.neighbour",
        who,
        format!(
            "no neighbour entry on {iface} has the member's MAC {shown} ({seen}): nothing confirms that a host answers there"
        ),
        format!(
            "check the MAC against `ip -6 neigh show dev {iface}` (`ping` the member's address to have it resolved); a wrong one: `anycast member del` and add it with the right `--mac`, or give the member by `addr` in the file"
        ),
    )
}

/// The on-link egress's MTU: at least the IPv6 minimum.
pub(crate) fn link_mtu(who: &str, link: &Link) -> Check {
    let (dev, mtu) = (&link.name, link.mtu);
    if mtu < MIN_MTU {
        return Check::fail(
            "member.mtu",
            who,
            format!("{dev} has MTU {mtu}, below the IPv6 minimum {MIN_MTU}: IPv6 is off on it"),
            format!("`ip link set dev {dev} mtu 1500` (at least {MIN_MTU})"),
        );
    }
    Check::ok(
        "member.mtu",
        who,
        format!("{dev} has MTU {mtu}; larger packets are answered with Packet Too Big"),
    )
}

/// The tunnel's MTU (`path`, the smaller of the route's and the egress
/// device's, less the outer header) must carry the IPv6 minimum.
pub(crate) fn tunnel_mtu(who: &str, dev: &str, path: u32) -> Check {
    let inner = path.saturating_sub(OUTER_HEADER);
    if inner < MIN_MTU {
        return Check::fail(
            "encap.mtu",
            who,
            format!(
                "the path MTU via {dev} is {path}: {inner} inside the 40-byte outer header, below the IPv6 minimum {MIN_MTU}, so packets of {MIN_MTU} bytes cannot be encapsulated"
            ),
            format!(
                "raise the MTU of {dev} (or the route's `mtu`) to at least {}",
                MIN_MTU + OUTER_HEADER
            ),
        );
    }
    Check::ok(
        "encap.mtu",
        who,
        format!(
            "path MTU {path} via {dev}: tunnel MTU {inner}; larger packets are answered with Packet Too Big"
        ),
    )
}

fn encapsulated(cx: &Context, m: &MemberEntry) -> Vec<Check> {
    let who = subject(m);
    let Some(addr) = m.addr else {
        return Vec::new();
    };
    let r = match route::to(addr) {
        Ok(Some(r)) => r,
        Ok(None) => {
            if cx.opts.iface.is_some() {
                return Vec::new();
            }
            return vec![Check::fail(
                "encap.route",
                who,
                format!(
                    "no route to {addr}: its packets go to the kernel untouched (fib_miss_passed)"
                ),
                format!(
                    "add a route to {addr} (`ip -6 route add {addr}/128 via NEXTHOP`, or have the routing daemon learn it)"
                ),
            )];
        }
        Err(e) => {
            return vec![Check::warn(
                "encap.route",
                who,
                format!("cannot look up the route to {addr}: {e}"),
                "run doctor as root".into(),
            )];
        }
    };
    let link = r.oif.and_then(|i| cx.links.get(&i));
    let dev = link.map_or("?".to_string(), |l| l.name.clone());
    if !cx.wants(&dev) {
        return Vec::new();
    }
    let via = r.gateway.map_or(String::new(), |g| format!(" via {g}"));
    let shown = format!("route {}/{}{via} dev {dev}", r.dst, r.dst_len);
    let mut out = Vec::new();
    let group = cx.groups.iter().find(|g| g.name == m.group);
    if cx.kernel < kernel::FIB_LOOKUP_SRC
        && group.is_some_and(|g| g.settings.tunnel_source.is_none())
    {
        out.push(Check::fail(
            "encap.route",
            who.clone(),
            format!("{shown}; but Linux {} has no BPF_FIB_LOOKUP_SRC and group {} has no tunnel source: its packets go to the kernel", cx.kernel, m.group),
            format!("`anycast group set {} --tunnel-source ADDR` (an address of this router)", m.group),
        ));
        return out;
    }
    let Some(link) = link else {
        out.push(Check::warn(
            "encap.route",
            who,
            format!("{shown}: a route without one egress (multipath?): its egress and MTU are not checked"),
            "none needed if the route is meant so".into(),
        ));
        return out;
    };
    let next_hop = r.gateway.unwrap_or(addr);
    out.push(next_hop_check(&who, &shown, link, next_hop, &cx.neighbours));
    out.push(takes_redirects(cx, "encap.redirect", &who, link));
    let path = r.mtu.map_or(link.mtu, |m| m.min(link.mtu));
    out.push(tunnel_mtu(&who, &dev, path));
    out
}

/// The route's egress is up and its next hop not known to be unreachable.
fn next_hop_check(
    who: &str,
    shown: &str,
    link: &Link,
    nh: Ipv6Addr,
    neighbours: &[Neighbour],
) -> Check {
    let dev = &link.name;
    if !link.is_up() || !link.has_carrier() {
        return Check::fail(
            "encap.route",
            who,
            format!("{shown}, but {dev} is down or has no carrier"),
            format!("`ip link set dev {dev} up` (and its far end)"),
        );
    }
    match neighbours.iter().find(|n| n.ifindex == link.ifindex && n.addr == nh) {
        Some(n) if matches!(n.state, NudState::Failed | NudState::Incomplete) => Check::new(
            "encap.route",
            who,
            Status::Warn,
            format!("{shown}; the next hop {nh} is {}: bpf_fib_lookup finds no MAC, packets go to the kernel", n.state),
        )
        .with_fix(format!("check that {nh} is up on the link of {dev} (`ping {nh}`)")),
        Some(n) => Check::ok("encap.route", who, format!("{shown}; next hop {nh} {}", n.state)),
        None => Check::ok(
            "encap.route",
            who,
            format!("{shown}; next hop {nh} not resolved yet (the first packets go to the kernel, which resolves it)"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(addr: &str, mac: Option<[u8; 6]>, state: NudState) -> Neighbour {
        Neighbour {
            ifindex: 3,
            addr: addr.parse().expect("addr"),
            mac,
            state,
        }
    }

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    #[test]
    fn a_members_mac_is_known_when_a_usable_entry_has_it() {
        let ok = neighbour(
            "g/m",
            "r1",
            MAC,
            &[n("fd00::2", Some(MAC), NudState::Stale)],
        );
        assert_eq!(ok.status, Status::Ok, "{ok}");
        assert!(ok.evidence.contains("STALE"), "{ok}");
        let failed = neighbour(
            "g/m",
            "r1",
            MAC,
            &[n("fd00::2", Some(MAC), NudState::Failed)],
        );
        assert_eq!(failed.status, Status::Fail, "{failed}");
        assert!(
            failed
                .fix
                .as_deref()
                .is_some_and(|f| f.contains("ping fd00::2"))
        );
        // Another MAC at the member's address, or nothing at all.
        let wrong = neighbour(
            "g/m",
            "r1",
            MAC,
            &[n("fd00::2", Some([2, 0, 0, 0, 0, 9]), NudState::Permanent)],
        );
        assert_eq!(wrong.status, Status::Warn, "{wrong}");
        assert!(wrong.evidence.contains("02:00:00:00:00:09"), "{wrong}");
        assert_eq!(neighbour("g/m", "r1", MAC, &[]).status, Status::Warn);
        // A failed entry shows no MAC: named first, as unanswered.
        let unanswered = neighbour(
            "g/m",
            "r1",
            MAC,
            &[
                n("fd00::9", Some([2, 0, 0, 0, 0, 9]), NudState::Reachable),
                n("fd00::2", None, NudState::Failed),
            ],
        );
        assert_eq!(unanswered.status, Status::Warn, "{unanswered}");
        assert!(
            unanswered
                .evidence
                .contains("has fd00::2 FAILED (did not answer), fd00::9"),
            "{unanswered}"
        );
    }

    #[test]
    fn mtus_must_carry_the_ipv6_minimum_inside_the_tunnel() {
        let link = |mtu| Link {
            name: "r1".into(),
            mtu,
            ..Link::default()
        };
        assert_eq!(link_mtu("g/m", &link(1280)).status, Status::Ok);
        assert_eq!(link_mtu("g/m", &link(1279)).status, Status::Fail);
        assert_eq!(tunnel_mtu("g/m", "t0", 1320).status, Status::Ok);
        let narrow = tunnel_mtu("g/m", "t0", 1300);
        assert_eq!(narrow.status, Status::Fail);
        assert!(
            narrow.fix.as_deref().is_some_and(|f| f.contains("1320")),
            "{narrow}"
        );
    }

    #[test]
    fn without_a_native_attachment_a_device_without_xmit_is_a_warning() {
        let fail = Check::fail(
            "member.redirect",
            "g/m",
            "no NDO_XMIT".into(),
            "gro on".into(),
        );
        assert_eq!(
            generic_redirects_need_no_xmit(fail.clone(), true).status,
            Status::Fail
        );
        let warned = generic_redirects_need_no_xmit(fail, false);
        assert_eq!(warned.status, Status::Warn);
        assert!(warned.evidence.contains("generic"), "{warned}");
        assert_eq!(warned.fix.as_deref(), Some("gro on"));
        let ok = Check::ok("member.redirect", "g/m", "NDO_XMIT".into());
        assert_eq!(generic_redirects_need_no_xmit(ok, false).status, Status::Ok);
    }

    #[test]
    fn a_veth_takes_redirects_as_the_kernel_or_its_peer_says() {
        let veth = Link {
            name: "r1".into(),
            kind: Some("veth".into()),
            ..Link::default()
        };
        let yes = XdpFeatures(XdpFeatures::BASIC | XdpFeatures::NDO_XMIT);
        let no = XdpFeatures(XdpFeatures::BASIC);
        let off = Peer::Here {
            name: "p1".into(),
            gro: Some(false),
            xdp: false,
        };
        let away = Peer::Elsewhere { ifindex: Some(4) };
        let j = |f, p: &Peer| judge_redirect("member.redirect", "g/m", &veth, f, p).status;
        assert_eq!(j(Some(yes), &away), Status::Ok);
        assert_eq!(j(Some(no), &away), Status::Fail);
        let fail = judge_redirect("member.redirect", "g/m", &veth, Some(no), &off);
        assert!(
            fail.fix
                .as_deref()
                .is_some_and(|f| f.contains("ethtool -K p1 gro on")),
            "{fail}"
        );
        assert!(fail.evidence.contains("GRO off"), "{fail}");
        // Without the kernel's word: the peer in sight decides, else WARN.
        assert_eq!(j(None, &off), Status::Fail);
        assert_eq!(j(None, &away), Status::Warn);
        let on = Peer::Here {
            name: "p1".into(),
            gro: Some(true),
            xdp: false,
        };
        assert_eq!(j(None, &on), Status::Ok);
    }
}
