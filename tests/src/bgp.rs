//! BIRD 2 in the lab: a BGP speaker per namespace, with the configurations
//! of docs/BGP.md (a redirector node, an upstream that merges equal paths
//! into ECMP), written for the lab's interfaces and addresses.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result};

use crate::lab::{Lab, LabFile, Running};

/// The kernel table and route protocol the service's announcements use in
/// the lab (docs/BGP.md's defaults).
pub const TABLE: u32 = 100;
/// See [`TABLE`].
pub const PROTOCOL: u32 = 250;
/// The redirector nodes' AS (all nodes one AS: equal paths, so ECMP).
pub const NODE_AS: u32 = 65001;
/// The upstream's AS.
pub const UPSTREAM_AS: u32 = 65000;

/// A BIRD 2 running in a lab node: ended, and its control socket removed,
/// when dropped.
pub struct Bird {
    running: Running,
    _conf: LabFile,
    /// Its control socket (for `birdc -s`).
    pub ctl: PathBuf,
    /// The namespace it runs in.
    ns: String,
}

impl Bird {
    /// Starts BIRD in node `node` of `lab` with configuration `conf`.
    pub fn start(lab: &Lab, node: &str, conf: &str) -> Result<Self> {
        let file = lab.file(&format!("bird-{node}.conf"), conf)?;
        let ctl = std::env::temp_dir().join(format!("{}-bird-{node}.ctl", lab.prefix));
        let ns = lab.ns(node)?.name.clone();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, "bird", "-f", "-c", file.arg(), "-s"])
            .arg(&ctl)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("running bird (is bird2 installed? `cargo xtask test` installs it)")?;
        Ok(Bird {
            running: Running(child),
            _conf: file,
            ctl,
            ns,
        })
    }

    /// `birdc ARGS` against this BIRD: its output.
    pub fn birdc(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "birdc", "-s"])
            .arg(&self.ctl)
            .args(args)
            .output()
            .context("running birdc")?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.running.0.kill();
        let _ = self.running.0.wait();
        let _ = std::fs::remove_file(&self.ctl);
    }
}

/// BFD on interfaces matching `pattern` (a BIRD interface pattern): a dead
/// peer seen in 300 ms.
fn bfd(pattern: &str) -> String {
    format!(
        "protocol bfd {{ interface \"{pattern}\" {{ min rx interval 100 ms; \
         min tx interval 100 ms; multiplier 3; }}; }}\n"
    )
}

/// A redirector node's configuration (docs/BGP.md): the service's routes
/// of table [`TABLE`] with protocol [`PROTOCOL`] learnt into a BIRD table
/// of their own and exported to the upstream at `upstream` (AS
/// [`UPSTREAM_AS`]), over interface `iface`, with BFD and without
/// graceful restart.
pub fn node_conf(router_id: &str, iface: &str, upstream: &str) -> String {
    format!(
        "router id {router_id};\nprotocol device {{ }}\nipv6 table anycast6;\n\
         protocol kernel anycast_routes {{\n  learn;\n  kernel table {TABLE};\n  scan time 10;\n  \
         ipv6 {{ table anycast6; import where krt_source = {PROTOCOL}; export none; }};\n}}\n\
         {bfd}\
         protocol bgp upstream {{\n  local as {NODE_AS};\n  neighbor {upstream} as {UPSTREAM_AS};\n  \
         bfd on;\n  graceful restart off;\n  \
         ipv6 {{ table anycast6; import none; export where proto = \"anycast_routes\"; }};\n}}\n",
        bfd = bfd(iface)
    )
}

/// The lab upstream's configuration (docs/BGP.md): one eBGP session per
/// node at each of `nodes` (AS [`NODE_AS`]), named `node1`, `node2`, ...,
/// BFD on interfaces matching `ifaces`, equal paths merged into one
/// multipath kernel route.
pub fn upstream_conf(router_id: &str, ifaces: &str, nodes: &[&str]) -> String {
    let mut conf = format!(
        "router id {router_id};\nprotocol device {{ }}\n\
         protocol kernel {{\n  merge paths yes;\n  ipv6 {{ import none; export all; }};\n}}\n\
         {bfd}\
         template bgp redirector {{\n  local as {UPSTREAM_AS};\n  bfd on;\n  \
         graceful restart off;\n  ipv6 {{ import all; export none; }};\n}}\n",
        bfd = bfd(ifaces)
    );
    for (i, addr) in nodes.iter().enumerate() {
        conf.push_str(&format!(
            "protocol bgp node{} from redirector {{ neighbor {addr} as {NODE_AS}; }}\n",
            i + 1
        ));
    }
    conf
}

/// The anycast address of [`TwoNodes`]' group `g`, on each member's `lo`.
pub const ANYCAST: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0x53, 0, 0, 0, 0, 1);
/// The prefix both nodes of [`TwoNodes`] announce.
pub const PREFIX: &str = "2001:db8:53::/48";
/// The client's address in [`TwoNodes`].
pub const CLIENT: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xfd00, 0xc, 0, 0, 0, 0, 0, 2);
/// How long a service may take to start (it loads the program).
pub const STARTUP: std::time::Duration = std::time::Duration::from_secs(60);

/// Two redirector nodes behind one upstream, with the same two members:
///
/// ```text
///                          ┌ u1 ── n0 node1 m1 ── e1 m1 (anycast on lo)
///  client eth0 ── c0 up ───┤          │     m2 ── e1 m2 (anycast on lo)
///  fd00:c::2     (BIRD,    └ u2 ── n0 node2 m1 ── e2 m1
///                 ECMP)               │     m2 ── e2 m2
/// ```
///
/// node`i` is fd00:`i`::2 on its link to the upstream (fd00:`i`::1) and
/// reaches member m`j` on its own link fd00:`ij`::/64 (the node ::1, the
/// member ::2). Each node runs BIRD (docs/BGP.md's node configuration) and
/// the service, with n0 attached as edge and m1, m2 as member interfaces;
/// the upstream's BIRD merges both nodes' routes into one multipath route
/// and hashes flows on their ports. Members answer through node1 (their
/// default route; plain forwarding). node2 has a group of its own too, so
/// that the members' ids differ between the nodes. Member m`j`'s health at node`i` is an
/// exec check of whether [`TwoNodes::ok_file`]`(i, j)` exists (checked
/// every 0.2 s, fall and rise 1, timeout 0.2 s).
pub struct TwoNodes {
    /// The upstream's BIRD.
    pub up_bird: Bird,
    node_birds: Vec<Bird>,
    confs: Vec<LabFile>,
    oks: Vec<PathBuf>,
    /// The lab (dropped last: the processes above run in its namespaces).
    pub lab: Lab,
    /// The pin dir of node1's and node2's service (index 0, 1).
    pub pins: [PathBuf; 2],
}

/// A node's running service and the lines it prints.
pub struct NodeService {
    /// The process (killed when dropped).
    pub running: Running,
    /// Its standard output.
    pub lines: crate::lab::Lines,
}

impl TwoNodes {
    /// The check's detection time: fall x interval + timeout.
    pub const DETECTION: std::time::Duration = std::time::Duration::from_millis(400);

    /// Builds the lab for test `test`, starts the BIRDs and writes each
    /// node's configuration (drain time `drain` s, hold-down 0.5 s), with
    /// every member healthy; the services are not started yet.
    pub fn new(test: &str, drain: f64) -> Result<Self> {
        use crate::lab::End;
        let mut lab = Lab::new(test)?;
        for (n, fwd) in [
            ("client", false),
            ("up", true),
            ("node1", true),
            ("node2", true),
            ("m1", false),
            ("m2", false),
        ] {
            lab.node(n, fwd)?;
        }
        lab.ns("up")?
            .sysctl("net.ipv6.fib_multipath_hash_policy", "1")?;
        fn e<'a>(node: &'a str, ifname: &'a str, addr: &'a str) -> End<'a> {
            End { node, ifname, addr }
        }
        lab.link(
            e("client", "eth0", "fd00:c::2/64"),
            e("up", "c0", "fd00:c::1/64"),
        )?;
        for i in 1..=2 {
            let (node, u) = (format!("node{i}"), format!("u{i}"));
            let (ua, na) = (format!("fd00:{i}::1/64"), format!("fd00:{i}::2/64"));
            lab.link(e("up", &u, &ua), e(&node, "n0", &na))?;
            lab.route(&node, "default", &format!("fd00:{i}::1"))?;
            for j in 1..=2 {
                let (m, mi, ei) = (format!("m{j}"), format!("m{j}"), format!("e{i}"));
                let (na, ma) = (format!("fd00:{i}{j}::1/64"), format!("fd00:{i}{j}::2/64"));
                lab.link(e(&node, &mi, &na), e(&m, &ei, &ma))?;
            }
        }
        lab.route("client", "default", "fd00:c::1")?;
        for j in 1..=2 {
            let m = lab.ns(&format!("m{j}"))?;
            m.ip(&["addr", "add", &format!("{ANYCAST}/128"), "dev", "lo"])?;
            m.ip(&[
                "-6",
                "route",
                "replace",
                "default",
                "via",
                &format!("fd00:1{j}::1"),
            ])?;
        }
        let pins = [lab.pin_dir.clone(), lab.other_pin_dir("node2")];
        // Member m`j`'s health at node`i`: oks[(i - 1) * 2 + (j - 1)].
        let mut oks = Vec::new();
        for i in 1..=2 {
            for j in 1..=2 {
                let ok = std::env::temp_dir().join(format!("{}-node{i}-m{j}-ok", lab.prefix));
                std::fs::write(&ok, "")?;
                oks.push(ok);
            }
        }
        let mut confs = Vec::new();
        for i in 1..=2 {
            let mut text = format!(
                "[bgp]\ntable = {TABLE}\nprotocol = {PROTOCOL}\ndrain-time = {drain:.1}\n\
                 hold-down = 0.5\n\
                 [interface.n0]\nrole = \"edge\"\n[interface.m1]\nrole = \"member\"\n\
                 [interface.m2]\nrole = \"member\"\n\
                 [group.g]\naddresses = [\"{ANYCAST}\"]\nannounce = [\"{PREFIX}\"]\n\
                 announce-min-members = 1\n"
            );
            if i == 2 {
                // A group of node2's own, before g: g's members get other
                // ids there than at node1, and only names and weights may
                // decide a flow's member.
                text.push_str(
                    "[group.a]\naddresses = [\"2001:db8:aa::1\"]\n\
                     [group.a.member.x]\nencap = \"fd00:99::2\"\n",
                );
            }
            for j in 1..=2 {
                let ok = &oks[(i - 1) * 2 + (j - 1)];
                text.push_str(&format!(
                    "[group.g.member.m{j}]\niface = \"m{j}\"\naddr = \"fd00:{i}{j}::2\"\n\
                     [group.g.member.m{j}.check]\nkind = \"exec\"\n\
                     command = [\"test\", \"-e\", \"{}\"]\n\
                     interval = 0.2\ntimeout = 0.2\nrise = 1\nfall = 1\n",
                    ok.display()
                ));
            }
            confs.push(lab.file(&format!("node{i}.toml"), &text)?);
        }
        let up_bird = Bird::start(
            &lab,
            "up",
            &upstream_conf("192.0.2.1", "u*", &["fd00:1::2", "fd00:2::2"]),
        )?;
        let node_birds = (1..=2)
            .map(|i| {
                Bird::start(
                    &lab,
                    &format!("node{i}"),
                    &node_conf(&format!("192.0.2.1{i}"), "n0", &format!("fd00:{i}::1")),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TwoNodes {
            up_bird,
            node_birds,
            confs,
            oks,
            lab,
            pins,
        })
    }

    /// Node `i`'s (1 or 2) name in the lab.
    pub fn node(i: usize) -> String {
        format!("node{i}")
    }

    /// The file whose existence is member m`j`'s health at node`i`.
    pub fn ok_file(&self, i: usize, j: usize) -> &Path {
        &self.oks[(i - 1) * 2 + (j - 1)]
    }

    /// Starts both nodes' services and waits until both serve.
    pub fn start(&self) -> Result<[NodeService; 2]> {
        let spawn = |i: usize| -> Result<NodeService> {
            let (running, stdout) = self.lab.spawn_anycast(
                &self.pins[i - 1],
                &Self::node(i),
                &["run", "--config", self.confs[i - 1].arg()],
            )?;
            Ok(NodeService {
                running,
                lines: crate::lab::Lines::new(stdout),
            })
        };
        let mut services = [spawn(1)?, spawn(2)?];
        for s in &mut services {
            s.lines.expect(&["serving"], STARTUP)?;
        }
        Ok(services)
    }

    /// Builds the lab, starts both services and waits until the upstream
    /// routes the prefix via both nodes.
    pub fn running(test: &str, drain: f64) -> Result<(Self, [NodeService; 2])> {
        let t = Self::new(test, drain)?;
        let services = t.start()?;
        t.wait_next_hops(&[1, 2], STARTUP).with_context(|| {
            format!(
                "BIRD: {}",
                t.up_bird.birdc(&["show", "protocols"]).unwrap_or_default()
            )
        })?;
        Ok((t, services))
    }

    /// The nodes (1, 2) the upstream's route to the prefix leads to, in order.
    pub fn next_hops(&self) -> Result<Vec<usize>> {
        let route = self.lab.ns("up")?.ip(&["-6", "route", "show", PREFIX])?;
        let words: Vec<&str> = route.split_whitespace().collect();
        let mut hops: Vec<usize> = words
            .windows(2)
            .filter(|w| w[0] == "via")
            .filter_map(|w| match w[1] {
                "fd00:1::2" => Some(1),
                "fd00:2::2" => Some(2),
                _ => None,
            })
            .collect();
        hops.sort_unstable();
        Ok(hops)
    }

    /// Waits until the upstream routes the prefix via exactly nodes
    /// `want`, at most `timeout`; how long that took.
    pub fn wait_next_hops(
        &self,
        want: &[usize],
        timeout: std::time::Duration,
    ) -> Result<std::time::Duration> {
        let start = std::time::Instant::now();
        crate::lab::wait_until(
            &format!("the upstream's next hops {want:?}"),
            timeout,
            || self.next_hops().is_ok_and(|h| h == want),
        )
        .with_context(|| format!("next hops now {:?}", self.next_hops()))?;
        Ok(start.elapsed())
    }

    /// `anycast ARGS` against node `i`'s service (its pin dir); stdout.
    pub fn anycast(&self, i: usize, args: &[&str]) -> Result<String> {
        self.lab
            .anycast_ok_at(&self.pins[i - 1], &Self::node(i), args)
    }

    /// Node `i`'s count of packets of group `g` redirected to a member.
    pub fn redirected(&self, i: usize) -> Result<u64> {
        let stats: serde_json::Value =
            serde_json::from_str(&self.anycast(i, &["stats", "--json"])?)?;
        stats["groups"]["g"]["redirected"]
            .as_u64()
            .with_context(|| format!("no redirected counter in {stats}"))
    }

    /// Node `i`'s packets sent to member m1 and to m2.
    pub fn member_packets(&self, i: usize) -> Result<[u64; 2]> {
        self.members(i, "packets")
    }

    /// `field` of members m1 and m2 in node `i`'s `member list --json`.
    pub fn members(&self, i: usize, field: &str) -> Result<[u64; 2]> {
        let list: serde_json::Value =
            serde_json::from_str(&self.anycast(i, &["member", "list", "g", "--json"])?)?;
        let get = |name: &str| {
            list.as_array()
                .and_then(|a| a.iter().find(|m| m["name"] == name))
                .and_then(|m| m[field].as_u64())
                .with_context(|| format!("no {field} of {name} in {list}"))
        };
        Ok([get("m1")?, get("m2")?])
    }

    /// Whether node `i`'s service has its route for the prefix in table
    /// [`TABLE`] (what its BIRD exports).
    pub fn announces(&self, i: usize) -> Result<bool> {
        let table = self.lab.ns(&Self::node(i))?.ip(&[
            "-6",
            "route",
            "show",
            "table",
            &TABLE.to_string(),
        ])?;
        Ok(table.contains(PREFIX))
    }

    /// Whether the upstream's BGP session with node `i` is established.
    pub fn established(&self, i: usize) -> Result<bool> {
        Ok(self
            .up_bird
            .birdc(&["show", "protocols", &format!("node{i}")])?
            .contains("Established"))
    }

    /// `n` new UDP flows (one socket each, so distinct source ports) from
    /// the client to the anycast address, port `port`, sent at once: the
    /// answering member's tag per flow (`None`: no answer within 1 s).
    pub fn flows(&self, n: usize, port: u16) -> Result<Vec<Option<String>>> {
        use std::net::{SocketAddr, SocketAddrV6};
        let client = self.lab.ns("client")?;
        let socks = (0..n)
            .map(|_| client.udp(SocketAddr::V6(SocketAddrV6::new(CLIENT, 0, 0, 0))))
            .collect::<Result<Vec<_>>>()?;
        let dst = SocketAddr::V6(SocketAddrV6::new(ANYCAST, port, 0, 0));
        for s in &socks {
            s.send_to(b"query", dst)?;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        let mut buf = [0u8; 256];
        Ok(socks
            .iter()
            .map(|s| {
                // Bounded: each socket's read times out (100 ms) until the deadline.
                while std::time::Instant::now() < deadline {
                    if let Ok((len, _)) = s.recv_from(&mut buf) {
                        return Some(String::from_utf8_lossy(&buf[..len]).into_owned());
                    }
                }
                None
            })
            .collect())
    }
}

/// A stream of UDP requests from the client to the anycast address over a
/// pool of flows (one socket each), one at a time, each waiting at most
/// 300 ms for its answer, 1 ms between them; stopped (and its results taken) by
/// [`Stream::stop`], and never longer than [`crate::lab::Service::MAX_LIFE`].
pub struct Stream {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<Vec<(std::time::Instant, bool)>>>,
}

impl Stream {
    /// Starts a stream over `flows` flows to `port` in `t`'s client.
    pub fn start(t: &TwoNodes, flows: usize, port: u16) -> Result<Self> {
        use std::{
            net::{SocketAddr, SocketAddrV6},
            sync::atomic::Ordering,
            time::{Duration, Instant},
        };
        let client = t.lab.ns("client")?;
        let socks = (0..flows)
            .map(|_| {
                let s = client.udp(SocketAddr::V6(SocketAddrV6::new(CLIENT, 0, 0, 0)))?;
                s.set_read_timeout(Some(Duration::from_millis(300)))?;
                Ok(s)
            })
            .collect::<Result<Vec<_>>>()?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let dst = SocketAddr::V6(SocketAddrV6::new(ANYCAST, port, 0, 0));
        let handle = std::thread::spawn(move || {
            let start = Instant::now();
            let mut results = Vec::new();
            let mut buf = [0u8; 256];
            for s in socks.iter().cycle() {
                if flag.load(Ordering::Relaxed) || start.elapsed() > crate::lab::Service::MAX_LIFE {
                    break;
                }
                // A late answer to this flow's last request counts as
                // that one lost, not as this one answered.
                let _ = s.set_nonblocking(true);
                while s.recv_from(&mut buf).is_ok() {}
                let _ = s.set_nonblocking(false);
                let sent = Instant::now();
                let answered = s.send_to(b"query", dst).is_ok() && s.recv_from(&mut buf).is_ok();
                results.push((sent, answered));
                // About a thousand requests a second: enough to see a gap
                // of a few milliseconds, without taking a core.
                std::thread::sleep(Duration::from_millis(1));
            }
            results
        });
        Ok(Stream {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the stream: each request's time and whether it was answered.
    pub fn stop(mut self) -> Vec<(std::time::Instant, bool)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for TwoNodes {
    fn drop(&mut self) {
        for ok in &self.oks {
            let _ = std::fs::remove_file(ok);
        }
        self.node_birds.clear();
    }
}
