//! docs/JSON.md against the real `--json` outputs: a lab with a running
//! service (a checked on-link member, an encapsulated one, a flow, a
//! reload, a BGP prefix), every command the document lists run with its
//! arguments, and each output read both ways: every field documented is
//! there with its type, every field printed is documented, objects carry
//! `"version": 1`. And every command whose `--help` offers `--json` is in
//! the document. `trace` streams one object per line: its first line is
//! checked, printed while the client asks the anycast address.

use std::{collections::BTreeMap, net::Ipv6Addr, time::Duration};

use anycast_tests::{
    lab::{ANYCAST, CLIENT, Lines, M3, MemberLab, Service},
    require_root,
};
use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

const M1: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xb, 1, 0, 0, 0, 0, 2);
/// Where clients ask, on the anycast address.
const PORT: u16 = 5390;
/// Where the check asks, on m1's own address.
const HEALTH: u16 = 5391;
/// A service loads and verifies the program once per interface it
/// attaches: seconds on a busy machine.
const STARTUP: Duration = Duration::from_secs(60);

/// One row of a field table: a path, its type, whether it may be null or
/// left out.
#[derive(Debug)]
struct Row {
    path: String,
    ty: String,
    nullable: bool,
    optional: bool,
}

/// The document: each command's heading (`anycast stats --json`) and its
/// rows; the commands documented elsewhere.
struct Doc {
    sections: BTreeMap<String, Vec<Row>>,
    elsewhere: Vec<String>,
}

/// Reads docs/JSON.md: a `## \`anycast ...\`` heading per command, then a
/// table `| field | type | meaning |`.
fn parse_doc(text: &str) -> Result<Doc> {
    let mut sections = BTreeMap::new();
    let mut elsewhere = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            current = h
                .strip_prefix('`')
                .and_then(|h| h.strip_suffix('`'))
                .filter(|h| h.starts_with("anycast "))
                .map(str::to_string);
            if let Some(c) = &current {
                sections.insert(c.clone(), Vec::new());
            }
            continue;
        }
        if line.contains("documented with its command")
            || line.contains("documented with their commands")
        {
            elsewhere.extend(
                line.split('`')
                    .skip(1)
                    .step_by(2)
                    .filter(|s| s.starts_with("anycast "))
                    .map(str::to_string),
            );
        }
        let (Some(cmd), Some(row)) = (&current, line.strip_prefix("| `")) else {
            continue;
        };
        let cells: Vec<&str> = row.split(" | ").collect();
        ensure!(cells.len() == 3, "a row of 3 cells: {line}");
        let path = cells[0]
            .strip_suffix('`')
            .with_context(|| line.to_string())?;
        let mut ty = cells[1].trim();
        let optional = ty.ends_with(", optional");
        ty = ty.trim_end_matches(", optional");
        let nullable = ty.ends_with(" or null");
        ty = ty.trim_end_matches(" or null");
        ensure!(
            ["string", "integer", "number", "boolean", "object", "array"].contains(&ty),
            "unknown type in {line}"
        );
        sections.get_mut(cmd).context("a section")?.push(Row {
            path: path.to_string(),
            ty: ty.to_string(),
            nullable,
            optional,
        });
    }
    Ok(Doc {
        sections,
        elsewhere,
    })
}

/// Whether `v` is of the document's type `ty`.
fn is_type(v: &Value, ty: &str) -> bool {
    match ty {
        "string" => v.is_string(),
        "integer" => v.is_u64() || v.is_i64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        _ => false,
    }
}

/// A path's steps: a key, every element of an array, every value of a map.
#[derive(Debug)]
enum Step {
    Key(String),
    Each,
    Star,
}

fn steps(path: &str) -> Vec<Step> {
    let mut out = Vec::new();
    for part in path.split('.') {
        if part == "*" {
            out.push(Step::Star);
        } else if let Some(key) = part.strip_suffix("[]") {
            if !key.is_empty() {
                out.push(Step::Key(key.to_string()));
            }
            out.push(Step::Each);
        } else {
            out.push(Step::Key(part.to_string()));
        }
    }
    out
}

/// The values at `path` in `v`, and how many objects lacked its last key.
/// A map's `*` leaves out the keys that `rows` document by name (`pre` is
/// the path so far, as the document writes it).
fn find<'a>(
    v: &'a Value,
    steps: &[Step],
    pre: &str,
    rows: &[Row],
    found: &mut Vec<&'a Value>,
    missing: &mut usize,
) {
    let Some((first, rest)) = steps.split_first() else {
        found.push(v);
        return;
    };
    let join = |seg: &str| {
        if pre.is_empty() {
            seg.to_string()
        } else {
            format!("{pre}.{seg}")
        }
    };
    match first {
        Step::Key(k) => match v.get(k) {
            Some(inner) => find(inner, rest, &join(k), rows, found, missing),
            // A null parent (`last_reload` before a reload) has no keys.
            None if v.is_object() && rest.is_empty() => *missing += 1,
            None => {}
        },
        Step::Each => {
            for e in v.as_array().into_iter().flatten() {
                find(e, rest, &format!("{pre}[]"), rows, found, missing);
            }
        }
        Step::Star => {
            for (k, inner) in v.as_object().into_iter().flatten() {
                if rows.iter().any(|r| r.path == join(k)) {
                    continue;
                }
                find(inner, rest, &join("*"), rows, found, missing);
            }
        }
    }
}

/// Every key printed in `v`, as the document's path of it; the ones no
/// row documents go to `undocumented`.
fn undocumented(v: &Value, pre: &str, rows: &[Row], out: &mut Vec<String>) {
    let has = |p: &str| rows.iter().any(|r| r.path == p);
    match v {
        Value::Object(map) => {
            for (k, inner) in map {
                let named = if pre.is_empty() {
                    k.clone()
                } else {
                    format!("{pre}.{k}")
                };
                let star = if pre.is_empty() {
                    "*".to_string()
                } else {
                    format!("{pre}.*")
                };
                let path = if has(&named) {
                    named
                } else if has(&star) {
                    star
                } else {
                    out.push(named);
                    continue;
                };
                undocumented(inner, &path, rows, out);
            }
        }
        Value::Array(items) => {
            for e in items {
                undocumented(e, &format!("{pre}[]"), rows, out);
            }
        }
        _ => {}
    }
}

/// What is wrong with `output` by the rows of its section (empty: nothing).
fn check_output(output: &Value, rows: &[Row]) -> Vec<String> {
    let mut wrong = Vec::new();
    for row in rows {
        let (mut found, mut missing) = (Vec::new(), 0);
        find(
            output,
            &steps(&row.path),
            "",
            rows,
            &mut found,
            &mut missing,
        );
        if found.is_empty() {
            wrong.push(format!("{}: not in the output", row.path));
        }
        if missing > 0 && !row.optional {
            wrong.push(format!("{}: missing in {missing} places", row.path));
        }
        for v in found {
            if !(is_type(v, &row.ty) || row.nullable && v.is_null()) {
                wrong.push(format!("{}: {v} is no {}", row.path, row.ty));
            }
        }
    }
    let mut extra = Vec::new();
    undocumented(output, "", rows, &mut extra);
    extra.sort();
    extra.dedup();
    wrong.extend(extra.into_iter().map(|p| format!("{p}: not documented")));
    wrong
}

#[test]
fn the_checker_finds_a_missing_field_a_wrong_type_and_an_undocumented_one() -> Result<()> {
    let doc = parse_doc(
        "## `anycast x --json`\n\n| field | type | meaning |\n|---|---|---|\n\
         | `version` | integer | 1 |\n| `a` | array | a |\n| `a[].b` | string or null | b |\n\
         | `a[].c` | integer, optional | c |\n| `m` | object | m |\n| `m.*` | integer | counters |\n\
         | `m.name` | string | the name |\n",
    )?;
    let rows = &doc.sections["anycast x --json"];
    let good = serde_json::json!({"version": 1, "a": [{"b": null, "c": 1}, {"b": "x"}],
        "m": {"name": "n", "hits": 3}});
    ensure!(
        check_output(&good, rows).is_empty(),
        "{:?}",
        check_output(&good, rows)
    );
    let bad = serde_json::json!({"a": [{"b": 1}], "m": {"name": 2, "hits": "x"}, "z": 0});
    let said = check_output(&bad, rows).join("\n");
    for wrong in [
        "version: not in the output",
        "a[].b: 1 is no string",
        "a[].c: not in the output",
        "m.name: 2 is no string",
        "m.*: \"x\" is no integer",
        "z: not documented",
    ] {
        ensure!(said.contains(wrong), "{wrong:?} not in\n{said}");
    }
    Ok(())
}

/// The service's file: m1 on-link with a check, `far` encapsulated to m3,
/// the group's prefix announced by BGP (routes in table 100).
fn config(ml: &MemberLab) -> Result<String> {
    Ok(format!(
        "[bgp]\ntable = 100\nprotocol = 250\ndrain-time = 0.5\nhold-down = 0.5\n\
         [interface.c0]\nrole = \"edge\"\n[interface.r1]\nrole = \"member\"\n\
         [group.dns]\naddresses = [\"{ANYCAST}\"]\nscope = [\"c0\"]\nannounce = [\"2001:db8:ac::/48\"]\n\
         subnets = [{{ prefix = \"2001:db8:ac:1::/64\", subnet-router = true, scope = [\"c0\"] }}]\n\
         tunnel-source = \"fd00:c:1::1\"\n\
         [group.dns.member.m1]\niface = \"r1\"\nmac = \"{}\"\naddr = \"{M1}\"\n\
         metric = 10\n\
         [group.dns.member.m1.check]\nkind = \"udp\"\nport = {HEALTH}\nsend = \"health\"\n\
         expect = \"m1\"\ntarget = \"unicast\"\ninterval = 0.2\ntimeout = 0.1\nrise = 2\nfall = 2\n\
         [group.dns.member.far]\nencap = \"{M3}\"\nmetric = 20\n",
        ml.member_mac("m1")?
    ))
}

/// Every subcommand path whose `--help` offers `--json`.
fn commands_with_json(ml: &MemberLab) -> Result<Vec<String>> {
    let listed = |args: &[&str]| -> Result<Vec<String>> {
        let help = ml.lab.anycast_ok("router", &[args, &["--help"]].concat())?;
        Ok(anycast_tests::subcommands_in_help(&help))
    };
    let mut out = Vec::new();
    for top in listed(&[])? {
        let children = listed(&[&top])?;
        let paths: Vec<Vec<&str>> = if children.is_empty() {
            vec![vec![top.as_str()]]
        } else {
            children.iter().map(|c| vec![top.as_str(), c]).collect()
        };
        for p in paths {
            if ml
                .lab
                .anycast_ok("router", &[&p[..], &["--help"]].concat())?
                .lines()
                .any(|l| l.trim_start().starts_with("--json"))
            {
                out.push(p.join(" "));
            }
        }
    }
    Ok(out)
}

/// `anycast trace ARGS` in the router while the client asks the anycast
/// address (a new flow each time, at most 10 times): its first line.
fn first_trace_line(ml: &MemberLab, args: &[&str]) -> Result<String> {
    let (_running, stdout) = ml.lab.spawn_anycast(&ml.lab.pin_dir, "router", args)?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).is_ok() {
            let _ = tx.send(line);
        }
    });
    for _ in 0..10 {
        ml.answerer(PORT)?;
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            return Ok(line);
        }
    }
    bail!(
        "`anycast {}` printed nothing while the client asked",
        args.join(" ")
    )
}

#[test]
#[ignore = "needs root (namespaces, BPF): run with `cargo xtask test`"]
fn every_documented_field_is_in_the_real_output_with_its_type_and_no_other() -> Result<()> {
    require_root()?;
    let doc = parse_doc(include_str!("../../docs/JSON.md"))?;
    ensure!(doc.sections.len() >= 9, "{:?}", doc.sections.keys());
    let ml = MemberLab::new("json")?;
    let lab = &ml.lab;

    // Every command that offers --json is documented (here or with itself).
    let offered = commands_with_json(&ml)?;
    ensure!(offered.len() >= 7, "{offered:?}");
    for cmd in &offered {
        let named = |h: &String| h.starts_with(&format!("anycast {cmd} "));
        ensure!(
            doc.sections.keys().any(named) || doc.elsewhere.iter().any(named),
            "`anycast {cmd} --json` is not in docs/JSON.md"
        );
    }

    let m1 = lab.ns("m1")?;
    let _answers = Service::start(m1, ANYCAST, PORT, "m1")?;
    let _health = Service::start(m1, M1, HEALTH, "m1")?;
    let file = lab.file("json.toml", &config(&ml)?)?;
    let (_running, stdout) =
        lab.spawn_anycast(&lab.pin_dir, "router", &["run", "--config", file.arg()])?;
    let mut lines = Lines::new(stdout);
    lines.expect(&["serving"], STARTUP)?;
    lines.expect(
        &["member m1 of group dns: healthy"],
        Duration::from_secs(10),
    )?;
    // A flow for `flows list` (and for `explain` to find: its source port
    // is known), counters for `stats`, a reload for `status`.
    let sock = ml.client_socket()?;
    let answer = ml.query(&sock, PORT)?;
    ensure!(
        answer.as_ref().is_some_and(|(tag, _)| tag == "m1"),
        "{answer:?}"
    );
    let (sport, dport) = (sock.local_addr()?.port().to_string(), PORT.to_string());
    let (client, anycast) = (CLIENT.to_string(), ANYCAST.to_string());
    let explain = [
        "explain", "--iface", "c0", "--src", &client, "--dst", &anycast, "--proto", "udp",
        "--sport", &sport, "--dport", &dport, "--json",
    ];
    lab.anycast_ok("router", &["reload"])?;

    for (heading, rows) in &doc.sections {
        let mut args: Vec<&str> = heading.split_whitespace().skip(1).collect();
        if args.first() == Some(&"explain") {
            // The packet: the client's query of the flow above.
            args = explain.to_vec();
        }
        let out = if args.first() == Some(&"trace") {
            first_trace_line(&ml, &args)?
        } else if args.first() == Some(&"doctor") {
            // doctor exits 1 when a check fails; its JSON is printed either way.
            String::from_utf8(lab.anycast_in("router", &args)?.stdout)?
        } else {
            lab.anycast_ok("router", &args)?
        };
        let output: Value =
            serde_json::from_str(&out).with_context(|| format!("{heading}: {out}"))?;
        println!("{heading}:\n{out}");
        let mut wrong = check_output(&output, rows);
        // The announcements' prefixes exist in this lab; every other
        // documented array is filled above, so nothing is exempt.
        match &output {
            Value::Object(o) => {
                if o.get("version") != Some(&Value::from(1)) {
                    wrong.push("no \"version\": 1".to_string());
                }
            }
            Value::Array(a) => {
                if a.is_empty() {
                    wrong.push("an empty list checks nothing".to_string());
                }
                if !rows.iter().all(|r| r.path.starts_with("[].")) {
                    wrong.push("a list's rows are `[].field`".to_string());
                }
            }
            _ => wrong.push("neither an object nor an array".to_string()),
        }
        if !wrong.is_empty() {
            bail!("{heading} against docs/JSON.md:\n{}", wrong.join("\n"));
        }
    }
    Ok(())
}
