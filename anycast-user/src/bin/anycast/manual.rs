//! Shell completions and man pages, generated from the clap definitions
//! of `cli.rs` (so that they cannot disagree with `--help`).
//!
//! The binary writes them itself, rather than `cargo xtask man`: the
//! definitions use the library's types, and xtask must not depend on the
//! anycast crates (it has to build before the BPF toolchain is there).

use std::{
    io::{self, Write},
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::cli::{Cli, CompletionShell};

/// The `anycast` command as clap builds it, with its binary's name.
fn command() -> clap::Command {
    Cli::command().bin_name("anycast")
}

/// Writes the completion script of `shell` to `out`.
pub(crate) fn completions(shell: CompletionShell, out: &mut impl Write) -> io::Result<()> {
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    // clap_complete writes through a `dyn Write` and panics on nothing;
    // a closed output shows as a short script the caller cannot see.
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut command(), "anycast", &mut buf);
    out.write_all(&buf)
}

/// Writes anycast.1 to `out`: the page [`man_pages`] writes first.
pub(crate) fn man_page(out: &mut impl Write) -> io::Result<()> {
    let mut buf = Vec::new();
    // As `clap_mangen::generate_to` does: `help` is no page of its own.
    clap_mangen::Man::new(command().disable_help_subcommand(true)).render(&mut buf)?;
    out.write_all(&buf)
}

/// Writes anycast.1 and one page per (visible) subcommand, anycast-SUB.1
/// and anycast-SUB-SUBSUB.1, into `dir` (created when missing); the
/// anycast pages `dir` then holds, sorted.
pub(crate) fn man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(command(), dir)
        .with_context(|| format!("writing the man pages to {}", dir.display()))?;
    let mut written: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("anycast") && n.ends_with(".1"))
        })
        .collect();
    written.sort();
    Ok(written)
}
