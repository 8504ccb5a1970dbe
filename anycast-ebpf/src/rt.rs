//! What every program object of this crate needs besides its programs: a
//! panic handler (never reached: the verifier accepts no unwinding) and a
//! GPL-compatible license, which the FIB and redirect helpers require.

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // Unreachable in a verified program: there is no unwinding in BPF.
    loop {}
}

/// The object's license.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
