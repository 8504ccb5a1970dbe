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

#[test]
#[ignore = "needs root (namespaces, BPF) and bird2: run with `cargo xtask test`"]
fn a_nodes_last_member_down_withdraws_it_and_the_other_node_serves_every_flow() -> Result<()> {
    require_root()?;
    let (t, mut services) = TwoNodes::running("ecmpdown", 2.0)?;
    let _udp = udp_services(&t)?;
    // One of node1's two members fails: one is still live, so node1 still
    // announces.
    std::fs::remove_file(t.ok_file(1, 2))?;
    services[0]
        .lines
        .expect(&["member m2 of group g: failing"], Duration::from_secs(5))?;
    ensure!(t.next_hops()? == [1, 2], "{:?}", t.next_hops());
    // The last one fails: node1 withdraws, within the check's detection
    // time + 1 s at the upstream, by a BGP update (the session stays up).
    std::fs::remove_file(t.ok_file(1, 1))?;
    let failed = Instant::now();
    wait_until("node1's route withdrawn", Duration::from_secs(5), || {
        t.announces(1).is_ok_and(|a| !a)
    })?;
    let at_node = failed.elapsed();
    t.wait_next_hops(&[2], Duration::from_secs(5))?;
    let at_upstream = failed.elapsed();
    eprintln!(
        "last member's check failing (detection time {:?}): node1 withdrew after {at_node:?}, \
         the upstream dropped it after {at_upstream:?}",
        TwoNodes::DETECTION
    );
    ensure!(
        at_upstream <= TwoNodes::DETECTION + Duration::from_secs(1),
        "withdrawn at the upstream after {at_upstream:?}"
    );
    ensure!(t.established(1)?, "the session with node1 went down");
    services[0].lines.expect(
        &[
            "prefix 2001:db8:53::/48 of group g: withdrawn",
            "0 live members",
        ],
        Duration::from_secs(2),
    )?;
    // Every new flow is answered, all through node2.
    let before = [t.redirected(1)?, t.redirected(2)?];
    let answers = t.flows(200, PORT)?;
    let lost = answers.iter().filter(|a| a.is_none()).count();
    ensure!(lost == 0, "{lost} of 200 flows unanswered");
    let carried = [t.redirected(1)? - before[0], t.redirected(2)? - before[1]];
    ensure!(carried == [0, 200], "carried {carried:?}");
    Ok(())
}
