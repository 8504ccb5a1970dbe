//! Lab tests of flow affinity with real TCP connections: a running
//! connection stays on its member while new ones go to the nearest.

use std::time::Duration;

use anycast_tests::{
    lab::{ANYCAST, MemberLab, TcpClient, TcpService},
    require_root,
};
use anyhow::{Result, bail};

const PORT: u16 = 8080;
const LINES: usize = 30;

fn lab(test: &str) -> Result<(MemberLab, Vec<TcpService>)> {
    require_root()?;
    let ml = MemberLab::attached(test, "web")?;
    ml.add_member("web", "m1", "r1", 10)?;
    ml.add_member("web", "m2", "r2", 20)?;
    let lab = &ml.lab;
    let services = ["m1", "m2"]
        .iter()
        .map(|m| {
            TcpService::start(
                lab.ns(m)?,
                ANYCAST,
                PORT,
                m,
                LINES,
                Duration::from_millis(100),
            )
        })
        .collect::<Result<_>>()?;
    Ok((ml, services))
}

fn connect(ml: &MemberLab) -> Result<TcpClient> {
    TcpClient::connect(ml.lab.ns("client")?, ANYCAST, PORT)
}

/// Reads `n` lines (all of them when `n` is None); fails on a reset.
fn read(c: &mut TcpClient, n: Option<usize>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    while n.is_none_or(|n| out.len() < n) {
        match c.line()? {
            Some(l) => out.push(l),
            None => break,
        }
    }
    Ok(out)
}

fn served_by(lines: &[String]) -> Vec<&str> {
    let mut v: Vec<&str> = lines.iter().filter_map(|l| l.split(' ').next()).collect();
    v.dedup();
    v
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn a_tcp_connection_stays_on_its_member_when_another_becomes_nearer() -> Result<()> {
    let (ml, _svc) = lab("tcpaffinity")?;
    let mut old = connect(&ml)?;
    let head = read(&mut old, Some(5))?;
    assert_eq!(served_by(&head), ["m1"]);
    ml.lab
        .anycast_ok("router", &["member", "set", "web", "m2", "--metric", "5"])?;
    let mut new = connect(&ml)?;
    assert_eq!(
        served_by(&read(&mut new, Some(1))?),
        ["m2"],
        "a new connection goes to the nearest"
    );
    let rest = read(&mut old, None)?;
    assert_eq!(head.len() + rest.len(), LINES, "the transfer completes");
    assert_eq!(served_by(&rest), ["m1"], "every byte from the first member");
    let members: serde_json::Value =
        serde_json::from_str(&ml.lab.anycast_ok("router", &["member", "list", "--json"])?)?;
    let flows: u64 = members
        .as_array()
        .map_or(0, |a| a.iter().filter_map(|m| m["flows"].as_u64()).sum());
    assert!(flows >= 2, "{members}");
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn without_affinity_the_connection_breaks() -> Result<()> {
    let (ml, _svc) = lab("tcpnoaff")?;
    ml.lab
        .anycast_ok("router", &["group", "set", "web", "--affinity", "none"])?;
    let mut old = connect(&ml)?;
    assert_eq!(served_by(&read(&mut old, Some(5))?), ["m1"]);
    ml.lab
        .anycast_ok("router", &["member", "set", "web", "m2", "--metric", "5"])?;
    // The client's segments now reach m2, which knows no such connection
    // and resets it: the transfer cannot complete.
    match read(&mut old, None) {
        Err(e) => {
            let reset = e
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionReset);
            assert!(reset, "expected a reset, got {e:#}");
        }
        Ok(rest) if rest.len() + 5 < LINES => {}
        Ok(rest) => bail!(
            "the connection survived without affinity ({} more lines)",
            rest.len()
        ),
    }
    Ok(())
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn a_draining_member_finishes_its_connections_and_takes_no_new_ones() -> Result<()> {
    let (ml, _svc) = lab("tcpdrain")?;
    let mut old = connect(&ml)?;
    let head = read(&mut old, Some(3))?;
    assert_eq!(served_by(&head), ["m1"]);
    ml.lab
        .anycast_ok("router", &["member", "set", "web", "m1", "--drain"])?;
    for _ in 0..3 {
        let mut new = connect(&ml)?;
        assert_eq!(served_by(&read(&mut new, Some(1))?), ["m2"]);
    }
    let rest = read(&mut old, None)?;
    assert_eq!(head.len() + rest.len(), LINES);
    assert_eq!(served_by(&rest), ["m1"]);
    let list = ml.lab.anycast_ok("router", &["member", "list", "web"])?;
    assert!(list.contains("draining"), "{list}");
    Ok(())
}
