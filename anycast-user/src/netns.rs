//! Entering a network namespace, so that `--netns NAME` works like
//! `nsenter --net=/run/netns/NAME` while keeping this mount namespace (and
//! with it the bpffs pins, which `ip netns exec` would hide); and which
//! namespace the calling thread is in, as attachments and members record it.

use std::{
    fs::{self, File},
    io,
    os::unix::{fs::MetadataExt as _, io::AsRawFd as _},
    path::{Path, PathBuf},
};

use anycast_common::NetnsId;

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

/// The network namespace of the calling thread (which `--netns` may have
/// moved away from the process's): the device and inode of its nsfs file.
pub fn current() -> Result<NetnsId> {
    let path = Path::new("/proc/thread-self/ns/net");
    let st = fs::metadata(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(NetnsId {
        dev: st.dev(),
        ino: st.ino(),
    })
}
