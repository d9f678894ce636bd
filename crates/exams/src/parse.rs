//! From the text of an `exam.toml` to an [`Exam`], or to every [`Problem`] in it.
//!
//! The text is parsed with `toml_edit`, which keeps the byte span of every key, value and table header, so
//! each problem names its line. Fields are then checked one by one and all problems are collected: a wrong
//! type in one field never hides a problem in another. Only invalid TOML stops early, with the parser's own
//! line and message.
//!
//! Unknown fields are errors (a typo such as `memroy` must not silently fall back to the default), with a
//! "did you mean" when a known field is close.
//!
//! Tasks (`[[tasks]]`, each with `[[tasks.checks]]`) name scripts and prompt files relative to the exam
//! directory; those are read here (safely, see the `files` module), so that a loaded [`Exam`] holds every
//! script it will ever run. A problem with such a file is reported at the line and field that name it, such
//! as `tasks[2].checks[0].script` (indices count from 0).
//!
//! The value syntaxes are public for reuse: [`parse_size`] (`"512M"`, `"1G"`, `"256MiB"`) and
//! [`parse_cpu`] (`"1500m"`, `"1.5"`).

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use examroom_core::{format_duration, parse_duration, ExamId, DEFAULT_PROVISIONING_TIMEOUT, DEFAULT_START_GRACE};
use toml_edit::{ImDocument, Item, Key, TableLike, Value};

use crate::definition::{
    check_id, format_bytes, format_cpu, shorten, Attempts, BaseKind, Check, EnvironmentConfig, Exam, PoolConfig,
    Resource, ResultPolicy, Script, SetupAt, Task, DEFAULT_CHECK_TIMEOUT, DEFAULT_CHECK_WEIGHT, DEFAULT_CPU_MILLICORES,
    DEFAULT_MEMORY_BYTES, DEFAULT_PIDS, DEFAULT_POOL_MAX_AGE, DEFAULT_RESOLUTION, DEFAULT_TERMINALS, DEFAULT_WARNINGS,
    DESKTOP_VNC_PORT, MAX_ATTEMPTS, MAX_CHECKS_PER_TASK, MAX_CHECK_TIMEOUT, MAX_CHECK_WEIGHT, MAX_CPU_MILLICORES,
    MAX_MEMORY_BYTES, MAX_PIDS, MAX_POOL_MAX_AGE, MAX_POOL_SIZE, MAX_PORTS, MAX_PROVISIONING_TIMEOUT, MAX_RESOURCES,
    MAX_RESOURCE_TITLE, MAX_RESOURCE_URL, MAX_START_GRACE, MAX_TASKS, MAX_TERMINALS, MAX_WARNINGS, MIN_CHECK_TIMEOUT,
    MIN_CPU_MILLICORES, MIN_DISK_BYTES, MIN_MEMORY_BYTES, MIN_PIDS, MIN_POOL_MAX_AGE, MIN_PROVISIONING_TIMEOUT,
    NETWORK_NONE, PROFILE_SHELL, PROFILE_SYSTEM,
};
use crate::definition::{ServiceSpec, BACKEND_DOCKER, BACKEND_SANDBOX};
use crate::files::{check_script_body, ExamFiles};
use crate::problem::Problem;

/// The top-level fields of `exam.toml`.
const TOP_FIELDS: &[&str] = &[
    "id",
    "title",
    "description",
    "duration",
    "environment",
    "provisioning_timeout",
    "start_grace",
    "tasks",
    "result",
    "attempts",
    "pool",
    "total_points",
    "resources",
    "warnings",
];

/// The fields of `[environment]`.
const ENVIRONMENT_FIELDS: &[&str] = &[
    "base",
    "memory",
    "pids",
    "cpu",
    "disk",
    "network",
    "desktop",
    "resolution",
    "ports",
    "profile",
    "backend",
    "services",
    "terminals",
];

/// The fields of a service (`[[environment.services]]`).
const SERVICE_FIELDS: &[&str] = &["name", "image", "command", "environment", "memory", "ready_command", "ready_port"];

/// The fields of a task (`[[tasks]]`).
const TASK_FIELDS: &[&str] =
    &["id", "title", "prompt", "prompt_file", "setup", "setup_at", "checks", "solution", "tags"];

/// The fields of a check (`[[tasks.checks]]`).
const CHECK_FIELDS: &[&str] = &["id", "description", "script", "weight", "timeout", "may_pass_unsolved"];

/// The fields of `[result]`.
const RESULT_FIELDS: &[&str] = &["show"];

/// The fields of a resource (`[[resources]]`).
const RESOURCE_FIELDS: &[&str] = &["title", "url"];

/// The fields of `[pool]`.
const POOL_FIELDS: &[&str] = &["size", "max_age"];

/// Parses and validates the text of an `exam.toml`.
///
/// `file` is only used to name the file in problems; `dir` becomes [`Exam::dir`], and the scripts and prompt
/// files that tasks name are read from it (nothing else is read from disk, and nothing at all for an exam
/// without tasks). On failure the result holds every problem found, in the order of the file (problems without
/// a line, such as a missing field, first).
pub fn parse_exam(text: &str, file: &Path, dir: &Path) -> Result<Exam, Vec<Problem>> {
    parse_exam_located(text, file, dir).map(|(exam, _)| exam)
}

/// Where, in its file, a parsed exam defined things that later checks (across a catalog) may complain
/// about.
#[derive(Debug, Clone, Default)]
pub(crate) struct Locations {
    /// The line of the `id` value.
    pub(crate) id_line: Option<usize>,
}

/// [`parse_exam`], also returning where things are, for the catalog's own checks.
pub(crate) fn parse_exam_located(text: &str, file: &Path, dir: &Path) -> Result<(Exam, Locations), Vec<Problem>> {
    let mut cx = Checker::new(file, text, dir);
    let doc = match ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let line = e.span().map(|s| cx.line_of(s.start));
            let message = e.message().trim().replace('\n', "; ");
            return Err(vec![cx.problem(line, None, format!("invalid TOML: {message}"))]);
        }
    };
    let root = Section { table: doc.as_table(), prefix: String::new(), line: None };
    cx.unknown_fields(&root, TOP_FIELDS);

    let mut locations = Locations::default();
    let id = cx.required(&root, "id").and_then(|f| {
        locations.id_line = f.line;
        let s = cx.string(&f)?;
        ExamId::parse(s).map_err(|e| cx.report(&f, e.to_string())).ok()
    });
    let title = cx.required(&root, "title").and_then(|f| {
        let s = cx.string(&f)?;
        if s.trim().is_empty() {
            cx.report(&f, "the title is blank; give the exam a title");
            return None;
        }
        Some(s.to_owned())
    });
    let description = cx.required(&root, "description").and_then(|f| cx.string(&f).map(str::to_owned));
    let duration = cx.required(&root, "duration").and_then(|f| cx.duration(&f, None, None));
    let provisioning_timeout = match cx.optional(&root, "provisioning_timeout") {
        None => Some(DEFAULT_PROVISIONING_TIMEOUT),
        Some(f) => cx.duration(&f, Some(MIN_PROVISIONING_TIMEOUT), Some(MAX_PROVISIONING_TIMEOUT)),
    };
    let start_grace = match cx.optional(&root, "start_grace") {
        None => Some(DEFAULT_START_GRACE),
        // parse_duration refuses zero, so the least is anything above it.
        Some(f) => cx.duration(&f, None, Some(MAX_START_GRACE)),
    };
    let environment = cx.required(&root, "environment").and_then(|f| {
        let section = cx.section(&f, "environment.")?;
        cx.environment(&section)
    });
    let tasks = match cx.optional(&root, "tasks") {
        None => Some(Vec::new()),
        Some(f) => cx.tasks(&f),
    };
    let result = match cx.optional(&root, "result") {
        None => Some(ResultPolicy::default()),
        Some(f) => cx.section(&f, "result.").and_then(|section| cx.result(&section)),
    };
    // `Some(None)`: not written (the default depends on the tasks).
    let attempts = match cx.optional(&root, "attempts") {
        None => Some(None),
        Some(f) => cx.attempts(&f).map(Some),
    };
    let pool = match cx.optional(&root, "pool") {
        None => Some(PoolConfig::default()),
        Some(f) => cx.section(&f, "pool.").and_then(|section| cx.pool(&section)),
    };
    let total_points = match cx.optional(&root, "total_points") {
        None => Some(None),
        Some(f) => cx.integer_in(&f, 1, 1_000_000).map(|n| Some(n as u32)),
    };
    let resources = match cx.optional(&root, "resources") {
        None => Some(Vec::new()),
        Some(f) => cx.resources(&f),
    };
    let warnings = match cx.optional(&root, "warnings") {
        None => Some(DEFAULT_WARNINGS.to_vec()),
        Some(f) => cx.warnings(&f, duration),
    };

    let exam = (|| {
        Some(Exam {
            id: id?,
            title: title?,
            description: description?,
            duration: duration?,
            environment: environment?,
            provisioning_timeout: provisioning_timeout?,
            start_grace: start_grace?,
            dir: dir.to_path_buf(),
            attempts: attempts?.unwrap_or_else(|| Attempts::default_for(tasks.as_deref().unwrap_or_default())),
            tasks: tasks?,
            result: result?,
            pool: pool?,
            total_points: total_points?,
            resources: resources?,
            warnings: warnings?,
        })
    })();
    match exam {
        Some(exam) if cx.problems.is_empty() => Ok((exam, locations)),
        _ => {
            if cx.problems.is_empty() {
                // Every `None` above comes with a problem; this is a safety net, not an expected path.
                cx.problems.push(cx.problem(None, None, "the exam is incomplete".to_owned()));
            }
            // In the order of the file; problems without a line (missing fields) first. The sort is stable,
            // so problems on one line keep the order of the checks.
            let mut problems = cx.problems;
            problems.sort_by_key(|p| p.line);
            Err(problems)
        }
    }
}

/// A table (`[environment]`, a task, a check, an inline table, or the document root) and where it is.
struct Section<'a> {
    table: &'a dyn TableLike,
    /// `""` for the root, `"environment."` for `[environment]`, `"tasks[2].checks[0]."` for a check: what
    /// field names are prefixed with.
    prefix: String,
    /// The line of its header (or of its key), for problems about a missing field.
    line: Option<usize>,
}

/// A field that is present: its value and where it is.
struct Field<'a> {
    /// The dotted field name, such as `environment.memory`.
    name: String,
    item: &'a Item,
    /// The line of the value (or of the key, when the value has no span).
    line: Option<usize>,
}

/// Collects problems while checking one file.
struct Checker {
    file: PathBuf,
    /// Byte offsets of every `\n` in the text, to turn a byte offset into a line.
    newlines: Vec<usize>,
    problems: Vec<Problem>,
    /// The exam directory's files that tasks name.
    files: ExamFiles,
}

/// Where an id was first used, for "duplicate id" problems: its field and line.
type Seen = HashMap<String, (String, Option<usize>)>;

impl Checker {
    fn new(file: &Path, text: &str, dir: &Path) -> Self {
        let newlines = text.bytes().enumerate().filter(|&(_, b)| b == b'\n').map(|(i, _)| i).collect();
        Self { file: file.to_path_buf(), newlines, problems: Vec::new(), files: ExamFiles::new(dir) }
    }

    /// The 1-based line that byte `offset` is on.
    fn line_of(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&nl| nl < offset) + 1
    }

    fn line_of_span(&self, span: Option<Range<usize>>) -> Option<usize> {
        span.map(|s| self.line_of(s.start))
    }

    fn problem(&self, line: Option<usize>, field: Option<&str>, message: String) -> Problem {
        let p = Problem::new(&self.file, message).at_line(line);
        match field {
            Some(field) => p.with_field(field),
            None => p,
        }
    }

    /// Records a problem with `field`'s value.
    fn report(&mut self, field: &Field<'_>, message: impl Into<String>) {
        let p = self.problem(field.line, Some(&field.name), message.into());
        self.problems.push(p);
    }

    /// The line of a key, or failing that of its value.
    fn key_line(&self, key: &Key, item: &Item) -> Option<usize> {
        self.line_of_span(key.span()).or_else(|| self.line_of_span(item_span(item)))
    }

    /// Reports every key of `section` that is not in `known`.
    fn unknown_fields(&mut self, section: &Section<'_>, known: &[&str]) {
        for (name, item) in section.table.iter() {
            let line = section.table.key(name).and_then(|key| self.key_line(key, item));
            if known.contains(&name) {
                continue;
            }
            let mut message = format!("unknown field {:?}", shorten(name));
            if let Some(near) = closest(name, known) {
                message.push_str(&format!(" (did you mean {near:?}?)"));
            }
            message.push_str(&format!("; the fields here are {}", known.join(", ")));
            let field = format!("{}{name}", section.prefix);
            let p = self.problem(line, Some(&field), message);
            self.problems.push(p);
        }
    }

    /// The field `name` of `section`, if present.
    fn optional<'a>(&self, section: &Section<'a>, name: &str) -> Option<Field<'a>> {
        let (key, item) = section.table.get_key_value(name)?;
        if item.is_none() {
            return None;
        }
        let line = self.line_of_span(item_span(item)).or_else(|| self.line_of_span(key.span()));
        Some(Field { name: format!("{}{name}", section.prefix), item, line })
    }

    /// The field `name` of `section`, reporting it when missing.
    fn required<'a>(&mut self, section: &Section<'a>, name: &str) -> Option<Field<'a>> {
        let field = self.optional(section, name);
        if field.is_none() {
            let full = format!("{}{name}", section.prefix);
            let p = self.problem(section.line, Some(&full), "missing required field".to_owned());
            self.problems.push(p);
        }
        field
    }

    fn wrong_type(&mut self, field: &Field<'_>, expected: &str) {
        let found = describe(field.item);
        self.report(field, format!("expected {expected}, found {found}"));
    }

    fn string<'a>(&mut self, field: &Field<'a>) -> Option<&'a str> {
        let s = field.item.as_str();
        if s.is_none() {
            self.wrong_type(field, "a string");
        }
        s
    }

    fn boolean(&mut self, field: &Field<'_>) -> Option<bool> {
        let b = field.item.as_bool();
        if b.is_none() {
            self.wrong_type(field, "true or false");
        }
        b
    }

    /// A table (a `[section]`, an inline table or dotted keys) as a [`Section`].
    fn section<'a>(&mut self, field: &Field<'a>, prefix: &str) -> Option<Section<'a>> {
        let Some(table) = field.item.as_table_like() else {
            self.wrong_type(field, &format!("a table such as [{}]", field.name));
            return None;
        };
        Some(Section { table, prefix: prefix.to_owned(), line: field.line })
    }

    /// An array of tables (`[[tasks]]` sections, or an array of inline tables) as [`Section`]s, each prefixed
    /// with the field and its index: `tasks[0].`. `header` is how it is written, such as `[[tasks]]`.
    fn table_array<'a>(&mut self, field: &Field<'a>, header: &str) -> Option<Vec<Section<'a>>> {
        match field.item {
            Item::ArrayOfTables(array) => Some(
                array
                    .iter()
                    .enumerate()
                    .map(|(i, table)| Section {
                        table,
                        prefix: format!("{}[{i}].", field.name),
                        line: self.line_of_span(table.span()).or(field.line),
                    })
                    .collect(),
            ),
            Item::Value(Value::Array(array)) => {
                let mut sections = Vec::new();
                let mut ok = true;
                for (i, value) in array.iter().enumerate() {
                    let line = self.line_of_span(value.span()).or(field.line);
                    match value.as_inline_table() {
                        Some(table) => sections.push(Section { table, prefix: format!("{}[{i}].", field.name), line }),
                        None => {
                            let element = Field { name: format!("{}[{i}]", field.name), item: field.item, line };
                            let found = describe(&Item::Value(value.clone()));
                            self.report(&element, format!("expected a table such as {header}, found {found}"));
                            ok = false;
                        }
                    }
                }
                ok.then_some(sections)
            }
            Item::Table(table) if table.contains_key("checks") => {
                self.wrong_type(
                    field,
                    &format!(
                        "an array of tables: one {header} section (double brackets) for each, and each \
                         [[tasks.checks]] after its [[tasks]]"
                    ),
                );
                None
            }
            _ => {
                self.wrong_type(field, &format!("an array of tables: one {header} section (double brackets) for each"));
                None
            }
        }
    }

    /// `[[tasks]]`: every task, with unique ids.
    fn tasks(&mut self, field: &Field<'_>) -> Option<Vec<Task>> {
        let sections = self.table_array(field, "[[tasks]]")?;
        if sections.len() > MAX_TASKS {
            self.report(field, format!("{} tasks are too many; an exam may have at most {MAX_TASKS}", sections.len()));
            return None;
        }
        let mut seen = Seen::new();
        let mut tasks = Some(Vec::with_capacity(sections.len()));
        for section in &sections {
            let task = self.task(section, &mut seen);
            tasks = tasks.zip(task).map(|(mut tasks, task)| {
                tasks.push(task);
                tasks
            });
        }
        tasks
    }

    /// An id (of a task or a check) that is valid and not yet in `seen`; `kind` is "task" or "check".
    fn unique_id(&mut self, section: &Section<'_>, kind: &str, seen: &mut Seen) -> Option<String> {
        let f = self.required(section, "id")?;
        let id = self.string(&f)?;
        if let Err(message) = check_id(kind, id) {
            self.report(&f, message);
            return None;
        }
        if let Some((first, line)) = seen.get(id) {
            let place = match line {
                Some(line) => format!("{first} (line {line})"),
                None => first.clone(),
            };
            let within = if kind == "check" { " within a task" } else { "" };
            self.report(
                &f,
                format!("duplicate {kind} id {id:?}: {place} already uses it; {kind} ids must be unique{within}"),
            );
            return None;
        }
        seen.insert(id.to_owned(), (f.name.clone(), f.line));
        Some(id.to_owned())
    }

    /// A string field that must not be blank; `what` names it in the message.
    fn not_blank(&mut self, field: &Field<'_>, what: &str) -> Option<String> {
        let s = self.string(field)?;
        if s.trim().is_empty() {
            self.report(field, format!("the {what} is blank; write it"));
            return None;
        }
        Some(s.to_owned())
    }

    /// One task.
    fn task(&mut self, section: &Section<'_>, seen: &mut Seen) -> Option<Task> {
        self.unknown_fields(section, TASK_FIELDS);
        let id = self.unique_id(section, "task", seen);
        let title = self.required(section, "title").and_then(|f| self.not_blank(&f, "title"));
        let prompt = self.prompt(section);
        let setup = match self.optional(section, "setup") {
            None => Some(None),
            Some(f) => self.script(&f, "setup script").map(Some),
        };
        let setup_at = match self.optional(section, "setup_at") {
            None => Some(SetupAt::default()),
            Some(f) => self.setup_at(&f, self.optional(section, "setup").is_some()),
        };
        let checks = match self.optional(section, "checks") {
            None => {
                let field = format!("{}checks", section.prefix);
                let p = self.problem(
                    section.line,
                    Some(&field),
                    "the task has no checks; add at least one [[tasks.checks]] section after its [[tasks]]".to_owned(),
                );
                self.problems.push(p);
                None
            }
            Some(f) => self.checks(&f),
        };
        let solution = match self.optional(section, "solution") {
            None => Some(None),
            Some(f) => self.script(&f, "solution script").map(Some),
        };
        let tags = match self.optional(section, "tags") {
            None => Some(Vec::new()),
            Some(f) => self.strings(&f),
        };
        Some(Task {
            tags: tags?,
            id: id?,
            title: title?,
            prompt: prompt?,
            setup: setup?,
            setup_at: setup_at?,
            checks: checks?,
            solution: solution?,
        })
    }

    /// A task's prompt: `prompt` (Markdown) or `prompt_file` (a Markdown file), exactly one of them.
    fn prompt(&mut self, section: &Section<'_>) -> Option<String> {
        match (self.optional(section, "prompt"), self.optional(section, "prompt_file")) {
            (Some(f), None) => self.not_blank(&f, "prompt"),
            (None, Some(f)) => {
                let written = self.string(&f)?;
                let text = self.files.read(written, "prompt file").map_err(|message| self.report(&f, message)).ok()?;
                if text.trim().is_empty() {
                    self.report(
                        &f,
                        format!("the prompt file {:?} is empty; write the task's prompt in it", shorten(written)),
                    );
                    return None;
                }
                Some(text)
            }
            (Some(_), Some(f)) => {
                self.report(&f, "give either prompt or prompt_file, not both");
                None
            }
            (None, None) => {
                let field = format!("{}prompt", section.prefix);
                let p = self.problem(
                    section.line,
                    Some(&field),
                    "missing required field: give the task's prompt in Markdown, as prompt = \"\"\"...\"\"\" or as \
                     prompt_file = \"tasks/ID.md\""
                        .to_owned(),
                );
                self.problems.push(p);
                None
            }
        }
    }

    /// A task's checks: at least one, at most [`MAX_CHECKS_PER_TASK`], ids unique within the task.
    fn checks(&mut self, field: &Field<'_>) -> Option<Vec<Check>> {
        let sections = self.table_array(field, "[[tasks.checks]]")?;
        if sections.is_empty() {
            self.report(field, "the task has no checks; add at least one [[tasks.checks]] section after its [[tasks]]");
            return None;
        }
        if sections.len() > MAX_CHECKS_PER_TASK {
            self.report(
                field,
                format!("{} checks are too many; a task may have at most {MAX_CHECKS_PER_TASK}", sections.len()),
            );
            return None;
        }
        let mut seen = Seen::new();
        let mut checks = Some(Vec::with_capacity(sections.len()));
        for section in &sections {
            let check = self.check(section, &mut seen);
            checks = checks.zip(check).map(|(mut checks, check)| {
                checks.push(check);
                checks
            });
        }
        checks
    }

    /// One check.
    fn check(&mut self, section: &Section<'_>, seen: &mut Seen) -> Option<Check> {
        self.unknown_fields(section, CHECK_FIELDS);
        let id = self.unique_id(section, "check", seen);
        let description = self.required(section, "description").and_then(|f| self.not_blank(&f, "description"));
        let script = self.required(section, "script").and_then(|f| self.script(&f, "check script"));
        let weight = match self.optional(section, "weight") {
            None => Some(DEFAULT_CHECK_WEIGHT),
            Some(f) => self.weight(&f),
        };
        let timeout = match self.optional(section, "timeout") {
            None => Some(DEFAULT_CHECK_TIMEOUT),
            Some(f) => self.duration(&f, Some(MIN_CHECK_TIMEOUT), Some(MAX_CHECK_TIMEOUT)),
        };
        let may_pass_unsolved = match self.optional(section, "may_pass_unsolved") {
            None => Some(None),
            Some(f) => self.not_blank(&f, "reason why the check may pass unsolved").map(Some),
        };
        Some(Check {
            id: id?,
            description: description?,
            script: script?,
            weight: weight?,
            timeout: timeout?,
            may_pass_unsolved: may_pass_unsolved?,
        })
    }

    /// A check's weight: a whole number from 1 to [`MAX_CHECK_WEIGHT`].
    fn weight(&mut self, field: &Field<'_>) -> Option<u32> {
        let Some(i) = field.item.as_integer() else {
            self.wrong_type(field, &format!("a whole number of points from 1 to {MAX_CHECK_WEIGHT}"));
            return None;
        };
        let message = match i {
            i if i < 0 => format!("weight {i} is negative; it must be a whole number from 1 to {MAX_CHECK_WEIGHT}"),
            0 => format!("weight 0 would make the check worth nothing; it must be from 1 to {MAX_CHECK_WEIGHT}"),
            i => match u32::try_from(i) {
                Ok(w) if w <= MAX_CHECK_WEIGHT => return Some(w),
                _ => format!("weight {i} is out of range; it must be from 1 to {MAX_CHECK_WEIGHT}"),
            },
        };
        self.report(field, message);
        None
    }

    /// A script field: the path of a setup or check script, read and checked now.
    fn script(&mut self, field: &Field<'_>, what: &str) -> Option<Script> {
        let written = self.string(field)?;
        let body = self.files.read(written, what).map_err(|message| self.report(field, message)).ok()?;
        check_script_body(written, &body, what).map_err(|message| self.report(field, message)).ok()?;
        Some(Script { path: PathBuf::from(written), body })
    }

    /// `attempts`: a whole number from 1 to [`MAX_ATTEMPTS`], or `"unlimited"`.
    fn attempts(&mut self, field: &Field<'_>) -> Option<Attempts> {
        const EXPECTED: &str = "a whole number of attempts from 1 to 100, or \"unlimited\"";
        match field.item.as_value() {
            Some(Value::String(s)) if s.value() == "unlimited" => Some(Attempts::Unlimited),
            Some(Value::String(s)) => {
                let message = format!("{:?} is not a number of attempts; write {EXPECTED}", shorten(s.value()));
                self.report(field, message);
                None
            }
            Some(Value::Integer(i)) => match u32::try_from(*i.value()) {
                Ok(n) if (1..=MAX_ATTEMPTS).contains(&n) => Some(Attempts::AtMost(n)),
                Ok(0) => {
                    self.report(field, format!("attempts = 0 would let nobody take the exam; write {EXPECTED}"));
                    None
                }
                _ => {
                    self.report(field, format!("attempts = {} is out of range; write {EXPECTED}", i.value()));
                    None
                }
            },
            _ => {
                self.wrong_type(field, EXPECTED);
                None
            }
        }
    }

    /// A task's `setup_at`: `"prepare"` or `"claim"`, only with a `setup` script (`has_setup`).
    fn setup_at(&mut self, field: &Field<'_>, has_setup: bool) -> Option<SetupAt> {
        let s = self.string(field)?;
        let Some(at) = SetupAt::parse(s) else {
            let mut message = format!("unknown setup time {:?}", shorten(s));
            if let Some(near) = closest(s, &["prepare", "claim"]) {
                message.push_str(&format!(" (did you mean {near:?}?)"));
            }
            message.push_str(
                "; write setup_at = \"prepare\" (when the environment is made, possibly ahead of demand) or \
                 setup_at = \"claim\" (when a candidate takes it, with their identity)",
            );
            self.report(field, message);
            return None;
        };
        if !has_setup {
            self.report(field, "setup_at says when the setup script runs, but the task has no setup script");
            return None;
        }
        Some(at)
    }

    /// `[pool]`.
    fn pool(&mut self, section: &Section<'_>) -> Option<PoolConfig> {
        self.unknown_fields(section, POOL_FIELDS);
        let size = match self.optional(section, "size") {
            None => Some(0),
            Some(f) => self.integer_in(&f, 0, u64::from(MAX_POOL_SIZE)).map(|n| n as u32),
        };
        let max_age = match self.optional(section, "max_age") {
            None => Some(DEFAULT_POOL_MAX_AGE),
            Some(f) => self.duration(&f, Some(MIN_POOL_MAX_AGE), Some(MAX_POOL_MAX_AGE)),
        };
        Some(PoolConfig { size: size?, max_age: max_age? })
    }

    /// `[result]`.
    fn result(&mut self, section: &Section<'_>) -> Option<ResultPolicy> {
        self.unknown_fields(section, RESULT_FIELDS);
        let Some(f) = self.optional(section, "show") else {
            return Some(ResultPolicy::default());
        };
        let s = self.string(&f)?;
        if let Some(policy) = ResultPolicy::parse(s) {
            return Some(policy);
        }
        let mut message = format!("unknown result policy {:?}", shorten(s));
        if let Some(near) = closest(s, &["score", "checks"]) {
            message.push_str(&format!(" (did you mean {near:?}?)"));
        }
        message.push_str(
            "; write show = \"checks\" (candidates see each check's description and whether it passed) or \
             show = \"score\" (candidates see only their score)",
        );
        self.report(&f, message);
        None
    }

    /// A duration string, checked with core's `parse_duration` (which refuses zero), and no shorter than
    /// `min` and no longer than `max` when given.
    fn duration(&mut self, field: &Field<'_>, min: Option<Duration>, max: Option<Duration>) -> Option<Duration> {
        let Some(s) = field.item.as_str() else {
            self.wrong_type(field, "a duration string such as \"90m\", \"45s\" or \"1h30m\"");
            return None;
        };
        let d = match parse_duration(s) {
            Ok(d) => d,
            Err(e) => {
                self.report(field, e.to_string());
                return None;
            }
        };
        let bounds = match (min, max) {
            (Some(min), Some(max)) if d < min || d > max => {
                format!("from {} to {}", format_duration(min), format_duration(max))
            }
            (Some(min), None) if d < min => format!("at least {}", format_duration(min)),
            (None, Some(max)) if d > max => format!("at most {}", format_duration(max)),
            _ => return Some(d),
        };
        self.report(field, format!("{} is out of range; it must be {bounds}", format_duration(d)));
        None
    }

    /// A size: a string such as `"512M"` or an integer number of bytes.
    fn size(&mut self, field: &Field<'_>) -> Option<u64> {
        const EXPECTED: &str = "a size such as \"512M\", \"1G\" or a number of bytes";
        let Some(value) = field.item.as_value() else {
            self.wrong_type(field, EXPECTED);
            return None;
        };
        let parsed = match value {
            Value::String(s) => parse_size(s.value()),
            Value::Integer(i) => u64::try_from(*i.value())
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("size {} must be greater than zero", i.value())),
            _ => {
                self.wrong_type(field, EXPECTED);
                return None;
            }
        };
        parsed.map_err(|message| self.report(field, message)).ok()
    }

    /// An integer in `min..=max`.
    fn integer_in(&mut self, field: &Field<'_>, min: u64, max: u64) -> Option<u64> {
        let Some(i) = field.item.as_integer() else {
            self.wrong_type(field, "a whole number");
            return None;
        };
        match u64::try_from(i) {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.report(field, format!("{i} is out of range; it must be from {min} to {max}"));
                None
            }
        }
    }

    /// `cpu`: cores as a number (`1`, `1.5`) or a string (`"1.5"`, `"1500m"`), as millicores in range.
    fn cpu(&mut self, field: &Field<'_>) -> Option<u32> {
        const EXPECTED: &str = "a number of cores such as 1 or 1.5, or millicores such as \"1500m\"";
        let millis = match field.item.as_value() {
            Some(Value::Integer(i)) => cores_to_millicores(*i.value() as f64),
            Some(Value::Float(f)) => cores_to_millicores(*f.value()),
            Some(Value::String(s)) => parse_cpu_millis(s.value()),
            _ => {
                self.wrong_type(field, EXPECTED);
                return None;
            }
        };
        let millis = match millis {
            Ok(m) => m,
            Err(message) => {
                self.report(field, message);
                return None;
            }
        };
        match u32::try_from(millis) {
            Ok(m) if (MIN_CPU_MILLICORES..=MAX_CPU_MILLICORES).contains(&m) => Some(m),
            _ => {
                self.report(
                    field,
                    format!(
                        "cpu {} is out of range; it must be from {} to {}",
                        format_cpu(millis),
                        format_cpu(i64::from(MIN_CPU_MILLICORES)),
                        format_cpu(i64::from(MAX_CPU_MILLICORES))
                    ),
                );
                None
            }
        }
    }

    /// `[[environment.services]]`: every service, with unique names.
    fn services(&mut self, field: &Field<'_>) -> Option<Vec<ServiceSpec>> {
        let sections = self.table_array(field, "[[environment.services]]")?;
        let mut seen = Seen::new();
        let mut services = Some(Vec::with_capacity(sections.len()));
        for section in &sections {
            let service = self.service(section, &mut seen);
            services = services.zip(service).map(|(mut all, one)| {
                all.push(one);
                all
            });
        }
        services
    }

    /// One service.
    fn service(&mut self, section: &Section<'_>, seen: &mut Seen) -> Option<ServiceSpec> {
        self.unknown_fields(section, SERVICE_FIELDS);
        let name = self.required(section, "name").and_then(|f| {
            let name = self.string(&f)?;
            if let Err(message) = check_id("service", name) {
                self.report(&f, message);
                return None;
            }
            if seen.contains_key(name) {
                self.report(&f, format!("duplicate service name {name:?}; service names must be unique"));
                return None;
            }
            seen.insert(name.to_owned(), (f.name.clone(), f.line));
            Some(name.to_owned())
        });
        let image = self.required(section, "image").and_then(|f| {
            let image = self.string(&f)?;
            BaseKind::parse(&format!("image:{image}")).map_err(|message| self.report(&f, message)).ok()?;
            Some(image.to_owned())
        });
        let command = match self.optional(section, "command") {
            None => Some(Vec::new()),
            Some(f) => self.strings(&f),
        };
        let environment = match self.optional(section, "environment") {
            None => Some(Vec::new()),
            Some(f) => self.section(&f, &format!("{}environment.", section.prefix)).and_then(|vars| {
                let mut out = Vec::new();
                let mut ok = true;
                for (key, item) in vars.table.iter() {
                    match item.as_str() {
                        Some(value) => out.push((key.to_owned(), value.to_owned())),
                        None => {
                            let line = self.line_of_span(item_span(item));
                            let var = Field { name: format!("{}{key}", vars.prefix), item, line };
                            self.wrong_type(&var, "a string");
                            ok = false;
                        }
                    }
                }
                out.sort();
                ok.then_some(out)
            }),
        };
        let memory_bytes = match self.optional(section, "memory") {
            None => Some(None),
            Some(f) => self.size(&f).map(Some),
        };
        let ready_command = match self.optional(section, "ready_command") {
            None => Some(Vec::new()),
            Some(f) => self.strings(&f),
        };
        let ready_port = match self.optional(section, "ready_port") {
            None => Some(None),
            Some(f) => self.integer_in(&f, 1, 65535).map(|p| Some(p as u16)),
        };
        Some(ServiceSpec {
            name: name?,
            image: image?,
            command: command?,
            environment: environment?,
            memory_bytes: memory_bytes?,
            ready_command: ready_command?,
            ready_port: ready_port?,
        })
    }

    /// An array of strings (a command and its arguments).
    fn strings(&mut self, field: &Field<'_>) -> Option<Vec<String>> {
        let Some(array) = field.item.as_array() else {
            self.wrong_type(field, "an array of strings such as [\"sh\", \"-c\", \"...\"]");
            return None;
        };
        let out: Option<Vec<String>> = array.iter().map(|v| v.as_str().map(str::to_owned)).collect();
        if out.is_none() {
            self.wrong_type(field, "an array of strings such as [\"sh\", \"-c\", \"...\"]");
        }
        out
    }

    /// Checks `[environment]`.
    fn environment(&mut self, section: &Section<'_>) -> Option<EnvironmentConfig> {
        self.unknown_fields(section, ENVIRONMENT_FIELDS);

        let base = self.required(section, "base").and_then(|f| {
            let s = self.string(&f)?;
            BaseKind::parse(s).map_err(|message| self.report(&f, message)).ok()?;
            Some(s.to_owned())
        });

        let memory_bytes = match self.optional(section, "memory") {
            None => Some(DEFAULT_MEMORY_BYTES),
            Some(f) => self.size(&f).and_then(|n| {
                if (MIN_MEMORY_BYTES..=MAX_MEMORY_BYTES).contains(&n) {
                    Some(n)
                } else {
                    self.report(
                        &f,
                        format!(
                            "memory {} is out of range; it must be from {} to {}",
                            format_bytes(n),
                            format_bytes(MIN_MEMORY_BYTES),
                            format_bytes(MAX_MEMORY_BYTES)
                        ),
                    );
                    None
                }
            }),
        };

        let pids = match self.optional(section, "pids") {
            None => Some(DEFAULT_PIDS),
            Some(f) => self.integer_in(&f, MIN_PIDS, MAX_PIDS),
        };

        let cpu_millicores = match self.optional(section, "cpu") {
            None => Some(DEFAULT_CPU_MILLICORES),
            Some(f) => self.cpu(&f),
        };

        let disk_bytes = match self.optional(section, "disk") {
            None => Some(None),
            Some(f) => self.size(&f).and_then(|n| {
                if n < MIN_DISK_BYTES {
                    self.report(
                        &f,
                        format!(
                            "disk {} is too small; it must be at least {}",
                            format_bytes(n),
                            format_bytes(MIN_DISK_BYTES)
                        ),
                    );
                    return None;
                }
                // Compared only with a valid memory: a bad memory is reported on its own.
                if let Some(memory) = memory_bytes {
                    if n >= memory {
                        self.report(
                            &f,
                            format!("disk {} must be smaller than memory ({})", format_bytes(n), format_bytes(memory)),
                        );
                        return None;
                    }
                }
                Some(Some(n))
            }),
        };

        let network = match self.optional(section, "network") {
            None => Some(NETWORK_NONE.to_owned()),
            Some(f) => self.string(&f).and_then(|s| {
                if s == NETWORK_NONE {
                    Some(s.to_owned())
                } else {
                    self.report(&f, format!("network {:?} is not supported; only \"none\" is, for now", shorten(s)));
                    None
                }
            }),
        };

        let desktop = match self.optional(section, "desktop") {
            None => Some(false),
            Some(f) => self.boolean(&f),
        };

        let profile = match self.optional(section, "profile") {
            None => Some(PROFILE_SHELL.to_owned()),
            Some(f) => self.string(&f).and_then(|s| {
                if s == PROFILE_SHELL || s == PROFILE_SYSTEM {
                    Some(s.to_owned())
                } else {
                    self.report(
                        &f,
                        format!(
                            "profile {:?} is not known; write \"shell\" (a shell in a tight jail, the default) or \
                             \"system\" (a whole machine: systemd, services, ssh, mounts, networking)",
                            shorten(s)
                        ),
                    );
                    None
                }
            }),
        };

        let resolution = match self.optional(section, "resolution") {
            None => Some(DEFAULT_RESOLUTION),
            Some(f) => self.resolution(&f),
        };
        if let (Some(false), Some(f)) = (desktop, self.optional(section, "resolution")) {
            self.report(&f, "resolution is the desktop's; set desktop = true, or remove it");
        }
        if let (Some(true), Some(PROFILE_SYSTEM), Some(f)) =
            (desktop, profile.as_deref(), self.optional(section, "desktop"))
        {
            self.report(&f, "a desktop is available with profile \"shell\" only, for now");
        }

        let ports = match self.optional(section, "ports") {
            None => Some(Vec::new()),
            Some(f) => self.ports(&f, desktop == Some(true)),
        };
        let backend = match self.optional(section, "backend") {
            None => Some(BACKEND_SANDBOX.to_owned()),
            Some(f) => self.string(&f).and_then(|s| {
                if s == BACKEND_SANDBOX || s == BACKEND_DOCKER {
                    Some(s.to_owned())
                } else {
                    self.report(
                        &f,
                        format!("backend {:?} is not known; write \"sandbox\" (the default) or \"docker\"", shorten(s)),
                    );
                    None
                }
            }),
        };
        let services = match self.optional(section, "services") {
            None => Some(Vec::new()),
            Some(f) => self.services(&f),
        };

        let terminals = match self.optional(section, "terminals") {
            None => Some(DEFAULT_TERMINALS),
            Some(f) => self.integer_in(&f, 1, u64::from(MAX_TERMINALS)).map(|n| n as u32),
        };

        Some(EnvironmentConfig {
            terminals: terminals?,
            backend: backend?,
            services: services?,
            base: base?,
            memory_bytes: memory_bytes?,
            pids: pids?,
            cpu_millicores: cpu_millicores?,
            disk_bytes: disk_bytes?,
            network: network?,
            desktop: desktop?,
            resolution: resolution?,
            ports: ports?,
            profile: profile?,
        })
    }

    /// `[[resources]]`: documentation links, each with a title and an http(s) URL, at most [`MAX_RESOURCES`].
    fn resources(&mut self, field: &Field<'_>) -> Option<Vec<Resource>> {
        let sections = self.table_array(field, "[[resources]]")?;
        if sections.len() > MAX_RESOURCES {
            self.report(field, format!("{} resources are listed; at most {MAX_RESOURCES} are allowed", sections.len()));
            return None;
        }
        let mut all = Some(Vec::with_capacity(sections.len()));
        for section in &sections {
            self.unknown_fields(section, RESOURCE_FIELDS);
            let title = self.required(section, "title").and_then(|f| {
                let t = self.not_blank(&f, "resource's title")?;
                if t.chars().count() > MAX_RESOURCE_TITLE {
                    self.report(&f, format!("the title is longer than {MAX_RESOURCE_TITLE} characters"));
                    return None;
                }
                Some(t)
            });
            let url = self.required(section, "url").and_then(|f| {
                let u = self.string(&f)?;
                match resource_url(u) {
                    Ok(u) => Some(u),
                    Err(why) => {
                        self.report(&f, why);
                        None
                    }
                }
            });
            let one = title.zip(url).map(|(title, url)| Resource { title, url });
            all = all.zip(one).map(|(mut all, one)| {
                all.push(one);
                all
            });
        }
        all
    }

    /// `warnings`: durations before the deadline, each shorter than the exam, distinct, at most [`MAX_WARNINGS`];
    /// kept longest first. An empty array turns the warnings off.
    fn warnings(&mut self, field: &Field<'_>, exam: Option<Duration>) -> Option<Vec<Duration>> {
        let Some(array) = field.item.as_array() else {
            self.wrong_type(field, "an array of durations such as [\"10m\", \"1m\"]");
            return None;
        };
        if array.len() > MAX_WARNINGS {
            self.report(field, format!("{} warnings are set; at most {MAX_WARNINGS} are allowed", array.len()));
            return None;
        }
        let mut out = Vec::new();
        for (i, value) in array.iter().enumerate() {
            let element = Field { name: format!("{}[{i}]", field.name), item: field.item, line: field.line };
            let Some(s) = value.as_str() else {
                self.wrong_type(&element, "a duration string such as \"10m\"");
                return None;
            };
            let d = match parse_duration(s) {
                Ok(d) => d,
                Err(e) => {
                    self.report(&element, e.to_string());
                    return None;
                }
            };
            if exam.is_some_and(|exam| d >= exam) {
                self.report(&element, format!("a warning {} before the end must be shorter than the exam", s));
                return None;
            }
            if out.contains(&d) {
                self.report(&element, format!("the warning {s} is set twice"));
                return None;
            }
            out.push(d);
        }
        out.sort_by(|a, b| b.cmp(a));
        Some(out)
    }

    /// `resolution`: `"WIDTHxHEIGHT"` in pixels, each from 320x200 to 4096x4096.
    fn resolution(&mut self, field: &Field<'_>) -> Option<(u16, u16)> {
        let s = self.string(field)?;
        let parsed = s
            .split_once(['x', 'X'])
            .and_then(|(w, h)| Some((w.trim().parse::<u16>().ok()?, h.trim().parse::<u16>().ok()?)));
        match parsed {
            Some((w, h)) if (320..=4096).contains(&w) && (200..=4096).contains(&h) => Some((w, h)),
            _ => {
                self.report(
                    field,
                    format!("resolution {:?} is not valid; write \"WIDTHxHEIGHT\" from \"320x200\" to \"4096x4096\", such as \"1280x800\"", shorten(s)),
                );
                None
            }
        }
    }

    /// `ports`: the ports inside the environment that its owner's browser may open, 1 to 65535, each once, at most
    /// [`MAX_PORTS`]; never the desktop's own VNC port.
    fn ports(&mut self, field: &Field<'_>, desktop: bool) -> Option<Vec<u16>> {
        let Some(array) = field.item.as_array() else {
            self.wrong_type(field, "an array of port numbers, such as [8000]");
            return None;
        };
        if array.len() > MAX_PORTS {
            self.report(field, format!("{} ports are listed; at most {MAX_PORTS} are allowed", array.len()));
            return None;
        }
        let mut ports = Vec::new();
        for value in array.iter() {
            let port = value.as_integer().and_then(|i| u16::try_from(i).ok()).filter(|p| *p > 0);
            match port {
                None => {
                    self.report(field, format!("{value} is not a port; ports are whole numbers from 1 to 65535"));
                    return None;
                }
                Some(p) if ports.contains(&p) => {
                    self.report(field, format!("port {p} is listed twice"));
                    return None;
                }
                Some(p) if desktop && p == DESKTOP_VNC_PORT => {
                    self.report(
                        field,
                        format!(
                            "port {p} is the desktop's own (its VNC server); list the ports of the exam's services"
                        ),
                    );
                    return None;
                }
                Some(p) => ports.push(p),
            }
        }
        Some(ports)
    }
}

/// Checks a resource's URL: absolute, `http` or `https`, with a host, without credentials, without spaces or
/// control characters, at most [`MAX_RESOURCE_URL`] characters. Returns it as written.
pub(crate) fn resource_url(u: &str) -> Result<String, String> {
    if u.chars().count() > MAX_RESOURCE_URL {
        return Err(format!("the URL is longer than {MAX_RESOURCE_URL} characters"));
    }
    if u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the URL has spaces or control characters; encode them".to_owned());
    }
    let lower = u.to_ascii_lowercase();
    let rest = if let Some(r) = lower.strip_prefix("https://") {
        r
    } else if let Some(r) = lower.strip_prefix("http://") {
        r
    } else {
        return Err(format!("{:?} is not an http or https URL; write it as https://host/path", shorten(u)));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("the URL has credentials (user@host); leave them out".to_owned());
    }
    let host = authority.rsplit_once(':').map_or(authority, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(']') && !h.contains(':') {
            h
        } else {
            authority
        }
    });
    let valid_host = !host.is_empty()
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
        && !host.starts_with('.')
        && !host.starts_with('-');
    if !valid_host {
        return Err(format!("{:?} has no valid host; write it as https://host/path", shorten(u)));
    }
    Ok(u.to_owned())
}

/// The span of an item's value or table.
fn item_span(item: &Item) -> Option<Range<usize>> {
    match item {
        Item::None => None,
        Item::Value(v) => v.span(),
        Item::Table(t) => t.span(),
        Item::ArrayOfTables(a) => a.span(),
    }
}

/// What an item is, for "expected …, found …".
fn describe(item: &Item) -> String {
    match item {
        Item::None => "nothing".to_owned(),
        Item::Value(Value::String(s)) => format!("the string {:?}", shorten(s.value())),
        Item::Value(Value::Integer(i)) => format!("the integer {}", i.value()),
        Item::Value(Value::Float(f)) => format!("the float {}", f.value()),
        Item::Value(Value::Boolean(b)) => format!("the boolean {}", b.value()),
        Item::Value(Value::Datetime(_)) => "a date-time".to_owned(),
        Item::Value(Value::Array(_)) => "an array".to_owned(),
        Item::Value(Value::InlineTable(_)) => "an inline table".to_owned(),
        Item::Table(_) => "a table".to_owned(),
        Item::ArrayOfTables(_) => "an array of tables".to_owned(),
    }
}

/// The known name closest to `name`, if it is close enough to be a typo.
fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|&(d, k)| d <= 2 && d < k.len())
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur.push(substitute.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Parses a size as people write it: a whole number, optionally followed by a unit. Units are binary and
/// case-insensitive: `K`, `M`, `G`, `T`, each optionally followed by `i` and/or `B` (`512M`, `512MB`,
/// `512Mi` and `512MiB` are all 512 × 1024 × 1024 bytes); `B` or no unit means bytes.
///
/// Refused, with a message that says how to write it: empty input, a negative number, a fraction, a
/// space, an unknown unit, zero and a size beyond `u64::MAX` bytes.
pub fn parse_size(input: &str) -> Result<u64, String> {
    const HOW: &str = "write it like 512M, 1G, 256MiB or a number of bytes";
    let quoted = shorten(input);
    let s = input.trim();
    if s.is_empty() {
        return Err(format!("the size is empty; {HOW}"));
    }
    if s.starts_with('-') {
        return Err(format!("size {quoted:?} is negative; a size must be greater than zero"));
    }
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits_end);
    if number.is_empty() {
        return Err(format!("size {quoted:?} does not start with a number; {HOW}"));
    }
    if unit.starts_with(['.', ',']) {
        return Err(format!("size {quoted:?} has a fraction; use whole numbers and a smaller unit, as in 1536M"));
    }
    if unit.starts_with(char::is_whitespace) {
        return Err(format!("size {quoted:?} contains a space; write it without, as in 512M"));
    }
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "ki" | "kib" => 10,
        "m" | "mb" | "mi" | "mib" => 20,
        "g" | "gb" | "gi" | "gib" => 30,
        "t" | "tb" | "ti" | "tib" => 40,
        _ => {
            return Err(format!("size {quoted:?} has the unknown unit {:?}; use K, M, G or T (binary)", shorten(unit)))
        }
    };
    let bytes = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| format!("size {quoted:?} is too large"))?;
    if bytes == 0 {
        return Err(format!("size {quoted:?} is zero; a size must be greater than zero"));
    }
    Ok(bytes)
}

/// Parses CPU as written in a string: millicores with an `m` suffix (`"1500m"`), or cores (`"1.5"`, `"2"`).
/// Returns millicores, rounded to the nearest one; the range is not checked here.
pub fn parse_cpu(input: &str) -> Result<u32, String> {
    let millis = parse_cpu_millis(input)?;
    u32::try_from(millis).map_err(|_| format!("cpu {:?} is too large", shorten(input)))
}

fn parse_cpu_millis(input: &str) -> Result<i64, String> {
    let quoted = shorten(input);
    let s = input.trim();
    if s.is_empty() {
        return Err("cpu is empty; write cores such as 1.5 or millicores such as \"1500m\"".to_owned());
    }
    if s.starts_with('-') {
        return Err(format!("cpu {quoted:?} is negative; it must be greater than zero"));
    }
    if let Some(number) = s.strip_suffix('m') {
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("cpu {quoted:?} is not a whole number of millicores; write it like \"1500m\""));
        }
        return number.parse::<i64>().map_err(|_| format!("cpu {quoted:?} is too large"));
    }
    if !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!(
            "cpu {quoted:?} is neither cores nor millicores; write cores such as 1.5 or millicores such as \"1500m\""
        ));
    }
    let cores: f64 =
        s.parse().map_err(|_| format!("cpu {quoted:?} is not a number; write it like 1.5 or \"1500m\""))?;
    cores_to_millicores(cores)
}

/// Cores to millicores, rounded to the nearest one; refuses what is not a positive finite number.
fn cores_to_millicores(cores: f64) -> Result<i64, String> {
    if !cores.is_finite() {
        return Err(format!("cpu {cores} is not a number of cores"));
    }
    if cores <= 0.0 {
        return Err(format!("cpu {cores} must be greater than zero"));
    }
    let millis = (cores * 1000.0).round();
    if millis > i64::MAX as f64 {
        return Err(format!("cpu {cores} is too large"));
    }
    // In range and already rounded: the cast is exact.
    Ok(millis as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M"), Ok(512 * MIB));
        assert_eq!(parse_size("512m"), Ok(512 * MIB));
        assert_eq!(parse_size("512MB"), Ok(512 * MIB));
        assert_eq!(parse_size("512Mi"), Ok(512 * MIB));
        assert_eq!(parse_size("256MiB"), Ok(256 * MIB));
        assert_eq!(parse_size("1G"), Ok(1024 * MIB));
        assert_eq!(parse_size("2GiB"), Ok(2048 * MIB));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("1T"), Ok(1024 * 1024 * MIB));
        assert_eq!(parse_size("1048576"), Ok(MIB));
        assert_eq!(parse_size("1048576B"), Ok(MIB));
        assert_eq!(parse_size(" 5 "), Ok(5));
        for bad in ["", " ", "M", "-1M", "1.5G", "1,5G", "512 M", "5X", "0", "0M", "99999999999T", "1e9"] {
            assert!(parse_size(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_size("1.5G").unwrap_err().contains("fraction"));
        assert!(parse_size("5X").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpu("1500m"), Ok(1500));
        assert_eq!(parse_cpu("1.5"), Ok(1500));
        assert_eq!(parse_cpu("2"), Ok(2000));
        assert_eq!(parse_cpu("0.05"), Ok(50));
        assert_eq!(parse_cpu("0.0505"), Ok(51));
        for bad in ["", "m", "1.5m", "-1", "-100m", "inf", "NaN", "1e3", "1 core", "0", "0.0", "1.2.3"] {
            assert!(parse_cpu(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(cores_to_millicores(1.5), Ok(1500));
        assert_eq!(cores_to_millicores(0.1 + 0.2), Ok(300));
        assert!(cores_to_millicores(f64::NAN).is_err());
        assert!(cores_to_millicores(-1.0).is_err());
    }

    #[test]
    fn typos_are_recognized() {
        assert_eq!(closest("memroy", ENVIRONMENT_FIELDS), Some("memory"));
        assert_eq!(closest("titel", TOP_FIELDS), Some("title"));
        assert_eq!(closest("cpus", ENVIRONMENT_FIELDS), Some("cpu"));
        assert_eq!(closest("task", TOP_FIELDS), Some("tasks"));
        assert_eq!(closest("check", TASK_FIELDS), Some("checks"));
        assert_eq!(closest("wieght", CHECK_FIELDS), Some("weight"));
        assert_eq!(closest("prompt-file", TASK_FIELDS), Some("prompt_file"));
        assert_eq!(closest("zzzzzz", ENVIRONMENT_FIELDS), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn lines_from_offsets() {
        let cx = Checker::new(Path::new("f"), "a\nbb\n\nc", Path::new("d"));
        assert_eq!(cx.line_of(0), 1);
        assert_eq!(cx.line_of(1), 1);
        assert_eq!(cx.line_of(2), 2);
        assert_eq!(cx.line_of(5), 3);
        assert_eq!(cx.line_of(6), 4);
        assert_eq!(cx.line_of(7), 4);
    }
}

/// Hostile input (issue 16): an exam file of any text is an exam or a list of problems, never a panic.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Text that looks like an exam file: known keys and sections with values of any type, in any order.
    fn exam_like() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("id"),
            Just("title"),
            Just("description"),
            Just("duration"),
            Just("base"),
            Just("memory"),
            Just("pids"),
            Just("cpu"),
            Just("disk"),
            Just("desktop"),
            Just("resolution"),
            Just("ports"),
            Just("profile"),
            Just("prompt"),
            Just("script"),
            Just("weight"),
            Just("timeout"),
            Just("setup"),
        ];
        let value = prop_oneof![
            "\"[ -~]{0,20}\"".prop_map(|s| s),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<bool>().prop_map(|b| b.to_string()),
            "\\[[0-9, ]{0,20}\\]".prop_map(|s| s),
            Just("\"host\"".to_string()),
            Just("\"1280x800\"".to_string()),
            Just("\"10m\"".to_string()),
        ];
        let line = prop_oneof![
            (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
            Just("[environment]".to_string()),
            Just("[[tasks]]".to_string()),
            Just("[[tasks.checks]]".to_string()),
            Just("[pool]".to_string()),
            "[ -~]{0,30}".prop_map(|s| s),
        ];
        proptest::collection::vec(line, 0..40).prop_map(|lines| lines.join("\n"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn any_text_is_an_exam_or_problems(text in ".{0,2000}") {
            let _ = parse_exam(&text, Path::new("x/exam.toml"), Path::new("/nonexistent-exam-dir"));
        }

        #[test]
        fn exam_like_text_is_an_exam_or_problems(text in exam_like()) {
            if let Err(problems) = parse_exam(&text, Path::new("x/exam.toml"), Path::new("/nonexistent-exam-dir")) {
                // Every problem says where and what.
                prop_assert!(problems.iter().all(|p| !p.message.is_empty()));
            }
        }
    }
}
