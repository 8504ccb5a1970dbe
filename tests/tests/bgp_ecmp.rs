//! Lab tests of scale-out by BGP (issue 16) with real BIRD 2 processes: two
//! redirector nodes announce one prefix to an upstream that spreads flows
//! over them by ECMP (`tests/src/bgp.rs`, [`TwoNodes`]). Both nodes reach
//! the same members by the same names and weights, so a flow that moves
//! from one node to the other reaches the same member.

use std::time::{Duration, Instant};

use anycast_tests::{
    bgp::{ANYCAST, Stream, TwoNodes},
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

#[test]
#[ignore = "needs root (namespaces, BPF) and bird2: run with `cargo xtask test`"]
fn sigterm_withdraws_before_forwarding_stops_and_no_request_is_lost_after_convergence() -> Result<()>
{
    require_root()?;
    let (t, mut services) = TwoNodes::running("ecmpterm", 2.0)?;
    let _udp = udp_services(&t)?;
    let stream = Stream::start(&t, 32, PORT)?;
    // Let the stream run through both nodes first (wait for node1 to have
    // forwarded some of it).
    let at_start = t.redirected(1)?;
    wait_until(
        "node1 forwarding the stream",
        Duration::from_secs(5),
        || t.redirected(1).is_ok_and(|n| n >= at_start + 20),
    )?;
    let forwarded_at_term = t.redirected(1)?;
    let node = &mut services[0];
    node.running.signal(libc::SIGTERM)?;
    let term = Instant::now();
    // The upstream converges (node1 withdrew) while node1 still runs and
    // forwards: it withdraws first, and stops only after the drain time.
    t.wait_next_hops(&[2], Duration::from_secs(2))?;
    let converged = Instant::now();
    ensure!(
        node.running.0.try_wait()?.is_none(),
        "node1 stopped before the upstream converged"
    );
    ensure!(t.established(1)?, "the session with node1 went down");
    node.lines.expect(
        &["withdrawn (the service is stopping)"],
        Duration::from_secs(2),
    )?;
    let exit = node.running.wait(Duration::from_secs(10))?;
    ensure!(exit.success(), "node1's service: {exit}");
    let exited = term.elapsed();
    // A while more through node2 alone.
    let after_exit = t.redirected(2)?;
    wait_until(
        "node2 forwarding the stream",
        Duration::from_secs(5),
        || t.redirected(2).is_ok_and(|n| n >= after_exit + 100),
    )?;
    let results = stream.stop();
    let lost_before = results
        .iter()
        .filter(|(at, ok)| *at >= term && *at < converged && !ok)
        .count();
    let sent_before = results
        .iter()
        .filter(|(at, _)| *at >= term && *at < converged)
        .count();
    let after: Vec<_> = results.iter().filter(|(at, _)| *at >= converged).collect();
    let lost_after = after.iter().filter(|(_, ok)| !ok).count();
    eprintln!(
        "SIGTERM: the upstream converged after {:?} (node1 forwarded {} more packets meanwhile), \
         node1 exited after {exited:?}; lost before convergence {lost_before} of {sent_before}, \
         after {lost_after} of {}",
        converged - term,
        t.redirected(1)? - forwarded_at_term,
        after.len()
    );
    ensure!(
        lost_after == 0,
        "{lost_after} of {} lost after convergence",
        after.len()
    );
    ensure!(
        after.len() >= 100,
        "only {} requests after convergence",
        after.len()
    );
    Ok(())
}
