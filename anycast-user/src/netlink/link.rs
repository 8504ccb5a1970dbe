//! What the kernel says of an interface over rtnetlink (`RTM_GETLINK`):
//! the XDP program attached to it and in which mode it runs.

use super::{Socket, attributes};
use crate::error::{Error, Result};

/// `IFLA_XDP`: the nested XDP attributes of a link.
const IFLA_XDP: u16 = 43;
/// `IFLA_XDP_ATTACHED`: how the program is attached (`XDP_ATTACHED_*`).
const IFLA_XDP_ATTACHED: u16 = 2;
/// `IFLA_XDP_DRV_PROG_ID`: the program attached in native (driver) mode.
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
/// `IFLA_XDP_SKB_PROG_ID`: the program attached in generic (skb) mode.
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
/// `XDP_ATTACHED_DRV` and `XDP_ATTACHED_SKB`.
const XDP_ATTACHED_DRV: u8 = 1;
const XDP_ATTACHED_SKB: u8 = 2;
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
}

impl XdpAttachment {
    /// Whether program `prog` runs in native mode (`Some(true)`), in
    /// generic mode (`Some(false)`), or neither; `prog` 0 asks about
    /// whichever single program is attached.
    pub fn native(&self, prog: u32) -> Option<bool> {
        match prog {
            0 => match self.attached {
                XDP_ATTACHED_DRV => Some(true),
                XDP_ATTACHED_SKB => Some(false),
                _ => None,
            },
            p if p == self.native_prog => Some(true),
            p if p == self.skb_prog => Some(false),
            _ => None,
        }
    }
}

/// The XDP attachment of interface `ifindex` (in the current network
/// namespace), asked of the kernel over rtnetlink.
pub fn xdp_attachment(ifindex: u32) -> Result<XdpAttachment> {
    let io_err = |source| Error::Io {
        path: "rtnetlink".into(),
        source,
    };
    // ifinfomsg: family AF_UNSPEC, then the index at offset 4.
    let mut body = [0u8; IFINFOMSG_LEN];
    body[4..8].copy_from_slice(&(ifindex as i32).to_ne_bytes());
    let reply = Socket::open(0)
        .and_then(|mut s| s.request(libc::RTM_GETLINK, 0, &body))
        .map_err(io_err)?;
    let (_, payload) = reply.first().ok_or_else(|| io_err(short()))?;
    parse_link(payload).map_err(io_err)
}

fn short() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, "short rtnetlink reply")
}

/// The XDP attachment in the payload of an `RTM_NEWLINK` message.
fn parse_link(payload: &[u8]) -> std::io::Result<XdpAttachment> {
    let mut out = XdpAttachment::default();
    let attrs = payload.get(IFINFOMSG_LEN..).ok_or_else(short)?;
    for (kind, value) in attributes(attrs) {
        if kind != IFLA_XDP {
            continue;
        }
        for (kind, v) in attributes(value) {
            let word = v
                .get(0..4)
                .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]));
            match kind {
                IFLA_XDP_ATTACHED => out.attached = v.first().copied().unwrap_or(0),
                IFLA_XDP_DRV_PROG_ID => out.native_prog = word.unwrap_or(0),
                IFLA_XDP_SKB_PROG_ID => out.skb_prog = word.unwrap_or(0),
                _ => {}
            }
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
        m.extend_from_slice(attrs);
        m
    }

    #[test]
    fn the_xdp_mode_is_read_from_the_link_attributes() {
        let mut xdp = attr(IFLA_XDP_ATTACHED, &[4]);
        xdp.extend(attr(IFLA_XDP_DRV_PROG_ID, &7u32.to_ne_bytes()));
        xdp.extend(attr(IFLA_XDP_SKB_PROG_ID, &9u32.to_ne_bytes()));
        let mut attrs = attr(3, b"eth0\0");
        attrs.extend(attr(IFLA_XDP | 0x8000, &xdp));
        let a = parse_link(&reply(&attrs)).expect("parsed");
        assert_eq!(
            a,
            XdpAttachment {
                attached: 4,
                native_prog: 7,
                skb_prog: 9
            }
        );
        assert_eq!(
            (a.native(7), a.native(9), a.native(8)),
            (Some(true), Some(false), None)
        );
        let generic =
            parse_link(&reply(&attr(IFLA_XDP, &attr(IFLA_XDP_ATTACHED, &[2])))).expect("parsed");
        assert_eq!(generic.native(0), Some(false));
        assert_eq!(parse_link(&reply(&[])).expect("none").native(0), None);
        // A cut reply is an error or has nothing, never a panic.
        let full = reply(&attrs);
        for cut in 0..full.len() {
            let _ = parse_link(&full[..cut]);
        }
    }
}
