//! Bounds-checked reading of packet headers.
//!
//! Every read goes through [`read`], which checks the access against the end
//! of the frame the verifier knows (`data_end`) and against a logical limit
//! (the end of the IPv6 payload), so that Ethernet padding is never parsed
//! as a header.
//!
//! `data_end` is loaded with a volatile read at every check. Otherwise LLVM
//! proves the check redundant (from the earlier payload-length check plus the
//! logical limit) and drops it, and the verifier, which cannot follow that
//! reasoning, rejects the program.

use aya_ebpf::programs::XdpContext;

/// Largest offset the parser follows. XDP frames without fragments fit in a
/// page; clamping keeps the verifier's view of every offset bounded.
pub(crate) const MAX_PARSE_OFFSET: usize = 4096;

/// A pointer to a `T` at `off` from the start of the frame, if the whole `T`
/// lies before `limit` and before the end of the frame.
#[inline(always)]
pub(crate) fn read<T>(ctx: &XdpContext, off: usize, limit: usize) -> Option<*const T> {
    let size = core::mem::size_of::<T>();
    if off > MAX_PARSE_OFFSET || off + size > limit {
        return None;
    }
    let start = ctx.data();
    if start + off + size > data_end(ctx) {
        return None;
    }
    Some((start + off) as *const T)
}

/// Reads a `T` by value (`T` is a byte array or a header struct of bytes).
#[inline(always)]
pub(crate) fn load<T: Copy>(ctx: &XdpContext, off: usize, limit: usize) -> Option<T> {
    // SAFETY: `read` checked that the whole `T` lies inside the frame; `T` is
    // made of bytes, so an unaligned read of any bit pattern is valid.
    read::<T>(ctx, off, limit).map(|p| unsafe { core::ptr::read_unaligned(p) })
}

/// `ctx->data_end`, read so that LLVM cannot reuse an earlier value (see the module doc).
#[inline(always)]
pub(crate) fn data_end(ctx: &XdpContext) -> usize {
    // SAFETY: `ctx.ctx` is the program's context pointer, valid for the run.
    unsafe { core::ptr::read_volatile(&(*ctx.ctx).data_end) as usize }
}

/// A pointer for writing a `T` at `off` from the start of the frame, if the
/// whole `T` lies inside it.
#[inline(always)]
pub(crate) fn writable<T>(ctx: &XdpContext, off: usize) -> Option<*mut T> {
    let size = core::mem::size_of::<T>();
    if off > MAX_PARSE_OFFSET {
        return None;
    }
    let start = ctx.data();
    if start + off + size > data_end(ctx) {
        return None;
    }
    Some((start + off) as *mut T)
}
