//! What XDP a device offers, from the `netdev` generic netlink family
//! (Linux 6.3; `ynl --family netdev --do dev-get` shows the same): whether
//! its driver runs XDP natively, and whether it accepts frames redirected
//! to it (`NDO_XMIT`). The redirect helpers check that very flag: a
//! redirect to a device without it fails and the frame is lost (a veth
//! has it only while its peer can take frames: an XDP program or GRO on
//! the peer).

use std::io;

use super::{Socket, attributes};

/// `GENL_ID_CTRL`, `CTRL_CMD_GETFAMILY`, `CTRL_ATTR_FAMILY_ID`,
/// `CTRL_ATTR_FAMILY_NAME`.
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
/// `NETDEV_CMD_DEV_GET`, `NETDEV_A_DEV_IFINDEX`, `NETDEV_A_DEV_XDP_FEATURES`.
const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;
/// Size of `struct genlmsghdr`.
const GENLMSGHDR_LEN: usize = 4;

/// `enum netdev_xdp_act`: what XDP a device offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpFeatures(pub u64);

impl XdpFeatures {
    /// `NETDEV_XDP_ACT_BASIC`: the driver runs XDP (native mode).
    pub const BASIC: u64 = 1 << 0;
    /// `NETDEV_XDP_ACT_REDIRECT`: its XDP programs may redirect.
    pub const REDIRECT: u64 = 1 << 1;
    /// `NETDEV_XDP_ACT_NDO_XMIT`: frames may be redirected to it.
    pub const NDO_XMIT: u64 = 1 << 2;

    /// Native XDP is possible on this device.
    pub fn native(self) -> bool {
        self.0 & Self::BASIC != 0
    }

    /// Frames redirected to this device are sent (not dropped).
    pub fn takes_redirects(self) -> bool {
        self.0 & Self::NDO_XMIT != 0
    }
}

/// A generic netlink request: header (`cmd`, version 1) and attributes.
fn genl(cmd: u8, attrs: &[u8]) -> Vec<u8> {
    let mut b = vec![cmd, 1, 0, 0];
    b.extend_from_slice(attrs);
    b
}

/// The id of generic netlink family `name`; none when the kernel has no
/// such family.
fn family_id(s: &mut Socket, name: &str) -> io::Result<Option<u16>> {
    let mut n = name.as_bytes().to_vec();
    n.push(0);
    let body = genl(CTRL_CMD_GETFAMILY, &super::attr(CTRL_ATTR_FAMILY_NAME, &n));
    let parts = match s.request(GENL_ID_CTRL, 0, &body) {
        Ok(p) => p,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(parts.iter().find_map(|(_, p)| {
        attributes(p.get(GENLMSGHDR_LEN..)?)
            .find(|(k, _)| *k == CTRL_ATTR_FAMILY_ID)
            .and_then(|(_, v)| Some(u16::from_ne_bytes(v.get(0..2)?.try_into().ok()?)))
    }))
}

/// The XDP features of device `ifindex` (current network namespace); none
/// on a kernel without the `netdev` family (before 6.3).
pub fn xdp_features(ifindex: u32) -> io::Result<Option<XdpFeatures>> {
    let mut s = Socket::open_protocol(libc::NETLINK_GENERIC, 0)?;
    let Some(family) = family_id(&mut s, "netdev")? else {
        return Ok(None);
    };
    let body = genl(
        NETDEV_CMD_DEV_GET,
        &super::attr(NETDEV_A_DEV_IFINDEX, &ifindex.to_ne_bytes()),
    );
    let parts = s.request(family, 0, &body)?;
    Ok(parts
        .iter()
        .find_map(|(_, p)| parse_features(p))
        .map(XdpFeatures))
}

/// `NETDEV_A_DEV_XDP_FEATURES` in the payload of a `dev-get` answer.
fn parse_features(payload: &[u8]) -> Option<u64> {
    attributes(payload.get(GENLMSGHDR_LEN..)?)
        .find(|(k, _)| *k == NETDEV_A_DEV_XDP_FEATURES)
        .and_then(|(_, v)| Some(u64::from_ne_bytes(v.get(0..8)?.try_into().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::attr;

    #[test]
    fn xdp_features_are_read_from_a_dev_get_answer() {
        let mut m = genl(
            NETDEV_CMD_DEV_GET,
            &attr(NETDEV_A_DEV_IFINDEX, &4u32.to_ne_bytes()),
        );
        m.extend(attr(NETDEV_A_DEV_XDP_FEATURES, &0b111u64.to_ne_bytes()));
        let f = XdpFeatures(parse_features(&m).expect("parsed"));
        assert!(f.native() && f.takes_redirects());
        let without = XdpFeatures(XdpFeatures::BASIC | XdpFeatures::REDIRECT);
        assert!(without.native() && !without.takes_redirects());
        assert_eq!(parse_features(&genl(1, &[])), None);
        for cut in 0..m.len() {
            let _ = parse_features(&m[..cut]);
        }
    }

    #[test]
    fn loopback_offers_no_native_xdp_and_takes_no_redirects() {
        // lo (index 1) is in every namespace; its driver has no XDP.
        match xdp_features(1).expect("asked") {
            Some(f) => assert!(!f.native() && !f.takes_redirects(), "{f:?}"),
            None => eprintln!("no netdev family: kernel before 6.3"),
        }
    }
}
