//! [`Problem`]: one thing wrong with an exam, located by file, line and field.
//!
//! Loading and validation never stop at the first problem: they collect every one they can find, so that an
//! exam author can fix them all in one go. A problem's [`Display`](std::fmt::Display) form is
//! `file:line: field: message`, like a compiler's, so that editors can jump to it.

use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with an exam or a catalog.
///
/// Displayed as `file:line: field: message`; the line and the field are left out when unknown (a missing
/// top-level field has no line; a file that cannot be read has neither).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file (usually an `exam.toml`) or directory the problem is in, as the caller named it.
    pub file: PathBuf,
    /// The 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// The field, as a dotted path such as `environment.memory`, when the problem concerns one.
    pub field: Option<String>,
    /// What is wrong and, where it helps, how to write it instead.
    pub message: String,
}

impl Problem {
    /// A problem with `file` as a whole: no line, no field.
    pub fn new(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self { file: file.into(), line: None, field: None, message: message.into() }
    }

    /// The same problem at `line` (1-based), or at no particular line.
    #[must_use]
    pub fn at_line(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }

    /// The same problem, about `field` (a dotted path such as `environment.memory`).
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The file the problem is in.
    pub fn file(&self) -> &Path {
        &self.file
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for Problem {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_a_compiler() {
        let p =
            Problem::new("exams/a/exam.toml", "must be at least 16").at_line(Some(12)).with_field("environment.pids");
        assert_eq!(p.to_string(), "exams/a/exam.toml:12: environment.pids: must be at least 16");
        let p = Problem::new("exams/a/exam.toml", "missing required field").with_field("id");
        assert_eq!(p.to_string(), "exams/a/exam.toml: id: missing required field");
        let p = Problem::new("exams/a/exam.toml", "invalid TOML").at_line(Some(3));
        assert_eq!(p.to_string(), "exams/a/exam.toml:3: invalid TOML");
        let p = Problem::new("exams", "cannot read the directory");
        assert_eq!(p.to_string(), "exams: cannot read the directory");
    }
}
