//! The file front end: what parses, what is refused and how the error reads.

use std::time::Duration;

use super::*;

const EXAMPLE: &str = include_str!("../../../examples/anycast.toml");
const SERVICE_EXAMPLE: &str = include_str!("../../../examples/service.toml");
const FOLLOW_EXAMPLE: &str = include_str!("../../../examples/neighbours-and-routes.toml");

fn err(text: &str) -> String {
    Config::parse(text).expect_err(text).to_string()
}

#[test]
fn the_example_parses() {
    let cfg = Config::parse(EXAMPLE).expect("examples/anycast.toml");
    assert!(cfg.groups.len() >= 2, "{cfg}");
    let dns = &cfg.groups["dns"];
    assert_eq!(dns.options.fallback, Some(Fallback::Drop));
    assert_eq!(dns.members["m1"].metric, 10);
    assert!(matches!(dns.members["m1"].via, MemberVia::L2 { .. }));
    assert!(matches!(dns.members["far"].via, MemberVia::Encap(_)));
    assert_eq!(dns.members["far"].state, MemberState::Draining);
    assert_eq!(
        cfg.groups["web"].addresses[0].to_string(),
        "2001:db8:a::/48"
    );
}

#[test]
fn defaults_and_inline_tables() {
    let cfg = Config::parse(
        "[group.g]\naddresses = [\"2001:db8::1\"]\nmember.a = { encap = \"2001:db8:f::1\" }\n",
    )
    .expect("minimal");
    let g = &cfg.groups["g"];
    assert_eq!(g.options, GroupOptions::default());
    let a = &g.members["a"];
    assert_eq!((a.metric, a.weight, a.state), (100, 1, MemberState::Up));
    assert_eq!(a.line, 3);
    assert_eq!(Config::parse("").expect("empty"), Config::default());
    assert!(
        Config::parse("# nothing\n")
            .expect("comment")
            .groups
            .is_empty()
    );
}

#[test]
fn at_most_64_members_of_a_group_are_up_at_one_metric() {
    let file = |n: usize, metric_of_last: u32, state_of_last: &str| {
        let mut t = String::from("[group.g]\n");
        for i in 0..n {
            let (metric, state) = if i + 1 == n {
                (metric_of_last, state_of_last)
            } else {
                (10, "up")
            };
            t += &format!(
                "member.m{i:03} = {{ encap = \"2001:db8:f::{i:x}\", metric = {metric}, state = \"{state}\" }}\n"
            );
        }
        t
    };
    assert!(Config::parse(&file(64, 10, "up")).is_ok());
    // A 65th up at another metric, or not up, is fine.
    assert!(Config::parse(&file(65, 11, "up")).is_ok());
    assert!(Config::parse(&file(65, 10, "down")).is_ok());
    assert!(Config::parse(&file(65, 10, "drain")).is_ok());
    let e = err(&file(65, 10, "up"));
    assert!(
        e.starts_with(
            "line 66: group.g.member.m064: group `g` would have 65 members up at metric 10; \
             at most 64"
        ),
        "{e}"
    );
}

#[test]
fn errors_quote_at_most_80_characters_of_bad_input_on_one_line() {
    let long = "x".repeat(500);
    for text in [
        format!("[group.dns]\naddresses = [\"{long}\"]\n"),
        format!("[group.dns]\nfallback = \"{long}\"\n"),
        format!("[group.\"{long}\"]\n"),
        format!("[group.dns.member.m1]\niface = \"eth1\"\nmac = \"{long}\"\n"),
        "[group.dns]\naddresses = [\"\\u0007\\n\\u001b[31m\"]\n".to_string(),
    ] {
        let e = err(&text);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(!e.chars().any(char::is_control), "{e:?}");
        assert!(!e.contains(&"x".repeat(81)), "{e}");
    }
}

#[test]
fn the_file_must_fit_the_tables_and_its_interfaces_must_exist() {
    let cfg = Config::parse(
        "[group.a]\naddresses = [\"2001:db8::1\", \"2001:db8:1::/48\"]\n\
         member.m1 = { iface = \"eth9\", mac = \"02:00:00:00:00:01\" }\n\
         [group.b]\nmember.m2 = { encap = \"2001:db8:f::2\" }\n",
    )
    .expect("valid");
    let fits = |c: Capacities| cfg.check_fits(&c).map_err(|e| e.to_string());
    let tight = Capacities {
        groups: 2,
        members: 2,
        addresses: 1,
        prefixes: 1,
        egress_ports: 1,
    };
    assert_eq!(fits(tight), Ok(()));
    for (c, want) in [
        (
            Capacities { groups: 1, ..tight },
            "needs 2 entries of the group table, which holds 1",
        ),
        (
            Capacities {
                members: 1,
                ..tight
            },
            "needs 2 entries of the member table",
        ),
        (
            Capacities {
                addresses: 0,
                ..tight
            },
            "needs 1 entries of the anycast address table",
        ),
        (
            Capacities {
                prefixes: 0,
                ..tight
            },
            "needs 1 entries of the anycast prefix table",
        ),
        (
            Capacities {
                egress_ports: 0,
                ..tight
            },
            "of the egress port table",
        ),
    ] {
        let e = fits(c).expect_err(want);
        assert!(e.contains(want), "{e}");
    }
    let e = cfg
        .check(&mut |v| match v {
            MemberVia::L2 { iface, .. } | MemberVia::Neighbour { iface, .. } => {
                Err(Error::UnknownInterface(iface.clone()))
            }
            MemberVia::Encap(a) => Ok(Via::Encap(*a)),
        })
        .expect_err("eth9 is unknown")
        .to_string();
    assert_eq!(
        e,
        "line 3: group.a.member.m1.iface: unknown interface `eth9`"
    );
}

#[test]
fn errors_name_the_line_and_the_field() {
    for (text, want) in [
        (
            "[group.dns]\nfallback = \"dorp\"\n",
            "line 2, column 12: unknown variant `dorp`",
        ),
        (
            "[group.dns]\nfalback = \"drop\"\n",
            "line 2, column 1: unknown field `falback`",
        ),
        (
            "[group.dns]\naddresses = [\"2001:db8::1/64\"]\n",
            "line 2: group.dns.addresses: invalid anycast address `2001:db8::1/64`",
        ),
        (
            "[group.dns]\naddresses = [\n  \"2001:db8::1\",\n  \"nope\",\n]\n",
            "line 4: group.dns.addresses: invalid anycast address `nope`",
        ),
        ("[group.\"a b\"]\n", "line 1: group.a b: invalid group name"),
        (
            "[group.dns]\ntable-size = 1000\n",
            "line 2: group.dns.table-size: invalid table size 1000",
        ),
        (
            "[group.dns]\nflow-timeout = 0\n",
            "line 2: group.dns.flow-timeout: invalid flow timeout 0",
        ),
        (
            "[group.dns]\nflow-timeout-other = -1\n",
            "line 2, column 22: invalid value: integer `-1`, expected u32",
        ),
        (
            "[group.dns]\ntunnel-source = \"ff02::1\"\n",
            "line 2: group.dns.tunnel-source: invalid tunnel source `ff02::1`: it is in multicast space (ff00::/8)",
        ),
        (
            "[group.dns.member.m1]\niface = \"eth1\"\nmac = \"01:00:00:00:00:01\"\n",
            "line 3: group.dns.member.m1.mac: invalid MAC address",
        ),
        (
            "[group.dns.member.m1]\niface = \"eth1\"\n",
            "line 1: group.dns.member.m1: a member is reached either on-link",
        ),
        (
            "[group.dns.member.m1]\niface = \"eth1\"\nmac = \"02:00:00:00:00:01\"\nencap = \"2001:db8::2\"\n",
            "group.dns.member.m1: a member is reached either",
        ),
        (
            "[group.dns.member.m1]\nencap = \"2001:db8::/64\"\n",
            "line 2: group.dns.member.m1.encap: invalid encap address `2001:db8::/64`: it is a prefix",
        ),
        (
            "[group.dns.member.m1]\nencap = \"2001:db8::2\"\nweight = 0\n",
            "line 3: group.dns.member.m1.weight: invalid weight 0",
        ),
        (
            "[group.dns.member.m1]\nencap = \"2001:db8::2\"\nweight = 300\n",
            "line 3: group.dns.member.m1.weight: invalid weight 300: use 1 to 100",
        ),
        (
            "[group.dns.member.m1]\nencap = \"2001:db8::2\"\nweight = -1\n",
            "line 3: group.dns.member.m1.weight: invalid weight -1: use 1 to 100",
        ),
        (
            "[group.dns]\naddresses = [\"fe80::/10\"]\n",
            "line 2: group.dns.addresses: invalid anycast address `fe80::/10`: it is in link-local space (fe80::/10)",
        ),
        (
            "[group.dns]\naddresses = [\"2001:db8::1\", \"fc00::/6\"]\n",
            "invalid anycast address `fc00::/6`: it overlaps link-local space (fe80::/10)",
        ),
        (
            "[group.dns.member.m1]\nencap = \"fe80::2\"\n",
            "line 2: group.dns.member.m1.encap: invalid encap address `fe80::2`: it is in link-local space (fe80::/10)",
        ),
        (
            "[group.dns]\naddresses = [\"2001:db8:a::/48\"]\n[group.dns.member.m1]\nencap = \"2001:db8:a::2\"\n",
            "line 4: group.dns.member.m1.encap: invalid encap address 2001:db8:a::2: it is an anycast address of group `dns` (2001:db8:a::/48)",
        ),
        (
            "[group.web]\ntunnel-source = \"2001:db8::53\"\n[group.dns]\naddresses = [\"2001:db8::53\"]\n",
            "line 2: group.web.tunnel-source: invalid tunnel source 2001:db8::53: it is an anycast address of group `dns`",
        ),
        (
            "[group.dns.member.m1]\nencap = \"2001:db8::2\"\nstate = \"sleepy\"\n",
            "line 3, column 9: unknown variant `sleepy`",
        ),
        (
            "[group.dns.member.\"m/1\"]\nencap = \"2001:db8::2\"\n",
            "line 1: group.dns.member.m/1: invalid member name",
        ),
        (
            "[group.dns.member.m1]\nencap = \"2001:db8::2\"\n[group.dns.member.m2]\nencap = \"2001:db8::2\"\n",
            "line 3: group.dns.member.m2: another member of the group is already reached through 2001:db8::2",
        ),
        (
            "[group.a]\naddresses = [\"2001:db8::1\"]\n[group.b]\naddresses = [\"2001:db8::1\"]\n",
            "line 4: group.b.addresses: 2001:db8::1 is already an anycast address of group `a`",
        ),
        (
            "[group.a]\naddresses = [\"2001:db8::1\", \"2001:db8::1\"]\n",
            "group.a.addresses: invalid anycast address `2001:db8::1`: listed twice",
        ),
        ("[group.a]\n[group.a]\n", "line 2, column 8: duplicate key"),
        ("[group.a\n", "line 1, column 9:"),
        ("groups = 1\n", "line 1, column 1: unknown field `groups`"),
        (
            "[group.a]\nmember = 3\n",
            "line 2, column 10: invalid type: integer `3`, expected a map",
        ),
    ] {
        let e = err(text);
        assert!(e.contains(want), "{text:?}\n  got:  {e}\n  want: {want}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}

const CHECKED: &str = "[group.dns]
addresses = [\"2001:db8:53::1\"]
[group.dns.member.m1]
iface = \"eth1\"
mac = \"02:00:00:00:00:01\"
addr = \"fd00:1::2\"
metric = 10
[group.dns.member.m1.check]
kind = \"udp\"
port = 53
send = \"ping\"
interval = 1.0
timeout = 0.5
rise = 2
fall = 3
target = \"unicast\"
[group.dns.member.far]
encap = \"fd00:2::2\"
check = { kind = \"dns\", query = \"example.org\", rcode = \"NXDOMAIN\", target = \"unicast\", interval = 2 }
";

#[test]
fn member_checks_parse_with_their_defaults() {
    use crate::health::{Check, Probe, Target};
    let cfg = Config::parse(CHECKED).expect("checked");
    let m1 = &cfg.groups["dns"].members["m1"];
    assert_eq!(m1.addr, Some("fd00:1::2".parse().expect("an address")));
    assert_eq!(m1.unicast(), m1.addr);
    assert_eq!(
        m1.check,
        Some(Check {
            probe: Probe::Udp {
                port: 53,
                send: b"ping".to_vec(),
                expect: None
            },
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            rise: 2,
            fall: 3,
            target: Target::Unicast,
        })
    );
    let far = &cfg.groups["dns"].members["far"];
    assert_eq!(
        far.unicast(),
        Some("fd00:2::2".parse().expect("an address"))
    );
    let c = far.check.as_ref().expect("inline check");
    assert_eq!(
        c.probe,
        Probe::Dns {
            port: 53,
            query: "example.org".into(),
            rcode: 3
        }
    );
    assert_eq!(
        (c.interval, c.timeout),
        (Duration::from_secs(2), Check::DEFAULT_TIMEOUT)
    );
    assert_eq!((c.rise, c.fall), (Check::DEFAULT_RISE, Check::DEFAULT_FALL));
}

#[test]
fn bad_checks_name_their_line_and_field() {
    let with = |from: &str, to: &str| {
        assert!(CHECKED.contains(from), "{from}");
        err(&CHECKED.replacen(from, to, 1))
    };
    for (from, to, want) in [
        (
            "kind = \"udp\"",
            "kind = \"smtp\"",
            "line 9: group.dns.member.m1.check.kind: the kind is one of",
        ),
        (
            "port = 53",
            "port = 0",
            "line 10: group.dns.member.m1.check.port: a port is 1 to 65535",
        ),
        (
            "send = \"ping\"\n",
            "",
            "line 9: group.dns.member.m1.check.send: a udp check needs a payload",
        ),
        (
            "timeout = 0.5",
            "timeout = 1.5",
            "line 13: group.dns.member.m1.check.timeout: the timeout is longer than the interval",
        ),
        (
            "interval = 1.0",
            "interval = 0",
            "line 12: group.dns.member.m1.check.interval: seconds, from 0.01 to 3600",
        ),
        (
            "rise = 2",
            "rise = 0",
            "line 14: group.dns.member.m1.check.rise: a count from 1 to 100",
        ),
        (
            "target = \"unicast\"\n[group.dns.member.far]",
            "target = \"anywhere\"\n[group.dns.member.far]",
            "line 16: group.dns.member.m1.check.target: the target is anycast or unicast",
        ),
        (
            "port = 53",
            "port = 53\nquery = \"x.org\"",
            "line 11: group.dns.member.m1.check.query: a check of kind udp takes no query",
        ),
        (
            "addr = \"fd00:1::2\"\n",
            "",
            "line 3: group.dns.member.m1.addr: a check with target = \"unicast\" of an on-link member needs its addr",
        ),
        (
            "addr = \"fd00:1::2\"",
            "addr = \"fe80::1\"",
            "line 6: group.dns.member.m1.addr: invalid member address `fe80::1`",
        ),
        (
            "addr = \"fd00:1::2\"",
            "addr = \"2001:db8:53::1\"",
            "line 6: group.dns.member.m1.addr: invalid member address 2001:db8:53::1: it is an anycast address of group `dns`",
        ),
        (
            "encap = \"fd00:2::2\"",
            "encap = \"fd00:2::2\"\naddr = \"fd00:2::3\"",
            "line 19: group.dns.member.far.addr: a routed member is reached at its encap address",
        ),
        (
            "query = \"example.org\"",
            "query = \"a..b\"",
            "line 19: group.dns.member.far.check.query: a name of ASCII labels",
        ),
        (
            "rcode = \"NXDOMAIN\"",
            "rcode = \"NOPE\"",
            "line 19: group.dns.member.far.check.rcode: one of NOERROR",
        ),
        (
            "kind = \"udp\"",
            "kind = \"icmp\"",
            "line 10: group.dns.member.m1.check.port: a check of kind icmp takes no port",
        ),
    ] {
        let got = with(from, to);
        assert!(
            got.starts_with(want),
            "{from} -> {to}:\n got  {got}\n want {want}..."
        );
        assert!(!got.contains('\n'), "{got}");
    }
}

#[test]
fn the_service_example_parses() {
    use crate::health::{Probe, Target};
    let cfg = Config::parse(SERVICE_EXAMPLE).expect("examples/service.toml");
    assert_eq!(
        cfg.service.metrics,
        Some("[::1]:9651".parse().expect("an address"))
    );
    assert_eq!(cfg.interfaces.len(), 2);
    let dns = &cfg.groups["dns"];
    let m1 = dns.members["m1"].check.as_ref().expect("m1's check");
    assert_eq!(m1.probe.kind(), "dns");
    assert_eq!(m1.target, Target::Anycast);
    assert_eq!(
        dns.members["far"].unicast(),
        Some("2001:db8:f::2".parse().expect("an address"))
    );
    let web = &cfg.groups["web"];
    assert!(matches!(
        web.members["w2"].check.as_ref().map(|c| &c.probe),
        Some(Probe::Exec { .. })
    ));
    assert_eq!(
        web.members["w1"].check.as_ref().map(|c| c.probe.kind()),
        Some("http")
    );
}

#[test]
fn the_log_level_is_one_of_five_and_absent_by_default() {
    use crate::service::logging::LogLevel;
    assert_eq!(Config::parse("").expect("empty").service.log_level, None);
    for level in LogLevel::ALL {
        let cfg = Config::parse(&format!("[service]\nlog-level = \"{level}\"\n")).expect("a level");
        assert_eq!(cfg.service.log_level, Some(level));
    }
    assert_eq!(
        Config::parse(SERVICE_EXAMPLE)
            .expect("examples/service.toml")
            .service
            .log_level,
        Some(LogLevel::Info)
    );
}

#[test]
fn interfaces_take_the_attach_options_with_their_defaults() {
    use crate::iface::AttachMode;
    use anycast_common::{IfaceRole, SourceAction};
    let cfg = Config::parse(
        "[interface.eth0]\n[interface.eth1]\nrole = \"member\"\nsource-action = \"count\"\nmode = \"skb\"\n",
    )
    .expect("interfaces");
    let eth0 = &cfg.interfaces["eth0"];
    assert_eq!(eth0.line, 1);
    assert_eq!(
        (
            eth0.options.role,
            eth0.options.source_action,
            eth0.options.mode
        ),
        (IfaceRole::Edge, SourceAction::Drop, AttachMode::Auto)
    );
    let eth1 = &cfg.interfaces["eth1"];
    assert_eq!(eth1.line, 2);
    assert_eq!(
        (
            eth1.options.role,
            eth1.options.source_action,
            eth1.options.mode
        ),
        (IfaceRole::Member, SourceAction::Count, AttachMode::Skb)
    );
    for (text, want) in [
        (
            "[interface.eth0]\nrole = \"core\"\n",
            "line 2, column 8: unknown variant `core`",
        ),
        (
            "[interface.eth0]\nmtu = 1500\n",
            "line 2, column 1: unknown field `mtu`",
        ),
        ("[interface.\"a/b\"]\n", "line 1: interface.a/b: "),
        (
            "[service]\nmetrics = \"9651\"\n",
            "line 2: service.metrics: invalid metrics address `9651`",
        ),
        (
            "[service]\nsocket = \"run/x.sock\"\n",
            "line 2: service.socket: invalid socket path `run/x.sock`",
        ),
        (
            "[service]\nmetrics = \"[::1]:9651\"\nlog-level = \"verbose\"\n",
            "line 3: service.log-level: invalid log level `verbose`: give error, warn, info, debug or trace",
        ),
        (
            "[service]\nlog-level = 3\n",
            "line 2, column 13: invalid type: integer `3`, expected a string",
        ),
        (
            "[service]\nlog = 1\n",
            "line 2, column 1: unknown field `log`",
        ),
        (
            "[interface.waytoolonginterfacename]\n",
            "line 1: interface.waytoolonginterfacename: ",
        ),
    ] {
        let got = err(text);
        assert!(
            got.starts_with(want),
            "{text}:\n got  {got}\n want {want}..."
        );
    }
}

#[test]
fn the_default_target_is_the_anycast_address() {
    use crate::health::Target;
    let text = CHECKED.replace("target = \"unicast\"\n", "");
    let cfg = Config::parse(&text).expect("anycast targets");
    let m1 = cfg.groups["dns"].members["m1"]
        .check
        .as_ref()
        .expect("m1's check");
    assert_eq!(m1.target, Target::Anycast);
    // It probes the group's first address: a group of prefixes has none.
    let prefixes = text.replace("\"2001:db8:53::1\"", "\"2001:db8:53::/64\"");
    let got = err(&prefixes);
    assert!(
        got.starts_with(
            "line 3: group.dns.member.m1.check.target: a check with target = \"anycast\" probes \
             the group's first anycast address, and the group has none"
        ),
        "{got}"
    );
}

#[test]
fn the_neighbours_and_routes_example_parses() {
    let cfg = Config::parse(FOLLOW_EXAMPLE).expect("examples/neighbours-and-routes.toml");
    let dns = &cfg.groups["dns"];
    let addr: Ipv6Addr = "fd00:1::2".parse().expect("addr");
    assert_eq!(
        dns.members["m1"].via,
        MemberVia::Neighbour {
            iface: "eth1".into(),
            addr
        }
    );
    assert_eq!(dns.members["m1"].addr, Some(addr));
    assert_eq!(dns.members["m1"].metric_source, MetricSource::Route);
    assert_eq!(
        (dns.members["m2"].metric, dns.members["m2"].metric_source),
        (20, MetricSource::File)
    );
    assert_eq!(dns.members["far"].metric_source, MetricSource::Route);
}

#[test]
fn members_by_address_and_metrics_from_routes() {
    let one = |member: &str| {
        Config::parse(&format!(
            "[group.g]\naddresses = [\"2001:db8::1\"]\n[group.g.member.m]\n{member}"
        ))
    };
    // The mac overrides the neighbour table; addr stays the member's.
    let m = &one("iface = \"eth1\"\naddr = \"fd00:1::2\"\nmac = \"02:00:00:00:00:01\"\n")
        .expect("mac and addr")
        .groups["g"]
        .members["m"];
    assert!(matches!(m.via, MemberVia::L2 { .. }));
    assert_eq!(m.unicast(), "fd00:1::2".parse().ok());
    // Two members by the same address on the same link are one.
    let two = "[group.g]\n[group.g.member.a]\niface = \"eth1\"\naddr = \"fd00:1::2\"\n\
               [group.g.member.b]\niface = \"eth1\"\naddr = \"fd00:1::2\"\n";
    assert!(
        err(two).contains("line 5: group.g.member.b: another member of the group is already reached through eth1 fd00:1::2"),
        "{}",
        err(two)
    );
    // metric = "route" needs an address to route to; metric is a number or "route".
    for (member, want) in [
        (
            "iface = \"eth1\"\nmac = \"02:00:00:00:00:01\"\nmetric = \"route\"\n",
            "line 6: group.g.member.m.metric: invalid metric \"route\" without addr",
        ),
        (
            "encap = \"2001:db8:f::1\"\nmetric = \"nearest\"\n",
            "line 5: group.g.member.m.metric: invalid metric \"nearest\": give a number from 0 to 4294967295, or \"route\"",
        ),
        (
            "encap = \"2001:db8:f::1\"\nmetric = -1\n",
            "line 5: group.g.member.m.metric: invalid metric -1",
        ),
        (
            "encap = \"2001:db8:f::1\"\nmetric = 4294967296\n",
            "line 5: group.g.member.m.metric: invalid metric 4294967296",
        ),
        ("encap = \"2001:db8:f::1\"\nmetric = 1.5\n", "line 5"),
        // An interface alone says nothing of where the member is.
        (
            "iface = \"eth1\"\n",
            "line 3: group.g.member.m: a member is reached either on-link",
        ),
        (
            "iface = \"eth1\"\naddr = \"ff02::1\"\n",
            "line 5: group.g.member.m.addr:",
        ),
    ] {
        let e = one(member).expect_err(member).to_string();
        assert!(e.contains(want), "{member}: {e}");
    }
    let routed = one("encap = \"2001:db8:f::1\"\nmetric = \"route\"\n").expect("routed");
    assert_eq!(
        routed.groups["g"].members["m"].metric_source,
        MetricSource::Route
    );
    let numbered = one("encap = \"2001:db8:f::1\"\nmetric = 0\n").expect("0");
    assert_eq!(numbered.groups["g"].members["m"].metric, 0);
}

#[test]
fn metrics_from_routes_are_not_counted_in_ties() {
    // 65 members up at metric = "route": their metrics are not known yet.
    let mut text = String::from("[group.g]\n");
    for i in 0..65 {
        text.push_str(&format!(
            "member.m{i:03} = {{ encap = \"2001:db8:f::{i:x}\", metric = \"route\" }}\n"
        ));
    }
    Config::parse(&text).expect("no tie known");
}

#[test]
fn the_state_table_gives_the_sizes_the_state_is_created_with() {
    use crate::dataplane::{Asked, StateSizes};
    let text = "[state]\nmax-addresses = 1000\nflow-table-size = 65536\nmax-prefixes = 500\n\n\
                [group.a]\naddresses = [\"2001:db8::1\", \"2001:db8::2\"]\n";
    let cfg = Config::parse(text).expect("valid");
    assert_eq!(
        cfg.state,
        StateConfig {
            max_addresses: Some(1000),
            flow_table_size: Some(65536),
            max_prefixes: Some(500),
        }
    );
    assert_eq!(
        Config::parse("").expect("empty").state,
        StateConfig::default()
    );
    for (text, want) in [
        (
            "\n[state]\nmax-addresses = 0\n",
            "line 3: state.max-addresses: the size must be 1 to 16777216, not 0",
        ),
        (
            "[state]\nflow-table-size = -1\n",
            "line 2: state.flow-table-size: the size must be 1 to 4294967295, not -1",
        ),
        ("[state]\nmax-addresses = 16777217\n", "not 16777217"),
        (
            "[state]\nmax-prefixes = 16777217\n",
            "line 2: state.max-prefixes: the size must be 1 to 16777216, not 16777217",
        ),
        (
            "[state]\nmax-adresses = 10\n",
            "unknown field `max-adresses`",
        ),
    ] {
        let e = err(text);
        assert!(e.contains(want), "{e}");
    }
    // The file's table must hold its addresses: 1 is too few for two.
    let small = Config::parse(&text.replace("1000", "1")).expect("valid");
    let e = small
        .check(&mut |_| unreachable!("no member"))
        .expect_err("two addresses in a table of one")
        .to_string();
    assert!(
        e.contains("needs 2 entries of the anycast address table"),
        "{e}"
    );

    // The command line's sizes first; the file's fill in; a size both
    // give differently is refused.
    let cli = StateSizes::from_options(None, Some(65536), None);
    let both = cli.clone().with_file(&cfg.state, "f.toml").expect("agree");
    assert_eq!(
        both.addresses,
        Some(Asked {
            n: 1000,
            by: "state.max-addresses in f.toml".into()
        })
    );
    assert_eq!(both.flows.map(|a| a.by), Some("--flow-table-size".into()));
    let e = StateSizes::from_options(Some(2000), None, None)
        .with_file(&cfg.state, "f.toml")
        .expect_err("2000 and 1000")
        .to_string();
    assert_eq!(
        e,
        "--max-addresses 2000 and state.max-addresses = 1000 in f.toml differ: give one"
    );
    // Ranges, for callers of the library.
    assert!(
        StateSizes::from_options(Some(1 << 24), Some(1), Some(1 << 24))
            .validate()
            .is_ok()
    );
    let e = StateSizes::from_options(Some((1 << 24) + 1), None, None)
        .validate()
        .expect_err("too many")
        .to_string();
    assert_eq!(e, "--max-addresses must be 1 to 16777216, not 16777217");
    assert!(
        StateSizes::from_options(None, Some(0), None)
            .validate()
            .is_err()
    );
    let e = StateSizes::from_options(None, None, Some(0))
        .validate()
        .expect_err("no prefixes")
        .to_string();
    assert_eq!(e, "--max-prefixes must be 1 to 16777216, not 0");
    let e = StateSizes::from_options(None, None, Some(700))
        .with_file(&cfg.state, "f.toml")
        .expect_err("700 and 500")
        .to_string();
    assert_eq!(
        e,
        "--max-prefixes 700 and state.max-prefixes = 500 in f.toml differ: give one"
    );
}
