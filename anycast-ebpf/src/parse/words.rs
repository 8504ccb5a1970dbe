//! IPv6 addresses and MACs moved as 32-bit words, not bytes.
//!
//! A `[u8; 16]` read or copied through Rust's unaligned accessors compiles
//! to sixteen one-byte loads on BPF (LLVM assumes nothing about alignment),
//! or to a call of a byte-looping `memmove`; on the per-packet path that was
//! most of the program's cost. Packet data start at least 2-byte aligned and
//! the kernel lays frames out so that the IPv6 header is 4-byte aligned
//! under NET_IP_ALIGN (the verifier's strict-alignment model checks exactly
//! that); on architectures with efficient unaligned access (x86-64, arm64)
//! the verifier checks no alignment and the JIT emits plain loads. Map
//! values are 8-byte aligned and every field moved here sits at a multiple
//! of 4 in its struct. So, like C XDP code reading `struct ipv6hdr`, the
//! words are read as `u32`.

/// The 16 bytes at `p` as four native-endian words.
///
/// # Safety
/// `p` must be valid for 16 bytes (bounds-checked packet data or a map value).
#[inline(always)]
pub(crate) unsafe fn load16(p: *const [u8; 16]) -> [u32; 4] {
    let w = p as *const u32;
    // SAFETY: the caller guarantees 16 readable bytes; see the module doc
    // on alignment.
    unsafe { [*w, *w.add(1), *w.add(2), *w.add(3)] }
}

/// Writes four native-endian words to the 16 bytes at `p`.
///
/// # Safety
/// `p` must be valid for writing 16 bytes.
#[inline(always)]
pub(crate) unsafe fn store16(p: *mut [u8; 16], w: [u32; 4]) {
    let d = p as *mut u32;
    // SAFETY: as in `load16`.
    unsafe {
        *d = w[0];
        *d.add(1) = w[1];
        *d.add(2) = w[2];
        *d.add(3) = w[3];
    }
}

/// Native words as the big-endian words the hashes take (one byte-swap
/// instruction each on little-endian BPF).
#[inline(always)]
pub(crate) const fn big_endian(w: [u32; 4]) -> [u32; 4] {
    [
        u32::from_be(w[0]),
        u32::from_be(w[1]),
        u32::from_be(w[2]),
        u32::from_be(w[3]),
    ]
}
