//! Test harnesses of anycast.
//!
//! - [`prog`]: the XDP program with fresh maps, run on crafted frames with
//!   BPF_PROG_TEST_RUN and compared with the reference model.
//! - [`lab`]: network namespaces joined by veth pairs, the `anycast` binary
//!   run inside them, and real sockets at both ends.
//!
//! Frames come from `anycast_common::frame`. Both harnesses need root.

pub mod fuzz;
pub mod lab;
pub mod prog;

/// Fails the calling test with a clear message unless it runs as root.
pub fn require_root() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!(
            "this test needs root (BPF and network namespaces): run `cargo xtask test` as root"
        );
    }
    Ok(())
}
