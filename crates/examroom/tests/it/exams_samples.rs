//! The sample exams' checks hold against a candidate who tampers with the tools, and trusted commands see the
//! pristine base. (That every sample's checks fail unsolved and pass after each task's reference solution is
//! `examroom exam test`'s job: `exam_authoring.rs` runs it over every sample.) Setup scripts run first, as during
//! provisioning.

use std::path::Path;
use std::time::Duration;

use examroom_core::EnvironmentId;
use examroom_exams::{Catalog, Exam, Script};
use examroom_runtime::{ExecRequest, ExecutionRuntime, Profile};

use crate::common::Harness;

fn catalog() -> Catalog {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../exams");
    let c = Catalog::load(&dir);
    assert!(c.problems().is_empty(), "sample exams have problems: {:?}", c.problems());
    c
}

fn request(script: &Script, timeout: Duration) -> ExecRequest {
    examroom_sessions::provision::script_request(script, timeout, 64 * 1024)
}

async fn run(h: &Harness, id: &EnvironmentId, script: &Script, timeout: Duration) -> (bool, String) {
    let out = h.rt.exec(id, request(script, timeout)).await.expect("exec");
    (out.exit_code == Some(0), format!("{}{}", out.stdout_text(), String::from_utf8_lossy(&out.stderr)))
}

/// Runs a check the way grading does: trusted.
async fn check(h: &Harness, id: &EnvironmentId, script: &Script, timeout: Duration) -> (bool, String) {
    let out = h.rt.exec_trusted(id, request(script, timeout)).await.expect("trusted exec");
    (out.exit_code == Some(0), format!("{}{}", out.stdout_text(), String::from_utf8_lossy(&out.stderr)))
}

/// Each check of `exam`'s tasks, run now: (task, check, passed).
async fn checks(h: &Harness, id: &EnvironmentId, exam: &Exam) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for t in &exam.tasks {
        for c in &t.checks {
            let (ok, _) = check(h, id, &c.script, c.timeout).await;
            out.push((t.id.clone(), c.id.clone(), ok));
        }
    }
    out
}

/// A new environment of the exam's profile and base (an exam on an image gets that image, imported from the archive
/// `make images` built), with its setup scripts run (as provisioning runs them).
async fn provisioned(h: &Harness, exam: &Exam) -> EnvironmentId {
    let profile = Profile::parse(&exam.environment.profile).expect("profile");
    let id = match exam.environment.base.strip_prefix("image:") {
        None => h.create_spec(|s| s.profile = profile).await,
        Some(reference) => {
            crate::images::import_sample(&h.state_dir, reference);
            h.create_spec(|s| {
                s.profile = profile;
                s.image = Some(reference.to_string());
            })
            .await
        }
    };
    for (task, setup) in exam.setup_steps() {
        let (ok, log) = run(h, &id, setup, Duration::from_secs(60)).await;
        assert!(ok, "{}: setup of {} failed: {log}", exam.id, task.id);
    }
    id
}

/// Ends the candidate's part as grading does: a shell environment is frozen; a machine is booted again from its
/// disk, so its checks see what survives a reboot.
async fn end(h: &Harness, id: &EnvironmentId) {
    h.rt.freeze(id).await.expect("freeze for grading");
}

/// A candidate who replaces the checks' tools inside the environment still scores 0: checks see the pristine base.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_with_the_tools_does_not_pass_checks() {
    let c = catalog();
    for exam in c.exams().filter(|e| e.tasks.len() >= 5) {
        let h = Harness::new();
        let id = provisioned(&h, exam).await;
        // Every tool a check might call now says "yes", the loader preloads a library of the candidate's, and the
        // shells are replaced.
        h.sh_ok(
            &id,
            "set -e; for t in test [ grep egrep fgrep awk mawk gawk sed stat find id getent pgrep ps cmp diff wc cat \
             head tail cut sort uniq tr ls readlink timeout python3 bash dash sh; do \
               p=/usr/bin/$t; if [ -e \"$p\" ] || [ -L \"$p\" ]; then rm -f \"$p\"; fi; \
               printf '#!/usr/bin/env -S true\\nexit 0\\n' > \"$p\" || true; chmod 755 \"$p\" || true; \
             done; echo /tmp/evil.so > /etc/ld.so.preload; ln -sfn /tmp /lib64.evil; echo tampered",
        )
        .await;
        // The tampering works on the candidate's side: their grep now finds anything.
        let fake =
            h.rt.exec(
                &id,
                ExecRequest {
                    argv: vec!["/usr/bin/grep".into(), "-q".into(), "no-such-text".into(), "/etc/hostname".into()],
                    ..ExecRequest::shell("")
                },
            )
            .await
            .unwrap();
        assert_eq!(fake.exit_code, Some(0), "the tampering did not take: {fake:?}");
        end(&h, &id).await;
        let scores = checks(&h, &id, exam).await;
        let passing: Vec<_> = scores.iter().filter(|c| c.2).collect();
        assert!(passing.is_empty(), "{}: tampered tools made checks pass: {passing:?}", exam.id);
        h.teardown().await;
    }
}

/// Trusted commands see the candidate's files read-only, a fixed PATH, and the pristine base.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_exec_sees_the_candidates_files_with_pristine_tools() {
    let h = Harness::new();
    let id = h.create().await;
    h.sh_ok(&id, "echo mine > /root/answer.txt; mkdir -p /srv/x; printf '#!/bin/sh\\necho fake\\n' > /usr/bin/uname; chmod 755 /usr/bin/uname").await;
    let req = |script: &str| ExecRequest::shell(script);
    let out =
        h.rt.exec_trusted(&id, req("cat /root/answer.txt; test -d /srv/x && echo dir; uname -s; echo $PATH"))
            .await
            .unwrap();
    assert_eq!(out.stdout_text(), "mine\ndir\nLinux\n/usr/sbin:/usr/bin:/sbin:/bin:/examroom/bin\n", "{out:?}");
    // Read-only for the candidate's files; /tmp is the check's own.
    let out =
        h.rt.exec_trusted(
            &id,
            req("touch /root/new 2>/dev/null && echo wrote || echo refused; touch /tmp/t && echo tmp-ok"),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "refused\ntmp-ok\n");
    assert_eq!(
        h.sh_ok(&id, "test -e /root/new && echo yes || echo no; test -e /tmp/t && echo yes || echo no").await,
        "no\nno\n"
    );
    // Trusted commands (which may run the candidate's programs) are held to the environment's limits.
    let hog = h.rt.exec_trusted(&id, req("python3 -c 'b = bytearray(2 << 30); print(len(b))'")).await.unwrap();
    assert_ne!(hog.exit_code, Some(0), "a 2 GiB allocation in a 512 MiB environment succeeded: {hog:?}");
    // Frozen environments still run trusted commands, and nothing of the candidate's runs meanwhile.
    h.sh_ok(&id, "setsid sh -c 'while :; do date +%s%N > /root/tick; sleep 0.05; done' >/dev/null 2>&1 < /dev/null & echo started").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.rt.freeze(&id).await.unwrap();
    let a = h.rt.exec_trusted(&id, req("cat /root/tick")).await.unwrap().stdout_text();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let b = h.rt.exec_trusted(&id, req("cat /root/tick")).await.unwrap().stdout_text();
    assert_eq!(a, b, "a candidate process ran while frozen");
    h.teardown().await;
}
