//! The frames `anycast explain` runs: one described by fields (built with
//! `anycast_common::frame`), one given as hex, or every packet of a
//! classic pcap file (the format tcpdump writes).

use std::net::Ipv6Addr;

use anycast_common::{
    frame::{FrameBuilder, L4},
    wire,
};

use super::{ExplainError, Result};

/// The upper layer of a packet described by fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// TCP (a SYN).
    Tcp,
    /// UDP.
    Udp,
    /// ICMPv6 (an echo request).
    Icmpv6,
    /// Any other protocol number, with an empty payload.
    Other(u8),
}

impl std::str::FromStr for Proto {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            "icmpv6" | "icmp6" | "ipv6-icmp" => Ok(Proto::Icmpv6),
            n => match n.parse::<u8>() {
                Ok(6) => Ok(Proto::Tcp),
                Ok(17) => Ok(Proto::Udp),
                Ok(58) => Ok(Proto::Icmpv6),
                Ok(p) => Ok(Proto::Other(p)),
                Err(_) => Err(format!(
                    "`{s}` is not a protocol: use tcp, udp, icmpv6 or a number 0 to 255"
                )),
            },
        }
    }
}

/// A packet described by fields.
#[derive(Clone, Debug)]
pub struct Fields {
    /// IPv6 source.
    pub src: Ipv6Addr,
    /// IPv6 destination.
    pub dst: Ipv6Addr,
    /// Upper layer.
    pub proto: Proto,
    /// Source port (TCP, UDP) or echo identifier (ICMPv6).
    pub sport: u16,
    /// Destination port (TCP, UDP).
    pub dport: u16,
    /// Flow label (20 bits).
    pub flow_label: u32,
    /// VLAN ids, outermost first (802.1Q tags).
    pub vlans: Vec<u16>,
    /// Hop limit.
    pub hop_limit: u8,
    /// Source MAC (the member-source rule checks it on member interfaces).
    pub src_mac: Option<[u8; 6]>,
}

impl Fields {
    /// The frame: Ethernet (to the router's default MAC), the VLAN tags,
    /// IPv6, the upper layer with correct checksums.
    pub fn frame(&self) -> Result<Vec<u8>> {
        if self.flow_label > 0xf_ffff {
            return Err(ExplainError::Input(format!(
                "flow label {} is more than 20 bits (at most 1048575)",
                self.flow_label
            )));
        }
        if let Some(v) = self.vlans.iter().find(|v| **v > 4095) {
            return Err(ExplainError::Input(format!(
                "VLAN id {v} is more than 12 bits (at most 4095)"
            )));
        }
        let l4 = match self.proto {
            Proto::Tcp => L4::Tcp {
                sport: self.sport,
                dport: self.dport,
                flags: 0x02,
                payload: Vec::new(),
            },
            Proto::Udp => L4::Udp {
                sport: self.sport,
                dport: self.dport,
                payload: Vec::new(),
            },
            Proto::Icmpv6 => {
                // An echo request: identifier (the "source port"), sequence 1.
                let mut body = self.sport.to_be_bytes().to_vec();
                body.extend_from_slice(&1u16.to_be_bytes());
                L4::Icmpv6 {
                    ty: 128,
                    code: 0,
                    body,
                }
            }
            Proto::Other(proto) => L4::Raw {
                proto,
                bytes: vec![0; 8],
            },
        };
        let mut b = FrameBuilder::new(self.src, self.dst, l4);
        b.flow_label = self.flow_label;
        b.hop_limit = self.hop_limit;
        b.vlans = self.vlans.iter().map(|v| (wire::ETH_P_8021Q, *v)).collect();
        if let Some(m) = self.src_mac {
            b.src_mac = m;
        }
        Ok(b.build())
    }
}

/// A frame written as hex: pairs of digits, with or without spaces,
/// colons or a leading `0x`.
pub fn parse_hex(text: &str) -> Result<Vec<u8>> {
    let text = text.trim();
    let text = text.strip_prefix("0x").unwrap_or(text);
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b':')
        .collect();
    if !digits.len().is_multiple_of(2) {
        return Err(ExplainError::Input(
            "the hex frame has an odd number of digits".into(),
        ));
    }
    digits
        .chunks(2)
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
                .ok_or_else(|| {
                    ExplainError::Input(format!(
                        "`{}` is not a hex byte",
                        String::from_utf8_lossy(p)
                    ))
                })
        })
        .collect()
}

/// `LINKTYPE_ETHERNET`: the only link type the program sees.
const LINKTYPE_ETHERNET: u32 = 1;

/// Every packet of a classic pcap file (microsecond or nanosecond, either
/// byte order), as captured (a packet cut by the snap length is as cut).
/// Only Ethernet captures: XDP sees Ethernet frames.
pub fn parse_pcap(bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let bad = |what: &str| ExplainError::Input(format!("not a pcap file tcpdump writes: {what}"));
    let header = bytes
        .get(..24)
        .ok_or_else(|| bad("shorter than its header"))?;
    let magic = [header[0], header[1], header[2], header[3]];
    let little = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        [0x0a, 0x0d, 0x0d, 0x0a] => {
            return Err(bad(
                "pcapng (write it with `tcpdump -w` or convert with `editcap -F pcap`)",
            ));
        }
        _ => return Err(bad("unknown magic number")),
    };
    let u32_at = |b: &[u8], off: usize| -> u32 {
        let w = [b[off], b[off + 1], b[off + 2], b[off + 3]];
        if little {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let link = u32_at(header, 20) & 0x0fff_ffff;
    if link != LINKTYPE_ETHERNET {
        return Err(ExplainError::Input(format!(
            "the capture's link type is {link}, not Ethernet (1): capture on an Ethernet interface, not `any`"
        )));
    }
    let mut out = Vec::new();
    let mut off = 24;
    while off < bytes.len() {
        let rec = bytes
            .get(off..off + 16)
            .ok_or_else(|| bad("a packet record cut short"))?;
        let (caplen, wire_len) = (u32_at(rec, 8) as usize, u32_at(rec, 12) as usize);
        // A packet captured short would be explained as a shorter packet
        // than the one that came: a wrong answer, not a partial one.
        if caplen < wire_len {
            return Err(ExplainError::Input(format!(
                "packet {} of the capture holds {caplen} of its {wire_len} bytes: capture whole packets (`tcpdump -s 0`)",
                out.len() + 1
            )));
        }
        let data = bytes
            .get(off + 16..off + 16 + caplen)
            .ok_or_else(|| bad("a packet cut short"))?;
        out.push(data.to_vec());
        off += 16 + caplen;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap(little: bool, frames: &[&[u8]]) -> Vec<u8> {
        let w = |v: u32| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let h = |v: u16| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let mut f = Vec::new();
        f.extend_from_slice(&w(0xa1b2_c3d4));
        f.extend_from_slice(&h(2));
        f.extend_from_slice(&h(4));
        f.extend_from_slice(&w(0));
        f.extend_from_slice(&w(0));
        f.extend_from_slice(&w(262_144));
        f.extend_from_slice(&w(LINKTYPE_ETHERNET));
        for (i, d) in frames.iter().enumerate() {
            f.extend_from_slice(&w(1_700_000_000 + i as u32));
            f.extend_from_slice(&w(0));
            f.extend_from_slice(&w(d.len() as u32));
            f.extend_from_slice(&w(d.len() as u32));
            f.extend_from_slice(d);
        }
        f
    }

    #[test]
    fn pcap_of_either_byte_order_gives_every_packet() -> Result<()> {
        let a = [1u8; 60];
        let b = [2u8; 1514];
        for little in [true, false] {
            let got = parse_pcap(&pcap(little, &[&a, &b]))?;
            assert_eq!(got, vec![a.to_vec(), b.to_vec()], "little endian: {little}");
        }
        assert!(parse_pcap(&pcap(true, &[]))?.is_empty());
        Ok(())
    }

    #[test]
    fn pcap_damage_and_other_formats_are_refused() {
        let good = pcap(true, &[&[7u8; 80]]);
        assert!(parse_pcap(&good[..good.len() - 1]).is_err(), "cut packet");
        // Captured with a snap length: 80 of 200 bytes.
        let mut short = good.clone();
        short[24 + 12..24 + 16].copy_from_slice(&200u32.to_le_bytes());
        let e = parse_pcap(&short).expect_err("captured short");
        assert!(e.to_string().contains("-s 0"), "{e}");
        assert!(parse_pcap(&good[..30]).is_err(), "cut record header");
        assert!(parse_pcap(&good[..10]).is_err(), "cut file header");
        let mut ng = good.clone();
        ng[..4].copy_from_slice(&[0x0a, 0x0d, 0x0d, 0x0a]);
        assert!(parse_pcap(&ng).is_err(), "pcapng");
        let mut linux_sll = good;
        linux_sll[20..24].copy_from_slice(&113u32.to_le_bytes());
        let e = parse_pcap(&linux_sll).expect_err("not Ethernet");
        assert!(matches!(e, ExplainError::Input(ref m) if m.contains("113")));
    }

    #[test]
    fn hex_accepts_spaces_colons_and_a_prefix() -> Result<()> {
        assert_eq!(
            parse_hex("0x0a0B ff:00\n01")?,
            vec![0x0a, 0x0b, 0xff, 0x00, 0x01]
        );
        assert!(parse_hex("abc").is_err());
        assert!(parse_hex("zz").is_err());
        Ok(())
    }

    #[test]
    fn protocols_by_name_or_number() {
        assert_eq!("TCP".parse(), Ok(Proto::Tcp));
        assert_eq!("17".parse(), Ok(Proto::Udp));
        assert_eq!("icmpv6".parse(), Ok(Proto::Icmpv6));
        assert_eq!("50".parse(), Ok(Proto::Other(50)));
        assert!("256".parse::<Proto>().is_err());
        assert!("sctp".parse::<Proto>().is_err());
    }

    #[test]
    fn fields_make_the_frame_they_describe() -> Result<()> {
        let f = Fields {
            src: "2001:db8::1".parse().expect("address"),
            dst: "2001:db8:a::53".parse().expect("address"),
            proto: Proto::Udp,
            sport: 5353,
            dport: 53,
            flow_label: 0x12345,
            vlans: vec![7],
            hop_limit: 64,
            src_mac: None,
        };
        let b = f.frame()?;
        // Ethernet, one 802.1Q tag, then IPv6.
        assert_eq!(&b[12..14], &wire::ETH_P_8021Q.to_be_bytes());
        assert_eq!(u16::from_be_bytes([b[14], b[15]]) & 0x0fff, 7);
        let ip = 18;
        assert_eq!(b[ip] >> 4, 6);
        assert_eq!(
            u32::from_be_bytes([b[ip], b[ip + 1], b[ip + 2], b[ip + 3]]) & 0xf_ffff,
            0x12345
        );
        assert_eq!(b[ip + 6], wire::IPPROTO_UDP);
        assert_eq!(&b[ip + 8..ip + 24], &f.src.octets());
        assert_eq!(&b[ip + 24..ip + 40], &f.dst.octets());
        assert_eq!(&b[ip + 40..ip + 44], &[0x14, 0xe9, 0, 53]);
        let too_big = Fields {
            flow_label: 1 << 20,
            ..f.clone()
        };
        assert!(too_big.frame().is_err());
        let bad_vlan = Fields {
            vlans: vec![4096],
            ..f
        };
        assert!(bad_vlan.frame().is_err());
        Ok(())
    }
}
