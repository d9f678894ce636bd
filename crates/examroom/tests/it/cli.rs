//! The command line as operators use it: `--version` with the commit, shell completions, manual pages, and
//! `config show` (the effective configuration, where each value comes from, secrets masked). The real binary, no
//! server.

use std::process::{Command, Output};

fn examroom(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_examroom"));
    cmd.args(args);
    // Nothing from the caller's environment decides these outputs.
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("EXAMROOM_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run examroom")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "exit {:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let text = stdout(&examroom(&["--version"], &[]));
    let line = text.trim();
    let commit = line
        .strip_prefix(&format!("examroom {} (commit ", env!("CARGO_PKG_VERSION")))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{line:?}"));
    let head = Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match head {
        // Built from this checkout: the commit is HEAD's (build.rs runs again when HEAD moves).
        Some(head) => assert_eq!(commit, head, "{line}"),
        None => assert!(commit == "unknown" || commit.chars().all(|c| c.is_ascii_hexdigit()), "{line}"),
    }
}

#[test]
fn completions_for_bash_zsh_and_fish_know_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout(&examroom(&["completion", shell], &[]));
        for word in ["serve", "doctor", "config", "completion", "data-dir"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    // The bash script loads and registers itself.
    let script = stdout(&examroom(&["completion", "bash"], &[]));
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), script).unwrap();
    let loaded = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p examroom", file.path().display()))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&loaded.stdout).contains("_examroom"), "{loaded:?}");
}

#[test]
fn an_unknown_shell_is_a_clear_error() {
    let out = examroom(&["completion", "tcsh"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tcsh") && err.contains("bash") && err.contains("fish"), "{err}");
}

#[test]
fn the_manual_pages_come_from_the_same_definitions() {
    let page = stdout(&examroom(&["man"], &[]));
    assert!(page.contains(".TH examroom 1"), "{page}");
    assert!(page.contains(env!("CARGO_PKG_VERSION")), "the version is in the title line");
    assert!(page.contains("/etc/examroom/config.toml"), "the page says where the configuration is");
    let dir = tempfile::tempdir().unwrap();
    stdout(&examroom(&["man", "--dir", dir.path().to_str().unwrap()], &[]));
    for name in ["examroom.1", "examroom-serve.1", "examroom-config-show.1", "examroom-image-import.1"] {
        let page = std::fs::read_to_string(dir.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(page.contains(".TH"), "{name}");
    }
    let serve = std::fs::read_to_string(dir.path().join("examroom-serve.1")).unwrap();
    assert!(serve.contains("EXAMROOM_LISTEN"), "flags' variables are in the page");
}

#[test]
fn config_show_prints_each_value_with_its_source_and_masks_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "label = \"east\"\npool_max = 2\nlisten = \"127.0.0.1:9000\"\n").unwrap();
    let secret = "cli-test-secret-0123456789abcdef0123456789";
    let text = stdout(&examroom(
        &["config", "show", "--config", config.to_str().unwrap(), "--listen", "127.0.0.1:7000"],
        &[
            ("EXAMROOM_POOL_MAX", "5"),
            ("EXAMROOM_TOKEN_SECRET", secret),
            ("EXAMROOM_DATA_DIR", dir.path().to_str().unwrap()),
        ],
    ));
    let config = config.display();
    assert!(text.contains(&format!("# Configuration file: {config}\n")), "{text}");
    assert!(text.contains("listen = \"127.0.0.1:7000\"  # flag --listen\n"), "a flag beats the file: {text}");
    assert!(text.contains("pool_max = 5  # EXAMROOM_POOL_MAX\n"), "a variable beats the file: {text}");
    assert!(text.contains(&format!("label = \"east\"  # {config}\n")), "the file beats the default: {text}");
    assert!(text.contains("idle_timeout = \"1m\"  # default\n"), "{text}");
    assert!(text.contains(&format!("data_dir = \"{}\"  # EXAMROOM_DATA_DIR\n", dir.path().display())), "{text}");
    assert!(!text.contains(secret), "the secret is masked: {text}");
    assert!(text.contains("# token_secret = \"********\"  # EXAMROOM_TOKEN_SECRET\n"), "{text}");
}

#[test]
fn config_show_with_a_bad_file_names_the_file_and_the_key() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "listen = \"127.0.0.1:9000\"\nlisten_port = 9\n").unwrap();
    let out = examroom(&["config", "show", "--config", file.path().to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&file.path().display().to_string()) && err.contains("listen_port"), "{err}");
    let missing = examroom(&["config", "show", "--config", "/nonexistent/examroom.toml"], &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/examroom.toml"));
}

/// `examroom backup` (issue 17): a checked, private copy of a SQLite store that holds what the store held, never over an
/// existing file; for PostgreSQL, the pg_dump to run.
#[tokio::test]
async fn backup_copies_the_sqlite_store_and_names_pg_dump_for_postgres() {
    use examroom_core::{EnvironmentId, ExamId, ExamSessionId, SessionState, UserId};
    use examroom_store::sqlite::SqliteStore;
    use examroom_store::{EventKind, NewEvent, SessionRecord, SessionStore};
    use std::os::unix::fs::PermissionsExt;

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = SqliteStore::open(&data.join("examroom.db")).await.unwrap();
    let rec = SessionRecord {
        id: ExamSessionId::new_v4(),
        user_id: UserId::parse("alice").unwrap(),
        exam_id: ExamId::parse("quick").unwrap(),
        environment_id: EnvironmentId::new_v4(),
        state: SessionState::Created,
        progress: None,
        created_at: 1,
        ready_at: None,
        started_at: None,
        deadline: None,
        duration_ms: 60_000,
        start_grace_ms: 60_000,
        provisioning_timeout_ms: 60_000,
        ended_at: None,
        end_reason: None,
        failure: None,
        resources_released_at: None,
        graded: None,
        updated_at: 1,
        exam_version: None,
    };
    let event = NewEvent {
        at: 1,
        kind: EventKind::Transition,
        from: None,
        to: Some(SessionState::Created),
        reason: "accepted".into(),
        actor: "system".into(),
        data: None,
    };
    store.insert(&rec, &event).await.unwrap();

    // While the store is open (as a running server holds it).
    let out = tmp.path().join("copy.db");
    let (d, o) = (data.to_str().unwrap(), out.to_str().unwrap());
    let text = stdout(&examroom(&["backup", "--data-dir", d, "--out", o], &[]));
    assert!(text.contains("1 sessions; integrity check ok"), "{text}");
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
    let copy = SqliteStore::open(&out).await.unwrap();
    assert_eq!(copy.get(&rec.id).await.unwrap().as_ref(), Some(&rec));
    assert_eq!(copy.events(&rec.id).await.unwrap().len(), 1);
    copy.close().await;

    // Never over an existing file, and a clear word when there is no store.
    let again = examroom(&["backup", "--data-dir", d, "--out", o], &[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwrites"), "{again:?}");
    let none = examroom(&["backup", "--data-dir", tmp.path().join("nothing").to_str().unwrap(), "--out", "x.db"], &[]);
    assert!(String::from_utf8_lossy(&none.stderr).contains("no store at"), "{none:?}");

    // PostgreSQL: the pg_dump line, and nothing written; the password is not printed.
    let pg = tmp.path().join("pg.dump");
    let p = pg.to_str().unwrap();
    let dump = examroom(&["backup", "--database", "postgres://u:s3cret@db/examroom", "--out", p], &[]);
    let err = String::from_utf8_lossy(&dump.stderr);
    assert!(!dump.status.success() && err.contains("pg_dump --format=custom"), "{err}");
    assert!(!err.contains("s3cret") && !pg.exists(), "{err}");
    store.close().await;
}
