//! Host uid ranges for user namespaces: every environment maps its uids 0..65535 onto a range of host uids that no
//! other environment (of any label or state directory on this host) holds at the same time.
//!
//! A range is claimed by creating the file `<pool dir>/<slot>` with `O_EXCL`; the file names its owner (the
//! environment's state directory) so that a janitor can tell a leaked claim from a live one. The pool directory is
//! host-wide (`/run/examroom/uid-slots` by default, a tmpfs: claims cannot outlive a reboot, and neither can
//! environments).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Host uids per environment.
pub const RANGE: u32 = 65_536;

/// A pool of host uid ranges.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UidPool {
    /// Where claims are recorded (host-wide).
    pub dir: PathBuf,
    /// First host uid of slot 0. Far above ordinary users and `/etc/subuid` ranges.
    pub first: u32,
    /// How many ranges.
    pub slots: u32,
}

impl Default for UidPool {
    fn default() -> Self {
        // 0x1000_0000 .. 0xF000_0000: 14336 ranges of 65536, clear of system users, subuid ranges and (u32)-1.
        UidPool { dir: PathBuf::from("/run/examroom/uid-slots"), first: 0x1000_0000, slots: 14_336 }
    }
}

/// A claimed range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UidSlot {
    /// Slot number.
    pub slot: u32,
    /// First host uid (maps to uid 0 inside).
    pub base: u32,
}

impl UidPool {
    /// Claims a free range for `owner`, probing from a start derived from `seed` so that concurrent creators rarely
    /// collide.
    pub fn allocate(&self, owner: &Path, seed: u64) -> io::Result<UidSlot> {
        std::fs::create_dir_all(&self.dir)?;
        let start = (seed % u64::from(self.slots.max(1))) as u32;
        for i in 0..self.slots {
            let slot = (start + i) % self.slots;
            let path = self.dir.join(slot.to_string());
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(owner.as_os_str().as_encoded_bytes())?;
                    return Ok(UidSlot { slot, base: self.base(slot) });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(format!("all {} uid ranges in {} are in use", self.slots, self.dir.display())))
    }

    /// The first host uid of a slot.
    pub fn base(&self, slot: u32) -> u32 {
        self.first + slot * RANGE
    }

    /// Releases a claim, but only if `owner` still holds it. A missing claim is not an error.
    pub fn release(&self, slot: u32, owner: &Path) -> io::Result<()> {
        let path = self.dir.join(slot.to_string());
        match std::fs::read(&path) {
            Ok(held) if held == owner.as_os_str().as_encoded_bytes() => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The slot `owner` holds, if any (a scan of the claims; for cleanup after a crash).
    pub fn claimed_by(&self, owner: &Path) -> Option<u32> {
        let want = owner.as_os_str().as_encoded_bytes();
        std::fs::read_dir(&self.dir).ok()?.flatten().find_map(|e| {
            let slot = e.file_name().to_str()?.parse::<u32>().ok()?;
            (std::fs::read(e.path()).ok()? == want).then_some(slot)
        })
    }

    /// Whether `owner` holds `slot`.
    pub fn held_by(&self, slot: u32, owner: &Path) -> bool {
        std::fs::read(self.dir.join(slot.to_string())).is_ok_and(|h| h == owner.as_os_str().as_encoded_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_exclusive_and_released_only_by_their_owner() {
        let d = tempfile::tempdir().unwrap();
        let pool = UidPool { dir: d.path().join("slots"), first: 1 << 28, slots: 3 };
        let a = pool.allocate(Path::new("/a"), 7).unwrap();
        let b = pool.allocate(Path::new("/b"), 7).unwrap();
        let c = pool.allocate(Path::new("/c"), 7).unwrap();
        let mut got = [a.slot, b.slot, c.slot];
        got.sort();
        assert_eq!(got, [0, 1, 2]);
        assert!(pool.allocate(Path::new("/d"), 0).is_err(), "a full pool refuses");
        assert_eq!(a.base, (1 << 28) + a.slot * RANGE);
        pool.release(a.slot, Path::new("/not-the-owner")).unwrap();
        assert!(pool.held_by(a.slot, Path::new("/a")));
        pool.release(a.slot, Path::new("/a")).unwrap();
        assert!(!pool.held_by(a.slot, Path::new("/a")));
        assert_eq!(pool.allocate(Path::new("/e"), 0).unwrap().slot, a.slot);
        assert_eq!(pool.claimed_by(Path::new("/b")), Some(b.slot));
        assert_eq!(pool.claimed_by(Path::new("/nobody")), None);
    }

    #[test]
    fn ranges_never_overlap() {
        let pool = UidPool::default();
        let last = pool.base(pool.slots - 1) as u64 + RANGE as u64;
        assert!(last < u32::MAX as u64, "the last range stays below (uid_t)-1");
        assert!(pool.base(1) - pool.base(0) == RANGE);
    }
}
