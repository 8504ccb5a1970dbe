//! Waiting until every BPF program run under way has ended: what makes it
//! safe to rewrite data the data plane stopped reading.
//!
//! A program run (XDP, and BPF_PROG_TEST_RUN's too) is an RCU read-side
//! critical section, and an update of a map of maps returns only after an
//! RCU grace period, "so that userspace, when we return to it, knows that
//! all non-sleepable programs that could be running use the new map value"
//! (`maybe_wait_bpf_programs`, kernel/bpf/syscall.c; Linux 5.0 has it).
//! So after [`program_runs_ended`] returns, no run that began before the
//! call is still reading: not one delayed by an interrupt, a stopped vCPU
//! or a preempting task (PREEMPT_RT). It takes a grace period: about 8 ms
//! on the VM of docs/BENCHMARKS.md (20 in 1 of 100 calls), and as long as
//! the longest run under way. It fails only if the kernel refuses the two
//! one-entry maps it makes (a memory limit, a security module): then the
//! command that needed it fails with that error before it writes, and its
//! journal tells the next command to finish the job.

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

use crate::{Error, Result};

/// Commands and map types of the bpf syscall (`enum bpf_cmd`,
/// `enum bpf_map_type`).
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_ARRAY_OF_MAPS: u32 = 12;

/// The `BPF_MAP_CREATE` member of `union bpf_attr`, up to `inner_map_fd`
/// (the kernel takes a shorter attribute as zero-filled).
#[repr(C)]
struct CreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
}

/// The element-command member of `union bpf_attr`.
#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// A one-entry map of `map_type` with 4-byte keys and values (an array
/// of maps takes `inner`'s kind of map).
fn one_entry_map(map_type: u32, inner: Option<&OwnedFd>) -> Result<OwnedFd> {
    let fd = bpf(
        BPF_MAP_CREATE,
        &mut CreateAttr {
            map_type,
            key_size: 4,
            value_size: 4,
            max_entries: 1,
            map_flags: 0,
            inner_map_fd: inner.map_or(0, |f| f.as_raw_fd() as u32),
        },
        "bpf_map_create",
    )?;
    // SAFETY: a map fd the kernel just made, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Runs bpf syscall `cmd` with `attr`; its answer, or the error of `call`.
fn bpf<A>(cmd: libc::c_long, attr: &mut A, call: &'static str) -> Result<i64> {
    // SAFETY: `attr` is the member of `union bpf_attr` that `cmd` takes;
    // every pointer in it points to a live buffer of the map's sizes.
    unsafe { crate::link::sys_bpf(cmd, attr) }.map_err(|source| Error::Quiesce { call, source })
}

/// Returns once every BPF program run that was under way when it was
/// called has ended (see the module's text). Two one-entry maps are made
/// for it and freed after.
pub fn program_runs_ended() -> Result<()> {
    let inner = one_entry_map(BPF_MAP_TYPE_ARRAY, None)?;
    let outer = one_entry_map(BPF_MAP_TYPE_ARRAY_OF_MAPS, Some(&inner))?;
    let (key, value) = (0u32, inner.as_raw_fd() as u32);
    // The update waits for the grace period before it returns.
    bpf(
        BPF_MAP_UPDATE_ELEM,
        &mut ElemAttr {
            map_fd: outer.as_raw_fd() as u32,
            _pad: 0,
            key: &key as *const u32 as u64,
            value: &value as *const u32 as u64,
            flags: 0,
        },
        "bpf_map_update_elem",
    )?;
    Ok(())
}
