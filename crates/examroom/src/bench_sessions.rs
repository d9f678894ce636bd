//! `examroom bench sessions --users N`: N candidates at once through the real HTTP API, on an exam without setup.
//! Figures: POST→ready (seen on the status stream), status-push latency (from the stored transition time to the event
//! reaching the client), and end→released (from the submit request to the `terminated` event).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use examroom_core::{Role, UserId};
use futures::StreamExt;

use crate::bench::percentile;
use crate::serve::{build, Settings};

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn parse_ms(v: &serde_json::Value) -> Option<i64> {
    let s = v.as_str()?;
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Reads a status stream, yielding each `status` event's session view.
pub(crate) struct StatusStream {
    pub(crate) body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    pub(crate) buf: String,
}

impl StatusStream {
    pub(crate) async fn next_status(&mut self) -> Result<serde_json::Value> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut event = "";
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event:") {
                        event = e.trim();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    }
                }
                if event == "status" {
                    return Ok(serde_json::from_str(&data)?);
                }
                continue;
            }
            match tokio::time::timeout(Duration::from_secs(60), self.body.next()).await {
                Ok(Some(chunk)) => self.buf.push_str(&String::from_utf8_lossy(&chunk?)),
                Ok(None) => bail!("status stream ended"),
                Err(_) => bail!("no status event within 60 s"),
            }
        }
    }

    pub(crate) async fn until(&mut self, state: &str) -> Result<(serde_json::Value, i64)> {
        loop {
            let v = self.next_status().await?;
            if v["state"] == state {
                return Ok((v, now_ms()));
            }
            if v["state"] == "failed" {
                bail!("session failed: {}", v["failure"]);
            }
        }
    }
}

struct Sample {
    /// From sending the POST to its answer.
    post_answered: Duration,
    post_to_ready: Duration,
    push: Vec<i64>,
    end_to_released: Duration,
    environment_id: String,
}

async fn one(http: reqwest::Client, base: String, token: String, exam: &str) -> Result<Sample> {
    let t0 = Instant::now();
    let r = http
        .post(format!("{base}/api/v1/sessions"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"exam_id": exam}))
        .send()
        .await?;
    if r.status() != 201 {
        bail!("create answered {}: {}", r.status(), r.text().await.unwrap_or_default());
    }
    let v: serde_json::Value = r.json().await?;
    let post_answered = t0.elapsed();
    let id = v["id"].as_str().context("no id")?.to_string();
    let environment_id = v["execution_environment_id"].as_str().context("no environment id")?.to_string();
    let sse = http.get(format!("{base}/api/v1/sessions/{id}/status")).bearer_auth(&token).send().await?;
    let mut st = StatusStream { body: Box::pin(sse.bytes_stream()), buf: String::new() };
    let (ready, at) = st.until("ready").await?;
    let post_to_ready = t0.elapsed();
    let mut push = Vec::new();
    if let Some(t) = parse_ms(&ready["ready_at"]) {
        push.push(at - t);
    }
    let r = http.post(format!("{base}/api/v1/sessions/{id}/start")).bearer_auth(&token).send().await?;
    if !r.status().is_success() {
        bail!("start answered {}", r.status());
    }
    let (active, at) = st.until("active").await?;
    if let Some(t) = parse_ms(&active["started_at"]) {
        push.push(at - t);
    }
    let t_end = Instant::now();
    let r = http.post(format!("{base}/api/v1/sessions/{id}/submit")).bearer_auth(&token).send().await?;
    if !r.status().is_success() {
        bail!("submit answered {}", r.status());
    }
    let (done, at) = st.until("terminated").await?;
    let end_to_released = t_end.elapsed();
    if let Some(t) = parse_ms(&done["resources_released_at"]) {
        push.push(at - t);
    }
    Ok(Sample { post_answered, post_to_ready, push, end_to_released, environment_id })
}

/// A server for a bench: in-process, on an ephemeral port, with one exam `bench` and its own data directory.
pub(crate) struct BenchServer {
    pub(crate) base: String,
    keys: std::sync::Arc<examroom_api::auth::TokenKeys>,
    settings: Settings,
    /// Taken by `stop`; still here when a bench fails half way, and then `Drop` cleans up.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _tmp: tempfile::TempDir,
}

impl BenchServer {
    pub(crate) async fn start(environment: &str, max_live_sessions: usize) -> Result<BenchServer> {
        Self::start_with(environment, max_live_sessions, None).await
    }

    /// The same, with a copy of the exam directory `sample` in the catalog too.
    pub(crate) async fn start_with(
        environment: &str,
        max_live_sessions: usize,
        sample: Option<&Path>,
    ) -> Result<BenchServer> {
        let tmp = tempfile::Builder::new().prefix("examroom-bench-").tempdir_in("/tmp")?;
        let exams = tmp.path().join("exams");
        if let Some(dir) = sample {
            let name = dir.file_name().context("the sample exam directory has no name")?;
            copy_dir(dir, &exams.join(name))?;
        }
        std::fs::create_dir_all(exams.join("bench"))?;
        std::fs::write(
            exams.join("bench/exam.toml"),
            format!("id = \"bench\"\ntitle = \"Bench\"\ndescription = \"no setup\"\nduration = \"30m\"\n[environment]\n{environment}"),
        )?;
        Self::serve(tmp, exams, max_live_sessions).await
    }

    /// A server whose catalog is a copy of the exam directory `sample` with its memory set to `memory`.
    async fn start_sample(sample: &Path, memory: &str, max_live_sessions: usize) -> Result<BenchServer> {
        let tmp = tempfile::Builder::new().prefix("examroom-bench-").tempdir_in("/tmp")?;
        let exams = tmp.path().join("exams");
        let name = sample.file_name().context("the sample exam directory has no name")?;
        copy_dir(sample, &exams.join(name))?;
        let toml = exams.join(name).join("exam.toml");
        let text = std::fs::read_to_string(&toml)?;
        let text: Vec<String> = text
            .lines()
            .map(|l| if l.trim_start().starts_with("memory =") { format!("memory = \"{memory}\"") } else { l.into() })
            .collect();
        std::fs::write(&toml, text.join("\n"))?;
        Self::serve(tmp, exams, max_live_sessions).await
    }

    /// Serves the catalog `exams` with a data directory in `tmp`.
    async fn serve(tmp: tempfile::TempDir, exams: std::path::PathBuf, max_live_sessions: usize) -> Result<BenchServer> {
        // The backends as `serve` would have them here (EXAMROOM_BACKENDS, EXAMROOM_DOCKER_*, the config file).
        let from_env = Settings::resolve(None, None, None, None, None)?;
        let settings = Settings {
            listen: "127.0.0.1:0".parse()?,
            data_dir: tmp.path().join("data"),
            exams,
            public_origin: None,
            secure_cookies: false,
            max_live_sessions,
            rs256_public_key: None,
            // A label per server: one round's environments, still being released, are never another's orphans.
            label: {
                static ROUND: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let round = ROUND.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                format!("bench-{}-{round}", std::process::id())
            },
            token_secret: None,
            memory_share: crate::capacity::DEFAULT_MEMORY_SHARE,
            host_memory: None,
            limits: examroom_api::connections::EdgeLimits::default(),
            // One candidate runs many sessions in a row here.
            max_creates_per_minute: 0,
            pool_max: max_live_sessions / 2,
            pool_fill_concurrency: 2,
            pool_lead: Duration::from_secs(15 * 60),
            concurrent_creates: None,
            system_profile: true,
            ports_listen: None,
            ports_url: None,
            database: None,
            tls_cert: None,
            tls_key: None,
            backends: from_env.backends,
            docker_socket: from_env.docker_socket,
            docker_shim: from_env.docker_shim,
            docker_unbounded_disk: from_env.docker_unbounded_disk,
        };
        let state = build(&settings).await?;
        let keys = state.keys.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(examroom_api::serve(listener, state, async {
            let _ = stop_rx.await;
        }));
        Ok(BenchServer { base, keys, settings, stop: Some(stop), server: Some(server), _tmp: tmp })
    }

    pub(crate) fn token(&self, user: &str) -> Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        Ok(self.keys.mint(&UserId::parse(user)?, Role::Candidate, Duration::from_secs(3600), now))
    }

    /// Stops the server and destroys whatever environments are left.
    pub(crate) async fn stop(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.destroy_all()
    }

    fn destroy_all(&self) -> Result<()> {
        let rt = examroom_runtime::sandbox::SandboxRuntime::new(examroom_runtime::sandbox::SandboxConfig::new(
            self.settings.data_dir.join("sandbox"),
            &self.settings.label,
        ))?;
        rt.destroy_all_blocking()?;
        if self.settings.backends.contains(&examroom_runtime::BackendKind::Docker) {
            // On a thread of its own: this also runs in `Drop`, inside the bench's async runtime.
            let settings = self.settings.clone();
            std::thread::spawn(move || -> Result<()> {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                rt.block_on(async {
                    use examroom_runtime::ExecutionRuntime;
                    let docker = crate::serve::docker_runtime(&settings)?;
                    for env in docker.list().await? {
                        docker.destroy(&env.id).await?;
                    }
                    Ok(())
                })
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the Docker clean-up panicked"))??;
        }
        Ok(())
    }
}

/// A bench that fails half way leaves nothing behind either: its data directory goes with it, so its environments
/// must go first.
impl Drop for BenchServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            if let Err(e) = self.destroy_all() {
                eprintln!("examroom bench: destroying the bench's environments: {e}");
            }
        }
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

/// Setup and grading on a sample exam: the time its setup scripts add to POST→ready (against the exam without
/// setup, one candidate at a time), and the time grading all its checks takes (from the submit to the stored
/// result, and the sum of the checks' own durations).
async fn setup_and_grading(exam_dir: &Path) -> Result<()> {
    let srv =
        BenchServer::start_with("base = \"host\"\nmemory = \"256M\"\npids = 256\ncpu = 1\n", 8, Some(exam_dir)).await?;
    let exam = exam_dir.file_name().and_then(|n| n.to_str()).context("exam name")?.to_string();
    let http = reqwest::Client::new();
    let (mut plain, mut with_setup, mut grading, mut checks_sum) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..5 {
        // A graded exam allows one attempt per candidate: one candidate per round.
        let token = srv.token(&format!("bench-grader-{round}"))?;
        for (id, out) in [("bench", &mut plain), (exam.as_str(), &mut with_setup)] {
            let t0 = Instant::now();
            let r = http
                .post(format!("{}/api/v1/sessions", srv.base))
                .bearer_auth(&token)
                .json(&serde_json::json!({"exam_id": id}))
                .send()
                .await?;
            if r.status() != 201 {
                bail!("create {id} answered {}: {}", r.status(), r.text().await.unwrap_or_default());
            }
            let v: serde_json::Value = r.json().await?;
            let sid = v["id"].as_str().context("no id")?.to_string();
            let sse = http.get(format!("{}/api/v1/sessions/{sid}/status", srv.base)).bearer_auth(&token).send().await?;
            let mut st = StatusStream { body: Box::pin(sse.bytes_stream()), buf: String::new() };
            st.until("ready").await?;
            out.push(t0.elapsed());
            http.post(format!("{}/api/v1/sessions/{sid}/start", srv.base)).bearer_auth(&token).send().await?;
            st.until("active").await?;
            let t1 = Instant::now();
            http.post(format!("{}/api/v1/sessions/{sid}/submit", srv.base)).bearer_auth(&token).send().await?;
            st.until("terminated").await?;
            if id != "bench" {
                grading.push(t1.elapsed());
                checks_sum.push(Duration::from_millis(srv_checks_ms(&http, &srv, &sid).await?));
            }
        }
    }
    for v in [&mut plain, &mut with_setup, &mut grading, &mut checks_sum] {
        v.sort();
    }
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    let (p, w) = (percentile(&plain, 50.0), percentile(&with_setup, 50.0));
    println!(
        "setup of {exam} adds to POST→ready: {} (median {} with setup, {} without; n=5)",
        ms(w.saturating_sub(p)),
        ms(w),
        ms(p)
    );
    println!(
        "grading all checks of {exam}: submit→terminated (freeze, checks, release) median {}; the checks themselves {} (n=5)",
        ms(percentile(&grading, 50.0)),
        ms(percentile(&checks_sum, 50.0))
    );
    srv.stop().await
}

/// The sum of a graded session's checks' durations, as the proctor sees them.
async fn srv_checks_ms(http: &reqwest::Client, srv: &BenchServer, sid: &str) -> Result<u64> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let proctor = srv.keys.mint(&UserId::parse("bench-proctor")?, Role::Proctor, Duration::from_secs(600), now);
    let r: serde_json::Value = http
        .get(format!("{}/api/v1/sessions/{sid}/result", srv.base))
        .bearer_auth(&proctor)
        .send()
        .await?
        .json()
        .await?;
    Ok(r["checks"].as_array().map(|c| c.iter().filter_map(|c| c["duration_ms"].as_u64()).sum()).unwrap_or(0))
}

/// `bench sessions --docker`: POST→ready on the Docker backend at 1, 10 and `users` candidates at once (a network
/// and a container each), then with one service per session. The Engine is `EXAMROOM_DOCKER_SOCKET` (default
/// /var/run/docker.sock), with the sample image examroom/debian:1 (`make images`, scripts/docker-images.sh).
pub async fn run_docker(users: usize) -> Result<()> {
    if std::env::var_os("EXAMROOM_LOG").is_some() {
        crate::serve::init_logs();
    }
    std::env::set_var("EXAMROOM_BACKENDS", "sandbox,docker");
    println!("examroom bench sessions --docker --users {users}");
    let plain = "backend = \"docker\"\nbase = \"image:examroom/debian:1\"\nmemory = \"256M\"\npids = 256\n";
    let service = format!(
        "{plain}[[environment.services]]\nname = \"svc\"\nimage = \"examroom/debian:1\"\nmemory = \"64M\"\n\
         command = [\"nc\", \"-lk\", \"7000\"]\nready_port = 7000\n"
    );
    let mut ns = vec![1, 10, users.max(1)];
    ns.dedup();
    for (what, environment) in [("", plain.to_string()), (" with one service", service)] {
        for &n in &ns {
            let srv = BenchServer::start(&environment, n * 2).await?;
            let http = reqwest::Client::builder().pool_max_idle_per_host(n).build()?;
            let barrier = Arc::new(tokio::sync::Barrier::new(n));
            let mut tasks = Vec::new();
            for i in 0..n {
                let token = srv.token(&format!("bench-user-{i}"))?;
                let (http, base, barrier) = (http.clone(), srv.base.clone(), barrier.clone());
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    one(http, base, token, "bench").await
                }));
            }
            let wall = Instant::now();
            let mut ready = Vec::new();
            for t in tasks {
                ready.push(t.await??.post_to_ready);
            }
            let all = wall.elapsed();
            ready.sort();
            let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
            println!(
                "docker{what}: POST→ready ({n} at once): p50 {}  p99 {}  max {}  | all ready and released in {}",
                ms(percentile(&ready, 50.0)),
                ms(percentile(&ready, 99.0)),
                ms(*ready.last().unwrap_or(&Duration::ZERO)),
                ms(all)
            );
            srv.stop().await?;
        }
    }
    Ok(())
}

pub async fn run(users: usize, exam: &Path) -> Result<()> {
    if std::env::var_os("EXAMROOM_LOG").is_some() {
        crate::serve::init_logs();
    }
    let srv = BenchServer::start("base = \"host\"\nmemory = \"256M\"\npids = 256\ncpu = \"500m\"\n", users.max(1) * 2)
        .await?;
    let base = srv.base.clone();
    println!("examroom bench sessions --users {users}");
    let http = reqwest::Client::builder().pool_max_idle_per_host(users).build()?;
    let barrier = Arc::new(tokio::sync::Barrier::new(users));
    let mut tasks = Vec::new();
    for i in 0..users {
        let token = srv.token(&format!("bench-user-{i}"))?;
        let (http, base, barrier) = (http.clone(), base.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            one(http, base, token, "bench").await
        }));
    }
    let wall = Instant::now();
    let mut ready = Vec::new();
    let mut push = Vec::new();
    let mut released = Vec::new();
    for t in tasks {
        let s = t.await??;
        ready.push(s.post_to_ready);
        push.extend(s.push.into_iter().map(|ms| Duration::from_millis(ms.max(0) as u64)));
        released.push(s.end_to_released);
    }
    let total = wall.elapsed();
    ready.sort();
    push.sort();
    released.sort();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!(
        "POST→ready ({users} at once): p50 {}  p99 {}  max {}  | all done in {}",
        ms(percentile(&ready, 50.0)),
        ms(percentile(&ready, 99.0)),
        ms(*ready.last().unwrap_or(&Duration::ZERO)),
        ms(total)
    );
    println!(
        "status push latency (n={}): p50 {}  p99 {}  max {}",
        push.len(),
        ms(percentile(&push, 50.0)),
        ms(percentile(&push, 99.0)),
        ms(*push.last().unwrap_or(&Duration::ZERO))
    );
    println!("end→released: p50 {}  p99 {}", ms(percentile(&released, 50.0)), ms(percentile(&released, 99.0)));
    srv.stop().await?;
    if exam.join("exam.toml").is_file() {
        setup_and_grading(exam).await?;
        pool_storm(exam, users).await?;
    } else {
        println!("(no sample exam at {}: setup, grading and pool figures skipped)", exam.display());
    }
    Ok(())
}

/// `users` candidates start the sample exam (with its setup scripts) at the same instant: first without a pool, then
/// with a warm pool of `users` prepared environments, announced through the API (`POST /api/v1/pools/{exam}/schedule`).
/// Figures: POST→ready for each, how long the pool took to fill, and how many starts took a prepared environment. The
/// exam's memory is set to 256 MiB in the copy so that all of them fit this machine's admission budget. Each candidate
/// is distinct (a graded exam allows one attempt each) and the create rate is off.
async fn pool_storm(exam_dir: &Path, users: usize) -> Result<()> {
    let exam = exam_dir.file_name().and_then(|n| n.to_str()).context("exam name")?.to_string();
    let srv = BenchServer::start_sample(exam_dir, "256M", users * 2 + 4).await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(users).build()?;
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);

    let storm = |prefix: &'static str| {
        let (http, base, exam) = (http.clone(), srv.base.clone(), exam.clone());
        let tokens: Result<Vec<String>> = (0..users).map(|i| srv.token(&format!("{prefix}-{i}"))).collect();
        async move {
            let barrier = Arc::new(tokio::sync::Barrier::new(users));
            let mut tasks = Vec::new();
            for token in tokens? {
                let (http, base, barrier, exam) = (http.clone(), base.clone(), barrier.clone(), exam.clone());
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    one(http, base, token, &exam).await
                }));
            }
            let mut samples = Vec::new();
            for t in tasks {
                samples.push(t.await??);
            }
            Ok::<_, anyhow::Error>(samples)
        }
    };

    let cold = storm("cold").await?;
    let mut ready: Vec<Duration> = cold.iter().map(|s| s.post_to_ready).collect();
    ready.sort();
    println!(
        "{exam}, {users} at once, no pool: POST→ready p50 {}  p99 {}  max {}",
        ms(percentile(&ready, 50.0)),
        ms(percentile(&ready, 99.0)),
        ms(*ready.last().unwrap_or(&Duration::ZERO))
    );

    // A proctor announces the candidates five minutes ahead; the pool fills at once (its lead is longer).
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let proctor = srv.keys.mint(&UserId::parse("bench-proctor")?, Role::Proctor, Duration::from_secs(3600), now);
    let at = time::OffsetDateTime::now_utc() + time::Duration::minutes(5);
    let at = at.format(&time::format_description::well_known::Rfc3339)?;
    let t_fill = Instant::now();
    let r = http
        .post(format!("{}/api/v1/pools/{exam}/schedule", srv.base))
        .bearer_auth(&proctor)
        .json(&serde_json::json!({ "candidates": users, "at": at }))
        .send()
        .await?;
    if r.status() != 201 {
        bail!("schedule answered {}: {}", r.status(), r.text().await.unwrap_or_default());
    }
    let pooled: std::collections::HashSet<String> = loop {
        let v: serde_json::Value =
            http.get(format!("{}/api/v1/pools", srv.base)).bearer_auth(&proctor).send().await?.json().await?;
        let pool = v["pools"].as_array().and_then(|p| p.iter().find(|p| p["exam_id"] == exam.as_str()).cloned());
        let envs = pool.as_ref().and_then(|p| p["environments"].as_array().cloned()).unwrap_or_default();
        let ready: Vec<String> = envs
            .iter()
            .filter(|e| e["state"] == "ready")
            .filter_map(|e| e["environment_id"].as_str().map(String::from))
            .collect();
        if ready.len() >= users && envs.len() == ready.len() {
            break ready.into_iter().collect();
        }
        if t_fill.elapsed() > Duration::from_secs(600) {
            bail!("the pool did not fill within 10 minutes: {v}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let filled = t_fill.elapsed();
    // Let the last fill's bookkeeping settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let warm = storm("warm").await?;
    let claimed = warm.iter().filter(|s| pooled.contains(&s.environment_id)).count();
    let mut ready: Vec<Duration> = warm.iter().map(|s| s.post_to_ready).collect();
    ready.sort();
    let mut answered: Vec<Duration> = warm.iter().map(|s| s.post_answered).collect();
    answered.sort();
    println!(
        "{exam}, {users} at once, warm pool of {users} (filled in {:.1} s, {:.1} environments/s): POST→ready p50 {}  p99 {}  max {}  | POST answered p50 {}  p99 {}  | {claimed}/{users} took a prepared environment",
        filled.as_secs_f64(),
        users as f64 / filled.as_secs_f64(),
        ms(percentile(&ready, 50.0)),
        ms(percentile(&ready, 99.0)),
        ms(*ready.last().unwrap_or(&Duration::ZERO)),
        ms(percentile(&answered, 50.0)),
        ms(percentile(&answered, 99.0)),
    );
    srv.stop().await
}
