//! Lab tests of what the CLI says: the attach mode in use; interfaces and
//! members by name.

use anycast_tests::{
    lab::{ANYCAST, Lab, MemberLab, Service},
    require_root,
};
use anyhow::Result;
use serde_json::Value;

fn json(lab: &Lab, args: &[&str]) -> Result<Value> {
    Ok(serde_json::from_str(&lab.anycast_ok("router", args)?)?)
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn listings_show_the_mode_in_use_and_names_not_numbers() -> Result<()> {
    require_root()?;
    let ml = MemberLab::attached("names", "dns")?;
    let lab = &ml.lab;
    lab.anycast_ok("router", &["attach", "t0", "--mode", "skb"])?;
    ml.add_member("dns", "m1", "r1", 10)?;

    // The mode the kernel runs the program in, and the one asked for.
    let s = lab.stats("router")?;
    let iface = |name: &str| {
        s["interfaces"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i["name"] == name))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(iface("c0")["mode"], "native", "{s}");
    assert_eq!(iface("c0")["requested_mode"], "auto", "{s}");
    assert_eq!(iface("t0")["mode"], "skb", "{s}");
    let shown = lab.anycast_ok("router", &["stats"])?;
    assert!(shown.contains("mode native (requested auto)"), "{shown}");
    assert!(!shown.contains("mode auto"), "{shown}");

    // Members by interface name, flows by member name.
    let members = json(lab, &["member", "list", "dns", "--json"])?;
    assert_eq!(members[0]["iface"], "r1", "{members}");
    let table = lab.anycast_ok("router", &["member", "list"])?;
    assert!(table.contains("l2 r1 "), "{table}");
    assert!(!table.contains(" if"), "{table}");
    let _svc = Service::start(lab.ns("m1")?, ANYCAST, 5370, "m1")?;
    assert_eq!(ml.answerer(5370)?, "m1");
    let flows = json(lab, &["flows", "list", "--json"])?;
    assert_eq!(flows["flows"][0]["member"], "m1", "{flows}");
    let shown = lab.anycast_ok("router", &["flows", "list"])?;
    assert!(shown.contains("member m1 "), "{shown}");
    // Nothing was evicted: no eviction count is shown.
    assert!(!shown.contains("evicted"), "{shown}");
    assert!(!lab.anycast_ok("router", &["stats"])?.contains("evicted"));

    // An unknown group is an error, not an empty list.
    lab.anycast_refused(
        "router",
        &["flows", "list", "--group", "nosuch"],
        "no group `nosuch`",
    )?;
    lab.anycast_refused("router", &["flows", "flush", "nosuch"], "no group `nosuch`")?;
    Ok(())
}
