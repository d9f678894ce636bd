//! Lint for `examroom exam validate`: what loads but is still wrong (errors) or likely wrong (hints).
//!
//! A loaded [`Exam`] has passed every rule of the format; lint looks further, at what CK-X's lab content shows goes
//! wrong without tools:
//!
//! - **errors**: weights that do not add up to the exam's `total_points`; checks that may never run because the
//!   timeouts before them use up the grading budget; files under `setup/` that no task runs; scripts with Windows line
//!   endings (`\r\n`). (A task without checks is already refused when the exam is loaded.)
//! - **hints**: scripts without a `#!` line (they run with `/bin/sh`), files under `checks/` or `solutions/` that
//!   nothing names, tasks without a reference solution (`exam test` cannot show that their checks can pass), and
//!   paths that a prompt mentions but no check of its task looks at.
//!
//! Every finding is a [`Problem`] (file, line, field), with its [`Severity`].

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::catalog::{load_exam, Catalog};
use crate::definition::{Exam, Script, EXAM_FILE};
use crate::problem::Problem;

/// Grading as a whole must finish within this (the session service's `ending::GRADING_BUDGET`): a check that would
/// start past it fails without running.
pub const GRADING_BUDGET: Duration = Duration::from_secs(300);

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Wrong: `exam validate` fails.
    Error,
    /// Probably wrong, or worth a look: reported, and `exam validate` still passes.
    Hint,
}

impl Severity {
    /// `error` or `hint`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Hint => "hint",
        }
    }
}

/// One finding of lint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lint {
    /// Error or hint.
    pub severity: Severity,
    /// Where and what.
    pub problem: Problem,
}

impl std::fmt::Display for Lint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.problem, self.severity.as_str())
    }
}

/// Lints `dir`: one exam directory (with an `exam.toml`) or a catalog of them. Exams that do not load are left out
/// (their problems are [`crate::validate`]'s).
pub fn lint(dir: &Path) -> Vec<Lint> {
    let exams: Vec<Exam> = if fs::symlink_metadata(dir.join(EXAM_FILE)).is_ok() {
        load_exam(dir).into_iter().collect()
    } else {
        let catalog = Catalog::scan(dir);
        catalog.exams().cloned().collect()
    };
    exams.iter().flat_map(lint_exam).collect()
}

/// Lints one loaded exam (reading its directory for files that nothing names).
pub fn lint_exam(exam: &Exam) -> Vec<Lint> {
    let file = exam.file();
    let text = fs::read_to_string(&file).unwrap_or_default();
    let mut out = Vec::new();
    let mut push = |severity: Severity, line: Option<usize>, field: String, message: String| {
        out.push(Lint { severity, problem: Problem::new(&file, message).at_line(line).with_field(field) });
    };

    if let Some(total) = exam.total_points {
        let sum = exam.max_score();
        if sum != total {
            push(
                Severity::Error,
                line_of(&text, "total_points"),
                "total_points".into(),
                format!("the checks' weights add up to {sum}, not the {total} that total_points declares"),
            );
        }
    }

    // Checks run one after another within the grading budget: one whose predecessors' timeouts use it all up may
    // never run (when they hang).
    let mut before = Duration::ZERO;
    'tasks: for (t, task) in exam.tasks.iter().enumerate() {
        for (c, check) in task.checks.iter().enumerate() {
            if before >= GRADING_BUDGET {
                push(
                    Severity::Error,
                    line_of(&text, &format!("\"{}\"", check.script.path.display())),
                    format!("tasks[{t}].checks[{c}]"),
                    format!(
                        "check {}/{} may never run: the timeouts of the checks before it add up to {} s, the whole \
                         grading budget of {} s; shorten their timeouts",
                        task.id,
                        check.id,
                        before.as_secs(),
                        GRADING_BUDGET.as_secs()
                    ),
                );
                break 'tasks;
            }
            before += check.timeout;
        }
    }

    // Scripts: line endings and #! lines.
    let mut named: BTreeSet<PathBuf> = BTreeSet::new();
    let mut scripts: Vec<(String, &Script)> = Vec::new();
    for (t, task) in exam.tasks.iter().enumerate() {
        if let Some(setup) = &task.setup {
            scripts.push((format!("tasks[{t}].setup"), setup));
        }
        if let Some(solution) = &task.solution {
            scripts.push((format!("tasks[{t}].solution"), solution));
        }
        for (c, check) in task.checks.iter().enumerate() {
            scripts.push((format!("tasks[{t}].checks[{c}].script"), &check.script));
        }
    }
    for (field, script) in &scripts {
        named.insert(normal(&script.path));
        let line = line_of(&text, &format!("\"{}\"", script.path.display()));
        if script.body.contains("\r\n") {
            push(
                Severity::Error,
                line,
                field.clone(),
                format!(
                    "{} has Windows line endings (\\r\\n): the shell reads the \\r as part of each command; save it \
                     with Unix line endings",
                    script.path.display()
                ),
            );
        }
        if !script.has_shebang() {
            push(
                Severity::Hint,
                line,
                field.clone(),
                format!(
                    "{} has no #! line, so it runs with /bin/sh; start it with #!/bin/sh to say so",
                    script.path.display()
                ),
            );
        }
    }

    // Files that nothing names.
    for (sub, severity, what) in [
        ("setup", Severity::Error, "a setup script that no task runs (name it in a task's setup, or remove it)"),
        ("checks", Severity::Hint, "a check script that no check runs"),
        ("solutions", Severity::Hint, "a solution that no task names (solution = \"...\")"),
    ] {
        for path in files_under(&exam.dir, sub) {
            if !named.contains(&path) {
                push(severity, None, sub.into(), format!("{} is {what}", path.display()));
            }
        }
    }

    let setups: Vec<&str> = exam.tasks.iter().filter_map(|t| t.setup.as_ref()).map(|s| s.body.as_str()).collect();
    for (t, task) in exam.tasks.iter().enumerate() {
        let line = line_of(&text, &format!("id = \"{}\"", task.id));
        if task.solution.is_none() {
            push(
                Severity::Hint,
                line,
                format!("tasks[{t}].solution"),
                format!(
                    "task {} has no reference solution: `examroom exam test` cannot show that its checks can pass",
                    task.id
                ),
            );
        }
        let looked_at: Vec<&str> = task.checks.iter().map(|c| c.script.body.as_str()).collect();
        for path in prompt_paths(&task.prompt) {
            let trimmed = path.trim_end_matches('/');
            // A path that setup provides is the task's input, not what it asks for.
            let input = setups.iter().any(|body| body.contains(trimmed));
            if !input && !looked_at.iter().any(|body| body.contains(trimmed)) {
                push(
                    Severity::Hint,
                    line,
                    format!("tasks[{t}].prompt"),
                    format!("the prompt of task {} mentions {path}, which none of its checks looks at", task.id),
                );
            }
        }
    }
    out
}

/// A path as written, without `./` parts.
fn normal(path: &Path) -> PathBuf {
    path.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect()
}

/// The regular files under `dir/sub`, relative to `dir`, sorted; nothing when it does not exist. Symlinks are not
/// followed.
fn files_under(dir: &Path, sub: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join(sub)];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else { continue };
            let path = entry.path();
            if kind.is_dir() {
                if out.len() < 10_000 {
                    stack.push(path);
                }
            } else if kind.is_file() {
                if let Ok(rel) = path.strip_prefix(dir) {
                    out.push(rel.to_path_buf());
                }
            }
        }
    }
    out.sort();
    out
}

/// The absolute paths a prompt mentions in code spans (`` `/srv/data` ``), in order, each once.
pub(crate) fn prompt_paths(prompt: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, span) in prompt.split('`').enumerate() {
        // Odd pieces are inside backticks.
        if i % 2 == 0 {
            continue;
        }
        for word in span.split_whitespace() {
            let word = word.trim_end_matches([',', '.', ';', ':', ')', '\'', '"']);
            let path_like = word.starts_with('/')
                && word.len() > 1
                && word.chars().all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
            if path_like && !out.iter().any(|p| p == word) {
                out.push(word.to_owned());
            }
        }
    }
    out
}

/// The 1-based line of the first line of `text` that holds `needle`.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_paths_are_code_spans_that_start_with_a_slash() {
        let prompt = "Create `/srv/project` and `/root/a.txt`, run `ls /tmp/x;` and not /etc/plain. Group `devs`. \
                      Again `/srv/project`.";
        assert_eq!(prompt_paths(prompt), vec!["/srv/project", "/root/a.txt", "/tmp/x"]);
        assert!(prompt_paths("no code at all").is_empty());
        assert!(prompt_paths("`/`").is_empty());
    }
}
