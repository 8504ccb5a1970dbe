//! The TOML front end under random and mutated documents: no input
//! panics, and every rejection is one line that names its line (and,
//! for a bad value, its field).
use super::*;

use crate::addr::fuzz::Rng;

fn pick<'a>(r: &mut Rng, from: &[&'a str]) -> &'a str {
    from[r.below(from.len())]
}

/// A key with values that fit and values that do not.
type Key = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

/// Keys of a group table.
const GROUP_KEYS: &[Key] = &[
    ("fallback", &["\"pass\"", "\"drop\""], &["\"dorp\"", "1"]),
    (
        "affinity",
        &["\"flow\"", "\"none\""],
        &["\"sticky\"", "true"],
    ),
    (
        "flow-timeout",
        &["300", "1", "86400"],
        &["0", "86401", "-1"],
    ),
    ("flow-timeout-other", &["30", "60"], &["4294967296", "1.5"]),
    (
        "table-size",
        &["1021", "4093", "7", "251"],
        &["4099", "1000", "0"],
    ),
    (
        "tunnel-source",
        &["\"2001:db8::1\""],
        &["\"ff02::1\"", "\"::\"", "\"2001:db8::/64\""],
    ),
    (
        "addresses",
        &[
            "[\"2001:db8::53\", \"2001:db8:a::/48\"]",
            "[\"2001:db8::54\"]",
            "[]",
        ],
        &[
            "[\"2001:db8::1/64\"]",
            "[\"10.0.0.1\"]",
            "[\"2001:db8::55\", \"2001:db8::55\"]",
            "[1, 2]",
        ],
    ),
];
/// Keys of a member table.
const MEMBER_KEYS: &[Key] = &[
    (
        "iface",
        &["\"eth1\""],
        &["\"\"", "\"a-very-long-interface\""],
    ),
    (
        "mac",
        &["\"02:00:00:00:00:01\""],
        &["\"01:00:00:00:00:01\"", "\"02:00\""],
    ),
    (
        "encap",
        &["\"2001:db8:f::2\""],
        &["\"fe80::/10\"", "\"::1\""],
    ),
    (
        "metric",
        &["10", "20", "0", "4294967295", "\"route\""],
        &["-5", "4294967296", "\"nearest\"", "1.5"],
    ),
    (
        "addr",
        &["\"fd00:1::2\"", "\"fd00:1::3\""],
        &["\"ff02::1\"", "\"fe80::1\""],
    ),
    ("weight", &["1", "2", "100"], &["0", "101", "256"]),
    (
        "state",
        &["\"up\"", "\"down\"", "\"drain\"", "\"draining\""],
        &["\"sleepy\""],
    ),
];
const NAMES: &[&str] = &["dns", "web", "m1", "m2", "\"q\"", "\"n-_.9\"", "A_0"];
/// Names that are bad TOML keys, or good keys but bad names.
const BAD_NAMES: &[&str] = &["a.b", "x y", "\"x y\"", "é", "\"é\"", "\"\"", "\"a/b\""];

fn name(r: &mut Rng) -> &'static str {
    if r.below(10) == 0 {
        pick(r, BAD_NAMES)
    } else {
        pick(r, NAMES)
    }
}

/// The keys of one table: mostly ones that belong there, each once,
/// with values that mostly fit; now and then a stray key or value.
fn table(r: &mut Rng, s: &mut String, keys: &[Key]) {
    let mut used = Vec::new();
    for _ in 0..r.below(keys.len() + 1) {
        let (k, good, bad) = keys[r.below(keys.len())];
        if used.contains(&k) && r.below(40) != 0 {
            continue;
        }
        used.push(k);
        let v = match r.below(40) {
            0 => keys[r.below(keys.len())].1,
            1..=2 => bad,
            _ => good,
        };
        let k = if r.below(80) == 0 { "bogus" } else { k };
        *s += &format!("{k} = {}\n", v[r.below(v.len())]);
    }
}

/// A plausible document: group and member tables with random keys and values.
fn document(r: &mut Rng) -> String {
    let mut s = String::new();
    let mut groups: Vec<&str> = (0..1 + r.below(3)).map(|_| name(r)).collect();
    groups.sort_unstable();
    groups.dedup();
    for g in &groups {
        if r.below(8) != 0 {
            s += &format!("[group.{g}]\n");
            table(r, &mut s, GROUP_KEYS);
        }
        let mut members: Vec<&str> = (0..r.below(3)).map(|_| name(r)).collect();
        members.sort_unstable();
        members.dedup();
        for m in members {
            s += &format!("[group.{g}.member.{m}]\n");
            if r.below(2) == 0 {
                s += "encap = \"2001:db8:f::9\"\n";
                if r.below(6) == 0 {
                    // Both ways in, or half of the other one.
                    table(r, &mut s, &MEMBER_KEYS[..2]);
                }
            } else {
                s += "iface = \"eth1\"\nmac = \"02:00:00:00:00:09\"\n";
            }
            table(r, &mut s, &MEMBER_KEYS[3..]);
        }
    }
    s
}

/// A mutation: bytes flipped, dropped, duplicated or inserted from the
/// TOML alphabet, or a line cut.
fn mutate(r: &mut Rng, s: &str) -> String {
    let mut b = s.as_bytes().to_vec();
    for _ in 0..1 + r.below(3) {
        let i = r.below(b.len() + 1);
        match r.below(5) {
            0 if i < b.len() => b[i] = b"[]{}=\".,#\n '\\x0:/-"[r.below(18)],
            1 if i < b.len() => {
                b.remove(i);
            }
            2 => b.insert(i, b"[]{}=\".,#\n '\\x0:/-"[r.below(18)]),
            3 if i < b.len() => b.truncate(i),
            _ if i < b.len() => b[i] ^= 1 << r.below(8),
            _ => {}
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

/// Checks one document; returns 0 when it was accepted, 1 when refused
/// as TOML, 2 when refused as a setting.
fn judge(text: &str) -> usize {
    match Config::parse(text) {
        Ok(cfg) => {
            // What passes is valid by construction of the library's checks.
            for (g, gc) in &cfg.groups {
                GroupName::new(g.as_str()).expect("group name");
                gc.options.validate().expect("options");
            }
            0
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("line "), "{text:?}: {msg}");
            assert_eq!(msg.lines().count(), 1, "{text:?}: {msg}");
            match &e {
                ConfigError::Invalid { field, line, .. } => {
                    assert!(field.starts_with("group."), "{text:?}: {msg}");
                    assert!(*line <= text.lines().count().max(1), "{text:?}: {msg}");
                    2
                }
                ConfigError::Syntax { .. } => 1,
            }
        }
    }
}

#[test]
fn random_and_mutated_documents_never_panic_and_errors_are_one_line() {
    let mut r = Rng(0x7031_5eed_c0f1_9a11);
    let example = include_str!("../../../examples/anycast.toml");
    let start = std::time::Instant::now();
    let mut seen = [0usize; 3];
    for _ in 0..50_000 {
        let base = match r.below(10) {
            0 => example.to_string(),
            _ => document(&mut r),
        };
        seen[judge(&base)] += 1;
        seen[judge(&mutate(&mut r, &base))] += 1;
    }
    eprintln!(
        "100000 documents in {:.1?}: {} accepted, {} refused as TOML, {} as settings",
        start.elapsed(),
        seen[0],
        seen[1],
        seen[2]
    );
    // Every outcome is exercised, not only the parser's refusals.
    assert!(seen.iter().all(|n| *n > 5_000), "{seen:?}");
}
