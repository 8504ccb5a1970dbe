//! The model's flow of a packet: the key and hash it is steered by, per
//! protocol, and the flow an ICMPv6 error quotes.

use crate::{FlowKey, hash, wire};

use super::{Ipv6Header, Transport, echo, link_scoped_icmp, parse::walk};

/// The flow a packet is steered by, or why it has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowOf {
    /// The flow's key and hash, and whether it was built from the quote of
    /// an ICMPv6 error: then it is the reverse of the quoted packet's flow
    /// (the quoted packet went member -> client), and it is never recorded.
    Flow(FlowKey, u32, bool),
    /// Link-scoped ICMPv6 ([`link_scoped_icmp`]): for the kernel.
    LinkScoped,
    /// An ICMPv6 error whose quote is shorter than an IPv6 header: it names
    /// no flow, and no member can be chosen for it.
    Unmatched,
}

/// The flow of a packet (see [`crate::hash`]): by protocol and ports for
/// the protocols that have them ([`ports_first`]), by identifier for an
/// ICMPv6 echo, by flow label otherwise. A first fragment (offset 0) holds
/// the upper-layer header (RFC 8200 section 4.5) and is keyed as the whole
/// packet would be, so that it joins its flow; a later fragment has none of
/// it, and is keyed by the one field it carries in common with the
/// datagram's other packets, the flow label (it follows its first fragment
/// through the fragment table when that went first: see
/// [`super::classify`]); an atomic fragment is a whole packet (RFC 6946
/// section 4). An ICMPv6 error (types 0 to 127, RFC 4443 section 2.1;
/// unknown ones too, 2.4 (a)) by the reverse of the flow it quotes, walked
/// like the packet's own headers.
pub fn flow_of(frame: &[u8], ip: &Ipv6Header, t: &Transport, group: u32) -> FlowOf {
    let payload = &frame[..ip.end];
    // Only a first fragment has an upper-layer header (RFC 8200 section 4.5).
    let icmp_type = (t.proto == wire::IPPROTO_ICMPV6 && t.upper)
        .then(|| payload.get(t.offset..t.offset + 2).map(|b| b[0]))
        .flatten();
    let mut id = t.ports.map(|(s, d)| {
        let (s, d) = (s.to_be_bytes(), d.to_be_bytes());
        [s[0], s[1], d[0], d[1]]
    });
    match icmp_type {
        Some(ty) if ty < 128 => return quoted_flow(payload, t.offset + 8, group),
        Some(ty) if link_scoped_icmp(ty) => return FlowOf::LinkScoped,
        Some(ty) if echo(ty) => id = echo_id(payload, t.offset),
        _ => {}
    }
    let (proto, id) = ipsec_key(t, t.proto, id);
    let (k, h) = key_and_hash(group, ip.src, ip.dst, proto, id, ip.flow_label);
    FlowOf::Flow(k, h, false)
}

/// IKE's ports (RFC 7296 section 2; 4500: NAT traversal, RFC 3948
/// section 2.2, which also carries ESP in UDP).
const IKE_PORTS: [u16; 2] = [500, 4500];

/// The key of IPsec traffic (RFC 4301): ESP (RFC 4303), anything under an
/// Authentication Header (RFC 4302) and IKE (UDP to port 500 or 4500) of
/// one client and anycast address are one flow, keyed as ESP with a zero
/// tail: every security association of the pair, and the IKE exchange
/// that made it, reach one member, which alone holds their keys. (Keying
/// on the SPI would keep one association together, but its IKE exchange,
/// keyed on ports, on another member three times in four.) A first
/// fragment is keyed so too (it is the whole packet's head); a later one
/// by its label, as any other. Anything else: `(proto, id)`.
fn ipsec_key(t: &Transport, proto: u8, id: Option<[u8; 4]>) -> (u8, Option<[u8; 4]>) {
    let ike = proto == wire::IPPROTO_UDP
        && id.is_some_and(|[_, _, d0, d1]| IKE_PORTS.contains(&u16::from_be_bytes([d0, d1])));
    if t.upper && (t.ah || proto == wire::IPPROTO_ESP || ike) {
        (wire::IPPROTO_ESP, Some([0; 4]))
    } else {
        (proto, id)
    }
}

/// The identifier of the ICMPv6 echo message at `off`, as a key's tail:
/// `None` when its 8-byte header is cut short.
fn echo_id(payload: &[u8], off: usize) -> Option<[u8; 4]> {
    let h = payload.get(off..off + 8)?;
    Some([h[4], h[5], 0, 0])
}

/// The reverse of the flow of the packet quoted from `q` on by an ICMPv6
/// error (the member's packet; the flow is client -> member).
fn quoted_flow(payload: &[u8], q: usize, group: u32) -> FlowOf {
    let Some(head) = payload.get(q..q + wire::IPV6_HDR_LEN) else {
        return FlowOf::Unmatched;
    };
    let mut qsrc = [0u8; 16];
    let mut qdst = [0u8; 16];
    qsrc.copy_from_slice(&head[8..24]);
    qdst.copy_from_slice(&head[24..40]);
    let label = u32::from_be_bytes([0, head[1] & 0x0f, head[2], head[3]]);
    let qt = walk(payload, q + wire::IPV6_HDR_LEN, head[6]);
    let proto = qt.map_or(head[6], |t| t.proto);
    // Ports (reversed) and echo identifiers identify the flow in the quote
    // too, a first fragment's included; a later fragment has neither.
    let id = match qt {
        Some(t) if !t.upper => None,
        Some(Transport {
            ports: Some((s, d)),
            ..
        }) => {
            let (s, d) = (s.to_be_bytes(), d.to_be_bytes());
            Some([d[0], d[1], s[0], s[1]])
        }
        Some(t) if t.proto == wire::IPPROTO_ICMPV6 => payload
            .get(t.offset)
            .filter(|ty| echo(**ty))
            .and_then(|_| echo_id(payload, t.offset)),
        _ => None,
    };
    let (proto, id) = match &qt {
        Some(t) => ipsec_key(t, proto, id),
        None => (proto, id),
    };
    let (k, h) = key_and_hash(group, qdst, qsrc, proto, id, label);
    FlowOf::Flow(k, h, true)
}

fn key_and_hash(
    group: u32,
    src: [u8; 16],
    dst: [u8; 16],
    proto: u8,
    ports: Option<[u8; 4]>,
    label: u32,
) -> (FlowKey, u32) {
    let (hs, hd) = hash::addr_hashes(&src, &dst);
    let h = hash::flow_hash(hs, hd, hash::key_tail(proto, ports, label));
    let key = FlowKey {
        group_id: group,
        src,
        dst,
        proto: if ports.is_some() { proto } else { 0 },
        by_label: u8::from(ports.is_none()),
        _pad: [0; 2],
        tail: ports.unwrap_or((label & 0x000f_ffff).to_be_bytes()),
    };
    (key, h)
}
