//! Control-plane speed (issue 19, item 7): loading many exact addresses
//! through the library, one map update at a time (as loads were written
//! before bulk inserts) and in bulk, interleaved on fresh maps in the same
//! run; and a member change, from the `anycast member set` call to the
//! data plane's maps showing it.
//!
//! ```text
//!  router (the CLI, r0 attached) r0 ---- m0 member
//!    group dns: m1 and m2 on r0, L2; m1's metric moves between 10 and 30,
//!    m2 stays at 20: every change moves the group's selection
//! ```
//!
//! The selection is read from the pinned maps by this process (aya, no
//! bpftool), polled every 50 us: GROUPS' live slot of the group, then that
//! slot of SELECTION. With `ANYCAST_BENCH_BASELINE_CLI=PATH` (another
//! build of the `anycast` binary, of the same pinned layout), its member
//! changes are timed too, alternating with this build's on the same state.

use std::{
    fmt::Write as _,
    net::Ipv6Addr,
    path::{Path, PathBuf},
    process::Stdio,
    thread,
    time::{Duration, Instant},
};

use anycast::{AnycastPrefix, GroupName};
use anycast_common::{GroupInfo, IfaceRole, MemberInfo, Selection, SourceAction, map_names};
use anycast_tests::{
    lab::{End, Lab},
    prog::ProgramUnderTest,
};
use anyhow::{Context as _, Result, bail, ensure};
use aya::maps::{Array, Map, MapData};
use serde_json::{Value, json};

/// The goals of the issue.
const LOAD_GOAL_S: f64 = 2.0;
const LOAD_GOAL_N: usize = 1_000_000;
const CHANGE_GOAL_MS: f64 = 5.0;
/// The anycast address of the member-change lab's group.
const ANY: &str = "2001:db8:c7::53";

pub(crate) struct Shape {
    /// Addresses per load.
    pub load: usize,
    /// Loads of each kind, interleaved.
    pub rounds: usize,
    /// Member changes (of each build).
    pub trials: usize,
    /// Another build of the CLI, timed alternating with this one.
    pub baseline_cli: Option<PathBuf>,
}

impl Shape {
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Shape {
                load: 100_000,
                rounds: 1,
                trials: 20,
                baseline_cli: baseline_cli(),
            }
        } else {
            Shape {
                load: LOAD_GOAL_N,
                rounds: 3,
                trials: 50,
                baseline_cli: baseline_cli(),
            }
        }
    }
}

fn baseline_cli() -> Option<PathBuf> {
    std::env::var_os("ANYCAST_BENCH_BASELINE_CLI").map(PathBuf::from)
}

/// Member changes of one build of the CLI, ms each.
#[derive(Default)]
pub(crate) struct Changes {
    /// From the call to the selection published.
    pub to_map: Vec<f64>,
    /// From the call to the command's exit.
    pub to_exit: Vec<f64>,
    /// `anycast --version` from the call to its exit: starting the
    /// binary, no map work.
    pub start: Vec<f64>,
}

pub(crate) struct Measured {
    pub load: usize,
    /// Seconds per load, one map update at a time.
    pub one_by_one: Vec<f64>,
    /// Seconds per load, in bulk.
    pub bulk: Vec<f64>,
    /// This build's member changes.
    pub changes: Changes,
    /// The baseline build's, if one was given.
    pub baseline: Option<(PathBuf, Changes)>,
    /// The 1-minute load average at the end.
    pub loadavg: f64,
}

fn addresses(n: usize) -> Vec<AnycastPrefix> {
    let base = u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0));
    (0..n as u128)
        .map(|i| AnycastPrefix {
            addr: Ipv6Addr::from(base + i),
            len: 128,
        })
        .collect()
}

/// One load of `list` on fresh maps; its seconds. The data plane must
/// drop a sample of the addresses as anycast sources and pass the next
/// address after them.
fn load_once(list: &[AnycastPrefix], one_by_one: bool) -> Result<f64> {
    let mut p = ProgramUnderTest::load(IfaceRole::Edge, SourceAction::Drop)?;
    p.state.set_one_by_one_loads(one_by_one);
    let group = GroupName::new("big")?;
    let start = Instant::now();
    let added = p.state.load_address_list(list, &group)?;
    let took = start.elapsed().as_secs_f64();
    ensure!(added == list.len(), "{added} of {} added", list.len());
    for a in list.iter().step_by((list.len() / 100).max(1)) {
        let r = p.run(&crate::udp(a.addr, crate::SERVER, 1))?;
        ensure!(r.action == crate::XDP_DROP, "{} not dropped", a.addr);
    }
    let after = list.last().map_or(0, |a| u128::from(a.addr)) + 1;
    let r = p.run(&crate::udp(Ipv6Addr::from(after), crate::SERVER, 1))?;
    ensure!(
        r.action == crate::XDP_PASS,
        "an address not loaded is dropped"
    );
    Ok(took)
}

/// The maps a member change shows in, opened from their pins.
struct Reader {
    groups: Array<MapData, GroupInfo>,
    members: Array<MapData, MemberInfo>,
    selection: Array<MapData, Selection>,
}

impl Reader {
    fn open(pin: &Path) -> Result<Self> {
        let open = |name: &str| -> Result<Map> {
            let data = MapData::from_pin(pin.join(name))
                .with_context(|| format!("opening the pin of {name}"))?;
            Ok(Map::from_map_data(data)?)
        };
        Ok(Reader {
            groups: open(map_names::GROUPS)?.try_into()?,
            members: open(map_names::MEMBERS)?.try_into()?,
            selection: open(map_names::SELECTION)?.try_into()?,
        })
    }

    /// The id of group `name`.
    fn group(&self, name: &str) -> Result<u32> {
        for id in 1..self.groups.len() {
            let g = self.groups.get(&id, 0)?;
            if g.in_use != 0 && g.name_str() == name {
                return Ok(id);
            }
        }
        bail!("no group {name}")
    }

    /// The id of member `name` (ids are handed out lowest first).
    fn member(&self, name: &str) -> Result<u32> {
        for id in 1..64 {
            if self.members.get(&id, 0)?.name_str() == name {
                return Ok(id);
            }
        }
        bail!("no member {name}")
    }

    /// Group `gid`'s live slot.
    fn slot(&self, gid: u32) -> Result<u32> {
        Ok(self.groups.get(&gid, 0)?.active_slot & 1)
    }

    /// The one member group `gid`'s live selection names, if it names one.
    fn chosen(&self, gid: u32, slot: u32) -> Result<Option<u32>> {
        let sel = self.selection.get(&(gid * 2 + slot), 0)?;
        let table = &sel.table[..(sel.size as usize).min(sel.table.len())];
        Ok(match table.first() {
            Some(&m) if sel.count == 1 && table.iter().all(|x| *x == m) => Some(m),
            _ => None,
        })
    }
}

/// Member changes through the CLI: this build's, and the baseline's
/// (alternating with them) if given.
fn member_changes(trials: usize, baseline: Option<&Path>) -> Result<(Changes, Option<Changes>)> {
    let mut lab = Lab::new("ctlbench")?;
    lab.node("router", true)?;
    lab.node("member", false)?;
    lab.link(
        End {
            node: "router",
            ifname: "r0",
            addr: "fd00:c7::1/64",
        },
        End {
            node: "member",
            ifname: "m0",
            addr: "fd00:c7::2/64",
        },
    )?;
    lab.anycast_ok("router", &["attach", "r0", "--role", "edge"])?;
    lab.anycast_ok("router", &["addr", "add", ANY, "--group", "dns"])?;
    for (name, mac, metric) in [
        ("m1", "02:00:00:00:c7:01", "10"),
        ("m2", "02:00:00:00:c7:02", "20"),
    ] {
        lab.anycast_ok(
            "router",
            &[
                "member", "add", "dns", name, "--iface", "r0", "--mac", mac, "--metric", metric,
            ],
        )?;
    }
    let maps = Reader::open(&lab.pin_dir)?;
    let gid = maps.group("dns")?;
    let (m1, m2) = (maps.member("m1")?, maps.member("m2")?);
    ensure!(
        maps.chosen(gid, maps.slot(gid)?)? == Some(m1),
        "m1 (metric 10) is not the one selected"
    );
    let (mut ours, mut theirs) = (Changes::default(), Changes::default());
    let builds = if baseline.is_some() { 2 } else { 1 };
    for t in 0..trials * builds {
        // m1 behind m2, then back in front.
        let (metric, want) = if t % 2 == 0 { ("30", m2) } else { ("10", m1) };
        let slot = maps.slot(gid)?;
        let args = ["member", "set", "dns", "m1", "--metric", metric];
        // Builds alternate every two trials, so both move m1 both ways.
        let (mut cmd, into) = match baseline {
            Some(bin) if t / 2 % 2 == 1 => {
                let mut c = std::process::Command::new(bin);
                c.arg("--pin-dir")
                    .arg(&lab.pin_dir)
                    .args(["--netns", &lab.ns("router")?.name])
                    .args(args)
                    .env_remove("ANYCAST_PIN_DIR");
                (c, &mut theirs)
            }
            _ => (lab.anycast_cmd(&lab.pin_dir, "router", &args)?, &mut ours),
        };
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let start = Instant::now();
        let mut child = cmd.spawn().context("starting anycast member set")?;
        let (mut seen, mut exited) = (None, None);
        while seen.is_none() || exited.is_none() {
            if start.elapsed() > Duration::from_secs(5) {
                let _ = child.kill();
                let _ = child.wait();
                bail!("trial {t}: no change within 5 s (map {seen:?}, exit {exited:?})");
            }
            if seen.is_none() {
                let now = maps.slot(gid)?;
                if now != slot && maps.chosen(gid, now)? == Some(want) {
                    seen = Some(start.elapsed());
                }
            }
            if exited.is_none()
                && let Some(status) = child.try_wait()?
            {
                exited = Some(start.elapsed());
                ensure!(status.success(), "trial {t}: anycast member set failed");
            }
            thread::sleep(Duration::from_micros(50));
        }
        let ms = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
        into.to_map.push(ms(seen));
        into.to_exit.push(ms(exited));
        // The floor: the same binary started, doing nothing.
        let bin = match baseline {
            Some(bin) if t / 2 % 2 == 1 => bin.to_path_buf(),
            _ => anycast_tests::lab::anycast_bin()?,
        };
        let start = Instant::now();
        let status = std::process::Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .status()?;
        ensure!(status.success(), "anycast --version failed");
        into.start.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok((ours, baseline.map(|_| theirs)))
}

/// Runs both parts.
pub(crate) fn run(shape: &Shape) -> Result<Measured> {
    let list = addresses(shape.load);
    let (mut one_by_one, mut bulk) = (Vec::new(), Vec::new());
    for _ in 0..shape.rounds {
        one_by_one.push(load_once(&list, true).context("a load one by one")?);
        bulk.push(load_once(&list, false).context("a bulk load")?);
    }
    drop(list);
    let (changes, baseline) = member_changes(shape.trials, shape.baseline_cli.as_deref())
        .context("the member changes")?;
    let loadavg = std::fs::read_to_string("/proc/loadavg")?
        .split_whitespace()
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(f64::NAN);
    Ok(Measured {
        load: shape.load,
        one_by_one,
        bulk,
        changes,
        baseline: shape.baseline_cli.clone().zip(baseline),
        loadavg,
    })
}

/// min, median, 99th percentile (nearest rank) and max.
fn spread(v: &[f64]) -> [f64; 4] {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return [f64::NAN; 4];
    }
    let rank = |q: f64| s[((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
    [s[0], rank(0.5), rank(0.99), s[s.len() - 1]]
}

/// The report's section.
pub(crate) fn report(md: &mut String, m: &Measured) {
    let _ = writeln!(
        md,
        "## control plane\n\n\
         Loading {} exact addresses into a fresh group through the library \
         (`State::load_address_list`, the path of `anycast addr load`), one map update at a \
         time (as before bulk inserts) and in bulk, {} of each, interleaved on fresh maps; \
         seconds, min / median / max. Then {} member changes (`anycast member set dns m1 \
         --metric N`, spawned by the bench), each moving the group's selection, timed from the \
         spawn to the new selection in the pinned maps (polled every 50 us) and to the \
         command's exit, and the binary's start alone (`anycast --version`, spawn to exit) \
         after each; ms. Load average at the end: {:.2}.\n",
        m.load,
        m.one_by_one.len(),
        m.changes.to_map.len(),
        m.loadavg
    );
    let _ = writeln!(md, "| load | min | median | max |\n|---|---:|---:|---:|");
    for (what, v) in [("one by one", &m.one_by_one), ("bulk", &m.bulk)] {
        let [a, b, _, d] = spread(v);
        let _ = writeln!(
            md,
            "| {} /128s, {what} | {a:.2} s | {b:.2} s | {d:.2} s |",
            m.load
        );
    }
    let _ = writeln!(
        md,
        "\n| member change | min | median | p99 | max |\n|---|---:|---:|---:|---:|"
    );
    let mut rows = vec![("this build", &m.changes)];
    if let Some((_, c)) = &m.baseline {
        rows.push(("baseline build", c));
    }
    for (build, c) in rows {
        for (what, v) in [
            ("call to the selection in the map", &c.to_map),
            ("call to the command's exit", &c.to_exit),
            ("`anycast --version`, call to exit (the floor)", &c.start),
        ] {
            let [a, b, p, d] = spread(v);
            let _ = writeln!(
                md,
                "| {build}: {what} | {a:.2} ms | {b:.2} ms | {p:.2} ms | {d:.2} ms |"
            );
        }
    }
    if let Some((bin, _)) = &m.baseline {
        let _ = writeln!(md, "\nBaseline build: `{}`.", bin.display());
    }
    let _ = writeln!(md);
}

/// The issue's goals, judged here.
pub(crate) fn targets(m: &Measured) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    let [_, median, _, _] = spread(&m.bulk);
    let [_, before, _, _] = spread(&m.one_by_one);
    if m.load >= LOAD_GOAL_N {
        out.push((
            format!(
                "load {LOAD_GOAL_N} /128s through the library in under {LOAD_GOAL_S} s (median)"
            ),
            format!("{median:.2} s (one by one: {before:.2} s)"),
            median < LOAD_GOAL_S,
        ));
    }
    let [_, median, p99, _] = spread(&m.changes.to_map);
    out.push((
        format!("a member change reaches the map within {CHANGE_GOAL_MS} ms of the CLI call (p99)"),
        format!("median {median:.2} ms, p99 {p99:.2} ms"),
        p99 < CHANGE_GOAL_MS,
    ));
    out
}

/// The measurements, for results.json.
pub(crate) fn json(m: &Measured) -> Value {
    let one = |v: &[f64]| {
        let [min, median, p99, max] = spread(v);
        json!({"min": min, "median": median, "p99": p99, "max": max, "all": v})
    };
    json!({
        "load_addresses": m.load,
        "load_one_by_one_s": one(&m.one_by_one),
        "load_bulk_s": one(&m.bulk),
        "member_change_to_map_ms": one(&m.changes.to_map),
        "member_change_to_exit_ms": one(&m.changes.to_exit),
        "binary_start_ms": one(&m.changes.start),
        "baseline_cli": m.baseline.as_ref().map(|(bin, c)| json!({
            "path": bin.display().to_string(),
            "member_change_to_map_ms": one(&c.to_map),
            "member_change_to_exit_ms": one(&c.to_exit),
            "binary_start_ms": one(&c.start),
        })),
        "loadavg": m.loadavg,
    })
}
