//! Lab tests of the addresses the CLI accepts: anycast addresses and
//! prefixes only from global unicast and unique-local space, tunnel ends
//! unicast and never anycast, in every way an address comes in (`addr add`,
//! `addr load`, the configuration file, `member add --encap`, `group set
//! --tunnel-source`, and an anycast prefix over an existing tunnel end).
//! Every refusal is one line and changes nothing; the router keeps
//! filtering.

use std::net::Ipv6Addr;

use anycast_tests::{
    lab::{ClientRouterServer, Lab},
    require_root,
};
use anyhow::Result;

const ANY_DNS: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xac, 0, 0, 0, 0, 0x53);
const N: usize = 10;

/// Everything the CLI shows of the configuration.
fn snapshot(lab: &Lab) -> Result<[String; 3]> {
    Ok([
        lab.anycast_ok("router", &["addr", "list", "--json"])?,
        lab.anycast_ok("router", &["member", "list", "--json"])?,
        lab.anycast_ok("router", &["group", "list", "--json"])?,
    ])
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn dangerous_addresses_are_refused_wherever_they_come_in() -> Result<()> {
    require_root()?;
    let crs = ClientRouterServer::new("dangerous")?;
    crs.client_claims(ANY_DNS)?;
    let lab = &crs.lab;
    lab.anycast_ok("router", &["attach", "c0"])?;
    lab.anycast_ok(
        "router",
        &["addr", "add", &ANY_DNS.to_string(), "--group", "dns"],
    )?;
    lab.anycast_ok(
        "router",
        &["member", "add", "dns", "far", "--encap", "2001:db8:f::2"],
    )?;
    lab.anycast_ok(
        "router",
        &["group", "set", "dns", "--tunnel-source", "2001:db8:e::1"],
    )?;
    // Documentation space stays allowed: the examples use it.
    lab.anycast_ok(
        "router",
        &["addr", "add", "2001:db8:100::/48", "--group", "web"],
    )?;
    lab.anycast_ok("router", &["addr", "add", "fd00:53::1", "--group", "web"])?;
    let before = snapshot(lab)?;

    let load = lab.file("load.txt", "2001:db8:200::1\n# ok so far\nff02::1:2\n")?;
    let over_tunnel = lab.file("over.txt", "2001:db8:201::1\n2001:db8:f::/64\n")?;
    let cases: &[(&[&str], &str)] = &[
        (
            &["addr", "add", "fe80::/10", "--group", "x"],
            "invalid anycast address `fe80::/10`: it is in link-local space (fe80::/10)",
        ),
        (
            &["addr", "add", "ff02::/16", "--group", "x"],
            "it is in multicast space (ff00::/8)",
        ),
        (
            &["addr", "add", "::", "--group", "x"],
            "it is the unspecified address (::)",
        ),
        (
            &["addr", "add", "::1", "--group", "x"],
            "it is the loopback address (::1)",
        ),
        (
            &["addr", "add", "::ffff:192.0.2.1", "--group", "x"],
            "it is in IPv4-mapped space",
        ),
        (
            &["addr", "add", "::192.0.2.0/120", "--group", "x"],
            "it is in IPv4-compatible space (::/96)",
        ),
        (
            &["addr", "add", "fec0::/10", "--group", "x"],
            "site-local space",
        ),
        (
            &["addr", "add", "::/1", "--group", "x"],
            "it overlaps the unspecified address",
        ),
        (
            &["addr", "add", "fc00::/6", "--group", "x"],
            "it overlaps link-local space (fe80::/10)",
        ),
        (
            &["addr", "load", load.arg(), "--group", "x"],
            "line 3: invalid anycast address `ff02::1:2`: it is in multicast space",
        ),
        (
            &["member", "add", "dns", "x", "--encap", "fe80::2"],
            "invalid encap address `fe80::2`: it is in link-local space",
        ),
        (
            &["member", "add", "dns", "x", "--encap", "ff02::2"],
            "invalid encap address `ff02::2`: it is in multicast space",
        ),
        (
            &["member", "add", "dns", "x", "--encap", &ANY_DNS.to_string()],
            "invalid encap address 2001:db8:ac::53: it is an anycast address of group `dns`",
        ),
        (
            &["member", "add", "dns", "x", "--encap", "2001:db8:100::7"],
            "it is an anycast address of group `web` (2001:db8:100::/48)",
        ),
        (
            &["group", "set", "dns", "--tunnel-source", "fe80::1"],
            "invalid tunnel source `fe80::1`: it is in link-local space",
        ),
        (
            &["group", "set", "dns", "--tunnel-source", "fd00:53::1"],
            "invalid tunnel source fd00:53::1: it is an anycast address of group `web`",
        ),
        // The other way round: an anycast prefix over a tunnel's end.
        (
            &["addr", "add", "2001:db8:f::/48", "--group", "x"],
            "2001:db8:f::/48 would make encap address 2001:db8:f::2 of member dns/far an anycast address",
        ),
        (
            &["addr", "load", over_tunnel.arg(), "--group", "x"],
            "2001:db8:f::/64 would make encap address 2001:db8:f::2 of member dns/far an anycast address",
        ),
        (
            &["addr", "add", "2001:db8:e::1", "--group", "dns"],
            "2001:db8:e::1 would make tunnel source 2001:db8:e::1 of group dns an anycast address",
        ),
    ];
    for (args, needle) in cases {
        lab.anycast_refused("router", args, needle)?;
    }
    let file = lab.file(
        "bad.toml",
        "[group.dns]\naddresses = [\"2001:db8:ac::53\", \"fe80::/64\"]\n",
    )?;
    lab.anycast_refused(
        "router",
        &["config", "apply", file.arg()],
        "line 2: group.dns.addresses: invalid anycast address `fe80::/64`: it is in link-local space",
    )?;
    assert_eq!(snapshot(lab)?, before, "a refusal changed something");
    // Still filtering.
    assert_eq!(crs.send_udp(ANY_DNS, 5360, N)?, 0);
    Ok(())
}
