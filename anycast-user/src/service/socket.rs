//! The service's state socket: a root-only unix socket where `anycast
//! status` asks for the service's view and `anycast reload` has it re-read
//! its file. One request line (`status` or `reload`), one JSON answer.
//! While it answers, no second service starts on the same pin dir.

use std::{
    io::{Read as _, Write as _},
    os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
};

use crate::error::{Error, Result};

/// Where the sockets of services are, root-only.
pub const SOCKET_DIR: &str = "/run/anycast";

/// The socket of the service of pin dir `pin`: its path, `/` made `_`
/// (`/sys/fs/bpf/anycast` -> `/run/anycast/sys_fs_bpf_anycast.sock`); a
/// long one is cut and told apart by a hash.
pub fn socket_path(pin: &Path) -> PathBuf {
    let mut name: String = pin
        .to_string_lossy()
        .trim_matches('/')
        .chars()
        .map(|c| if c == '/' { '_' } else { c })
        .collect();
    // sun_path holds 108 bytes with its NUL.
    if name.len() > 80 {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        name.hash(&mut h);
        let cut: String = name.chars().take(60).collect();
        name = format!("{cut}-{:016x}", h.finish());
    }
    Path::new(SOCKET_DIR).join(format!("{name}.sock"))
}

/// What one request asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// The service's view ([`Status`]).
    Status,
    /// Re-read the file ([`Reloaded`]).
    Reload,
    /// Maintenance on (withdraw everything) or off
    /// ([`super::announce::MaintenanceAnswer`]).
    Maintenance(bool),
}

impl Request {
    fn line(self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Reload => "reload",
            Request::Maintenance(true) => "maintenance on",
            Request::Maintenance(false) => "maintenance off",
        }
    }
}

/// The answer to `status`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// The configuration file.
    pub file: PathBuf,
    /// The pin dir.
    pub pin_dir: PathBuf,
    /// The service's process.
    pub pid: u32,
    /// When it started (seconds since the Unix epoch).
    pub started: u64,
    /// Reloads applied and refused.
    pub reloads_applied: u64,
    /// See `reloads_applied`.
    pub reloads_refused: u64,
    /// The last reload, if any.
    pub last_reload: Option<LastReload>,
    /// Members' changes of health written to the data plane, and how long
    /// the latest took.
    #[serde(default)]
    pub member_updates: super::updates::UpdateSummary,
    /// Every member with a check.
    pub members: Vec<MemberStatus>,
    /// Every member of the file: how it is reached and where its metric
    /// comes from, as the service follows them.
    #[serde(default)]
    pub reachability: Vec<Reachability>,
    /// The node's announcements (`[bgp]`, groups' `announce`).
    #[serde(default)]
    pub announcements: super::announce::AnnounceStatus,
}

/// How the service reaches a member, and why it is down when the
/// neighbour table or the routes say so.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reachability {
    /// Its group.
    pub group: String,
    /// Its name.
    pub member: String,
    /// `mac` (on-link, the file's MAC), `neighbour` (on-link, the MAC from
    /// the neighbour table) or `encap` (routed).
    pub via: String,
    /// On-link: the MAC the data plane sends to (for `neighbour`, the last
    /// one resolved; none before the first).
    pub mac: Option<String>,
    /// For `neighbour`: the entry's state (`REACHABLE`, `STALE`, `FAILED`,
    /// `none`, ...).
    pub neighbour: Option<String>,
    /// `file` or `route`.
    pub metric_source: crate::config::MetricSource,
    /// The metric in use (for `route`, none while it has no route).
    pub metric: Option<u32>,
    /// Why the service holds it down (unresolved, no route), if it does.
    pub down_reason: Option<String>,
}

/// When the file was last re-read, and what came of it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LastReload {
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// Whether it was applied (else refused, and the running configuration
    /// stayed).
    pub applied: bool,
    /// Its summary, or why it was refused.
    pub message: String,
}

/// A checked member, as the service sees it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MemberStatus {
    /// Its group.
    pub group: String,
    /// Its name.
    pub member: String,
    /// The check's kind.
    pub kind: String,
    /// The address probed and how (`anycast` or `unicast`).
    pub target: String,
    /// `unknown`, `healthy` or `failing`.
    pub health: String,
    /// The state the service gives it in the data plane.
    pub state: String,
    /// Why the last probe failed, if it did.
    pub last_error: Option<String>,
    /// The last probe's latency in milliseconds, if it passed.
    pub last_latency_ms: Option<f64>,
    /// Probes run.
    pub probes: u64,
    /// Probes that failed.
    pub failures: u64,
}

/// The answer to `reload`: the lines the service reported.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reloaded {
    /// Whether the file was applied.
    pub applied: bool,
    /// What changed, or why it was refused.
    pub lines: Vec<String>,
}

/// The listening socket of a running service; removed when dropped (when
/// the path is still its own).
pub struct StateSocket {
    path: PathBuf,
    listener: UnixListener,
    /// Device and inode of the socket file bound: tells whether the path
    /// is still this socket (a tmpfiles clean-up or an operator may remove
    /// it; another program may put its own there).
    bound: (u64, u64),
    /// The path was found taken by another socket that answers (said once).
    taken: bool,
}

/// What [`StateSocket::keep`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Kept {
    /// The path is still this socket.
    Unchanged,
    /// The path was gone (or a dead socket) and is listened at again.
    Rebound,
    /// Another socket that answers took the path (reported once).
    Taken,
}

impl StateSocket {
    /// Listens at `path` (root-only). Another service answering there is
    /// [`Error::ServiceRunning`]; a socket left by a dead one is replaced.
    pub fn bind(path: &Path, pin: &Path) -> Result<Self> {
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(Error::ServiceRunning {
                    pin: pin.to_path_buf(),
                    socket: path.to_path_buf(),
                });
            }
            std::fs::remove_file(path).map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let (listener, bound) = listen(path)?;
        Ok(StateSocket {
            path: path.to_path_buf(),
            listener,
            bound,
            taken: false,
        })
    }

    /// Where it listens.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes sure clients still find the service at its path: a removed
    /// socket file (or one left by something dead) is bound again; another
    /// socket that answers there is left alone, and said once.
    pub fn keep(&mut self) -> Result<Kept> {
        let here = std::fs::symlink_metadata(&self.path).ok();
        if here.as_ref().map(|m| (m.dev(), m.ino())) == Some(self.bound) {
            self.taken = false;
            return Ok(Kept::Unchanged);
        }
        if here.is_some() {
            if std::os::unix::net::UnixStream::connect(&self.path).is_ok() {
                let first = !self.taken;
                self.taken = true;
                return Ok(if first { Kept::Taken } else { Kept::Unchanged });
            }
            std::fs::remove_file(&self.path).map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })?;
        }
        let (listener, bound) = listen(&self.path)?;
        self.listener = listener;
        self.bound = bound;
        self.taken = false;
        Ok(Kept::Rebound)
    }

    /// The next client. Safe to cancel (in a `select!`): read its request
    /// with [`read_request`] after.
    pub async fn accept(&self) -> Option<UnixStream> {
        self.listener.accept().await.ok().map(|(conn, _)| conn)
    }
}

/// The request of client `conn`; a client that sends no known request
/// within a second gets an error line and is dropped.
pub async fn read_request(conn: UnixStream) -> Option<(UnixStream, Request)> {
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    let read = tokio::time::timeout(Duration::from_secs(1), reader.read_line(&mut line)).await;
    let mut conn = reader.into_inner();
    let request = match line.trim() {
        "status" => Request::Status,
        "reload" => Request::Reload,
        "maintenance on" => Request::Maintenance(true),
        "maintenance off" => Request::Maintenance(false),
        _ => {
            if read.is_ok() {
                let _ = conn
                    .write_all(b"{\"error\":\"unknown request: send status, reload, maintenance on or maintenance off\"}\n")
                    .await;
            }
            return None;
        }
    };
    Some((conn, request))
}

/// Listens at `path` (which must be free), root-only; the listener and the
/// socket file's device and inode.
fn listen(path: &Path) -> Result<(UnixListener, (u64, u64))> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    let m = std::fs::symlink_metadata(path).map_err(io)?;
    Ok((listener, (m.dev(), m.ino())))
}

impl Drop for StateSocket {
    fn drop(&mut self) {
        // Only its own file: another service's socket at the path stays.
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.bound) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Sends `answer` (JSON) to a client, giving up after two seconds.
pub async fn answer(mut conn: UnixStream, answer: String) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        conn.write_all(answer.as_bytes()).await?;
        conn.write_all(b"\n").await
    })
    .await;
}

/// Asks the service listening at `path`; its JSON answer. Waits at most
/// `timeout` (a reload applies a whole file).
pub fn ask(path: &Path, request: Request, timeout: Duration) -> Result<String> {
    let not_running = |source: std::io::Error| Error::ServiceNotRunning {
        socket: path.to_path_buf(),
        source,
    };
    let mut s = std::os::unix::net::UnixStream::connect(path).map_err(not_running)?;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.write_all(format!("{}\n", request.line()).as_bytes())
        .map_err(io)?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(io)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths_follow_the_pin_dir_and_fit_a_sockaddr() {
        assert_eq!(
            socket_path(Path::new("/sys/fs/bpf/anycast")),
            Path::new("/run/anycast/sys_fs_bpf_anycast.sock")
        );
        let long = format!("/sys/fs/bpf/{}", "x".repeat(200));
        let p = socket_path(Path::new(&long));
        assert!(p.as_os_str().len() < 108, "{}", p.display());
        assert_ne!(p, socket_path(Path::new(&format!("{long}y"))));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_lost_socket_is_bound_again_and_another_ones_is_left_alone() {
        let dir = std::env::temp_dir().join(format!("anycast-socket-{}", std::process::id()));
        let path = dir.join("state.sock");
        let mut ours = StateSocket::bind(&path, Path::new("/pin")).expect("bound");
        assert_eq!(ours.keep().expect("kept"), Kept::Unchanged);
        // Removed under the service: bound again, and clients get in.
        std::fs::remove_file(&path).expect("removed");
        assert_eq!(ours.keep().expect("kept"), Kept::Rebound);
        let client = std::os::unix::net::UnixStream::connect(&path).expect("connected");
        assert!(ours.accept().await.is_some());
        drop(client);
        assert_eq!(ours.keep().expect("kept"), Kept::Unchanged);
        // Another socket that answers there: left alone, said once.
        std::fs::remove_file(&path).expect("removed");
        let other = std::os::unix::net::UnixListener::bind(&path).expect("bound");
        assert_eq!(ours.keep().expect("kept"), Kept::Taken);
        assert_eq!(ours.keep().expect("kept"), Kept::Unchanged);
        // When it dies (its file stays), the path is taken back...
        drop(other);
        assert_eq!(ours.keep().expect("kept"), Kept::Rebound);
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
        // ... and dropping the service's socket removes only its own file.
        std::fs::remove_file(&path).expect("removed");
        let other = std::os::unix::net::UnixListener::bind(&path).expect("bound");
        drop(ours);
        assert!(path.exists(), "another's socket removed");
        drop(other);
        std::fs::remove_dir_all(&dir).expect("removed");
    }
}
