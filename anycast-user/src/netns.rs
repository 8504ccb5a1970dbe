//! Entering a network namespace, so that `--netns NAME` works like
//! `nsenter --net=/run/netns/NAME` while keeping this mount namespace (and
//! with it the bpffs pins, which `ip netns exec` would hide).

use std::{fs::File, io, os::unix::io::AsRawFd as _, path::PathBuf};

use crate::error::{Error, Result};

/// Moves the calling thread into network namespace `name` (a name under
/// /run/netns, or a path). Call it before starting any other thread.
pub fn enter(name: &str) -> Result<()> {
    let path = if name.contains('/') {
        PathBuf::from(name)
    } else {
        PathBuf::from("/run/netns").join(name)
    };
    let io_err = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let f = File::open(&path).map_err(io_err)?;
    // SAFETY: setns on a namespace file descriptor we own.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io_err(io::Error::last_os_error()));
    }
    Ok(())
}
