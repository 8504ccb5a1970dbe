//! BIRD 2 in the lab: a BGP speaker per namespace, with the configurations
//! of docs/BGP.md (a redirector node, an upstream that merges equal paths
//! into ECMP), written for the lab's interfaces and addresses.

use std::{
    path::PathBuf,
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
