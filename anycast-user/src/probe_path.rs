//! The path of a check with `target = "anycast"`: its probes go to the
//! anycast address the way the data plane sends that address's packets to
//! the member (the member's MAC on its link, or IPv6-in-IPv6 to its encap
//! address), so a member that answers on its own address but not on the
//! anycast address fails its check.
//!
//! Each such check gets a firewall mark that its sockets carry (`SO_MARK`),
//! a policy rule (preference [`RULE_PREF`]) from that mark to a routing
//! table of the same number, and in that table one route to the anycast
//! address: through a neighbour entry with the member's MAC (on-link), or
//! with a reduced SRv6 encapsulation of a single segment, which is plain
//! IPv6-in-IPv6 to the encap address (routed). Marks and tables are
//! [`MARK_BASE`] plus the check's index. Installed with iproute2 (`ip`),
//! removed when dropped, and whatever a killed service left is removed by
//! the next one.

use std::{net::Ipv6Addr, process::Command};

use crate::{
    error::{Error, Result},
    members::{MemberVia, format_mac},
};

/// Preference of the policy rules of anycast-target probes: before the
/// main table (32766), after the local one (0).
pub const RULE_PREF: u32 = 900;
/// First firewall mark and routing table of anycast-target probes.
pub const MARK_BASE: u32 = 0x0ac0_0000;
/// Most anycast-target checks one service runs.
pub const MAX_PATHS: u32 = 0x1_0000;

/// The neighbour (a link-local address no host uses) that stands for
/// on-link member `index` in its probe table.
fn stand_in(index: u32) -> Ipv6Addr {
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        0x0ac1,
        0,
        (index >> 16) as u16,
        index as u16,
    )
}

fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Error::ProbePath(format!("running ip: {e}")))?;
    if !out.status.success() {
        return Err(Error::ProbePath(format!(
            "`ip {}`: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What one path installed, to remove it again.
#[derive(Debug)]
struct Installed {
    table: u32,
    neighbour: Option<(Ipv6Addr, String)>,
}

/// The probe paths a service installed (in the network namespace it runs
/// in); removed on drop.
#[derive(Debug, Default)]
pub struct ProbePaths {
    installed: Vec<Installed>,
}

impl ProbePaths {
    /// Removes the rules (and their tables) that a service killed before
    /// it could clean up left behind. Bounded by [`MAX_PATHS`].
    pub fn clear_stale() -> Result<()> {
        let pref = RULE_PREF.to_string();
        let rules = ip(&["-6", "rule", "show", "pref", &pref])?;
        for line in rules.lines().take(MAX_PATHS as usize) {
            let mut words = line.split_whitespace();
            if let Some(table) = words.by_ref().skip_while(|w| *w != "lookup").nth(1) {
                let _ = ip(&["-6", "route", "flush", "table", table]);
            }
        }
        for _ in 0..MAX_PATHS {
            if ip(&["-6", "rule", "del", "pref", &pref]).is_err() {
                break;
            }
        }
        Ok(())
    }

    /// Installs path `index` to `anycast` through member `via`; the mark
    /// its probes' sockets carry.
    pub fn install(&mut self, index: u32, anycast: Ipv6Addr, via: &MemberVia) -> Result<u32> {
        if index >= MAX_PATHS {
            return Err(Error::ProbePath(format!(
                "more than {MAX_PATHS} checks with target = \"anycast\""
            )));
        }
        let mark = MARK_BASE + index;
        let table = mark.to_string();
        let dst = format!("{anycast}/128");
        let mut installed = Installed {
            table: mark,
            neighbour: None,
        };
        match via {
            MemberVia::L2 { iface, mac } => {
                let nh = stand_in(index).to_string();
                ip(&[
                    "-6",
                    "neigh",
                    "replace",
                    &nh,
                    "lladdr",
                    &format_mac(mac),
                    "dev",
                    iface,
                    "nud",
                    "permanent",
                ])?;
                installed.neighbour = Some((stand_in(index), iface.clone()));
                ip(&[
                    "-6", "route", "replace", &dst, "via", &nh, "dev", iface, "table", &table,
                ])?;
            }
            MemberVia::Neighbour { iface, addr } => {
                return Err(Error::ProbePath(format!(
                    "the MAC of {addr} on {iface} is not resolved yet"
                )));
            }
            MemberVia::Encap(to) => {
                // The route names a device; the encapsulated packet is
                // routed again, to `to`, so any device that reaches it does.
                let route = ip(&["-6", "route", "get", &to.to_string()])?;
                let dev = route
                    .split_whitespace()
                    .skip_while(|w| *w != "dev")
                    .nth(1)
                    .ok_or_else(|| Error::ProbePath(format!("no route to {to}")))?
                    .to_string();
                ip(&[
                    "-6",
                    "route",
                    "replace",
                    &dst,
                    "encap",
                    "seg6",
                    "mode",
                    "encap.red",
                    "segs",
                    &to.to_string(),
                    "dev",
                    &dev,
                    "table",
                    &table,
                ])?;
            }
        }
        let pref = RULE_PREF.to_string();
        let r = ip(&[
            "-6",
            "rule",
            "add",
            "fwmark",
            &mark.to_string(),
            "lookup",
            &table,
            "pref",
            &pref,
        ]);
        self.installed.push(installed);
        r?;
        Ok(mark)
    }

    /// Removes every path installed.
    pub fn clear(&mut self) {
        for i in self.installed.drain(..) {
            let table = i.table.to_string();
            let _ = ip(&[
                "-6",
                "rule",
                "del",
                "fwmark",
                &table,
                "lookup",
                &table,
                "pref",
                &RULE_PREF.to_string(),
            ]);
            let _ = ip(&["-6", "route", "flush", "table", &table]);
            if let Some((nh, dev)) = i.neighbour {
                let _ = ip(&["-6", "neigh", "del", &nh.to_string(), "dev", &dev]);
            }
        }
    }
}

impl Drop for ProbePaths {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_ins_are_link_local_and_distinct() {
        assert_eq!(stand_in(0).to_string(), "fe80::ac1:0:0:0");
        assert_eq!(stand_in(0x1_0005).to_string(), "fe80::ac1:0:1:5");
        assert!(stand_in(7).is_unicast_link_local());
    }
}
