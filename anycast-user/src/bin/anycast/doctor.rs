//! `anycast doctor`: prints the library's checks ([`anycast::doctor`]),
//! one line each or as JSON, and fails when one of them failed.

use std::io::Write;

use anycast::{
    PinDir,
    doctor::{self, Options, Status},
};

use crate::{OutputError, cli::DoctorArgs};

/// Runs the checks and prints them; an error (exit 1) when any failed.
pub(crate) fn doctor(pin: &PinDir, args: &DoctorArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let report = doctor::run(
        pin,
        &Options {
            iface: args.iface.clone(),
        },
    );
    if args.json {
        say!(out, "{}", serde_json::to_string_pretty(&report)?);
    } else {
        for c in &report.checks {
            say!(out, "{c}");
        }
        say!(out, "{}", report.summary());
    }
    if report.status == Status::Fail {
        let failed: Vec<String> = report
            .checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| match c.subject.as_str() {
                "" => c.name.to_string(),
                s => format!("{} {s}", c.name),
            })
            .collect();
        anyhow::bail!(
            "{} check{} failed: {}",
            failed.len(),
            if failed.len() == 1 { "" } else { "s" },
            failed.join(", ")
        );
    }
    Ok(())
}
