//! Test harnesses of anycast.
//!
//! - [`prog`]: the XDP program with fresh maps, run on crafted frames with
//!   BPF_PROG_TEST_RUN and compared with the reference model.
//! - [`bgp`]: BIRD 2 in a lab namespace, with docs/BGP.md's configurations.
//! - [`dns`]: a real DNS server (dnsmasq) in a lab namespace and a client
//!   that reads which member answered.
//! - [`held`]: a program run held in flight, for what must wait for the
//!   runs under way.
//! - [`lab`]: network namespaces joined by veth pairs, the `anycast` binary
//!   run inside them, and real sockets at both ends.
//! - [`pinned`]: the `anycast` binary run against a pin dir of its own.
//!
//! Frames come from `anycast_common::frame`. The harnesses need root.

pub mod bgp;
pub mod dns;
pub mod fuzz;
pub mod held;
pub mod lab;
pub mod pinned;
pub mod prog;

/// Pins the calling thread to the CPU it runs on and returns that CPU, so
/// that its BPF_PROG_TEST_RUN calls (which run on the caller's CPU) all see
/// the same per-CPU maps, such as the flow cache.
pub fn pin_to_this_cpu() -> anyhow::Result<usize> {
    // SAFETY: no preconditions.
    let cpu = unsafe { libc::sched_getcpu() };
    let cpu = usize::try_from(cpu)
        .map_err(|_| anyhow::anyhow!("sched_getcpu: {}", std::io::Error::last_os_error()))?;
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET stays within it
    // for any CPU the kernel reported.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size given.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        anyhow::bail!(
            "sched_setaffinity to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(cpu)
}

/// Fails the calling test with a clear message unless it runs as root.
pub fn require_root() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!(
            "this test needs root (BPF and network namespaces): run `cargo xtask test` as root"
        );
    }
    Ok(())
}

/// The subcommands a clap `--help` text lists under `Commands:` (not
/// `help`). A long description wraps onto lines indented further than the
/// names, which are not names.
pub fn subcommands_in_help(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_wrapped_description_is_no_subcommand() {
        let help = "Usage: anycast <COMMAND>\n\nCommands:\n  doctor   Check\n  explain  Why a packet goes\n           maps, changing nothing\n  help     Print this\n\nOptions:\n  -h, --help\n";
        assert_eq!(super::subcommands_in_help(help), ["doctor", "explain"]);
    }
}
