//! The decision on a fake clock: hold-down, minimum of members,
//! maintenance and its drain, stopping.

use super::*;

fn cfg(extra: &str) -> Config {
    Config::parse(&format!(
        "[bgp]\nhold-down = 3.0\ndrain-time = 5.0\n\
         [group.dns]\naddresses = [\"2001:db8:53::1\"]\nannounce = [\"2001:db8:53::/48\"]\n{extra}\
         member.a = {{ encap = \"fd00:9::1\" }}\nmember.b = {{ encap = \"fd00:9::2\" }}\n"
    ))
    .expect("config")
}

fn live(n: u32) -> BTreeMap<GroupName, u32> {
    BTreeMap::from([(GroupName::new("dns").expect("name"), n)])
}

fn s(secs: f64) -> Duration {
    Duration::from_secs_f64(secs)
}

/// `(announced, reason)` of every change.
fn what(changes: &[Change]) -> Vec<(bool, Reason)> {
    changes.iter().map(|c| (c.announced, c.reason)).collect()
}

/// A decider for `cfg("")` whose prefix was announced at `t0` + 3 s with
/// `n` live members.
fn announced(n: u32) -> (Instant, Decider) {
    let t0 = Instant::now();
    let c = cfg("");
    let mut d = Decider::new(&c);
    d.configure(&c, t0);
    d.update(&live(n), t0);
    assert_eq!(d.decide(t0 + s(3.0)).len(), 1);
    (t0, d)
}

#[test]
fn announced_only_after_the_hold_down_and_withdrawn_at_once() {
    let t0 = Instant::now();
    let c = cfg("");
    let mut d = Decider::new(&c);
    assert!(d.configure(&c, t0).is_empty());
    assert_eq!(d.prefixes().next().expect("one").reason, Reason::Starting);
    // A member comes up: held down for 3 s.
    assert!(d.update(&live(1), t0).is_empty());
    assert_eq!(d.next_wakeup(t0), Some(t0 + s(3.0)));
    assert!(d.decide(t0 + s(2.9)).is_empty());
    let v = d.prefixes().next().expect("one");
    assert_eq!(
        (v.announced, v.reason),
        (false, Reason::HoldDown { live: 1, min: 1 })
    );
    let ch = d.decide(t0 + s(3.0));
    assert_eq!(what(&ch), [(true, Reason::Live { live: 1, min: 1 })]);
    assert_eq!(
        ch[0].to_string(),
        "prefix 2001:db8:53::/48 of group dns: announced (1 live members, 1 needed)"
    );
    assert_eq!(d.next_wakeup(t0 + s(3.0)), None);
    // The last member goes: withdrawn at once.
    let ch = d.update(&live(0), t0 + s(10.0));
    assert_eq!(what(&ch), [(false, Reason::TooFewLive { live: 0, min: 1 })]);
    let v = d.prefixes().next().expect("one");
    assert_eq!((v.since, v.changes), (t0 + s(10.0), 2));
}

#[test]
fn a_flapping_member_does_not_flap_the_announcement() {
    let (t0, mut d) = announced(1);
    // Down, up, down, up each second: one withdraw, and no announcement
    // until it has stayed up for 3 s.
    let mut changes = Vec::new();
    for i in 0..6 {
        let n = if i % 2 == 0 { 0 } else { 1 };
        changes.extend(d.update(&live(n), t0 + s(4.0 + f64::from(i))));
    }
    assert_eq!(
        what(&changes),
        [(false, Reason::TooFewLive { live: 0, min: 1 })]
    );
    // Up since t0 + 9 s.
    assert!(d.decide(t0 + s(11.9)).is_empty());
    assert_eq!(
        what(&d.decide(t0 + s(12.0))),
        [(true, Reason::Live { live: 1, min: 1 })]
    );
}

#[test]
fn the_minimum_of_live_members_counts() {
    let t0 = Instant::now();
    let c = cfg("announce-min-members = 2\n");
    let mut d = Decider::new(&c);
    d.configure(&c, t0);
    assert!(d.update(&live(1), t0).is_empty());
    assert!(
        d.decide(t0 + s(60.0)).is_empty(),
        "one of two is not enough"
    );
    assert_eq!(
        d.prefixes().next().expect("one").reason,
        Reason::TooFewLive { live: 1, min: 2 }
    );
    d.update(&live(2), t0 + s(60.0));
    assert_eq!(
        what(&d.decide(t0 + s(63.0))),
        [(true, Reason::Live { live: 2, min: 2 })]
    );
    assert_eq!(
        what(&d.update(&live(1), t0 + s(64.0))),
        [(false, Reason::TooFewLive { live: 1, min: 2 })]
    );
}

#[test]
fn maintenance_withdraws_drains_and_announces_again_when_off() {
    let (t0, mut d) = announced(2);
    let on = t0 + s(10.0);
    assert_eq!(
        what(&d.set_maintenance(true, on)),
        [(false, Reason::Maintenance)]
    );
    assert!(
        d.set_maintenance(true, on + s(1.0)).is_empty(),
        "already on"
    );
    assert!(!d.drained(on + s(4.9)));
    assert_eq!(d.next_wakeup(on), Some(on + s(5.0)));
    assert!(d.drained(on + s(5.0)));
    // Members coming and going during maintenance announce nothing.
    assert!(d.update(&live(1), on + s(6.0)).is_empty());
    assert!(d.decide(on + s(60.0)).is_empty());
    // Off: the condition held all along, announced at once.
    let off = on + s(61.0);
    assert_eq!(
        what(&d.set_maintenance(false, off)),
        [(true, Reason::Live { live: 1, min: 1 })]
    );
    assert!(!d.drained(off) && d.maintenance().is_none());
    // Off while no member is live: stays withdrawn.
    d.set_maintenance(true, off + s(1.0));
    d.update(&live(0), off + s(2.0));
    assert!(d.set_maintenance(false, off + s(3.0)).is_empty());
    assert_eq!(
        d.prefixes().next().expect("one").reason,
        Reason::TooFewLive { live: 0, min: 1 }
    );
}

#[test]
fn stopping_withdraws_for_good() {
    let (t0, mut d) = announced(1);
    assert_eq!(what(&d.stop(t0 + s(4.0))), [(false, Reason::Stopping)]);
    assert!(d.update(&live(2), t0 + s(5.0)).is_empty());
    assert!(d.decide(t0 + s(100.0)).is_empty());
    assert!(d.set_maintenance(false, t0 + s(101.0)).is_empty());
    assert_eq!(d.next_wakeup(t0 + s(5.0)), None);
}

#[test]
fn a_new_file_withdraws_what_it_drops_and_announces_what_it_adds() {
    let (t0, mut d) = announced(1);
    let other = Config::parse(
        "[group.dns]\naddresses = [\"2001:db8:53::1\"]\nannounce = [\"2001:db8::/32\"]\n\
         member.a = { encap = \"fd00:9::1\" }\n",
    )
    .expect("config");
    let ch = d.configure(&other, t0 + s(4.0));
    let got: Vec<(String, bool)> = ch
        .iter()
        .map(|c| (c.prefix.to_string(), c.announced))
        .collect();
    assert_eq!(
        got,
        [
            ("2001:db8:53::/48".to_string(), false),
            ("2001:db8::/32".to_string(), true)
        ]
    );
    // No more announcing: everything withdrawn.
    let none = Config::parse("[group.dns]\naddresses = [\"2001:db8:53::1\"]\n").expect("config");
    let ch = d.configure(&none, t0 + s(5.0));
    assert_eq!(ch.len(), 1);
    assert!(!ch[0].announced);
    assert!(d.is_empty());
}

#[test]
fn a_reasons_kind_is_the_one_status_json_names() {
    for r in [
        Reason::Starting,
        Reason::Live { live: 1, min: 1 },
        Reason::HoldDown { live: 1, min: 1 },
        Reason::TooFewLive { live: 0, min: 1 },
        Reason::Maintenance,
        Reason::Stopping,
    ] {
        let json = serde_json::to_value(r).expect("json");
        assert_eq!(json["kind"], r.kind(), "{r:?}");
    }
}
