//! `cargo xtask deb`: a Debian package of the `anycast` binary, the way
//! operators install daemons.
//!
//! The package holds the binary (its eBPF object is embedded: nothing else
//! is loaded at run time), stripped, in /usr/bin; `dist/anycast.service` in
//! /usr/lib/systemd/system (where systemd looks on every distribution, with
//! or without merged /usr); the examples and docs in /usr/share/doc/anycast
//! with the copyright file and a Debian changelog; the man pages and the
//! bash, zsh and fish completions, which the binary generates from its own
//! command line at package time; an empty /etc/anycast.
//! No configuration file: an unedited example would attach XDP to
//! interfaces nobody chose, so the unit waits for /etc/anycast/anycast.toml
//! (`ConditionPathExists`). The maintainer scripts (dist/debian) enable the
//! unit, start or restart it, stop it on removal and forget it on purge, as
//! debhelper's would. `Depends` is what dpkg-shlibdeps finds the binary
//! linked against (libc6, libgcc-s1), with the versions its symbols need.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail, ensure};

/// The package's name, and its binary's.
const NAME: &str = "anycast";

/// The Debian revision of every package this task builds.
const REVISION: &str = "1";

/// Who the control file and the changelog name.
const MAINTAINER: &str = "anycast maintainers <anycast@example.invalid>";

/// What an operator reads in `apt show anycast` (the first line is the
/// summary; the others the long description, each indented by one space).
const DESCRIPTION: &str = "IPv6 anycast filter and redirector (XDP)
 Sends packets to an IPv6 anycast address to the nearest live member of
 its group (on-link by MAC, or IPv6-in-IPv6 to a routed member), keeps a
 running flow on its member, and drops packets from outside that use an
 anycast address as their source. The data plane is an XDP program with
 pinned maps; the anycast command manages it, and `anycast run --config`
 (anycast.service) keeps it true to a configuration file with health
 checks, Prometheus metrics and hitless reload and restart.";

/// One file of the package: where it comes from (relative to the
/// workspace root), where it goes (relative to /), its mode.
struct Entry {
    from: &'static str,
    to: &'static str,
    mode: u32,
}

const fn entry(from: &'static str, to: &'static str, mode: u32) -> Entry {
    Entry { from, to, mode }
}

/// The package's files besides the binary and the generated changelog.
const FILES: &[Entry] = &[
    entry(
        "dist/anycast.service",
        "usr/lib/systemd/system/anycast.service",
        0o644,
    ),
    entry(
        "dist/debian/copyright",
        "usr/share/doc/anycast/copyright",
        0o644,
    ),
    entry("README.md", "usr/share/doc/anycast/README.md", 0o644),
    entry(
        "docs/OPERATIONS.md",
        "usr/share/doc/anycast/OPERATIONS.md",
        0o644,
    ),
    entry("docs/CONFIG.md", "usr/share/doc/anycast/CONFIG.md", 0o644),
    entry("docs/BGP.md", "usr/share/doc/anycast/BGP.md", 0o644),
    entry("docs/JSON.md", "usr/share/doc/anycast/JSON.md", 0o644),
    entry(
        "examples/service.toml",
        "usr/share/doc/anycast/examples/service.toml",
        0o644,
    ),
    entry(
        "examples/anycast.toml",
        "usr/share/doc/anycast/examples/anycast.toml",
        0o644,
    ),
    entry(
        "examples/bgp.toml",
        "usr/share/doc/anycast/examples/bgp.toml",
        0o644,
    ),
];

/// The shell completions, as `anycast completions SHELL` writes them at
/// package time, and where each shell looks for a package's.
const COMPLETIONS: &[(&str, &str)] = &[
    ("bash", "usr/share/bash-completion/completions/anycast"),
    ("zsh", "usr/share/zsh/vendor-completions/_anycast"),
    ("fish", "usr/share/fish/vendor_completions.d/anycast.fish"),
];

/// Where the man pages go, gzipped (`anycast man --out DIR` writes them at
/// package time: anycast.1 and one per subcommand).
const MAN_DIR: &str = "usr/share/man/man1";

/// The maintainer scripts, from dist/debian.
const SCRIPTS: &[&str] = &["postinst", "prerm", "postrm"];

/// Where the binary goes; the unit's ExecStart must name it.
const BIN_PATH: &str = "usr/bin/anycast";

/// Builds the package of `bin` (a built `anycast`) in `out`; its path.
pub(crate) fn package(root: &Path, bin: &Path, out: &Path) -> Result<PathBuf> {
    let unit = fs::read_to_string(root.join("dist/anycast.service"))?;
    ensure!(
        unit.contains(&format!("ExecStart=/{BIN_PATH} ")),
        "dist/anycast.service does not start /{BIN_PATH}"
    );
    let version = format!("{}-{REVISION}", upstream_version(bin)?);
    let arch = output(Command::new("dpkg").arg("--print-architecture"))?;
    let stage = out.join(format!("{NAME}_{version}_{arch}"));
    if stage.exists() {
        fs::remove_dir_all(&stage).with_context(|| format!("removing {}", stage.display()))?;
    }
    let put = |to: &str, mode: u32, write: &dyn Fn(&Path) -> Result<()>| -> Result<()> {
        let path = stage.join(to);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        write(&path).with_context(|| format!("writing {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    put(BIN_PATH, 0o755, &|p| {
        fs::copy(bin, p)?;
        // Debian ships binaries without symbols (dh_strip); the eBPF
        // object is data in .rodata and stays.
        run(
            Command::new("strip")
                .args(["--strip-unneeded", "--remove-section=.comment"])
                .arg(p),
            "strip",
        )
    })?;
    for e in FILES {
        put(e.to, e.mode, &|p| {
            fs::copy(root.join(e.from), p)?;
            Ok(())
        })?;
    }
    // Generated from the binary's own command line, so that they match it.
    for (shell, to) in COMPLETIONS {
        let script = output(Command::new(bin).args(["completions", shell]))?;
        put(to, 0o644, &|p| Ok(fs::write(p, format!("{script}\n"))?))?;
    }
    let pages = out.join("man");
    if pages.exists() {
        fs::remove_dir_all(&pages)?;
    }
    run(
        Command::new(bin).arg("man").arg("--out").arg(&pages),
        "anycast man",
    )?;
    for page in walk(&pages)? {
        let name = page
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{}: not a page name", page.display()))?;
        let text = fs::read(&page)?;
        put(&format!("{MAN_DIR}/{name}.gz"), 0o644, &|p| gzip(&text, p))?;
    }
    fs::remove_dir_all(&pages)?;
    let (date, commit) = commit_info(root);
    let changelog = changelog(&version, &commit, &date);
    put("usr/share/doc/anycast/changelog.Debian.gz", 0o644, &|p| {
        gzip(changelog.as_bytes(), p)
    })?;
    // The operator's configuration goes here; the package ships none.
    fs::create_dir_all(stage.join("etc/anycast"))?;
    let installed_size = installed_size(&stage)?;
    let depends = shlib_depends(&stage.join(BIN_PATH), out)?;
    for dir in walk(&stage)?.into_iter().filter(|p| p.is_dir()) {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    }
    let md5sums = md5sums(&stage)?;
    put("DEBIAN/control", 0o644, &|p| {
        fs::write(
            p,
            control(&version, &arch, &depends, installed_size, DESCRIPTION),
        )?;
        Ok(())
    })?;
    put("DEBIAN/md5sums", 0o644, &|p| {
        fs::write(p, &md5sums)?;
        Ok(())
    })?;
    for s in SCRIPTS {
        put(&format!("DEBIAN/{s}"), 0o755, &|p| {
            fs::copy(root.join("dist/debian").join(s), p)?;
            Ok(())
        })?;
    }
    for dir in [stage.join("DEBIAN"), stage.clone()] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    }
    let deb = out.join(format!("{NAME}_{version}_{arch}.deb"));
    let mut cmd = Command::new("dpkg-deb");
    cmd.args(["--root-owner-group", "--build"])
        .arg(&stage)
        .arg(&deb);
    if let Some(epoch) = date.epoch {
        // Reproducible: the commit's time on every file.
        cmd.env("SOURCE_DATE_EPOCH", epoch.to_string());
    }
    run(&mut cmd, "dpkg-deb --build")?;
    Ok(deb)
}

/// The version `bin --version` prints (`anycast 0.1.0`).
fn upstream_version(bin: &Path) -> Result<String> {
    let said = output(Command::new(bin).arg("--version"))?;
    let v = said
        .strip_prefix("anycast ")
        .with_context(|| format!("`{} --version` said {said:?}", bin.display()))?;
    ensure!(
        !v.is_empty()
            && v.starts_with(|c: char| c.is_ascii_digit())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+~".contains(c)),
        "{v:?} is not a Debian upstream version"
    );
    Ok(v.to_string())
}

/// When the source was committed, and which commit (for the changelog).
struct CommitDate {
    /// RFC 2822, as Debian changelogs write dates.
    rfc2822: String,
    /// Seconds since the epoch, for SOURCE_DATE_EPOCH.
    epoch: Option<u64>,
}

/// The date and short hash of HEAD; now and "unknown" outside git.
fn commit_info(root: &Path) -> (CommitDate, String) {
    let git = |format: &str| {
        output(Command::new("git").current_dir(root).args([
            "log",
            "-1",
            &format!("--format={format}"),
        ]))
        .ok()
        .filter(|s| !s.is_empty())
    };
    let rfc2822 = git("%cD")
        .or_else(|| output(Command::new("date").arg("-R")).ok())
        .unwrap_or_else(|| "Thu, 01 Jan 1970 00:00:00 +0000".into());
    let epoch = git("%ct").and_then(|s| s.parse().ok());
    let commit = git("%h").unwrap_or_else(|| "unknown".into());
    (CommitDate { rfc2822, epoch }, commit)
}

/// The one entry of the package's Debian changelog.
fn changelog(version: &str, commit: &str, date: &CommitDate) -> String {
    format!(
        "{NAME} ({version}) unstable; urgency=medium\n\n  \
         * Built by `cargo xtask deb` from commit {commit}.\n\n -- {MAINTAINER}  {}\n",
        date.rfc2822
    )
}

/// The control file.
fn control(
    version: &str,
    arch: &str,
    depends: &str,
    installed_size: u64,
    description: &str,
) -> String {
    format!(
        "Package: {NAME}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: {MAINTAINER}\n\
         Installed-Size: {installed_size}\nDepends: {depends}\nSection: net\nPriority: optional\n\
         Description: {description}\n"
    )
}

/// `data` gzipped as Debian wants (`gzip -9n`: no name, no time).
fn gzip(data: &[u8], to: &Path) -> Result<()> {
    use std::io::Write as _;
    let mut child = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(fs::File::create(to)?)
        .spawn()
        .context("running gzip")?;
    child
        .stdin
        .take()
        .context("gzip's input")?
        .write_all(data)?;
    ensure!(child.wait()?.success(), "gzip failed");
    Ok(())
}

/// Every path under `dir`, depth first, sorted.
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        let is_dir = p.symlink_metadata()?.is_dir();
        out.push(p.clone());
        if is_dir {
            out.extend(walk(&p)?);
        }
    }
    Ok(out)
}

/// Installed-Size as dpkg-gencontrol counts it: each file's size in KiB
/// rounded up, and one for each directory or other entry.
fn installed_size(stage: &Path) -> Result<u64> {
    let mut kib = 0;
    for p in walk(stage)? {
        if p.starts_with(stage.join("DEBIAN")) {
            continue;
        }
        let m = p.symlink_metadata()?;
        kib += if m.is_file() {
            m.len().div_ceil(1024)
        } else {
            1
        };
    }
    Ok(kib)
}

/// The md5sums control file: every regular file, relative to the root.
fn md5sums(stage: &Path) -> Result<String> {
    let files: Vec<PathBuf> = walk(stage)?
        .into_iter()
        .filter(|p| p.is_file() && !p.starts_with(stage.join("DEBIAN")))
        .map(|p| p.strip_prefix(stage).map(Path::to_path_buf))
        .collect::<Result<_, _>>()?;
    output(Command::new("md5sum").current_dir(stage).args(&files)).map(|s| s + "\n")
}

/// The Depends of the binary at `bin`: dpkg-shlibdeps on it (in a scratch
/// folder under `out`, since it wants a debian/control to exist).
fn shlib_depends(bin: &Path, out: &Path) -> Result<String> {
    let scratch = out.join("shlibdeps");
    fs::create_dir_all(scratch.join("debian"))?;
    fs::write(scratch.join("debian/control"), "")?;
    let said = output(
        Command::new("dpkg-shlibdeps")
            .current_dir(&scratch)
            .arg("-O")
            .arg(format!("-e{}", bin.display())),
    )?;
    fs::remove_dir_all(&scratch)?;
    parse_shlibs(&said)
}

/// The value of `shlibs:Depends=...` in dpkg-shlibdeps' output.
fn parse_shlibs(said: &str) -> Result<String> {
    let depends = said
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .with_context(|| format!("dpkg-shlibdeps said no Depends: {said:?}"))?
        .trim();
    ensure!(
        depends.split(", ").any(|d| d.starts_with("libc6")),
        "the binary needs no libc6? {depends:?}"
    );
    Ok(depends.to_string())
}

/// Runs `cmd`; its standard output, trimmed.
fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    output(cmd)
        .map(drop)
        .with_context(|| format!("{what} failed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_are_read_from_dpkg_shlibdeps_and_must_name_libc() {
        let said = "shlibs:Depends=libc6 (>= 2.34), libgcc-s1 (>= 4.2)\n";
        assert_eq!(
            parse_shlibs(said).ok().as_deref(),
            Some("libc6 (>= 2.34), libgcc-s1 (>= 4.2)")
        );
        assert!(parse_shlibs("").is_err());
        assert!(parse_shlibs("shlibs:Depends=libgcc-s1 (>= 4.2)").is_err());
    }

    #[test]
    fn the_control_file_has_the_fields_dpkg_needs_and_a_folded_description() {
        let c = control("0.1.0-1", "amd64", "libc6 (>= 2.34)", 1234, DESCRIPTION);
        for field in [
            "Package: anycast\n",
            "Version: 0.1.0-1\n",
            "Architecture: amd64\n",
            "Installed-Size: 1234\n",
            "Depends: libc6 (>= 2.34)\n",
            "Description: IPv6 anycast filter and redirector (XDP)\n ",
        ] {
            assert!(c.contains(field), "{field:?} not in\n{c}");
        }
        // Every line is a field or a continuation, none empty, and the
        // file ends with one newline.
        assert!(c.ends_with(".\n") && !c.ends_with("\n\n"));
        for line in c.lines() {
            assert!(
                line.starts_with(' ') || line.contains(": "),
                "{line:?} is neither a field nor a continuation"
            );
        }
    }

    #[test]
    fn the_changelog_entry_is_as_dpkg_parsechangelog_reads_it() {
        let date = CommitDate {
            rfc2822: "Wed, 02 Dec 2026 02:00:00 +0000".into(),
            epoch: Some(1),
        };
        let c = changelog("0.1.0-1", "abc1234", &date);
        assert!(
            c.starts_with("anycast (0.1.0-1) unstable; urgency=medium\n\n  * "),
            "{c}"
        );
        assert!(
            c.ends_with(&format!(
                "\n -- {MAINTAINER}  Wed, 02 Dec 2026 02:00:00 +0000\n"
            )),
            "{c}"
        );
    }
}
