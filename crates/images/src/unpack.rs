//! Applying a layer (a tar stream) onto a tree, treating it as hostile.
//!
//! Every path is resolved one component at a time beneath the tree's root with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)`: a symlink the archive made (or any symlink) is never followed, and nothing outside the root
//! is ever touched. What is refused: `..` and absolute paths, a symlink whose relative target climbs above the root,
//! a hard link to anything outside or missing, device nodes other than the harmless ones (`null`, `zero`, `full`,
//! `random`, `urandom`, `tty`, `console`, `ptmx`: skipped, since an environment has its own `/dev`), block devices,
//! set-user-ID files owned by anyone but the image's root, ids beyond 32 bits, unknown entry types, and more file
//! content or entries than the [`Budget`] left. Whiteouts remove what a lower layer made; an opaque directory drops
//! every lower entry below it. Only `user.*` extended attributes are kept, never `user.overlay.*`.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timestamps};
use rustix::io::Errno;

use crate::{ImageError, Limits, Result};

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// Device numbers that are harmless and skipped (char devices only).
const SAFE_DEVICES: &[(u32, u32)] = &[(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2)];

/// What an import may still unpack.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    bytes: u64,
    inodes: u64,
    limits: Limits,
}

impl Budget {
    /// A full budget.
    pub fn new(limits: Limits) -> Self {
        Budget { bytes: limits.max_bytes, inodes: limits.max_inodes, limits }
    }

    /// Bytes of content unpacked so far.
    pub fn used_bytes(&self) -> u64 {
        self.limits.max_bytes - self.bytes
    }

    /// Entries unpacked so far.
    pub fn used_inodes(&self) -> u64 {
        self.limits.max_inodes - self.inodes
    }

    fn inode(&mut self) -> Result<()> {
        if self.inodes == 0 {
            return Err(ImageError::Refused(format!("more than {} entries (the inode cap)", self.limits.max_inodes)));
        }
        self.inodes -= 1;
        Ok(())
    }

    fn over_bytes(&self) -> ImageError {
        ImageError::Refused(format!("more than {} bytes unpacked (the size cap)", self.limits.max_bytes))
    }
}

/// A tree being built from layers.
pub struct Tree {
    root: OwnedFd,
    /// What is left to unpack.
    pub budget: Budget,
}

fn errno(context: impl std::fmt::Display) -> impl FnOnce(Errno) -> ImageError {
    let context = context.to_string();
    move |e| ImageError::Io { context, source: io::Error::from(e) }
}

fn show(comps: &[Vec<u8>]) -> String {
    let s: Vec<String> = comps.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    format!("/{}", s.join("/"))
}

/// Splits an archive path into its components, refusing `..`, absolute paths and empty ones. `.` and empty
/// components are dropped.
pub fn components(raw: &[u8]) -> Result<Vec<Vec<u8>>> {
    let shown = || String::from_utf8_lossy(raw).chars().take(200).collect::<String>();
    if raw.first() == Some(&b'/') {
        return Err(ImageError::Refused(format!("absolute path {:?} in a layer", shown())));
    }
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(ImageError::Refused(format!("path {:?} climbs out with \"..\"", shown()))),
            c if c.len() > 255 || c.contains(&0) => {
                return Err(ImageError::Refused(format!("invalid file name in {:?}", shown())))
            }
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

/// Whether a symlink at `parent` (components) with `target` stays within the tree when resolved lexically.
fn link_stays_inside(parent: &[Vec<u8>], target: &[u8]) -> bool {
    if target.first() == Some(&b'/') {
        // Absolute targets resolve against the environment's root: inside by construction.
        return true;
    }
    let mut depth = parent.len() as i64;
    for c in target.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => depth += 1,
        }
    }
    true
}

fn beneath() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV
}

fn open_child_dir(dir: impl AsFd, name: &[u8]) -> std::result::Result<OwnedFd, Errno> {
    rustix::fs::openat2(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        beneath(),
    )
}

impl Tree {
    /// Opens `dir` (an empty directory the caller made) as the root of a new tree.
    pub fn open(dir: &Path, limits: Limits) -> Result<Tree> {
        let root = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno(format!("open {}", dir.display())))?;
        Ok(Tree { root, budget: Budget::new(limits) })
    }

    /// The directory at `comps`, made (0755, root) where missing when `create`. `Ok(None)`: missing, not created.
    fn dir(&mut self, comps: &[Vec<u8>], create: bool) -> Result<Option<OwnedFd>> {
        let mut fd =
            rustix::fs::openat(&self.root, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                .map_err(errno("open the tree"))?;
        for (i, c) in comps.iter().enumerate() {
            fd = match open_child_dir(&fd, c) {
                Ok(next) => next,
                Err(Errno::NOENT) if create => {
                    self.budget.inode()?;
                    rustix::fs::mkdirat(&fd, c.as_slice(), Mode::from_raw_mode(0o755))
                        .map_err(errno(format!("make {}", show(&comps[..=i]))))?;
                    open_child_dir(&fd, c).map_err(errno(format!("open {}", show(&comps[..=i]))))?
                }
                Err(Errno::NOENT) => return Ok(None),
                Err(Errno::LOOP) | Err(Errno::XDEV) => {
                    return Err(ImageError::Refused(format!("{} goes through a symlink", show(&comps[..=i]))))
                }
                Err(Errno::NOTDIR) => {
                    let link = rustix::fs::statat(&fd, c.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
                        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
                    let what = if link { "goes through a symlink" } else { "is not a directory" };
                    return Err(ImageError::Refused(format!("{} {what}", show(&comps[..=i]))));
                }
                Err(e) => return Err(errno(format!("open {}", show(&comps[..=i])))(e)),
            };
        }
        Ok(Some(fd))
    }

    /// Applies one layer. `created` collects nothing across layers: whiteouts and opaque markers act only on what lower
    /// layers made.
    pub fn apply<R: Read>(&mut self, layer: R) -> Result<()> {
        let mut archive = tar::Archive::new(layer);
        let mut created: HashSet<Vec<Vec<u8>>> = HashSet::new();
        let entries = archive.entries().map_err(|e| ImageError::Corrupt(format!("layer: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| corrupt_or_cap("layer", e))?;
            self.entry(&mut entry, &mut created)?;
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, created: &mut HashSet<Vec<Vec<u8>>>) -> Result<()> {
        let kind = entry.header().entry_type();
        if matches!(kind, tar::EntryType::XGlobalHeader | tar::EntryType::XHeader) {
            return Ok(());
        }
        let path = entry.path_bytes().into_owned();
        let comps = components(&path)?;
        let Some((name, parent_comps)) = comps.split_last() else {
            // The root itself: its mode and owner.
            if kind.is_dir() {
                let (uid, gid, mode) = self.ids(entry, &comps)?;
                rustix::fs::fchown(&self.root, Some(uid), Some(gid)).map_err(errno("chown the root"))?;
                rustix::fs::fchmod(&self.root, Mode::from_raw_mode(mode)).map_err(errno("chmod the root"))?;
                return Ok(());
            }
            return Err(ImageError::Refused("an entry with an empty path that is not a directory".into()));
        };
        let header = entry.header();
        // Whiteouts.
        if name.as_slice() == OPAQUE {
            let Some(dir) = self.dir(parent_comps, false)? else { return Ok(()) };
            return self.clear_except(&dir, parent_comps.to_vec(), created);
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT) {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(ImageError::Refused(format!("invalid whiteout {}", show(&comps))));
            }
            let mut target = parent_comps.to_vec();
            target.push(hidden.to_vec());
            if created.contains(&target) {
                return Ok(());
            }
            let Some(dir) = self.dir(parent_comps, false)? else { return Ok(()) };
            return remove_all(&dir, hidden, &show(&target));
        }
        let (uid, gid, mode) = self.ids(entry, &comps)?;
        if mode & 0o4000 != 0 && uid.as_raw() != 0 {
            return Err(ImageError::Refused(format!(
                "{} is set-user-ID and owned by uid {}, not by the image's root",
                show(&comps),
                uid.as_raw()
            )));
        }
        let dev =
            (header.device_major().ok().flatten().unwrap_or(0), header.device_minor().ok().flatten().unwrap_or(0));
        if kind == tar::EntryType::Char && dev == (0, 0) {
            // An overlay-style whiteout: the same as `.wh.NAME`.
            if created.contains(&comps) {
                return Ok(());
            }
            let Some(dir) = self.dir(parent_comps, false)? else { return Ok(()) };
            return remove_all(&dir, name, &show(&comps));
        }
        if kind == tar::EntryType::Char && SAFE_DEVICES.contains(&dev) {
            return Ok(());
        }
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            let k = if kind == tar::EntryType::Char { "character" } else { "block" };
            return Err(ImageError::Refused(format!("{k} device {}:{} at {}", dev.0, dev.1, show(&comps))));
        }
        let parent = self.dir(parent_comps, true)?.expect("created");
        self.budget.inode()?;
        // What a lower layer (or an earlier entry) left there goes, except a directory that stays a directory.
        let existing = rustix::fs::statat(&parent, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW);
        let existing_dir = matches!(&existing, Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory);
        if existing.is_ok() && !(kind.is_dir() && existing_dir) {
            remove_all(&parent, name, &show(&comps))?;
        }
        let shown = show(&comps);
        match kind {
            tar::EntryType::Directory => {
                if !existing_dir {
                    rustix::fs::mkdirat(&parent, name.as_slice(), Mode::from_raw_mode(0o700))
                        .map_err(errno(format!("make {shown}")))?;
                }
                let fd = open_child_dir(&parent, name).map_err(errno(format!("open {shown}")))?;
                set_owner_mode(&fd, uid, gid, mode, &shown)?;
                set_xattrs(&fd, entry, &shown)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let fd = rustix::fs::openat(
                    &parent,
                    name.as_slice(),
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(errno(format!("create {shown}")))?;
                let mut file = std::fs::File::from(fd);
                let left = self.budget.bytes;
                let n = io::copy(&mut entry.take(left + 1), &mut file).map_err(|e| corrupt_or_cap(&shown, e))?;
                if n > left {
                    return Err(self.budget.over_bytes());
                }
                self.budget.bytes -= n;
                file.flush().map_err(ImageError::io(format!("write {shown}")))?;
                set_owner_mode(&file, uid, gid, mode, &shown)?;
                set_xattrs(&file, entry, &shown)?;
                if let Ok(mtime) = entry.header().mtime() {
                    let t = rustix::fs::Timespec { tv_sec: mtime.min(i64::MAX as u64) as i64, tv_nsec: 0 };
                    let _ = rustix::fs::futimens(&file, &Timestamps { last_access: t, last_modification: t });
                }
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| ImageError::Corrupt(format!("symlink {shown} without a target")))?
                    .into_owned();
                if target.is_empty() || target.contains(&0) {
                    return Err(ImageError::Refused(format!("symlink {shown} has an invalid target")));
                }
                if !link_stays_inside(parent_comps, &target) {
                    return Err(ImageError::Refused(format!(
                        "symlink {shown} -> {} escapes the image",
                        String::from_utf8_lossy(&target)
                    )));
                }
                rustix::fs::symlinkat(target.as_slice(), &parent, name.as_slice())
                    .map_err(errno(format!("symlink {shown}")))?;
                rustix::fs::chownat(&parent, name.as_slice(), Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(errno(format!("chown {shown}")))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| ImageError::Corrupt(format!("hard link {shown} without a target")))?
                    .into_owned();
                let tcomps = components(&target)
                    .map_err(|e| ImageError::Refused(format!("hard link {shown} escapes the image: {e}")))?;
                let Some((tname, tparent)) = tcomps.split_last() else {
                    return Err(ImageError::Refused(format!("hard link {shown} to the root")));
                };
                let tdir = self
                    .dir(tparent, false)?
                    .ok_or_else(|| ImageError::Corrupt(format!("hard link {shown} to a missing {}", show(&tcomps))))?;
                let st = rustix::fs::statat(&tdir, tname.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|_| ImageError::Corrupt(format!("hard link {shown} to a missing {}", show(&tcomps))))?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    return Err(ImageError::Refused(format!("hard link {shown} to a directory")));
                }
                rustix::fs::linkat(&tdir, tname.as_slice(), &parent, name.as_slice(), AtFlags::empty())
                    .map_err(errno(format!("link {shown}")))?;
            }
            tar::EntryType::Fifo => {
                rustix::fs::mknodat(&parent, name.as_slice(), FileType::Fifo, Mode::from_raw_mode(0o600), 0)
                    .map_err(errno(format!("make {shown}")))?;
                rustix::fs::chownat(&parent, name.as_slice(), Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(errno(format!("chown {shown}")))?;
                rustix::fs::chmodat(&parent, name.as_slice(), Mode::from_raw_mode(mode & 0o777), AtFlags::empty())
                    .map_err(errno(format!("chmod {shown}")))?;
            }
            other => return Err(ImageError::Refused(format!("{shown}: unsupported tar entry type {other:?}"))),
        }
        created.insert(comps);
        Ok(())
    }

    fn ids<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        comps: &[Vec<u8>],
    ) -> Result<(rustix::fs::Uid, rustix::fs::Gid, u32)> {
        let h = entry.header();
        let bad = |what: &str| ImageError::Corrupt(format!("{}: invalid {what}", show(comps)));
        let uid = h.uid().map_err(|_| bad("uid"))?;
        let gid = h.gid().map_err(|_| bad("gid"))?;
        let mode = h.mode().map_err(|_| bad("mode"))?;
        if uid > u32::MAX as u64 - 1 || gid > u32::MAX as u64 - 1 {
            return Err(ImageError::Refused(format!("{}: uid or gid beyond 32 bits", show(comps))));
        }
        Ok((rustix::fs::Uid::from_raw(uid as u32), rustix::fs::Gid::from_raw(gid as u32), mode & 0o7777))
    }

    /// Opaque directory: removes every entry below `dir` that this layer did not make.
    fn clear_except(&mut self, dir: &OwnedFd, at: Vec<Vec<u8>>, created: &HashSet<Vec<Vec<u8>>>) -> Result<()> {
        for name in list(dir, &show(&at))? {
            let mut p = at.clone();
            p.push(name.clone());
            if created.contains(&p) {
                if let Ok(sub) = open_child_dir(dir, &name) {
                    self.clear_except(&sub, p, created)?;
                }
            } else {
                remove_all(dir, &name, &show(&p))?;
            }
        }
        Ok(())
    }
}

fn corrupt_or_cap(what: &str, e: io::Error) -> ImageError {
    if e.kind() == io::ErrorKind::FileTooLarge {
        ImageError::Refused(format!("{what}: {e}"))
    } else {
        ImageError::Corrupt(format!("{what}: {e}"))
    }
}

fn set_owner_mode(fd: impl AsFd, uid: rustix::fs::Uid, gid: rustix::fs::Gid, mode: u32, shown: &str) -> Result<()> {
    rustix::fs::fchown(&fd, Some(uid), Some(gid)).map_err(errno(format!("chown {shown}")))?;
    // After the chown, which clears set-user-ID bits.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(errno(format!("chmod {shown}")))
}

/// Keeps `user.*` extended attributes only, and never `user.overlay.*` (which could hide or redirect files in an
/// overlay); `trusted.*`, `security.*` (file capabilities included) and ACLs are dropped.
fn set_xattrs<R: Read>(fd: impl AsFd, entry: &mut tar::Entry<'_, R>, shown: &str) -> Result<()> {
    let Some(exts) = entry.pax_extensions().map_err(|e| ImageError::Corrupt(format!("{shown}: {e}")))? else {
        return Ok(());
    };
    for ext in exts {
        let ext = ext.map_err(|e| ImageError::Corrupt(format!("{shown}: {e}")))?;
        let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") else { continue };
        if !name.starts_with(b"user.") || name.starts_with(b"user.overlay.") || name.contains(&0) {
            continue;
        }
        rustix::fs::fsetxattr(&fd, name, ext.value_bytes(), rustix::fs::XattrFlags::empty())
            .map_err(errno(format!("set an extended attribute on {shown}")))?;
    }
    Ok(())
}

fn list(dir: &OwnedFd, shown: &str) -> Result<Vec<Vec<u8>>> {
    let mut d = rustix::fs::Dir::read_from(dir).map_err(errno(format!("list {shown}")))?;
    let mut out = Vec::new();
    while let Some(e) = d.read() {
        let e = e.map_err(errno(format!("list {shown}")))?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(n.to_vec());
        }
    }
    Ok(out)
}

/// Removes `name` in `dir`, recursively, never following a symlink. Missing is fine.
fn remove_all(dir: &OwnedFd, name: &[u8], shown: &str) -> Result<()> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(errno(format!("stat {shown}"))(e)),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let sub = open_child_dir(dir, name).map_err(errno(format!("open {shown}")))?;
        for child in list(&sub, shown)? {
            remove_all(&sub, &child, shown)?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(errno(format!("remove {shown}")))
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(errno(format!("remove {shown}")))
    }
}

/// Makes `rel` (a relative path) in the tree below `root` with `content`, its directories made where missing
/// (0755), never through a symlink. Used for files the store adds to an image (its profile script).
pub(crate) fn write_file(root: &Path, rel: &str, content: &[u8], mode: u32) -> Result<()> {
    let mut tree = Tree::open(root, Limits { max_bytes: u64::MAX, max_inodes: u64::MAX })?;
    let comps = components(rel.as_bytes())?;
    let (name, parent) = comps.split_last().ok_or_else(|| ImageError::Corrupt("empty path".into()))?;
    let dir = tree.dir(parent, true)?.expect("created");
    remove_all(&dir, name, rel)?;
    let fd = rustix::fs::openat(
        &dir,
        name.as_slice(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )
    .map_err(errno(format!("create {rel}")))?;
    let mut f = std::fs::File::from(fd);
    f.write_all(content).map_err(ImageError::io(format!("write {rel}")))?;
    rustix::fs::fchmod(&f, Mode::from_raw_mode(mode)).map_err(errno(format!("chmod {rel}")))
}

/// Whether `rel` exists below `root` (not following symlinks on the way; the last one may be a symlink).
pub(crate) fn exists(root: &Path, rel: &str) -> bool {
    let Ok(comps) = components(rel.as_bytes()) else { return false };
    let Ok(mut tree) = Tree::open(root, Limits::default()) else { return false };
    let Some((name, parent)) = comps.split_last() else { return true };
    matches!(tree.dir(parent, false), Ok(Some(d)) if rustix::fs::statat(&d, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_split_and_checked() {
        assert_eq!(components(b"./etc//passwd").unwrap(), vec![b"etc".to_vec(), b"passwd".to_vec()]);
        assert!(components(b"").unwrap().is_empty());
        assert!(components(b"/etc/passwd").is_err());
        assert!(components(b"etc/../../x").is_err());
        assert!(components(b"..").is_err());
    }

    #[test]
    fn links_stay_inside() {
        let p = |s: &str| components(s.as_bytes()).unwrap();
        assert!(link_stays_inside(&p("usr/bin"), b"../lib/x"));
        assert!(link_stays_inside(&p("usr/bin"), b"../../etc"));
        assert!(!link_stays_inside(&p("usr/bin"), b"../../../etc"));
        assert!(!link_stays_inside(&p(""), b".."));
        assert!(link_stays_inside(&p(""), b"/etc/passwd"));
        assert!(link_stays_inside(&p("a"), b"b/../c"));
    }
}
