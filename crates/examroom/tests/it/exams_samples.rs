//! The sample exams are real: in a fresh environment every check fails (an unsolved run scores 0), and after each
//! task's reference solution every check of that task passes (full marks). Setup scripts run first, as during
//! provisioning. Checks run here through the runtime's exec, as root inside the environment, fed on stdin.

use std::path::Path;
use std::time::Duration;

use examroom_core::EnvironmentId;
use examroom_exams::{Catalog, Exam, Script};
use examroom_runtime::{ExecRequest, ExecutionRuntime};

use crate::common::Harness;

fn catalog() -> Catalog {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../exams");
    let c = Catalog::load(&dir);
    assert!(c.problems().is_empty(), "sample exams have problems: {:?}", c.problems());
    c
}

fn request(script: &Script, timeout: Duration) -> ExecRequest {
    ExecRequest {
        argv: script.interpreter().into_iter().map(String::from).collect(),
        env: vec![("HOME".into(), "/root".into()), ("LANG".into(), "C.UTF-8".into())],
        cwd: "/root".into(),
        stdin: script.body.as_bytes().to_vec(),
        timeout,
        output_limit: 64 * 1024,
    }
}

async fn run(h: &Harness, id: &EnvironmentId, script: &Script, timeout: Duration) -> (bool, String) {
    let out = h.rt.exec(id, request(script, timeout)).await.expect("exec");
    (out.exit_code == Some(0), format!("{}{}", out.stdout_text(), String::from_utf8_lossy(&out.stderr)))
}

/// Each check of `exam`'s tasks, run now: (task, check, passed).
async fn checks(h: &Harness, id: &EnvironmentId, exam: &Exam) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for t in &exam.tasks {
        for c in &t.checks {
            let (ok, _) = run(h, id, &c.script, c.timeout).await;
            out.push((t.id.clone(), c.id.clone(), ok));
        }
    }
    out
}

async fn exam_is_real(exam: &Exam) {
    let h = Harness::new();
    let id = h.create().await;
    for (task, setup) in exam.setup_steps() {
        let (ok, log) = run(&h, &id, setup, Duration::from_secs(60)).await;
        assert!(ok, "{}: setup of {} failed: {log}", exam.id, task.id);
    }
    let unsolved = checks(&h, &id, exam).await;
    let passing: Vec<_> = unsolved.iter().filter(|c| c.2).collect();
    assert!(passing.is_empty(), "{}: an unsolved environment passes checks {passing:?}", exam.id);
    let solutions = exam.dir.join("solutions");
    for t in &exam.tasks {
        let path = solutions.join(format!("{}.sh", t.id));
        let body = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let sol = Script { path: path.clone(), body };
        let (ok, log) = run(&h, &id, &sol, Duration::from_secs(60)).await;
        assert!(ok, "{}: solution of {} failed: {log}", exam.id, t.id);
        for c in &t.checks {
            let (ok, log) = run(&h, &id, &c.script, c.timeout).await;
            assert!(ok, "{}: after its solution, check {}/{} fails: {log}", exam.id, t.id, c.id);
        }
    }
    let solved = checks(&h, &id, exam).await;
    assert!(solved.iter().all(|c| c.2), "{}: not full marks after every solution: {solved:?}", exam.id);
    h.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_exam_scores_zero_unsolved_and_full_marks_solved() {
    let c = catalog();
    let exams: Vec<&Exam> = c.exams().filter(|e| !e.tasks.is_empty()).collect();
    assert!(exams.len() >= 3, "at least three sample exams with tasks");
    for exam in exams {
        assert!(exam.tasks.len() >= 5 || exam.id.as_str() == "quick-check", "{} has fewer than 5 tasks", exam.id);
        exam_is_real(exam).await;
    }
}
