//! What the verifier is told, where knowing less makes its walk shorter.
//!
//! The verifier follows every path through the program and stops following
//! one where its state is covered by a state it has already checked at the
//! same instruction. A value it knows exactly on each path, a constant that
//! differs between paths, keeps those paths apart for as long as it lives:
//! once a branch is decided by it, or an access depends on it, it becomes
//! part of every state before that point. A few such values, decided early
//! and used late, multiply the paths of everything in between: the VLAN
//! depth (three constant offsets of the IPv6 header), the offsets of an
//! ICMPv6 quote, which outcome the source rule and the flow table reached. Each is handed on through
//! [`opaque`] instead, and the code after it checks what it needs (bounds,
//! ranges) as it would for any value; `tests/tests/verifier.rs` keeps the
//! count of instructions the verifier processes in view.

/// `v`, as a value the verifier does not know: an unknown scalar, whatever
/// it knew of `v` on this path, except that zero stays zero. Costs two
/// stack accesses at run time.
///
/// Written to the upper half of an 8-byte stack slot: the verifier keeps
/// no register state for a part of a slot, so a value read back is unknown
/// to it, unless all its bytes were written as zero, which it tracks. That
/// exception helps: "none" (group 0, no flow-table outcome) stays known,
/// and the paths that have nothing to count are checked as such.
#[inline(always)]
pub(crate) fn opaque(v: u32) -> u32 {
    let mut slot = 0u64;
    let whole = &mut slot as *mut u64;
    // SAFETY: a local, written whole first (so that LLVM keeps the 8-byte
    // slot), then its upper half written and read back.
    unsafe {
        core::ptr::write_volatile(whole, 0);
        let upper = (whole as *mut u32).add(1);
        core::ptr::write_volatile(upper, v);
        core::ptr::read_volatile(upper)
    }
}

/// [`opaque`] for an offset known to be at most `max`: the verifier then
/// knows that bound and nothing more. `None` never happens; the check is
/// what gives the verifier the bound. (An upper bound alone: LLVM would
/// fold a two-sided check into one compare of `v - lo`, which bounds a
/// value the verifier does not connect to `v`.)
#[inline(always)]
pub(crate) fn opaque_at_most(v: usize, max: usize) -> Option<usize> {
    let v = opaque(v as u32) as usize;
    (v <= max).then_some(v)
}
