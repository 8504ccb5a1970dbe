#!/usr/bin/env python3
"""Where an XDP program spends its time, by source line.

No hardware counters in the VM and no libbfd in bpftool (so no `bpftool prog
profile`, no JIT disassembly): this maps `perf record -e cpu-clock` samples
inside a loaded BPF program to the program's own line info (BTF), which the
kernel keeps for the JIT image. Usage, as root, while the program runs:

    perf record -a -e cpu-clock -o perf.data -- sleep 5
    scripts/bpf-line-profile.py --prog-id ID --perf-data perf.data [--top N]

Take ID from `bpftool prog show name anycast` while perf records (the
program must still be loaded when this script runs). Prints the share of
the program's samples per source file and per line. Attribution is to the
nearest preceding line-info record, so a hot load shows on the line that
issued it or the one just before; inlined map lookups show as aya's
`helpers.rs` `fun(map, key)`.
"""

import argparse
import bisect
import collections
import ctypes
import os
import struct
import subprocess
import sys

SYS_BPF = 321  # x86-64
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_BTF_GET_FD_BY_ID = 19

libc = ctypes.CDLL(None, use_errno=True)


def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, 128)
    fd = libc.syscall(SYS_BPF, cmd, buf, 128)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf({cmd}): {os.strerror(err)}")
    return fd


def info(fd, size, fill=None):
    buf = ctypes.create_string_buffer(bytes(fill) if fill else b"", size)
    bpf(BPF_OBJ_GET_INFO_BY_FD, struct.pack("<IIQ", fd, size, ctypes.addressof(buf)))
    return buf


def line_table(prog_id):
    """The JIT ranges of program `prog_id` and its line table, a sorted
    [(jited address, "file:line", source text)]."""
    fd = bpf(BPF_PROG_GET_FD_BY_ID, struct.pack("<I", prog_id))
    first = info(fd, 256)
    u32 = lambda b, off: struct.unpack_from("<I", b, off)[0]
    btf_id, n_lines, n_jited = u32(first, 128), u32(first, 148), u32(first, 168)
    rec, jrec = u32(first, 172), u32(first, 176)
    n_funcs = u32(first, 104)
    if not n_lines or n_lines != n_jited:
        sys.exit("the program has no (JIT) line info")
    lines = ctypes.create_string_buffer(n_lines * rec)
    jited = ctypes.create_string_buffer(n_jited * jrec)
    req = bytearray(256)
    struct.pack_into("<I", req, 148, n_lines)
    struct.pack_into("<QQ", req, 152, ctypes.addressof(lines), ctypes.addressof(jited))
    struct.pack_into("<III", req, 168, n_jited, rec, jrec)
    starts = (ctypes.c_uint64 * n_funcs)()
    lens = (ctypes.c_uint32 * n_funcs)()
    struct.pack_into("<II", req, 104, n_funcs, n_funcs)
    struct.pack_into("<QQ", req, 112, ctypes.addressof(starts), ctypes.addressof(lens))
    info(fd, 256, req)
    ranges = [(a, a + l) for a, l in zip(starts, lens)]
    btf_fd = bpf(BPF_BTF_GET_FD_BY_ID, struct.pack("<I", btf_id))
    size = u32(info(btf_fd, 32), 8)
    raw = ctypes.create_string_buffer(size)
    req = bytearray(32)
    struct.pack_into("<QI", req, 0, ctypes.addressof(raw), size)
    info(btf_fd, 32, req)
    hdr_len, _, _, str_off, str_len = struct.unpack_from("<IIIII", raw.raw, 4)
    strings = raw.raw[hdr_len + str_off : hdr_len + str_off + str_len]

    def text(off):
        return strings[off : strings.index(b"\0", off)].decode(errors="replace")

    table = []
    for k in range(n_lines):
        _, file_off, line_off, line_col = struct.unpack_from("<IIII", lines, k * rec)
        addr = struct.unpack_from("<Q", jited, k * jrec)[0]
        where = f"{os.path.basename(text(file_off))}:{line_col >> 10}"
        table.append((addr, where, text(line_off).strip()))
    table.sort()
    return ranges, table


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prog-id", type=int, required=True)
    ap.add_argument("--perf-data", default="perf.data")
    ap.add_argument("--top", type=int, default=30)
    a = ap.parse_args()
    ranges, table = line_table(a.prog_id)
    addrs = [t[0] for t in table]
    out = subprocess.run(
        ["perf", "script", "-i", a.perf_data, "-F", "ip,sym"],
        capture_output=True, text=True, check=True,
    ).stdout
    by_line, by_file, n = collections.Counter(), collections.Counter(), 0
    for row in out.splitlines():
        parts = row.split()
        if len(parts) < 2 or not parts[1].startswith("bpf_prog_"):
            continue
        ip = int(parts[0], 16)
        if not any(lo <= ip < hi for lo, hi in ranges):
            continue  # another program, or another load of this one
        i = bisect.bisect_right(addrs, ip) - 1
        if i < 0:
            continue
        n += 1
        by_line[table[i][1:]] += 1
        by_file[table[i][1].split(":")[0]] += 1
    if not n:
        sys.exit("no samples in this program (was it running while perf recorded?)")
    print(f"{n} samples in program {a.prog_id}\n\nby file:")
    for f, k in by_file.most_common():
        print(f"  {100 * k / n:5.1f}%  {f}")
    print("\nby line:")
    for (where, src), k in by_line.most_common(a.top):
        print(f"  {100 * k / n:5.1f}%  {where:24} {src}")


if __name__ == "__main__":
    main()
