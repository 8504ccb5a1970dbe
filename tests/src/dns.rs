//! A real DNS server in a lab namespace (dnsmasq, as Debian ships it in
//! `dnsmasq-base`), and a client that asks it over UDP and reads the AAAA
//! record it answers with, which says which member answered.

use std::{
    net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket},
    process::{Command, Stdio},
    time::Duration,
};

use anycast::health::dns_query;
use anyhow::{Context as _, Result, bail};

use crate::lab::{NetNs, Running, wait_until};

/// The name every server answers for, with an address of its own.
pub const NAME: &str = "who.example";

/// A dnsmasq process in a namespace, answering `NAME` AAAA with its own
/// address; killed on drop, so that a failing test leaves none.
pub struct Dnsmasq {
    process: Running,
}

impl Dnsmasq {
    /// How long dnsmasq may take to answer after it was started.
    const STARTUP: Duration = Duration::from_secs(10);

    /// Starts dnsmasq in `ns` on port 53 of each of `listen` (no upstream,
    /// no hosts file, no configuration file, no pid file, in the
    /// foreground, as root: nothing of the machine's is read or written),
    /// and waits until it answers there.
    pub fn start(ns: &NetNs, listen: &[Ipv6Addr], answer: Ipv6Addr) -> Result<Self> {
        let mut args: Vec<String> = [
            "netns",
            "exec",
            &ns.name,
            "dnsmasq",
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--user=root",
            "--group=root",
            "--bind-interfaces",
            "--port=53",
        ]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
        args.extend(listen.iter().map(|a| format!("--listen-address={a}")));
        args.push(format!("--host-record={NAME},{answer}"));
        let child = Command::new("ip")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context(
                "starting dnsmasq (is dnsmasq-base installed? `cargo xtask test` installs it)",
            )?;
        let mut server = Dnsmasq {
            process: Running(child),
        };
        // Up once it answers on every address it listens on.
        for &addr in listen {
            let sock = ns.udp(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::UNSPECIFIED,
                0,
                0,
                0,
            )))?;
            let mut id = 0u16;
            wait_until(&format!("dnsmasq on {addr}"), Self::STARTUP, || {
                id += 1;
                ask(&sock, addr, id) == Some(answer)
            })
            .map_err(|e| match server.process.0.try_wait() {
                Ok(Some(st)) => e.context(format!("dnsmasq ended: {st}")),
                _ => e,
            })?;
        }
        if let Some(st) = server.process.0.try_wait()? {
            bail!("dnsmasq ended: {st}");
        }
        Ok(server)
    }

    /// Stops the server as `systemctl stop` would (SIGTERM) and waits for
    /// it to end.
    pub fn stop(&mut self) -> Result<()> {
        self.process.signal(libc::SIGTERM)?;
        let st = self.process.wait(Duration::from_secs(5))?;
        // dnsmasq ends with 0 on SIGTERM.
        if !st.success() {
            bail!("dnsmasq ended with {st}");
        }
        Ok(())
    }
}

/// Sends query `id` for [`NAME`] to `server`:53 from `sock` and returns
/// the AAAA address of the answer to it, if one came within the socket's
/// read timeout. Answers to other queries (late ones) are skipped.
pub fn ask(sock: &UdpSocket, server: Ipv6Addr, id: u16) -> Option<Ipv6Addr> {
    let to = SocketAddr::V6(SocketAddrV6::new(server, 53, 0, 0));
    sock.send_to(&dns_query(id, NAME), to).ok()?;
    let mut buf = [0u8; 512];
    // Bounded: a few stale answers at most, each within the read timeout.
    for _ in 0..8 {
        let (n, from) = sock.recv_from(&mut buf).ok()?;
        if from != to {
            continue;
        }
        if let Some(a) = aaaa(id, &buf[..n]) {
            return Some(a);
        }
    }
    None
}

/// The first AAAA record of a NOERROR answer to query `id` with one
/// question, as RFC 1035 section 4.1 lays the message out.
pub fn aaaa(id: u16, msg: &[u8]) -> Option<Ipv6Addr> {
    let u16_at = |i: usize| Some(u16::from_be_bytes([*msg.get(i)?, *msg.get(i + 1)?]));
    if u16_at(0)? != id || msg.get(2)? & 0x80 == 0 || msg.get(3)? & 0x0f != 0 {
        return None;
    }
    if u16_at(4)? != 1 {
        return None;
    }
    let answers = u16_at(6)?;
    // A name: labels up to a zero, or a compression pointer (2 bytes).
    let skip_name = |mut i: usize| -> Option<usize> {
        for _ in 0..128 {
            let len = *msg.get(i)?;
            if len & 0xc0 == 0xc0 {
                return Some(i + 2);
            }
            if len == 0 {
                return Some(i + 1);
            }
            i += 1 + usize::from(len);
        }
        None
    };
    // The question: name, type, class.
    let mut i = skip_name(12)? + 4;
    for _ in 0..answers {
        i = skip_name(i)?;
        let (kind, len) = (u16_at(i)?, usize::from(u16_at(i + 8)?));
        let data = msg.get(i + 10..i + 10 + len)?;
        if kind == 28 && len == 16 {
            let bytes: [u8; 16] = data.try_into().ok()?;
            return Some(Ipv6Addr::from(bytes));
        }
        i += 10 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aaaa_answer_is_read_and_anything_else_is_not() {
        // dnsmasq's answer to query 0x1234 for who.example AAAA, as captured.
        let answer: Vec<u8> = [
            &[0x12, 0x34, 0x85, 0x80, 0, 1, 0, 1, 0, 0, 0, 0][..],
            b"\x03who\x07example\x00\x00\x1c\x00\x01",
            &[0xc0, 0x0c, 0, 0x1c, 0, 1, 0, 0, 0, 0, 0, 16],
            &[0xfd, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ]
        .concat();
        let want = Ipv6Addr::new(0xfd00, 0xff, 0, 0, 0, 0, 0, 1);
        assert_eq!(aaaa(0x1234, &answer), Some(want));
        // Another query's answer, a query, an error, a cut message.
        assert_eq!(aaaa(0x1235, &answer), None);
        let mut query = answer.clone();
        query[2] &= 0x7f;
        assert_eq!(aaaa(0x1234, &query), None);
        let mut refused = answer.clone();
        refused[3] |= 5;
        assert_eq!(aaaa(0x1234, &refused), None);
        for n in 0..answer.len() {
            assert_eq!(aaaa(0x1234, &answer[..n]), None, "{n} bytes");
        }
        // The query the check sends parses as one question.
        let q = dns_query(7, NAME);
        assert_eq!(q.len(), 12 + 13 + 4);
    }
}
