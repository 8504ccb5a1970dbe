//! Lab tests of scale-out by BGP (issue 16) with real BIRD 2 processes: two
//! redirector nodes announce one prefix to an upstream that spreads flows
//! over them by ECMP (`tests/src/bgp.rs`, [`TwoNodes`]). Both nodes reach
//! the same members by the same names and weights, so a flow that moves
//! from one node to the other reaches the same member.

use std::time::{Duration, Instant};

use anycast_tests::{
    bgp::{ANYCAST, TwoNodes},
    lab::{Service, wait_until},
    require_root,
};
use anyhow::{Result, ensure};

/// The members' UDP service port.
const PORT: u16 = 53;

/// Starts a UDP service on each member answering with its name.
fn udp_services(t: &TwoNodes) -> Result<Vec<Service>> {
    ["m1", "m2"]
        .iter()
        .map(|m| Service::start(t.lab.ns(m)?, ANYCAST, PORT, m))
        .collect()
}

#[test]
#[ignore = "needs root (namespaces, BPF) and bird2: run with `cargo xtask test`"]
fn both_nodes_announce_and_share_200_flows() -> Result<()> {
    require_root()?;
    let (t, _services) = TwoNodes::running("ecmpboth", 2.0)?;
    let _udp = udp_services(&t)?;
    let before = [t.redirected(1)?, t.redirected(2)?];
    let answers = t.flows(200, PORT)?;
    let lost = answers.iter().filter(|a| a.is_none()).count();
    ensure!(lost == 0, "{lost} of 200 flows unanswered");
    let carried = [t.redirected(1)? - before[0], t.redirected(2)? - before[1]];
    eprintln!(
        "200 flows: node1 carried {}, node2 {}",
        carried[0], carried[1]
    );
    ensure!(
        carried[0] > 0 && carried[1] > 0 && carried[0] + carried[1] == 200,
        "carried {carried:?}"
    );
    let m1 = answers
        .iter()
        .filter(|a| a.as_deref() == Some("m1"))
        .count();
    ensure!(m1 > 0 && m1 < 200, "m1 answered {m1} of 200");
    Ok(())
}
