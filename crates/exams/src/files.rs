//! Reading the files that an `exam.toml` names (setup scripts, check scripts, prompt files) from its exam
//! directory, refusing whatever must not be read.
//!
//! A path is written relative to the exam directory. Refused, each with a message that says what is wrong:
//! an empty path, an absolute path, a path with `..` in it, a path (or a symlink anywhere along it) that
//! resolves outside the exam directory, a missing file, something that is not a regular file (a directory, a
//! FIFO, a device), a file larger than [`MAX_SCRIPT_BYTES`] ("huge file"), one that is not UTF-8, and more
//! than [`MAX_EXAM_CONTENT_BYTES`] read for one exam altogether.
//!
//! The checks resolve the path with `canonicalize` and compare it with the canonical exam directory; the file
//! is then opened without following a final symlink and without blocking (a FIFO swapped in cannot hang the
//! loader), and measured again once open.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use crate::definition::{format_bytes, shebang, shorten, MAX_EXAM_CONTENT_BYTES, MAX_SCRIPT_BYTES};

/// Reads files of one exam directory, counting what it has read.
pub(crate) struct ExamFiles {
    dir: PathBuf,
    /// The canonical exam directory, resolved on first use (an exam without scripts never touches the disk).
    canonical: Option<Result<PathBuf, String>>,
    /// Bytes read so far, every use counted.
    total: u64,
}

impl ExamFiles {
    pub(crate) fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf(), canonical: None, total: 0 }
    }

    fn canonical_dir(&mut self) -> Result<PathBuf, String> {
        let dir = &self.dir;
        self.canonical
            .get_or_insert_with(|| {
                fs::canonicalize(dir).map_err(|e| format!("cannot resolve the exam directory {}: {e}", dir.display()))
            })
            .clone()
    }

    /// Reads the file written as `written` (relative to the exam directory). `what` names it in messages:
    /// "setup script", "check script" or "prompt file". The error is the whole message.
    pub(crate) fn read(&mut self, written: &str, what: &str) -> Result<String, String> {
        let quoted = shorten(written);
        let relative = check_relative(written, what)?;
        let dir = self.canonical_dir()?;
        let full = dir.join(relative);
        let missing = || format!("missing {what}: {quoted:?} does not exist in the exam directory");
        let link = match fs::symlink_metadata(&full) {
            Ok(link) => link,
            // ENOTDIR: a component along the way is a file, so the path names nothing either.
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {
                return Err(missing())
            }
            Err(e) => return Err(format!("cannot read the {what} {quoted:?}: {e}")),
        };
        let target = match fs::canonicalize(&full) {
            Ok(target) => target,
            Err(e) if e.kind() == io::ErrorKind::NotFound && link.file_type().is_symlink() => {
                return Err(format!("missing {what}: {quoted:?} is a symlink to a file that does not exist"))
            }
            Err(e) => return Err(format!("cannot resolve the {what} {quoted:?}: {e}")),
        };
        if !target.starts_with(&dir) {
            return Err(format!(
                "{quoted:?} escapes the exam directory: it resolves through a symlink to {}, outside it; refused \
                 (put the file itself in the exam directory)",
                target.display()
            ));
        }
        let meta = fs::metadata(&target).map_err(|e| format!("cannot read the {what} {quoted:?}: {e}"))?;
        if !meta.is_file() {
            let kind = if meta.is_dir() { "a directory" } else { "not a regular file" };
            return Err(format!("the {what} {quoted:?} is {kind}; name a file"));
        }
        let huge = |size: String| {
            format!(
                "huge file: the {what} {quoted:?} is {size}, more than the {} allowed; refused",
                format_bytes(MAX_SCRIPT_BYTES)
            )
        };
        if meta.len() > MAX_SCRIPT_BYTES {
            return Err(huge(format!("{} bytes", meta.len())));
        }
        self.budget(meta.len())?;

        // The final component is no symlink now (it was resolved above): refuse one swapped in since, and never
        // block on a FIFO swapped in since.
        let mut file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&target)
            .map_err(|e| format!("cannot read the {what} {quoted:?}: {e}"))?;
        let opened = file.metadata().map_err(|e| format!("cannot read the {what} {quoted:?}: {e}"))?;
        if !opened.is_file() {
            return Err(format!("the {what} {quoted:?} is not a regular file; name a file"));
        }
        let mut bytes = Vec::new();
        (&mut file)
            .take(MAX_SCRIPT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read the {what} {quoted:?}: {e}"))?;
        // The file may have grown since it was measured.
        if bytes.len() as u64 > MAX_SCRIPT_BYTES {
            return Err(huge("larger".to_owned()));
        }
        self.budget(bytes.len() as u64)?;
        self.total += bytes.len() as u64;
        String::from_utf8(bytes).map_err(|e| {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
            format!("the {what} {quoted:?} is not valid UTF-8 (line {line} of it); save it as UTF-8")
        })
    }

    /// Refuses reading `len` more bytes when that would take the exam over [`MAX_EXAM_CONTENT_BYTES`].
    fn budget(&self, len: u64) -> Result<(), String> {
        if self.total.saturating_add(len) > MAX_EXAM_CONTENT_BYTES {
            return Err(format!(
                "huge exam: its scripts and prompt files add up to more than {}; refused",
                format_bytes(MAX_EXAM_CONTENT_BYTES)
            ));
        }
        Ok(())
    }
}

/// A path as written in `exam.toml`, checked to stay inside the exam directory by its form alone.
fn check_relative<'a>(written: &'a str, what: &str) -> Result<&'a Path, String> {
    const HOW: &str = "write a path relative to the exam directory, such as \"checks/exists.sh\"";
    let quoted = shorten(written);
    if written.trim().is_empty() {
        return Err(format!("the {what} path is empty; {HOW}"));
    }
    if written.contains('\0') {
        return Err(format!("the {what} path {quoted:?} contains a NUL character"));
    }
    let path = Path::new(written);
    if path.is_absolute() {
        return Err(format!("{quoted:?} escapes the exam directory: it is an absolute path; {HOW}"));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!("{quoted:?} escapes the exam directory: it contains \"..\"; {HOW}"));
    }
    if !path.components().any(|c| matches!(c, Component::Normal(_))) {
        return Err(format!("the {what} path {quoted:?} names the exam directory itself; {HOW}"));
    }
    Ok(path)
}

/// Checks the contents of a script: not blank, no NUL byte, and a `#!` line, if any, that names an absolute
/// interpreter and has no carriage return.
pub(crate) fn check_script_body(written: &str, body: &str, what: &str) -> Result<(), String> {
    let quoted = shorten(written);
    if body.trim().is_empty() {
        return Err(format!("the {what} {quoted:?} is empty; it must hold commands (a check passes when they exit 0)"));
    }
    if let Some(pos) = body.find('\0') {
        let line = body[..pos].matches('\n').count() + 1;
        return Err(format!("the {what} {quoted:?} contains a NUL byte (line {line} of it); a script is text"));
    }
    if let Some(line) = shebang(body) {
        if line.ends_with('\r') {
            return Err(format!(
                "the {what} {quoted:?} has Windows line endings (\\r\\n), which break its #! line; save it with \
                 Unix line endings (\\n)"
            ));
        }
        let program = line.trim_start_matches([' ', '\t']).split([' ', '\t']).next().unwrap_or_default();
        if program.is_empty() {
            return Err(format!(
                "the #! line of the {what} {quoted:?} names no interpreter; write #!/bin/sh or #!/bin/bash, or leave \
                 it out to run the script with /bin/sh"
            ));
        }
        if !program.starts_with('/') {
            return Err(format!(
                "the #! line of the {what} {quoted:?} names {:?}, not an absolute path; write it like #!/bin/bash or \
                 #!/usr/bin/env python3",
                shorten(program)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_only() {
        assert!(check_relative("checks/a.sh", "check script").is_ok());
        assert!(check_relative("./a.sh", "check script").is_ok());
        for (bad, message) in [
            ("", "empty"),
            ("  ", "empty"),
            ("/etc/passwd", "absolute"),
            ("../a.sh", "\"..\""),
            ("checks/../../a.sh", "\"..\""),
            ("checks/..", "\"..\""),
            (".", "exam directory itself"),
            ("a\0b", "NUL"),
        ] {
            let e = check_relative(bad, "check script").unwrap_err();
            assert!(e.contains(message), "{bad:?}: {e}");
        }
    }

    #[test]
    fn script_bodies() {
        assert!(check_script_body("a", "exit 0\n", "check script").is_ok());
        assert!(check_script_body("a", "#!/bin/bash\nexit 0\n", "check script").is_ok());
        assert!(check_script_body("a", "#! /usr/bin/env python3\n", "check script").is_ok());
        for (body, message) in [
            ("", "empty"),
            (" \n\t\n", "empty"),
            ("exit 0\n\0", "NUL byte (line 2"),
            ("#!/bin/sh\r\nexit 0\r\n", "Windows line endings"),
            ("#!\nexit 0", "no interpreter"),
            ("#!bash\nexit 0", "not an absolute path"),
        ] {
            let e = check_script_body("a", body, "check script").unwrap_err();
            assert!(e.contains(message), "{body:?}: {e}");
        }
    }
}
