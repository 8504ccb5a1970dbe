//! Lab tests of the pin dir: what `detach --purge` removes, what a failed
//! command leaves, which pin dirs are trusted, and bpffs views that would
//! make changes vanish (`ip netns exec`).

use std::{
    fs,
    net::Ipv6Addr,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::Path,
    process::Command,
};

use anycast::{Dataplane, PinDir};
use anycast_common::map_names;
use anycast_tests::{
    lab::{ClientRouterServer, anycast_bin, refused, sh},
    require_root,
};
use anyhow::{Context as _, Result, ensure};

/// An anycast address the client will falsely claim.
const ANY_DNS: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xac, 0, 0, 0, 0, 0x53);
const N: usize = 10;

fn lab(test: &str) -> Result<ClientRouterServer> {
    require_root()?;
    let crs = ClientRouterServer::new(test)?;
    crs.client_claims(ANY_DNS)?;
    Ok(crs)
}

/// [`lab`], with the data plane on the router's c0 (edge) and ANY_DNS an
/// anycast address of group `dns`: the client's spoofed packets are dropped.
fn filtering(test: &str) -> Result<ClientRouterServer> {
    let crs = lab(test)?;
    crs.lab.anycast_ok("router", &["attach", "c0"])?;
    crs.lab.anycast_ok(
        "router",
        &["addr", "add", &ANY_DNS.to_string(), "--group", "dns"],
    )?;
    Ok(crs)
}

/// The names in directory `dir`, sorted.
fn entries(dir: &Path) -> Result<Vec<String>> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    v.sort();
    Ok(v)
}

/// Runs `args` as user nobody (uid and gid 65534, no groups).
fn as_nobody(args: &[&str]) -> Result<String> {
    let mut v = vec![
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    v.extend_from_slice(args);
    sh(&v)
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn detach_purge_removes_only_what_anycast_made() -> Result<()> {
    let crs = filtering("purgeonly")?;
    let lab = &crs.lab;
    let outer = lab.pin_dir.clone();
    // Another instance pinned in a directory below this one, and a
    // directory some other program made.
    let inner = outer.join("inner");
    lab.forget_pin_dir_on_drop(&inner);
    lab.anycast_ok_at(
        &inner,
        "router",
        &["addr", "add", "2001:db8:1::1", "--group", "g"],
    )?;
    let unrelated = outer.join("unrelated");
    fs::create_dir(&unrelated)?;

    let said = lab.anycast_ok("router", &["detach", "--purge"])?;
    ensure!(said.contains("detached from c0"), "{said}");
    ensure!(said.contains("kept") && said.contains("inner"), "{said}");
    // Every entry anycast made is gone, the others stay, and so the directory.
    assert_eq!(entries(&outer)?, ["inner", "unrelated"]);
    for name in map_names::ALL {
        ensure!(!outer.join(name).exists(), "{name} left");
    }
    // The inner instance is whole and works.
    let list = lab.anycast_ok_at(&inner, "router", &["addr", "list"])?;
    ensure!(list.contains("2001:db8:1::1"), "{list}");
    ensure!(unrelated.is_dir());
    // The program is detached: the spoofed source gets through again.
    assert_eq!(crs.send_udp(ANY_DNS, 5600, N)?, N);

    // With the others gone, purging removes the directory too.
    lab.anycast_ok_at(&inner, "router", &["detach", "--purge"])?;
    fs::remove_dir(&unrelated)?;
    lab.anycast_ok("router", &["addr", "add", "2001:db8:2::1", "--group", "g"])?;
    let said = lab.anycast_ok("router", &["detach", "--purge"])?;
    ensure!(said.contains("removed the maps"), "{said}");
    ensure!(!outer.exists(), "{} still there", outer.display());
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn another_layouts_state_is_refused_and_purge_starts_afresh() -> Result<()> {
    let crs = filtering("oldlayout")?;
    let lab = &crs.lab;
    // As a build of another layout would have left it.
    Dataplane::open(PinDir::new(&lab.pin_dir))?.set_layout_version(6)?;
    for args in [&["stats"][..], &["detach"][..], &["attach", "s0"][..]] {
        lab.anycast_refused("router", args, "has layout version 6")?;
    }
    assert_eq!(crs.send_udp(ANY_DNS, 5640, N)?, 0);
    // What the refusal says to do works: everything goes, c0 is detached.
    lab.anycast_ok("router", &["detach", "--purge"])?;
    ensure!(
        !lab.pin_dir.exists(),
        "{} still there",
        lab.pin_dir.display()
    );
    assert_eq!(crs.send_udp(ANY_DNS, 5641, N)?, N);
    Ok(())
}

/// A state of an older layout that lacks a map of this one (layout 12 had
/// no `EXACT_SLASH16`) is another layout's, not a damaged one: every
/// command says so, and `repair` pins nothing into it.
#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn an_older_layout_without_a_map_is_refused_not_repaired() -> Result<()> {
    let crs = filtering("lesslayout")?;
    let lab = &crs.lab;
    Dataplane::open(PinDir::new(&lab.pin_dir))?.set_layout_version(12)?;
    let newer = lab.pin_dir.join(anycast_common::map_names::EXACT_SLASH16);
    fs::remove_file(&newer)?;
    for args in [
        &["stats"][..],
        &["addr", "add", "2001:db8:2::1", "--group", "g"][..],
        &["repair"][..],
    ] {
        lab.anycast_refused("router", args, "has layout version 12")?;
    }
    ensure!(!newer.exists(), "repair pinned {} into it", newer.display());
    lab.anycast_ok("router", &["detach", "--purge"])?;
    ensure!(
        !lab.pin_dir.exists(),
        "{} still there",
        lab.pin_dir.display()
    );
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn a_failed_command_leaves_nothing_it_created() -> Result<()> {
    let crs = lab("failclean")?;
    let lab = &crs.lab;
    let fresh = lab.other_pin_dir("fresh");

    // An unknown interface: refused before anything is created.
    lab.anycast_refused_at(
        &fresh,
        "router",
        &["attach", "nosuch0"],
        "unknown interface",
    )?;
    ensure!(!fresh.exists(), "{} was created", fresh.display());

    // An interface another XDP program holds: the attach fails after the
    // maps were made, and they go again, with the directory.
    lab.anycast_ok("router", &["attach", "c0"])?;
    lab.anycast_ok(
        "router",
        &["addr", "add", &ANY_DNS.to_string(), "--group", "dns"],
    )?;
    lab.anycast_refused_at(&fresh, "router", &["attach", "c0"], "another XDP program")?;
    ensure!(!fresh.exists(), "{} was left behind", fresh.display());
    // ... and the program that holds it is untouched.
    assert_eq!(crs.send_udp(ANY_DNS, 5610, N)?, 0);
    let s = lab.stats("router")?;
    assert_eq!(s["interfaces"][0]["name"], "c0");

    // Any command that creates the state: a member on no interface.
    lab.anycast_refused_at(
        &fresh,
        "router",
        &[
            "member",
            "add",
            "g",
            "m1",
            "--iface",
            "nosuch0",
            "--mac",
            "02:00:00:00:00:01",
        ],
        "unknown interface",
    )?;
    ensure!(!fresh.exists(), "{} was left behind", fresh.display());

    // An empty directory that was there before stays, empty.
    fs::create_dir(&fresh)?;
    fs::set_permissions(&fresh, fs::Permissions::from_mode(0o700))?;
    lab.anycast_refused_at(&fresh, "router", &["attach", "c0"], "another XDP program")?;
    assert_eq!(entries(&fresh)?, Vec::<String>::new());

    // Maps that existed before the failed attach stay, with their content.
    lab.anycast_ok_at(
        &fresh,
        "router",
        &["addr", "add", "2001:db8:3::1", "--group", "g"],
    )?;
    lab.anycast_refused_at(&fresh, "router", &["attach", "c0"], "another XDP program")?;
    let list = lab.anycast_ok_at(&fresh, "router", &["addr", "list"])?;
    ensure!(list.contains("2001:db8:3::1"), "{list}");
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn pin_dirs_others_could_change_are_refused() -> Result<()> {
    let crs = lab("untrusted")?;
    let lab = &crs.lab;
    let pin = lab.pin_dir.clone();
    let p = pin.to_string_lossy().into_owned();
    ensure!(
        fs::metadata("/sys/fs/bpf")?.mode() & 0o1777 == 0o1777,
        "this test expects bpffs mounted 1777 at /sys/fs/bpf"
    );

    // An unprivileged user made the pin dir first: it could delete the
    // maps and the links in it. Refused, and nothing is pinned there.
    as_nobody(&["mkdir", "-m", "0777", &p])?;
    lab.anycast_refused(
        "router",
        &["attach", "c0"],
        "belongs to uid 65534, not root",
    )?;
    lab.anycast_refused("router", &["addr", "list"], "chown root:root")?;
    assert_eq!(entries(&pin)?, Vec::<String>::new());
    let shown = lab.ns("router")?.ip(&["link", "show", "dev", "c0"])?;
    ensure!(!shown.contains("xdp"), "attached anyway: {shown}");
    fs::remove_dir(&pin)?;

    // Root's, but writable by others.
    fs::create_dir(&pin)?;
    fs::set_permissions(&pin, fs::Permissions::from_mode(0o777))?;
    lab.anycast_refused(
        "router",
        &["attach", "c0"],
        "writable by others (mode 0777)",
    )?;
    assert_eq!(entries(&pin)?, Vec::<String>::new());
    // The fix the message names works.
    fs::set_permissions(&pin, fs::Permissions::from_mode(0o755))?;
    lab.anycast_ok("router", &["attach", "c0"])?;
    lab.anycast_ok(
        "router",
        &["addr", "add", &ANY_DNS.to_string(), "--group", "dns"],
    )?;
    assert_eq!(crs.send_udp(ANY_DNS, 5620, N)?, 0);

    // A directory above the pin dir that someone else owns.
    let parent = lab.other_pin_dir("parent");
    let q = parent.to_string_lossy().into_owned();
    as_nobody(&["mkdir", "-m", "0755", &q])?;
    let nested = parent.join("anycast");
    fs::create_dir(&nested)?;
    fs::set_permissions(&nested, fs::Permissions::from_mode(0o700))?;
    let out = lab.anycast_at(
        &nested,
        "router",
        &["addr", "add", "2001:db8::5", "--group", "g"],
    )?;
    refused(&out, &["addr", "add"], &format!("{q} belongs to uid 65534"))?;
    assert_eq!(entries(&nested)?, Vec::<String>::new());

    // A damaged pin dir (a map removed) is reported, never filled in.
    fs::remove_file(pin.join(map_names::GROUP_STATS))?;
    for args in [
        &["addr", "add", "2001:db8::6", "--group", "dns"][..],
        &["addr", "list"][..],
        &["attach", "s0"][..],
    ] {
        lab.anycast_refused("router", args, "maps are missing (GROUP_STATS)")?;
        lab.anycast_refused("router", args, "anycast repair")?;
    }
    ensure!(!pin.join(map_names::GROUP_STATS).exists(), "recreated");
    // The data plane keeps filtering meanwhile.
    assert_eq!(crs.send_udp(ANY_DNS, 5621, N)?, 0);
    // What the refusal says: `repair --check` reports the damage and
    // changes nothing; `repair` recreates the map, says what was lost, and
    // every command works again, on the same state.
    lab.anycast_refused("router", &["repair", "--check"], "GROUP_STATS")?;
    ensure!(
        !pin.join(map_names::GROUP_STATS).exists(),
        "recreated by --check"
    );
    let out = lab.anycast_at(&pin, "router", &["repair"])?;
    ensure!(out.status.success(), "repair: {out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    ensure!(
        said.contains("recreated empty") && said.contains("GROUP_STATS"),
        "{said}"
    );
    ensure!(pin.join(map_names::GROUP_STATS).exists(), "not recreated");
    let list = lab.anycast_ok("router", &["addr", "list"])?;
    ensure!(list.contains(&ANY_DNS.to_string()), "{list}");
    assert_eq!(crs.send_udp(ANY_DNS, 5623, N)?, 0);
    // `detach --purge` starts afresh: the program detaches, the pins go.
    lab.anycast_ok("router", &["detach", "--purge"])?;
    ensure!(!pin.exists(), "{} still there", pin.display());
    assert_eq!(crs.send_udp(ANY_DNS, 5622, N)?, N);
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn ip_netns_exec_is_refused_with_a_hint() -> Result<()> {
    let crs = filtering("netnsexec")?;
    let lab = &crs.lab;
    let before = lab.anycast_ok("router", &["addr", "list", "--json"])?;
    let router = lab.ns("router")?.name.clone();
    // `ip netns exec` mounts a sysfs of its own on /sys: /sys/fs/bpf is not
    // the system's bpffs there.
    let exec = |args: &[&str]| -> Result<std::process::Output> {
        Command::new("ip")
            .args(["netns", "exec", &router])
            .arg(anycast_bin()?)
            .arg("--pin-dir")
            .arg(&lab.pin_dir)
            .args(args)
            .env_remove("ANYCAST_PIN_DIR")
            .output()
            .context("running ip netns exec")
    };
    for args in [
        &["addr", "add", "2001:db8::99", "--group", "dns"][..],
        &["addr", "list"][..],
        &["detach"][..],
        &["attach", "s0"][..],
    ] {
        refused(&exec(args)?, args, "use `anycast --netns NAME ...`")?;
    }
    // Nothing changed where the pins really are.
    assert_eq!(
        lab.anycast_ok("router", &["addr", "list", "--json"])?,
        before
    );
    let s = lab.stats("router")?;
    assert_eq!(s["interfaces"].as_array().map(Vec::len), Some(1));
    assert_eq!(crs.send_udp(ANY_DNS, 5630, N)?, 0);
    Ok(())
}
