//! `examroom exam test`, run as an author runs it (the binary, real sessions): every sample exam passes; an exam with
//! a wrong check fails and names it; a check that passes unsolved is reported unless it says why it may; an exam for a
//! backend this server lacks cannot run (exit 3).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{require_root, shim_program};

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../exams")
}

/// `examroom exam test ARGS`, with its output.
fn exam_test(args: &[&str]) -> Output {
    require_root();
    Command::new(shim_program()).args(["exam", "test"]).args(args).output().expect("run examroom exam test")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A data directory whose image store has the sample image (`make images` built it).
fn data_dir_with_sample_image(tmp: &Path) -> PathBuf {
    let data = tmp.join("data");
    std::fs::create_dir_all(data.join("sandbox")).unwrap();
    crate::images::import_sample(&data.join("sandbox"), "examroom/tools:1");
    data
}

#[test]
fn exam_test_passes_on_every_sample_exam() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir_with_sample_image(tmp.path());
    let mut exams: Vec<String> = std::fs::read_dir(samples())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("exam.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    exams.sort();
    assert!(exams.len() >= 6, "{exams:?}");
    // The machine exam takes longest: it runs beside the others.
    let (slow, quick): (Vec<String>, Vec<String>) = exams.into_iter().partition(|e| e == "linux-admin");
    let run = |exam: &str| {
        let dir = samples().join(exam);
        let out = if examroom_exams::load_exam(&dir).unwrap().environment.backend == "docker" {
            // On the tests' Docker Engine, whose ext4 data root cannot bound a writable layer.
            let sock = crate::docker_engine::with_sample_image();
            Command::new(shim_program())
                .args(["exam", "test", dir.to_str().unwrap(), "--data-dir", data.to_str().unwrap()])
                .env("EXAMROOM_DOCKER_SOCKET", &sock)
                .env("EXAMROOM_DOCKER_UNBOUNDED_DISK", "on")
                .output()
                .expect("run examroom exam test")
        } else {
            exam_test(&[dir.to_str().unwrap(), "--data-dir", data.to_str().unwrap()])
        };
        let report = text(&out);
        assert!(out.status.success(), "exam test {exam} failed:\n{report}");
        assert!(report.contains("every check passes with its solution and fails unsolved"), "{exam}:\n{report}");
        // Every check of the exam is in the report.
        let loaded = examroom_exams::load_exam(&dir).unwrap();
        for t in &loaded.tasks {
            for c in &t.checks {
                let row = format!("{}/{}", t.id, c.id);
                assert!(
                    report.lines().any(|l| l.trim_start().starts_with(&row) && l.ends_with("ok")),
                    "{row}:\n{report}"
                );
            }
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| slow.iter().for_each(|e| run(e)));
        quick.iter().for_each(|e| run(e));
    });
}

/// An exam of three tasks: `wrong`'s check looks for `backup-job` where the task (and its solution) says `hello-job`
/// (sailor-sh/CK-X#44); `lenient`'s check passes whatever is done; `excused`'s passes unsolved and says why.
fn write_flawed_exam(dir: &Path) {
    let file = |path: &str, body: &str| {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    };
    file("solutions/wrong.sh", "#!/bin/sh\necho hello > /root/hello-job\n");
    file("checks/wrong.sh", "#!/bin/sh\ntest -f /root/backup-job\n");
    file("solutions/lenient.sh", "#!/bin/sh\ntouch /root/lenient\n");
    file("checks/lenient.sh", "#!/bin/sh\ntest -d /root\n");
    file("solutions/excused.sh", "#!/bin/sh\ntouch /root/excused\n");
    file("checks/excused.sh", "#!/bin/sh\ntest -d /etc\n");
    file(
        "exam.toml",
        r#"id = "flawed"
title = "Flawed"
description = "Checks with mistakes in them"
duration = "5m"

[environment]
base = "host"
memory = "256M"

[[tasks]]
id = "wrong"
title = "Hello job"
prompt = "Create `/root/hello-job`."
solution = "solutions/wrong.sh"

[[tasks.checks]]
id = "job-file"
description = "The job file exists"
script = "checks/wrong.sh"

[[tasks]]
id = "lenient"
title = "Lenient"
prompt = "Create `/root/lenient`."
solution = "solutions/lenient.sh"

[[tasks.checks]]
id = "anything"
description = "Passes whatever"
script = "checks/lenient.sh"

[[tasks]]
id = "excused"
title = "Excused"
prompt = "Create `/root/excused`."
solution = "solutions/excused.sh"

[[tasks.checks]]
id = "etc-exists"
description = "Passes whatever, and says why"
script = "checks/excused.sh"
may_pass_unsolved = "a smoke check: /etc is always there"
"#,
    );
}

#[test]
fn exam_test_names_a_wrong_check_and_one_that_passes_unsolved() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("flawed");
    write_flawed_exam(&dir);
    let out = exam_test(&[dir.to_str().unwrap()]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("SURPRISE: task wrong, check job-file: fails with the solution"), "{report}");
    assert!(report.contains("SURPRISE: task lenient, check anything: passes on an unsolved environment"), "{report}");
    assert!(!report.contains("task excused, check etc-exists"), "an excused check was reported:\n{report}");
    assert!(report.contains("may pass unsolved: a smoke check"), "{report}");
    assert!(report.contains("2 surprise(s) in flawed"), "{report}");

    // One task alone: only its surprise.
    let out = exam_test(&[dir.to_str().unwrap(), "--task", "wrong"]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("1 surprise(s) in flawed: task wrong, check job-file"), "{report}");
    let out = exam_test(&[dir.to_str().unwrap(), "--task", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("has no task \"nope\"; its tasks are wrong, lenient, excused"), "{}", text(&out));
}

#[test]
fn exam_test_keeps_a_solved_session_open_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let out = exam_test(&[samples().join("quick-check").to_str().unwrap(), "--keep"]);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    let line = report.lines().find(|l| l.contains("examroom sandbox shell --state-dir")).expect(&report).to_string();
    let words: Vec<&str> = line.split_whitespace().collect();
    let arg = |flag: &str| words[words.iter().position(|w| *w == flag).unwrap() + 1].to_string();
    let (state, label, env) = (arg("--state-dir"), arg("--label"), arg("--attach"));
    // The kept environment runs, with the solution applied; then it is removed, and nothing is left.
    let mut cfg = examroom_runtime::sandbox::SandboxConfig::new(&state, &label);
    cfg.shim_program = shim_program();
    let rt = examroom_runtime::sandbox::SandboxRuntime::new(cfg).unwrap();
    let id: examroom_core::EnvironmentId = env.parse().unwrap();
    let rtm = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rtm.block_on(async {
        use examroom_runtime::ExecutionRuntime;
        let listed = rt.list().await.unwrap();
        assert_eq!(listed.len(), 1, "only the kept environment is left: {listed:?}");
        let out = rt.exec(&id, examroom_runtime::ExecRequest::shell("cat /root/hello.txt")).await.unwrap();
        assert_eq!(out.stdout_text(), "hello\n");
        assert!(rt.destroy(&id).await.unwrap().verified);
    });
    let _ = std::fs::remove_dir_all(Path::new(&state).parent().unwrap());
    drop(tmp);
}

#[test]
fn exam_test_cannot_run_a_docker_exam_without_a_docker_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("docker-lab");
    std::fs::create_dir_all(dir.join("checks")).unwrap();
    std::fs::write(dir.join("checks/a.sh"), "#!/bin/sh\ntrue\n").unwrap();
    std::fs::create_dir_all(dir.join("solutions")).unwrap();
    std::fs::write(dir.join("solutions/a.sh"), "#!/bin/sh\ntrue\n").unwrap();
    std::fs::write(
        dir.join("exam.toml"),
        "id = \"docker-lab\"\ntitle = \"D\"\ndescription = \"\"\nduration = \"5m\"\n[environment]\nbase = \
         \"image:examroom/ckx-jumphost:1\"\nbackend = \"docker\"\n[[tasks]]\nid = \"a\"\ntitle = \"A\"\nprompt = \
         \"a\"\nsolution = \"solutions/a.sh\"\n[[tasks.checks]]\nid = \"c\"\ndescription = \"c\"\nscript = \"checks/a.sh\"\n",
    )
    .unwrap();
    require_root();
    let out = Command::new(shim_program())
        .args(["exam", "test", dir.to_str().unwrap()])
        .env("EXAMROOM_DOCKER_SOCKET", "/nonexistent/docker.sock")
        .output()
        .expect("run examroom exam test");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("not tested") && text(&out).contains("/nonexistent/docker.sock"), "{}", text(&out));
}

/// Writes version `n` of the exam `versioned`: its prompt and its one check (named `check-vN`) differ by version;
/// check vN passes when `/root/answer` holds `vN`.
fn write_versioned(catalog: &Path, n: u32) {
    let dir = catalog.join("versioned");
    std::fs::create_dir_all(dir.join("checks")).unwrap();
    std::fs::write(dir.join("checks/answer.sh"), format!("#!/bin/sh\ngrep -qx v{n} /root/answer\n")).unwrap();
    std::fs::write(
        dir.join("exam.toml"),
        format!(
            "id = \"versioned\"\ntitle = \"Versioned\"\ndescription = \"d\"\nduration = \"10m\"\n[environment]\nbase \
             = \"host\"\nmemory = \"256M\"\n[[tasks]]\nid = \"answer\"\ntitle = \"Answer\"\nprompt = \"Write v{n} to \
             /root/answer.\"\n[[tasks.checks]]\nid = \"check-v{n}\"\ndescription = \"/root/answer holds v{n}\"\nscript \
             = \"checks/answer.sh\"\n"
        ),
    )
    .unwrap();
}

async fn exam_version(c: &crate::server::Client, srv: &crate::server::RealServer, tok: &str) -> String {
    let a = c.get(&srv.url("/api/v1/exams/versioned"), tok).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["version"].as_str().unwrap().to_string()
}

/// The catalog reloads while `serve` runs (when its directory changes, and on SIGHUP), and a live session keeps the
/// version it started on for its tasks and its grading; the proctor sees each session's version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_session_keeps_its_exam_version_across_catalog_reloads() {
    use crate::server::{real_get, sid, state, Client, RealServer};
    use examroom_core::Role;
    use serde_json::json;
    use std::time::{Duration, Instant};

    require_root();
    let tmp = tempfile::Builder::new().prefix("er-versions-").tempdir_in("/tmp").unwrap();
    let exams = tmp.path().join("exams");
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    write_versioned(&exams, 1);
    let mut srv = RealServer {
        child: None,
        data: tmp.path().join("data"),
        exams: exams.clone(),
        logs,
        label: crate::common::unique_label("versions"),
        secret: "versions-test-secret-0123456789-abcdefgh".into(),
        base: String::new(),
        runs: 0,
    };
    srv.start().await;
    let c = Client::default();
    let proctor = srv.token("proctor", Role::Proctor);
    let alice = srv.token("alice", Role::Candidate);
    let v1 = exam_version(&c, &srv, &alice).await;
    assert_eq!(v1.len(), 64, "{v1}");

    // Alice starts on version 1.
    let a = c.post(&srv.url("/api/v1/sessions"), &alice, json!({ "exam_id": "versioned" })).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = sid(&a.body);
    assert_eq!(a.body["exam_version"], json!(v1));
    let until = Instant::now() + Duration::from_secs(60);
    let view = loop {
        let v = real_get(&c, &srv, &alice, &id).await;
        if state(&v) == "ready" {
            break v;
        }
        assert!(Instant::now() < until && state(&v) != "failed", "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let started = c.post(&srv.url(&format!("/api/v1/sessions/{id}/start")), &alice, json!({})).await;
    assert_eq!(started.status, 200, "{}", started.text);

    // Version 2 is written into the catalog directory: the server picks it up without a restart.
    write_versioned(&exams, 2);
    let until = Instant::now() + Duration::from_secs(20);
    let v2 = loop {
        let v = exam_version(&c, &srv, &alice).await;
        if v != v1 {
            break v;
        }
        assert!(Instant::now() < until, "the catalog was not reloaded after its directory changed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Alice's session still shows version 1's task.
    let tasks = c.get(&srv.url(&format!("/api/v1/sessions/{id}/tasks")), &alice).await;
    assert_eq!(tasks.status, 200, "{}", tasks.text);
    assert!(tasks.text.contains("Write v1 to"), "{}", tasks.text);
    // She answers as version 1 asks and submits: graded by version 1's check.
    let env: examroom_core::EnvironmentId = view["execution_environment_id"].as_str().unwrap().parse().unwrap();
    let mut cfg = examroom_runtime::sandbox::SandboxConfig::new(srv.sandbox_dir(), &srv.label);
    cfg.shim_program = shim_program();
    let rt = examroom_runtime::sandbox::SandboxRuntime::new(cfg).unwrap();
    {
        use examroom_runtime::ExecutionRuntime;
        let out = rt.exec(&env, examroom_runtime::ExecRequest::shell("echo v1 > /root/answer")).await.unwrap();
        assert_eq!(out.exit_code, Some(0));
    }
    let a = c.post(&srv.url(&format!("/api/v1/sessions/{id}/submit")), &alice, json!({})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let until = Instant::now() + Duration::from_secs(60);
    while state(&real_get(&c, &srv, &alice, &id).await) != "terminated" {
        assert!(Instant::now() < until, "not terminated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = c.get(&srv.url(&format!("/api/v1/sessions/{id}/result")), &proctor).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "graded", "{}", r.text);
    assert_eq!(r.body["checks"][0]["check_id"], "check-v1", "{}", r.text);
    assert_eq!(r.body["checks"][0]["passed"], true, "{}", r.text);

    // A new session starts on version 2; the proctor's list shows each session's version.
    let bob = srv.token("bob", Role::Candidate);
    let b = c.post(&srv.url("/api/v1/sessions"), &bob, json!({ "exam_id": "versioned" })).await;
    assert_eq!(b.status, 201, "{}", b.text);
    assert_eq!(b.body["exam_version"], json!(v2));
    let list = c.get(&srv.url("/api/v1/sessions"), &proctor).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let versions: Vec<(String, String)> = list.body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["user_id"].as_str().unwrap().to_string(), s["exam_version"].as_str().unwrap().to_string()))
        .collect();
    assert!(versions.contains(&("alice".into(), v1.clone())) && versions.contains(&("bob".into(), v2.clone())));

    // SIGHUP reloads too (here, version 3 written and the signal sent at once; the server does not exit).
    write_versioned(&exams, 3);
    // SAFETY: kill has no memory preconditions; the pid is our child.
    assert_eq!(unsafe { libc::kill(srv.pid(), libc::SIGHUP) }, 0);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let v = exam_version(&c, &srv, &alice).await;
        if v != v2 {
            break;
        }
        assert!(Instant::now() < until, "SIGHUP did not reload the catalog");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(srv.stderr().contains("SIGHUP: reloading the exam catalog"), "{}", srv.stderr_tail());
    assert!(srv.child.as_mut().unwrap().try_wait().unwrap().is_none(), "SIGHUP stopped the server");
}

/// An exam for the Docker backend with a service (as `exam import ckx` writes them) is listed, as not available here
/// and why; a session of it fails with that reason and leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exam_for_the_docker_backend_is_listed_as_unavailable_with_the_reason() {
    use crate::server::{state, wait_for, write_exam, Client, Options, TestServer};
    use serde_json::json;
    use std::time::Duration;

    fn exams(catalog: &Path) {
        crate::server::standard_exams(catalog);
        std::fs::create_dir_all(catalog.join("ckx-lab/checks")).unwrap();
        std::fs::write(catalog.join("ckx-lab/checks/c.sh"), "#!/bin/sh\nkubectl get nodes\n").unwrap();
        write_exam(
            catalog,
            "ckx-lab",
            "title = \"Lab\"\ndescription = \"\"\nduration = \"30m\"\n[environment]\nbackend = \"docker\"\nbase = \
             \"image:examroom/ckx-jumphost:1\"\n[[environment.services]]\nname = \"cluster\"\nimage = \
             \"examroom/ckx-cluster:1\"\nready_command = [\"kubectl\", \"get\", \"nodes\"]\n[[tasks]]\nid = \"q1\"\n\
             title = \"Q1\"\nprompt = \"p\"\n[[tasks.checks]]\nid = \"v1\"\ndescription = \"d\"\nscript = \
             \"checks/c.sh\"\n",
        );
    }
    let s = TestServer::start_with(Options { exams, ..Options::default() }).await;
    let c = Client::default();
    let (proctor, alice) = (s.proctor("proctor"), s.candidate("alice"));
    let a = c.get(&s.url("/api/v1/exams/ckx-lab"), &proctor).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["available"], false);
    let reason = a.body["unavailable_reason"].as_str().unwrap();
    assert!(reason.contains("the docker backend is not enabled on this server"), "{reason}");
    let b = c.get(&s.url("/api/v1/exams/ckx-lab"), &alice).await;
    assert_eq!(b.body["available"], false);
    assert!(!b.text.contains("docker"), "a candidate is not told the server's internals: {}", b.text);
    // The quick exam next to it is available.
    assert_eq!(c.get(&s.url("/api/v1/exams/quick"), &alice).await.body["available"], true);

    let created = c.post(&s.url("/api/v1/sessions"), &alice, json!({ "exam_id": "ckx-lab" })).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_string();
    let v = wait_for(&c, &s, &proctor, &id, Duration::from_secs(30), |v| state(v) == "failed").await;
    assert_eq!(v["failure"]["code"], "backend_unavailable", "{v}");
    assert!(v["failure"]["detail"].as_str().unwrap_or_default().contains("docker backend is not enabled"), "{v}");
    s.teardown().await;
}
