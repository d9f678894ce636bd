//! Warm pools through the HTTP API, on a real server (and, for the restart, the real binary): a claim takes an
//! environment whose setup already ran and runs only the claim-time setup, for the claimant; an empty pool falls back
//! to making one; racing claims never share an environment; an announcement fills the pool ahead of time; pooled
//! environments are not orphans, a lost one is replaced, an old one expires; a candidate's own create takes room from
//! the pools; a restart keeps the pool and a changed exam drains it. Every test ends with the leak check.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use examroom_core::{EnvironmentId, Role};
use examroom_runtime::sandbox::{SandboxConfig, SandboxRuntime};
use examroom_runtime::{ExecRequest, ExecutionRuntime};
use examroom_sessions::{PoolSettings, ServiceConfig};
use serde_json::{json, Value};

use crate::server::{
    create, events, sid, state, wait_state, write_exam, Client, Options, RealServer, TestServer, SESSIONS,
};

const READY: Duration = Duration::from_secs(60);
const POOLS: &str = "/api/v1/pools";

/// The prepare-time setup: it runs before any candidate exists, so it sees no candidate.
const PREPARE: &str = "#!/bin/sh\nset -e\ntest -z \"$EXAMROOM_USER_ID\" && test -z \"$EXAMROOM_SESSION_ID\"\n\
                       echo prepared > /root/prepared.txt\n";
/// The claim-time setup: it writes who claimed the environment, once.
const CLAIM: &str = "#!/bin/sh\nset -e\ntest ! -e /root/whoami\n\
                     printf '%s %s\\n' \"$EXAMROOM_USER_ID\" \"$EXAMROOM_SESSION_ID\" > /root/whoami\n";

/// An exam with a prepare-time and a claim-time setup script, and `extra` (a `[pool]` section, say).
fn pool_exam(catalog: &Path, id: &str, extra: &str, prepare: &str) {
    let dir = catalog.join(id);
    std::fs::create_dir_all(dir.join("setup")).unwrap();
    std::fs::write(dir.join("setup/prepare.sh"), prepare).unwrap();
    std::fs::write(dir.join("setup/claim.sh"), CLAIM).unwrap();
    std::fs::write(dir.join("check.sh"), "#!/bin/sh\nexit 1\n").unwrap();
    let body = format!(
        "title = \"{id}\"\ndescription = \"d\"\nduration = \"5m\"\nattempts = \"unlimited\"\n\
         [environment]\nbase = \"host\"\nmemory = \"128M\"\ncpu = \"500m\"\n{extra}\n\
         [[tasks]]\nid = \"who\"\ntitle = \"Who\"\nprompt = \"p\"\nsetup = \"setup/claim.sh\"\nsetup_at = \"claim\"\n\
         [[tasks.checks]]\nid = \"c\"\ndescription = \"d\"\nscript = \"check.sh\"\n\
         [[tasks]]\nid = \"prep\"\ntitle = \"Prep\"\nprompt = \"p\"\nsetup = \"setup/prepare.sh\"\n\
         [[tasks.checks]]\nid = \"c\"\ndescription = \"d\"\nscript = \"check.sh\"\n"
    );
    write_exam(catalog, id, &body);
}

/// Pools of 1 and 2, and two exams without a pool.
fn exams(catalog: &Path) {
    pool_exam(catalog, "pooled", "[pool]\nsize = 1", PREPARE);
    pool_exam(catalog, "pair", "[pool]\nsize = 2", PREPARE);
    pool_exam(catalog, "plain", "", PREPARE);
    pool_exam(catalog, "announced", "", PREPARE);
}

/// A pool of one whose environments may wait 10 s at most.
fn short_lived(catalog: &Path) {
    pool_exam(catalog, "short-lived", "[pool]\nsize = 1\nmax_age = \"10s\"", PREPARE);
}

fn options(max_live_sessions: usize) -> Options {
    Options {
        exams,
        service: ServiceConfig {
            max_live_sessions,
            max_creates_per_minute: 0,
            pool: PoolSettings { interval: Duration::from_millis(300), ..PoolSettings::default() },
            ..ServiceConfig::default()
        },
        ..Options::default()
    }
}

/// The pool of `exam` as a proctor sees it (`Null` when the exam has none).
async fn pool(c: &Client, base: &str, proctor: &str, exam: &str) -> Value {
    let a = c.get(&format!("{base}{POOLS}"), proctor).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["pools"].as_array().unwrap().iter().find(|p| p["exam_id"] == exam).cloned().unwrap_or(Value::Null)
}

/// The ids of the environments in `p` that are `ready`.
fn ready_ids(p: &Value) -> Vec<String> {
    p["environments"]
        .as_array()
        .map(|envs| {
            envs.iter()
                .filter(|e| e["state"] == "ready")
                .map(|e| e["environment_id"].as_str().unwrap().into())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the pool of `exam` holds exactly `n` ready environments and nothing else; returns their ids.
async fn wait_pool(c: &Client, base: &str, proctor: &str, exam: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + READY;
    loop {
        let p = pool(c, base, proctor, exam).await;
        let ids = ready_ids(&p);
        let all = p["environments"].as_array().map_or(0, Vec::len);
        if ids.len() == n && all == n {
            // The server's own view follows the store within a pass.
            tokio::time::sleep(Duration::from_millis(400)).await;
            return ids;
        }
        assert!(Instant::now() < deadline, "the pool of {exam} did not reach {n} ready: {p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn runtime(s: &TestServer) -> SandboxRuntime {
    let mut cfg = SandboxConfig::new(s.sandbox_dir(), &s.label);
    cfg.shim_program = crate::common::shim_program();
    SandboxRuntime::new(cfg).unwrap()
}

async fn sh(rt: &SandboxRuntime, env: &str, script: &str) -> (Option<i32>, String) {
    let env: EnvironmentId = env.parse().unwrap();
    let out = rt.exec(&env, ExecRequest::shell(script)).await.unwrap();
    (out.exit_code, out.stdout_text())
}

fn env_of(v: &Value) -> String {
    v["execution_environment_id"].as_str().unwrap().to_string()
}

/// The reasons of a session's progress events, in order.
fn steps(events: &[Value]) -> Vec<String> {
    events.iter().filter(|e| e["kind"] == "progress").map(|e| e["reason"].as_str().unwrap().to_string()).collect()
}

fn transitions(events: &[Value]) -> Vec<String> {
    events.iter().filter(|e| e["kind"] == "transition").map(|e| e["to"].as_str().unwrap_or("").to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_takes_a_prepared_environment_and_runs_only_the_claim_time_setup() {
    let s = TestServer::start_with(options(20)).await;
    let c = Client::default();
    let proctor = s.proctor("pat");
    let rt = runtime(&s);
    let pooled = wait_pool(&c, &s.base, &proctor, "pooled", 1).await.remove(0);
    // Prepared ahead: the prepare-time setup ran, nothing of any candidate is there.
    assert_eq!(sh(&rt, &pooled, "cat /root/prepared.txt").await, (Some(0), "prepared\n".into()));
    assert_eq!(sh(&rt, &pooled, "test -e /root/whoami").await.0, Some(1), "a pooled environment names no one");

    let alice = s.candidate("alice");
    let v = create(&c, &s, &alice, "pooled").await;
    let id = sid(&v);
    assert_eq!(env_of(&v), pooled, "the session's environment is the pooled one from the start");
    let ready = wait_state(&c, &s, &alice, &id, READY, "ready").await;
    assert_eq!(env_of(&ready), pooled);
    // Its trail: created → provisioning → ready, the steps of a claim, no create.
    let ev = events(&c, &s, &alice, &id).await;
    assert_eq!(transitions(&ev), ["created", "provisioning", "ready"], "{ev:?}");
    // The first step, stored with the transition, says it took a prepared environment; no environment was made.
    let provisioning = ev.iter().find(|e| e["to"] == "provisioning").unwrap();
    assert_eq!(
        provisioning["data"]["progress"],
        json!({ "step": 1, "total": 3, "message": "Taking an environment prepared for you ahead of time" })
    );
    assert_eq!(steps(&ev), ["Preparing task 1 of 1", "Checking that your terminal answers"], "{ev:?}");
    assert!(!serde_json::to_string(&ev).unwrap().contains("Creating your isolated environment"), "{ev:?}");
    // The claim-time setup ran once, for alice, in the prepared environment.
    assert_eq!(
        sh(&rt, &pooled, "cat /root/whoami /root/prepared.txt").await,
        (Some(0), format!("alice {id}\nprepared\n"))
    );

    // The pool refills with another environment; the claimed one never returns to it.
    let refill = wait_pool(&c, &s.base, &proctor, "pooled", 1).await;
    assert_ne!(refill[0], pooled);
    let a = c.post(&s.url(&format!("{SESSIONS}/{id}/start")), &alice, json!({})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = c.post(&s.url(&format!("{SESSIONS}/{id}/submit")), &alice, json!({})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    wait_state(&c, &s, &alice, &id, READY, "terminated").await;
    let p = pool(&c, &s.base, &proctor, "pooled").await;
    assert_eq!(ready_ids(&p), refill, "{p}");
    assert!(
        rt.status(&pooled.parse().unwrap()).await.is_err(),
        "the claimed environment was destroyed with its session"
    );
    s.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_prepared_environment_a_start_makes_one_and_runs_every_setup() {
    let s = TestServer::start_with(options(20)).await;
    let c = Client::default();
    let rt = runtime(&s);
    // An exam without a pool: the fresh path, the claim-time setup after the prepare-time one, for the candidate.
    let bob = s.candidate("bob");
    let v = create(&c, &s, &bob, "plain").await;
    let id = sid(&v);
    wait_state(&c, &s, &bob, &id, READY, "ready").await;
    let ev = events(&c, &s, &bob, &id).await;
    assert_eq!(transitions(&ev), ["created", "provisioning", "ready"]);
    let provisioning = ev.iter().find(|e| e["to"] == "provisioning").unwrap();
    assert_eq!(provisioning["data"]["progress"]["message"], "Creating your isolated environment");
    assert_eq!(
        steps(&ev),
        ["Preparing task 1 of 2", "Preparing task 2 of 2", "Checking that your terminal answers"],
        "{ev:?}"
    );
    assert_eq!(
        sh(&rt, &env_of(&v), "cat /root/prepared.txt /root/whoami").await,
        (Some(0), format!("prepared\nbob {id}\n"))
    );
    let p = pool(&c, &s.base, &s.proctor("pat"), "plain").await;
    assert!(p.is_null(), "an exam without a pool is not listed: {p}");
    s.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_claims_never_share_an_environment() {
    let s = TestServer::start_with(options(30)).await;
    let c = Client::default();
    let proctor = s.proctor("pat");
    let rt = runtime(&s);
    let pooled: HashSet<String> = wait_pool(&c, &s.base, &proctor, "pair", 2).await.into_iter().collect();
    // Six candidates at once for two prepared environments.
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let (base, token) = (s.base.clone(), s.candidate(&format!("racer-{i}")));
            tokio::spawn(async move {
                let c = Client::default();
                let a = c.post(&format!("{base}{SESSIONS}"), &token, json!({ "exam_id": "pair" })).await;
                assert_eq!(a.status, 201, "{}", a.text);
                (token, a.body)
            })
        })
        .collect();
    let mut sessions = Vec::new();
    for t in tasks {
        sessions.push(t.await.unwrap());
    }
    let envs: HashSet<String> = sessions.iter().map(|(_, v)| env_of(v)).collect();
    assert_eq!(envs.len(), 6, "every session has its own environment");
    assert_eq!(envs.intersection(&pooled).count(), 2, "each prepared environment went to exactly one session");
    // Every one became ready with the claim-time setup run once, for its own candidate.
    for (i, (token, v)) in sessions.iter().enumerate() {
        let id = sid(v);
        wait_state(&c, &s, token, &id, READY, "ready").await;
        let who = sh(&rt, &env_of(v), "cat /root/whoami").await;
        assert_eq!(who, (Some(0), format!("racer-{i} {id}\n")));
    }
    s.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_announcement_fills_the_pool_ahead_of_the_start() {
    let s = TestServer::start_with(options(20)).await;
    let c = Client::default();
    let proctor = s.proctor("pat");
    let url = s.url(&format!("{POOLS}/announced/schedule"));
    let soon = time::OffsetDateTime::now_utc() + time::Duration::minutes(10);
    let soon = soon.format(&time::format_description::well_known::Rfc3339).unwrap();
    // Refusals first.
    let a = c.post(&url, &s.candidate("carl"), json!({ "candidates": 2, "at": soon })).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (403, Some("forbidden")), "{}", a.text);
    let a = c
        .post(&s.url(&format!("{POOLS}/no-such-exam/schedule")), &proctor, json!({ "candidates": 2, "at": soon }))
        .await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (404, Some("exam_not_found")), "{}", a.text);
    for bad in [
        json!({ "candidates": 0, "at": soon }),
        json!({ "candidates": 2, "at": "tomorrow at nine" }),
        json!({ "candidates": 2, "at": "2001-01-01T09:00:00Z" }),
        json!({ "candidates": 2 }),
        json!({ "candidates": 2, "at": soon, "extra": true }),
    ] {
        let a = c.post(&url, &proctor, bad.clone()).await;
        assert_eq!((a.status, a.body["error"]["code"].as_str()), (400, Some("invalid_request")), "{bad}: {}", a.text);
    }
    // Two days ahead: recorded, nothing fills yet.
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(2);
    let later = later.format(&time::format_description::well_known::Rfc3339).unwrap();
    let far =
        c.post(&s.url(&format!("{POOLS}/plain/schedule")), &proctor, json!({ "candidates": 3, "at": later })).await;
    assert_eq!(far.status, 201, "{}", far.text);
    assert!(far.body["fill_from"].as_str().unwrap() < later.as_str(), "{}", far.text);
    // Ten minutes ahead: the pool fills now, for two.
    let a = c.post(&url, &proctor, json!({ "candidates": 2, "at": soon })).await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!((a.body["candidates"].as_u64(), a.body["actor"].as_str()), (Some(2), Some("proctor:pat")));
    assert!(a.headers.get("location").is_some());
    let pooled: HashSet<String> = wait_pool(&c, &s.base, &proctor, "announced", 2).await.into_iter().collect();
    let p = pool(&c, &s.base, &proctor, "announced").await;
    assert_eq!((p["size"].as_u64(), p["target"].as_u64()), (Some(0), Some(2)), "{p}");
    assert_eq!(p["schedules"].as_array().unwrap().len(), 1, "{p}");
    let p = pool(&c, &s.base, &proctor, "plain").await;
    assert_eq!((p["target"].as_u64(), p["ready"].as_u64()), (Some(0), Some(0)), "not yet: {p}");
    // The two announced candidates take them; the pool does not refill beyond the announcement.
    for who in ["dana", "eli"] {
        let t = s.candidate(who);
        let v = create(&c, &s, &t, "announced").await;
        assert!(pooled.contains(&env_of(&v)), "{who} took a prepared environment: {v}");
        wait_state(&c, &s, &t, &sid(&v), READY, "ready").await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let p = pool(&c, &s.base, &proctor, "announced").await;
    assert_eq!((p["target"].as_u64(), p["ready"].as_u64(), p["filling"].as_u64()), (Some(0), Some(0), Some(0)), "{p}");
    // A cancelled announcement is gone; cancelling it again is not found.
    let cancel = s.url(&format!("{POOLS}/plain/schedule/{}", far.body["id"]));
    let a = c.send(c.http.delete(&cancel).bearer_auth(&proctor)).await;
    assert_eq!(a.status, 204, "{}", a.text);
    let a = c.send(c.http.delete(&cancel).bearer_auth(&proctor)).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (404, Some("not_found")), "{}", a.text);
    assert!(pool(&c, &s.base, &proctor, "plain").await.is_null());
    let a = c.get(&s.url(POOLS), &s.candidate("dana")).await;
    assert_eq!(a.status, 403);
    s.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pooled_environments_are_not_orphans_and_a_lost_one_is_replaced() {
    let s = TestServer::start_with(options(20)).await;
    let c = Client::default();
    let proctor = s.proctor("pat");
    let rt = runtime(&s);
    let pair = wait_pool(&c, &s.base, &proctor, "pair", 2).await;
    let pooled = wait_pool(&c, &s.base, &proctor, "pooled", 1).await;
    let report = s.state.svc.reconcile_once().await;
    assert_eq!((report.orphans, report.pooled, report.pooled_lost), (0, 3, 0), "{report:?}");
    for env in pair.iter().chain(&pooled) {
        assert_eq!(sh(&rt, env, "true").await.0, Some(0), "{env} still runs");
    }
    // One dies: the reconciler retires it and the pool makes another.
    let lost = &pair[0];
    let shim = shim_pid(&s.sandbox_dir().join(&s.label).join(lost));
    // SAFETY: kill has no memory preconditions; the pid is the shim of an environment of this test.
    assert_eq!(unsafe { libc::kill(shim, libc::SIGKILL) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let report = s.state.svc.reconcile_once().await;
        if report.pooled_lost == 1 {
            assert_eq!(report.orphans, 0, "{report:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the lost environment was not noticed: {report:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Retired (in the background) and replaced; the other one stays.
    let deadline = Instant::now() + READY;
    let now = loop {
        let now: HashSet<String> = wait_pool(&c, &s.base, &proctor, "pair", 2).await.into_iter().collect();
        if !now.contains(lost) {
            break now;
        }
        assert!(Instant::now() < deadline, "the lost environment is still in the pool: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(now.contains(&pair[1]), "{now:?} after {pair:?} lost {lost}");
    s.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_environment_older_than_max_age_is_replaced() {
    let s = TestServer::start_with(Options { exams: short_lived, ..options(20) }).await;
    let c = Client::default();
    let proctor = s.proctor("pat");
    let rt = runtime(&s);
    let first = wait_pool(&c, &s.base, &proctor, "short-lived", 1).await.remove(0);
    let p = pool(&c, &s.base, &proctor, "short-lived").await;
    assert_eq!(p["max_age_seconds"].as_u64(), Some(10), "{p}");
    // max_age is 10 s: within about 10 s more it has been replaced, and destroyed.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let ids = ready_ids(&pool(&c, &s.base, &proctor, "short-lived").await);
        if ids.len() == 1 && ids[0] != first {
            break;
        }
        assert!(Instant::now() < deadline, "not replaced: {ids:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while rt.status(&first.parse().unwrap()).await.is_ok() {
        assert!(Instant::now() < deadline, "the expired environment was not destroyed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_candidates_own_create_takes_room_from_the_pools() {
    // Room for 5 live environments: the pools (1 + 2 wanted) fill while a slot is left for a candidate.
    let s = TestServer::start_with(options(5)).await;
    let c = Client::default();
    let proctor = s.proctor("pat");
    let deadline = Instant::now() + READY;
    let held = loop {
        let a = c.get(&s.url(POOLS), &proctor).await;
        let held: u64 = a.body["pools"].as_array().unwrap().iter().map(|p| p["ready"].as_u64().unwrap()).sum();
        let filling: u64 = a.body["pools"].as_array().unwrap().iter().map(|p| p["filling"].as_u64().unwrap()).sum();
        if held == 3 && filling == 0 {
            break held;
        }
        assert!(Instant::now() < deadline, "the pools did not fill to 3: {}", a.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let a = c.get(&s.url(POOLS), &proctor).await;
    let now: u64 =
        a.body["pools"].as_array().unwrap().iter().map(|p| p["environments"].as_array().unwrap().len() as u64).sum();
    assert_eq!(now, held, "{}", a.text);
    // Five candidates of an exam without a pool: every one is admitted, pooled environments making room.
    let mut tokens = Vec::new();
    for i in 0..5 {
        let t = s.candidate(&format!("walk-in-{i}"));
        let v = create(&c, &s, &t, "plain").await;
        tokens.push((t, sid(&v)));
    }
    for (t, id) in &tokens {
        wait_state(&c, &s, t, id, READY, "ready").await;
    }
    // The sixth finds no room at all.
    let a = c.post(&s.url(SESSIONS), &s.candidate("walk-in-5"), json!({ "exam_id": "plain" })).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (503, Some("capacity_exhausted")), "{}", a.text);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = c.get(&s.url(POOLS), &proctor).await;
        let left: usize =
            a.body["pools"].as_array().unwrap().iter().map(|p| p["environments"].as_array().unwrap().len()).sum();
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "evicted environments were not destroyed: {}", a.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.teardown().await;
}

/// The shim's pid, from the environment's `state.json`.
fn shim_pid(env_dir: &Path) -> i32 {
    let text = std::fs::read_to_string(env_dir.join("state.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["shim_pid"].as_i64().unwrap() as i32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_keeps_the_pool_and_a_changed_exam_drains_it() {
    crate::common::require_root();
    let tmp = tempfile::Builder::new().prefix("er-pool-").tempdir_in("/tmp").unwrap();
    let exams_dir = tmp.path().join("exams");
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&exams_dir).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    pool_exam(&exams_dir, "pooled", "[pool]\nsize = 1", PREPARE);
    let mut srv = RealServer {
        child: None,
        data: tmp.path().join("data"),
        exams: exams_dir.clone(),
        logs,
        label: crate::common::unique_label("pool"),
        secret: "pool-test-secret-0123456789-abcdefghijkl".into(),
        base: String::new(),
        runs: 0,
    };
    let c = Client::default();
    let proctor = srv.token("pat", Role::Proctor);
    srv.start().await;
    let first = wait_pool(&c, &srv.base, &proctor, "pooled", 1).await.remove(0);
    let env_dir = srv.sandbox_dir().join(&srv.label).join(&first);
    assert!(env_dir.is_dir());
    assert!(srv.terminate().await.success());

    // Restarted: the same prepared environment, found again, neither an orphan nor made again.
    srv.start().await;
    let again = wait_pool(&c, &srv.base, &proctor, "pooled", 1).await;
    assert_eq!(again, std::slice::from_ref(&first));
    let metrics = c.send(c.http.get(srv.url("/metrics"))).await.text;
    let line = |name: &str| metrics.lines().find(|l| l.starts_with(name)).unwrap_or("").to_string();
    assert_eq!(line("examroom_orphan_environments "), "examroom_orphan_environments 0", "{metrics}");
    assert_eq!(line("examroom_reconcile_pooled_environments "), "examroom_reconcile_pooled_environments 1");
    assert!(line("examroom_pool_environments{").contains("exam=\"pooled\""), "{metrics}");
    assert!(metrics.contains("examroom_pool_target{exam=\"pooled\"} 1"), "{metrics}");
    // A claim after the restart takes it.
    let alice = srv.token("alice", Role::Candidate);
    let a = c.post(&srv.url(SESSIONS), &alice, json!({ "exam_id": "pooled" })).await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(env_of(&a.body), first);
    let second = loop {
        let ids = wait_pool(&c, &srv.base, &proctor, "pooled", 1).await;
        if ids[0] != first {
            break ids[0].clone();
        }
    };
    let metrics = c.send(c.http.get(srv.url("/metrics"))).await.text;
    assert!(metrics.contains("examroom_pool_claims_total{exam=\"pooled\"} 1"), "{metrics}");
    assert!(metrics.contains("examroom_pool_fills_total{exam=\"pooled\",outcome=\"ready\"}"), "{metrics}");
    assert!(metrics.contains("examroom_pool_fill_seconds_bucket{exam=\"pooled\""), "{metrics}");
    assert!(srv.terminate().await.success());

    // The exam's prepare-time setup changes: the prepared environment is out of date, destroyed and replaced.
    std::fs::write(exams_dir.join("pooled/setup/prepare.sh"), format!("{PREPARE}echo v2 >> /root/prepared.txt\n"))
        .unwrap();
    srv.start().await;
    let third = loop {
        let ids = wait_pool(&c, &srv.base, &proctor, "pooled", 1).await;
        if ids[0] != second {
            break ids[0].clone();
        }
    };
    let old_dir = srv.sandbox_dir().join(&srv.label).join(&second);
    let deadline = Instant::now() + Duration::from_secs(10);
    while old_dir.exists() {
        assert!(Instant::now() < deadline, "the out-of-date environment was not destroyed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = c.send(c.http.get(srv.url("/metrics"))).await.text;
    assert!(metrics.contains("examroom_pool_retired_total{exam=\"pooled\",reason=\"exam_changed\"} 1"), "{metrics}");
    // The new one has the new setup.
    let bob = srv.token("bob", Role::Candidate);
    let b = c.post(&srv.url(SESSIONS), &bob, json!({ "exam_id": "pooled" })).await;
    assert_eq!((b.status, env_of(&b.body)), (201, third.clone()), "{}", b.text);
    let rt = SandboxRuntime::new(SandboxConfig::new(srv.sandbox_dir(), &srv.label)).unwrap();
    let env: EnvironmentId = third.parse().unwrap();
    let deadline = Instant::now() + READY;
    loop {
        let v = c.get(&srv.url(&format!("{SESSIONS}/{}", sid(&b.body))), &bob).await;
        if state(&v.body) == "ready" {
            break;
        }
        assert!(Instant::now() < deadline, "not ready: {}", v.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = rt.exec(&env, ExecRequest::shell("cat /root/prepared.txt")).await.unwrap();
    assert_eq!(out.stdout_text(), "prepared\nv2\n");
    srv.kill();
    srv.destroy_all();
    crate::common::assert_no_leaks(&srv.label, &srv.sandbox_dir()).await;
}

/// A pool whose prepare-time setup fails.
fn broken(catalog: &Path) {
    pool_exam(catalog, "broken-pool", "[pool]\nsize = 2", "#!/bin/sh\necho 'no widget here' >&2\nexit 3\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pool_whose_setup_fails_pauses_and_leaves_nothing() {
    let s = TestServer::start_with(Options { exams: broken, ..options(20) }).await;
    let c = Client::default();
    let proctor = s.proctor("pat");
    // The first fills fail; the pool then pauses (5 s, doubling), holding nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let p = pool(&c, &s.base, &proctor, "broken-pool").await;
    assert_eq!((p["target"].as_u64(), p["ready"].as_u64(), p["filling"].as_u64()), (Some(2), Some(0), Some(0)), "{p}");
    let left: Vec<_> = std::fs::read_dir(s.sandbox_dir().join(&s.label)).unwrap().flatten().collect();
    assert!(left.is_empty(), "a failed fill left {left:?}");
    assert_eq!(s.state.svc.admitted_memory().0, 0, "a failed fill gave its memory back");
    // A candidate's start takes the ordinary path and fails as it would without a pool, naming the step.
    let t = s.candidate("fay");
    let v = create(&c, &s, &t, "broken-pool").await;
    let v = wait_state(&c, &s, &t, &sid(&v), READY, "failed").await;
    assert_eq!(v["failure"]["code"], "provisioning_failed", "{v}");
    let p = c.get(&s.url(&format!("{SESSIONS}/{}", sid(&v))), &proctor).await;
    let detail = p.body["failure"]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("status 3") && detail.contains("no widget here"), "{detail}");
    s.teardown().await;
}

/// A pool of one for an exam without claim-time setup.
fn instant(catalog: &Path) {
    let dir = catalog.join("instant");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("prepare.sh"), PREPARE).unwrap();
    std::fs::write(dir.join("check.sh"), "#!/bin/sh\nexit 1\n").unwrap();
    write_exam(
        catalog,
        "instant",
        "title = \"Instant\"\ndescription = \"d\"\nduration = \"5m\"\n[environment]\nbase = \"host\"\nmemory = \"128M\"\n\
         [pool]\nsize = 1\n[[tasks]]\nid = \"prep\"\ntitle = \"Prep\"\nprompt = \"p\"\nsetup = \"prepare.sh\"\n\
         [[tasks.checks]]\nid = \"c\"\ndescription = \"d\"\nscript = \"check.sh\"\n",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_without_claim_time_setup_is_ready_in_one_step() {
    let s = TestServer::start_with(Options { exams: instant, ..options(20) }).await;
    let c = Client::default();
    let proctor = s.proctor("pat");
    let rt = runtime(&s);
    let pooled = wait_pool(&c, &s.base, &proctor, "instant", 1).await.remove(0);
    let gil = s.candidate("gil");
    let v = create(&c, &s, &gil, "instant").await;
    assert_eq!((state(&v), env_of(&v)), ("created", pooled.clone()));
    let id = sid(&v);
    wait_state(&c, &s, &gil, &id, READY, "ready").await;
    // Still every transition, each with its event, in order; no step beyond taking the environment.
    let ev = events(&c, &s, &gil, &id).await;
    assert_eq!(transitions(&ev), ["created", "provisioning", "ready"], "{ev:?}");
    let provisioning = ev.iter().find(|e| e["to"] == "provisioning").unwrap();
    assert_eq!(
        provisioning["data"]["progress"],
        json!({ "step": 1, "total": 1, "message": "Taking an environment prepared for you ahead of time" })
    );
    assert!(steps(&ev).is_empty(), "{ev:?}");
    assert_eq!(sh(&rt, &pooled, "cat /root/prepared.txt").await, (Some(0), "prepared\n".into()));
    s.teardown().await;
}
