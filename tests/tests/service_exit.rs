//! Lab tests of how the service (`anycast run --config FILE`) survives
//! losing its state socket and a metrics port held by another program, and
//! what it leaves when it ends.

use std::time::Duration;

use anycast_tests::{
    lab::{ANYCAST, Lines, MemberLab},
    require_root,
};
use anyhow::{Result, ensure};

/// How long a service may take to start: it loads and verifies the program
/// once per interface it attaches, which takes seconds on a busy machine.
const STARTUP: Duration = Duration::from_secs(60);
/// The metrics port, on the router's loopback.
const METRICS: u16 = 9652;

/// Interfaces attached on the router.
fn attached(ml: &MemberLab) -> Result<usize> {
    Ok(ml.lab.stats("router")?["interfaces"]
        .as_array()
        .map_or(0, Vec::len))
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn a_lost_socket_and_a_taken_port_are_survived_and_detach_on_exit_detaches() -> Result<()> {
    require_root()?;
    let ml = MemberLab::new("svcexit")?;
    let lab = &ml.lab;
    let socket = std::env::temp_dir().join(format!("{}-state.sock", lab.prefix));
    let socket = socket.to_str().unwrap_or_default().to_string();
    // The metrics port held by another program: the service says so and
    // runs without, and serves once the port is free.
    let holder = lab
        .ns("router")?
        .run(|| std::net::TcpListener::bind(("::1", METRICS)))??;
    let file = lab.file(
        "service.toml",
        &format!(
            "[service]\nsocket = \"{socket}\"\nmetrics = \"[::1]:{METRICS}\"\n\
             [interface.c0]\nrole = \"edge\"\n[interface.r1]\nrole = \"member\"\n\
             [group.dns]\naddresses = [\"{ANYCAST}\"]\n\
             [group.dns.member.m1]\niface = \"r1\"\nmac = \"{}\"\nmetric = 10\n",
            ml.member_mac("m1")?
        ),
    )?;
    let (mut running, stdout) = lab.spawn_anycast(
        &lab.pin_dir,
        "router",
        &["run", "--config", file.arg(), "--detach-on-exit"],
    )?;
    let mut lines = Lines::new(stdout);
    lines.expect(&["serving"], STARTUP)?;
    ensure!(attached(&ml)? == 2, "the file's two interfaces attached");
    let status = || lab.anycast_ok("router", &["status", "--socket", &socket]);
    ensure!(status()?.contains(file.arg()), "status answers");
    lines.expect(
        &[&format!("metrics: cannot serve on [::1]:{METRICS}")],
        Duration::from_secs(5),
    )?;
    drop(holder);
    lines.expect(
        &[&format!("metrics: serving http://[::1]:{METRICS}/metrics")],
        Duration::from_secs(5),
    )?;
    let scraped = lab.ns("router")?.run(|| -> std::io::Result<String> {
        use std::io::{Read as _, Write as _};
        let mut c = std::net::TcpStream::connect(("::1", METRICS))?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
        let mut body = String::new();
        c.read_to_string(&mut body)?;
        Ok(body)
    })??;
    ensure!(scraped.contains("anycast_packets_total"), "{scraped}");

    // The socket file removed under the service (a clean-up of /run, an
    // operator): it listens there again, and status reaches it.
    std::fs::remove_file(&socket)?;
    lines.expect(
        &["state socket", "was gone; listening there again"],
        Duration::from_secs(5),
    )?;
    ensure!(status()?.contains(file.arg()), "status answers again");

    // SIGTERM with --detach-on-exit: the file's interfaces are detached
    // (without it they stay: service.rs), the socket goes.
    running.signal(libc::SIGTERM)?;
    let exit = running.wait(Duration::from_secs(10))?;
    ensure!(exit.success(), "{exit}");
    lines.expect(&["detached from c0"], Duration::from_secs(5))?;
    lines.expect(&["detached from r1"], Duration::from_secs(5))?;
    ensure!(attached(&ml)? == 0, "interfaces left attached");
    ensure!(
        !std::path::Path::new(&socket).exists(),
        "the socket file stays"
    );
    Ok(())
}
