//! `examroom bench …`: figures, not verdicts. Each prints what it measured and the command that reproduces it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use examroom_core::EnvironmentId;
use examroom_runtime::sandbox::{SandboxConfig, SandboxRuntime};
use examroom_runtime::{Base, EnvironmentSpec, ExecutionRuntime, Profile, TerminalEvent};
use tokio::sync::Semaphore;

#[derive(Subcommand)]
pub enum Bench {
    /// The sandbox backend: create→shell-ready and destroy latency, and memory per idle environment.
    Sandbox {
        /// Environments to create and destroy for the latency figures.
        #[arg(long, default_value_t = 50)]
        count: usize,
        /// How many creates (and destroys) run at once.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Idle environments for the memory figure (0 skips it).
        #[arg(long, default_value_t = 100)]
        idle: usize,
        /// `host`, `rootfs:/PATH`, or `image:REF` (an image in `<state-dir>/images`: give `--state-dir`).
        #[arg(long, default_value = "host")]
        base: String,
        /// `shell` or `system` (a machine: ready once booted; also times booting it again for grading).
        #[arg(long, default_value = "shell")]
        profile: String,
        /// State directory (a fresh one under /tmp by default).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// The session service through its real HTTP API: POST→ready, status push latency, end→released.
    Sessions {
        /// Candidates starting at once.
        #[arg(long, default_value_t = 50)]
        users: usize,
        /// A sample exam (with setup scripts and checks) for the setup and grading figures.
        #[arg(long, default_value = "exams/linux-basics")]
        exam: PathBuf,
        /// The Docker backend instead: POST→ready at 1, 10 and --users candidates, then with one service each (the
        /// Engine at EXAMROOM_DOCKER_SOCKET, with the sample image: make images, scripts/docker-images.sh).
        #[arg(long)]
        docker: bool,
    },
    /// The terminal through its real WebSocket: keystroke echo (idle, while sessions start, while one floods), `cat`
    /// throughput, and Ctrl-C during a flood until the prompt is rendered.
    Terminal {
        /// Attached idle sessions.
        #[arg(long, default_value_t = 50)]
        sessions: usize,
        /// Sessions started while echo is measured.
        #[arg(long, default_value_t = 100)]
        starting: usize,
        /// Size of the file `cat`ed for the throughput figures.
        #[arg(long, default_value_t = 100)]
        megabytes: usize,
        /// Rounds of `yes` for 2 s, Ctrl-C, prompt.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// How fast the simulated page renders output, in MB/s (xterm.js in Chromium on this machine: see
        /// docs/PERFORMANCE.md).
        #[arg(long, default_value_t = 2.0)]
        render_mbps: f64,
    },
    /// The desktop: the time it adds to readiness, memory per idle desktop session, and input-to-frame latency.
    Desktop {
        /// Desktops started one after another for the readiness figure.
        #[arg(long, default_value_t = 10)]
        count: usize,
        /// Idle sessions for the memory figure (0 skips it).
        #[arg(long, default_value_t = 10)]
        idle: usize,
        /// Keys typed into the desktop's terminal for the latency figure.
        #[arg(long, default_value_t = 200)]
        keys: usize,
    },
}

pub async fn run(b: Bench) -> Result<()> {
    match b {
        Bench::Sandbox { count, concurrency, idle, base, profile, state_dir } => {
            let profile = Profile::parse(&profile)?;
            sandbox(Params { count, concurrency, idle, base: &base, profile }, state_dir).await
        }
        Bench::Sessions { users, docker: true, .. } => crate::bench_sessions::run_docker(users).await,
        Bench::Sessions { users, exam, docker: false } => crate::bench_sessions::run(users, &exam).await,
        Bench::Terminal { sessions, starting, megabytes, rounds, render_mbps } => {
            if !(render_mbps > 0.0 && render_mbps.is_finite()) {
                bail!("--render-mbps must be a positive number of MB/s");
            }
            let p = crate::bench_terminal::Params { sessions, starting, megabytes, rounds, render_mbps };
            crate::bench_terminal::run(p).await
        }
        Bench::Desktop { count, idle, keys } => {
            crate::bench_desktop::run(crate::bench_desktop::Params { count, idle, keys }).await
        }
    }
}

/// Percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub fn mem_available_kib() -> Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("MemAvailable missing from /proc/meminfo")
}

/// Creates an environment and waits for its shell's first output (the prompt): that is "shell-ready". A machine's
/// create returns once it has booted.
async fn create_ready(rt: &SandboxRuntime, base: &BenchBase, profile: Profile) -> Result<(EnvironmentId, Duration)> {
    let id = EnvironmentId::new_v4();
    let mut spec = EnvironmentSpec::new(id);
    match base {
        BenchBase::Base(b) => spec.base = b.clone(),
        BenchBase::Image(r) => spec.image = Some(r.clone()),
    }
    spec.profile = profile;
    let t0 = Instant::now();
    rt.create(spec).await?;
    let mut term = rt.attach(&id, "main").await?;
    let wait = async {
        loop {
            match term.output.next().await? {
                Some(TerminalEvent::Output(b)) if !b.is_empty() => return Ok::<_, anyhow::Error>(()),
                Some(_) => continue,
                None => bail!("terminal closed before the prompt"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait).await.context("no prompt within 30 s")??;
    Ok((id, t0.elapsed()))
}

/// What the bench's environments run on.
#[derive(Clone)]
enum BenchBase {
    Base(Base),
    Image(String),
}

impl std::fmt::Display for BenchBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BenchBase::Base(b) => write!(f, "{b}"),
            BenchBase::Image(r) => write!(f, "image:{r}"),
        }
    }
}

struct Params<'a> {
    count: usize,
    concurrency: usize,
    idle: usize,
    base: &'a str,
    profile: Profile,
}

async fn sandbox(p: Params<'_>, state_dir: Option<PathBuf>) -> Result<()> {
    let Params { count, concurrency, idle, base, profile } = p;
    let tmp;
    let state_dir = match state_dir {
        Some(d) => d,
        None => {
            tmp = tempfile::Builder::new().prefix("examroom-bench-").tempdir_in("/tmp")?;
            tmp.path().to_path_buf()
        }
    };
    let label = format!("bench-{}", std::process::id());
    let rt = Arc::new(SandboxRuntime::new(SandboxConfig::new(&state_dir, &label))?);
    let base = match base.strip_prefix("image:") {
        Some(reference) => {
            if !state_dir.join("images").is_dir() {
                bail!(
                    "--base image:{reference} needs --state-dir with an image store (its images/ directory: \
                     `examroom image import --state-dir DIR ARCHIVE`)"
                );
            }
            BenchBase::Image(reference.to_string())
        }
        None => BenchBase::Base(Base::parse(base)?),
    };
    let concurrency = concurrency.max(1);
    println!(
        "examroom bench sandbox --count {count} --concurrency {concurrency} --idle {idle} --base {base} --profile {profile}"
    );
    println!("host: {} cores, kernel {}, userns: {}", num_cores(), kernel(), rt.uses_userns());
    let measured = measure(&rt, &base, Params { count, concurrency, idle, base: "", profile }).await;
    if measured.is_err() {
        // Leave nothing behind on a failure either: the state directory goes with this process.
        for env in rt.list().await.unwrap_or_default() {
            if let Err(e) = rt.destroy(&env.id).await {
                eprintln!("examroom bench: destroying {}: {e}", env.id);
            }
        }
    }
    measured
}

async fn measure(rt: &Arc<SandboxRuntime>, base: &BenchBase, p: Params<'_>) -> Result<()> {
    let Params { count, concurrency, idle, profile, .. } = p;
    let (rt, base) = (rt.clone(), base.clone());

    // Warm-up: one create/destroy so that page cache and the curated /etc are in place.
    let (id, _) = create_ready(&rt, &base, profile).await?;
    rt.destroy(&id).await?;

    let sem = Arc::new(Semaphore::new(concurrency));
    let wall = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let (rt, sem, base) = (rt.clone(), sem.clone(), base.clone());
        tasks.spawn(async move {
            let _p = sem.acquire_owned().await?;
            create_ready(&rt, &base, profile).await
        });
    }
    let mut ready = Vec::new();
    let mut ids = Vec::new();
    let mut steps: std::collections::BTreeMap<String, Vec<Duration>> = Default::default();
    while let Some(t) = tasks.join_next().await {
        let (id, d) = t??;
        // The shim logs how long each of its steps took.
        let log = std::fs::read_to_string(rt.dir().join(id.to_string()).join("shim.log")).unwrap_or_default();
        for (k, v) in log
            .lines()
            .filter_map(|l| l.strip_prefix("examroom shim: created"))
            .flat_map(|l| l.split_whitespace().filter_map(|kv| kv.split_once('=')).collect::<Vec<_>>())
        {
            if let Ok(ms) = v.trim_end_matches("ms").parse::<f64>() {
                steps.entry(k.to_string()).or_default().push(Duration::from_secs_f64(ms / 1000.0));
            }
        }
        ids.push(id);
        ready.push(d);
    }
    let create_wall = wall.elapsed();
    ready.sort();
    println!(
        "create→shell-ready (n={count}, c={concurrency}): p50 {}  p95 {}  p99 {}  max {}  | all {count} ready in {}",
        ms(percentile(&ready, 50.0)),
        ms(percentile(&ready, 95.0)),
        ms(percentile(&ready, 99.0)),
        ms(*ready.last().unwrap_or(&Duration::ZERO)),
        ms(create_wall)
    );

    let mut line = String::from("  shim steps p50:");
    for (k, mut v) in steps {
        v.sort();
        line.push_str(&format!(" {k} {}", ms(percentile(&v, 50.0))));
    }
    println!("{line}");

    if profile == Profile::System {
        // Grading a machine: every process killed, booted again from its disk (one at a time, as sessions end).
        let n = ids.len().min(10);
        let mut again = Vec::new();
        for id in &ids[..n] {
            let t0 = Instant::now();
            rt.freeze(id).await?;
            again.push(t0.elapsed());
        }
        again.sort();
        println!(
            "booted again for grading (n={n}, one at a time): p50 {}  p99 {}",
            ms(percentile(&again, 50.0)),
            ms(percentile(&again, 99.0))
        );
    }

    let wall = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids {
        let (rt, sem) = (rt.clone(), sem.clone());
        tasks.spawn(async move {
            let _p = sem.acquire_owned().await?;
            let t0 = Instant::now();
            let r = rt.destroy(&id).await?;
            anyhow::ensure!(r.verified, "destroy of {id} not verified");
            Ok::<_, anyhow::Error>(t0.elapsed())
        });
    }
    let mut destroy = Vec::new();
    while let Some(t) = tasks.join_next().await {
        destroy.push(t??);
    }
    destroy.sort();
    println!(
        "destroy (verified, n={count}, c={concurrency}): p50 {}  p99 {}  | all in {}",
        ms(percentile(&destroy, 50.0)),
        ms(percentile(&destroy, 99.0)),
        ms(wall.elapsed())
    );

    if idle > 0 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = mem_available_kib()?;
        let sem = Arc::new(Semaphore::new(concurrency.max(4)));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..idle {
            let (rt, sem, base) = (rt.clone(), sem.clone(), base.clone());
            tasks.spawn(async move {
                let _p = sem.acquire_owned().await?;
                create_ready(&rt, &base, profile).await
            });
        }
        let mut ids = Vec::new();
        while let Some(t) = tasks.join_next().await {
            ids.push(t??.0);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = mem_available_kib()?;
        let per = (before.saturating_sub(after)) as f64 / idle as f64;
        println!(
            "memory per idle environment (MemAvailable drop over {idle}): {:.0} KiB ({:.2} MiB)",
            per,
            per / 1024.0
        );
        let mut tasks = tokio::task::JoinSet::new();
        for id in ids {
            let (rt, sem) = (rt.clone(), sem.clone());
            tasks.spawn(async move {
                let _p = sem.acquire_owned().await?;
                Ok::<_, anyhow::Error>(rt.destroy(&id).await?)
            });
        }
        while let Some(t) = tasks.join_next().await {
            t??;
        }
    }
    let left = rt.list().await?;
    anyhow::ensure!(left.is_empty(), "{} environments left behind", left.len());
    Ok(())
}

fn num_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default()
}
