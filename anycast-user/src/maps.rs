//! The data plane's maps, each with its name: every operation fails with
//! an [`Error`] that names the map, and an insert into a full table says so
//! ([`Error::TableFull`]). Nothing else in the crate reads or writes a map
//! (the loader and the `Dataplane` only create, pin and open them).

use aya::{
    Pod,
    maps::{
        Array, DevMapHash, HashMap, LpmTrie, Map, MapData, MapError, PerCpuArray, PerCpuValues,
        lpm_trie::Key,
    },
    util::nr_cpus,
};
use bytemuck::Zeroable;

use crate::error::{Error, Result};

/// Where maps come from: a map by name, taken out of a loaded object or
/// opened from its pin.
pub(crate) type MapSource<'a> = dyn FnMut(&'static str) -> Result<Map> + 'a;

/// Turns an aya error of map `name` into the library's.
fn named(name: &'static str) -> impl Fn(MapError) -> Error {
    move |source| Error::Map { name, source }
}

/// Takes map `name` from `src` as `M`, checking its key and value sizes.
fn take<M: TryFrom<Map, Error = MapError>>(
    src: &mut MapSource<'_>,
    name: &'static str,
) -> Result<M> {
    src(name)?.try_into().map_err(named(name))
}

/// Takes hash-like map `name` with the capacity it was created with (it
/// may differ from the built-in one).
fn take_sized<M: TryFrom<Map, Error = MapError>>(
    src: &mut MapSource<'_>,
    name: &'static str,
) -> Result<(M, u32)> {
    let map = src(name)?;
    let capacity = match &map {
        Map::HashMap(m) | Map::LpmTrie(m) | Map::LruHashMap(m) | Map::Array(m) => {
            m.info().map_err(named(name))?.max_entries()
        }
        _ => 0,
    };
    Ok((map.try_into().map_err(named(name))?, capacity))
}

/// The error of a failed insert into map `name`: [`Error::TableFull`] when
/// the map is a table operators know as `label` (of `capacity`) and it is
/// full, [`Error::Map`] otherwise.
fn insert_error(
    name: &'static str,
    label: Option<&'static str>,
    capacity: u32,
    source: MapError,
) -> Error {
    let errno = match &source {
        MapError::SyscallError(s) => s.io_error.raw_os_error(),
        _ => None,
    };
    match (label, errno) {
        (Some(table), Some(libc::E2BIG | libc::ENOSPC)) => Error::TableFull { table, capacity },
        _ => Error::Map { name, source },
    }
}

/// An array map with its name.
pub(crate) struct ArrayMap<V: Pod> {
    name: &'static str,
    map: Array<MapData, V>,
    /// Slots, as the kernel made the map: a pinned map reused by a load
    /// keeps its own size, which the object's definition does not know.
    slots: u32,
}

impl<V: Pod> ArrayMap<V> {
    /// Takes map `name` from `src`.
    pub(crate) fn take(src: &mut MapSource<'_>, name: &'static str) -> Result<Self> {
        let (map, slots) = take_sized(src, name)?;
        Ok(ArrayMap { name, map, slots })
    }

    /// Number of slots.
    pub(crate) fn len(&self) -> u32 {
        self.slots
    }

    /// Slot `index`.
    pub(crate) fn get(&self, index: u32) -> Result<V> {
        self.map.get(&index, 0).map_err(named(self.name))
    }

    /// Writes slot `index`.
    pub(crate) fn set(&mut self, index: u32, value: V) -> Result<()> {
        self.map.set(index, value, 0).map_err(named(self.name))
    }
}

impl<V: Pod + Zeroable> ArrayMap<V> {
    /// Every slot, read in batches (`BPF_MAP_LOOKUP_BATCH`, Linux 5.6): the
    /// million slots of the index in a few hundred syscalls, where one
    /// lookup each takes about a second.
    pub(crate) fn get_all(&self) -> Result<Vec<V>> {
        let mut out = vec![V::zeroed(); self.map.len() as usize];
        lookup_batch(self.fd(), self.name, BATCH, |k: u32, v| {
            if let Some(slot) = out.get_mut(k as usize) {
                *slot = v;
            }
            true
        })?;
        Ok(out)
    }

    /// The first `n` slots (fewer when the map has fewer), read in batches
    /// as [`Self::get_all`] reads them all.
    pub(crate) fn get_first(&self, n: usize) -> Result<Vec<V>> {
        let n = n.min(self.map.len() as usize);
        let mut out = Vec::with_capacity(n);
        if n > 0 {
            lookup_batch(self.fd(), self.name, n.min(BATCH), |_: u32, v| {
                out.push(v);
                out.len() < n
            })?;
        }
        Ok(out)
    }

    /// The first slot (index and value) that `pred` accepts, read in
    /// batches of 64 from the start: a table filled lowest first finds its
    /// early entries in one syscall.
    pub(crate) fn find(&self, mut pred: impl FnMut(&V) -> bool) -> Result<Option<(u32, V)>> {
        let mut found = None;
        lookup_batch(self.fd(), self.name, 64, |k: u32, v| {
            if pred(&v) {
                found = Some((k, v));
            }
            found.is_none()
        })?;
        Ok(found)
    }

    /// Writes slot `indices[i]` with `values[i]`, in order, in batches
    /// (`BPF_MAP_UPDATE_BATCH`, Linux 5.6). On failure, how many of the
    /// first slots may have been written (see [`write_batch`]), with the
    /// error.
    pub(crate) fn set_many(
        &mut self,
        indices: &[u32],
        values: &[V],
    ) -> std::result::Result<(), (usize, Error)> {
        debug_assert_eq!(indices.len(), values.len());
        write_batch(self.fd(), indices, Some(values)).map_err(|(done, e)| {
            (
                done,
                Error::Map {
                    name: self.name,
                    source: batch_error("bpf_map_update_batch", e),
                },
            )
        })
    }

    /// A second handle on the map, for a test that reads it while a
    /// command writes through this one.
    #[cfg(feature = "test-support")]
    pub(crate) fn reopen(&self) -> Result<Array<MapData, V>> {
        use std::os::fd::BorrowedFd;
        // SAFETY: the fd of the map this owner holds open.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd()) }
            .try_clone_to_owned()
            .map_err(|e| Error::Map {
                name: self.name,
                source: MapError::IoError(e),
            })?;
        let data = MapData::from_fd(fd).map_err(named(self.name))?;
        Array::try_from(Map::Array(data)).map_err(named(self.name))
    }

    fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::{AsFd as _, AsRawFd as _};

        use aya::maps::IterableMap as _;
        self.map.map().fd().as_fd().as_raw_fd()
    }
}

/// Entries a `BPF_MAP_LOOKUP_BATCH` call reads at most.
const BATCH: usize = 4096;

/// Entries a `BPF_MAP_UPDATE_BATCH` or `BPF_MAP_DELETE_BATCH` call writes
/// at most: a signal waits for the call to end, so each stays short (a
/// few milliseconds).
const WRITE_BATCH: usize = 1 << 14;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Commands of `enum bpf_cmd`.
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// Runs batch command `cmd` with `attr`; the error is the syscall's.
fn bpf_batch(cmd: libc::c_long, attr: &mut BatchAttr) -> std::io::Result<()> {
    // SAFETY: `attr` is a valid `batch` member whose pointers the callers
    // set to buffers of `count` keys (and values) of the map's sizes,
    // which outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut BatchAttr,
            std::mem::size_of::<BatchAttr>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The error of batch call `call` on map `name`.
fn batch_error(call: &'static str, io_error: std::io::Error) -> MapError {
    MapError::SyscallError(aya::sys::SyscallError { call, io_error })
}

/// Writes `keys[i] -> values[i]` into map `fd` (`values` given) or removes
/// `keys` (`None`) with `BPF_MAP_UPDATE_BATCH` / `BPF_MAP_DELETE_BATCH`
/// (Linux 5.6), [`WRITE_BATCH`] entries a call, in order. The kernel
/// writes each entry as a single update (or delete) would, with
/// `BPF_ANY`: the batch calls take no other flag. On failure, returns how
/// many of the first entries may have been written (never fewer than
/// were: an undo of that many covers everything done) and the error.
fn write_batch<K: Pod, V: Pod>(
    fd: std::os::fd::RawFd,
    keys: &[K],
    values: Option<&[V]>,
) -> std::result::Result<(), (usize, std::io::Error)> {
    let mut done = 0;
    while done < keys.len() {
        let n = (keys.len() - done).min(WRITE_BATCH);
        let mut attr = BatchAttr {
            in_batch: 0,
            out_batch: 0,
            keys: keys[done..].as_ptr() as u64,
            values: values.map_or(0, |v| v[done..done + n].as_ptr() as u64),
            count: n as u32,
            map_fd: fd as u32,
            elem_flags: 0,
            flags: 0,
        };
        let cmd = match values {
            Some(_) => BPF_MAP_UPDATE_BATCH,
            None => BPF_MAP_DELETE_BATCH,
        };
        if let Err(e) = bpf_batch(cmd, &mut attr) {
            // The kernel writes back how many it did; an error before it
            // starts leaves our count, which over-counts (safe for an undo).
            return Err((done + (attr.count as usize).min(n), e));
        }
        done += n;
    }
    Ok(())
}

/// A batch write split into parts that failed: the parts of its entries
/// that may have been written, and the first error.
pub(crate) struct PartlyWritten {
    pub(crate) written: Vec<std::ops::Range<usize>>,
    pub(crate) error: Error,
}

/// Reads map `fd` (called `name`) from its start with
/// `BPF_MAP_LOOKUP_BATCH` (Linux 5.6), `batch` entries a syscall, giving
/// `each` every key and value until it returns false or the map ends.
fn lookup_batch<K: Pod + Zeroable, V: Pod + Zeroable>(
    fd: std::os::fd::RawFd,
    name: &'static str,
    batch: usize,
    mut each: impl FnMut(K, V) -> bool,
) -> Result<()> {
    let mut keys = vec![K::zeroed(); batch];
    let mut values = vec![V::zeroed(); batch];
    // The position token: an array's next index, a hash map's next
    // bucket; both a u32.
    let (mut in_batch, mut out_batch) = (0u32, 0u32);
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                &in_batch as *const u32 as u64
            },
            out_batch: &mut out_batch as *mut u32 as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: batch as u32,
            map_fd: fd as u32,
            elem_flags: 0,
            flags: 0,
        };
        // The kernel fills the buffers up to the count it writes back.
        let error = bpf_batch(BPF_MAP_LOOKUP_BATCH, &mut attr).err();
        for (k, v) in keys.iter().zip(&values).take(attr.count as usize) {
            if !each(*k, *v) {
                return Ok(());
            }
        }
        match error {
            // The end of the map.
            Some(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Some(io_error) => {
                return Err(Error::Map {
                    name,
                    source: batch_error("bpf_map_lookup_batch", io_error),
                });
            }
            None => {}
        }
        in_batch = out_batch;
        first = false;
    }
}

/// A per-CPU array map with its name.
pub(crate) struct PerCpuArrayMap<V: Pod> {
    name: &'static str,
    map: PerCpuArray<MapData, V>,
}

impl<V: Pod + Zeroable> PerCpuArrayMap<V> {
    /// Takes map `name` from `src`.
    pub(crate) fn take(src: &mut MapSource<'_>, name: &'static str) -> Result<Self> {
        Ok(PerCpuArrayMap {
            name,
            map: take(src, name)?,
        })
    }

    /// Slot `index` of every CPU.
    pub(crate) fn get(&self, index: u32) -> Result<PerCpuValues<V>> {
        self.map.get(&index, 0).map_err(named(self.name))
    }

    /// Zeroes slot `index` on every possible CPU.
    pub(crate) fn zero(&mut self, index: u32) -> Result<()> {
        let cpus = nr_cpus().map_err(|(path, source)| Error::Io {
            path: path.into(),
            source,
        })?;
        let zeroes =
            PerCpuValues::try_from(vec![V::zeroed(); cpus]).map_err(|source| Error::Io {
                path: "/sys/devices/system/cpu/possible".into(),
                source,
            })?;
        self.map.set(index, zeroes, 0).map_err(named(self.name))
    }
}

/// A hash map (plain or LRU) with its name, its capacity when that
/// matters, and for a table operators fill, the name they know it by.
pub(crate) struct HashMapOf<K, V> {
    name: &'static str,
    map: HashMap<MapData, K, V>,
    capacity: u32,
    label: Option<&'static str>,
}

impl<K: Pod, V: Pod> HashMapOf<K, V> {
    /// Takes map `name` from `src`.
    pub(crate) fn take(src: &mut MapSource<'_>, name: &'static str) -> Result<Self> {
        Ok(HashMapOf {
            name,
            map: take(src, name)?,
            capacity: 0,
            label: None,
        })
    }

    /// Takes map `name` from `src` with its capacity.
    pub(crate) fn take_sized(src: &mut MapSource<'_>, name: &'static str) -> Result<Self> {
        let (map, capacity) = take_sized(src, name)?;
        Ok(HashMapOf {
            name,
            map,
            capacity,
            label: None,
        })
    }

    /// Takes map `name` from `src`, a table operators know as `label`: an
    /// insert into it when it is full is [`Error::TableFull`].
    pub(crate) fn take_table(
        src: &mut MapSource<'_>,
        name: &'static str,
        label: &'static str,
    ) -> Result<Self> {
        let (map, capacity) = take_sized(src, name)?;
        Ok(HashMapOf {
            name,
            map,
            capacity,
            label: Some(label),
        })
    }

    /// The capacity as created (0 when taken with [`Self::take`]).
    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The value of `key`, if present.
    pub(crate) fn get(&self, key: &K) -> Result<Option<V>> {
        match self.map.get(key, 0) {
            Ok(v) => Ok(Some(v)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(named(self.name)(e)),
        }
    }

    /// Whether `key` is present; a failed lookup reads as absent.
    pub(crate) fn contains(&self, key: &K) -> bool {
        self.map.get(key, 0).is_ok()
    }

    /// Inserts (with `BPF_*` `flags`) or overwrites `key`.
    pub(crate) fn insert(&mut self, key: K, value: V, flags: u64) -> Result<()> {
        self.map
            .insert(key, value, flags)
            .map_err(|e| insert_error(self.name, self.label, self.capacity, e))
    }

    /// Removes `key`; one that is absent is an error.
    pub(crate) fn remove(&mut self, key: &K) -> Result<()> {
        self.map.remove(key).map_err(named(self.name))
    }

    /// Removes `key` if present; whether it was.
    pub(crate) fn remove_if_present(&mut self, key: &K) -> Result<bool> {
        match self.map.remove(key) {
            Ok(()) => Ok(true),
            Err(MapError::KeyNotFound) => Ok(false),
            Err(e) => Err(named(self.name)(e)),
        }
    }

    fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::{AsFd as _, AsRawFd as _};

        use aya::maps::IterableMap as _;
        self.map.map().fd().as_fd().as_raw_fd()
    }

    /// Inserts or overwrites `keys[i]` with `values[i]` in batches
    /// (`BPF_MAP_UPDATE_BATCH`, Linux 5.6; `BPF_ANY`: the batch takes no
    /// `BPF_NOEXIST`), split into up to `threads` parts written at once
    /// (the kernel locks a hash bucket, not the table: a million inserts
    /// take about a second on one CPU). On failure, the parts of `keys`
    /// that may have been written (see [`write_batch`]), with the first
    /// error ([`Error::TableFull`] for a full table, as [`Self::insert`]).
    pub(crate) fn insert_many(
        &mut self,
        keys: &[K],
        values: &[V],
        threads: usize,
    ) -> std::result::Result<(), Box<PartlyWritten>>
    where
        K: Sync,
        V: Sync,
    {
        debug_assert_eq!(keys.len(), values.len());
        let fd = self.fd();
        let parts = threads.clamp(1, keys.len().div_ceil(WRITE_BATCH).max(1));
        let per = keys.len().div_ceil(parts).max(1);
        let write = |start: usize| {
            let end = (start + per).min(keys.len());
            (
                start..end,
                write_batch(fd, &keys[start..end], Some(&values[start..end])),
            )
        };
        let starts = (0..keys.len()).step_by(per);
        let results: Vec<_> = if parts == 1 {
            starts.map(write).collect()
        } else {
            std::thread::scope(|s| {
                let running: Vec<_> = starts
                    .map(|start| (start, s.spawn(move || write(start))))
                    .collect();
                running
                    .into_iter()
                    .map(|(start, t)| {
                        t.join().unwrap_or_else(|_| {
                            let e = std::io::Error::other("a map writer thread panicked");
                            let end = (start + per).min(keys.len());
                            (start..end, Err((end - start, e)))
                        })
                    })
                    .collect()
            })
        };
        let mut written = Vec::new();
        let mut first = None;
        for (range, r) in results {
            match r {
                Ok(()) => written.push(range),
                Err((done, e)) => {
                    written.push(range.start..range.start + done);
                    first.get_or_insert(e);
                }
            }
        }
        match first {
            None => Ok(()),
            Some(e) => {
                let source = batch_error("bpf_map_update_batch", e);
                let e = insert_error(self.name, self.label, self.capacity, source);
                Err(Box::new(PartlyWritten { written, error: e }))
            }
        }
    }

    /// Removes each of `keys` that is present, in batches
    /// (`BPF_MAP_DELETE_BATCH`, Linux 5.6).
    pub(crate) fn remove_many(&mut self, keys: &[K]) -> Result<()> {
        let mut from = 0;
        while from < keys.len() {
            match write_batch::<K, V>(self.fd(), &keys[from..], None) {
                Ok(()) => return Ok(()),
                // The batch stops at a key that is absent: skip it.
                Err((done, e)) if e.raw_os_error() == Some(libc::ENOENT) => from += done + 1,
                Err((_, e)) => {
                    return Err(Error::Map {
                        name: self.name,
                        source: batch_error("bpf_map_delete_batch", e),
                    });
                }
            }
        }
        Ok(())
    }

    /// Every entry, read in batches (a few syscalls where [`Self::iter`]
    /// makes two per entry).
    pub(crate) fn get_all(&self) -> Result<Vec<(K, V)>>
    where
        K: Zeroable,
        V: Zeroable,
    {
        let mut out = Vec::new();
        lookup_batch(self.fd(), self.name, BATCH, |k, v| {
            out.push((k, v));
            true
        })?;
        Ok(out)
    }

    /// Every entry.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Result<(K, V)>> + '_ {
        self.map.iter().map(|r| r.map_err(named(self.name)))
    }

    /// Every entry still present when the walk reaches it: in an LRU map
    /// an entry may vanish between two steps of the walk.
    pub(crate) fn iter_present(&self) -> impl Iterator<Item = Result<(K, V)>> + '_ {
        self.map.iter().filter_map(|r| match r {
            Err(MapError::KeyNotFound) => None,
            r => Some(r.map_err(named(self.name))),
        })
    }
}

/// An LPM trie of IPv6 prefixes (length, network byte order address), a
/// table operators fill, with its name and capacity.
pub(crate) struct PrefixMap<V> {
    name: &'static str,
    map: LpmTrie<MapData, [u8; 16], V>,
    capacity: u32,
    label: &'static str,
}

impl<V: Pod> PrefixMap<V> {
    /// Takes map `name` from `src`, a table operators know as `label`.
    pub(crate) fn take(
        src: &mut MapSource<'_>,
        name: &'static str,
        label: &'static str,
    ) -> Result<Self> {
        let (map, capacity) = take_sized(src, name)?;
        Ok(PrefixMap {
            name,
            map,
            capacity,
            label,
        })
    }

    /// The capacity as created.
    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Inserts or overwrites prefix `addr/len`.
    pub(crate) fn insert(&mut self, len: u8, addr: [u8; 16], value: V) -> Result<()> {
        let key = Key::new(u32::from(len), addr);
        self.map
            .insert(&key, value, 0)
            .map_err(|e| insert_error(self.name, Some(self.label), self.capacity, e))
    }

    /// The value of the longest prefix that covers `addr`, if any.
    pub(crate) fn longest_match(&self, addr: [u8; 16]) -> Result<Option<V>> {
        match self.map.get(&Key::new(128, addr), 0) {
            Ok(v) => Ok(Some(v)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(named(self.name)(e)),
        }
    }

    /// Removes prefix `addr/len` if present; whether it was.
    pub(crate) fn remove_if_present(&mut self, len: u8, addr: [u8; 16]) -> Result<bool> {
        match self.map.remove(&Key::new(u32::from(len), addr)) {
            Ok(()) => Ok(true),
            Err(MapError::KeyNotFound) => Ok(false),
            Err(e) => Err(named(self.name)(e)),
        }
    }

    /// Every prefix, as (length, address, value).
    pub(crate) fn iter(&self) -> impl Iterator<Item = Result<(u8, [u8; 16], V)>> + '_ {
        self.map.iter().map(|r| {
            r.map(|(k, v)| (k.prefix_len() as u8, k.data(), v))
                .map_err(named(self.name))
        })
    }

    /// The length of every prefix.
    pub(crate) fn lens(&self) -> impl Iterator<Item = Result<u8>> + '_ {
        self.map
            .keys()
            .map(|k| k.map(|k| k.prefix_len() as u8).map_err(named(self.name)))
    }
}

/// The devmap of egress interfaces for redirects, with its name.
///
/// Typed on use, not when taken: to type a devmap aya probes the kernel's
/// features once per process (about a dozen BTF and program loads and map
/// creations, half a millisecond), which a command that never touches the
/// map (`member set`, most of them) should not pay.
pub(crate) struct PortMap {
    name: &'static str,
    map: Map,
}

impl PortMap {
    /// Takes map `name` from `src`; it must be a hash devmap.
    pub(crate) fn take(src: &mut MapSource<'_>, name: &'static str) -> Result<Self> {
        let map = src(name)?;
        if !matches!(map, Map::DevMapHash(_)) {
            // Another type: aya's error names it (typing nothing, it
            // probes nothing).
            if let Err(source) = DevMapHash::<&MapData>::try_from(&map) {
                return Err(Error::Map { name, source });
            }
        }
        Ok(PortMap { name, map })
    }

    /// Whether packets may be redirected out of `ifindex` through the map.
    pub(crate) fn contains(&self, ifindex: u32) -> bool {
        DevMapHash::<&MapData>::try_from(&self.map).is_ok_and(|m| m.get(ifindex, 0).is_ok())
    }

    /// Lets packets be redirected out of `ifindex`.
    pub(crate) fn insert(&mut self, ifindex: u32) -> Result<()> {
        let name = self.name;
        let mut map = DevMapHash::<&mut MapData>::try_from(&mut self.map)
            .map_err(|source| Error::Map { name, source })?;
        map.insert(ifindex, ifindex, None, 0)
            .map_err(|source| Error::Redirect { ifindex, source })
    }

    /// Takes `ifindex` out (a test's damage, as the kernel does when the
    /// device goes).
    #[cfg(feature = "test-support")]
    pub(crate) fn remove(&mut self, ifindex: u32) -> Result<()> {
        let name = self.name;
        let mut map = DevMapHash::<&mut MapData>::try_from(&mut self.map)
            .map_err(|source| Error::Map { name, source })?;
        map.remove(ifindex)
            .map_err(|source| Error::Map { name, source })
    }
}
