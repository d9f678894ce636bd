//! Lint for `examroom exam validate`: errors and hints on exams that load, and none on the samples.

use std::fs;
use std::path::Path;

use examroom_exams::{lint, load_exam, Severity};

fn file(root: &Path, path: &str, body: &str) {
    let p = root.join(path);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, body).unwrap();
}

fn findings(dir: &Path, severity: Severity) -> Vec<String> {
    lint(dir).into_iter().filter(|l| l.severity == severity).map(|l| l.problem.to_string()).collect()
}

#[test]
fn the_samples_have_no_lint_errors() {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../exams");
    assert_eq!(findings(&samples, Severity::Error), Vec::<String>::new());
}

#[test]
fn every_kind_of_finding_is_reported_with_its_place() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    file(dir, "checks/a.sh", "#!/bin/sh\ntest -d /srv/data\r\n");
    file(dir, "checks/b.sh", "test -f /srv/other\n");
    file(dir, "checks/slow.sh", "#!/bin/sh\nsleep 1\n");
    file(dir, "checks/never.sh", "#!/bin/sh\nexit 0\n");
    file(dir, "checks/stray.sh", "#!/bin/sh\nexit 0\n");
    file(dir, "setup/a.sh", "#!/bin/sh\nmkdir -p /srv/input\n");
    file(dir, "setup/forgotten.sh", "#!/bin/sh\necho never run\n");
    file(dir, "solutions/a.sh", "#!/bin/sh\nmkdir -p /srv/data\n");
    let slow_checks: String = (0..5)
        .map(|i| format!("[[tasks.checks]]\nid = \"slow-{i}\"\ndescription = \"d\"\nscript = \"checks/slow.sh\"\ntimeout = \"1m\"\n"))
        .collect();
    file(
        dir,
        "exam.toml",
        &format!(
            "id = \"linted\"\ntitle = \"L\"\ndescription = \"\"\nduration = \"5m\"\ntotal_points = 10\n[environment]\nbase = \
             \"host\"\n[[tasks]]\nid = \"a\"\ntitle = \"A\"\nprompt = \"Make `/srv/data` from `/srv/input`, and \
             `/srv/forgotten`.\"\nsetup = \"setup/a.sh\"\nsolution = \"solutions/a.sh\"\n[[tasks.checks]]\nid = \
             \"data\"\ndescription = \"d\"\nscript = \"checks/a.sh\"\n[[tasks.checks]]\nid = \"other\"\ndescription = \
             \"d\"\nscript = \"checks/b.sh\"\n[[tasks]]\nid = \"b\"\ntitle = \"B\"\nprompt = \"p\"\n{slow_checks}\
             [[tasks.checks]]\nid = \"never\"\ndescription = \"d\"\nscript = \"checks/never.sh\"\n"
        ),
    );
    load_exam(dir).expect("it loads: lint looks past the format");
    let errors = findings(dir, Severity::Error);
    let hints = findings(dir, Severity::Hint);
    let has = |list: &[String], needle: &str| list.iter().any(|f| f.contains(needle));
    assert!(has(&errors, "exam.toml:5: total_points: the checks' weights add up to 8, not the 10"), "{errors:#?}");
    assert!(has(&errors, "tasks[0].checks[0].script: checks/a.sh has Windows line endings"), "{errors:#?}");
    assert!(has(&errors, "setup: setup/forgotten.sh is a setup script that no task runs"), "{errors:#?}");
    assert!(
        has(&errors, "check b/never may never run: the timeouts of the checks before it add up to 320 s"),
        "{errors:#?}"
    );
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(has(&hints, "checks/b.sh has no #! line"), "{hints:#?}");
    assert!(has(&hints, "checks/stray.sh is a check script that no check runs"), "{hints:#?}");
    assert!(has(&hints, "task b has no reference solution"), "{hints:#?}");
    assert!(has(&hints, "mentions /srv/forgotten, which none of its checks looks at"), "{hints:#?}");
    // A path a check looks at, or one that setup provides, is no hint.
    assert!(!has(&hints, "/srv/data,") && !has(&hints, "/srv/input"), "{hints:#?}");
    assert_eq!(hints.len(), 4, "{hints:#?}");
}
