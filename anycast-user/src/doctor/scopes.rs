//! Scoped anycast addresses (`addr add --scope`, a subnet's addresses):
//! a scope none of whose interfaces is attached here makes every attached
//! interface drop its addresses' packets, and a scope may name an
//! interface that is gone.

use std::collections::BTreeMap;

use super::{Check, Context};

/// One check per scope that addresses carry.
pub(crate) fn checks(cx: &Context) -> Vec<Check> {
    let mut by_scope: BTreeMap<&[String], Vec<String>> = BTreeMap::new();
    for a in cx.addresses.iter().filter(|a| !a.scope.is_empty()) {
        by_scope
            .entry(a.scope.as_slice())
            .or_default()
            .push(a.prefix.to_string());
    }
    let attached: Vec<&str> = cx
        .attachments
        .iter()
        .filter(|(i, _)| i.netns == cx.netns)
        .map(|(i, _)| i.name.as_str())
        .collect();
    let mut out = Vec::new();
    for (scope, addresses) in by_scope {
        let subject = scope.join(",");
        let what = match addresses.as_slice() {
            [one] => one.clone(),
            [first, rest @ ..] => format!("{} addresses ({first}, ...)", rest.len() + 1),
            [] => continue,
        };
        let missing: Vec<&str> = scope
            .iter()
            .map(String::as_str)
            .filter(|n| cx.link_named(n).is_none())
            .collect();
        let in_scope: Vec<&str> = scope
            .iter()
            .map(String::as_str)
            .filter(|n| attached.contains(n))
            .collect();
        out.push(if in_scope.is_empty() {
            Check::warn(
                "scope.attached",
                subject.clone(),
                format!(
                    "{what} reached only from {}, none of them attached: every attached \
                     interface drops packets for them (out_of_scope_drops)",
                    scope.join(", ")
                ),
                format!(
                    "`anycast attach {}`, or give them another scope (`addr add ... --scope IF`, \
                     `subnet add ... --scope IF`)",
                    scope[0]
                ),
            )
        } else {
            Check::ok(
                "scope.attached",
                subject.clone(),
                format!("{what} reached from {} (attached)", in_scope.join(", ")),
            )
        });
        if !missing.is_empty() {
            out.push(Check::warn(
                "scope.interface",
                subject,
                format!(
                    "{} in the scope of {what} is no interface here",
                    missing.join(", ")
                ),
                "create it, or give the addresses a scope of existing interfaces".into(),
            ));
        }
    }
    out
}
