//! Lab tests of the configuration file: `anycast config apply` on a real
//! router, a changed file applied on top (the diff printed and in force),
//! and bad files that change nothing.

use anycast_tests::{
    lab::{ANYCAST, ClientRouterServer, M3, MemberLab, Service},
    require_root,
};
use anyhow::{Context as _, Result};
use serde_json::Value;

/// The whole configuration state as the CLI shows it: addresses, members
/// (with counters) and group settings.
fn snapshot(ml: &MemberLab) -> Result<(Value, Value, Value)> {
    let lab = &ml.lab;
    let json = |args: &[&str]| -> Result<Value> {
        Ok(serde_json::from_str(&lab.anycast_ok("router", args)?)?)
    };
    Ok((
        json(&["addr", "list", "--json"])?,
        json(&["member", "list", "--json"])?,
        lab.stats("router")?["groups"].clone(),
    ))
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|e| format!("{}/{}", e["group"].as_str().unwrap_or(""), e[key]))
                .map(|s| s.replace('"', ""))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn apply_makes_the_state_match_the_file_and_bad_files_change_nothing() -> Result<()> {
    require_root()?;
    let ml = MemberLab::new("config")?;
    let lab = &ml.lab;
    lab.anycast_ok("router", &["attach", "c0", "--role", "edge"])?;
    lab.anycast_ok("router", &["attach", "r1", "--role", "member"])?;
    lab.anycast_ok("router", &["attach", "r2", "--role", "member"])?;
    let (mac1, mac2) = (ml.member_mac("m1")?, ml.member_mac("m2")?);
    let v1 = format!(
        r#"
[group.dns]
addresses = ["{ANYCAST}", "2001:db8:ac:1::/64"]
fallback = "drop"

[group.dns.member.m1]
iface = "r1"
mac = "{mac1}"
metric = 10

[group.dns.member.m2]
iface = "r2"
mac = "{mac2}"
metric = 20

[group.dns.member.m3]
encap = "{M3}"
metric = 30

[group.web]
addresses = ["2001:db8:ad::1"]
affinity = "none"
table-size = 251
member.w1 = {{ encap = "{M3}", weight = 3 }}
"#
    );
    let f1 = ml.lab.file("v1", &v1)?;
    let out = lab.anycast_ok("router", &["config", "check", f1.arg()])?;
    assert!(
        out.contains("valid; 2 groups, 3 addresses and prefixes, 4 members"),
        "{out}"
    );
    let out = lab.anycast_ok("router", &["config", "apply", f1.arg()])?;
    assert!(
        out.contains(": 9 added, 0 changed, 0 replaced, 0 removed"),
        "{out}"
    );
    assert!(out.contains("added member dns/m1: r1 "), "{out}");

    let (addrs, members, groups) = snapshot(&ml)?;
    assert_eq!(
        names(&addrs, "prefix"),
        [
            format!("dns/{ANYCAST}"),
            "dns/2001:db8:ac:1::/64".into(),
            "web/2001:db8:ad::1".into()
        ]
    );
    assert_eq!(
        names(&members, "name"),
        ["dns/m1", "dns/m2", "dns/m3", "web/w1"]
    );
    assert_eq!(members[0]["mac"], mac1.as_str());
    assert_eq!(members[0]["nearest"], true);
    assert_eq!(members[2]["addr"], M3.to_string());
    assert_eq!(members[3]["weight"], 3);
    assert_eq!(groups["dns"]["fallback"], "drop");
    assert_eq!(groups["web"]["affinity"], "none");
    assert_eq!(groups["web"]["table_size"], 251);
    assert_eq!(groups["dns"]["table_size"], 1021);

    // Applied again: nothing to do.
    let out = lab.anycast_ok("router", &["config", "apply", f1.arg()])?;
    assert!(
        out.contains(": 0 added, 0 changed, 0 replaced, 0 removed"),
        "{out}"
    );

    // In force: the nearest member answers.
    let _svc: Vec<Service> = ["m1", "m2", "m3"]
        .iter()
        .map(|m| Service::start(lab.ns(m)?, ANYCAST, 5400, m))
        .collect::<Result<_>>()?;
    assert_eq!(ml.answerer(5400)?, "m1");

    // Changed: m1 farther, m3 and a prefix gone, group web gone.
    let v2 = v1
        .replace("metric = 10", "metric = 50")
        .replace(", \"2001:db8:ac:1::/64\"", "")
        .replace(
            &format!("[group.dns.member.m3]\nencap = \"{M3}\"\nmetric = 30\n"),
            "",
        );
    let v2 = v2[..v2.find("[group.web]").context("web")?].to_string();
    let f2 = ml.lab.file("v2", &v2)?;
    let before = snapshot(&ml)?;
    let dry = lab.anycast_ok("router", &["config", "apply", "--dry-run", f2.arg()])?;
    assert!(dry.contains("would have removed group web"), "{dry}");
    assert!(dry.contains("(dry run: nothing changed)"), "{dry}");
    assert_eq!(snapshot(&ml)?, before, "the dry run changed nothing");
    // Two of the three addresses go: only with --force.
    let (out, err) = lab.anycast_fails("router", &["config", "apply", f2.arg()])?;
    assert!(
        err.contains(
            "would remove 2 of the 3 anycast addresses and prefixes (more than half); give --force"
        ),
        "{err}"
    );
    assert!(
        out.contains("would have removed address 2001:db8:ac:1::/64 from group dns")
            && out.contains("would have removed group web"),
        "{out}"
    );
    assert_eq!(snapshot(&ml)?, before, "the refusal changed nothing");
    let out = lab.anycast_ok("router", &["config", "apply", "--force", f2.arg()])?;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..lines.len() - 1],
        [
            "changed member dns/m1: metric 10 -> 50",
            "removed group web",
            "removed member dns/m3",
            "removed member web/w1",
            "removed address 2001:db8:ac:1::/64 from group dns",
            "removed address 2001:db8:ad::1 from group web",
        ],
        "{out}"
    );
    assert!(
        out.contains(": 0 added, 1 changed, 0 replaced, 5 removed"),
        "{out}"
    );
    let (addrs, members, groups) = snapshot(&ml)?;
    assert_eq!(names(&addrs, "prefix"), [format!("dns/{ANYCAST}")]);
    assert_eq!(names(&members, "name"), ["dns/m2", "dns/m1"]);
    assert_eq!(members[0]["nearest"], true);
    assert_eq!(members[1]["metric"], 50);
    assert!(groups.get("web").is_none(), "{groups}");
    assert_eq!(ml.answerer(5400)?, "m2");

    // Bad files: refused with the line and field, and nothing changes.
    let before = snapshot(&ml)?;
    let bad = [
        ("syntax", "[group.dns\n".to_string(), "line 1, column 11:"),
        (
            "value",
            v2.replace("metric = 50", "metric = 50\nweight = 0"),
            "group.dns.member.m1.weight: invalid weight 0",
        ),
        (
            "iface",
            v2.replace("iface = \"r2\"", "iface = \"nosuch0\""),
            "group.dns.member.m2.iface: unknown interface `nosuch0`",
        ),
        (
            "twice",
            format!("{v2}\n[group.other]\naddresses = [\"{ANYCAST}\"]\n"),
            "group.other.addresses: 2001:db8:ac::53 is already an anycast address of group `dns`",
        ),
        (
            "unknown",
            v2.replace("fallback", "fallbak"),
            "unknown field `fallbak`",
        ),
    ];
    for (name, text, needle) in &bad {
        let f = ml.lab.file(name, text)?;
        lab.anycast_refused("router", &["config", "apply", f.arg()], needle)?;
        // `check` applies the same rules (interfaces too, in --netns).
        lab.anycast_refused("router", &["config", "check", f.arg()], needle)?;
        assert_eq!(snapshot(&ml)?, before, "{name} changed the state");
    }
    assert_eq!(ml.answerer(5400)?, "m2");
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn a_file_that_removes_everything_or_most_addresses_needs_a_flag() -> Result<()> {
    require_root()?;
    let ml = MemberLab::new("cfgguard")?;
    let lab = &ml.lab;
    lab.anycast_ok("router", &["attach", "c0", "--role", "edge"])?;
    let addrs = [
        "2001:db8:ac::1",
        "2001:db8:ac::2",
        "2001:db8:ac::3",
        "2001:db8:ac::4",
    ];
    let file = |list: &[&str]| {
        let quoted: Vec<String> = list.iter().map(|a| format!("\"{a}\"")).collect();
        format!(
            "[group.dns]\naddresses = [{}]\nmember.far = {{ encap = \"{M3}\" }}\n",
            quoted.join(", ")
        )
    };
    let all = ml.lab.file("all", &file(&addrs))?;
    lab.anycast_ok("router", &["config", "apply", all.arg()])?;
    let before = snapshot(&ml)?;

    // No group at all: refused, saying what would go; a dry run is not.
    let empty = ml.lab.file("empty", "# nothing\n")?;
    let (stdout, stderr) = lab.anycast_fails("router", &["config", "apply", empty.arg()])?;
    assert!(
        stderr.contains(
            "the file names no group: applying it would remove every group (1), member (1) \
             and anycast address (4); give --allow-empty"
        ),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    for line in [
        "would have removed group dns",
        "would have removed member dns/far",
        "would have removed address 2001:db8:ac::4 from group dns",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    assert_eq!(snapshot(&ml)?, before, "the refusal changed something");
    let dry = lab.anycast_ok("router", &["config", "apply", "--dry-run", empty.arg()])?;
    assert!(dry.contains("would have removed group dns"), "{dry}");
    assert_eq!(snapshot(&ml)?, before, "the dry run changed something");

    // Half of the addresses may go; more than half needs --force.
    let half = ml.lab.file("half", &file(&addrs[..2]))?;
    lab.anycast_ok("router", &["config", "apply", half.arg()])?;
    let none = ml.lab.file("none", &file(&[]))?;
    let after_half = snapshot(&ml)?;
    lab.anycast_refused(
        "router",
        &["config", "apply", none.arg()],
        "would remove 2 of the 2 anycast addresses and prefixes (more than half); give --force",
    )?;
    assert_eq!(snapshot(&ml)?, after_half);
    lab.anycast_ok("router", &["config", "apply", "--force", none.arg()])?;

    // --allow-empty removes everything.
    lab.anycast_ok("router", &["config", "apply", "--allow-empty", empty.arg()])?;
    let (addrs_now, members, groups) = snapshot(&ml)?;
    assert_eq!(
        (addrs_now, members),
        (Value::Array(vec![]), Value::Array(vec![]))
    );
    assert_eq!(groups, serde_json::json!({}));

    // A group the file names stays, even with no address and no member:
    // it carries settings.
    let bare = ml.lab.file("bare", "[group.bare]\nfallback = \"drop\"\n")?;
    lab.anycast_ok("router", &["config", "apply", bare.arg()])?;
    let out = lab.anycast_ok("router", &["config", "apply", bare.arg()])?;
    assert!(
        out.contains(": 0 added, 0 changed, 0 replaced, 0 removed"),
        "{out}"
    );
    let groups: Value =
        serde_json::from_str(&lab.anycast_ok("router", &["group", "list", "--json"])?)?;
    assert_eq!(groups[0]["name"], "bare", "{groups}");
    assert_eq!(groups[0]["fallback"], "drop", "{groups}");
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces): run with `cargo xtask test`"]
fn check_applies_every_rule_that_needs_no_pinned_state() -> Result<()> {
    require_root()?;
    let crs = ClientRouterServer::new("cfgcheck")?;
    let lab = &crs.lab;
    let groups: String = (0..1024).map(|g| format!("[group.g{g}]\n")).collect();
    let members: String =
        std::iter::once("[group.big]\n".to_string())
            .chain((0..65_536u32).map(|n| {
                format!("member.m{n} = {{ encap = \"2001:db8:f::{n:x}\", metric = {n} }}\n",)
            }))
            .collect();
    let tied: String = std::iter::once("[group.tied]\n".to_string())
        .chain((0..65u32).map(|n| format!("member.m{n} = {{ encap = \"2001:db8:f::{n:x}\" }}\n")))
        .collect();
    for (name, text, needle) in [
        (
            "groups",
            groups,
            "the file needs 1024 entries of the group table, which holds 1023",
        ),
        (
            "members",
            members,
            "the file needs 65536 entries of the member table, which holds 65535",
        ),
        (
            "tied",
            tied,
            "line 66: group.tied.member.m64: group `tied` would have 65 members up at metric 100",
        ),
        (
            "iface",
            "[group.a.member.m1]\niface = \"nosuch0\"\nmac = \"02:00:00:00:00:01\"\n".into(),
            "line 1: group.a.member.m1.iface: unknown interface `nosuch0`",
        ),
    ] {
        let f = lab.file(name, &text)?;
        lab.anycast_refused("router", &["config", "check", f.arg()], needle)?;
    }
    // The router's own interface is found (in --netns), and what is left
    // for `apply` is said.
    let ok = lab.file(
        "ok",
        "[group.a.member.m1]\niface = \"c0\"\nmac = \"02:00:00:00:00:01\"\n",
    )?;
    let out = lab.anycast_ok("router", &["config", "check", ok.arg()])?;
    assert!(
        out.contains("valid; 1 groups, 0 addresses and prefixes, 1 members"),
        "{out}"
    );
    assert!(
        out.contains("not checked without the pinned state"),
        "{out}"
    );
    assert!(
        out.contains("--allow-empty") && out.contains("--force"),
        "{out}"
    );
    Ok(())
}
