//! The shim on the host: it runs as PID 1 of images that may have no libc at all, so it must be a static ELF (no
//! `PT_INTERP` program header). Checked once, when the runtime is made.

use std::path::{Path, PathBuf};

use crate::error::RuntimeError;

/// `PT_INTERP`: the program header naming a dynamic loader.
const PT_INTERP: u32 = 3;

/// Checks that `path` is a static ELF executable; returns its absolute path.
pub(super) fn check(path: &Path) -> Result<PathBuf, RuntimeError> {
    let fix = "build it with `make shim` (target/shim/examroom-shim), or point the server at a static build";
    let abs = std::fs::canonicalize(path).map_err(|e| {
        RuntimeError::invalid("shim", format!("the container shim {} is missing ({e}); {fix}", path.display()))
    })?;
    let bytes = std::fs::read(&abs).map_err(|e| {
        RuntimeError::invalid("shim", format!("the container shim {} cannot be read ({e}); {fix}", abs.display()))
    })?;
    match interpreter(&bytes) {
        Ok(false) => {}
        Ok(true) => {
            return Err(RuntimeError::invalid(
                "shim",
                format!(
                    "the container shim {} is dynamically linked (it has an ELF interpreter); {fix}",
                    abs.display()
                ),
            ))
        }
        Err(why) => {
            return Err(RuntimeError::invalid("shim", format!("the container shim {} {why}; {fix}", abs.display())))
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&abs).map(|m| m.permissions().mode()).unwrap_or(0);
    if mode & 0o111 == 0 {
        return Err(RuntimeError::invalid(
            "shim",
            format!("the container shim {} is not executable; {fix}", abs.display()),
        ));
    }
    if abs.to_str().is_none_or(|s| s.contains(':') || s.contains(',')) {
        return Err(RuntimeError::invalid(
            "shim",
            format!(
                "the container shim's path {} cannot be bind-mounted (it has ':' or ',' or is not UTF-8)",
                abs.display()
            ),
        ));
    }
    Ok(abs)
}

/// Whether a 64-bit little-endian ELF executable has a `PT_INTERP` header; `Err` when it is no such ELF.
fn interpreter(b: &[u8]) -> Result<bool, &'static str> {
    if b.len() < 64 || &b[..4] != b"\x7fELF" {
        return Err("is not an ELF executable");
    }
    if b[4] != 2 || b[5] != 1 {
        return Err("is not a 64-bit little-endian ELF");
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let u64_at = |o: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(a) as usize
    };
    let (phoff, phentsize, phnum) = (u64_at(32), u16_at(54), u16_at(56));
    if phentsize < 4 || phnum == 0 {
        return Err("has no program headers");
    }
    for i in 0..phnum {
        let at = phoff.checked_add(i * phentsize).ok_or("has a corrupt program header table")?;
        if at + 4 > b.len() {
            return Err("has a corrupt program header table");
        }
        if u32_at(at) == PT_INTERP {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_executable_and_a_script_are_refused() {
        // This test binary is dynamically linked (the default gnu target).
        let me = std::env::current_exe().unwrap();
        let e = check(&me).unwrap_err().to_string();
        assert!(e.contains("dynamically linked") && e.contains("make shim"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("shim");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let e = check(&script).unwrap_err().to_string();
        assert!(e.contains("not an ELF") && e.contains("make shim"), "{e}");
        let e = check(&dir.path().join("absent")).unwrap_err().to_string();
        assert!(e.contains("missing") && e.contains("make shim"), "{e}");
    }

    #[test]
    fn a_static_executable_passes() {
        // Debian's busybox-static, when installed.
        let p = Path::new("/bin/busybox");
        if !p.exists() || interpreter(&std::fs::read(p).unwrap()) != Ok(false) {
            eprintln!("skipped: no static /bin/busybox here");
            return;
        }
        assert_eq!(check(p).unwrap(), std::fs::canonicalize(p).unwrap());
    }
}
