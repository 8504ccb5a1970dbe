//! Health checks of members: what a check asks ([`Check`]), one probe of
//! it ([`probe`]), and the rise and fall counting that turns results into
//! a member's health ([`Tracker`]). The service (`anycast run --config`)
//! runs them; nothing here touches a map.

use std::{
    fmt,
    net::{Ipv6Addr, SocketAddr, SocketAddrV6},
    time::{Duration, Instant},
};

use serde::Serialize;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpStream, UdpSocket},
};

/// What a check sends and what it expects back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Probe {
    /// An ICMPv6 echo request is answered with an echo reply.
    Icmp,
    /// A TCP connection to `port` is accepted.
    Tcp {
        /// Port to connect to.
        port: u16,
    },
    /// A UDP datagram `send` to `port` gets a reply (starting with
    /// `expect`, when given).
    Udp {
        /// Port to send to.
        port: u16,
        /// Payload sent.
        send: Vec<u8>,
        /// The reply must start with these bytes.
        expect: Option<Vec<u8>>,
    },
    /// A DNS query (type AAAA, class IN, over UDP) for `query` is answered
    /// with `rcode`.
    Dns {
        /// Port (53).
        port: u16,
        /// The name asked for.
        query: String,
        /// The response code expected (0: NOERROR).
        rcode: u8,
    },
    /// `GET path` over HTTP/1.0 answers with status `status`.
    Http {
        /// Port (80).
        port: u16,
        /// Path requested.
        path: String,
        /// Status expected.
        status: u16,
    },
    /// `command` exits with status 0; it gets the member's group, name and
    /// address (when it has one) in `ANYCAST_GROUP`, `ANYCAST_MEMBER`,
    /// `ANYCAST_MEMBER_ADDR`.
    Exec {
        /// Program and arguments (no shell).
        command: Vec<String>,
    },
}

impl Probe {
    /// The kind's name, as the configuration file writes it.
    pub fn kind(&self) -> &'static str {
        match self {
            Probe::Icmp => "icmp",
            Probe::Tcp { .. } => "tcp",
            Probe::Udp { .. } => "udp",
            Probe::Dns { .. } => "dns",
            Probe::Http { .. } => "http",
            Probe::Exec { .. } => "exec",
        }
    }
}

/// Which address of the member a check reaches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The anycast address, through the data plane's path to the member.
    #[default]
    Anycast,
    /// The member's own unicast address.
    Unicast,
}

/// One member's check: the probe, and its timing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What is sent and expected.
    #[serde(flatten)]
    pub probe: Probe,
    /// Time between two probes' starts.
    pub interval: Duration,
    /// Time a probe may take.
    pub timeout: Duration,
    /// Successes in a row that make a down member healthy.
    pub rise: u32,
    /// Failures in a row that make a healthy member down.
    pub fall: u32,
    /// The address probed.
    pub target: Target,
}

impl Check {
    /// Interval, timeout, rise and fall when the file gives none.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
    /// See [`Check::DEFAULT_INTERVAL`].
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);
    /// See [`Check::DEFAULT_INTERVAL`].
    pub const DEFAULT_RISE: u32 = 2;
    /// See [`Check::DEFAULT_INTERVAL`].
    pub const DEFAULT_FALL: u32 = 2;

    /// The delay before this check's first probe: a fraction of its
    /// interval taken from `seed` (e.g. the member's id), so that a
    /// thousand checks with one interval do not fire together.
    pub fn first_delay(&self, seed: u64) -> Duration {
        // A multiplicative hash spreads consecutive ids over the interval.
        let frac = (seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) as f64 / (1u64 << 53) as f64;
        self.interval.mul_f64(frac)
    }
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The socket or the process failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An answer came, and it was not the one expected.
    #[error("{0}")]
    Unexpected(String),
}

/// Where and for whom a probe runs.
#[derive(Clone, Debug)]
pub struct ProbeTarget {
    /// The address probed.
    pub addr: Ipv6Addr,
    /// The firewall mark of the probe's sockets, which routes them along
    /// the member's path (see `probe_path`); none: the kernel's own route.
    pub mark: Option<u32>,
    /// Why the check cannot run (its path could not be set up): every
    /// probe fails with this.
    pub broken: Option<String>,
    /// The member's group (for `exec`).
    pub group: String,
    /// The member's name (for `exec`).
    pub member: String,
}

/// Runs one probe of `check` against `to`; its latency on success.
pub async fn probe(check: &Check, to: &ProbeTarget) -> Result<Duration, ProbeError> {
    let start = Instant::now();
    match tokio::time::timeout(check.timeout, probe_once(&check.probe, to)).await {
        Ok(Ok(())) => Ok(start.elapsed()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ProbeError::Timeout(check.timeout)),
    }
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> ProbeError {
    move |source| ProbeError::Io { what, source }
}

/// Sets socket option `name` (at `SOL_SOCKET`) of the socket `fd` to
/// `value`, a plain C value of the option's type.
fn set_socket_option<T: Copy>(fd: std::os::fd::RawFd, name: i32, value: T) -> std::io::Result<()> {
    // SAFETY: setsockopt reads size_of::<T>() bytes from a live T on an fd
    // the caller owns.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&raw const value).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Gives the socket `fd` firewall mark `mark` (needs CAP_NET_ADMIN).
fn set_mark(fd: std::os::fd::RawFd, mark: u32) -> std::io::Result<()> {
    set_socket_option(fd, libc::SO_MARK, mark)
}

/// Makes closing the socket `fd` send a reset (SO_LINGER with time 0).
fn set_linger_zero(fd: std::os::fd::RawFd) -> std::io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    set_socket_option(fd, libc::SO_LINGER, linger)
}

/// A TCP connection to `to`, its socket marked `mark`.
async fn tcp_connect(to: SocketAddr, mark: Option<u32>) -> Result<TcpStream, ProbeError> {
    use std::os::fd::AsRawFd as _;
    let sock = tokio::net::TcpSocket::new_v6().map_err(io("opening a socket"))?;
    if let Some(m) = mark {
        set_mark(sock.as_raw_fd(), m).map_err(io("marking the socket"))?;
    }
    sock.connect(to).await.map_err(io("connecting"))
}

async fn probe_once(p: &Probe, to: &ProbeTarget) -> Result<(), ProbeError> {
    if let Some(why) = &to.broken {
        return Err(ProbeError::Unexpected(why.clone()));
    }
    let at = |port: u16| SocketAddr::V6(SocketAddrV6::new(to.addr, port, 0, 0));
    match p {
        Probe::Icmp => icmp_echo(to.addr, to.mark).await,
        Probe::Tcp { port } => {
            let s = tcp_connect(at(*port), to.mark).await?;
            // Closed with a reset, as load balancers' checks do: a
            // thousand checks a second leave no TIME_WAIT sockets behind
            // and spare the FIN exchange.
            use std::os::fd::AsRawFd as _;
            set_linger_zero(s.as_raw_fd()).map_err(io("setting SO_LINGER"))?;
            Ok(())
        }
        Probe::Udp { port, send, expect } => {
            let reply = udp_exchange(at(*port), send, to.mark).await?;
            match expect {
                Some(e) if !reply.starts_with(e) => Err(ProbeError::Unexpected(format!(
                    "the reply does not start with {:?}",
                    String::from_utf8_lossy(e)
                ))),
                _ => Ok(()),
            }
        }
        Probe::Dns { port, query, rcode } => {
            // An id another process cannot guess as easily as a constant.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let id = (std::process::id() as u16) ^ (nanos as u16);
            let reply = udp_exchange(at(*port), &dns_query(id, query), to.mark).await?;
            let got = dns_rcode(id, &reply)?;
            if got == *rcode {
                Ok(())
            } else {
                Err(ProbeError::Unexpected(format!(
                    "rcode {} ({}), expected {} ({})",
                    got,
                    rcode_name(got),
                    rcode,
                    rcode_name(*rcode)
                )))
            }
        }
        Probe::Http { port, path, status } => {
            let mut s = tcp_connect(at(*port), to.mark).await?;
            let req = format!("GET {path} HTTP/1.0\r\nHost: [{}]\r\n\r\n", to.addr);
            s.write_all(req.as_bytes())
                .await
                .map_err(io("sending the request"))?;
            // The status line is all that is read.
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).await.map_err(io("reading the answer"))?;
            let got = http_status(&buf[..n])?;
            if got == *status {
                Ok(())
            } else {
                Err(ProbeError::Unexpected(format!(
                    "status {got}, expected {status}"
                )))
            }
        }
        Probe::Exec { command } => {
            let (prog, args) = command
                .split_first()
                .ok_or_else(|| ProbeError::Unexpected("empty command".into()))?;
            let mut cmd = tokio::process::Command::new(prog);
            cmd.args(args)
                .env("ANYCAST_GROUP", &to.group)
                .env("ANYCAST_MEMBER", &to.member);
            // An on-link member without `addr` has no address to give.
            if !to.addr.is_unspecified() {
                cmd.env("ANYCAST_MEMBER_ADDR", to.addr.to_string());
            }
            let status = cmd
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .status()
                .await
                .map_err(io("running the command"))?;
            if status.success() {
                Ok(())
            } else {
                Err(ProbeError::Unexpected(format!("the command {status}")))
            }
        }
    }
}

/// An ICMPv6 echo request to `to` (from a raw socket marked `mark`, which
/// needs root) and its reply: the same identifier and sequence number.
async fn icmp_echo(to: Ipv6Addr, mark: Option<u32>) -> Result<(), ProbeError> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    // SAFETY: socket(2) with constant arguments; the fd is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET6,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMPV6,
        )
    };
    if fd < 0 {
        return Err(io("opening a raw ICMPv6 socket")(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: fd is a socket just opened and owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if let Some(m) = mark {
        set_mark(fd.as_raw_fd(), m).map_err(io("marking the socket"))?;
    }
    // The kernel fills in the ICMPv6 checksum of raw ICMPv6 sockets.
    let ident = (std::process::id() as u16) ^ 0xac00;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let seq = nanos as u16;
    let mut request = vec![128u8, 0, 0, 0];
    request.extend_from_slice(&ident.to_be_bytes());
    request.extend_from_slice(&seq.to_be_bytes());
    request.extend_from_slice(b"anycast health");
    let sock = std::net::UdpSocket::from(fd);
    // connect(2) on a raw socket keeps only what comes from `to`.
    sock.connect(SocketAddr::V6(SocketAddrV6::new(to, 0, 0, 0)))
        .map_err(io("connecting"))?;
    let sock = UdpSocket::from_std(sock).map_err(io("registering the socket"))?;
    sock.send(&request).await.map_err(io("sending"))?;
    let mut buf = [0u8; 1500];
    loop {
        let n = sock.recv(&mut buf).await.map_err(io("receiving"))?;
        // Raw ICMPv6 sockets get the ICMPv6 message without the IPv6 header.
        if n >= 8
            && buf[0] == 129
            && buf[4..6] == ident.to_be_bytes()
            && buf[6..8] == seq.to_be_bytes()
        {
            return Ok(());
        }
    }
}

/// Sends `payload` to `to` from a fresh socket (marked `mark`) and returns
/// the first reply from that address.
async fn udp_exchange(
    to: SocketAddr,
    payload: &[u8],
    mark: Option<u32>,
) -> Result<Vec<u8>, ProbeError> {
    use std::os::fd::AsRawFd as _;
    let sock = UdpSocket::bind("[::]:0").await.map_err(io("binding"))?;
    if let Some(m) = mark {
        set_mark(sock.as_raw_fd(), m).map_err(io("marking the socket"))?;
    }
    // connect() filters replies to those from the probed address and port.
    sock.connect(to).await.map_err(io("connecting"))?;
    sock.send(payload).await.map_err(io("sending"))?;
    let mut buf = vec![0u8; 1500];
    let n = sock.recv(&mut buf).await.map_err(io("receiving"))?;
    buf.truncate(n);
    Ok(buf)
}

/// A DNS query for `name`, type AAAA, class IN, recursion desired.
pub fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&[0, 28, 0, 1]);
    q
}

/// The response code of a DNS answer to query `id`.
pub fn dns_rcode(id: u16, reply: &[u8]) -> Result<u8, ProbeError> {
    if reply.len() < 12 {
        return Err(ProbeError::Unexpected(format!(
            "a DNS answer of {} bytes",
            reply.len()
        )));
    }
    if reply[..2] != id.to_be_bytes() || reply[2] & 0x80 == 0 {
        return Err(ProbeError::Unexpected(
            "not an answer to the query sent".into(),
        ));
    }
    Ok(reply[3] & 0x0f)
}

/// The names of the DNS response codes a check is likely to expect.
pub fn rcode_name(rcode: u8) -> &'static str {
    match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => "other",
    }
}

/// The response code a name stands for (`NOERROR`, `NXDOMAIN`, ...).
pub fn parse_rcode(name: &str) -> Option<u8> {
    (0..=5).find(|&c| rcode_name(c).eq_ignore_ascii_case(name))
}

/// The status of an HTTP answer's status line (`HTTP/1.x NNN ...`).
fn http_status(head: &[u8]) -> Result<u16, ProbeError> {
    let line = String::from_utf8_lossy(head);
    line.strip_prefix("HTTP/")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| ProbeError::Unexpected("not an HTTP answer".into()))
}

/// A member's health, as its check last decided it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not decided yet: the member keeps the state it had.
    Unknown,
    /// `rise` successes in a row (or healthy and no `fall` failures since).
    Healthy,
    /// `fall` failures in a row (or down and no `rise` successes since).
    Failing,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Failing => "failing",
        })
    }
}

/// Counts results in a row and says when the health changes.
#[derive(Clone, Debug)]
pub struct Tracker {
    rise: u32,
    fall: u32,
    health: Health,
    successes: u32,
    failures: u32,
}

impl Tracker {
    /// A tracker of a member whose health is not known yet: the first
    /// `rise` successes or `fall` failures decide it.
    pub fn new(rise: u32, fall: u32) -> Self {
        Tracker {
            rise: rise.max(1),
            fall: fall.max(1),
            health: Health::Unknown,
            successes: 0,
            failures: 0,
        }
    }

    /// The health as decided so far.
    pub fn health(&self) -> Health {
        self.health
    }

    /// Counts one result; the new health when it changed.
    pub fn record(&mut self, ok: bool) -> Option<Health> {
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if self.health != Health::Healthy && self.successes >= self.rise {
                self.health = Health::Healthy;
                return Some(Health::Healthy);
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.health != Health::Failing && self.failures >= self.fall {
                self.health = Health::Failing;
                return Some(Health::Failing);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rise_and_fall_count_results_in_a_row() {
        let mut t = Tracker::new(2, 3);
        assert_eq!(t.record(true), None);
        assert_eq!(t.record(true), Some(Health::Healthy));
        assert_eq!(t.record(true), None);
        // Two failures, then a success: the count starts again.
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(true), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), Some(Health::Failing));
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(true), None);
        assert_eq!(t.record(true), Some(Health::Healthy));
        assert_eq!(t.health(), Health::Healthy);
    }

    #[test]
    fn an_unknown_member_is_decided_by_whichever_count_comes_first() {
        let mut t = Tracker::new(2, 2);
        assert_eq!(t.health(), Health::Unknown);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), Some(Health::Failing));
    }

    #[test]
    fn first_probes_spread_over_the_interval() {
        let c = Check {
            probe: Probe::Tcp { port: 53 },
            interval: Duration::from_secs(1),
            timeout: Check::DEFAULT_TIMEOUT,
            rise: 2,
            fall: 2,
            target: Target::Unicast,
        };
        let mut tenths = [0u32; 10];
        for id in 0..1000u64 {
            let d = c.first_delay(id);
            assert!(d < c.interval, "{d:?}");
            tenths[(d.as_millis() / 100) as usize] += 1;
        }
        // 1,000 checks: each tenth of the interval starts 60 to 140 of them.
        assert!(
            tenths.iter().all(|&n| (60..=140).contains(&n)),
            "{tenths:?}"
        );
    }

    #[test]
    fn dns_queries_and_answers_are_read_as_the_wire_has_them() {
        let q = dns_query(0x1234, "example.org.");
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x07example\x03org\x00\x00\x1c\x00\x01");
        let mut answer = q.clone();
        answer[2] |= 0x80;
        answer[3] = 0x83; // RA, NXDOMAIN
        assert_eq!(dns_rcode(0x1234, &answer).expect("an answer"), 3);
        assert!(
            dns_rcode(0x1235, &answer).is_err(),
            "another query's answer"
        );
        assert!(dns_rcode(0x1234, &q).is_err(), "a query is no answer");
        assert!(dns_rcode(0x1234, &answer[..11]).is_err());
        assert_eq!(parse_rcode("nxdomain"), Some(3));
        assert_eq!(parse_rcode("NOERROR"), Some(0));
        assert_eq!(parse_rcode("BOGUS"), None);
    }

    #[test]
    fn http_status_lines() {
        assert_eq!(
            http_status(b"HTTP/1.1 204 No Content\r\n").expect("a status"),
            204
        );
        assert_eq!(http_status(b"HTTP/1.0 200 OK\r\n").expect("a status"), 200);
        assert!(http_status(b"SSH-2.0-OpenSSH").is_err());
    }

    fn local(check: Probe) -> (Check, ProbeTarget) {
        (
            Check {
                probe: check,
                interval: Check::DEFAULT_INTERVAL,
                timeout: Duration::from_millis(300),
                rise: 1,
                fall: 1,
                target: Target::Unicast,
            },
            ProbeTarget {
                addr: Ipv6Addr::LOCALHOST,
                mark: None,
                broken: None,
                group: "dns".into(),
                member: "m1".into(),
            },
        )
    }

    #[tokio::test(flavor = "current_thread")]
    async fn probes_succeed_and_fail_against_local_servers() {
        // UDP: an echo server; a reply that does not match fails.
        let server = UdpSocket::bind("[::1]:0").await.expect("local socket");
        let port = server.local_addr().expect("bound").port();
        let echo = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            for _ in 0..2 {
                let (n, from) = server.recv_from(&mut buf).await.expect("local socket");
                server.send_to(&buf[..n], from).await.expect("local socket");
            }
        });
        let udp = |expect: &str| Probe::Udp {
            port,
            send: b"ping".to_vec(),
            expect: Some(expect.as_bytes().to_vec()),
        };
        let (c, t) = local(udp("pi"));
        probe(&c, &t).await.expect("echoed");
        let (c, t) = local(udp("pong"));
        let e = probe(&c, &t).await.expect_err("ping is not pong");
        assert!(e.to_string().contains("does not start with"), "{e}");
        echo.await.expect("local socket");
        // Nobody listens any more: no answer.
        let (c, t) = local(udp("ping"));
        assert!(probe(&c, &t).await.is_err());

        // TCP: accepted, then refused once the listener is gone.
        let listener = tokio::net::TcpListener::bind("[::1]:0")
            .await
            .expect("local socket");
        let port = listener.local_addr().expect("bound").port();
        let (c, t) = local(Probe::Tcp { port });
        probe(&c, &t).await.expect("accepted");
        // The check closed with a reset, not a FIN (which reads as 0 bytes).
        let (mut conn, _) = listener.accept().await.expect("the check's connection");
        let read = conn.read(&mut [0u8; 1]).await;
        assert!(
            matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "{read:?}"
        );
        drop(listener);
        assert!(probe(&c, &t).await.is_err());

        // ICMPv6 echo to the loopback (a raw socket: root only).
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let (c, mut t) = local(Probe::Icmp);
            probe(&c, &t).await.expect("::1 answers echo requests");
            // The discard prefix (RFC 6666) answers nothing.
            t.addr = "100::1".parse().expect("an address");
            assert!(probe(&c, &t).await.is_err());
        }

        // exec: the exit status decides, and the member is in the environment.
        let (c, t) = local(Probe::Exec {
            command: vec![
                "sh".into(),
                "-c".into(),
                "test \"$ANYCAST_MEMBER\" = m1 && test \"$ANYCAST_MEMBER_ADDR\" = ::1".into(),
            ],
        });
        probe(&c, &t).await.expect("exit 0");
        let (c, t) = local(Probe::Exec {
            command: vec!["false".into()],
        });
        assert!(probe(&c, &t).await.is_err());
    }
}
