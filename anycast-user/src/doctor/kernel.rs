//! What the program needs of the kernel: its version (the helpers and the
//! XDP link), BTF, bpffs, and what aya's feature probes find: XDP
//! programs, the map types and every helper the program calls.

use aya::{
    maps::MapType,
    programs::ProgramType,
    sys::{BpfHelper, is_helper_supported, is_map_supported, is_program_supported},
};

use super::{Check, Context, Status};
use crate::dataplane::LinkPin;

/// A kernel version, `major.minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Version(pub(crate) u32, pub(crate) u32);

/// The oldest kernel the data plane runs on: the XDP `bpf_link` it pins
/// (5.9), `bpf_ktime_get_coarse_ns` (5.11) and `bpf_check_mtu` (5.12).
pub(crate) const NEEDED: Version = Version(5, 12);
/// `BPF_FIB_LOOKUP_SRC`, for encapsulated members without a tunnel source.
pub(crate) const FIB_LOOKUP_SRC: Version = Version(6, 7);

impl Version {
    /// From a release string as `uname -r` prints it (`6.18.0-1-amd64`).
    pub(crate) fn parse(release: &str) -> Option<Self> {
        let mut parts = release.split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Version(major, minor))
    }

    /// The running kernel's (0.0 when it cannot be read).
    pub(crate) fn running() -> Self {
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .and_then(|r| Self::parse(r.trim()))
            .unwrap_or(Version(0, 0))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// The helpers the program calls (anycast-ebpf), as the verifier names them.
const HELPERS: [(BpfHelper, &str); 12] = [
    (BpfHelper::BPF_FUNC_map_lookup_elem, "map_lookup_elem"),
    (BpfHelper::BPF_FUNC_map_update_elem, "map_update_elem"),
    (BpfHelper::BPF_FUNC_redirect, "redirect"),
    (BpfHelper::BPF_FUNC_redirect_map, "redirect_map"),
    (BpfHelper::BPF_FUNC_fib_lookup, "fib_lookup"),
    (BpfHelper::BPF_FUNC_check_mtu, "check_mtu"),
    (BpfHelper::BPF_FUNC_xdp_adjust_head, "xdp_adjust_head"),
    (BpfHelper::BPF_FUNC_xdp_adjust_tail, "xdp_adjust_tail"),
    (BpfHelper::BPF_FUNC_csum_diff, "csum_diff"),
    (BpfHelper::BPF_FUNC_ktime_get_ns, "ktime_get_ns"),
    (
        BpfHelper::BPF_FUNC_ktime_get_coarse_ns,
        "ktime_get_coarse_ns",
    ),
    (BpfHelper::BPF_FUNC_jiffies64, "jiffies64"),
];

/// The map types of the program's maps.
const MAPS: [(MapType, &str); 6] = [
    (MapType::Hash, "hash"),
    (MapType::Array, "array"),
    (MapType::PerCpuArray, "percpu_array"),
    (MapType::LpmTrie, "lpm_trie"),
    (MapType::LruHash, "lru_hash"),
    (MapType::DevMapHash, "devmap_hash"),
];

pub(crate) fn checks(cx: &Context) -> Vec<Check> {
    let mut out = vec![version(cx), btf(), bpffs(cx)];
    out.push(probes(cx));
    out
}

fn version(cx: &Context) -> Check {
    let v = cx.kernel;
    if v < NEEDED {
        return Check::fail(
            "kernel.version",
            "",
            format!(
                "Linux {v}; the data plane needs {NEEDED} (the XDP link 5.9, bpf_ktime_get_coarse_ns 5.11, bpf_check_mtu 5.12)"
            ),
            format!("run Linux {NEEDED} or later"),
        );
    }
    let mut evidence = format!("Linux {v} (needs {NEEDED}");
    if v < FIB_LOOKUP_SRC {
        evidence.push_str(&format!(
            "; before {FIB_LOOKUP_SRC}, a group with encapsulated members needs a tunnel source"
        ));
    }
    evidence.push(')');
    Check::ok("kernel.version", "", evidence)
}

fn btf() -> Check {
    const VMLINUX: &str = "/sys/kernel/btf/vmlinux";
    if std::path::Path::new(VMLINUX).exists() {
        Check::ok("kernel.btf", "", format!("{VMLINUX} present"))
    } else {
        Check::warn(
            "kernel.btf",
            "",
            format!(
                "no {VMLINUX}: the kernel has no BTF (CONFIG_DEBUG_INFO_BTF); the program loads without it, but tools like bpftool show maps without types"
            ),
            "a kernel built with CONFIG_DEBUG_INFO_BTF=y".into(),
        )
    }
}

fn bpffs(cx: &Context) -> Check {
    let mount = cx
        .pin
        .path()
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(std::path::Path::new("/"));
    match crate::pin::is_bpffs(mount) {
        Ok(true) => Check::ok(
            "kernel.bpffs",
            "",
            format!("{} is on bpffs", mount.display()),
        ),
        Ok(false) => Check::fail(
            "kernel.bpffs",
            "",
            format!(
                "{} is not on bpffs: nothing can be pinned there",
                mount.display()
            ),
            "`mount -t bpf bpf /sys/fs/bpf` (or a --pin-dir under a bpffs mount)".into(),
        ),
        Err(e) => Check::warn(
            "kernel.bpffs",
            "",
            format!("cannot tell whether {} is on bpffs: {e}", mount.display()),
            "run doctor as root".into(),
        ),
    }
}

/// aya's feature probes: XDP programs, each map type and each helper.
fn probes(cx: &Context) -> Check {
    // A program the kernel accepted and runs: the verifier already found
    // every helper it calls.
    let running = cx.attachments.iter().find_map(|(_, l)| match l {
        LinkPin::Attached { prog_id } => Some(*prog_id),
        _ => None,
    });
    let mut missing = Vec::new();
    let mut unknown = Vec::new();
    match is_program_supported(ProgramType::Xdp) {
        Ok(true) => {}
        Ok(false) => missing.push("XDP programs".to_string()),
        Err(e) => unknown.push(format!("XDP programs ({e})")),
    }
    for (t, name) in MAPS {
        match is_map_supported(t) {
            Ok(true) => {}
            Ok(false) => missing.push(format!("{name} maps")),
            Err(e) => unknown.push(format!("{name} maps ({e})")),
        }
    }
    for (h, name) in HELPERS {
        match is_helper_supported(ProgramType::Xdp, h) {
            Ok(true) => {}
            Ok(false) => missing.push(format!("bpf_{name}")),
            Err(e) => unknown.push(format!("bpf_{name} ({e})")),
        }
    }
    let loaded = running.map_or(String::new(), |id| {
        format!("; the program runs (id {id}): the verifier accepted it")
    });
    if !missing.is_empty() {
        return Check::fail(
            "kernel.features",
            "",
            format!("this kernel lacks {}{loaded}", missing.join(", ")),
            format!("run Linux {NEEDED} or later with BPF and XDP enabled"),
        );
    }
    if !unknown.is_empty() {
        let status = if running.is_some() {
            Status::Ok
        } else {
            Status::Warn
        };
        let c = Check::new(
            "kernel.features",
            "",
            status,
            format!("could not probe {}{loaded}", unknown.join(", ")),
        );
        return match status {
            Status::Ok => c,
            _ => c.with_fix("run doctor as root (probes load test programs)".into()),
        };
    }
    Check::ok(
        "kernel.features",
        "",
        format!(
            "XDP, {} map types and {} helpers probed{loaded}",
            MAPS.len(),
            HELPERS.len()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_releases_read_as_major_and_minor() {
        assert_eq!(Version::parse("6.18.0-1-amd64"), Some(Version(6, 18)));
        assert_eq!(Version::parse("5.10.209"), Some(Version(5, 10)));
        assert_eq!(Version::parse("6.7"), Some(Version(6, 7)));
        assert_eq!(Version::parse("garbage"), None);
        assert!(Version(5, 11) < NEEDED && Version(5, 12) >= NEEDED && Version(6, 1) >= NEEDED);
        assert!(Version(6, 6) < FIB_LOOKUP_SRC && Version(6, 18) > FIB_LOOKUP_SRC);
    }
}
