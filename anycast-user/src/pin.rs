//! The pin directory: where maps and XDP links live on the BPF filesystem,
//! so that the data plane outlives every CLI call.

use std::{
    fs::{self, DirBuilder, File},
    io,
    os::unix::{ffi::OsStrExt as _, fs::DirBuilderExt as _, io::AsRawFd as _},
    path::{Path, PathBuf},
};

use crate::error::{Error, Result};

/// Default pin directory.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/anycast";
/// Where bpffs is mounted on a standard system.
const BPFFS_MOUNT: &str = "/sys/fs/bpf";
/// `statfs` magic of the BPF filesystem.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// A pin directory on bpffs, root-only (0700).
#[derive(Clone, Debug)]
pub struct PinDir {
    path: PathBuf,
}

/// An exclusive lock on the pin dir, released on drop.
#[derive(Debug)]
pub struct PinLock {
    _dir: File,
}

impl PinDir {
    /// A pin dir at `path` (not created yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        PinDir { path: path.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the directory exists.
    pub fn exists(&self) -> bool {
        self.path.is_dir()
    }

    /// Where map `name` is pinned.
    pub fn map_path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Where the XDP link of interface `ifindex` is pinned.
    pub fn link_path(&self, ifindex: u32) -> PathBuf {
        self.path.join(format!("link_{ifindex}"))
    }

    /// Makes sure bpffs is mounted under the pin dir and the directory exists with mode 0700.
    pub fn create(&self) -> Result<()> {
        let ancestor = self
            .path
            .ancestors()
            .find(|p| p.exists())
            .unwrap_or_else(|| Path::new("/"));
        if !is_bpffs(ancestor)? {
            if ancestor == Path::new(BPFFS_MOUNT) {
                mount_bpffs()?;
            } else {
                return Err(Error::NotBpffs(self.path.clone()));
            }
        }
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(())
    }

    /// Takes the writers' lock (`flock` on the directory), waiting for other writers.
    pub fn lock(&self) -> Result<PinLock> {
        let io_err = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        let dir = File::open(&self.path).map_err(io_err)?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io_err(io::Error::last_os_error()));
        }
        Ok(PinLock { _dir: dir })
    }

    /// Removes the directory and everything pinned in it.
    pub fn remove(&self) -> Result<()> {
        match fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::Io {
                path: self.path.clone(),
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

fn is_bpffs(path: &Path) -> Result<bool> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, e),
    })?;
    // SAFETY: statfs writes into a zeroed struct we own; `c` is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(Error::Io {
            path: path.to_path_buf(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(st.f_type as i64 == BPF_FS_MAGIC)
}

fn mount_bpffs() -> Result<()> {
    let target = c"/sys/fs/bpf";
    // SAFETY: plain mount(2) with static NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(Error::Io {
            path: PathBuf::from(BPFFS_MOUNT),
            source: io::Error::last_os_error(),
        });
    }
    log::info!("mounted bpffs at {BPFFS_MOUNT}");
    Ok(())
}
