//! Interfaces by name, in the current network namespace: their index and
//! their MAC.

use std::{ffi::CString, os::fd::FromRawFd as _};

use crate::error::{Error, Result};

/// The interface index of `name` in the current network namespace.
pub fn ifindex(name: &str) -> Result<u32> {
    let c = CString::new(name).map_err(|_| Error::UnknownInterface(name.to_string()))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 || name.len() >= libc::IFNAMSIZ {
        return Err(Error::UnknownInterface(name.to_string()));
    }
    Ok(idx)
}

/// The MAC address of interface `name` in the current network namespace.
pub fn iface_mac(name: &str) -> Result<[u8; 6]> {
    if name.len() >= libc::IFNAMSIZ {
        return Err(Error::UnknownInterface(name.to_string()));
    }
    // SAFETY: a plain socket used only for the ioctl below, closed after.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::Io {
            path: "socket".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: `fd` is ours; closed once, when `_guard` drops.
    let _guard = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero ifreq is valid; the name fits (checked above).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR fills `req` for a valid interface name.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) } != 0 {
        return Err(Error::UnknownInterface(name.to_string()));
    }
    // SAFETY: SIOCGIFHWADDR fills the hardware-address member of the union.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(data.iter()) {
        *d = *s as u8;
    }
    Ok(mac)
}
