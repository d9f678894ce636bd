//! Reloading the exam catalog while `serve` runs: on `SIGHUP`, and when the catalog directory changes.
//!
//! The directory is watched by polling (every [`POLL`]): a fingerprint of every entry's name, size, inode and
//! modification time, to a bounded depth and count. A change is reloaded once the fingerprint has stayed the same for
//! one more poll, so that an exam being copied in is read whole. Polling needs no inotify watches (which a host of
//! many environments runs short of) and sees changes through symlinked directories too.
//!
//! A reload reads the whole catalog again and hands it to [`SessionService::reload_catalog`]: new sessions start on
//! the new versions, and live sessions keep theirs.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use examroom_exams::Catalog;
use examroom_sessions::SessionService;

/// How often the catalog directory is looked at.
pub const POLL: Duration = Duration::from_secs(2);

/// Entries of the catalog directory looked at, at most (a catalog is small; this bounds a mistaken one).
const MAX_ENTRIES: usize = 20_000;
/// How deep the fingerprint looks (catalog / exam / checks / task / file).
const MAX_DEPTH: usize = 5;

/// Starts reloading `dir` into `svc` on `SIGHUP` and when it changes.
pub fn spawn(svc: SessionService, dir: PathBuf) {
    let hup = svc.clone();
    let hup_dir = dir.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; the catalog reloads only when its directory changes");
            return;
        };
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the exam catalog");
            reload(&hup, &hup_dir).await;
        }
    });
    tokio::spawn(async move {
        let mut loaded = fingerprint_of(&dir).await;
        let mut seen = loaded;
        let mut tick = tokio::time::interval(POLL);
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = fingerprint_of(&dir).await;
            // Changed since the last load, and the same as at the previous look: settled.
            if now != loaded && now == seen {
                tracing::info!(dir = %dir.display(), "the exam catalog directory changed: reloading");
                reload(&svc, &dir).await;
                loaded = now;
            }
            seen = now;
        }
    });
}

/// Loads `dir` again and replaces the service's catalog.
pub async fn reload(svc: &SessionService, dir: &Path) {
    let d = dir.to_path_buf();
    let catalog = match tokio::task::spawn_blocking(move || Catalog::load(&d)).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the catalog reload failed; the catalog stays as it was");
            return;
        }
    };
    if let Err(e) = svc.reload_catalog(catalog).await {
        tracing::error!(error = %e, "the catalog reload failed; the catalog stays as it was");
    }
}

async fn fingerprint_of(dir: &Path) -> u64 {
    let d = dir.to_path_buf();
    tokio::task::spawn_blocking(move || fingerprint(&d)).await.unwrap_or(0)
}

/// A hash of the names, sizes, inodes and modification times of everything under `dir` (symlinks not followed,
/// except `dir` itself), bounded by depth and count.
pub fn fingerprint(dir: &Path) -> u64 {
    let mut h = DefaultHasher::new();
    let mut entries: Vec<(PathBuf, u64, u64, i64, i64)> = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(list) = std::fs::read_dir(&d) else { continue };
        for entry in list.flatten() {
            if entries.len() >= MAX_ENTRIES {
                break;
            }
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
            entries.push((path.clone(), meta.len(), meta.ino(), meta.mtime(), meta.mtime_nsec()));
            if meta.is_dir() && depth + 1 < MAX_DEPTH {
                stack.push((path, depth + 1));
            }
        }
    }
    entries.sort();
    entries.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_changes_with_any_file_of_the_catalog() {
        let tmp = tempfile::tempdir().unwrap();
        let exam = tmp.path().join("a");
        std::fs::create_dir_all(exam.join("checks")).unwrap();
        std::fs::write(exam.join("exam.toml"), "x").unwrap();
        let first = fingerprint(tmp.path());
        assert_eq!(first, fingerprint(tmp.path()), "stable while nothing changes");
        std::fs::write(exam.join("checks/c.sh"), "exit 0\n").unwrap();
        let second = fingerprint(tmp.path());
        assert_ne!(first, second, "a new file");
        std::fs::write(exam.join("checks/c.sh"), "exit 1\n").unwrap();
        let f = std::fs::File::options().write(true).open(exam.join("checks/c.sh")).unwrap();
        f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5)).unwrap();
        assert_ne!(second, fingerprint(tmp.path()), "a changed file");
        assert_eq!(fingerprint(&tmp.path().join("missing")), fingerprint(&tmp.path().join("missing2")));
    }
}
