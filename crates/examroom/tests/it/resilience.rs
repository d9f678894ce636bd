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
