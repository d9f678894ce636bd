//! The `/etc` of the host base, built from the installed packages, never from what the host's administrator added.
//!
//! A host's `/etc` holds secrets that must never reach a candidate: a drop-in of examroom's own unit with
//! `EXAMROOM_TOKEN_SECRET`, SSH host keys, TLS keys, credentials of other services. So nothing is copied because it is
//! there; an entry comes in only when dpkg says a package owns it, in the form the package shipped:
//!
//! - **Package files** under `/etc` (dpkg's `info/*.list`): directories and symlinks as they are; regular files only
//!   when they are pristine. A conffile (`Conffiles:` in dpkg's `status`) counts as pristine when its md5 is the one
//!   the package shipped; any other package file when it matches the package's `md5sums`. A file the administrator
//!   edited is left out (and named in the report): its pristine form is not on the disk.
//! - **Files that maintainer scripts make from a template** in `/usr/share` (`nsswitch.conf`, `profile`, `networks`,
//!   `motd`), copied from the template when it is itself pristine; `shells` from debianutils' list.
//! - **`/etc/alternatives`**, rebuilt from dpkg's alternatives database in automatic mode (the highest priority, not
//!   an administrator's manual choice).
//! - **Generated**: `passwd` and `group` with the host's system accounts only (ids below 1000, `nobody`, `nogroup`;
//!   packages create these) and the account of grading's checks ([`GRADING_ACCOUNT`]), member lists cleared; `shadow` and `gshadow` with every password locked, mode 0640,
//!   group `shadow`; an empty `resolv.conf`, `machine-id`, `fstab` and `environment`; `mtab` → `/proc/self/mounts`;
//!   `localtime` → UTC and `timezone`; and `ld.so.cache` (the loader's index of the libraries in `/usr`).
//!
//! The result depends on the host's package state, so it is built per state ([`stamp`]) into `etc-<stamp>` and built
//! again when that changes (a package installed on the host later brings its groups and alternatives into new
//! environments). Builds are never changed in place: running environments keep the one they started on.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

/// Files that Debian's maintainer scripts create from a template the package ships in `/usr/share`.
const TEMPLATES: &[(&str, &str)] = &[
    ("nsswitch.conf", "usr/share/libc-bin/nsswitch.conf"),
    ("profile", "usr/share/base-files/profile"),
    ("networks", "usr/share/base-files/networks"),
    ("motd", "usr/share/base-files/motd"),
    ("bash.bashrc", "usr/share/base-files/dot.bashrc"),
];

/// What a build made, and what it left out.
#[derive(Debug, Default)]
pub struct Report {
    /// Entries written.
    pub entries: usize,
    /// Package files left out because they are not as the package shipped them (administrator edits).
    pub modified: Vec<PathBuf>,
}

/// A short digest of the host's package and account state: `etc-<stamp>` is rebuilt when it changes. Cheap (stat
/// calls only), so it can be checked on every create.
pub fn stamp(host: &Path) -> String {
    let mut h = Md5::new();
    for p in [
        "var/lib/dpkg/status",
        "var/lib/dpkg/alternatives",
        "var/lib/ucf/registry",
        "etc/passwd",
        "etc/group",
        "etc/ld.so.cache",
    ] {
        if let Ok(md) = std::fs::metadata(host.join(p)) {
            h.update(format!("{p}:{}:{}:{}:{};", md.ino(), md.size(), md.mtime(), md.mtime_nsec()).as_bytes());
        }
    }
    h.update(format!("format:{FORMAT};").as_bytes());
    hex(&h.finalize())[..16].to_string()
}

/// Bump when what a build contains changes, so existing builds are not reused.
const FORMAT: u32 = 5;

/// The account of grading's checks, in every environment's `/etc/passwd` and `/etc/group`.
pub const GRADING_ACCOUNT: &str = "examroom-grading";

/// The build for the host's current state under `base_dir` (`<state>/base`), made first if missing. Returns its
/// path. Concurrent callers in one process must serialize (the runtime holds a lock); a build is written aside and
/// renamed into place, so a crash never leaves a half build under the final name.
pub fn current(host: &Path, base_dir: &Path) -> io::Result<PathBuf> {
    let dir = base_dir.join(format!("etc-{}", stamp(host)));
    if dir.join("passwd").exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(base_dir)?;
    let tmp = base_dir.join(format!(".etc-building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let report = build(host, &tmp)?;
    if !report.modified.is_empty() {
        tracing::warn!(
            files = ?report.modified,
            "package files in the host's /etc differ from what their packages shipped: left out of environments"
        );
    }
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another process built the same state meanwhile: use theirs.
        Err(_) if dir.join("passwd").exists() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(e),
    }
}

/// Builds the `/etc` of the host rooted at `host` into `out` (which must not exist).
pub fn build(host: &Path, out: &Path) -> io::Result<Report> {
    let dpkg = Dpkg::read(host)?;
    std::fs::create_dir(out)?;
    std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o755))?;
    let mut report = Report::default();
    // Package files, parents before children.
    for path in &dpkg.etc_paths {
        let Ok(rel) = path.strip_prefix("/etc") else { continue };
        if rel.as_os_str().is_empty() || GENERATED.iter().any(|g| rel == Path::new(g)) {
            continue;
        }
        let src = host.join(path.strip_prefix("/").unwrap_or(path));
        let dst = out.join(rel);
        let Ok(md) = std::fs::symlink_metadata(&src) else { continue };
        if !dst.parent().is_some_and(|p| p.is_dir()) {
            continue; // its directory was left out
        }
        let ft = md.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&dst)?;
            copy_owner_and_mode(&md, &dst)?;
        } else if ft.is_symlink() {
            symlink(std::fs::read_link(&src)?, &dst)?;
        } else if ft.is_file() {
            let expected = dpkg.conffiles.get(path).or_else(|| dpkg.md5sums.get(path));
            match expected {
                Some(md5) if md5_of(&src)? == *md5 => {
                    std::fs::copy(&src, &dst)?;
                    copy_owner_and_mode(&md, &dst)?;
                }
                Some(_) => {
                    report.modified.push(path.clone());
                    continue;
                }
                // No digest to compare with: only a world-readable file, never a key or a credential.
                None if md.mode() & 0o004 != 0 => {
                    std::fs::copy(&src, &dst)?;
                    copy_owner_and_mode(&md, &dst)?;
                }
                None => continue,
            }
        } else {
            continue;
        }
        report.entries += 1;
    }
    // Files made from templates by maintainer scripts.
    for (name, template) in TEMPLATES {
        let (src, dst) = (host.join(template), out.join(name));
        if dst.exists() || !src.is_file() {
            continue;
        }
        let pristine = match dpkg.md5sums.get(&Path::new("/").join(template)) {
            Some(md5) => md5_of(&src)? == *md5,
            None => false,
        };
        if pristine {
            std::fs::copy(&src, &dst)?;
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o644))?;
            report.entries += 1;
        }
    }
    ucf_files(host, out, &mut report)?;
    write_shells(host, out)?;
    alternatives(host, out, &mut report)?;
    generated(host, out)?;
    Ok(report)
}

/// Files that maintainer scripts manage with `ucf` (openssh-server's `sshd_config`): the maintainer's version, which
/// ucf keeps in its cache (`/var/lib/ucf/cache/:etc:ssh:sshd_config`), never the one in `/etc` that an administrator
/// may have edited. Only registered files under `/etc`, without `..`.
fn ucf_files(host: &Path, out: &Path, report: &mut Report) -> io::Result<()> {
    let registry = std::fs::read_to_string(host.join("var/lib/ucf/registry")).unwrap_or_default();
    for line in registry.lines() {
        let Some(path) = line.split_whitespace().nth(1) else { continue };
        let Some(rel) = path.strip_prefix("/etc/") else { continue };
        if rel.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            continue;
        }
        let cached = host.join("var/lib/ucf/cache").join(path.replace('/', ":"));
        let dst = out.join(rel);
        if dst.exists() || !cached.is_file() {
            continue;
        }
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&cached, &dst)?;
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o644))?;
        report.entries += 1;
    }
    Ok(())
}

/// Names that [`generated`] writes (a package's copy, if any, is not used).
const GENERATED: &[&str] = &[
    "passwd",
    "group",
    "shadow",
    "gshadow",
    "resolv.conf",
    "machine-id",
    "fstab",
    "mtab",
    "localtime",
    "timezone",
    "environment",
    "ld.so.cache",
    "hostname",
    "hosts",
    "alternatives",
];

fn copy_owner_and_mode(md: &std::fs::Metadata, dst: &Path) -> io::Result<()> {
    std::os::unix::fs::chown(dst, Some(md.uid()), Some(md.gid()))?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(md.mode() & 0o7777))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn md5_of(path: &Path) -> io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Md5::new();
    io::copy(&mut f, &mut h)?;
    Ok(hex(&h.finalize()))
}

/// What dpkg knows about `/etc`.
struct Dpkg {
    /// Every path under `/etc` a package owns, sorted (so parents come first).
    etc_paths: BTreeSet<PathBuf>,
    /// Conffiles and the md5 their package shipped (obsolete ones left out).
    conffiles: BTreeMap<PathBuf, String>,
    /// Package files and their md5 (`info/*.md5sums`), for those under `/etc` and the templates.
    md5sums: BTreeMap<PathBuf, String>,
}

impl Dpkg {
    fn read(host: &Path) -> io::Result<Dpkg> {
        let info = host.join("var/lib/dpkg/info");
        let mut etc_paths = BTreeSet::new();
        let mut md5sums = BTreeMap::new();
        let templates: BTreeSet<PathBuf> = TEMPLATES.iter().map(|(_, t)| Path::new("/").join(t)).collect();
        for e in std::fs::read_dir(&info)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".list") {
                for line in std::fs::read_to_string(e.path()).unwrap_or_default().lines() {
                    if line == "/etc" || line.starts_with("/etc/") {
                        etc_paths.insert(PathBuf::from(line));
                    }
                }
            } else if name.ends_with(".md5sums") {
                for line in std::fs::read_to_string(e.path()).unwrap_or_default().lines() {
                    let Some((md5, file)) = line.split_once("  ") else { continue };
                    let p = Path::new("/").join(file);
                    if p.starts_with("/etc") || templates.contains(&p) {
                        md5sums.insert(p, md5.to_string());
                    }
                }
            }
        }
        let status = std::fs::read_to_string(host.join("var/lib/dpkg/status")).unwrap_or_default();
        Ok(Dpkg { etc_paths, conffiles: parse_conffiles(&status), md5sums })
    }
}

/// The `Conffiles:` of every stanza of dpkg's `status`: path → shipped md5. Obsolete ones and `newconffile`
/// placeholders are left out.
fn parse_conffiles(status: &str) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut in_conffiles = false;
    for line in status.lines() {
        if !line.starts_with(' ') {
            in_conffiles = line.starts_with("Conffiles:");
            continue;
        }
        if !in_conffiles {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 2 && f.len() <= 3 && f.get(2).is_none_or(|w| *w != "obsolete") && f[1].len() == 32 {
            out.insert(PathBuf::from(f[0]), f[1].to_string());
        }
    }
    out
}

/// `/etc/shells` from debianutils' list and the `shells.d` drop-ins, keeping shells that exist in the base.
fn write_shells(host: &Path, out: &Path) -> io::Result<()> {
    let mut shells = vec!["# /etc/shells: valid login shells".to_string()];
    let mut lines: Vec<String> = Vec::new();
    let share = host.join("usr/share/debianutils");
    for f in std::iter::once(share.join("shells"))
        .chain(std::fs::read_dir(share.join("shells.d")).into_iter().flatten().flatten().map(|e| e.path()))
    {
        lines.extend(std::fs::read_to_string(f).unwrap_or_default().lines().map(str::to_string));
    }
    for l in lines {
        let l = l.trim();
        if l.starts_with('/') && !shells.iter().any(|s| s == l) && host.join(l.trim_start_matches('/')).exists() {
            shells.push(l.to_string());
        }
    }
    std::fs::write(out.join("shells"), shells.join("\n") + "\n")?;
    std::fs::set_permissions(out.join("shells"), std::fs::Permissions::from_mode(0o644))
}

/// One alternative of dpkg's database.
#[derive(Debug, PartialEq)]
struct Choice {
    path: String,
    priority: i64,
    slaves: Vec<String>,
}

/// A file of `var/lib/dpkg/alternatives`: (master link, slave names, choices).
fn parse_alternative(text: &str) -> Option<(Vec<String>, Vec<Choice>)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 2; // status, master link
    let mut slaves = Vec::new();
    while i + 1 < lines.len() && !lines[i].is_empty() {
        slaves.push(lines[i].to_string());
        i += 2; // slave name, slave link
    }
    i += 1;
    let mut choices = Vec::new();
    while i + 1 < lines.len() && !lines[i].is_empty() {
        let path = lines[i].to_string();
        let priority = lines[i + 1].trim().parse().ok()?;
        i += 2;
        let mut targets = Vec::new();
        for _ in &slaves {
            targets.push(lines.get(i).copied().unwrap_or("").to_string());
            i += 1;
        }
        choices.push(Choice { path, priority, slaves: targets });
    }
    Some((slaves, choices))
}

/// `/etc/alternatives` in automatic mode: for each name, the choice of highest priority that exists in the base.
fn alternatives(host: &Path, out: &Path, report: &mut Report) -> io::Result<()> {
    let dir = out.join("alternatives");
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    let db = host.join("var/lib/dpkg/alternatives");
    for e in std::fs::read_dir(&db).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((slaves, choices)) = parse_alternative(&std::fs::read_to_string(e.path()).unwrap_or_default()) else {
            continue;
        };
        let Some(best) =
            choices.iter().filter(|c| host.join(c.path.trim_start_matches('/')).exists()).max_by_key(|c| c.priority)
        else {
            continue;
        };
        symlink(&best.path, dir.join(&name))?;
        report.entries += 1;
        for (slave, target) in slaves.iter().zip(&best.slaves) {
            if !target.is_empty() && !dir.join(slave).exists() {
                symlink(target, dir.join(slave))?;
            }
        }
    }
    Ok(())
}

/// The generated files (see the module docs).
fn generated(host: &Path, out: &Path) -> io::Result<()> {
    let (mut passwd, mut shadow) =
        system_accounts(&std::fs::read_to_string(host.join("etc/passwd")).unwrap_or_default(), 6);
    let (mut group_text, mut gshadow) =
        system_accounts(&std::fs::read_to_string(host.join("etc/group")).unwrap_or_default(), 3);
    // Grading's checks run as this id (`seccomp::RESERVED_CHECK_ID`, which no candidate process may take). It has a
    // name so that a machine's services answer it: dbus-daemon drops a connection from a uid without an account, and
    // `systemctl is-active` in a check asks over D-Bus.
    let id = crate::sandbox::seccomp::RESERVED_CHECK_ID;
    passwd.push_str(&format!("{GRADING_ACCOUNT}:x:{id}:{id}:examroom grading checks:/nonexistent:/usr/sbin/nologin\n"));
    shadow.push_str(&format!("{GRADING_ACCOUNT}:*:19000:0:99999:7:::\n"));
    group_text.push_str(&format!("{GRADING_ACCOUNT}:x:{id}:\n"));
    gshadow.push_str(&format!("{GRADING_ACCOUNT}:*::\n"));
    let shadow_gid = group_text
        .lines()
        .find_map(|l| l.strip_prefix("shadow:x:").and_then(|r| r.split(':').next()?.parse::<u32>().ok()));
    for (name, body, mode) in [
        ("passwd", passwd, 0o644),
        ("group", group_text.clone(), 0o644),
        ("shadow", shadow, 0o640),
        ("gshadow", gshadow, 0o640),
        ("resolv.conf", String::new(), 0o644),
        ("machine-id", String::new(), 0o444),
        ("fstab", "# <file system> <mount point> <type> <options> <dump> <pass>\n".to_string(), 0o644),
        ("environment", String::new(), 0o644),
        ("timezone", "Etc/UTC\n".to_string(), 0o644),
    ] {
        let p = out.join(name);
        let _ = std::fs::remove_file(&p);
        std::fs::write(&p, body)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
    }
    if let Some(gid) = shadow_gid {
        for name in ["shadow", "gshadow"] {
            std::os::unix::fs::chown(out.join(name), Some(0), Some(gid))?;
        }
    }
    for (name, target) in [("mtab", "../proc/self/mounts"), ("localtime", "/usr/share/zoneinfo/Etc/UTC")] {
        let _ = std::fs::remove_file(out.join(name));
        symlink(target, out.join(name))?;
    }
    // PAM's common stacks are written by pam-auth-update, not shipped: these are what it writes with the unix profile
    // alone (Debian's default).
    if out.join("pam.d").is_dir() {
        for (name, body) in PAM_COMMON {
            let p = out.join("pam.d").join(name);
            let _ = std::fs::remove_file(&p);
            std::fs::write(&p, body)?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))?;
        }
    }
    // The loader's index of the libraries in /usr: derived from the libraries, not configuration.
    let cache = host.join("etc/ld.so.cache");
    if cache.is_file() {
        std::fs::copy(&cache, out.join("ld.so.cache"))?;
        std::fs::set_permissions(out.join("ld.so.cache"), std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}

/// `/etc/pam.d/common-*` as pam-auth-update writes them when only the unix profile is enabled.
const PAM_COMMON: &[(&str, &str)] = &[
    (
        "common-auth",
        "auth\t[success=1 default=ignore]\tpam_unix.so nullok\nauth\trequisite\t\t\tpam_deny.so\n\
         auth\trequired\t\t\tpam_permit.so\n",
    ),
    (
        "common-account",
        "account\t[success=1 new_authtok_reqd=done default=ignore]\tpam_unix.so\naccount\trequisite\t\t\tpam_deny.so\n\
         account\trequired\t\t\tpam_permit.so\n",
    ),
    (
        "common-password",
        "password\t[success=1 default=ignore]\tpam_unix.so obscure yescrypt\npassword\trequisite\t\t\tpam_deny.so\n\
         password\trequired\t\t\tpam_permit.so\n",
    ),
    (
        "common-session",
        "session\t[default=1]\t\t\tpam_permit.so\nsession\trequisite\t\t\tpam_deny.so\n\
         session\trequired\t\t\tpam_permit.so\nsession\trequired\tpam_unix.so\n",
    ),
    (
        "common-session-noninteractive",
        "session\t[default=1]\t\t\tpam_permit.so\nsession\trequisite\t\t\tpam_deny.so\n\
         session\trequired\t\t\tpam_permit.so\nsession\trequired\tpam_unix.so\n",
    ),
];

/// From `/etc/passwd` (`fields` = 6 past the name... ) or `/etc/group` (3): keeps the system entries (id < 1000,
/// plus `nogroup`/`nobody`), clears group member lists, and derives a shadow file with locked passwords.
pub(crate) fn system_accounts(text: &str, fields: usize) -> (String, String) {
    let mut out = String::new();
    let mut shadow = String::new();
    for line in text.lines() {
        let mut f: Vec<&str> = line.split(':').collect();
        if f.len() < 3 {
            continue;
        }
        let id: u64 = f[2].parse().unwrap_or(u64::MAX);
        if id >= 1000 && f[0] != "nobody" && f[0] != "nogroup" {
            continue;
        }
        if fields == 3 && f.len() == 4 {
            f[3] = "";
        }
        f[1] = "x";
        out.push_str(&f.join(":"));
        out.push('\n');
        if fields == 6 {
            shadow.push_str(&format!("{}:*:19000:0:99999:7:::\n", f[0]));
        } else {
            shadow.push_str(&format!("{}:*::\n", f[0]));
        }
    }
    (out, shadow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md5_str(s: &str) -> String {
        hex(&Md5::digest(s.as_bytes()))
    }

    /// A fake host: packages own /etc/app.conf (a conffile, pristine), /etc/edited.conf (a conffile the
    /// administrator edited), /etc/app.d (a directory) with a file; the administrator added a secret drop-in; an
    /// alternative with two choices; accounts with a real user.
    fn host() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for d in
            ["etc/app.d", "etc/systemd/system/examroom.service.d", "var/lib/dpkg/info", "var/lib/dpkg/alternatives"]
        {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        for d in ["usr/share/libc-bin", "usr/share/debianutils", "usr/bin", "usr/share/man"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(r.join("etc/app.conf"), "shipped\n").unwrap();
        std::fs::write(r.join("etc/edited.conf"), "the admin's\n").unwrap();
        std::fs::write(r.join("etc/app.d/part"), "part\n").unwrap();
        std::fs::write(r.join("etc/systemd/system/examroom.service.d/secret.conf"), "EXAMROOM_TOKEN_SECRET=s3cr3t\n")
            .unwrap();
        std::fs::write(
            r.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(r.join("etc/group"), "root:x:0:\nshadow:x:42:alice\nalice:x:1000:\n").unwrap();
        std::fs::write(r.join("usr/share/libc-bin/nsswitch.conf"), "passwd: files\n").unwrap();
        std::fs::write(r.join("usr/share/debianutils/shells"), "/bin/sh\n/bin/nosuchshell\n").unwrap();
        std::fs::create_dir_all(r.join("bin")).unwrap();
        std::fs::write(r.join("bin/sh"), "").unwrap();
        std::fs::write(r.join("usr/bin/mawk"), "").unwrap();
        std::fs::write(r.join("usr/bin/gawk"), "").unwrap();
        std::fs::write(
            r.join("var/lib/dpkg/info/app.list"),
            "/etc\n/etc/app.conf\n/etc/edited.conf\n/etc/app.d\n/etc/app.d/part\n",
        )
        .unwrap();
        std::fs::write(r.join("var/lib/dpkg/info/app.md5sums"), format!("{}  etc/app.d/part\n", md5_str("part\n")))
            .unwrap();
        std::fs::write(
            r.join("var/lib/dpkg/info/libc-bin.md5sums"),
            format!("{}  usr/share/libc-bin/nsswitch.conf\n", md5_str("passwd: files\n")),
        )
        .unwrap();
        std::fs::write(
            r.join("var/lib/dpkg/status"),
            format!(
                "Package: app\nStatus: install ok installed\nConffiles:\n /etc/app.conf {}\n /etc/edited.conf {}\n \
                 /etc/gone.conf {} obsolete\nDescription: x\n\n",
                md5_str("shipped\n"),
                md5_str("shipped too\n"),
                md5_str("x")
            ),
        )
        .unwrap();
        std::fs::write(
            r.join("var/lib/dpkg/alternatives/awk"),
            "manual\n/usr/bin/awk\nawk.1.gz\n/usr/share/man/man1/awk.1.gz\n\n/usr/bin/mawk\n5\n/usr/share/man/man1/mawk.1.gz\n\
             /usr/bin/gawk\n10\n/usr/share/man/man1/gawk.1.gz\n\n",
        )
        .unwrap();
        t
    }

    #[test]
    fn only_pristine_package_files_and_generated_ones() {
        let h = host();
        let out = h.path().join("out");
        let report = build(h.path(), &out).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("app.conf")).unwrap(), "shipped\n");
        assert_eq!(std::fs::read_to_string(out.join("app.d/part")).unwrap(), "part\n");
        // The administrator's edit and the administrator's secret never come along.
        assert!(!out.join("edited.conf").exists());
        assert_eq!(report.modified, vec![PathBuf::from("/etc/edited.conf")]);
        assert!(!out.join("systemd").exists());
        // Accounts: system ones only, members cleared, passwords locked, shadow readable by group shadow.
        assert_eq!(
            std::fs::read_to_string(out.join("passwd")).unwrap(),
            "root:x:0:0:root:/root:/bin/bash\n\
             examroom-grading:x:65533:65533:examroom grading checks:/nonexistent:/usr/sbin/nologin\n"
        );
        assert_eq!(std::fs::read_to_string(out.join("group")).unwrap(), "root:x:0:\nshadow:x:42:\nexamroom-grading:x:65533:\n");
        assert!(std::fs::read_to_string(out.join("shadow")).unwrap().starts_with("root:*:"));
        let md = std::fs::metadata(out.join("shadow")).unwrap();
        assert_eq!((md.mode() & 0o777, md.gid()), (0o640, 42));
        // Templates, shells, alternatives (automatic: the highest priority, not the manual choice), links.
        assert_eq!(std::fs::read_to_string(out.join("nsswitch.conf")).unwrap(), "passwd: files\n");
        assert_eq!(
            std::fs::read_to_string(out.join("shells")).unwrap(),
            "# /etc/shells: valid login shells\n/bin/sh\n"
        );
        assert_eq!(std::fs::read_link(out.join("alternatives/awk")).unwrap(), Path::new("/usr/bin/gawk"));
        assert_eq!(
            std::fs::read_link(out.join("alternatives/awk.1.gz")).unwrap(),
            Path::new("/usr/share/man/man1/gawk.1.gz")
        );
        assert_eq!(std::fs::read_link(out.join("mtab")).unwrap(), Path::new("../proc/self/mounts"));
    }

    #[test]
    fn ucf_files_come_from_the_maintainers_cache() {
        let h = host();
        let r = h.path();
        std::fs::create_dir_all(r.join("var/lib/ucf/cache")).unwrap();
        std::fs::create_dir_all(r.join("etc/ssh")).unwrap();
        std::fs::write(
            r.join("var/lib/ucf/registry"),
            "openssh-server \t /etc/ssh/sshd_config\nevil \t /etc/../root/x\nother \t /srv/outside\n",
        )
        .unwrap();
        std::fs::write(r.join("var/lib/ucf/cache/:etc:ssh:sshd_config"), "PermitRootLogin prohibit-password\n")
            .unwrap();
        std::fs::write(r.join("etc/ssh/sshd_config"), "the admin's edit\n").unwrap();
        std::fs::write(r.join("var/lib/ucf/cache/:srv:outside"), "no\n").unwrap();
        let out = r.join("out");
        build(r, &out).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("ssh/sshd_config")).unwrap(),
            "PermitRootLogin prohibit-password\n"
        );
        assert!(!out.join("../root/x").exists() && !out.join("outside").exists());
    }

    #[test]
    fn the_stamp_follows_the_package_state() {
        let h = host();
        let a = stamp(h.path());
        assert_eq!(a, stamp(h.path()));
        std::fs::write(h.path().join("var/lib/dpkg/status"), "Package: other\n\n").unwrap();
        assert_ne!(a, stamp(h.path()));
        let base = h.path().join("base");
        let first = current(h.path(), &base).unwrap();
        assert_eq!(first, current(h.path(), &base).unwrap(), "a build is reused");
        std::fs::write(h.path().join("etc/group"), "root:x:0:\nnewpkg:x:120:\n").unwrap();
        let second = current(h.path(), &base).unwrap();
        assert_ne!(first, second);
        assert!(std::fs::read_to_string(second.join("group")).unwrap().contains("newpkg"));
        assert!(first.join("passwd").exists(), "an older build stays for the environments that use it");
    }

    #[test]
    fn conffiles_parse() {
        let c = parse_conffiles(
            "Package: a\nConffiles:\n /etc/a 0123456789abcdef0123456789abcdef\n /etc/b 0123456789abcdef0123456789abcdef obsolete\n /etc/c newconffile\nVersion: 1\n",
        );
        assert_eq!(c.keys().collect::<Vec<_>>(), [Path::new("/etc/a")]);
    }
}
