//! The namespace lab: network namespaces joined by veth pairs, with fixed
//! MACs, static neighbours, no DAD and no router solicitations, so that the
//! only traffic is what a test sends. Every lab has unique namespace names
//! and its own pin dir, and removes both on drop, so tests run in parallel.

use std::{
    fs,
    net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// Runs a command, failing with its stderr when it fails.
pub fn sh(args: &[&str]) -> Result<String> {
    let (prog, rest) = args.split_first().context("empty command")?;
    let out = Command::new(prog)
        .args(rest)
        .output()
        .with_context(|| format!("running {prog} (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Polls `pred` until it holds or `timeout` passes.
pub fn wait_until(what: &str, timeout: Duration, mut pred: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    loop {
        if pred() {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    /// Its name under /run/netns.
    pub name: String,
}

impl NetNs {
    /// Creates namespace `name` with loopback up and no DAD, RA or RS on new interfaces.
    pub fn create(name: &str) -> Result<Self> {
        sh(&["ip", "netns", "add", name])?;
        let ns = NetNs {
            name: name.to_string(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        for (key, value) in [
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
            ("net.ipv6.conf.all.accept_ra", "0"),
            ("net.ipv6.conf.default.accept_ra", "0"),
            ("net.ipv6.conf.default.router_solicitations", "0"),
            ("net.ipv6.conf.all.router_solicitations", "0"),
        ] {
            ns.sysctl(key, value)?;
        }
        Ok(ns)
    }

    /// `ip -n NAME args...`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut v = vec!["ip", "-n", self.name.as_str()];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Result<String> {
        let mut v = vec!["ip", "netns", "exec", self.name.as_str()];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// Sets a sysctl inside the namespace (written from a thread that entered it).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let value = value.to_string();
        self.run(move || fs::write(&path, value).with_context(|| format!("writing {path}")))?
    }

    /// Runs `f` on a thread inside the namespace; sockets it opens stay there.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let path = format!("/run/netns/{}", self.name);
        thread::spawn(move || -> Result<T> {
            anycast::netns::enter(&path)?;
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow!("thread in namespace panicked"))?
    }

    /// A UDP socket bound to `addr` inside the namespace.
    pub fn udp(&self, addr: SocketAddr) -> Result<UdpSocket> {
        let sock = self.run(move || UdpSocket::bind(addr))??;
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        Ok(sock)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = sh(&["ip", "netns", "del", &self.name]) {
            eprintln!("lab cleanup: {e:#}");
        }
    }
}

/// One end of a veth link.
#[derive(Clone, Copy, Debug)]
pub struct End<'a> {
    /// Logical node name.
    pub node: &'a str,
    /// Interface name inside the node.
    pub ifname: &'a str,
    /// Address with prefix length, e.g. `fd00:a:1::1/64`.
    pub addr: &'a str,
}

/// Path of the `anycast` binary under test.
pub fn anycast_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("ANYCAST_BIN") {
        return Ok(PathBuf::from(p));
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/anycast");
    if p.exists() {
        return Ok(p);
    }
    bail!(
        "the anycast binary is not built: run `cargo xtask test` (or `cargo build -p anycast-user`)"
    )
}

/// A set of namespaces for one test, with its own pin dir.
#[derive(Debug)]
pub struct Lab {
    /// Unique prefix of every namespace name.
    pub prefix: String,
    /// The pin dir the data plane of this lab uses.
    pub pin_dir: PathBuf,
    nodes: Vec<(String, NetNs)>,
    links: u8,
    /// Other pin dirs a test uses, purged and removed on drop.
    extra_pins: Mutex<Vec<PathBuf>>,
}

impl Lab {
    /// An empty lab for the test named `test`.
    pub fn new(test: &str) -> Result<Self> {
        let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
        let short: String = test
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(12)
            .collect();
        let prefix = format!("ac{}-{id}-{short}", std::process::id());
        Ok(Lab {
            pin_dir: PathBuf::from(format!("/sys/fs/bpf/{prefix}")),
            prefix,
            nodes: Vec::new(),
            links: 0,
            extra_pins: Mutex::new(Vec::new()),
        })
    }

    /// Another pin dir for this lab, `/sys/fs/bpf/<prefix>-<name>` (not
    /// created), purged and removed when the lab is dropped.
    pub fn other_pin_dir(&self, name: &str) -> PathBuf {
        let p = PathBuf::from(format!("/sys/fs/bpf/{}-{name}", self.prefix));
        self.forget_pin_dir_on_drop(&p);
        p
    }

    /// Purges and removes pin dir `p` when the lab is dropped (e.g. one a
    /// test made inside another).
    pub fn forget_pin_dir_on_drop(&self, p: &Path) {
        if let Ok(mut v) = self.extra_pins.lock() {
            v.push(p.to_path_buf());
        }
    }

    /// Adds node `name`; `forwarding` makes it a router.
    pub fn node(&mut self, name: &str, forwarding: bool) -> Result<&NetNs> {
        let ns = NetNs::create(&format!("{}-{name}", self.prefix))?;
        if forwarding {
            ns.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        }
        self.nodes.push((name.to_string(), ns));
        self.ns(name)
    }

    /// The namespace of node `name`.
    pub fn ns(&self, name: &str) -> Result<&NetNs> {
        self.nodes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, ns)| ns)
            .with_context(|| format!("no node {name} in the lab"))
    }

    /// MAC of link `link`, side `side`: locally administered and fixed.
    pub fn mac(link: u8, side: u8) -> String {
        format!("02:ac:00:00:{link:02x}:{side:02x}")
    }

    /// Joins two nodes with a veth pair: fixed MACs, addresses without DAD,
    /// static neighbour entries both ways, transmit checksum offload off and
    /// GRO on (so that XDP_REDIRECT into the pair is accepted).
    pub fn link(&mut self, a: End<'_>, b: End<'_>) -> Result<()> {
        self.links += 1;
        let (mac_a, mac_b) = (Self::mac(self.links, 1), Self::mac(self.links, 2));
        let (ns_a, ns_b) = (self.ns(a.node)?, self.ns(b.node)?);
        ns_a.ip(&[
            "link", "add", a.ifname, "address", &mac_a, "type", "veth", "peer", "name", b.ifname,
            "netns", &ns_b.name, "address", &mac_b,
        ])?;
        for (ns, end, peer, peer_mac) in [(ns_a, a, b, &mac_b), (ns_b, b, a, &mac_a)] {
            ns.ip(&["addr", "add", end.addr, "dev", end.ifname, "nodad"])?;
            ns.ip(&["link", "set", end.ifname, "up"])?;
            let peer_ip = peer.addr.split('/').next().unwrap_or(peer.addr);
            ns.ip(&[
                "neigh",
                "replace",
                peer_ip,
                "lladdr",
                peer_mac,
                "dev",
                end.ifname,
                "nud",
                "permanent",
            ])?;
        }
        for (ns, end) in [(ns_a, a), (ns_b, b)] {
            wait_until(
                &format!("{} up", end.ifname),
                Duration::from_secs(5),
                || {
                    ns.ip(&["link", "show", "dev", end.ifname])
                        .is_ok_and(|s| s.contains("LOWER_UP"))
                },
            )?;
            // Kernel-made packets lose checksum offload when redirected by
            // XDP: no transmit offload. And a veth accepts redirected frames
            // only when its peer has GRO on; veth advertises that to the
            // peer only when GRO is switched on while both ends are up.
            ns.exec(&["ethtool", "-K", end.ifname, "tx", "off", "gro", "on"])?;
        }
        Ok(())
    }

    /// Adds a route on `node`: `dst` (prefix or `default`) via `via`.
    pub fn route(&self, node: &str, dst: &str, via: &str) -> Result<()> {
        self.ns(node)?
            .ip(&["-6", "route", "replace", dst, "via", via])?;
        Ok(())
    }

    /// Runs the `anycast` CLI with this lab's pin dir inside node `node`.
    pub fn anycast_in(&self, node: &str, args: &[&str]) -> Result<Output> {
        self.anycast_at(&self.pin_dir, node, args)
    }

    /// Runs the `anycast` CLI with pin dir `pin` inside node `node`.
    pub fn anycast_at(&self, pin: &Path, node: &str, args: &[&str]) -> Result<Output> {
        self.anycast_cmd(pin, node, args)?
            .output()
            .context("running anycast")
    }

    /// The `anycast` command with pin dir `pin`, run inside node `node`
    /// (`--netns`), not started: for tests that need its output or its
    /// process.
    pub fn anycast_cmd(&self, pin: &Path, node: &str, args: &[&str]) -> Result<Command> {
        let ns = self.ns(node)?;
        let mut cmd = Command::new(anycast_bin()?);
        cmd.arg("--pin-dir")
            .arg(pin)
            .args(["--netns", &ns.name])
            .args(args)
            .env_remove("ANYCAST_PIN_DIR");
        Ok(cmd)
    }

    /// Starts `anycast ARGS` with pin dir `pin` in node `node`, its standard
    /// output (returned) and error pipes; the process is killed when the
    /// [`Running`] is dropped.
    pub fn spawn_anycast(
        &self,
        pin: &Path,
        node: &str,
        args: &[&str],
    ) -> Result<(Running, ChildStdout)> {
        let mut child = self
            .anycast_cmd(pin, node, args)?
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting anycast {}", args.join(" ")))?;
        let stdout = child.stdout.take().context("stdout")?;
        Ok((Running(child), stdout))
    }

    /// Runs the CLI in `node` and fails unless it succeeds; returns stdout.
    pub fn anycast_ok(&self, node: &str, args: &[&str]) -> Result<String> {
        let out = self.anycast_in(node, args)?;
        if !out.status.success() {
            bail!(
                "`anycast {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs the CLI in `node` and requires it to fail with a one-line error
    /// containing `needle`.
    pub fn anycast_refused(&self, node: &str, args: &[&str], needle: &str) -> Result<()> {
        refused(&self.anycast_in(node, args)?, args, needle)
    }

    /// Runs the CLI with pin dir `pin` in `node` and requires it to fail
    /// with a one-line error containing `needle`.
    pub fn anycast_refused_at(
        &self,
        pin: &Path,
        node: &str,
        args: &[&str],
        needle: &str,
    ) -> Result<()> {
        refused(&self.anycast_at(pin, node, args)?, args, needle)
    }

    /// Runs the CLI with pin dir `pin` in `node` and fails unless it
    /// succeeds; returns stdout.
    pub fn anycast_ok_at(&self, pin: &Path, node: &str, args: &[&str]) -> Result<String> {
        let out = self.anycast_at(pin, node, args)?;
        if !out.status.success() {
            bail!(
                "`anycast --pin-dir {} {}` failed: {}",
                pin.display(),
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs the CLI in `node` and requires it to fail; returns its stdout
    /// and stderr.
    pub fn anycast_fails(&self, node: &str, args: &[&str]) -> Result<(String, String)> {
        let out = self.anycast_in(node, args)?;
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        if out.status.success() {
            bail!("`anycast {}` should have failed: {stdout}", args.join(" "));
        }
        Ok((stdout, stderr))
    }

    /// A file `name` with `text` for this lab's commands, removed on drop.
    pub fn file(&self, name: &str, text: &str) -> Result<LabFile> {
        let path = std::env::temp_dir().join(format!("{}-{name}", self.prefix));
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(LabFile(path))
    }

    /// `anycast stats --json`, parsed.
    pub fn stats(&self, node: &str) -> Result<serde_json::Value> {
        Ok(serde_json::from_str(
            &self.anycast_ok(node, &["stats", "--json"])?,
        )?)
    }
}

/// Requires `out` (of `anycast ARGS`) to be a failure with a one-line error
/// containing `needle`.
pub fn refused(out: &Output, args: &[&str], needle: &str) -> Result<()> {
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        bail!("`anycast {}` should have failed", args.join(" "));
    }
    if !err.contains(needle) || err.trim().lines().count() != 1 {
        bail!(
            "`anycast {}`: want one line with `{needle}`, got: {err}",
            args.join(" ")
        );
    }
    Ok(())
}

/// A process killed (and reaped) when dropped, so that a failing test
/// leaves none running.
pub struct Running(pub Child);

impl Running {
    /// Waits for the process to end, at most `timeout`; its exit status.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(st) = self.0.try_wait()? {
                return Ok(st);
            }
            if start.elapsed() > timeout {
                bail!("the process did not end within {timeout:?}");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends signal `sig` to the process.
    pub fn signal(&self, sig: i32) -> Result<()> {
        let pid = i32::try_from(self.0.id()).context("pid")?;
        // SAFETY: kill(2) on the pid of a child we have not reaped yet.
        if unsafe { libc::kill(pid, sig) } != 0 {
            bail!("kill {pid}: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A file of a lab's (a configuration, an address list), removed on drop.
#[derive(Debug)]
pub struct LabFile(PathBuf);

impl LabFile {
    /// Its path, as a command-line argument.
    pub fn arg(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for LabFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Detach and purge through the CLI when the lab has a data plane;
        // deleting the namespaces below removes the interfaces either way.
        let extra = self
            .extra_pins
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        // Inner pin dirs first: the lab's own may hold them.
        for pin in extra.iter().rev().chain([&self.pin_dir]) {
            if pin.exists() {
                if let Some((node, _)) = self.nodes.first() {
                    let _ = self.anycast_at(pin, node, &["detach", "--purge"]);
                }
                let _ = fs::remove_dir_all(pin);
            }
            // The state socket of a service the test killed.
            let _ = fs::remove_file(anycast::service::socket::socket_path(pin));
        }
        // Namespaces are deleted by NetNs::drop, in reverse order of creation.
        while let Some((_, ns)) = self.nodes.pop() {
            drop(ns);
        }
    }
}

/// The client-router-server lab most tests use:
///
/// ```text
///  client eth0 ----- c0 router s0 ----- eth0 server
///  fd00:a:1::2/64  fd00:a:1::1  fd00:a:2::1  fd00:a:2::2/64
/// ```
///
/// The router forwards; client and server route everything through it.
pub struct ClientRouterServer {
    /// The lab.
    pub lab: Lab,
}

/// Client address in [`ClientRouterServer`].
pub const CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xa, 1, 0, 0, 0, 0, 2);
/// Router's client-side address.
pub const ROUTER_C: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xa, 1, 0, 0, 0, 0, 1);
/// Router's server-side address.
pub const ROUTER_S: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xa, 2, 0, 0, 0, 0, 1);
/// Server address.
pub const SERVER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xa, 2, 0, 0, 0, 0, 2);

impl ClientRouterServer {
    /// Builds the lab for test `test`.
    pub fn new(test: &str) -> Result<Self> {
        let mut lab = Lab::new(test)?;
        lab.node("client", false)?;
        lab.node("router", true)?;
        lab.node("server", false)?;
        lab.link(
            End {
                node: "client",
                ifname: "eth0",
                addr: "fd00:a:1::2/64",
            },
            End {
                node: "router",
                ifname: "c0",
                addr: "fd00:a:1::1/64",
            },
        )?;
        lab.link(
            End {
                node: "router",
                ifname: "s0",
                addr: "fd00:a:2::1/64",
            },
            End {
                node: "server",
                ifname: "eth0",
                addr: "fd00:a:2::2/64",
            },
        )?;
        lab.route("client", "default", "fd00:a:1::1")?;
        lab.route("server", "default", "fd00:a:2::1")?;
        Ok(ClientRouterServer { lab })
    }

    /// Gives the client an extra address (e.g. an anycast one it claims), without DAD.
    pub fn client_claims(&self, addr: Ipv6Addr) -> Result<()> {
        self.lab.ns("client")?.ip(&[
            "addr",
            "add",
            &format!("{addr}/128"),
            "dev",
            "eth0",
            "nodad",
        ])?;
        Ok(())
    }

    /// Sends `count` UDP datagrams from `src` (an address the client holds)
    /// to the server's `port`, and returns how many the server received.
    pub fn send_udp(&self, src: Ipv6Addr, port: u16, count: usize) -> Result<usize> {
        let server = self.lab.ns("server")?;
        let rx = server.udp(SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::UNSPECIFIED,
            port,
            0,
            0,
        )))?;
        let tx = self
            .lab
            .ns("client")?
            .udp(SocketAddr::V6(SocketAddrV6::new(src, 0, 0, 0)))?;
        let dst = SocketAddr::V6(SocketAddrV6::new(SERVER, port, 0, 0));
        for i in 0..count {
            tx.send_to(format!("probe {i}").as_bytes(), dst)?;
        }
        Ok(receive_count(&rx, count, Duration::from_millis(800)))
    }
}

/// Receives datagrams on `sock` until `want` arrived or nothing came for `quiet`.
pub fn receive_count(sock: &UdpSocket, want: usize, quiet: Duration) -> usize {
    let mut buf = [0u8; 2048];
    let mut got = 0;
    let mut last = Instant::now();
    // Bounded: at most `want` datagrams, and stops after `quiet` of silence.
    while got < want && last.elapsed() < quiet {
        if sock.recv_from(&mut buf).is_ok() {
            got += 1;
            last = Instant::now();
        }
    }
    got
}

/// A UDP service in a namespace: counts datagrams and answers each with its
/// tag. Stops on drop; never runs longer than [`Service::MAX_LIFE`].
pub struct Service {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<usize>>,
}

impl Service {
    /// Upper bound on a service's life, whatever the test does.
    pub const MAX_LIFE: Duration = Duration::from_secs(120);

    /// Starts a service on `addr`:`port` in `ns` answering with `tag`.
    pub fn start(ns: &NetNs, addr: Ipv6Addr, port: u16, tag: &str) -> Result<Self> {
        let sock = ns.udp(SocketAddr::V6(SocketAddrV6::new(addr, port, 0, 0)))?;
        sock.set_read_timeout(Some(Duration::from_millis(20)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let tag = tag.as_bytes().to_vec();
        let handle = thread::spawn(move || {
            let start = Instant::now();
            let mut buf = [0u8; 2048];
            let mut count = 0;
            while !flag.load(Ordering::Relaxed) && start.elapsed() < Self::MAX_LIFE {
                if let Ok((_, from)) = sock.recv_from(&mut buf) {
                    count += 1;
                    let _ = sock.send_to(&tag, from);
                }
            }
            count
        });
        Ok(Service {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the service; how many datagrams it received.
    pub fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().map_or(0, |h| h.join().unwrap_or(0))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The anycast address members serve in [`MemberLab`].
pub const ANYCAST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xac, 0, 0, 0, 0, 0x53);
/// m3's unicast address (the encapsulation endpoint).
pub const M3: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xc, 2, 0, 0, 0, 0, 2);

/// The lab of the redirect tests:
///
/// ```text
///  client eth0 --- c0 router r1 --- eth0 m1   (anycast on lo)
///  fd00:a:1::2         │    r2 --- eth0 m2   (anycast on lo)
///                      t0 --- eth0 transit eth1 --- eth0 m3 (anycast on lo,
///                   fd00:c:1::/64          fd00:c:2::/64    decapsulates)
/// ```
///
/// m1 is on fd00:b:1::/64, m2 on fd00:b:2::/64. m3 is two hops away and
/// decapsulates IPv6-in-IPv6 with seg6local End.DT6. The kernel routes for
/// the anycast address (plain routing, the fallback) lead to m3.
pub struct MemberLab {
    /// The lab.
    pub lab: Lab,
}

impl MemberLab {
    /// Builds the lab for test `test`.
    pub fn new(test: &str) -> Result<Self> {
        let mut lab = Lab::new(test)?;
        for (n, fwd) in [
            ("client", false),
            ("router", true),
            ("m1", false),
            ("m2", false),
            ("transit", true),
            ("m3", false),
        ] {
            lab.node(n, fwd)?;
        }
        let e = |node, ifname, addr| End { node, ifname, addr };
        lab.link(
            e("client", "eth0", "fd00:a:1::2/64"),
            e("router", "c0", "fd00:a:1::1/64"),
        )?;
        lab.link(
            e("router", "r1", "fd00:b:1::1/64"),
            e("m1", "eth0", "fd00:b:1::2/64"),
        )?;
        lab.link(
            e("router", "r2", "fd00:b:2::1/64"),
            e("m2", "eth0", "fd00:b:2::2/64"),
        )?;
        lab.link(
            e("router", "t0", "fd00:c:1::1/64"),
            e("transit", "eth0", "fd00:c:1::2/64"),
        )?;
        lab.link(
            e("transit", "eth1", "fd00:c:2::1/64"),
            e("m3", "eth0", "fd00:c:2::2/64"),
        )?;
        lab.route("client", "default", "fd00:a:1::1")?;
        lab.route("m1", "default", "fd00:b:1::1")?;
        lab.route("m2", "default", "fd00:b:2::1")?;
        lab.route("transit", "default", "fd00:c:1::1")?;
        lab.route("m3", "default", "fd00:c:2::1")?;
        lab.route("router", "fd00:c:2::/64", "fd00:c:1::2")?;
        // Plain routing, the fallback: the anycast address lives at m3.
        lab.route("router", &format!("{ANYCAST}/128"), "fd00:c:1::2")?;
        lab.route("transit", &format!("{ANYCAST}/128"), "fd00:c:2::2")?;
        for m in ["m1", "m2", "m3"] {
            lab.ns(m)?
                .ip(&["addr", "add", &format!("{ANYCAST}/128"), "dev", "lo"])?;
        }
        // m3 decapsulates IPv6-in-IPv6 sent to its own address: a rule sends
        // it to table 100 ahead of the local table, where seg6local End.DT6
        // pops the outer header and looks the inner one up in the local table.
        let m3 = lab.ns("m3")?;
        let sid = M3.to_string();
        m3.ip(&[
            "-6", "rule", "add", "to", &sid, "ipproto", "41", "lookup", "100", "pref", "100",
        ])?;
        m3.ip(&["-6", "rule", "add", "lookup", "local", "pref", "1000"])?;
        m3.ip(&["-6", "rule", "del", "pref", "0"])?;
        m3.ip(&[
            "-6",
            "route",
            "add",
            &format!("{sid}/128"),
            "encap",
            "seg6local",
            "action",
            "End.DT6",
            "table",
            "255",
            "dev",
            "eth0",
            "table",
            "100",
        ])?;
        Ok(MemberLab { lab })
    }

    /// The lab with the data plane attached on the router (c0 edge, r1 and
    /// r2 member-facing) and the anycast address in group `group`.
    pub fn attached(test: &str, group: &str) -> Result<Self> {
        let ml = MemberLab::new(test)?;
        let lab = &ml.lab;
        lab.anycast_ok("router", &["attach", "c0", "--role", "edge"])?;
        lab.anycast_ok("router", &["attach", "r1", "--role", "member"])?;
        lab.anycast_ok("router", &["attach", "r2", "--role", "member"])?;
        lab.anycast_ok(
            "router",
            &["addr", "add", &ANYCAST.to_string(), "--group", group],
        )?;
        Ok(ml)
    }

    /// Adds `node` (m1 on r1, m2 on r2) as an on-link member of `group`.
    pub fn add_member(&self, group: &str, node: &str, iface: &str, metric: u32) -> Result<()> {
        let mac = self.member_mac(node)?;
        self.lab.anycast_ok(
            "router",
            &[
                "member",
                "add",
                group,
                node,
                "--iface",
                iface,
                "--mac",
                &mac,
                "--metric",
                &metric.to_string(),
            ],
        )?;
        Ok(())
    }

    /// The MAC of `node`'s end of its link to the router (m1 or m2).
    pub fn member_mac(&self, node: &str) -> Result<String> {
        let out = self
            .lab
            .ns(node)?
            .ip(&["-o", "link", "show", "dev", "eth0"])?;
        out.split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .map(str::to_string)
            .with_context(|| format!("no MAC for {node}"))
    }

    /// The state (`up`, `down`, ...) `member list` shows for member `name`
    /// of `group`.
    pub fn member_state(&self, group: &str, name: &str) -> Result<String> {
        let list: serde_json::Value = serde_json::from_str(
            &self
                .lab
                .anycast_ok("router", &["member", "list", group, "--json"])?,
        )?;
        let m = list
            .as_array()
            .and_then(|a| a.iter().find(|m| m["name"] == name))
            .with_context(|| format!("{name} not in {list}"))?;
        Ok(m["state"].as_str().unwrap_or_default().to_string())
    }

    /// A UDP socket of the client's, bound to its own address.
    pub fn client_socket(&self) -> Result<UdpSocket> {
        let sock = self
            .lab
            .ns("client")?
            .udp(SocketAddr::V6(SocketAddrV6::new(CLIENT, 0, 0, 0)))?;
        sock.set_read_timeout(Some(Duration::from_millis(500)))?;
        Ok(sock)
    }

    /// Sends one query to the anycast address and returns the answering
    /// member's tag and the answer's source address, if an answer came.
    pub fn query(&self, sock: &UdpSocket, port: u16) -> Result<Option<(String, Ipv6Addr)>> {
        sock.send_to(
            b"query",
            SocketAddr::V6(SocketAddrV6::new(ANYCAST, port, 0, 0)),
        )?;
        let mut buf = [0u8; 256];
        match sock.recv_from(&mut buf) {
            Ok((n, SocketAddr::V6(from))) => Ok(Some((
                String::from_utf8_lossy(&buf[..n]).into_owned(),
                *from.ip(),
            ))),
            Ok(_) | Err(_) => Ok(None),
        }
    }

    /// Asks from a new socket (so: a new flow) until a member answers
    /// (bounded), returning its tag.
    pub fn answerer(&self, port: u16) -> Result<String> {
        let sock = self.client_socket()?;
        for _ in 0..5 {
            if let Some((tag, from)) = self.query(&sock, port)? {
                if from != ANYCAST {
                    bail!("answer from {from}, not from the anycast address");
                }
                return Ok(tag);
            }
        }
        bail!("no member answered on port {port}")
    }
}

/// A TCP service in a namespace: every connection gets `lines` lines
/// "TAG N\n", one each `every`, then is closed. Stops on drop; never runs
/// longer than [`Service::MAX_LIFE`].
pub struct TcpService {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl TcpService {
    /// Starts the service on `addr`:`port` in `ns`.
    pub fn start(
        ns: &NetNs,
        addr: Ipv6Addr,
        port: u16,
        tag: &str,
        lines: usize,
        every: Duration,
    ) -> Result<Self> {
        let listener = ns.run(move || {
            std::net::TcpListener::bind(SocketAddr::V6(SocketAddrV6::new(addr, port, 0, 0)))
        })??;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let tag = tag.to_string();
        let handle = thread::spawn(move || {
            let start = Instant::now();
            let mut workers = Vec::new();
            while !flag.load(Ordering::Relaxed) && start.elapsed() < Service::MAX_LIFE {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let tag = tag.clone();
                        let flag = flag.clone();
                        workers.push(thread::spawn(move || {
                            use std::io::Write as _;
                            let _ = conn.set_nonblocking(false);
                            for i in 0..lines {
                                if flag.load(Ordering::Relaxed)
                                    || conn.write_all(format!("{tag} {i}\n").as_bytes()).is_err()
                                {
                                    return;
                                }
                                thread::sleep(every);
                            }
                        }));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
            for w in workers {
                let _ = w.join();
            }
        });
        Ok(TcpService {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for TcpService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A TCP connection from the client to the anycast address, read line by line.
pub struct TcpClient {
    reader: std::io::BufReader<std::net::TcpStream>,
}

impl TcpClient {
    /// Connects from namespace `ns` to `addr`:`port`.
    pub fn connect(ns: &NetNs, addr: Ipv6Addr, port: u16) -> Result<Self> {
        let dst = SocketAddr::V6(SocketAddrV6::new(addr, port, 0, 0));
        let stream =
            ns.run(move || std::net::TcpStream::connect_timeout(&dst, Duration::from_secs(3)))??;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        Ok(TcpClient {
            reader: std::io::BufReader::new(stream),
        })
    }

    /// The next line, `Ok(None)` at the end of the stream.
    pub fn line(&mut self) -> std::io::Result<Option<String>> {
        use std::io::BufRead as _;
        let mut s = String::new();
        match self.reader.read_line(&mut s)? {
            0 => Ok(None),
            _ => Ok(Some(s.trim_end().to_string())),
        }
    }
}

/// A namespace whose FIB reaches `fd00:f::/64` via `fd00:e::2` on `e0`
/// (MTU 1400, address fd00:e::1), with forwarding on: what
/// `bpf_fib_lookup` needs to resolve an encapsulated member `fd00:f::2`
/// when a program test runs inside it.
#[derive(Clone, Copy, Debug)]
pub struct FibNode {
    /// Index of `e0`.
    pub ifindex: u32,
    /// MAC of `e0`.
    pub smac: [u8; 6],
    /// MAC of the next hop (the peer `e1`).
    pub dmac: [u8; 6],
}

impl FibNode {
    /// Adds node `name` to `lab` with that FIB.
    pub fn build(lab: &mut Lab, name: &str) -> Result<Self> {
        let ns = lab.node(name, true)?;
        ns.ip(&[
            "link",
            "add",
            "e0",
            "address",
            "02:cc:00:00:00:01",
            "type",
            "veth",
            "peer",
            "name",
            "e1",
            "address",
            "02:cc:00:00:00:02",
        ])?;
        ns.ip(&["link", "set", "e0", "mtu", "1400", "up"])?;
        ns.ip(&["link", "set", "e1", "up"])?;
        ns.ip(&["addr", "add", "fd00:e::1/64", "dev", "e0", "nodad"])?;
        ns.ip(&[
            "neigh",
            "replace",
            "fd00:e::2",
            "lladdr",
            "02:cc:00:00:00:02",
            "dev",
            "e0",
            "nud",
            "permanent",
        ])?;
        ns.ip(&[
            "-6",
            "route",
            "add",
            "fd00:f::/64",
            "via",
            "fd00:e::2",
            "dev",
            "e0",
        ])?;
        let shown = ns.ip(&["-o", "link", "show", "dev", "e0"])?;
        let ifindex: u32 = shown
            .split(':')
            .next()
            .and_then(|s| s.trim().parse().ok())
            .context("ifindex of e0")?;
        Ok(FibNode {
            ifindex,
            smac: [0x02, 0xcc, 0, 0, 0, 1],
            dmac: [0x02, 0xcc, 0, 0, 0, 2],
        })
    }
}

/// The lines a long-running command (`anycast run`) prints, read by a
/// thread, to wait for one.
pub struct Lines {
    rx: std::sync::mpsc::Receiver<String>,
    /// Every line so far (for the error message).
    seen: Vec<String>,
    /// Lines read but not matched yet, in order.
    pending: Vec<String>,
}

impl Lines {
    /// Reads `stdout` from now on.
    pub fn new(stdout: ChildStdout) -> Self {
        use std::io::BufRead as _;
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(std::result::Result::ok)
            {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// The first line not matched before that contains every one of
    /// `needles`, waiting at most `within` for it; each line matches once.
    pub fn expect(&mut self, needles: &[&str], within: Duration) -> Result<String> {
        let hit = |line: &str| needles.iter().all(|n| line.contains(n));
        if let Some(i) = self.pending.iter().position(|l| hit(l)) {
            return Ok(self.pending.remove(i));
        }
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if hit(&line) {
                        return Ok(line);
                    }
                    self.pending.push(line);
                }
                Err(_) => break,
            }
        }
        bail!(
            "no line with {needles:?} within {within:?}; the service said:\n{}",
            self.seen.join("\n")
        )
    }
}
