//! The rest of the system: IPv6 forwarding where packets go to the
//! kernel (a group's `fallback = pass`), and the running service.

use std::time::Duration;

use anycast_common::Fallback;

use super::{Check, Context};
use crate::service::socket::{Request, Status as ServiceStatus, ask, socket_path};

pub(crate) fn checks(cx: &Context) -> Vec<Check> {
    let mut out = forwarding(cx);
    out.push(service(cx));
    out
}

/// A sysctl of the current network namespace (`net.ipv6.conf.all.forwarding`).
fn sysctl(key: &str) -> Option<String> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// What decides whether the kernel forwards a packet that arrived on an
/// interface: `all.forwarding`, or (Linux 6.17) the interface's
/// `force_forwarding`.
pub(crate) fn forwards(all: Option<&str>, force: Option<&str>) -> bool {
    all == Some("1") || force == Some("1")
}

fn forwarding(cx: &Context) -> Vec<Check> {
    let pass: Vec<&str> = cx
        .groups
        .iter()
        .filter(|g| g.settings.fallback == Fallback::Pass)
        .map(|g| g.name.as_str())
        .collect();
    if pass.is_empty() {
        return vec![Check::ok(
            "forwarding",
            "",
            "no group has fallback pass: the kernel forwards nothing for anycast".into(),
        )];
    }
    let groups = pass.join(", ");
    let all = sysctl("net.ipv6.conf.all.forwarding");
    let mut out = Vec::new();
    // The interfaces packets arrive on: the attachments of this namespace.
    let mut stopped = Vec::new();
    for (i, _) in cx
        .attachments
        .iter()
        .filter(|(i, _)| i.netns == cx.netns && cx.wants(&i.name))
    {
        let force = sysctl(&format!("net.ipv6.conf.{}.force_forwarding", i.name));
        if !forwards(all.as_deref(), force.as_deref()) {
            stopped.push(i.name.clone());
        }
    }
    match all.as_deref() {
        Some("1") => out.push(Check::ok(
            "forwarding",
            "",
            format!("net.ipv6.conf.all.forwarding = 1: the kernel forwards what groups {groups} (fallback pass) and the data plane pass to it"),
        )),
        Some(v) if stopped.is_empty() => out.push(Check::ok(
            "forwarding",
            "",
            format!("net.ipv6.conf.all.forwarding = {v}, but every attached interface has force_forwarding = 1"),
        )),
        Some(v) => out.push(Check::fail(
            "forwarding",
            stopped.join(","),
            format!("net.ipv6.conf.all.forwarding = {v}: packets of groups {groups} with no live member (fallback pass), and those the data plane passes (no route, too big), are not forwarded but dropped by the kernel"),
            "`sysctl -w net.ipv6.conf.all.forwarding=1` (and in /etc/sysctl.d to keep it), or `fallback = \"drop\"` for the groups".into(),
        )),
        None => out.push(Check::warn(
            "forwarding",
            "",
            "cannot read net.ipv6.conf.all.forwarding (no IPv6?)".into(),
            "check that IPv6 is enabled".into(),
        )),
    }
    out
}

/// The service of this pin dir, asked on its state socket.
fn service(cx: &Context) -> Check {
    let path = socket_path(cx.pin.path());
    if !path.exists() {
        return Check::ok(
            "service",
            "",
            format!(
                "no service (`anycast run --config FILE`) for this pin dir ({} absent): the data plane forwards without one, but nothing checks the members' health or follows their neighbours and routes",
                path.display()
            ),
        );
    }
    let answer = ask(&path, Request::Status, Duration::from_secs(3));
    let status = answer.and_then(|a| {
        serde_json::from_str::<ServiceStatus>(&a).map_err(|e| crate::Error::Io {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    });
    match status {
        Err(e) => Check::warn(
            "service",
            "",
            format!(
                "{} is there but no service answers ({e}): it died or hangs, and nothing checks the members",
                path.display()
            ),
            "`systemctl status anycast` and `journalctl -u anycast`; `systemctl restart anycast`"
                .into(),
        ),
        Ok(s) => judge_service(&s),
    }
}

pub(crate) fn judge_service(s: &ServiceStatus) -> Check {
    let base = format!("pid {}, file {}", s.pid, s.file.display());
    let down: Vec<String> = s
        .reachability
        .iter()
        .filter_map(|r| {
            r.down_reason
                .as_ref()
                .map(|why| format!("{}/{}: {why}", r.group, r.member))
        })
        .collect();
    let failing: Vec<String> = s
        .members
        .iter()
        .filter(|m| m.health == "failing")
        .map(|m| {
            format!(
                "{}/{}: {}",
                m.group,
                m.member,
                m.last_error.as_deref().unwrap_or("failing")
            )
        })
        .collect();
    match &s.last_reload {
        Some(r) if !r.applied => {
            return Check::warn(
                "service",
                "",
                format!(
                    "{base}; its last reload was refused ({}): it runs the file as it was before",
                    r.message
                ),
                format!(
                    "fix {}, `anycast config check {}`, then `anycast reload`",
                    s.file.display(),
                    s.file.display()
                ),
            );
        }
        _ => {}
    }
    let reload = s
        .last_reload
        .as_ref()
        .map_or("no reload since it started".to_string(), |r| {
            format!("last reload applied at {} (Unix time): {}", r.at, r.message)
        });
    if !down.is_empty() || !failing.is_empty() {
        let mut why = down;
        why.extend(failing);
        return Check::warn(
            "service",
            "",
            format!(
                "{base}, {reload}; members it holds down: {}",
                why.join("; ")
            ),
            "`anycast status` shows each member's reason; fix the member or its check".into(),
        );
    }
    Check::ok("service", "", format!("{base}, {reload}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::socket::LastReload;

    #[test]
    fn forwarding_is_all_forwarding_or_the_interfaces_force_forwarding() {
        assert!(forwards(Some("1"), None));
        assert!(forwards(Some("0"), Some("1")));
        assert!(!forwards(Some("0"), Some("0")));
        assert!(!forwards(None, None));
    }

    #[test]
    fn a_refused_reload_is_a_warning_with_the_file_to_fix() {
        let mut s: ServiceStatus = serde_json::from_value(serde_json::json!({
            "file": "/etc/anycast/anycast.toml", "pin_dir": "/sys/fs/bpf/anycast",
            "pid": 42, "started": 1, "reloads_applied": 0, "reloads_refused": 1,
            "last_reload": null, "members": [],
        }))
        .expect("status");
        let ok = judge_service(&s);
        assert_eq!(ok.status, super::super::Status::Ok, "{ok}");
        assert!(ok.evidence.contains("pid 42"), "{ok}");
        s.last_reload = Some(LastReload {
            at: 5,
            applied: false,
            message: "line 3: bad".into(),
        });
        let refused = judge_service(&s);
        assert_eq!(refused.status, super::super::Status::Warn, "{refused}");
        assert!(
            refused
                .fix
                .as_deref()
                .is_some_and(|f| f.contains("anycast reload"))
        );
    }
}
