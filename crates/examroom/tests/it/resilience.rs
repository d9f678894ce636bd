//! Faults injected while sessions are live (issue 16): a killed shim or init fails its session at once (not at the
//! next periodic reconcile, which here is left at its default 30 s), releases it, and touches no other session.

use std::time::{Duration, Instant};

use examroom_runtime::ExecutionRuntime;

use crate::server::{create, session_path, sid, wait_state, Client, TestServer};

const READY: Duration = Duration::from_secs(60);
/// The spec's floor is 5 s; the notice usually takes well under one.
const LOST_WITHIN: Duration = Duration::from_secs(5);

fn state_of(s: &TestServer, env: &str) -> serde_json::Value {
    let path = s.sandbox_dir().join(&s.label).join(env).join("state.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

async fn lost_fast(which: &str) {
    let s = TestServer::start().await;
    let c = Client::default();
    let (alice, bob) = (s.candidate("alice"), s.candidate("bob"));
    let a = sid(&create(&c, &s, &alice, "quick").await);
    let b = sid(&create(&c, &s, &bob, "quick").await);
    let va = wait_state(&c, &s, &alice, &a, READY, "ready").await;
    wait_state(&c, &s, &bob, &b, READY, "ready").await;
    let env = va["execution_environment_id"].as_str().unwrap().to_string();
    let st = state_of(&s, &env);
    let pid = st[which].as_i64().unwrap_or_else(|| panic!("no {which} in {st}")) as i32;
    let t0 = Instant::now();
    // SAFETY: signalling the environment's own process, found in its state file.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let v = wait_state(&c, &s, &alice, &a, LOST_WITHIN, "failed").await;
    let took = t0.elapsed();
    assert_eq!(v["failure"]["code"], "environment_lost", "{v}");
    assert!(took < LOST_WITHIN, "{which} killed: failed after {took:?}");
    // Released, and said so.
    let released = wait_for_release(&c, &s, &alice, &a).await;
    assert!(released, "the lost session's resources were released");
    // The other session carries on.
    let vb = c.get(&s.url(&session_path(&b)), &bob).await;
    assert_eq!(vb.body["state"], "ready", "{}", vb.text);
    let out = s.runtime().status(&vb.body["execution_environment_id"].as_str().unwrap().parse().unwrap()).await;
    assert!(matches!(out.map(|st| st.state), Ok(examroom_runtime::EnvironmentState::Running)));
    s.teardown().await;
}

async fn wait_for_release(c: &Client, s: &TestServer, token: &str, id: &str) -> bool {
    for _ in 0..200 {
        let v = c.get(&s.url(&session_path(id)), token).await;
        if v.body["resources_released_at"].is_string() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_killed_shim_fails_its_session_within_seconds() {
    lost_fast("shim_pid").await;
}

#[tokio::test]
async fn a_killed_init_fails_its_session_within_seconds() {
    lost_fast("init_pid").await;
}

/// The runtime refusing at create (a base that does not exist; an image not in the store): the session is `failed`
/// within 1 s of its creation, with the reason for the proctor, and holds nothing.
#[tokio::test]
async fn a_create_the_runtime_refuses_fails_the_session_within_a_second() {
    let s = TestServer::start_with(crate::server::Options {
        exams: |catalog| {
            crate::server::standard_exams(catalog);
            crate::server::write_exam(
                catalog,
                "no-image",
                "title = \"N\"\ndescription = \"n\"\nduration = \"5m\"\n[environment]\nbase = \"image:it/absent:1\"\n",
            );
        },
        ..crate::server::Options::default()
    })
    .await;
    let c = Client::default();
    for (user, exam, cause) in [("alice", "broken-base", "/nonexistent/rootfs"), ("bob", "no-image", "it/absent:1")] {
        let token = s.candidate(user);
        let t0 = Instant::now();
        let id = sid(&create(&c, &s, &token, exam).await);
        let v = wait_state(&c, &s, &token, &id, Duration::from_secs(5), "failed").await;
        let took = t0.elapsed();
        assert!(took < Duration::from_secs(1), "{exam}: failed after {took:?}");
        assert_eq!(v["failure"]["code"], "provisioning_failed", "{v}");
        let p = c.get(&s.url(&session_path(&id)), &s.proctor("pat")).await;
        let detail = p.body["failure"]["detail"].as_str().unwrap_or_default().to_string();
        assert!(detail.contains(cause), "{exam}: the proctor sees the cause: {}", p.text);
    }
    assert!(s.runtime().list().await.unwrap().is_empty(), "nothing is held");
    s.teardown().await;
}

fn churn_exams(catalog: &std::path::Path) {
    let dir = catalog.join("churn");
    std::fs::create_dir_all(dir.join("setup")).unwrap();
    std::fs::create_dir_all(dir.join("checks")).unwrap();
    std::fs::write(dir.join("setup/prepare.sh"), "#!/bin/sh\nmkdir -p /srv/churn && echo ready > /srv/churn/state\n")
        .unwrap();
    std::fs::write(dir.join("checks/done.sh"), "#!/bin/sh\n[ \"$(cat /root/done 2>/dev/null)\" = done ]\n").unwrap();
    crate::server::write_exam(
        catalog,
        "churn",
        "title = \"Churn\"\ndescription = \"c\"\nduration = \"10m\"\n[environment]\nbase = \"host\"\nmemory = \"128M\"\n\
         cpu = \"500m\"\n[[tasks]]\nid = \"t\"\ntitle = \"T\"\nprompt = \"p\"\nsetup = \"setup/prepare.sh\"\n\
         [[tasks.checks]]\nid = \"done\"\ndescription = \"d\"\nscript = \"checks/done.sh\"\n",
    );
}

/// One candidate's session from start to graded end: setup, typing and an output flood in the terminal, submit.
async fn one_cycle(s: &TestServer, c: &Client, user: &str) -> Result<(), String> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let token = s.candidate(user);
    let id = sid(&create(c, s, &token, "churn").await);
    let v = crate::server::wait_for(c, s, &token, &id, READY, |v| v["state"] == "ready" || crate::server::is_final(v))
        .await;
    if v["state"] != "ready" {
        // What went wrong, as the proctor sees it.
        let p = c.get(&s.url(&session_path(&id)), &s.proctor("churn-proctor")).await;
        return Err(format!("{id} did not become ready: {}", p.text));
    }
    let url = format!("{}{}/terminal", s.base.replacen("http", "ws", 1), session_path(&id));
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.map_err(|e| e.to_string())?;
    let line = "seq 1 50000 | tail -n 3; echo done > /root/done; echo churn-$((40+2))\n";
    ws.send(Message::Binary(line.as_bytes().to_vec().into())).await.map_err(|e| e.to_string())?;
    let mut seen = Vec::new();
    let until = Instant::now() + Duration::from_secs(60);
    while !String::from_utf8_lossy(&seen).contains("churn-42") {
        match tokio::time::timeout_at(until.into(), ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => seen.extend_from_slice(&b),
            Ok(Some(Ok(_))) => {}
            other => return Err(format!("terminal of {id}: {other:?}")),
        }
    }
    let a = c.post(&s.url(&format!("{}/submit", session_path(&id))), &token, serde_json::json!({})).await;
    if a.status != 200 {
        return Err(format!("submit {id}: {}", a.text));
    }
    drop(ws);
    let v = wait_state(c, s, &token, &id, Duration::from_secs(120), "terminated").await;
    if v["resources_released_at"].is_null() {
        return Err(format!("{id} ended without a verified release: {v}"));
    }
    let r = c.get(&s.url(&format!("{}/result", session_path(&id))), &token).await;
    if r.body["score"] != 1 {
        return Err(format!("{id} was not graded as solved: {}", r.text));
    }
    Ok(())
}

/// Churn (issue 16): for three minutes, candidates start, use (setup, typing, a flood of output, grading) and end
/// sessions, 4 alive at once in `make test` (more load made the other tests running beside it on two cores miss
/// their floors; `make soak` runs 200); afterwards nothing is left: no live session, no
/// environment, no process, cgroup, mount, uid claim or state file of the run's label, and the process's open
/// descriptors are back to where they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_leaves_nothing_behind() {
    // `make soak` runs it longer and wider (EXAMROOM_CHURN_SECS, EXAMROOM_CHURN_ALIVE).
    let knob = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let run = Duration::from_secs(knob("EXAMROOM_CHURN_SECS", 180));
    let alive = knob("EXAMROOM_CHURN_ALIVE", 4) as usize;
    let s = TestServer::start_with(crate::server::Options { exams: churn_exams, ..crate::server::Options::default() })
        .await;
    let fds_before = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0);
    let started = Instant::now();
    let s = std::sync::Arc::new(s);
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..alive {
        let s = s.clone();
        workers.spawn(async move {
            let c = Client::default();
            let mut cycles = 0u32;
            while started.elapsed() < run {
                one_cycle(&s, &c, &format!("churn-{w}-{cycles}")).await?;
                cycles += 1;
            }
            Ok::<u32, String>(cycles)
        });
    }
    let mut total = 0;
    while let Some(r) = workers.join_next().await {
        total += r.expect("a worker panicked").unwrap_or_else(|e| panic!("a cycle failed: {e}"));
    }
    assert!(total >= alive as u32, "every worker completed at least one cycle ({total} in all)");
    eprintln!("churn: {total} sessions in {:?}", started.elapsed());
    let s = std::sync::Arc::into_inner(s).expect("the workers are done");
    let c = Client::default();
    let live = c.get(&s.url("/api/v1/sessions"), &s.proctor("pat")).await;
    let stuck: Vec<&serde_json::Value> = live.body["sessions"]
        .as_array()
        .map(|a| a.iter().filter(|v| v["state"] != "terminated" && v["state"] != "failed").collect())
        .unwrap_or_default();
    assert!(stuck.is_empty(), "sessions stuck in a live state: {stuck:?}");
    assert!(s.runtime().list().await.unwrap().is_empty(), "environments left");
    crate::common::assert_no_leaks(&s.label, &s.sandbox_dir()).await;
    // Descriptors: the runtime's and the server's connections are closed (a margin for other tests in this process).
    let fds_after = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0);
    assert!(fds_after <= fds_before + 200, "descriptors {fds_before} before, {fds_after} after");
    s.teardown().await;
}

/// Thundering herd (issue 16): many more candidates than the server takes press Start in the same instant. Each gets
/// an answer at once: a session that becomes ready, or 503 `capacity_exhausted` with `Retry-After`; no request hangs
/// and nothing is left half-made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_herd_at_start_gets_sessions_or_a_clear_503() {
    const CAPACITY: usize = 16;
    const HERD: usize = 64;
    let mut opts = crate::server::Options::default();
    opts.service.max_live_sessions = CAPACITY;
    let s = std::sync::Arc::new(TestServer::start_with(opts).await);
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(HERD));
    let mut herd = tokio::task::JoinSet::new();
    for i in 0..HERD {
        let (s, barrier) = (s.clone(), barrier.clone());
        herd.spawn(async move {
            let c = Client::default();
            let token = s.candidate(&format!("herd-{i}"));
            barrier.wait().await;
            let t0 = Instant::now();
            let a = c.post(&s.url("/api/v1/sessions"), &token, serde_json::json!({ "exam_id": "quick" })).await;
            (token, a, t0.elapsed())
        });
    }
    let (mut admitted, mut refused) = (Vec::new(), 0);
    while let Some(r) = herd.join_next().await {
        let (token, a, took) = r.unwrap();
        assert!(took < Duration::from_secs(10), "an answer took {took:?}");
        match a.status {
            201 => admitted.push((token, sid(&a.body))),
            503 => {
                assert_eq!(a.body["error"]["code"], "capacity_exhausted", "{}", a.text);
                assert!(a.headers.get("retry-after").is_some(), "503 without Retry-After");
                refused += 1;
            }
            other => panic!("unexpected answer {other}: {}", a.text),
        }
    }
    assert_eq!(admitted.len(), CAPACITY, "exactly the capacity is admitted ({refused} refused)");
    assert_eq!(refused, HERD - CAPACITY);
    let c = Client::default();
    for (token, id) in &admitted {
        wait_state(&c, &s, token, id, READY, "ready").await;
    }
    assert_eq!(s.runtime().list().await.unwrap().len(), CAPACITY, "one environment per admitted session, no more");
    let s = std::sync::Arc::into_inner(s).expect("the herd is done");
    s.teardown().await;
}

/// The store failing (issue 16): another process holds the database's write lock for 10 s. A start meanwhile fails
/// cleanly with 503 and guidance within 10 s, nothing of it is written, reads and the live session go on, and once
/// the lock is gone the same start succeeds, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_gives_503_and_the_server_recovers_by_itself() {
    let s = TestServer::start().await;
    let c = Client::default();
    let (alice, bob) = (s.candidate("alice"), s.candidate("bob"));
    let a = sid(&create(&c, &s, &alice, "quick").await);
    wait_state(&c, &s, &alice, &a, READY, "ready").await;
    let db = s.data_dir.join("examroom.db");
    let mut locker = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             time.sleep(10)\n\
             c.execute('COMMIT')\n",
        )
        .arg(&db)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(locker.stdout.as_mut().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    let t0 = Instant::now();
    let r = c.post(&s.url("/api/v1/sessions"), &bob, serde_json::json!({ "exam_id": "quick" })).await;
    let took = t0.elapsed();
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "service_unavailable", "{}", r.text);
    assert!(r.body["error"]["guidance"].as_str().is_some_and(|g| g.contains("Try again")), "{}", r.text);
    assert!(took < Duration::from_secs(10), "the error took {took:?}");
    // Reads and the live session go on meanwhile.
    let v = c.get(&s.url(&session_path(&a)), &alice).await;
    assert_eq!((v.status, v.body["state"].as_str()), (200, Some("ready")), "{}", v.text);
    assert!(locker.wait().unwrap().success());
    // Nothing of the refused start was written; the same start now succeeds.
    let mine = c.get(&s.url("/api/v1/sessions"), &bob).await;
    assert_eq!(mine.body["sessions"].as_array().map(|a| a.len()), Some(0), "{}", mine.text);
    let b = sid(&create(&c, &s, &bob, "quick").await);
    wait_state(&c, &s, &bob, &b, READY, "ready").await;
    s.teardown().await;
}

/// The store's disk full (issue 16): the data directory on a small tmpfs, filled by something else. A start fails
/// cleanly (503, or a failed provisioning that says why), nothing half-written is left, the live session goes on, and
/// once space is freed the next start succeeds without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_cleanly_and_the_server_recovers_when_space_returns() {
    let s = TestServer::start_with(crate::server::Options {
        data_tmpfs: Some(128 << 20),
        ..crate::server::Options::default()
    })
    .await;
    let c = Client::default();
    let (alice, bob) = (s.candidate("alice"), s.candidate("bob"));
    let a = sid(&create(&c, &s, &alice, "quick").await);
    wait_state(&c, &s, &alice, &a, READY, "ready").await;
    let filler = s.data_dir.join("filler");
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=200"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    let t0 = Instant::now();
    let r = c.post(&s.url("/api/v1/sessions"), &bob, serde_json::json!({ "exam_id": "quick" })).await;
    assert!(t0.elapsed() < Duration::from_secs(10), "the answer took {:?}", t0.elapsed());
    match r.status {
        503 => assert_eq!(r.body["error"]["code"], "service_unavailable", "{}", r.text),
        201 => {
            // Stored before the disk filled up entirely: then its provisioning fails, and says so.
            let v = wait_state(&c, &s, &bob, &sid(&r.body), READY, "failed").await;
            assert!(v["failure"]["message"].is_string(), "{v}");
        }
        other => panic!("unexpected {other}: {}", r.text),
    }
    let v = c.get(&s.url(&session_path(&a)), &alice).await;
    assert_eq!((v.status, v.body["state"].as_str()), (200, Some("ready")), "{}", v.text);
    std::fs::remove_file(&filler).unwrap();
    // Space is back: the next start succeeds without a restart (this found that a connection whose commit failed on
    // the full disk refused every later transaction; such a connection is now closed, never pooled again).
    let b = sid(&create(&c, &s, &bob, "quick").await);
    wait_state(&c, &s, &bob, &b, READY, "ready").await;
    s.teardown().await;
}
