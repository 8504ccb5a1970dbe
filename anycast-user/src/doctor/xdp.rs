//! The attachments: is the program on each interface recorded as
//! attached, in which mode, could the driver run it natively, and does
//! another XDP program sit where anycast's should (or anywhere here).

use std::collections::HashSet;

use super::{Check, Context};
use crate::{
    dataplane::{Interface, LinkPin},
    netlink::{link::XdpMode, netdev::xdp_features},
};

pub(crate) fn checks(cx: &Context) -> Vec<Check> {
    let mut out = Vec::new();
    let ours: HashSet<u32> = cx
        .attachments
        .iter()
        .filter_map(|(_, l)| match l {
            LinkPin::Attached { prog_id } => Some(*prog_id),
            _ => None,
        })
        .collect();
    let here: Vec<&(Interface, LinkPin)> = cx
        .attachments
        .iter()
        .filter(|(i, _)| cx.wants(&i.name))
        .collect();
    for (i, pin) in &here {
        if i.netns != cx.netns {
            out.push(Check::ok(
                "xdp.attached",
                i.name.clone(),
                format!(
                    "recorded in another network namespace (inode {}): `anycast --netns NAME doctor` checks it there",
                    i.netns
                ),
            ));
            continue;
        }
        out.extend(attachment(cx, i, *pin));
    }
    if cx.attachments.is_empty() && cx.opts.iface.is_none() && cx.opened {
        out.push(Check::fail(
            "xdp.attached",
            "",
            "no interface is attached: nothing is filtered or steered".into(),
            "`anycast attach IFACE --role edge` (or `anycast config apply FILE` with [interface.IFACE])".into(),
        ));
    }
    if let Some(name) = &cx.opts.iface
        && here.is_empty()
        && cx.link_named(name).is_some()
    {
        out.push(Check::warn(
            "xdp.attached",
            name.clone(),
            format!(
                "{name} is not attached: packets arriving on it are neither filtered nor steered"
            ),
            format!(
                "`anycast attach {name} --role edge` (or `--role member` if members are behind it)"
            ),
        ));
    }
    out.extend(others(cx, &ours));
    out
}

/// The checks of one attachment of this namespace.
fn attachment(cx: &Context, i: &Interface, pin: LinkPin) -> Vec<Check> {
    let name = i.name.clone();
    let again = format!(
        "`anycast attach {name} --role {} --source-action {} --mode {}`",
        i.role, i.source_action, i.requested_mode
    );
    let Some(link) = cx.links.get(&i.ifindex).filter(|l| l.name == i.name) else {
        return vec![Check::fail(
            "xdp.attached",
            name.clone(),
            format!(
                "no interface {name} with index {} here: deleted or renamed, so nothing is filtered on it",
                i.ifindex
            ),
            format!(
                "any managing command forgets the attachment; then {again} on the interface that replaced it"
            ),
        )];
    };
    let prog_id = match pin {
        LinkPin::Attached { prog_id } => prog_id,
        LinkPin::Missing => {
            return vec![Check::fail(
                "xdp.attached",
                name.clone(),
                format!(
                    "the pin of its XDP link was removed, which detached the program: {name} is not filtered"
                ),
                format!("attach again: {again}"),
            )];
        }
        LinkPin::Defunct => {
            return vec![Check::fail(
                "xdp.attached",
                name.clone(),
                "its XDP link is defunct (the interface it was made for was deleted)".into(),
                format!("attach again: {again}"),
            )];
        }
        LinkPin::Unreadable(kind) => {
            return vec![Check::warn(
                "xdp.attached",
                name.clone(),
                format!("its pinned XDP link cannot be read ({kind})"),
                "run doctor as root".into(),
            )];
        }
    };
    let Some(mode) = link.xdp.mode_of(prog_id) else {
        return vec![Check::fail(
            "xdp.attached",
            name.clone(),
            format!(
                "its link holds program {prog_id}, but the kernel runs no such program on {name}"
            ),
            format!("`anycast detach {name}`, then {again}"),
        )];
    };
    let mut out = vec![Check::ok(
        "xdp.attached",
        name.clone(),
        format!(
            "role {}, source action {}, {mode} mode (asked: {}), program id {prog_id}",
            i.role, i.source_action, i.requested_mode
        ),
    )];
    out.push(native_possible(
        &name,
        i,
        mode,
        xdp_features(i.ifindex).ok().flatten(),
    ));
    out
}

/// Generic mode where the driver could run the program natively: WARN.
fn native_possible(
    name: &str,
    i: &Interface,
    mode: XdpMode,
    features: Option<crate::netlink::netdev::XdpFeatures>,
) -> Check {
    let subject = name.to_string();
    match (mode, features) {
        (XdpMode::Native | XdpMode::Offload, _) => {
            Check::ok("xdp.mode", subject, format!("runs in {mode} mode"))
        }
        (XdpMode::Generic, Some(f)) if f.native() => Check::warn(
            "xdp.mode",
            subject,
            format!("runs in generic mode, but the driver of {name} runs XDP natively (faster: no skb per packet)"),
            format!(
                "`anycast detach {name}` then `anycast attach {name} --role {} --source-action {} --mode native`",
                i.role, i.source_action
            ),
        ),
        (XdpMode::Generic, Some(_)) => Check::ok(
            "xdp.mode",
            subject,
            "runs in generic mode: the driver has no native XDP".into(),
        ),
        (XdpMode::Generic, None) => Check::ok(
            "xdp.mode",
            subject,
            "runs in generic mode (whether the driver has native XDP is not known: kernel before 6.3)"
                .into(),
        ),
    }
}

/// XDP programs that are not anycast's on the interfaces of this
/// namespace (those of `--iface` only).
fn others(cx: &Context, ours: &HashSet<u32>) -> Vec<Check> {
    let recorded: HashSet<u32> = cx
        .attachments
        .iter()
        .filter(|(i, _)| i.netns == cx.netns)
        .map(|(i, _)| i.ifindex)
        .collect();
    let mut links: Vec<_> = cx.links.values().filter(|l| cx.wants(&l.name)).collect();
    links.sort_by_key(|l| l.ifindex);
    let mut out = Vec::new();
    for l in links {
        for (id, mode) in l.xdp.programs() {
            if ours.contains(&id) {
                continue;
            }
            let name = &l.name;
            let off = match mode {
                XdpMode::Native => "xdpdrv",
                XdpMode::Generic => "xdpgeneric",
                XdpMode::Offload => "xdpoffload",
            };
            if recorded.contains(&l.ifindex) {
                out.push(Check::fail(
                    "xdp.other",
                    name.clone(),
                    format!("program {id} ({mode} mode, not anycast's) holds {name}, where anycast is recorded as attached"),
                    format!("`bpftool prog show id {id}` says whose; `ip link set dev {name} {off} off`, then `anycast detach {name}` and attach it again"),
                ));
            } else {
                out.push(Check::warn(
                    "xdp.other",
                    name.clone(),
                    format!("program {id} ({mode} mode) is not anycast's: packets arriving on {name} are not filtered by anycast"),
                    format!("if {name} should be: `bpftool prog show id {id}` says whose; `ip link set dev {name} {off} off`, then `anycast attach {name}`"),
                ));
            }
        }
    }
    if out.is_empty() {
        let scope = cx.opts.iface.as_deref().map_or(
            "the interfaces of this network namespace".to_string(),
            |i| i.to_string(),
        );
        out.push(Check::ok(
            "xdp.other",
            cx.opts.iface.clone().unwrap_or_default(),
            format!("no other XDP program on {scope}"),
        ));
    }
    out
}
