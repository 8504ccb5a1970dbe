//! Lab test of scoped anycast addresses through attach and detach: the
//! data plane knows an interface by its attachment id, which changes when
//! the interface is detached and attached again; the scope must follow, or
//! in-scope queries would be dropped (or out-of-scope ones let in). Real
//! UDP queries from the client through `c0` to an on-link member.

use anycast_tests::{
    lab::{ANYCAST, MemberLab, Service},
    require_root,
};
use anyhow::{Context as _, Result, ensure};
use serde_json::Value;

const PORT: u16 = 5391;

fn global(ml: &MemberLab, counter: &str) -> Result<u64> {
    ml.lab.stats("router")?["global"][counter]
        .as_u64()
        .with_context(|| format!("no global {counter}"))
}

/// Queries from new flows until one is answered or `tries` went
/// unanswered; whether one was.
fn answered(ml: &MemberLab, tries: usize) -> Result<bool> {
    for _ in 0..tries {
        let sock = ml.client_socket()?;
        if ml.query(&sock, PORT)?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

#[test]
#[ignore = "needs root (network namespaces, BPF): run with `cargo xtask test`"]
fn scopes_follow_attach_and_detach() -> Result<()> {
    require_root()?;
    let ml = MemberLab::attached("scopes", "dns")?;
    let lab = &ml.lab;
    ml.add_member("dns", "m1", "r1", 10)?;
    let _answers = Service::start(lab.ns("m1")?, ANYCAST, PORT, "m1")?;
    let anycast = ANYCAST.to_string();
    let scope = |ifaces: &str| -> Result<()> {
        lab.anycast_ok(
            "router",
            &["addr", "add", &anycast, "--group", "dns", "--scope", ifaces],
        )?;
        Ok(())
    };
    // In scope: answered, nothing dropped.
    scope("c0")?;
    ensure!(answered(&ml, 5)?, "no answer from inside the scope");
    ensure!(global(&ml, "out_of_scope_drops")? == 0);
    // Out of scope (only r1, a member interface): dropped, counted.
    scope("r1")?;
    ensure!(!answered(&ml, 3)?, "answered from outside the scope");
    let dropped = global(&ml, "out_of_scope_drops")?;
    ensure!(dropped >= 3, "out_of_scope_drops {dropped}");
    // Back in scope, then c0 detached and attached again (another
    // attachment id, or the same one reused): still in scope.
    scope("c0,r1")?;
    ensure!(answered(&ml, 5)?);
    lab.anycast_ok("router", &["detach", "c0"])?;
    lab.anycast_ok("router", &["attach", "c0", "--role", "edge"])?;
    let before = global(&ml, "out_of_scope_drops")?;
    ensure!(answered(&ml, 5)?, "no answer after c0 came back");
    ensure!(global(&ml, "out_of_scope_drops")? == before);
    // An attach that fails after the scope took the interface in (native
    // XDP on loopback): taken out again; the bits match the attachments.
    scope("c0,lo")?;
    let refused = lab.anycast_in("router", &["attach", "lo", "--mode", "native"])?;
    ensure!(!refused.status.success(), "native XDP on lo was accepted");
    let repair: Value =
        serde_json::from_str(&lab.anycast_ok("router", &["repair", "--check", "--json"])?)?;
    ensure!(repair["scopes"] == 0, "{repair}");
    // `addr add` without --scope: from everywhere again, and it says so.
    let said = lab.anycast_ok("router", &["addr", "add", &anycast, "--group", "dns"])?;
    ensure!(said.contains("now reached from every interface"), "{said}");
    let list: Value =
        serde_json::from_str(&lab.anycast_ok("router", &["addr", "list", "--json"])?)?;
    ensure!(list[0]["scope"] == serde_json::json!([]), "{list}");
    Ok(())
}
