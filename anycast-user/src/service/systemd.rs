//! systemd's notification protocol (`sd_notify`), for `Type=notify`: the
//! service says when it is ready, reloading or stopping, and pings the
//! watchdog from its main loop, so that a hung service is restarted.
//! Outside systemd (no `NOTIFY_SOCKET`) every call does nothing.

use std::{os::unix::net::UnixDatagram, time::Duration};

/// Where to send notifications, when systemd asked for them.
#[derive(Debug, Default)]
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// The notifier systemd's environment asks for: `NOTIFY_SOCKET` (a
    /// path, or an abstract name starting with `@`), and `WATCHDOG_USEC`
    /// (for this process, when `WATCHDOG_PID` names another, no watchdog).
    pub fn from_env() -> Self {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let path = path.to_string_lossy().into_owned();
            let addr = match path.strip_prefix('@') {
                Some(name) => {
                    use std::os::linux::net::SocketAddrExt as _;
                    std::os::unix::net::SocketAddr::from_abstract_name(name)
                }
                None => std::os::unix::net::SocketAddr::from_pathname(&path),
            };
            match (UnixDatagram::unbound(), addr) {
                (Ok(s), Ok(a)) => Some((s, a)),
                (Err(e), _) | (_, Err(e)) => {
                    log::warn!("NOTIFY_SOCKET {path}: {e}; systemd is not told the state");
                    None
                }
            }
        });
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0 && for_us)
            .map(Duration::from_micros);
        Notifier { socket, watchdog }
    }

    /// Sends `state` (lines of `KEY=VALUE`); a failure is logged.
    pub fn notify(&self, state: &str) {
        if let Some((s, addr)) = &self.socket
            && let Err(e) = s.send_to_addr(state.as_bytes(), addr)
        {
            log::warn!("telling systemd {state:?}: {e}");
        }
    }

    /// How often to ping the watchdog (half its timeout), when systemd
    /// runs one.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    /// `RELOADING=1` with the monotonic time systemd wants with it.
    pub fn reloading(&self) {
        // SAFETY: a zeroed timespec is valid, and clock_gettime writes one
        // timespec, which lives here.
        let ts = unsafe {
            let mut ts: libc::timespec = std::mem::zeroed();
            libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
            ts
        };
        let usec = ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000;
        self.notify(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
    }
}
