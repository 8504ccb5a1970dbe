//! A live-frames generator that makes every frame a new flow: `gen_tx`
//! (restore the frame's first 24 bytes, XDP_TX), then a random 32 bits
//! XORed into the last word of the IPv6 source address, and their upper
//! half into the UDP source port. With the variation off (mask 0) it
//! sends the frame unchanged and costs the same (the random number is
//! still drawn), so a case with one flow and a case with a new flow per
//! frame differ only in the router.
//!
//! It is a dozen BPF instructions loaded here, not a program of the eBPF
//! crate, so that the bench needs no change to the data plane's object.
//! The UDP checksum goes stale; nothing on the path checks it (the router
//! does not, the member's sink drops every frame).

use std::{
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    time::Duration,
};

use anycast_common::peer_names::GEN_HEADER_LEN;
use anyhow::{Context as _, Result, bail};

/// `bpf(2)` commands and constants (include/uapi/linux/bpf.h).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;
/// `bpf_get_prandom_u32`.
const HELPER_PRANDOM_U32: i32 = 7;
const XDP_TX: i32 = 3;

/// Offsets in the frame: the last word of the IPv6 source address
/// (Ethernet 14, IPv6 source at 8, its last 4 bytes at 12), and the UDP
/// source port (after the 40-byte IPv6 header).
const SRC_LAST_WORD: i16 = 14 + 8 + 12;
const UDP_SPORT: i16 = 14 + 40;
/// Bytes the program touches: the frames must be at least this long.
const TOUCHED: i32 = 64;

/// One BPF instruction as the kernel reads it (little-endian: code, dst
/// and src registers, offset, immediate).
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | u64::from(dst | (src << 4)) << 8
        | u64::from(off as u16) << 16
        | u64::from(imm as u32) << 32
}

/// The program: `header` restored, then the source varied under `mask`.
fn program(header: &[u64; GEN_HEADER_LEN / 8], mask: u32) -> Vec<u64> {
    // Opcodes (BPF_CLASS | BPF_OP/SIZE | BPF_SRC/MODE).
    const MOV64_X: u8 = 0xbf;
    const MOV64_K: u8 = 0xb7;
    const ADD64_K: u8 = 0x07;
    const AND32_K: u8 = 0x54;
    const RSH64_K: u8 = 0x77;
    const XOR64_X: u8 = 0xaf;
    const LDX_W: u8 = 0x61;
    const LDX_H: u8 = 0x69;
    const STX_DW: u8 = 0x7b;
    const STX_W: u8 = 0x63;
    const STX_H: u8 = 0x6b;
    const LD_DW_IMM: u8 = 0x18;
    const JGT_X: u8 = 0x2d;
    const CALL: u8 = 0x85;
    const EXIT: u8 = 0x95;
    let mut p = vec![
        insn(MOV64_X, 6, 1, 0, 0), // r6 = ctx
        insn(LDX_W, 7, 6, 0, 0),   // r7 = data
        insn(LDX_W, 3, 6, 4, 0),   // r3 = data_end
        insn(MOV64_X, 4, 7, 0, 0), // r4 = data + TOUCHED
        insn(ADD64_K, 4, 0, 0, TOUCHED),
        insn(JGT_X, 4, 3, 0, 0), // if r4 > data_end: abort (offset set below)
    ];
    let jump = p.len() - 1;
    for (i, w) in header.iter().enumerate() {
        // r5 = the word; *(u64 *)(data + 8 i) = r5
        p.push(insn(LD_DW_IMM, 5, 0, 0, *w as u32 as i32));
        p.push(insn(0, 0, 0, 0, (*w >> 32) as u32 as i32));
        p.push(insn(STX_DW, 7, 5, (8 * i) as i16, 0));
    }
    p.extend([
        insn(CALL, 0, 0, 0, HELPER_PRANDOM_U32), // r0 = random (r7 survives)
        insn(AND32_K, 0, 0, 0, mask as i32),
        insn(LDX_W, 1, 7, SRC_LAST_WORD, 0),
        insn(XOR64_X, 1, 0, 0, 0),
        insn(STX_W, 7, 1, SRC_LAST_WORD, 0),
        insn(RSH64_K, 0, 0, 0, 16),
        insn(LDX_H, 1, 7, UDP_SPORT, 0),
        insn(XOR64_X, 1, 0, 0, 0),
        insn(STX_H, 7, 1, UDP_SPORT, 0),
        insn(MOV64_K, 0, 0, 0, XDP_TX),
        insn(EXIT, 0, 0, 0, 0),
    ]);
    let abort = p.len();
    p[jump] = insn(JGT_X, 4, 3, (abort - jump - 1) as i16, 0);
    p.extend([insn(MOV64_K, 0, 0, 0, 0), insn(EXIT, 0, 0, 0, 0)]);
    p
}

/// The loaded generator.
pub(crate) struct FlowGen {
    fd: OwnedFd,
}

fn put_u32(attr: &mut [u8], at: usize, v: u32) {
    attr[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(attr: &mut [u8], at: usize, v: u64) {
    attr[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

fn bpf(cmd: libc::c_long, attr: &mut [u64; 20]) -> libc::c_long {
    // SAFETY: `attr` is a zeroed `union bpf_attr` of 160 bytes (larger
    // than the fields used; the kernel requires the tail to be zero) whose
    // pointers point into buffers that outlive the call.
    unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            size_of::<[u64; 20]>() as libc::c_uint,
        )
    }
}

fn bytes(attr: &mut [u64; 20]) -> &mut [u8] {
    // SAFETY: the same memory as bytes; u8 has no alignment or validity needs.
    unsafe { std::slice::from_raw_parts_mut(attr.as_mut_ptr().cast::<u8>(), 160) }
}

impl FlowGen {
    /// Loads the generator for frames whose first bytes are `header`;
    /// `vary`: a new source address and port per frame.
    pub(crate) fn load(header: &[u64; GEN_HEADER_LEN / 8], vary: bool) -> Result<Self> {
        let insns = program(header, if vary { u32::MAX } else { 0 });
        let license = c"GPL";
        let mut log = vec![0u8; 1 << 16];
        let mut attr = [0u64; 20];
        let a = bytes(&mut attr);
        // struct { prog_type, insn_cnt, insns, license, log_level,
        // log_size, log_buf, kern_version, prog_flags, prog_name[16] }
        put_u32(a, 0, BPF_PROG_TYPE_XDP);
        put_u32(a, 4, insns.len() as u32);
        put_u64(a, 8, insns.as_ptr() as u64);
        put_u64(a, 16, license.as_ptr() as u64);
        put_u32(a, 24, 1);
        put_u32(a, 28, log.len() as u32);
        put_u64(a, 32, log.as_mut_ptr() as u64);
        a[48..48 + 9].copy_from_slice(b"gen_flows");
        let fd = bpf(BPF_PROG_LOAD, &mut attr);
        if fd < 0 {
            let err = std::io::Error::last_os_error();
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            bail!(
                "loading the new-flow generator: {err}; verifier: {}",
                String::from_utf8_lossy(&log[..end]).trim()
            );
        }
        // SAFETY: a new file descriptor the kernel gave us, owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(FlowGen { fd })
    }

    /// Pushes `repeat` copies of `frame` (varied as loaded) in live-frames
    /// mode, batches of `batch`, with `ctx` (a `struct xdp_md` naming the
    /// ingress interface); returns the kernel's mean time per frame.
    pub(crate) fn run(
        &self,
        frame: &[u8],
        ctx: &[u8],
        repeat: u32,
        batch: u32,
    ) -> Result<Duration> {
        if frame.len() < TOUCHED as usize {
            bail!("the new-flow generator needs frames of at least {TOUCHED} bytes");
        }
        let mut attr = [0u64; 20];
        let a = bytes(&mut attr);
        // struct { prog_fd, retval, data_size_in, data_size_out, data_in,
        // data_out, repeat, duration, ctx_size_in, ctx_size_out, ctx_in,
        // ctx_out, flags, cpu, batch_size }
        put_u32(a, 0, self.fd.as_raw_fd() as u32);
        put_u32(a, 8, frame.len() as u32);
        put_u64(a, 16, frame.as_ptr() as u64);
        put_u32(a, 32, repeat);
        put_u32(a, 40, ctx.len() as u32);
        put_u64(a, 48, ctx.as_ptr() as u64);
        put_u32(a, 64, BPF_F_TEST_XDP_LIVE_FRAMES);
        put_u32(a, 72, batch);
        if bpf(BPF_PROG_TEST_RUN, &mut attr) < 0 {
            return Err(std::io::Error::last_os_error())
                .context("live-frames test run of the new-flow generator");
        }
        let a = bytes(&mut attr);
        let ns = u32::from_ne_bytes(a[36..40].try_into()?);
        Ok(Duration::from_nanos(u64::from(ns)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_encode_as_the_kernel_reads_them() {
        // r6 = r1: code 0xbf, dst 6, src 1.
        assert_eq!(insn(0xbf, 6, 1, 0, 0), 0x16bf);
        // *(u16 *)(r7 + 54) = r1: offset 54, src 1, dst 7.
        assert_eq!(insn(0x6b, 7, 1, 54, 0), 0x0036_176b);
        assert_eq!(insn(0xb7, 0, 0, 0, -1), 0xffff_ffff_0000_00b7);
        let p = program(&[0; 3], 0);
        // The bounds check jumps to the abort at the end (r0 = 0, exit).
        let jump = p[5];
        let off = ((jump >> 16) & 0xffff) as usize;
        assert_eq!(p[5 + 1 + off], insn(0xb7, 0, 0, 0, 0));
        assert_eq!(p.len(), 5 + 1 + off + 2);
    }
}
