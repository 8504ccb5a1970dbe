//! The pin directory: where maps and XDP links live on the BPF filesystem,
//! so that the data plane outlives every CLI call.
//!
//! A pin dir is trusted only when nobody but root can change it: it and
//! every directory above it on the bpf filesystem belong to root and are
//! not writable by others ([`PinDir::check_trusted`]); and only when it is
//! on the bpf filesystem the rest of the system sees, not on one private to
//! this process's mount namespace, as `ip netns exec` makes
//! ([`PinDir::check_shared`]).

use std::{
    fs::{self, DirBuilder, File, Metadata},
    io,
    os::unix::{
        ffi::OsStrExt as _,
        fs::{DirBuilderExt as _, MetadataExt as _},
        io::AsRawFd as _,
    },
    path::{Path, PathBuf},
};

use anycast_common::{NetnsId, map_names, trace_map_names};

use crate::error::{Error, Result, Untrusted};

/// Default pin directory.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/anycast";
/// Where bpffs is mounted on a standard system.
const BPFFS_MOUNT: &str = "/sys/fs/bpf";
/// `statfs` magic of the BPF filesystem.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// The prefix of the pins of XDP links.
const LINK_PREFIX: &str = "link_";

/// A pin dir on bpffs, root-only (0700).
#[derive(Clone, Debug)]
pub struct PinDir {
    path: PathBuf,
}

/// An exclusive lock on the pin dir, released on drop.
#[derive(Debug)]
pub struct PinLock {
    _dir: File,
}

/// What [`PinDir::remove_layout`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// How many pins it removed.
    pub removed: usize,
    /// The entries it left, not made by anycast (the directory stays when
    /// there are any), by name.
    pub kept: Vec<String>,
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

    /// Where the XDP link of interface `ifindex` of network namespace
    /// `netns` is pinned: `link_<namespace inode>_<ifindex>`, as two
    /// namespaces may have interfaces of the same index.
    pub fn link_path(&self, netns: NetnsId, ifindex: u32) -> PathBuf {
        self.path
            .join(format!("{LINK_PREFIX}{}_{ifindex}", netns.ino))
    }

    /// Whether `name` is an entry anycast makes in a pin dir: a map of the
    /// layout, a trace map, or the pin of an XDP link (`link_N_M`, or `link_N` of layout
    /// 7 and before).
    pub fn is_layout_entry(name: &str) -> bool {
        if map_names::ALL.contains(&name) || trace_map_names::ALL.contains(&name) {
            return true;
        }
        let Some(rest) = name.strip_prefix(LINK_PREFIX) else {
            return false;
        };
        let mut parts = rest.split('_');
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        match (parts.next(), parts.next(), parts.next()) {
            (Some(a), None, None) => digits(a),
            (Some(a), Some(b), None) => digits(a) && digits(b),
            _ => false,
        }
    }

    /// The pin dir, or its nearest parent that exists.
    fn existing_ancestor(&self) -> &Path {
        self.path
            .ancestors()
            .find(|p| p.exists())
            .unwrap_or_else(|| Path::new("/"))
    }

    /// Which maps of the layout are pinned here, and which are missing.
    pub fn pinned_maps(&self) -> (Vec<&'static str>, Vec<&'static str>) {
        map_names::ALL
            .iter()
            .partition(|n| self.map_path(n).exists())
    }

    /// Makes sure bpffs is mounted under the pin dir and the directory
    /// exists with mode 0700. Returns the directories it created, outermost
    /// first.
    pub fn create(&self) -> Result<Vec<PathBuf>> {
        let ancestor = self.existing_ancestor();
        if !is_bpffs(ancestor)? {
            if ancestor == Path::new(BPFFS_MOUNT) {
                mount_bpffs()?;
            } else {
                return Err(Error::NotBpffs(self.path.clone()));
            }
        }
        let mut missing: Vec<PathBuf> = self
            .path
            .ancestors()
            .take_while(|p| !p.exists())
            .map(Path::to_path_buf)
            .collect();
        missing.reverse();
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(missing)
    }

    /// Removes the map pins named in `maps` and then the directories in
    /// `dirs` (as [`PinDir::create`] returned them) that are empty: what
    /// one call created, when it fails.
    pub(crate) fn remove_created(&self, maps: &[&'static str], dirs: &[PathBuf]) -> Result<()> {
        for name in maps {
            let path = self.map_path(name);
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(Error::Io { path, source: e });
                }
                _ => {}
            }
        }
        for dir in dirs.iter().rev() {
            // A directory someone else put something in meanwhile stays.
            let _ = fs::remove_dir(dir);
        }
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

    /// Removes what anycast pins here (every map of the layout and every
    /// link pin, see [`PinDir::is_layout_entry`]; removing a link's pin
    /// detaches it), then the directory if nothing else is in it. Anything
    /// else (another instance's pin dir below this one, files of other
    /// programs) stays, and with it the directory.
    pub fn remove_layout(&self) -> Result<Purged> {
        let io_err = |path: &Path, source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let entries = match fs::read_dir(&self.path) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Purged::default()),
            Err(e) => return Err(io_err(&self.path, e)),
        };
        let mut out = Purged::default();
        for entry in entries {
            let entry = entry.map_err(|e| io_err(&self.path, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if !is_dir && Self::is_layout_entry(&name) {
                match fs::remove_file(entry.path()) {
                    Ok(()) => out.removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&entry.path(), e)),
                }
            } else {
                out.kept.push(name);
            }
        }
        out.kept.sort();
        if out.kept.is_empty() {
            match fs::remove_dir(&self.path) {
                Ok(()) => {}
                // Someone made an entry since: it stays, and the directory.
                Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {
                    out.kept.push("(entries made meanwhile)".into());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&self.path, e)),
            }
        }
        Ok(out)
    }

    /// Refuses a pin dir that someone other than root could change: the
    /// directory, and every directory above it up to the root of its bpf
    /// filesystem, must belong to root and not be writable by group or
    /// others (bpffs is mounted 1777: anyone may make a directory there,
    /// and the owner of a pin dir can delete the maps and links in it).
    /// The root of the mount may be world-writable when it is sticky (no
    /// one can then remove or rename another's entries). A symbolic link
    /// on the way must belong to root, and the directories it leads to are
    /// checked the same way.
    pub fn check_trusted(&self) -> Result<()> {
        self.check_chain(&self.path, true)?;
        let real = fs::canonicalize(&self.path).map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })?;
        if real != self.path {
            self.check_chain(&real, false)?;
        }
        Ok(())
    }

    /// [`PinDir::check_trusted`] on the directories of `path` (`lexical`:
    /// as written, symbolic links not followed).
    fn check_chain(&self, path: &Path, lexical: bool) -> Result<()> {
        let untrusted = |dir: &Path, problem| Error::UntrustedPinDir {
            pin: self.path.clone(),
            dir: dir.to_path_buf(),
            problem,
        };
        let meta = |p: &Path| -> Result<Metadata> {
            let m = if lexical {
                fs::symlink_metadata(p)
            } else {
                fs::metadata(p)
            };
            m.map_err(|source| Error::Io {
                path: p.to_path_buf(),
                source,
            })
        };
        for dir in path.ancestors().filter(|p| !p.as_os_str().is_empty()) {
            let m = meta(dir)?;
            if m.file_type().is_symlink() {
                if m.uid() != 0 {
                    return Err(untrusted(dir, Untrusted::Owner(m.uid())));
                }
                continue;
            }
            if !is_bpffs(dir)? {
                break;
            }
            // The mount's root: its parent is on another file system.
            let top = dir
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .is_none_or(|p| fs::metadata(p).is_ok_and(|pm| pm.dev() != m.dev()));
            if m.uid() != 0 {
                return Err(untrusted(dir, Untrusted::Owner(m.uid())));
            }
            let writable = m.mode() & 0o022 != 0;
            let sticky = m.mode() & libc::S_ISVTX != 0;
            if writable && !(top && sticky) {
                return Err(untrusted(dir, Untrusted::Writable(m.mode() & 0o7777)));
            }
            if top {
                break;
            }
        }
        Ok(())
    }

    /// Refuses a pin dir on a bpf filesystem that other processes do not
    /// see. `ip netns exec` unshares the mount namespace (with propagation
    /// to the parent's off) and mounts a new sysfs on /sys, which hides the
    /// system's bpffs at /sys/fs/bpf; what this process would then pin (on
    /// a bpffs it mounts itself) vanishes with its mount namespace when it
    /// exits, and the next command sees none of it.
    ///
    /// The check: the nearest of this process's ancestors that is in
    /// another mount namespace (the shell that ran `ip netns exec`, `unshare
    /// -m` or `nsenter -m`; for a service with mounts of its own, its
    /// manager) is where the pins must be seen. If there is one, the bpf
    /// filesystem holding the pin dir (or its nearest existing parent) must
    /// be the very one that process sees at the same path (the same device,
    /// through `/proc/PID/root`): a bpffs shared into the namespace passes;
    /// a private one, or none (this command would mount a private one),
    /// does not. No such ancestor (the whole chain shares this mount
    /// namespace: a plain shell, a container with a process namespace of
    /// its own) or one whose view cannot be read: nothing to compare with,
    /// nothing is refused.
    pub fn check_shared(&self) -> Result<()> {
        let Some(pid) = ancestor_in_other_mount_ns() else {
            return Ok(());
        };
        let private = || Error::PrivateBpffs(self.path.clone());
        let ancestor = self.existing_ancestor();
        if !is_bpffs(ancestor)? {
            return Err(private());
        }
        let ours = fs::metadata(ancestor).map_err(|source| Error::Io {
            path: ancestor.to_path_buf(),
            source,
        })?;
        let mut theirs = PathBuf::from(format!("/proc/{pid}/root"));
        theirs.push(ancestor.strip_prefix("/").unwrap_or(ancestor));
        match fs::metadata(&theirs) {
            Ok(m) if m.dev() == ours.dev() => Ok(()),
            Ok(_) => Err(private()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(private()),
            // Its view is not readable: nothing to compare with.
            Err(_) => Ok(()),
        }
    }
}

/// The nearest ancestor process in another mount namespace than this
/// thread's, if any can be found (at most 64 generations up; stops at a
/// process whose namespace or parent cannot be read).
fn ancestor_in_other_mount_ns() -> Option<u32> {
    let ns = |pid: &str| fs::metadata(format!("/proc/{pid}/ns/mnt")).map(|m| (m.dev(), m.ino()));
    let mine = ns("thread-self").ok()?;
    let mut pid = std::os::unix::process::parent_id();
    for _ in 0..64 {
        if pid == 0 {
            return None;
        }
        if ns(&pid.to_string()).ok()? != mine {
            return Some(pid);
        }
        pid = parent_of(pid)?;
    }
    None
}

/// The parent of process `pid`, from `/proc/PID/stat` (the field after
/// the state, which follows the parenthesised command name).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

pub(crate) fn is_bpffs(path: &Path) -> Result<bool> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_layouts_names_are_its_entries() {
        for yes in ["FLOWS", "ANYCAST_META", "link_4026531840_2", "link_7"] {
            assert!(PinDir::is_layout_entry(yes), "{yes}");
        }
        for no in [
            "flows",
            "FLOWS2",
            "link_",
            "link_a",
            "link_1_",
            "link_1_2_3",
            "link__2",
            "inner",
            "",
        ] {
            assert!(!PinDir::is_layout_entry(no), "{no}");
        }
    }
}
