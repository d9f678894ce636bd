//! `examroom exam import ckx`: a small lab written here in CK-X's format (no CK-X content) imports with the expected
//! report, and the exam it becomes validates.

use std::fs;
use std::path::Path;

use examroom_exams::{ckx, lint, load_exam, validate, Severity, BACKEND_DOCKER};

fn file(root: &Path, path: &str, body: &str) {
    let p = root.join(path);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, body).unwrap();
}

/// Three questions: question 1 names a validation script that is missing, question 2 writes its weight as a string,
/// question 3 has two steps with the same id; setup scripts q1, q2 and q10 (no question 10); weights add up to 95.
fn write_lab(labs: &Path) {
    file(
        labs,
        "labs.json",
        r#"{"labs": [{"id": "ckad-tiny", "assetPath": "assets/exams/ckad/tiny", "name": "CKAD tiny lab",
            "category": "CKAD", "description": "Three questions", "warmUpTimeInSeconds": 180,
            "difficulty": "easy", "examDurationInMinutes": 30}]}"#,
    );
    let lab = labs.join("ckad/tiny");
    file(
        &lab,
        "config.json",
        r#"{"lab": "ckad-tiny", "workerNodes": 2, "answers": "answers.md", "questions": "assessment.json", "totalMarks": 100}"#,
    );
    file(
        &lab,
        "assessment.json",
        r#"{"questions": [
          {"id": "1", "namespace": "web", "machineHostname": "ckad9999", "question": "Create a pod `nginx` in namespace `web`.",
           "concepts": ["pods", "namespaces"],
           "verification": [
             {"id": 1, "description": "The pod exists", "verificationScriptFile": "q1_s1_pod.sh", "expectedOutput": "0", "weightage": 30},
             {"id": 2, "description": "The pod runs nginx", "verificationScriptFile": "q1_s2_image.sh", "expectedOutput": "0", "weightage": 20}]},
          {"id": "2", "namespace": "apps", "question": "Scale the deployment `api` to 3 replicas.", "concepts": ["deployments"],
           "verification": [
             {"id": 1, "description": "api has 3 replicas", "verificationScriptFile": "q2_s1_replicas.sh", "expectedOutput": "0", "weightage": "25"}]},
          {"id": "3", "question": "Label the node `worker-1` with `disk=ssd`.", "concepts": ["nodes"],
           "verification": [
             {"id": 1, "description": "The label is set", "verificationScriptFile": "q3_s1_label.sh", "expectedOutput": "0", "weightage": 10},
             {"id": 1, "description": "Only that node has it", "verificationScriptFile": "q3_s2_only.sh", "expectedOutput": "0", "weightage": 10}]}
        ]}"#,
    );
    file(&lab, "scripts/setup/q1_setup.sh", "#!/bin/bash\nkubectl create namespace web\n");
    file(&lab, "scripts/setup/q2_setup.sh", "#!/bin/bash\nkubectl create deployment api --image=nginx -n apps\n");
    file(&lab, "scripts/setup/q10_setup.sh", "#!/bin/bash\necho left over\n");
    file(&lab, "scripts/validation/q1_s1_pod.sh", "#!/bin/bash\nkubectl get pod nginx -n web\n");
    file(
        &lab,
        "scripts/validation/q2_s1_replicas.sh",
        "#!/bin/bash\r\n[ \"$(kubectl get deploy api -n apps -o jsonpath='{.spec.replicas}')\" = 3 ]\r\n",
    );
    file(&lab, "scripts/validation/q3_s1_label.sh", "kubectl get node worker-1 --show-labels | grep -q disk=ssd\n");
    file(
        &lab,
        "scripts/validation/q3_s2_only.sh",
        "#!/bin/bash\n[ \"$(kubectl get nodes -l disk=ssd -o name | wc -l)\" = 1 ]\n",
    );
    file(
        &lab,
        "answers.md",
        "# Answers\n\n## Question 1\n```bash\nkubectl run nginx --image=nginx -n web\n```\n\n## Question 2\n```bash\nkubectl scale deployment api --replicas=3 -n apps\n```\n\n## Question 3\n```yaml\nlabels: {disk: ssd}\n```\n```bash\nkubectl label node worker-1 disk=ssd\n```\n",
    );
}

#[test]
fn a_ckx_lab_imports_with_its_report_and_the_exam_validates() {
    let tmp = tempfile::tempdir().unwrap();
    let labs = tmp.path().join("labs");
    write_lab(&labs);
    let out = tmp.path().join("out");
    let reports = ckx::import(&labs, &out, false).unwrap();
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    let text = ckx::render(r);
    let dir = r.exam_dir.clone().unwrap_or_else(|| panic!("not imported:\n{text}"));
    assert_eq!(dir, out.join("ckad-tiny"));
    assert_eq!((r.tasks, r.checks), (3, 5), "{text}");
    for expected in [
        "question 1, verification 2: the script \"q1_s2_image.sh\" is missing; a check that always fails is written",
        "question 2, verification 1: weightage 25 is written as a string; read as 25",
        "question 3: duplicate verification id \"1\": imported as check v1-2",
        "scripts/setup/q10_setup.sh: no question 10 uses it; it still runs, as in CK-X",
        "the weights add up to 95, not 100",
        "q2_s1_replicas.sh: Windows line endings, converted",
        "question 3: answers.md has 1 block(s) that are not shell",
    ] {
        assert!(r.findings.iter().any(|f| f.contains(expected)), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(r.findings.len(), 7, "{text}");
    assert!(
        r.notes.iter().any(|n| n.contains("run in CK-X's glob order (q1_setup.sh, q10_setup.sh, q2_setup.sh)")),
        "{text}"
    );
    assert!(r.notes.iter().any(|n| n.contains("each must now exit 0")), "{text}");
    assert!(fs::read_to_string(dir.join("import-report.txt")).unwrap().contains("the weights add up to 95"));

    // The exam validates (no problem, no lint error) and says what it needs.
    assert_eq!(validate(&dir), vec![], "{text}");
    let errors: Vec<_> = lint(&dir).into_iter().filter(|l| l.severity == Severity::Error).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let exam = load_exam(&dir).unwrap();
    assert_eq!(exam.environment.backend, BACKEND_DOCKER);
    assert_eq!(exam.environment.base, format!("image:{}", ckx::JUMPHOST_IMAGE));
    let cluster = &exam.environment.services[0];
    assert_eq!(cluster.name, "cluster");
    assert!(cluster.environment.contains(&("WORKER_NODES".into(), "2".into())), "{cluster:?}");
    assert_eq!(exam.duration.as_secs(), 30 * 60);
    let ids: Vec<&str> = exam.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["q1", "q2", "q3"]);
    assert_eq!(exam.tasks[0].tags, ["pods", "namespaces"]);
    assert!(exam.tasks[0].prompt.contains("Create a pod `nginx`") && exam.tasks[0].prompt.contains("Namespace: `web`"));
    let weights: Vec<u32> = exam.tasks.iter().flat_map(|t| t.checks.iter().map(|c| c.weight)).collect();
    assert_eq!(weights, [30, 20, 25, 10, 10]);
    assert!(exam.tasks[0].checks[1].script.body.contains("exit 1"), "the missing script's check always fails");
    assert!(exam.tasks[1].checks[0].script.body.starts_with("#!/bin/bash\nexport KUBECONFIG=/root/.kube/config\n"));
    assert!(!exam.tasks[1].checks[0].script.body.contains('\r'));
    assert!(exam.tasks[2].checks[0].script.body.starts_with("#!/bin/bash\n"), "a #! line is added");
    assert!(exam.tasks.iter().all(|t| t.solution.is_some()));
    assert!(exam.tasks[2].solution.as_ref().unwrap().body.contains("kubectl label node worker-1 disk=ssd"));
    // Setup: one script, CK-X's order.
    let setup = &exam.tasks[0].setup.as_ref().unwrap().body;
    let at = |name: &str| setup.find(&format!("echo \"== {name}\"")).unwrap();
    assert!(at("q1_setup.sh") < at("q10_setup.sh") && at("q10_setup.sh") < at("q2_setup.sh"), "{setup}");
    assert!(setup.contains("failed (exit $rc)") && setup.contains("exit 1"), "a failing setup script fails the setup");

    // Importing again into the same directory refuses the lab and touches nothing.
    let again = ckx::import(&labs, &out, false).unwrap();
    assert!(again[0].exam_dir.is_none() && again[0].findings[0].contains("already exists"), "{:?}", again[0]);

    // --natural-order: q1, q2, q10.
    let natural = tmp.path().join("natural");
    let r = &ckx::import(&labs, &natural, true).unwrap()[0];
    let setup = fs::read_to_string(natural.join("ckad-tiny/setup/lab.sh")).unwrap();
    let at = |name: &str| setup.find(&format!("echo \"== {name}\"")).unwrap();
    assert!(at("q1_setup.sh") < at("q2_setup.sh") && at("q2_setup.sh") < at("q10_setup.sh"), "{setup}");
    assert!(r.notes.iter().any(|n| n.contains("natural order")));
}

#[test]
fn bad_labs_are_reported_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let labs = tmp.path().join("labs");
    file(
        &labs,
        "labs.json",
        r#"{"labs": [{"id": "gone", "assetPath": "nowhere/lab"}, {"id": "../../escape", "assetPath": "../../etc"}]}"#,
    );
    let reports = ckx::import(&labs, &tmp.path().join("out"), false).unwrap();
    assert_eq!(reports.len(), 2);
    for r in &reports {
        assert!(r.exam_dir.is_none());
        assert!(r.findings[0].contains("names no lab directory"), "{r:?}");
    }
    file(&labs, "labs.json", "not json");
    assert!(ckx::import(&labs, &tmp.path().join("out"), false).unwrap_err().to_string().contains("not JSON"));
    assert!(ckx::import(&tmp.path().join("none"), &tmp.path().join("out"), false).is_err());
}
