//! `anycast trace`, the data plane's side: the program writes a record of
//! a decision only while a trace's deadline lasts, with the right fields,
//! through the filters, the sampling and the rate limit; a deadline that
//! has passed (a killed trace process) writes nothing and is turned off.

use std::net::Ipv6Addr;

use anycast::trace::{TraceEvent, TraceFilter, monotonic_ns};
use anycast_common::{GlobalStat, IfaceRole, SourceAction, TraceControl, frame::FrameBuilder};
use anycast_tests::{prog::ProgramUnderTest, require_root};
use anyhow::{Context as _, Result};

const ANY: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 0x53);
const CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 2);
const OTHER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 9, 0, 0, 0, 9);
const M1_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 0x01];

fn names(e: u32) -> Option<String> {
    Some(e.to_string())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn records_only_while_the_deadline_lasts_with_the_decisions_fields() -> Result<()> {
    require_root()?;
    let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
    p.add(&ANY.to_string(), "dns")?;
    let m1 = p.add_l2_member("dns", "m1", M1_MAC, 10)?;
    p.add("2001:db8:b::/48", "web")?;
    let mut t = p.tracer(TraceFilter::default())?;
    let redirected = FrameBuilder::udp(CLIENT, ANY, 4000, 53, b"q").build();
    let unicast = FrameBuilder::udp(CLIENT, OTHER, 4001, 53, b"q").build();
    let spoofed = FrameBuilder::udp(ANY, OTHER, 53, 4002, b"a").build();

    // Off: nothing written.
    p.run(&redirected)?;
    assert!(t.next_record().is_none(), "a record while tracing is off");
    assert_eq!(t.losses()?.written, 0);

    // On: one record per decision, in order, with its fields.
    t.renew()?;
    let (redirect, pass, drop) = (p.run(&redirected)?, p.run(&unicast)?, p.run(&spoofed)?);
    assert_eq!((redirect.action, pass.action, drop.action), (4, 2, 1));
    let ev = |r| TraceEvent::new(&r, |i| i.to_string(), names, names);
    let r = t.next_record().context("no record of the redirect")?;
    assert_eq!(r.member, m1);
    let e = ev(r);
    assert_eq!((e.action, e.reason), ("redirect", "redirected"));
    assert_eq!((e.src, e.dst), (Some(CLIENT), Some(ANY)));
    assert_eq!(
        (e.proto, e.sport, e.dport),
        (Some(17), Some(4000), Some(53))
    );
    assert!(e.group.is_some() && e.flow.is_some(), "{e:?}");
    let e = ev(t.next_record().context("no record of the pass")?);
    assert_eq!(
        (e.action, e.reason, e.member),
        ("pass", "unicast_passed", None)
    );
    assert_eq!(e.dst, Some(OTHER));
    let e = ev(t.next_record().context("no record of the drop")?);
    assert_eq!(
        (e.action, e.reason, e.src),
        ("drop", GlobalStat::AnycastSourceDropped.name(), Some(ANY))
    );
    assert!(t.next_record().is_none(), "more records than decisions");
    assert_eq!(t.losses()?.written, 3);

    // Off again: nothing.
    t.disable()?;
    p.run(&redirected)?;
    assert!(t.next_record().is_none(), "a record after disable");

    // A deadline that has passed (a trace process killed): nothing, and
    // the program turns it off (0) so that it costs one read again.
    t.set_control(TraceControl {
        deadline_ns: monotonic_ns() - 1,
        ..TraceControl::default()
    })?;
    p.run(&redirected)?;
    assert!(t.next_record().is_none(), "a record after the deadline");
    assert_eq!(t.control()?.deadline_ns, 0);
    Ok(())
}

#[test]
#[ignore = "needs root (BPF): run with `cargo xtask test`"]
fn group_filter_sampling_and_rate_limit_act_in_the_kernel() -> Result<()> {
    require_root()?;
    let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
    p.add(&ANY.to_string(), "dns")?;
    p.add_l2_member("dns", "m1", M1_MAC, 10)?;
    p.add("2001:db8:b::/48", "web")?;
    let web = p.state.stats()?.groups["web"].id;
    let to_web = FrameBuilder::udp(CLIENT, "2001:db8:b::1".parse()?, 4000, 80, b"g").build();
    let to_dns = FrameBuilder::udp(CLIENT, ANY, 4000, 53, b"q").build();

    // Group: only web's packets.
    let mut t = p.tracer(TraceFilter {
        group: web,
        ..TraceFilter::default()
    })?;
    t.renew()?;
    p.run(&to_dns)?;
    p.run(&to_web)?;
    let r = t.next_record().context("no record of web's packet")?;
    assert_eq!(r.group, web);
    assert!(t.next_record().is_none(), "dns's packet was traced");

    // Sampling: one in 4 of 20 packets (a test run stays on one CPU).
    t.set_control(TraceControl {
        deadline_ns: monotonic_ns() + 10_000_000_000,
        sample: 4,
        ..TraceControl::default()
    })?;
    for _ in 0..20 {
        p.run(&to_dns)?;
    }
    let n = std::iter::from_fn(|| t.next_record()).count();
    assert_eq!(n, 5);

    // Rate limit: 10 a second; a burst of 50 packets writes at most a
    // second's worth (plus what the clock earns meanwhile) and counts the rest.
    let before = t.losses()?;
    t.set_control(TraceControl {
        deadline_ns: monotonic_ns() + 10_000_000_000,
        rate: 10,
        ..TraceControl::default()
    })?;
    for _ in 0..50 {
        p.run(&to_dns)?;
    }
    let n = std::iter::from_fn(|| t.next_record()).count() as u64;
    let lost = t.losses()?.since(&before);
    assert!((1..=12).contains(&n), "{n} records under a rate of 10/s");
    assert_eq!(lost.written, n);
    assert_eq!(lost.rate_limited, 50 - n);
    Ok(())
}
