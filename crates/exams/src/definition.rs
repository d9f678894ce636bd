//! The exam definition: what one `exam.toml` says once it has been validated ([`Exam`],
//! [`EnvironmentConfig`]), and the limits and defaults that validation applies.
//!
//! A value of these types has passed every check in [`crate::parse`]: the id is a valid [`ExamId`], every
//! duration is greater than zero, every limit is in range, every id is unique where it must be, and every
//! script has been read, checked and kept in memory ([`Script::body`]). The fields are public so that other
//! crates (and their tests) can build an [`Exam`] directly; [`EnvironmentConfig::host`] gives the defaults.
//!
//! An exam holds [`Task`]s, each with a prompt, an optional setup [`Script`] and one or more [`Check`]s, and a
//! [`ResultPolicy`] that says what candidates see of their result.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use examroom_core::ExamId;

/// The name of the definition file in every exam directory.
pub const EXAM_FILE: &str = "exam.toml";

/// The largest `exam.toml` that is read at all (256 KiB); a larger file is refused before it is parsed.
pub const MAX_EXAM_FILE_BYTES: u64 = 256 * KIB;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Memory when `environment.memory` is not given: 512 MiB.
pub const DEFAULT_MEMORY_BYTES: u64 = 512 * MIB;
/// The least memory an environment may have: 32 MiB.
pub const MIN_MEMORY_BYTES: u64 = 32 * MIB;
/// The most memory an environment may have: 64 GiB.
pub const MAX_MEMORY_BYTES: u64 = 64 * GIB;

/// The process limit when `environment.pids` is not given.
pub const DEFAULT_PIDS: u64 = 512;
/// The lowest process limit allowed.
pub const MIN_PIDS: u64 = 16;
/// The highest process limit allowed.
pub const MAX_PIDS: u64 = 65_536;

/// CPU when `environment.cpu` is not given: one core.
pub const DEFAULT_CPU_MILLICORES: u32 = 1000;
/// The least CPU allowed: 0.05 cores.
pub const MIN_CPU_MILLICORES: u32 = 50;
/// The most CPU allowed: 64 cores.
pub const MAX_CPU_MILLICORES: u32 = 64_000;

/// The smallest disk allowed (`environment.disk`): 4 MiB. It must also be smaller than the memory.
pub const MIN_DISK_BYTES: u64 = 4 * MIB;

/// The only network mode accepted for now: no network at all.
pub const NETWORK_NONE: &str = "none";

/// The shortest `provisioning_timeout` allowed.
pub const MIN_PROVISIONING_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest `provisioning_timeout` allowed.
pub const MAX_PROVISIONING_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// The longest `start_grace` allowed. (The shortest is anything above zero: a duration of zero is refused.)
pub const MAX_START_GRACE: Duration = Duration::from_secs(24 * 60 * 60);

/// The largest script (setup or check) or prompt file that is read at all: 64 KiB. Larger is a "huge file".
pub const MAX_SCRIPT_BYTES: u64 = 64 * KIB;
/// The most that one exam's scripts and prompt files may hold together (each use counted): 4 MiB.
pub const MAX_EXAM_CONTENT_BYTES: u64 = 4 * MIB;
/// The most tasks one exam may have.
pub const MAX_TASKS: usize = 100;
/// The most checks one task may have.
pub const MAX_CHECKS_PER_TASK: usize = 50;
/// The longest task or check id: like exam ids, 1 to 64 of `a-z 0-9 -`, not starting with `-`.
pub const MAX_ID_LEN: usize = 64;
/// A check's weight when `weight` is not given.
pub const DEFAULT_CHECK_WEIGHT: u32 = 1;
/// The highest weight a check may have (the lowest is 1).
pub const MAX_CHECK_WEIGHT: u32 = 100;
/// A check's timeout when `timeout` is not given: 10 s.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortest check timeout allowed: 1 s.
pub const MIN_CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest check timeout allowed: 5 min.
pub const MAX_CHECK_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// What runs a script that does not start with `#!`.
pub const DEFAULT_INTERPRETER: &str = "/bin/sh";

/// One exam, as its `exam.toml` defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exam {
    /// The exam's id (`id`). It need not match the directory name, but it is unique within a catalog.
    pub id: ExamId,
    /// Its title (`title`), never blank.
    pub title: String,
    /// Its description (`description`), for candidates; may be empty.
    pub description: String,
    /// How long the exam clock runs (`duration`), greater than zero.
    pub duration: Duration,
    /// The isolated environment each candidate gets (`[environment]`).
    pub environment: EnvironmentConfig,
    /// How long provisioning may take (`provisioning_timeout`, default
    /// [`DEFAULT_PROVISIONING_TIMEOUT`](examroom_core::DEFAULT_PROVISIONING_TIMEOUT), 60 s), from
    /// [`MIN_PROVISIONING_TIMEOUT`] to [`MAX_PROVISIONING_TIMEOUT`].
    pub provisioning_timeout: Duration,
    /// How long a `ready` session waits for the candidate to start (`start_grace`, default
    /// [`DEFAULT_START_GRACE`](examroom_core::DEFAULT_START_GRACE), 10 min), at most [`MAX_START_GRACE`].
    pub start_grace: Duration,
    /// The exam's directory, canonical when it could be resolved. Scripts and prompt files were read from it
    /// when the exam was loaded; nothing is read from it later.
    pub dir: PathBuf,
    /// The tasks (`[[tasks]]`), in the order of the file; may be empty. Task ids are unique.
    pub tasks: Vec<Task>,
    /// What candidates see of their result (`[result] show`, default [`ResultPolicy::ShowChecks`]).
    pub result: ResultPolicy,
    /// How many attempts a candidate has (`attempts`); see [`Attempts`] for the default.
    pub attempts: Attempts,
    /// The warm pool of prepared environments (`[pool]`): none by default.
    pub pool: PoolConfig,
    /// The points the exam says its checks add up to (`total_points`), if it says; `examroom exam validate`
    /// reports a sum of weights that differs.
    pub total_points: Option<u32>,
    /// Documentation links candidates may open (`[[resources]]`), in the order of the file; none by default.
    pub resources: Vec<Resource>,
    /// When the exam page warns that time is running out (`warnings = ["10m", "1m"]`, the default
    /// [`DEFAULT_WARNINGS`]), times before the deadline, longest first, at most [`MAX_WARNINGS`].
    pub warnings: Vec<Duration>,
}

impl Exam {
    /// The path of this exam's `exam.toml`.
    pub fn file(&self) -> PathBuf {
        self.dir.join(EXAM_FILE)
    }

    /// The most points a candidate can score: the sum of every check's weight (0 for an exam without tasks).
    pub fn max_score(&self) -> u32 {
        self.tasks.iter().fold(0u32, |sum, task| sum.saturating_add(task.max_score()))
    }

    /// The setup scripts to run while provisioning, in the order they run: first every task's that runs when the
    /// environment is prepared ([`SetupAt::Prepare`]), in task order, then every task's that runs when a candidate
    /// takes the environment ([`SetupAt::Claim`]), in task order. Shown to the candidate as "Preparing task N of M",
    /// where M is the number of steps.
    pub fn setup_steps(&self) -> Vec<(&Task, &Script)> {
        let mut steps = self.prepare_steps();
        steps.extend(self.claim_steps());
        steps
    }

    /// The setup scripts that need no candidate ([`SetupAt::Prepare`]), in task order: they run when the environment
    /// is made, which for a pooled environment is ahead of demand.
    pub fn prepare_steps(&self) -> Vec<(&Task, &Script)> {
        self.setups_at(SetupAt::Prepare)
    }

    /// The setup scripts that run when a candidate takes the environment ([`SetupAt::Claim`]), in task order. They
    /// are given the candidate's identity (see `docs/exams.md`).
    pub fn claim_steps(&self) -> Vec<(&Task, &Script)> {
        self.setups_at(SetupAt::Claim)
    }

    fn setups_at(&self, at: SetupAt) -> Vec<(&Task, &Script)> {
        self.tasks
            .iter()
            .filter(|task| task.setup_at == at)
            .filter_map(|task| task.setup.as_ref().map(|script| (task, script)))
            .collect()
    }

    /// A digest (SHA-256, hex) of everything that goes into an environment of this exam: the `[environment]`
    /// section and the tasks with their setup and check scripts (and when each setup runs). A prepared (pooled)
    /// environment made under another digest is out of date. Titles, prompts, durations and the `[pool]` section do
    /// not count: changing them changes nothing inside an environment.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        // Every field is length-prefixed, so no two different exams write the same bytes.
        let mut field = |name: &str, value: &[u8]| {
            h.update((name.len() as u64).to_be_bytes());
            h.update(name.as_bytes());
            h.update((value.len() as u64).to_be_bytes());
            h.update(value);
        };
        field("digest", b"examroom exam digest v1");
        let env = &self.environment;
        field("environment.base", env.base.as_bytes());
        field("environment.memory", &env.memory_bytes.to_be_bytes());
        field("environment.pids", &env.pids.to_be_bytes());
        field("environment.cpu", &env.cpu_millicores.to_be_bytes());
        field("environment.disk", env.disk_bytes.map(|d| d.to_string()).unwrap_or_default().as_bytes());
        field("environment.network", env.network.as_bytes());
        field("environment.desktop", &[u8::from(env.desktop)]);
        // Absent from exams made before profiles existed, so that their digests stay as they were.
        if env.profile != PROFILE_SHELL {
            field("environment.profile", env.profile.as_bytes());
        }
        // Likewise the desktop's size and the ports, when not the defaults.
        if env.desktop && env.resolution != DEFAULT_RESOLUTION {
            field("environment.resolution", format!("{}x{}", env.resolution.0, env.resolution.1).as_bytes());
        }
        if !env.ports.is_empty() {
            let ports: Vec<String> = env.ports.iter().map(u16::to_string).collect();
            field("environment.ports", ports.join(",").as_bytes());
        }
        // Likewise the backend and services, absent from exams that use neither.
        if env.backend != BACKEND_SANDBOX {
            field("environment.backend", env.backend.as_bytes());
        }
        for service in &env.services {
            field("environment.service", format!("{service:?}").as_bytes());
        }
        for task in &self.tasks {
            field("task", task.id.as_bytes());
            field("task.setup_at", task.setup_at.as_str().as_bytes());
            if let Some(setup) = &task.setup {
                field("task.setup.path", setup.path.to_string_lossy().as_bytes());
                field("task.setup.body", setup.body.as_bytes());
            }
            for check in &task.checks {
                field("check", check.id.as_bytes());
                field("check.script.path", check.script.path.to_string_lossy().as_bytes());
                field("check.script.body", check.script.body.as_bytes());
            }
        }
        let out = h.finalize();
        out.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The version of this exam's definition: a digest (SHA-256, hex) of everything a candidate's session uses, the
    /// environment's digest ([`Exam::digest`]) and the titles, prompts, durations, weights, timeouts and result
    /// policy. Not the reference solutions (no candidate ever sees them) and not `[pool]`. A session records the
    /// version it started on and keeps it to the end, even when the catalog is reloaded.
    pub fn version(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut field = |name: &str, value: &[u8]| {
            h.update((name.len() as u64).to_be_bytes());
            h.update(name.as_bytes());
            h.update((value.len() as u64).to_be_bytes());
            h.update(value);
        };
        field("version", b"examroom exam version v1");
        field("digest", self.digest().as_bytes());
        field("id", self.id.as_str().as_bytes());
        field("title", self.title.as_bytes());
        field("description", self.description.as_bytes());
        field("duration", &(self.duration.as_millis() as u64).to_be_bytes());
        field("provisioning_timeout", &(self.provisioning_timeout.as_millis() as u64).to_be_bytes());
        field("start_grace", &(self.start_grace.as_millis() as u64).to_be_bytes());
        field("result", self.result.as_str().as_bytes());
        field("attempts", self.attempts.to_string().as_bytes());
        field("backend", self.environment.backend.as_bytes());
        for service in &self.environment.services {
            field("service", format!("{service:?}").as_bytes());
        }
        // Absent when not set, so that the versions of exams written before them stay as they were.
        if self.environment.terminals != DEFAULT_TERMINALS {
            field("terminals", &self.environment.terminals.to_be_bytes());
        }
        for r in &self.resources {
            field("resource.title", r.title.as_bytes());
            field("resource.url", r.url.as_bytes());
        }
        if self.warnings != DEFAULT_WARNINGS {
            let w: Vec<String> = self.warnings.iter().map(|d| d.as_millis().to_string()).collect();
            field("warnings", w.join(",").as_bytes());
        }
        for task in &self.tasks {
            field("task", task.id.as_bytes());
            field("task.title", task.title.as_bytes());
            field("task.prompt", task.prompt.as_bytes());
            field("task.tags", task.tags.join("\n").as_bytes());
            for check in &task.checks {
                field("check", check.id.as_bytes());
                field("check.description", check.description.as_bytes());
                field("check.weight", &check.weight.to_be_bytes());
                field("check.timeout", &(check.timeout.as_millis() as u64).to_be_bytes());
            }
        }
        let out = h.finalize();
        out.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The short form of [`Exam::version`] that people read: its first 12 hex digits.
    pub fn short_version(&self) -> String {
        self.version()[..12].to_owned()
    }

    /// The task with this id.
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.iter().find(|task| task.id == id)
    }
}

/// One task of an exam (`[[tasks]]`): what the candidate is asked to do and how it is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// The task's id (`id`): 1 to [`MAX_ID_LEN`] of `a-z 0-9 -`, not starting with `-`; unique in the exam.
    pub id: String,
    /// Its title (`title`), never blank.
    pub title: String,
    /// What the candidate is asked to do, in Markdown: `prompt`, or the contents of `prompt_file`. Never
    /// blank.
    pub prompt: String,
    /// A script run as root inside the environment while it is provisioned (`setup`), before the candidate
    /// gets it.
    pub setup: Option<Script>,
    /// When the setup script runs (`setup_at`, default [`SetupAt::Prepare`]).
    pub setup_at: SetupAt,
    /// How the task is checked (`[[tasks.checks]]`): at least one, ids unique within the task.
    pub checks: Vec<Check>,
    /// The reference solution (`solution`): a script that does the task as a candidate would, run by `examroom exam
    /// test` (never by a server, and never shown to a candidate).
    pub solution: Option<Script>,
    /// Topics the task covers (`tags`), for people; nothing depends on them.
    pub tags: Vec<String>,
}

impl Task {
    /// The most points this task is worth: the sum of its checks' weights.
    pub fn max_score(&self) -> u32 {
        self.checks.iter().fold(0u32, |sum, check| sum.saturating_add(check.weight))
    }

    /// The check with this id.
    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|check| check.id == id)
    }
}

/// One check of a task (`[[tasks.checks]]`): a script run as root inside the environment at the end of the
/// exam, after the candidate's processes are frozen. It passes when the script exits 0 within its timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The check's id (`id`): like a task id; unique within its task.
    pub id: String,
    /// What it checks, for the candidate (when the result policy shows checks) and the proctor
    /// (`description`). Never blank.
    pub description: String,
    /// The script (`script`).
    pub script: Script,
    /// Points for passing (`weight`, default [`DEFAULT_CHECK_WEIGHT`]), from 1 to [`MAX_CHECK_WEIGHT`].
    pub weight: u32,
    /// How long the script may run (`timeout`, default [`DEFAULT_CHECK_TIMEOUT`]), from [`MIN_CHECK_TIMEOUT`]
    /// to [`MAX_CHECK_TIMEOUT`]; a script still running then fails the check.
    pub timeout: Duration,
    /// Why this check may pass on an environment where nothing was done (`may_pass_unsolved = "reason"`), for
    /// `examroom exam test`, which otherwise expects every check to fail unsolved. `None`: it must fail.
    pub may_pass_unsolved: Option<String>,
}

/// A setup or check script, read when the exam was loaded.
///
/// The body is fed into the environment when the script runs; it is never stored there, and never read from
/// the exam directory again (so swapping a file after loading changes nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The path as written in `exam.toml`, relative to the exam directory.
    pub path: PathBuf,
    /// The file's contents: UTF-8, not blank, no NUL byte, at most [`MAX_SCRIPT_BYTES`]. If it starts with
    /// `#!`, that line names an absolute interpreter; otherwise it is run with [`DEFAULT_INTERPRETER`].
    pub body: String,
}

impl Script {
    /// The program that runs this script and its optional argument, as the kernel reads a `#!` line: the first
    /// word after `#!`, then the rest of the line (trimmed) as one argument if not empty. `["/bin/sh"]` for a
    /// script without `#!`. For `#!/usr/bin/env bash` it is `["/usr/bin/env", "bash"]`.
    pub fn interpreter(&self) -> Vec<&str> {
        match shebang(&self.body) {
            Some(line) => {
                let line = line.trim_matches([' ', '\t']);
                match line.split_once([' ', '\t']) {
                    Some((program, arg)) => {
                        let arg = arg.trim_matches([' ', '\t']);
                        if arg.is_empty() {
                            vec![program]
                        } else {
                            vec![program, arg]
                        }
                    }
                    None => vec![line],
                }
            }
            None => vec![DEFAULT_INTERPRETER],
        }
    }

    /// Whether the script starts with a `#!` line.
    pub fn has_shebang(&self) -> bool {
        shebang(&self.body).is_some()
    }
}

/// The rest of a script's `#!` line (without `#!` and the line end), if it has one.
pub(crate) fn shebang(body: &str) -> Option<&str> {
    let rest = body.strip_prefix("#!")?;
    Some(rest.split('\n').next().unwrap_or(rest))
}

/// When a task's setup script runs (`setup_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SetupAt {
    /// `"prepare"` (the default): when the environment is made, before any candidate has it. For an exam with a warm
    /// pool that is ahead of demand, so the script must not need the candidate.
    #[default]
    Prepare,
    /// `"claim"`: when a candidate takes the environment, after every `prepare` script, with the candidate's
    /// identity in `EXAMROOM_USER_ID` and `EXAMROOM_SESSION_ID`.
    Claim,
}

impl SetupAt {
    /// How it is written in `exam.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prepare => "prepare",
            Self::Claim => "claim",
        }
    }

    /// From how it is written in `exam.toml`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "prepare" => Some(Self::Prepare),
            "claim" => Some(Self::Claim),
            _ => None,
        }
    }
}

/// The most environments a standing pool (`[pool] size`) may hold for one exam.
pub const MAX_POOL_SIZE: u32 = 1000;
/// How long a prepared environment may wait for a candidate when `[pool] max_age` is not given: 4 hours.
pub const DEFAULT_POOL_MAX_AGE: Duration = Duration::from_secs(4 * 60 * 60);
/// The shortest `[pool] max_age` allowed: 10 s.
pub const MIN_POOL_MAX_AGE: Duration = Duration::from_secs(10);
/// The longest `[pool] max_age` allowed: 7 days.
pub const MAX_POOL_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The warm pool of an exam (`[pool]`): environments made and set up ahead of demand, each taken by one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolConfig {
    /// How many prepared environments to keep ready at all times (`size`, default 0: none, unless a proctor
    /// schedules candidates), at most [`MAX_POOL_SIZE`]. The server's `pool_max` caps all pools together.
    pub size: u32,
    /// A prepared environment not taken within this is destroyed (and replaced) (`max_age`, default
    /// [`DEFAULT_POOL_MAX_AGE`]), from [`MIN_POOL_MAX_AGE`] to [`MAX_POOL_MAX_AGE`].
    pub max_age: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig { size: 0, max_age: DEFAULT_POOL_MAX_AGE }
    }
}

/// What candidates see of their result (`[result] show`). Proctors always see everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ResultPolicy {
    /// `show = "score"`: only the score (points out of the maximum), per task and in total.
    ScoreOnly,
    /// `show = "checks"` (the default): the score and, for each check, its description and whether it passed.
    #[default]
    ShowChecks,
}

impl ResultPolicy {
    /// How it is written in `exam.toml`: `"score"` or `"checks"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ScoreOnly => "score",
            Self::ShowChecks => "checks",
        }
    }

    /// From how it is written in `exam.toml`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "score" => Some(Self::ScoreOnly),
            "checks" => Some(Self::ShowChecks),
            _ => None,
        }
    }

    /// Whether candidates see each check's description and outcome.
    pub fn shows_checks(self) -> bool {
        self == Self::ShowChecks
    }
}

impl std::fmt::Display for ResultPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The most attempts `attempts = N` may allow; beyond it, write `"unlimited"`.
pub const MAX_ATTEMPTS: u32 = 100;

/// How many attempts a candidate has at an exam (`attempts`), before a proctor grants more.
///
/// An attempt is a session that reached `active` (its clock started) and did not end `failed`: a session that failed
/// on the service's side, or that was never started, does not use one. When `attempts` is not written, an exam that
/// has at least one check allows one attempt (a graded exam is taken once: each result tells which checks passed,
/// or at least the score, and retrying until it is full would turn the exam into a guessing game); an exam without
/// checks (nothing is graded) has no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Attempts {
    /// `attempts = N`: at most N (1 to [`MAX_ATTEMPTS`]).
    AtMost(u32),
    /// `attempts = "unlimited"`.
    Unlimited,
}

impl Attempts {
    /// The default for an exam whose tasks are `tasks`: one attempt when anything is graded, else no limit.
    pub fn default_for(tasks: &[Task]) -> Attempts {
        if tasks.iter().any(|t| !t.checks.is_empty()) {
            Attempts::AtMost(1)
        } else {
            Attempts::Unlimited
        }
    }

    /// The limit, or `None` for no limit.
    pub fn limit(self) -> Option<u32> {
        match self {
            Attempts::AtMost(n) => Some(n),
            Attempts::Unlimited => None,
        }
    }
}

impl std::fmt::Display for Attempts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attempts::AtMost(n) => write!(f, "{n}"),
            Attempts::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// Checks a task or check id: 1 to [`MAX_ID_LEN`] of `a-z 0-9 -`, not starting with `-`. `kind` is "task" or
/// "check", for the message.
pub(crate) fn check_id(kind: &str, id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err(format!("the {kind} id is empty; use 1 to {MAX_ID_LEN} of a-z, 0-9 and -, as in \"make-dir\""));
    }
    if id.chars().count() > MAX_ID_LEN {
        return Err(format!("the {kind} id is too long; use at most {MAX_ID_LEN} characters"));
    }
    if let Some(ch) = id.chars().find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')) {
        return Err(format!(
            "the {kind} id {:?} contains {ch:?}; use only lowercase letters a-z, digits 0-9 and -",
            shorten(id)
        ));
    }
    if id.starts_with('-') {
        return Err(format!("the {kind} id {id:?} must not start with '-'"));
    }
    Ok(())
}

/// The `[environment]` section: what a candidate's isolated Linux environment is made from and how much it
/// may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentConfig {
    /// What the environment's root file system is (`base`): `"host"`, `"rootfs:/ABS/PATH"` or
    /// `"image:NAME"`. Checked for syntax only (see [`BaseKind::parse`]); whether the path or image exists
    /// is the runtime's business.
    pub base: String,
    /// The memory limit in bytes (`memory`, default [`DEFAULT_MEMORY_BYTES`]), from [`MIN_MEMORY_BYTES`] to
    /// [`MAX_MEMORY_BYTES`].
    pub memory_bytes: u64,
    /// The process limit (`pids`, default [`DEFAULT_PIDS`]), from [`MIN_PIDS`] to [`MAX_PIDS`].
    pub pids: u64,
    /// CPU in thousandths of a core (`cpu`, default [`DEFAULT_CPU_MILLICORES`]), from
    /// [`MIN_CPU_MILLICORES`] to [`MAX_CPU_MILLICORES`].
    pub cpu_millicores: u32,
    /// The size of the writable disk in bytes (`disk`), if limited: at least [`MIN_DISK_BYTES`] and smaller
    /// than `memory_bytes`.
    pub disk_bytes: Option<u64>,
    /// The network mode (`network`); only [`NETWORK_NONE`] for now.
    pub network: String,
    /// Whether the environment has a graphical desktop (`desktop`, default `false`).
    pub desktop: bool,
    /// The desktop's screen in pixels (`resolution = "1280x800"`, the default), width and height.
    pub resolution: (u16, u16),
    /// The ports inside the environment that its owner's browser may open through the server (`ports = [8000]`).
    pub ports: Vec<u16>,
    /// What kind of machine (`profile`): [`PROFILE_SHELL`] (the default: a shell in a tight jail) or
    /// [`PROFILE_SYSTEM`] (systemd as PID 1, services, ssh, mounts and networking inside).
    pub profile: String,
    /// Which runtime backend makes the environment (`backend`): [`BACKEND_SANDBOX`] (the default) or
    /// [`BACKEND_DOCKER`] (issue 14; not built yet: such an exam is listed as unavailable with the reason).
    pub backend: String,
    /// Service containers beside the candidate's environment (`[[environment.services]]`), in start order; only the
    /// Docker backend runs them.
    pub services: Vec<ServiceSpec>,
    /// How many terminals a candidate may have open at once, "main" included (`terminals`, default
    /// [`DEFAULT_TERMINALS`]), from 1 to [`MAX_TERMINALS`].
    pub terminals: u32,
}

/// Terminals a candidate may have open at once when the exam does not say.
pub const DEFAULT_TERMINALS: u32 = 4;
/// The most terminals an exam may allow.
pub const MAX_TERMINALS: u32 = 8;

/// A documentation link candidates may open during the exam (`[[resources]]`), shown in a panel of the exam page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// What it is (`title`), never blank, at most [`MAX_RESOURCE_TITLE`] characters.
    pub title: String,
    /// Where (`url`): an absolute `http` or `https` URL with a host and no credentials, at most
    /// [`MAX_RESOURCE_URL`] characters.
    pub url: String,
}

/// The most resources an exam may list.
pub const MAX_RESOURCES: usize = 32;
/// The longest resource title, in characters.
pub const MAX_RESOURCE_TITLE: usize = 200;
/// The longest resource URL, in characters.
pub const MAX_RESOURCE_URL: usize = 2000;
/// When the exam page warns that time is running out, before the deadline, when the exam does not say.
pub const DEFAULT_WARNINGS: [Duration; 2] = [Duration::from_secs(600), Duration::from_secs(60)];
/// The most time warnings an exam may set.
pub const MAX_WARNINGS: usize = 5;

/// `backend = "sandbox"`: namespaces and cgroups on this host (the default).
pub const BACKEND_SANDBOX: &str = "sandbox";
/// `backend = "docker"`: a Docker Engine (issue 14).
pub const BACKEND_DOCKER: &str = "docker";

/// One service container of an environment (`[[environment.services]]`): reachable from the candidate's environment
/// by its name, on the session's own private network (issue 14 runs them; the exams crate only reads them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Its name (`name`), like a task id; the host name the candidate reaches it by. Unique in the exam.
    pub name: String,
    /// The image it runs (`image`), as in `base = "image:REF"` without the prefix.
    pub image: String,
    /// The command (`command`), if not the image's own: the program and its arguments.
    pub command: Vec<String>,
    /// Environment variables (`environment`), sorted by name.
    pub environment: Vec<(String, String)>,
    /// Its memory limit in bytes (`memory`), if given.
    pub memory_bytes: Option<u64>,
    /// A command that exits 0 once the service is ready (`ready_command`), run inside it.
    pub ready_command: Vec<String>,
    /// A TCP port that accepts connections once the service is ready (`ready_port`).
    pub ready_port: Option<u16>,
}

/// The desktop's screen when the exam names none.
pub const DEFAULT_RESOLUTION: (u16, u16) = (1280, 800);
/// The port of the desktop's VNC server on the environment's loopback.
pub const DESKTOP_VNC_PORT: u16 = 5900;
/// At most this many `ports`.
pub const MAX_PORTS: usize = 16;

/// `profile = "shell"`: a shell in a tight jail, no service manager.
pub const PROFILE_SHELL: &str = "shell";
/// `profile = "system"`: a whole machine, with systemd as PID 1.
pub const PROFILE_SYSTEM: &str = "system";

impl EnvironmentConfig {
    /// A `host` environment with every default: what an `[environment]` section holding only
    /// `base = "host"` gives.
    pub fn host() -> Self {
        Self {
            base: "host".to_owned(),
            memory_bytes: DEFAULT_MEMORY_BYTES,
            pids: DEFAULT_PIDS,
            cpu_millicores: DEFAULT_CPU_MILLICORES,
            disk_bytes: None,
            network: NETWORK_NONE.to_owned(),
            desktop: false,
            resolution: DEFAULT_RESOLUTION,
            ports: Vec::new(),
            profile: PROFILE_SHELL.to_owned(),
            backend: BACKEND_SANDBOX.to_owned(),
            services: Vec::new(),
            terminals: DEFAULT_TERMINALS,
        }
    }

    /// The base, taken apart. `None` only if `base` was set by hand to something that
    /// [`BaseKind::parse`] refuses; a loaded exam always has a valid base.
    pub fn base_kind(&self) -> Option<BaseKind<'_>> {
        BaseKind::parse(&self.base).ok()
    }
}

/// What an environment's root file system is made from: [`EnvironmentConfig::base`] taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseKind<'a> {
    /// `host`: the host's own file system, read-only.
    Host,
    /// `rootfs:/ABS/PATH`: an unpacked root file system at an absolute path without `..`.
    Rootfs(&'a Path),
    /// `image:NAME`: a container image, `NAME` made of `a-z 0-9 . _ / : -`.
    Image(&'a str),
}

impl<'a> BaseKind<'a> {
    /// Checks the syntax of a `base` value. The error says, for a person, what is wrong and how to write it.
    pub fn parse(base: &'a str) -> Result<Self, String> {
        const FORMS: &str = "write \"host\", \"rootfs:/absolute/path\" or \"image:name\"";
        if base == "host" {
            return Ok(Self::Host);
        }
        if let Some(path) = base.strip_prefix("rootfs:") {
            if path.is_empty() {
                return Err(format!("base \"rootfs:\" has no path; {FORMS}"));
            }
            if path.contains('\0') {
                return Err("the rootfs path contains a NUL character".to_owned());
            }
            let path = Path::new(path);
            if !path.is_absolute() {
                return Err(format!("the rootfs path {path:?} is not absolute; write it like rootfs:/srv/rootfs"));
            }
            if path.components().any(|c| c == Component::ParentDir) {
                return Err(format!("the rootfs path {path:?} contains \"..\"; write it without"));
            }
            return Ok(Self::Rootfs(path));
        }
        if let Some(name) = base.strip_prefix("image:") {
            if name.is_empty() {
                return Err(format!("base \"image:\" has no image name; {FORMS}"));
            }
            if let Some(ch) = name.chars().find(|&c| !is_image_char(c)) {
                return Err(format!(
                    "the image name contains {ch:?}; use only lowercase letters a-z, digits and . _ / : -"
                ));
            }
            return Ok(Self::Image(name));
        }
        Err(format!("unknown base {:?}; {FORMS}", shorten(base)))
    }
}

fn is_image_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '/' | ':' | '-')
}

/// `s` as quoted in messages: at most 60 characters.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push('…');
        out
    }
}

/// Writes a byte count for messages: `512 MiB`, `1 GiB`, `3000 bytes`.
pub(crate) fn format_bytes(bytes: u64) -> String {
    for (unit, size) in [("GiB", GIB), ("MiB", MIB), ("KiB", KIB)] {
        // Every unit is a power of two, so a mask tells whether it divides the size.
        if bytes >= size && bytes & (size - 1) == 0 {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

/// Writes millicores for messages: `1.5 cores (1500m)`.
pub(crate) fn format_cpu(millicores: i64) -> String {
    let cores = millicores as f64 / 1000.0;
    format!("{cores} cores ({millicores}m)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_kinds() {
        assert_eq!(BaseKind::parse("host"), Ok(BaseKind::Host));
        assert_eq!(BaseKind::parse("rootfs:/srv/rootfs"), Ok(BaseKind::Rootfs(Path::new("/srv/rootfs"))));
        assert_eq!(
            BaseKind::parse("image:docker.io/library/debian:12"),
            Ok(BaseKind::Image("docker.io/library/debian:12"))
        );
        for bad in [
            "",
            "Host",
            "hosts",
            "rootfs:",
            "rootfs:srv/rootfs",
            "rootfs:/srv/../etc",
            "rootfs:/srv/..",
            "rootfs:/a\0b",
            "image:",
            "image:Debian",
            "image:debian 12",
            "image:debian@sha256",
            "docker:debian",
        ] {
            assert!(BaseKind::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn host_defaults() {
        let env = EnvironmentConfig::host();
        assert_eq!(env.base_kind(), Some(BaseKind::Host));
        assert_eq!(env.memory_bytes, 512 * 1024 * 1024);
        assert_eq!(env.pids, 512);
        assert_eq!(env.cpu_millicores, 1000);
        assert_eq!(env.disk_bytes, None);
        assert_eq!(env.network, "none");
        assert!(!env.desktop);
    }

    fn script(body: &str) -> Script {
        Script { path: PathBuf::from("s.sh"), body: body.to_owned() }
    }

    #[test]
    fn interpreters() {
        assert_eq!(script("echo hi\n").interpreter(), ["/bin/sh"]);
        assert!(!script("echo hi\n").has_shebang());
        assert_eq!(script("#!/bin/bash\necho\n").interpreter(), ["/bin/bash"]);
        assert_eq!(script("#! /bin/sh -eu \n").interpreter(), ["/bin/sh", "-eu"]);
        assert_eq!(script("#!/usr/bin/env python3\n").interpreter(), ["/usr/bin/env", "python3"]);
        assert_eq!(script("#!/usr/bin/env -S a b").interpreter(), ["/usr/bin/env", "-S a b"]);
        assert!(script("#!/bin/sh").has_shebang());
    }

    #[test]
    fn ids_and_policies() {
        for good in ["a", "make-dir", "task-10", &"a".repeat(64)] {
            assert_eq!(check_id("task", good), Ok(()), "{good:?}");
        }
        for bad in ["", "-a", "Make", "a_b", "a b", "é", &"a".repeat(65)] {
            assert!(check_id("check", bad).is_err(), "{bad:?}");
        }
        assert_eq!(ResultPolicy::default(), ResultPolicy::ShowChecks);
        assert_eq!(ResultPolicy::parse("score"), Some(ResultPolicy::ScoreOnly));
        assert_eq!(ResultPolicy::parse("checks"), Some(ResultPolicy::ShowChecks));
        assert_eq!(ResultPolicy::parse("Score"), None);
        assert_eq!(ResultPolicy::ScoreOnly.to_string(), "score");
        assert!(ResultPolicy::ShowChecks.shows_checks() && !ResultPolicy::ScoreOnly.shows_checks());
    }

    #[test]
    fn formats_for_messages() {
        assert_eq!(format_bytes(512 * MIB), "512 MiB");
        assert_eq!(format_bytes(64 * GIB), "64 GiB");
        assert_eq!(format_bytes(1536 * KIB), "1536 KiB");
        assert_eq!(format_bytes(1000), "1000 bytes");
        assert_eq!(format_cpu(1500), "1.5 cores (1500m)");
        assert_eq!(shorten(&"x".repeat(100)).chars().count(), 61);
    }
}
