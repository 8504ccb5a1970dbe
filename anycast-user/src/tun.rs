//! A non-persistent tun device: the kernel removes it, and every route
//! through it, when the last descriptor to it closes, which includes the
//! death of the process holding it (even by SIGKILL). The service's
//! announced prefixes are routes through one, so that an announcement
//! never outlives the service (fate-sharing; docs/BGP.md).

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

/// `TUNSETIFF`: `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// An open tun device, removed by the kernel when dropped.
#[derive(Debug)]
pub struct Tun {
    /// Held, never read: what keeps the device (and its routes) alive.
    _fd: OwnedFd,
    name: String,
    ifindex: u32,
}

impl Tun {
    /// Creates tun device `name` in the calling thread's network
    /// namespace (no packet information header, not persistent) and sets
    /// it up. A device of that name that another process holds is
    /// `EBUSY`.
    pub fn open(name: &str) -> io::Result<Tun> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("tun device name `{name}`: 1 to 15 bytes"),
            ));
        }
        // SAFETY: a plain open of a constant, NUL-terminated path; the
        // descriptor is owned below.
        let raw = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = ifreq(name);
        req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one ifreq, which `req` is.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut req) } < 0 {
            return Err(io::Error::last_os_error());
        }
        set_up(name)?;
        let ifindex = crate::link::ifindex(name).map_err(io::Error::other)?;
        Ok(Tun {
            _fd: fd,
            name: name.to_string(),
            ifindex,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Sets it up again (someone set it down: a down device loses its
    /// routes and takes no new one).
    pub fn set_up(&self) -> io::Result<()> {
        set_up(&self.name)
    }
}

/// An ifreq naming `name`, the rest zero.
fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: an all-zero ifreq is valid (an empty name, zero flags).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    req
}

/// Sets interface `name` up (a route through a down device is refused).
fn set_up(name: &str) -> io::Result<()> {
    // SAFETY: a plain socket call; the descriptor is owned below.
    let raw = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor nobody else owns.
    let s = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = ifreq(name);
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write one ifreq.
    unsafe {
        if libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS as _, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
