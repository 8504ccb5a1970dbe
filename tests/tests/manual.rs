//! The shell completions and the man pages the binary generates from its
//! clap definitions: one script per shell that knows every subcommand (as
//! `--help` lists them), bash's parses; a man page per subcommand, each
//! valid roff by groff's own warnings, anycast.1 naming every subcommand.

use std::{path::Path, process::Command};

use anyhow::{Context, Result, ensure};

/// `anycast ARGS`' standard output; an error with its standard error when
/// it fails.
fn anycast(args: &[&str]) -> Result<String> {
    let bin = anycast_tests::lab::anycast_bin()?;
    let out = Command::new(&bin)
        .args(args)
        .output()
        .with_context(|| format!("running {} {args:?}", bin.display()))?;
    ensure!(
        out.status.success(),
        "anycast {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// The subcommands the `Commands:` section of `anycast ARGS --help` lists,
/// without `help`.
fn listed(args: &[&str]) -> Result<Vec<String>> {
    let help = anycast(&[args, &["--help"]].concat())?;
    Ok(anycast_tests::subcommands_in_help(&help))
}

/// Every subcommand as a path: `["attach"]`, `["addr", "add"]`...
fn subcommands() -> Result<Vec<Vec<String>>> {
    let mut all = Vec::new();
    for top in listed(&[])? {
        let children = listed(&[top.as_str()])?;
        all.push(vec![top.clone()]);
        all.extend(children.into_iter().map(|c| vec![top.clone(), c]));
    }
    Ok(all)
}

#[test]
fn completions_of_each_shell_offer_every_subcommand_and_bash_s_parse() -> Result<()> {
    let subs = subcommands()?;
    // The check can fail: these are in --help, so they must be found.
    for must in [&["addr", "add"][..], &["completions"], &["flows", "guard"]] {
        ensure!(subs.iter().any(|s| s == must), "{must:?} not in {subs:?}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let script = anycast(&["completions", shell])?;
        let header = match shell {
            "bash" => "complete -F _anycast",
            "zsh" => "#compdef anycast",
            _ => "complete -c anycast",
        };
        ensure!(script.contains(header), "{shell}: no {header:?}");
        for path in &subs {
            let name = &path[path.len() - 1];
            // How each shell's script offers a subcommand: bash's case
            // of the words typed so far, zsh's `name:description`, fish's
            // `-a "name"` after its parent.
            let offered = match shell {
                "bash" => {
                    let parent = path[..path.len() - 1]
                        .iter()
                        .fold("anycast".to_string(), |p, s| format!("{p}__subcmd__{s}"));
                    script.contains(&format!("{parent},{name})"))
                }
                "zsh" => script.contains(&format!("\n'{name}:")),
                _ => script.lines().any(|l| {
                    l.contains(&format!("-a \"{name}\""))
                        && (path.len() == 1 || l.contains(&format!("subcommand {}", path[0])))
                }),
            };
            ensure!(offered, "{shell}: `{}` not offered", path.join(" "));
        }
    }
    let bash = anycast(&["completions", "bash"])?;
    let check = |script: &str| -> Result<bool> {
        let dir = std::env::temp_dir().join(format!("anycast-compl-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("anycast.bash");
        std::fs::write(&file, script)?;
        let ok = Command::new("bash")
            .arg("-n")
            .arg(&file)
            .output()?
            .status
            .success();
        std::fs::remove_dir_all(&dir)?;
        Ok(ok)
    };
    ensure!(check(&bash)?, "bash -n refused the script");
    // And bash -n does refuse a broken one.
    ensure!(!check(&bash.replacen("esac", "", 1))?);
    // A shell the command does not know is a usage error.
    ensure!(anycast(&["completions", "tcsh"]).is_err());
    Ok(())
}

/// What `groff -man -ww` warns of in `page` (empty: valid roff).
fn groff_warnings(page: &Path) -> Result<String> {
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(page)
        .output()
        .context("running groff (cargo xtask test installs groff-base)")?;
    ensure!(out.status.success(), "groff failed on {}", page.display());
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_man_page_per_subcommand_all_valid_roff_and_anycast_1_names_every_subcommand() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("anycast-man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let said = anycast(&["man", "--out", &dir.to_string_lossy()]);
    let result = (|| -> Result<()> {
        said?;
        let subs = subcommands()?;
        let main = std::fs::read_to_string(dir.join("anycast.1"))?;
        ensure!(main.contains(".TH anycast 1 "), "no .TH header");
        for section in [".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH OPTIONS"] {
            ensure!(main.contains(section), "anycast.1 has no {section}");
        }
        // Standard output's page is the same anycast.1.
        ensure!(anycast(&["man"])? == main);
        for path in &subs {
            let page = format!("anycast-{}", path.join("-"));
            if path.len() == 1 {
                // roff escapes the dash of a cross-reference.
                let named = format!("{}(1)", page.replace('-', "\\-"));
                ensure!(main.contains(&named), "anycast.1 does not name {named}");
            }
            let file = dir.join(format!("{page}.1"));
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("no page {}", file.display()))?;
            ensure!(text.contains(&format!(".TH {page} 1 ")), "{page}.1: no .TH");
        }
        let mut pages = 0;
        for e in std::fs::read_dir(&dir)? {
            let page = e?.path();
            let warned = groff_warnings(&page)?;
            ensure!(warned.is_empty(), "{}: {warned}", page.display());
            pages += 1;
        }
        ensure!(pages == subs.len() + 1, "{pages} pages for {subs:?}");
        // The check can fail: an unknown macro is a warning.
        let bad = dir.join("bad.1");
        std::fs::write(&bad, main.replacen(".SH NAME", ".NOSUCH NAME", 1))?;
        ensure!(
            !groff_warnings(&bad)?.is_empty(),
            "groff -ww missed a bad macro"
        );
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
