//! Lab test of RFC 2526 subnet anycast (issue 18) with a real protocol
//! message this project did not write: Mobile IPv6's Dynamic Home Agent
//! Address Discovery (RFC 6275 10.5, 11.4.1), the ICMPv6 messages built by
//! scapy's MIPv6 layers (`ICMPv6HAADRequest`, type 144, and
//! `ICMPv6HAADReply`, type 145).
//!
//! ```text
//!   mn eth0 ------------ home   router   h1 ------------ eth0 ha1 (HA anycast on lo)
//!   fd00:18:1::2/64  fd00:18:1::1    │   fd00:18:11::1     fd00:18:11::2
//!   (the home link)                  │
//!   visitor eth0 ---- foreign        h2 ------------ eth0 ha2 (HA anycast on lo)
//!   fd00:18:2::2/64  fd00:18:2::1        fd00:18:12::1     fd00:18:12::2
//! ```
//!
//! `anycast subnet add fd00:18:1::/64 --group home-agents` registers the
//! home prefix's Mobile IPv6 Home-Agents anycast address (RFC 2526 2 and
//! 3: interface identifier FDFF:FFFF:FFFF:FF80 + 0x7E), scoped to the
//! router's interfaces on that /64: `home` only. The mobile node sends its
//! requests to it with scapy (at layer 2, to the router's MAC: the address
//! looks on-link to the mobile node); each home agent's listener (a raw
//! ICMPv6 socket, which the kernel gives only messages with a right
//! checksum) logs every request and answers it with a reply listing its own
//! address, which the mobile node reads.

use std::{
    io::{BufRead as _, BufReader},
    net::Ipv6Addr,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::Duration,
};

use anycast_tests::{
    lab::{End, Lab, LabFile, Running, wait_until},
    require_root,
};
use anyhow::{Context as _, Result, bail, ensure};

/// The home link's prefix.
const HOME_PREFIX: &str = "fd00:18:1::/64";
/// Its Mobile IPv6 Home-Agents anycast address (RFC 2526: ID 126 = 0x7E).
const HA_ANYCAST: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x18, 1, 0, 0xfdff, 0xffff, 0xffff, 0xfffe);
const MN: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x18, 1, 0, 0, 0, 0, 2);
const VISITOR: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x18, 2, 0, 0, 0, 0, 2);
const HA1: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x18, 0x11, 0, 0, 0, 0, 2);
const HA2: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x18, 0x12, 0, 0, 0, 0, 2);
const GROUP: &str = "home-agents";
/// Debian's python3-scapy is for the system's interpreter.
const PYTHON: &str = "/usr/bin/python3";
/// How long a home agent listens at most, whatever the test does.
const LISTENER_LIFE_S: &str = "120";

/// A home agent: logs each DHAAD Request as `request ID to DST from SRC`
/// and answers it with a DHAAD Reply listing `own`. Ends after `life`
/// seconds.
const HOME_AGENT_PY: &str = r#"
import select, socket, sys, time
from scapy.layers.inet6 import ICMPv6HAADReply
own, life = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
print('ready', flush=True)
end = time.monotonic() + life
while (left := end - time.monotonic()) > 0:
    if not select.select([s], [], [], min(left, 0.5))[0]:
        continue
    data, anc, _, src = s.recvmsg(2048, socket.CMSG_SPACE(20))
    if len(data) < 8 or data[0] != 144:
        continue
    dst = '?'
    for level, kind, value in anc:
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:
            dst = socket.inet_ntop(socket.AF_INET6, value[:16])
    ident = int.from_bytes(data[4:6], 'big')
    print(f'request {ident} to {dst} from {src[0]}', flush=True)
    # From this home agent's own address (the kernel picks it, and fills
    # in the checksum over the zero here), listing it: a real home agent
    # lists every home agent of the link it knows, this one only itself.
    s.sendto(bytes(ICMPv6HAADReply(id=ident, addresses=[own], cksum=0)), (src[0], 0))
"#;

/// A node sending DHAAD Requests IDs FIRST.. (COUNT of them) at layer 2
/// out of IFACE to ROUTER_MAC, from SRC to DST; with WAIT > 0 it waits
/// that long for each reply and prints `reply ID from SRC lists ADDRS` or
/// `no reply ID`, else `sent ID`.
const MOBILE_NODE_PY: &str = r#"
import select, socket, sys, time
from scapy.all import Ether, IPv6, sendp
from scapy.layers.inet6 import ICMPv6HAADRequest, ICMPv6HAADReply
iface, router_mac, src, dst = sys.argv[1:5]
first, count, wait = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
for ident in range(first, first + count):
    # A flow label of its own: each request is a new flow (the redirector
    # keys ICMPv6 other than echo by label), so each goes to the nearest.
    sendp(Ether(dst=router_mac) / IPv6(src=src, dst=dst, fl=ident)
          / ICMPv6HAADRequest(id=ident), iface=iface, verbose=False)
    if wait <= 0:
        print(f'sent {ident}', flush=True)
        continue
    end, reply = time.monotonic() + wait, None
    while reply is None and (left := end - time.monotonic()) > 0:
        if not select.select([s], [], [], left)[0]:
            break
        data, frm = s.recvfrom(2048)
        if len(data) >= 8 and data[0] == 145 and int.from_bytes(data[4:6], 'big') == ident:
            reply = ICMPv6HAADReply(data)
            print(f'reply {ident} from {frm[0]} lists {",".join(reply.addresses)}', flush=True)
    if reply is None:
        print(f'no reply {ident}', flush=True)
"#;

/// The lab: mobile node, visitor, router, two home agents.
fn build(test: &str) -> Result<Lab> {
    let mut lab = Lab::new(test)?;
    for (n, fwd) in [
        ("mn", false),
        ("visitor", false),
        ("router", true),
        ("ha1", false),
        ("ha2", false),
    ] {
        lab.node(n, fwd)?;
    }
    let e = |node, ifname, addr| End { node, ifname, addr };
    lab.link(
        e("mn", "eth0", "fd00:18:1::2/64"),
        e("router", "home", "fd00:18:1::1/64"),
    )?;
    lab.link(
        e("visitor", "eth0", "fd00:18:2::2/64"),
        e("router", "foreign", "fd00:18:2::1/64"),
    )?;
    lab.link(
        e("router", "h1", "fd00:18:11::1/64"),
        e("ha1", "eth0", "fd00:18:11::2/64"),
    )?;
    lab.link(
        e("router", "h2", "fd00:18:12::1/64"),
        e("ha2", "eth0", "fd00:18:12::2/64"),
    )?;
    lab.route("mn", "default", "fd00:18:1::1")?;
    lab.route("visitor", "default", "fd00:18:2::1")?;
    lab.route("ha1", "default", "fd00:18:11::1")?;
    lab.route("ha2", "default", "fd00:18:12::1")?;
    // Each home agent holds the anycast address, so that its kernel takes
    // the frames redirected to it.
    for ha in ["ha1", "ha2"] {
        lab.ns(ha)?
            .ip(&["addr", "add", &format!("{HA_ANYCAST}/128"), "dev", "lo"])?;
    }
    Ok(lab)
}

/// The MAC of `ifname` in `node`.
fn mac(lab: &Lab, node: &str, ifname: &str) -> Result<String> {
    let out = lab.ns(node)?.ip(&["-o", "link", "show", "dev", ifname])?;
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .map(str::to_string)
        .with_context(|| format!("no MAC for {node} {ifname}"))
}

/// `python3 SCRIPT ARGS` inside `node`'s namespace.
fn python_in(lab: &Lab, node: &str, script: &LabFile, args: &[&str]) -> Result<Command> {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{}", lab.ns(node)?.name))
        .args([PYTHON, script.arg()])
        .args(args);
    Ok(cmd)
}

/// A DHAAD Request a home agent received: its ID, destination and source.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Request {
    id: u16,
    dst: Ipv6Addr,
    src: Ipv6Addr,
}

/// A home agent's listener, killed on drop; its lines read by a thread.
struct HomeAgent {
    _proc: Running,
    lines: Arc<Mutex<Vec<String>>>,
}

impl HomeAgent {
    fn start(lab: &Lab, node: &str, own: Ipv6Addr, script: &LabFile) -> Result<Self> {
        let mut child = python_in(lab, node, script, &[&own.to_string(), LISTENER_LIFE_S])?
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the home agent's listener")?;
        let stdout = child.stdout.take().context("stdout")?;
        let proc = Running(child);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(mut v) = sink.lock() {
                    v.push(line);
                }
            }
        });
        let ha = HomeAgent { _proc: proc, lines };
        // Importing scapy takes a few seconds on a busy machine.
        wait_until(
            &format!("{node}'s listener"),
            Duration::from_secs(30),
            || ha.lines().first().is_some_and(|l| l == "ready"),
        )?;
        Ok(ha)
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Every request received so far.
    fn requests(&self) -> Result<Vec<Request>> {
        self.lines()
            .iter()
            .filter(|l| l.starts_with("request "))
            .map(|l| {
                let w: Vec<&str> = l.split(' ').collect();
                match w[..] {
                    ["request", id, "to", dst, "from", src] => Ok(Request {
                        id: id.parse()?,
                        dst: dst.parse()?,
                        src: src.parse()?,
                    }),
                    _ => bail!("a listener's line: {l}"),
                }
            })
            .collect()
    }

    /// The IDs of the requests received so far.
    fn ids(&self) -> Result<Vec<u16>> {
        Ok(self.requests()?.iter().map(|r| r.id).collect())
    }
}

/// Sends DHAAD Requests `ids` from `node` (its `eth0`, source `src`) to the
/// router's interface `router_if`; with `wait`, waits for each reply.
/// The script's lines.
fn send_requests(
    lab: &Lab,
    script: &LabFile,
    (node, src): (&str, Ipv6Addr),
    router_if: &str,
    ids: std::ops::RangeInclusive<u16>,
    wait: Option<Duration>,
) -> Result<Vec<String>> {
    let router_mac = mac(lab, "router", router_if)?;
    let count = ids.clone().count();
    let out = python_in(
        lab,
        node,
        script,
        &[
            "eth0",
            &router_mac,
            &src.to_string(),
            &HA_ANYCAST.to_string(),
            &ids.start().to_string(),
            &count.to_string(),
            &wait.map_or(0.0, |w| w.as_secs_f64()).to_string(),
        ],
    )?
    .output()
    .context("running the DHAAD sender")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "the DHAAD sender failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    ensure!(lines.len() == count, "the sender printed {lines:?}");
    Ok(lines)
}

/// The mobile node asks for home agents with requests `ids`: each must be
/// answered by `ha` (from its own address, listing it), and `ha`'s
/// listener must have it, sent by the mobile node to the anycast address.
fn requests_reach(
    lab: &Lab,
    script: &LabFile,
    ids: std::ops::RangeInclusive<u16>,
    (ha, ha_addr): (&HomeAgent, Ipv6Addr),
) -> Result<()> {
    let lines = send_requests(
        lab,
        script,
        ("mn", MN),
        "home",
        ids.clone(),
        Some(Duration::from_secs(2)),
    )?;
    for (id, line) in ids.clone().zip(&lines) {
        ensure!(
            *line == format!("reply {id} from {ha_addr} lists {ha_addr}"),
            "request {id}: {line} (all: {lines:?})"
        );
    }
    // The reply came after the listener printed the request.
    let got = ha.requests()?;
    for id in ids {
        ensure!(
            got.contains(&Request {
                id,
                dst: HA_ANYCAST,
                src: MN
            }),
            "request {id} not at {ha_addr}: {got:?}"
        );
    }
    Ok(())
}

/// The home prefix in `subnet list --json`.
fn the_subnet(lab: &Lab) -> Result<serde_json::Value> {
    let list: serde_json::Value =
        serde_json::from_str(&lab.anycast_ok("router", &["subnet", "list", "--json"])?)?;
    list["subnets"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["subnet"] == HOME_PREFIX))
        .cloned()
        .with_context(|| format!("{HOME_PREFIX} not in {list}"))
}

/// `out_of_scope_drops`, globally and for the group.
fn out_of_scope_drops(lab: &Lab) -> Result<(u64, u64)> {
    let s = lab.stats("router")?;
    Ok((
        s["global"]["out_of_scope_drops"]
            .as_u64()
            .with_context(|| format!("no global out_of_scope_drops in {s}"))?,
        s["groups"][GROUP]["out_of_scope_drops"]
            .as_u64()
            .with_context(|| format!("no out_of_scope_drops for {GROUP} in {s}"))?,
    ))
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn home_agent_discovery_reaches_the_nearest_home_agent_and_only_from_the_home_link() -> Result<()> {
    require_root()?;
    let lab = build("subnet-dhaad")?;
    let home_agent_py = lab.file("home_agent.py", HOME_AGENT_PY)?;
    let mobile_node_py = lab.file("mobile_node.py", MOBILE_NODE_PY)?;
    for (ifname, role) in [
        ("home", "edge"),
        ("foreign", "edge"),
        ("h1", "member"),
        ("h2", "member"),
    ] {
        lab.anycast_ok("router", &["attach", ifname, "--role", role])?;
    }
    // The default ID (126) and scope (the interfaces on the /64: home).
    lab.anycast_ok("router", &["subnet", "add", HOME_PREFIX, "--group", GROUP])?;
    let subnet = the_subnet(&lab)?;
    ensure!(
        subnet["group"] == GROUP
            && subnet["ids"] == serde_json::json!([126])
            && subnet["scope"] == serde_json::json!(["home"])
            && subnet["scope_from"] == "carried"
            && subnet["addresses"][0]["address"] == HA_ANYCAST.to_string()
            && subnet["addresses"][0]["meaning"] == "Mobile IPv6 Home-Agents anycast"
            && subnet["addresses"].as_array().map(Vec::len) == Some(1),
        "{subnet}"
    );
    for (ha, iface, metric) in [("ha1", "h1", "10"), ("ha2", "h2", "20")] {
        let mac = mac(&lab, ha, "eth0")?;
        lab.anycast_ok(
            "router",
            &[
                "member", "add", GROUP, ha, "--iface", iface, "--mac", &mac, "--metric", metric,
            ],
        )?;
    }
    let ha1 = HomeAgent::start(&lab, "ha1", HA1, &home_agent_py)?;
    let ha2 = HomeAgent::start(&lab, "ha2", HA2, &home_agent_py)?;

    // From the home link: the nearest home agent (metric 10) answers.
    requests_reach(&lab, &mobile_node_py, 1..=4, (&ha1, HA1))?;
    ensure!(ha2.ids()?.is_empty(), "ha2 got {:?}", ha2.requests()?);
    ensure!(
        out_of_scope_drops(&lab)? == (0, 0),
        "requests from the home link are in scope"
    );

    // ha1 further away than ha2: new requests (new flows) reach ha2.
    lab.anycast_ok("router", &["member", "set", GROUP, "ha1", "--metric", "30"])?;
    requests_reach(&lab, &mobile_node_py, 5..=8, (&ha2, HA2))?;

    // The same request from outside the scope (the foreign interface):
    // dropped and counted, globally and for the group.
    let lines = send_requests(
        &lab,
        &mobile_node_py,
        ("visitor", VISITOR),
        "foreign",
        9..=12,
        None,
    )?;
    ensure!(lines.iter().all(|l| l.starts_with("sent ")), "{lines:?}");
    wait_until("4 out-of-scope drops", Duration::from_secs(5), || {
        out_of_scope_drops(&lab).is_ok_and(|(g, _)| g >= 4)
    })?;
    ensure!(out_of_scope_drops(&lab)? == (4, 4));

    // The scope widened to the foreign interface: the visitor's requests
    // reach the nearest home agent (and so were dropped by the scope alone).
    lab.anycast_ok(
        "router",
        &[
            "subnet",
            "add",
            HOME_PREFIX,
            "--group",
            GROUP,
            "--scope",
            "home,foreign",
        ],
    )?;
    let subnet = the_subnet(&lab)?;
    ensure!(subnet["scope_from"] == "given", "{subnet}");
    let lines = send_requests(
        &lab,
        &mobile_node_py,
        ("visitor", VISITOR),
        "foreign",
        13..=14,
        Some(Duration::from_secs(2)),
    )?;
    ensure!(
        lines
            == [
                format!("reply 13 from {HA2} lists {HA2}"),
                format!("reply 14 from {HA2} lists {HA2}")
            ],
        "{lines:?}"
    );
    ensure!(out_of_scope_drops(&lab)? == (4, 4));
    // No home agent got the dropped ones (nor another's requests).
    ensure!(ha1.ids()? == [1, 2, 3, 4], "ha1 got {:?}", ha1.requests()?);
    ensure!(
        ha2.ids()? == [5, 6, 7, 8, 13, 14],
        "ha2 got {:?}",
        ha2.requests()?
    );
    Ok(())
}
