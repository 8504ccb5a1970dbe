//! The `anycast` binary run against a pin dir of its own (on bpffs, outside
//! any lab namespace), for tests of what the CLI does to pinned state.

use std::{
    path::PathBuf,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Result, bail, ensure};

use crate::lab::anycast_bin;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A pin dir of its own, unique to the process and the test, purged (and
/// removed) on drop.
pub struct Pinned {
    /// The pin dir.
    pub dir: PathBuf,
}

impl Pinned {
    /// A pin dir named after `test`; nothing is made until a command runs.
    pub fn new(test: &str) -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Pinned {
            dir: PathBuf::from(format!("/sys/fs/bpf/ac{}-{n}-{test}", std::process::id())),
        }
    }

    /// `anycast --pin-dir DIR ARGS`, not started.
    pub fn command(&self, args: &[&str]) -> Result<Command> {
        let mut c = Command::new(anycast_bin()?);
        c.arg("--pin-dir").arg(&self.dir).args(args);
        Ok(c)
    }

    /// Runs `anycast ARGS` to the end, whatever its end.
    pub fn output(&self, args: &[&str]) -> Result<Output> {
        Ok(self.command(args)?.output()?)
    }

    /// Runs `anycast ARGS` to the end; its output, or its stderr as the error.
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        let out = self.output(args)?;
        if !out.status.success() {
            bail!(
                "`anycast {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(out)
    }

    /// `anycast ARGS` that must succeed: its stdout.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.run(args)?.stdout).into_owned())
    }

    /// `anycast ARGS` that must fail: its stderr.
    pub fn refused(&self, args: &[&str]) -> Result<String> {
        let out = self.output(args)?;
        ensure!(
            !out.status.success(),
            "`anycast {}` succeeded",
            args.join(" ")
        );
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ = self.output(&["detach", "--purge"]);
        if self.dir.exists() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
