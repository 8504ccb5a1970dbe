//! What the kernel says of an interface over rtnetlink (`RTM_GETLINK`):
//! the XDP program attached to it and in which mode it runs, and the
//! attributes `anycast doctor` reads (flags, MTU, kind, a veth's peer).

use super::{Socket, attributes, u32_of};
use crate::error::{Error, Result};

/// `IFLA_IFNAME`, `IFLA_MTU`, `IFLA_LINK`, `IFLA_OPERSTATE`,
/// `IFLA_LINKINFO` (nested: `IFLA_INFO_KIND`), `IFLA_LINK_NETNSID`.
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_LINK_NETNSID: u16 = 37;
/// `IFLA_XDP`: the nested XDP attributes of a link.
const IFLA_XDP: u16 = 43;
/// `IFLA_XDP_ATTACHED`: how the program is attached (`XDP_ATTACHED_*`).
const IFLA_XDP_ATTACHED: u16 = 2;
/// `IFLA_XDP_DRV_PROG_ID`: the program attached in native (driver) mode.
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
/// `IFLA_XDP_SKB_PROG_ID`: the program attached in generic (skb) mode.
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
/// `IFLA_XDP_HW_PROG_ID`: the program offloaded to the device.
const IFLA_XDP_HW_PROG_ID: u16 = 7;
/// `XDP_ATTACHED_DRV`, `XDP_ATTACHED_SKB` and `XDP_ATTACHED_HW`.
const XDP_ATTACHED_DRV: u8 = 1;
const XDP_ATTACHED_SKB: u8 = 2;
const XDP_ATTACHED_HW: u8 = 3;
/// Size of `struct ifinfomsg`.
const IFINFOMSG_LEN: usize = 16;

/// How the kernel runs XDP programs on an interface, from its link
/// attributes (`ip link show` reads the same).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpAttachment {
    /// `IFLA_XDP_ATTACHED`: 0 none, 1 native, 2 generic, 3 offloaded, 4 several.
    pub attached: u8,
    /// The program attached in native (driver) mode, 0 if none.
    pub native_prog: u32,
    /// The program attached in generic (skb) mode, 0 if none.
    pub skb_prog: u32,
    /// The program offloaded to the device, 0 if none.
    pub hw_prog: u32,
}

/// The mode an XDP program runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver (`xdpdrv`).
    Native,
    /// On the skb, after the driver (`xdpgeneric`).
    Generic,
    /// In the device (`xdpoffload`).
    Offload,
}

impl std::fmt::Display for XdpMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
            XdpMode::Offload => "offload",
        })
    }
}

impl XdpAttachment {
    /// Whether program `prog` runs in native mode (`Some(true)`), in
    /// generic mode (`Some(false)`), or neither; `prog` 0 asks about
    /// whichever single program is attached.
    pub fn native(&self, prog: u32) -> Option<bool> {
        match self.mode_of(prog) {
            Some(XdpMode::Native) => Some(true),
            Some(XdpMode::Generic) => Some(false),
            _ => None,
        }
    }

    /// The mode program `prog` runs in, if it is attached here; `prog` 0
    /// asks about whichever single program is attached.
    pub fn mode_of(&self, prog: u32) -> Option<XdpMode> {
        match prog {
            0 => match self.attached {
                XDP_ATTACHED_DRV => Some(XdpMode::Native),
                XDP_ATTACHED_SKB => Some(XdpMode::Generic),
                XDP_ATTACHED_HW => Some(XdpMode::Offload),
                _ => None,
            },
            p if p == self.native_prog => Some(XdpMode::Native),
            p if p == self.skb_prog => Some(XdpMode::Generic),
            p if p == self.hw_prog => Some(XdpMode::Offload),
            _ => None,
        }
    }

    /// Every program attached, with its mode.
    pub fn programs(&self) -> Vec<(u32, XdpMode)> {
        [
            (self.native_prog, XdpMode::Native),
            (self.skb_prog, XdpMode::Generic),
            (self.hw_prog, XdpMode::Offload),
        ]
        .into_iter()
        .filter(|(id, _)| *id != 0)
        .collect()
    }
}

/// An interface as rtnetlink describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Link {
    /// Its index.
    pub ifindex: u32,
    /// Its name.
    pub name: String,
    /// `IFF_*` flags (`IFF_UP`: set up; `IFF_LOWER_UP`: carrier).
    pub flags: u32,
    /// Its MTU.
    pub mtu: u32,
    /// RFC 2863 operational state (`IF_OPER_*`: 6 up, 2 down, 5 lower layer down).
    pub operstate: u8,
    /// Its kind (`veth`, `vlan`, ...), none for a plain device.
    pub kind: Option<String>,
    /// `IFLA_LINK`: a veth's peer (another index), a VLAN's parent.
    pub peer: Option<u32>,
    /// `IFLA_LINK_NETNSID`: the peer is in another network namespace
    /// (this namespace's id for it).
    pub peer_netnsid: Option<i32>,
    /// Its XDP programs.
    pub xdp: XdpAttachment,
}

impl Link {
    /// Set up by the administrator (`ip link set up`).
    pub fn is_up(&self) -> bool {
        self.flags & libc::IFF_UP as u32 != 0
    }

    /// Has carrier (`LOWER_UP`): for a veth, its peer is up too.
    pub fn has_carrier(&self) -> bool {
        self.flags & 0x10000 != 0
    }
}

/// The XDP attachment of interface `ifindex` (in the current network
/// namespace), asked of the kernel over rtnetlink.
pub fn xdp_attachment(ifindex: u32) -> Result<XdpAttachment> {
    link(ifindex).map(|l| l.xdp)
}

fn io_err(source: std::io::Error) -> Error {
    Error::Io {
        path: "rtnetlink".into(),
        source,
    }
}

/// Interface `ifindex` of the current network namespace.
pub fn link(ifindex: u32) -> Result<Link> {
    // ifinfomsg: family AF_UNSPEC, then the index at offset 4.
    let mut body = [0u8; IFINFOMSG_LEN];
    body[4..8].copy_from_slice(&(ifindex as i32).to_ne_bytes());
    let reply = Socket::open(0)
        .and_then(|mut s| s.request(libc::RTM_GETLINK, 0, &body))
        .map_err(io_err)?;
    let (_, payload) = reply.first().ok_or_else(|| io_err(short()))?;
    parse_link(payload).map_err(io_err)
}

/// Every interface of the current network namespace.
pub fn links() -> Result<Vec<Link>> {
    let body = [0u8; IFINFOMSG_LEN];
    let parts = Socket::open(0)
        .and_then(|mut s| s.request(libc::RTM_GETLINK, libc::NLM_F_DUMP as u16, &body))
        .map_err(io_err)?;
    Ok(parts
        .iter()
        .filter(|(t, _)| *t == libc::RTM_NEWLINK)
        .filter_map(|(_, p)| parse_link(p).ok())
        .collect())
}

fn short() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, "short rtnetlink reply")
}

/// The interface in the payload of an `RTM_NEWLINK` message.
fn parse_link(payload: &[u8]) -> std::io::Result<Link> {
    let head = payload.get(..IFINFOMSG_LEN).ok_or_else(short)?;
    let word = |at: usize| u32::from_ne_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    let mut out = Link {
        ifindex: word(4),
        flags: word(8),
        ..Link::default()
    };
    for (kind, value) in attributes(&payload[IFINFOMSG_LEN..]) {
        match kind {
            IFLA_IFNAME => {
                let name = value.split(|b| *b == 0).next().unwrap_or_default();
                out.name = String::from_utf8_lossy(name).into_owned();
            }
            IFLA_MTU => out.mtu = u32_of(value).unwrap_or(0),
            IFLA_LINK => out.peer = u32_of(value).filter(|i| *i != 0),
            IFLA_OPERSTATE => out.operstate = value.first().copied().unwrap_or(0),
            IFLA_LINK_NETNSID => out.peer_netnsid = u32_of(value).map(|v| v as i32),
            IFLA_LINKINFO => {
                for (k, v) in attributes(value) {
                    if k == IFLA_INFO_KIND {
                        let name = v.split(|b| *b == 0).next().unwrap_or_default();
                        out.kind = Some(String::from_utf8_lossy(name).into_owned());
                    }
                }
            }
            IFLA_XDP => {
                for (kind, v) in attributes(value) {
                    let id = u32_of(v.get(0..4).unwrap_or_default()).unwrap_or(0);
                    match kind {
                        IFLA_XDP_ATTACHED => out.xdp.attached = v.first().copied().unwrap_or(0),
                        IFLA_XDP_DRV_PROG_ID => out.xdp.native_prog = id,
                        IFLA_XDP_SKB_PROG_ID => out.xdp.skb_prog = id,
                        IFLA_XDP_HW_PROG_ID => out.xdp.hw_prog = id,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::netlink::tests::attr;

    fn reply(attrs: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; IFINFOMSG_LEN];
        m[4..8].copy_from_slice(&7u32.to_ne_bytes());
        m[8..12].copy_from_slice(&(libc::IFF_UP as u32 | 0x10000).to_ne_bytes());
        m.extend_from_slice(attrs);
        m
    }

    #[test]
    fn the_xdp_mode_is_read_from_the_link_attributes() {
        let mut xdp = attr(IFLA_XDP_ATTACHED, &[4]);
        xdp.extend(attr(IFLA_XDP_DRV_PROG_ID, &7u32.to_ne_bytes()));
        xdp.extend(attr(IFLA_XDP_SKB_PROG_ID, &9u32.to_ne_bytes()));
        xdp.extend(attr(IFLA_XDP_HW_PROG_ID, &11u32.to_ne_bytes()));
        let mut attrs = attr(3, b"eth0\0");
        attrs.extend(attr(IFLA_XDP | 0x8000, &xdp));
        let a = parse_link(&reply(&attrs)).expect("parsed").xdp;
        assert_eq!(
            a,
            XdpAttachment {
                attached: 4,
                native_prog: 7,
                skb_prog: 9,
                hw_prog: 11,
            }
        );
        assert_eq!(
            (a.native(7), a.native(9), a.native(8)),
            (Some(true), Some(false), None)
        );
        assert_eq!(a.mode_of(11), Some(XdpMode::Offload));
        assert_eq!(a.programs().len(), 3);
        let generic = parse_link(&reply(&attr(IFLA_XDP, &attr(IFLA_XDP_ATTACHED, &[2]))))
            .expect("parsed")
            .xdp;
        assert_eq!(generic.native(0), Some(false));
        assert_eq!(parse_link(&reply(&[])).expect("none").xdp.native(0), None);
        // A cut reply is an error or has nothing, never a panic.
        let full = reply(&attrs);
        for cut in 0..full.len() {
            let _ = parse_link(&full[..cut]);
        }
    }

    #[test]
    fn a_veth_and_its_peer_in_another_namespace_are_read() {
        let mut attrs = attr(IFLA_IFNAME, b"r1\0");
        attrs.extend(attr(IFLA_MTU, &1500u32.to_ne_bytes()));
        attrs.extend(attr(IFLA_LINK, &12u32.to_ne_bytes()));
        attrs.extend(attr(IFLA_OPERSTATE, &[6]));
        attrs.extend(attr(IFLA_LINK_NETNSID, &3u32.to_ne_bytes()));
        attrs.extend(attr(
            IFLA_LINKINFO | 0x8000,
            &attr(IFLA_INFO_KIND, b"veth\0"),
        ));
        let l = parse_link(&reply(&attrs)).expect("parsed");
        assert_eq!(
            (l.ifindex, l.name.as_str(), l.mtu, l.operstate),
            (7, "r1", 1500, 6)
        );
        assert_eq!(
            (l.kind.as_deref(), l.peer, l.peer_netnsid),
            (Some("veth"), Some(12), Some(3))
        );
        assert!(l.is_up() && l.has_carrier());
        let full = reply(&attrs);
        for cut in 0..full.len() {
            let _ = parse_link(&full[..cut]);
        }
    }
}
