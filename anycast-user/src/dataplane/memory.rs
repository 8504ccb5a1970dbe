//! What each pinned map costs the kernel: its capacity and the memory the
//! kernel charges for it (`memlock` in the map's fdinfo, what
//! `bpftool map show` prints), for `anycast stats`.

use std::{
    collections::BTreeMap,
    os::fd::{AsFd as _, AsRawFd as _},
};

use anycast_common::map_names;
use aya::maps::MapData;
use serde::Serialize;

use super::Dataplane;
use crate::error::{Error, Result};

/// One map's size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MapMemory {
    /// How many entries it holds at most.
    pub max_entries: u32,
    /// Bytes of each key and value.
    pub key_size: u32,
    /// See `key_size`.
    pub value_size: u32,
    /// Bytes the kernel charges for it (preallocated or not).
    pub bytes: u64,
}

/// `memlock` of the fdinfo of `fd`, in this process.
fn memlock(fd: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
}

impl Dataplane {
    /// Every pinned map of the layout with its size, by name.
    pub fn map_memory(&self) -> Result<BTreeMap<&'static str, MapMemory>> {
        let mut out = BTreeMap::new();
        for name in map_names::ALL {
            let data = MapData::from_pin(self.pin.map_path(name))
                .map_err(|source| Error::Map { name, source })?;
            let info = data.info().map_err(|source| Error::Map { name, source })?;
            let bytes = memlock(data.fd().as_fd().as_raw_fd()).unwrap_or(0);
            out.insert(
                name,
                MapMemory {
                    max_entries: info.max_entries(),
                    key_size: info.key_size(),
                    value_size: info.value_size(),
                    bytes,
                },
            );
        }
        Ok(out)
    }
}
