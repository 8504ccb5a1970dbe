//! `anycast doctor`: why the data plane does not forward, asked of the
//! system as it is. Each check gives a status, the evidence it saw and,
//! unless all is well, the fix (what to run or change). Nothing is changed:
//! the pinned state is opened without the refresh every other command
//! makes ([`Dataplane::open_unchanged`]), and the consistency check is the
//! repair's own, run as `repair --check` runs it.
//!
//! One submodule per area: [`kernel`] (what the program needs of the
//! kernel), [`xdp`] (attachments, their mode, other programs), [`members`]
//! (each member's way out), [`scopes`] (scoped addresses reached from
//! somewhere), [`system`] (forwarding, the service).

mod kernel;
mod members;
mod scopes;
mod system;
mod xdp;

use std::{collections::HashMap, fmt};

use serde::Serialize;

use crate::{
    Dataplane, Error, PinDir,
    dataplane::{Interface, LinkPin},
    group::GroupEntry,
    members::MemberEntry,
    netlink::{link::Link, neigh::Neighbour},
    state::AddressEntry,
};

/// The version of `doctor --json`'s format.
pub const JSON_VERSION: u32 = 1;

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// As it should be.
    Ok,
    /// Works, but not as well as it could, or doctor could not tell.
    Warn,
    /// Packets are lost or misdirected because of it.
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        })
    }
}

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked, e.g. `member.link` (stable, for scripts).
    pub name: &'static str,
    /// What it was checked on: an interface, `group/member`, or empty.
    pub subject: String,
    /// How it came out.
    pub status: Status,
    /// What was seen.
    pub evidence: String,
    /// What to run or change; none when all is well.
    pub fix: Option<String>,
}

impl Check {
    fn new(
        name: &'static str,
        subject: impl Into<String>,
        status: Status,
        evidence: String,
    ) -> Self {
        Check {
            name,
            subject: subject.into(),
            status,
            evidence,
            fix: None,
        }
    }

    fn ok(name: &'static str, subject: impl Into<String>, evidence: String) -> Self {
        Self::new(name, subject, Status::Ok, evidence)
    }

    fn warn(name: &'static str, subject: impl Into<String>, evidence: String, fix: String) -> Self {
        Self::new(name, subject, Status::Warn, evidence).with_fix(fix)
    }

    fn fail(name: &'static str, subject: impl Into<String>, evidence: String, fix: String) -> Self {
        Self::new(name, subject, Status::Fail, evidence).with_fix(fix)
    }

    fn with_fix(mut self, fix: String) -> Self {
        self.fix = Some(fix);
        self
    }
}

impl fmt::Display for Check {
    /// One line: `FAIL member.link dns/m1: evidence; fix: ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<4} {}", self.status, self.name)?;
        if !self.subject.is_empty() {
            write!(f, " {}", self.subject)?;
        }
        write!(f, ": {}", self.evidence)?;
        if let Some(fix) = &self.fix {
            write!(f, "; fix: {fix}")?;
        }
        Ok(())
    }
}

/// Every check, and the worst status among them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// [`JSON_VERSION`].
    pub version: u32,
    /// The worst status of any check.
    pub status: Status,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
}

impl Report {
    fn of(checks: Vec<Check>) -> Self {
        Report {
            version: JSON_VERSION,
            status: checks.iter().map(|c| c.status).max().unwrap_or(Status::Ok),
            checks,
        }
    }

    /// How many checks came out `status`.
    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// The summary line: `3 checks: 2 OK, 1 WARN, 0 FAIL`.
    pub fn summary(&self) -> String {
        format!(
            "{} checks: {} OK, {} WARN, {} FAIL",
            self.checks.len(),
            self.count(Status::Ok),
            self.count(Status::Warn),
            self.count(Status::Fail)
        )
    }
}

/// What doctor looks at.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Only the checks of this interface (attachments, members leaving by
    /// it), besides those of the whole system.
    pub iface: Option<String>,
}

/// What the checks share, read once: the network namespace's interfaces
/// and neighbours, and the pinned state when there is one.
pub(crate) struct Context {
    pub(crate) opts: Options,
    pub(crate) pin: PinDir,
    /// The current network namespace (inode).
    pub(crate) netns: u64,
    /// Interfaces of this namespace by index.
    pub(crate) links: HashMap<u32, Link>,
    pub(crate) neighbours: Vec<Neighbour>,
    pub(crate) attachments: Vec<(Interface, LinkPin)>,
    pub(crate) members: Vec<MemberEntry>,
    pub(crate) groups: Vec<GroupEntry>,
    pub(crate) addresses: Vec<AddressEntry>,
    /// Whether the pinned state was opened.
    pub(crate) opened: bool,
    /// The running kernel's version.
    pub(crate) kernel: kernel::Version,
}

impl Context {
    /// The interface called `name` here.
    pub(crate) fn link_named(&self, name: &str) -> Option<&Link> {
        self.links.values().find(|l| l.name == name)
    }

    /// Whether checks of interface `name` are wanted (`--iface`).
    pub(crate) fn wants(&self, name: &str) -> bool {
        self.opts.iface.as_deref().is_none_or(|i| i == name)
    }
}

/// Runs every check on the data plane pinned at `pin`, as seen from the
/// current network namespace.
pub fn run(pin: &PinDir, opts: &Options) -> Report {
    let mut checks = Vec::new();
    let kernel = kernel::Version::running();
    let mut cx = Context {
        opts: opts.clone(),
        pin: pin.clone(),
        netns: crate::netns::current().map_or(0, |n| n.ino),
        links: HashMap::new(),
        neighbours: Vec::new(),
        attachments: Vec::new(),
        members: Vec::new(),
        groups: Vec::new(),
        addresses: Vec::new(),
        opened: false,
        kernel,
    };
    match crate::netlink::link::links() {
        Ok(l) => cx.links = l.into_iter().map(|l| (l.ifindex, l)).collect(),
        Err(e) => checks.push(Check::fail(
            "system.links",
            "",
            format!("reading the interfaces: {e}"),
            "run doctor as root".into(),
        )),
    }
    if let Some(i) = &opts.iface
        && cx.link_named(i).is_none()
    {
        checks.push(Check::fail(
            "system.links",
            i.clone(),
            format!("no interface {i} in this network namespace"),
            "name an interface of `ip link`, or give --netns".into(),
        ));
    }
    // What cannot be read is said, not taken for empty: an unread member
    // list would pass every member check.
    let mut unread = |what: &str, e: &dyn fmt::Display| {
        checks.push(Check::fail(
            "system.read",
            "",
            format!("reading {what}: {e}; the checks that need it see nothing"),
            "run doctor as root, on the pin dir and network namespace of the data plane".into(),
        ));
    };
    cx.neighbours = crate::netlink::neigh::dump().unwrap_or_else(|e| {
        unread("the neighbour table", &e);
        Vec::new()
    });
    let mut pinned = Vec::new();
    let dp = open(pin, &mut pinned);
    if let Some(dp) = &dp {
        cx.opened = true;
        cx.attachments = dp.attachment_links().unwrap_or_else(|e| {
            unread("the attachments", &e);
            Vec::new()
        });
        cx.members = dp.members(None).unwrap_or_else(|e| {
            unread("the members", &e);
            Vec::new()
        });
        cx.groups = dp.groups().unwrap_or_else(|e| {
            unread("the groups", &e);
            Vec::new()
        });
        cx.addresses = dp.addresses().unwrap_or_else(|e| {
            unread("the addresses", &e);
            Vec::new()
        });
    }
    checks.extend(kernel::checks(&cx));
    checks.extend(pinned);
    if let Some(mut dp) = dp {
        checks.push(state_consistent(&mut dp));
    }
    checks.extend(xdp::checks(&cx));
    checks.extend(members::checks(&cx));
    checks.extend(scopes::checks(&cx));
    checks.extend(system::checks(&cx));
    Report::of(checks)
}

/// Opens the pinned state without changing it; a check says why not.
fn open(pin: &PinDir, checks: &mut Vec<Check>) -> Option<Dataplane> {
    let path = pin.path().display();
    match Dataplane::open_unchanged(pin.clone()) {
        Ok(dp) => {
            checks.push(Check::ok(
                "state.pinned",
                "",
                format!("state pinned at {path}"),
            ));
            Some(dp)
        }
        Err(Error::NotConfigured(_)) => {
            checks.push(Check::fail(
                "state.pinned",
                "",
                format!("nothing is pinned at {path}: no data plane"),
                "`anycast config apply FILE` or `anycast attach IFACE` (or give the --pin-dir in use)"
                    .into(),
            ));
            None
        }
        Err(e) => {
            checks.push(Check::fail(
                "state.pinned",
                "",
                format!("the state at {path} cannot be opened: {e}"),
                "see the error; `anycast detach --purge` starts afresh".into(),
            ));
            None
        }
    }
}

/// The repair's consistency check, as `anycast repair --check` runs it.
fn state_consistent(dp: &mut Dataplane) -> Check {
    match dp.repair(false) {
        Ok(r) if r.is_clean() && !r.interrupted => Check::ok("state.consistent", "", r.to_string()),
        Ok(r) if r.is_clean() => Check::warn(
            "state.consistent",
            "",
            "a command was killed half-way (the journal is set); nothing derived is wrong".into(),
            "`anycast repair` (or any managing command) clears it".into(),
        ),
        Ok(r) => Check::fail(
            "state.consistent",
            "",
            format!("inconsistent: {r}"),
            "`anycast repair` rebuilds it".into(),
        ),
        Err(e) => Check::fail(
            "state.consistent",
            "",
            format!("the check failed: {e}"),
            "`anycast repair --check` says more".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_as_bad_as_its_worst_check_and_lines_carry_the_fix() {
        let ok = Check::ok("kernel.btf", "", "present".into());
        let warn = Check::warn("xdp.native", "c0", "generic".into(), "attach native".into());
        let fail = Check::fail(
            "member.link",
            "dns/m1",
            "r1 down".into(),
            "ip link set r1 up".into(),
        );
        assert_eq!(Report::of(vec![]).status, Status::Ok);
        assert_eq!(
            Report::of(vec![ok.clone(), warn.clone()]).status,
            Status::Warn
        );
        let r = Report::of(vec![ok.clone(), fail.clone(), warn]);
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.summary(), "3 checks: 1 OK, 1 WARN, 1 FAIL");
        assert_eq!(ok.to_string(), "OK   kernel.btf: present");
        assert_eq!(
            fail.to_string(),
            "FAIL member.link dns/m1: r1 down; fix: ip link set r1 up"
        );
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["version"], 1);
        assert_eq!(json["status"], "fail");
        assert_eq!(json["checks"][1]["status"], "fail");
        assert_eq!(json["checks"][1]["name"], "member.link");
        assert_eq!(json["checks"][0]["fix"], serde_json::Value::Null);
    }
}
