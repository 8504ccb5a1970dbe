//! Interfaces in the current network namespace: their index and MAC by
//! name, the whole table, and the events of a netlink socket that says
//! when it changes; and which interface a pinned XDP link is attached to.

use std::{
    collections::HashMap,
    ffi::{CStr, CString},
    io,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::Path,
    time::Duration,
};

use crate::error::{Error, Result};

use crate::netlink::Socket;
pub use crate::netlink::{XdpAttachment, xdp_attachment};

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

/// Whether GRO is on for interface `name` of the current network
/// namespace (`ethtool -k NAME`, the `ETHTOOL_GGRO` ioctl). A veth takes
/// redirected frames for its peer only while the peer has GRO on (or an
/// XDP program).
pub fn gro_enabled(name: &str) -> io::Result<bool> {
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_GGRO: u32 = 0x2b;
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    }
    // SAFETY: a plain socket used only for the ioctl below, closed after.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is ours; closed once, when `_guard` drops.
    let _guard = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut value = EthtoolValue {
        cmd: ETHTOOL_GGRO,
        data: 0,
    };
    // SAFETY: an all-zero ifreq is valid; the name fits (checked above).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    req.ifr_ifru.ifru_data = (&raw mut value).cast();
    // SAFETY: SIOCETHTOOL with ETHTOOL_GGRO writes an ethtool_value at
    // `ifru_data`, which outlives the call.
    if unsafe { libc::ioctl(fd, SIOCETHTOOL, &mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value.data != 0)
}

/// Every interface of the current network namespace: index -> name.
pub fn interfaces() -> Result<HashMap<u32, String>> {
    // SAFETY: no preconditions; the list is freed below.
    let list = unsafe { libc::if_nameindex() };
    if list.is_null() {
        return Err(Error::Io {
            path: "if_nameindex".into(),
            source: io::Error::last_os_error(),
        });
    }
    let mut out = HashMap::new();
    let mut p = list;
    // SAFETY: the list ends with an entry whose index is 0 and name null;
    // every name before it is a NUL-terminated string owned by the list.
    unsafe {
        while (*p).if_index != 0 && !(*p).if_name.is_null() {
            let name = CStr::from_ptr((*p).if_name).to_string_lossy().into_owned();
            out.insert((*p).if_index, name);
            p = p.add(1);
        }
        libc::if_freenameindex(list);
    }
    Ok(out)
}

/// A netlink socket subscribed to the link events (`RTMGRP_LINK`) of the
/// network namespace it was opened in: an interface added, removed,
/// renamed or changed.
#[derive(Debug)]
pub struct LinkEvents {
    sock: Socket,
}

fn events_err(source: io::Error) -> Error {
    Error::Io {
        path: "netlink (RTMGRP_LINK)".into(),
        source,
    }
}

impl LinkEvents {
    /// Subscribes, in the calling thread's network namespace.
    pub fn subscribe() -> Result<Self> {
        let sock = Socket::open(libc::RTMGRP_LINK as u32).map_err(events_err)?;
        Ok(LinkEvents { sock })
    }

    /// Waits up to `timeout` for link events and takes every one queued.
    /// Whether any came (a socket that overflowed lost some: that counts
    /// as one). The messages are not parsed: a caller rereads the table
    /// ([`interfaces`]), which is the truth after a burst of changes.
    pub fn wait(&self, timeout: Duration) -> Result<bool> {
        if !self.sock.readable(timeout).map_err(events_err)? {
            return Ok(false);
        }
        let mut buf = [0u8; 8192];
        // Bounded: a socket's queue holds at most its receive buffer.
        for _ in 0..1024 {
            if let Err(e) = self.sock.recv(&mut buf, libc::MSG_DONTWAIT) {
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => break,
                    // Overflowed: events were lost, the table is reread anyway.
                    Some(libc::ENOBUFS) | Some(libc::EINTR) => continue,
                    _ => return Err(events_err(e)),
                }
            }
        }
        Ok(true)
    }
}

/// `union bpf_attr` as `BPF_OBJ_GET` reads it (the rest zero).
#[repr(C, align(8))]
struct ObjGetAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    rest: [u64; 14],
}

/// `union bpf_attr` as `BPF_OBJ_GET_INFO_BY_FD` reads it (the rest zero).
#[repr(C, align(8))]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
    rest: [u64; 14],
}

/// `struct bpf_link_info` up to the XDP member of its union (at byte 16),
/// with room for the rest, which the kernel may fill.
#[repr(C, align(8))]
struct LinkInfo {
    link_type: u32,
    id: u32,
    prog_id: u32,
    _pad: u32,
    xdp_ifindex: u32,
    rest: [u32; 59],
}

/// bpf(2) with command `cmd` and `attr` as its `union bpf_attr`; the
/// syscall's non-negative result.
///
/// # Safety
///
/// `attr` must be the attribute `cmd` reads, and every address in it must
/// be valid for what the kernel reads or writes there during the call.
pub(crate) unsafe fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<i64> {
    // SAFETY: the caller vouches for `attr`; its size is passed with it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            std::mem::size_of::<T>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// The interface index the XDP link pinned at `path` is attached to; 0
/// when its interface is gone (the kernel detaches a link whose device is
/// unregistered and keeps the link itself, defunct, while it is pinned).
pub(crate) fn xdp_link_ifindex(path: &Path) -> io::Result<u32> {
    xdp_link(path).map(|(ifindex, _)| ifindex)
}

/// The interface index (as [`xdp_link_ifindex`]) and the program id of
/// the XDP link pinned at `path`.
pub(crate) fn xdp_link(path: &Path) -> io::Result<(u32, u32)> {
    const BPF_OBJ_GET: libc::c_long = 7;
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    const BPF_LINK_TYPE_XDP: u32 = 6;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut get = ObjGetAttr {
        pathname: c.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
        rest: [0; 14],
    };
    // SAFETY: `get` is BPF_OBJ_GET's attribute, pointing to the
    // NUL-terminated path, which outlives the call.
    let fd = unsafe { sys_bpf(BPF_OBJ_GET, &mut get)? };
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: bpf(BPF_OBJ_GET) returned a new descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut info = LinkInfo {
        link_type: 0,
        id: 0,
        prog_id: 0,
        _pad: 0,
        xdp_ifindex: 0,
        rest: [0; 59],
    };
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<LinkInfo>() as u32,
        info: (&raw mut info) as u64,
        rest: [0; 14],
    };
    // SAFETY: `attr` is BPF_OBJ_GET_INFO_BY_FD's attribute; the kernel
    // writes at most `info_len` bytes at `info`, which outlives the call.
    unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)? };
    if info.link_type != BPF_LINK_TYPE_XDP {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not an XDP link",
        ));
    }
    Ok((info.xdp_ifindex, info.prog_id))
}

/// The interfaces of the current network namespace that have an address
/// in the subnet with 64-bit prefix `prefix` (from the kernel's list of
/// IPv6 addresses, `/proc/thread-self/net/if_inet6`), sorted.
pub fn interfaces_carrying(prefix: [u8; 8]) -> Result<Vec<String>> {
    let path = std::path::Path::new("/proc/thread-self/net/if_inet6");
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for line in text.lines() {
        // "ADDRESS-HEX IFINDEX PREFIXLEN SCOPE FLAGS NAME".
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(hex), Some(name)) = (fields.first(), fields.last()) else {
            continue;
        };
        let Ok(bits) = u128::from_str_radix(hex, 16) else {
            continue;
        };
        if std::net::Ipv6Addr::from(bits).octets()[..8] == prefix
            && !out.contains(&name.to_string())
        {
            out.push((*name).to_string());
        }
    }
    out.sort();
    Ok(out)
}
