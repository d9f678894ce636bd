//! `examroom exam test DIR [--task ID] [--keep]`: tests an exam before candidates do.
//!
//! It starts the session service that `serve` runs (a real SQLite store and the real sandbox runtime, in a
//! temporary directory under its own label), with a catalog holding only this exam. Each run is a real session, made
//! as a candidate's is (the same profile, base or image, limits and setup scripts), started, and ended by a submit,
//! which grades it exactly as a candidate's submit does:
//!
//! - **unsolved**: one session where nothing is done; every check must fail (unless it says why it may pass:
//!   `may_pass_unsolved = "reason"`). One run serves every task: nothing happens in it between setup and grading.
//! - **each task**: one session per task, in which the task's reference solution (`solution = "..."`) runs as the
//!   candidate's commands do (inside the environment, as its root, through the runtime's exec); each of the task's
//!   checks must then pass.
//!
//! Runs go `--jobs` at a time. The report gives, per check, whether it passed with the solution and unsolved, and how
//! long each took; the exit status is non-zero on any surprise, each named by task and check. Every environment made
//! is destroyed at the end (verified), and on Ctrl-C, except with `--keep`: then one more session per tested task is
//! left open after its solution ran, with the command that attaches to it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use examroom_core::{ExamResult, ResultStatus, SessionState, UserId};
use examroom_exams::{Catalog, Exam, BACKEND_SANDBOX};
use examroom_runtime::sandbox::{SandboxConfig, SandboxRuntime};
use examroom_runtime::{Backends, ExecutionRuntime, Runtime};
use examroom_sessions::{Caller, Clock, PoolSettings, ServiceConfig, SessionService};
use examroom_store::sqlite::SqliteStore;
use examroom_store::Store;

/// What `exam test` was asked.
pub struct TestArgs {
    /// The exam directory.
    pub dir: PathBuf,
    /// Only this task (and the unsolved run).
    pub task: Option<String>,
    /// Leave a solved session per tested task open.
    pub keep: bool,
    /// The server's data directory, whose image store holds the images exams run on.
    pub data_dir: PathBuf,
    /// Sessions at once.
    pub jobs: usize,
}

/// Set on Ctrl-C: the report is not printed (the handler destroys everything and exits).
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The exit status when the exam cannot be tested on this machine at all (as opposed to 1: a surprise).
pub const CANNOT_RUN: i32 = 3;

/// An error that exits with [`CANNOT_RUN`].
#[derive(Debug)]
pub struct CannotRun(pub String);

impl std::fmt::Display for CannotRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CannotRun {}

/// The Docker backend for an exam that runs on it, as `serve` would configure it from the same variables
/// (`EXAMROOM_DOCKER_SOCKET`, `EXAMROOM_DOCKER_SHIM`, `EXAMROOM_DOCKER_UNBOUNDED_DISK`); a Docker Engine that does not
/// answer is [`CannotRun`].
async fn docker_backend(exam: &examroom_exams::Exam, label: &str) -> Result<Runtime> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let settings = crate::serve::Settings::resolve(None, None, None, None, None)?;
    let mut settings = crate::serve::Settings { label: label.to_string(), ..settings };
    if let Some(socket) = var("EXAMROOM_DOCKER_SOCKET") {
        settings.docker_socket = socket.into();
    }
    let rt = crate::serve::docker_runtime(&settings)
        .map_err(|e| CannotRun(format!("{}: not tested: the docker backend: {e:#}", exam.id)))?;
    if let Err(e) = rt.health().await {
        return Err(CannotRun(format!(
            "{}: not tested: the Docker Engine at {} does not answer: {e}",
            exam.id,
            settings.docker_socket.display()
        ))
        .into());
    }
    Ok(rt)
}

/// One session of the test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    /// Nothing done.
    Unsolved,
    /// The solution of the task at this index, then graded.
    Solved(usize),
    /// The solution of the task at this index, then left open.
    Kept(usize),
}

/// What one session gave.
#[derive(Debug, Default)]
struct Outcome {
    /// From the create to `ready`.
    provisioned: Duration,
    /// How long the solution ran.
    solution: Option<Duration>,
    /// From the submit to the result.
    graded: Duration,
    /// The result (graded or not).
    result: Option<ExamResult>,
    /// What went wrong before a result, if anything.
    failure: Option<String>,
    /// The environment (for --keep).
    environment: Option<String>,
}

/// Runs the test and prints the report. `Ok` when nothing surprised.
pub async fn run(args: TestArgs) -> Result<()> {
    let exam = examroom_exams::load_exam(&args.dir).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        anyhow::anyhow!("the exam does not load:\n{}", list.join("\n"))
    })?;
    let docker = exam.environment.backend != BACKEND_SANDBOX;
    if !docker && !exam.environment.services.is_empty() {
        return Err(CannotRun(format!(
            "{}: not tested: the sandbox backend runs no services ([[environment.services]]); set backend = \"docker\"",
            exam.id
        ))
        .into());
    }
    let tasks: Vec<usize> = match &args.task {
        None => (0..exam.tasks.len()).collect(),
        Some(id) => match exam.tasks.iter().position(|t| &t.id == id) {
            Some(i) => vec![i],
            None => {
                let ids: Vec<&str> = exam.tasks.iter().map(|t| t.id.as_str()).collect();
                bail!("{} has no task {id:?}; its tasks are {}", exam.id, ids.join(", "))
            }
        },
    };
    if exam.tasks.is_empty() {
        bail!("{} has no tasks: there is nothing to test", exam.id);
    }
    let unsolvable: Vec<&str> =
        tasks.iter().map(|&i| &exam.tasks[i]).filter(|t| t.solution.is_none()).map(|t| t.id.as_str()).collect();
    if !unsolvable.is_empty() {
        bail!(
            "{}: task(s) {} name no reference solution; add solution = \"solutions/TASK.sh\" to each",
            exam.id,
            unsolvable.join(", ")
        );
    }

    let tmp = tempfile::Builder::new().prefix("examroom-exam-test-").tempdir_in(std::env::temp_dir())?;
    let state_dir = tmp.path().join("sandbox");
    std::fs::create_dir_all(&state_dir)?;
    // A Docker exam's image is in the Docker Engine's store: a missing one fails the create, naming how to build it.
    if let Some(reference) = examroom_sessions::provision::image_reference(&exam).filter(|_| !docker) {
        let images = args.data_dir.join("sandbox").join("images");
        let store = examroom_images::ImageStore::at(images.clone());
        if let Err(e) = store.resolve(reference) {
            return Err(CannotRun(format!(
                "{}: not tested: {e} (the store of --data-dir {}); import it with `examroom image import --data-dir \
                 {} FILE_OR_DIR`",
                exam.id,
                args.data_dir.display(),
                args.data_dir.display()
            ))
            .into());
        }
        std::os::unix::fs::symlink(&images, state_dir.join("images")).context("link the image store")?;
    }
    let label = format!("exam-test-{}", std::process::id() % 100_000_000);
    let mut rcfg = SandboxConfig::new(&state_dir, &label);
    rcfg.hidden = vec![tmp.path().to_path_buf(), exam.dir.clone(), args.data_dir.clone()];
    rcfg.create_timeout = Duration::from_secs(55);
    let sandbox = SandboxRuntime::new(rcfg).context("start the sandbox runtime")?;
    let store = Store::Sqlite(SqliteStore::open(&tmp.path().join("examroom.db")).await.context("open the store")?);
    let config = ServiceConfig {
        max_creates_per_minute: 0,
        memory_budget: None,
        pool: PoolSettings { owner: label.clone(), max_environments: 0, ..PoolSettings::default() },
        // The exam's ports are reached through the runtime here, never a browser: no ports origin is needed.
        ports_enabled: true,
        ..ServiceConfig::default()
    };
    let docker = match docker {
        true => Some(docker_backend(&exam, &label).await?),
        false => None,
    };
    let svc = SessionService::start(
        store,
        Backends::new(Some(Runtime::Sandbox(sandbox)), docker)?,
        Catalog::from_exams([exam.clone()]),
        config,
        Clock::system(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("start the session service: {e}"))?;

    // Interrupted: nothing is left behind (every environment of this label destroyed, the directory removed).
    {
        let (svc, dir) = (svc.clone(), tmp.path().to_path_buf());
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
                eprintln!("interrupted: destroying this test's environments");
                let rt = svc.runtime();
                if let Ok(all) = rt.list().await {
                    for env in all {
                        let _ = rt.destroy(&env.id).await;
                    }
                }
                let _ = std::fs::remove_dir_all(&dir);
                std::process::exit(130);
            }
        });
    }
    let checks: usize = tasks.iter().map(|&i| exam.tasks[i].checks.len()).sum();
    println!(
        "exam {} (version {}): {} task(s), {checks} check(s), {} session(s), {} at once",
        exam.id,
        exam.short_version(),
        tasks.len(),
        tasks.len() + 1,
        args.jobs.max(1)
    );
    let mut runs = vec![Run::Unsolved];
    runs.extend(tasks.iter().map(|&i| Run::Solved(i)));
    if args.keep {
        runs.extend(tasks.iter().map(|&i| Run::Kept(i)));
    }
    let exam = Arc::new(exam);
    let gate = Arc::new(tokio::sync::Semaphore::new(args.jobs.max(1)));
    let mut handles = Vec::new();
    for (n, run) in runs.iter().enumerate() {
        let (svc, exam, gate, run) = (svc.clone(), exam.clone(), gate.clone(), *run);
        handles.push(tokio::spawn(async move {
            let _turn = gate.acquire_owned().await;
            session(&svc, &exam, run, n).await
        }));
    }
    let mut outcomes = Vec::new();
    for h in handles {
        outcomes.push(h.await.unwrap_or_else(|e| Outcome { failure: Some(format!("{e}")), ..Outcome::default() }));
    }
    if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        // The interrupt's handler cleans up and exits; sessions it ended are no result to report.
        std::future::pending::<()>().await;
    }
    let surprises = report(&exam, &runs, &outcomes);

    let kept: Vec<String> = runs
        .iter()
        .zip(&outcomes)
        .filter(|(r, _)| matches!(r, Run::Kept(_)))
        .filter_map(|(_, o)| o.environment.clone())
        .collect();
    // Nothing else stays: every environment of this label that is not kept is destroyed, verified.
    let rt = svc.runtime();
    if let Ok(all) = rt.list().await {
        for env in all.iter().filter(|e| !kept.contains(&e.id.to_string())) {
            let _ = rt.destroy(&env.id).await;
        }
    }
    if kept.is_empty() {
        drop(tmp);
    } else {
        let dir = tmp.keep();
        println!("\nkept (look around; leaving with Enter ~ . destroys it):");
        for (run, o) in runs.iter().zip(&outcomes) {
            if let (Run::Kept(i), Some(env)) = (run, &o.environment) {
                println!(
                    "  task {}: examroom sandbox shell --state-dir {} --label {label} --attach {env}",
                    exam.tasks[*i].id,
                    dir.join("sandbox").display()
                );
            }
        }
    }
    if surprises.is_empty() {
        println!("{}: every check passes with its solution and fails unsolved", exam.id);
        Ok(())
    } else {
        bail!("{} surprise(s) in {}: {}", surprises.len(), exam.id, surprises.join("; "))
    }
}

/// Makes one session and takes it through `run`.
async fn session(svc: &SessionService, exam: &Exam, run: Run, n: usize) -> Outcome {
    let mut out = Outcome::default();
    if let Err(e) = drive(svc, exam, run, n, &mut out).await {
        out.failure = Some(format!("{e:#}"));
    }
    out
}

async fn drive(svc: &SessionService, exam: &Exam, run: Run, n: usize, out: &mut Outcome) -> Result<()> {
    let user = UserId::parse(&format!("exam-author-{n}")).map_err(|e| anyhow::anyhow!("{e}"))?;
    let candidate = Caller::candidate(user.clone());
    let proctor = Caller::proctor(user);
    let start = Instant::now();
    let rec = svc.create(&candidate, exam.id.as_str()).await.map_err(|e| anyhow::anyhow!("start a session: {e}"))?;
    let id = rec.id.to_string();
    let rec = wait(svc, &candidate, &id, exam.provisioning_timeout + Duration::from_secs(30), |s| {
        !matches!(s, SessionState::Created | SessionState::Provisioning)
    })
    .await?;
    if rec.state != SessionState::Ready {
        let why = rec
            .failure
            .map(|f| {
                format!("{}: {}{}", f.code.as_str(), f.message, f.detail.map(|d| format!(" ({d})")).unwrap_or_default())
            })
            .unwrap_or_else(|| format!("it is {}", rec.state.as_str()));
        bail!("the session did not become ready: {why}");
    }
    out.provisioned = start.elapsed();
    out.environment = Some(rec.environment_id.to_string());
    svc.start_exam(&candidate, &id).await.map_err(|e| anyhow::anyhow!("start the exam: {e}"))?;
    if let Run::Solved(i) | Run::Kept(i) = run {
        let task = &exam.tasks[i];
        let solution = task.solution.as_ref().context("no solution")?;
        let began = Instant::now();
        let req = examroom_sessions::provision::script_request(solution, Duration::from_secs(300), 64 * 1024);
        let res = svc.runtime().exec(&rec.environment_id, req).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        out.solution = Some(began.elapsed());
        if res.exit_code != Some(0) || res.timed_out {
            let mut text = res.stdout.clone();
            text.extend_from_slice(&res.stderr);
            let from = text.len().saturating_sub(1024);
            bail!(
                "the solution {} of task {} failed ({}): {}",
                solution.path.display(),
                task.id,
                if res.timed_out { "timed out".to_string() } else { format!("exit {:?}", res.exit_code) },
                String::from_utf8_lossy(&text[from..]).trim()
            );
        }
    }
    if matches!(run, Run::Kept(_)) {
        return Ok(());
    }
    let began = Instant::now();
    svc.submit(&candidate, &id).await.map_err(|e| anyhow::anyhow!("submit: {e}"))?;
    let budget = examroom_sessions::ending::GRADING_BUDGET + Duration::from_secs(120);
    wait(svc, &candidate, &id, budget, |s| s.is_final()).await?;
    out.graded = began.elapsed();
    out.result = Some(svc.result(&proctor, &id).await.map_err(|e| anyhow::anyhow!("the result: {e}"))?);
    Ok(())
}

/// Polls the session until `done` says so of its state, within `limit`.
async fn wait(
    svc: &SessionService,
    caller: &Caller,
    id: &str,
    limit: Duration,
    done: impl Fn(SessionState) -> bool,
) -> Result<examroom_store::SessionRecord> {
    let until = Instant::now() + limit;
    loop {
        let rec = svc.get(caller, id).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        if done(rec.state) {
            return Ok(rec);
        }
        if Instant::now() > until {
            bail!("the session is still {} after {} s", rec.state.as_str(), limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Prints the report and returns the surprises, each naming its task and check.
fn report(exam: &Exam, runs: &[Run], outcomes: &[Outcome]) -> Vec<String> {
    let mut surprises = Vec::new();
    fn graded(o: &Outcome) -> Result<&ExamResult, String> {
        if let Some(f) = &o.failure {
            return Err(f.clone());
        }
        match &o.result {
            Some(r) if r.status == ResultStatus::Graded => Ok(r),
            Some(r) => Err(format!("not graded: {}", r.reason.as_deref().unwrap_or("no reason given"))),
            None => Err("no result".into()),
        }
    }
    println!();
    for (run, o) in runs.iter().zip(outcomes) {
        let name = match run {
            Run::Unsolved => "unsolved".to_string(),
            Run::Solved(i) => format!("task {}", exam.tasks[*i].id),
            Run::Kept(i) => format!("task {} (kept)", exam.tasks[*i].id),
        };
        let mut line = format!("  {name:<28} ready in {}", secs(o.provisioned));
        if let Some(d) = o.solution {
            line.push_str(&format!(", solution {}", secs(d)));
        }
        if let Some(r) = &o.result {
            line.push_str(&format!(", graded in {}: {} of {} points", secs(o.graded), r.score, r.max_score));
        }
        if let Some(f) = &o.failure {
            line.push_str(&format!(": FAILED: {f}"));
        }
        println!("{line}");
    }
    let unsolved = &outcomes[0];
    let unsolved_result = graded(unsolved);
    if let Err(why) = &unsolved_result {
        surprises.push(format!("the unsolved session: {why}"));
    }
    println!("\n  {:<40} {:<22} {:<22}", "check", "with its solution", "unsolved");
    for (run, o) in runs.iter().zip(outcomes) {
        let Run::Solved(i) = run else { continue };
        let task = &exam.tasks[*i];
        let solved = graded(o);
        if let Err(why) = &solved {
            surprises.push(format!("task {}: {why}", task.id));
        }
        for check in &task.checks {
            let name = format!("{}/{}", task.id, check.id);
            let find =
                |r: &ExamResult| r.checks.iter().find(|c| c.task_id == task.id && c.check_id == check.id).cloned();
            let with = solved.as_ref().ok().and_then(|r| find(r));
            let without = unsolved_result.as_ref().ok().and_then(|r| find(r));
            let cell = |c: &Option<examroom_core::CheckResult>| match c {
                Some(c) => format!("{} {} ms", if c.passed { "passed" } else { "failed" }, c.duration_ms),
                None => "-".to_string(),
            };
            let mut verdict = "ok".to_string();
            if let Some(c) = &with {
                if !c.passed {
                    let why = c.error.clone().or_else(|| c.output_tail.clone().map(|t| t.trim().to_string()));
                    let why = why.filter(|w| !w.is_empty()).map(|w| format!(": {w}")).unwrap_or_default();
                    surprises.push(format!("task {}, check {}: fails with the solution{why}", task.id, check.id));
                    verdict = "SURPRISE: fails with the solution".into();
                }
            }
            if let Some(c) = &without {
                if c.passed {
                    match &check.may_pass_unsolved {
                        Some(reason) => verdict = format!("ok (may pass unsolved: {reason})"),
                        None => {
                            surprises.push(format!(
                                "task {}, check {}: passes on an unsolved environment (fix the check, or say why it \
                                 may: may_pass_unsolved = \"...\")",
                                task.id, check.id
                            ));
                            verdict = "SURPRISE: passes unsolved".into();
                        }
                    }
                }
            }
            println!("  {name:<40} {:<22} {:<22} {verdict}", cell(&with), cell(&without));
        }
    }
    println!();
    for s in &surprises {
        println!("SURPRISE: {s}");
    }
    surprises
}
