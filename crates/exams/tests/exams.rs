//! The exam catalog from the outside: the repository's samples, every kind of bad input (each reported with
//! its file, line and field), and catalogs generated in temporary directories.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use examroom_core::ExamId;
use examroom_exams::{load_exam, parse_exam, validate, Catalog, EnvironmentConfig, Exam, Problem};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// A valid exam.toml with `top` added to the top level and `env` to `[environment]`.
fn text(top: &str, env: &str) -> String {
    format!(
        "id = \"t\"\ntitle = \"T\"\ndescription = \"d\"\nduration = \"10m\"\n{top}\n[environment]\nbase = \"host\"\n{env}\n"
    )
}

/// The 1-based line of the first line of `text` that contains `needle`.
fn line_with(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1).unwrap_or_else(|| panic!("{needle:?} not in text"))
}

fn parse(text: &str) -> Result<Exam, Vec<Problem>> {
    parse_exam(text, Path::new("x/exam.toml"), Path::new("x"))
}

fn ok(text: &str) -> Exam {
    parse(text).unwrap_or_else(|ps| panic!("refused:\n{}", render(&ps)))
}

fn problems(text: &str) -> Vec<Problem> {
    match parse(text) {
        Ok(exam) => panic!("accepted: {exam:?}\n{text}"),
        Err(ps) => ps,
    }
}

fn render(ps: &[Problem]) -> String {
    ps.iter().map(|p| format!("{p}\n")).collect()
}

/// Exactly one problem, with this field, on the line holding `needle` (or no line), whose message holds
/// `message`.
fn assert_one(text: &str, field: Option<&str>, needle: Option<&str>, message: &str) -> Problem {
    let ps = problems(text);
    assert_eq!(ps.len(), 1, "expected one problem, got:\n{}\nin:\n{text}", render(&ps));
    let p = ps.into_iter().next().unwrap();
    assert_eq!(p.file, PathBuf::from("x/exam.toml"));
    assert_eq!(p.field.as_deref(), field, "{p}");
    assert_eq!(p.line, needle.map(|n| line_with(text, n)), "{p}\nin:\n{text}");
    assert!(p.message.contains(message), "{p:?} does not mention {message:?}");
    p
}

fn write(path: &Path, content: impl AsRef<[u8]>) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../exams")
}

#[test]
fn samples_load_without_problems() {
    let catalog = Catalog::load(&samples());
    assert_eq!(catalog.problems(), &[], "{}", render(catalog.problems()));
    let ids: Vec<&str> = catalog.exams().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["linux-basics", "quick-check"]);

    let linux = catalog.get(&ExamId::parse("linux-basics").unwrap()).unwrap();
    assert_eq!(linux.title, "Linux basics: files and permissions");
    assert!(!linux.description.is_empty());
    assert_eq!(linux.duration, Duration::from_secs(45 * 60));
    assert_eq!(linux.provisioning_timeout, Duration::from_secs(60));
    assert_eq!(linux.start_grace, Duration::from_secs(600));
    let env = &linux.environment;
    assert_eq!(env.base, "host");
    assert_eq!(env.memory_bytes, 512 * MIB);
    assert_eq!(env.pids, 256);
    assert_eq!(env.cpu_millicores, 1000);
    assert_eq!(env.network, "none");
    assert!(!env.desktop);
    assert!(linux.dir.is_absolute());
    assert!(linux.file().is_file());

    let quick = catalog.get(&ExamId::parse("quick-check").unwrap()).unwrap();
    assert_eq!(quick.duration, Duration::from_secs(5 * 60));

    assert_eq!(validate(&samples()), vec![]);
    assert_eq!(validate(&samples().join("linux-basics")), vec![]);
    assert_eq!(load_exam(&samples().join("quick-check")).unwrap().id.as_str(), "quick-check");
}

#[test]
fn defaults_apply() {
    let exam = ok(&text("", ""));
    assert_eq!(exam.id.as_str(), "t");
    assert_eq!(exam.title, "T");
    assert_eq!(exam.description, "d");
    assert_eq!(exam.duration, Duration::from_secs(600));
    assert_eq!(exam.provisioning_timeout, examroom_core::DEFAULT_PROVISIONING_TIMEOUT);
    assert_eq!(exam.provisioning_timeout, Duration::from_secs(60));
    assert_eq!(exam.start_grace, examroom_core::DEFAULT_START_GRACE);
    assert_eq!(exam.start_grace, Duration::from_secs(600));
    assert_eq!(exam.environment, EnvironmentConfig::host());
    assert_eq!(exam.environment.memory_bytes, 512 * MIB);
    assert_eq!(exam.environment.pids, 512);
    assert_eq!(exam.environment.cpu_millicores, 1000);
    assert_eq!(exam.environment.disk_bytes, None);
    assert_eq!(exam.environment.network, "none");
    assert!(!exam.environment.desktop);
    assert_eq!(exam.dir, PathBuf::from("x"));
}

#[test]
fn every_field_set() {
    let exam = ok(&text(
        "provisioning_timeout = \"2m\"\nstart_grace = \"1h\"",
        "memory = \"2G\"\npids = 1024\ncpu = 2\ndisk = \"256M\"\nnetwork = \"none\"\ndesktop = true",
    ));
    assert_eq!(exam.provisioning_timeout, Duration::from_secs(120));
    assert_eq!(exam.start_grace, Duration::from_secs(3600));
    let env = exam.environment;
    assert_eq!((env.memory_bytes, env.pids, env.cpu_millicores), (2 * GIB, 1024, 2000));
    assert_eq!(env.disk_bytes, Some(256 * MIB));
    assert!(env.desktop);
}

#[test]
fn cpu_as_cores_or_millicores() {
    for cpu in ["1.5", "\"1500m\"", "\"1.5\""] {
        assert_eq!(ok(&text("", &format!("cpu = {cpu}"))).environment.cpu_millicores, 1500, "cpu = {cpu}");
    }
    assert_eq!(ok(&text("", "cpu = 2")).environment.cpu_millicores, 2000);
    assert_eq!(ok(&text("", "cpu = 0.05")).environment.cpu_millicores, 50);
    assert_eq!(ok(&text("", "cpu = 64")).environment.cpu_millicores, 64_000);
    assert_eq!(ok(&text("", "cpu = \"250m\"")).environment.cpu_millicores, 250);
}

#[test]
fn sizes_parse() {
    let memory = |v: &str| ok(&text("", &format!("memory = {v}"))).environment.memory_bytes;
    assert_eq!(memory("\"512M\""), 512 * MIB);
    assert_eq!(memory("\"1G\""), GIB);
    assert_eq!(memory("\"256MiB\""), 256 * MIB);
    assert_eq!(memory("67108864"), 64 * MIB);
    assert_eq!(memory("\"33554432\""), 32 * MIB);
    assert_eq!(memory("\"64G\""), 64 * GIB);
    let disk = |v: &str| ok(&text("", &format!("disk = {v}"))).environment.disk_bytes;
    assert_eq!(disk("\"4M\""), Some(4 * MIB));
    assert_eq!(disk("4194304"), Some(4 * MIB));
    assert_eq!(examroom_exams::parse_size("1048576"), Ok(MIB));
    assert_eq!(examroom_exams::parse_size("512M"), Ok(512 * MIB));
}

#[test]
fn bases() {
    for base in ["host", "rootfs:/srv/rootfs/debian", "image:debian:12", "image:ghcr.io/example/exam-base_1.2"] {
        assert_eq!(ok(&text("", "").replace("\"host\"", &format!("{base:?}"))).environment.base, base);
    }
    for (base, message) in [
        ("rootfs:srv/rootfs", "not absolute"),
        ("rootfs:/srv/../etc", "\"..\""),
        ("rootfs:", "no path"),
        ("image:Debian", "'D'"),
        ("image:", "no image name"),
        ("docker:debian", "unknown base"),
        ("", "unknown base"),
    ] {
        let t = text("", "").replace("\"host\"", &format!("{base:?}"));
        assert_one(&t, Some("environment.base"), Some("base ="), message);
    }
}

#[test]
fn invalid_toml_names_the_parsers_line() {
    let t = "id = \"t\"\ntitle = \"T\"\ndescription = \"unterminated\nduration = \"10m\"\n";
    let p = assert_one(t, None, Some("description"), "invalid TOML");
    assert_eq!(p.line, Some(3));
    // A duplicate key is invalid TOML as well.
    let t = text("title = \"again\"", "");
    let p = problems(&t);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].line, Some(line_with(&t, "again")), "{}", p[0]);
    assert!(p[0].message.contains("duplicate"), "{}", p[0]);
    // Not even a table.
    assert_eq!(problems("[[[").len(), 1);
}

#[test]
fn missing_required_fields() {
    for field in ["id", "title", "description", "duration"] {
        let t: String =
            text("", "").lines().filter(|l| !l.starts_with(&format!("{field} ="))).map(|l| format!("{l}\n")).collect();
        let p = assert_one(&t, Some(field), None, "missing required field");
        assert_eq!(p.to_string(), format!("x/exam.toml: {field}: missing required field"));
    }
    // A missing field in [environment] points at the section.
    let t = text("", "").replace("base = \"host\"\n", "memory = \"1G\"\n");
    assert_one(&t, Some("environment.base"), Some("[environment]"), "missing required field");
    // No [environment] at all.
    let t = "id = \"t\"\ntitle = \"T\"\ndescription = \"d\"\nduration = \"10m\"\n";
    assert_one(t, Some("environment"), None, "missing required field");
    // Everything missing: one problem each.
    let ps = problems("");
    let fields: Vec<_> = ps.iter().map(|p| p.field.as_deref().unwrap()).collect();
    assert_eq!(fields, ["id", "title", "description", "duration", "environment"]);
}

#[test]
fn wrong_types() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("title = 5", "", "title", "expected a string, found the integer 5"),
        ("", "pids = \"many\"", "environment.pids", "expected a whole number"),
        ("", "pids = 1.5", "environment.pids", "expected a whole number"),
        ("", "desktop = \"no\"", "environment.desktop", "expected true or false"),
        ("", "memory = true", "environment.memory", "expected a size"),
        ("", "cpu = [1]", "environment.cpu", "expected a number of cores"),
        ("", "network = false", "environment.network", "expected a string"),
        ("start_grace = 600", "", "start_grace", "expected a duration string"),
        ("provisioning_timeout = 1979-05-27", "", "provisioning_timeout", "expected a duration string"),
    ];
    for (top, env, field, message) in cases {
        let t = text(top, env);
        let t = if field == &"title" { t.replace("title = \"T\"\n", "") } else { t };
        let needle = if top.is_empty() { env } else { top };
        assert_one(&t, Some(field), Some(needle.split(' ').next().unwrap()), message);
    }
    // [environment] given as a plain value.
    let t = "id = \"t\"\ntitle = \"T\"\ndescription = \"d\"\nduration = \"10m\"\nenvironment = \"host\"\n";
    assert_one(t, Some("environment"), Some("environment ="), "expected a table");
}

#[test]
fn bad_durations_use_cores_messages() {
    for (value, message) in [
        ("-5m", "is negative"),
        ("0s", "is zero"),
        ("90", "has no unit"),
        ("1.5h", "has a fraction"),
        ("", "empty"),
        ("5d", "unknown unit"),
    ] {
        let t = text("", "").replace("\"10m\"", &format!("{value:?}"));
        let p = assert_one(&t, Some("duration"), Some("duration ="), message);
        if let Err(e) = examroom_core::parse_duration(value) {
            assert_eq!(p.message, e.to_string());
        }
    }
    let t = text("", "").replace("\"10m\"", "90");
    assert_one(&t, Some("duration"), Some("duration ="), "expected a duration string");
}

#[test]
fn bad_ids() {
    for (id, message) in [("Linux_Basics", "exam id contains 'L'"), ("-x", "must not start with '-'"), ("", "empty")] {
        let t = text("", "").replace("id = \"t\"", &format!("id = {id:?}"));
        assert_one(&t, Some("id"), Some("id ="), message);
    }
    let t = text("", "").replace("id = \"t\"", &format!("id = \"{}\"", "a".repeat(65)));
    assert_one(&t, Some("id"), Some("id ="), "too long");
}

#[test]
fn limits_out_of_range() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("", "memory = \"16M\"", "environment.memory", "out of range"),
        ("", "memory = \"65G\"", "environment.memory", "out of range"),
        ("", "memory = \"0\"", "environment.memory", "zero"),
        ("", "memory = -1", "environment.memory", "greater than zero"),
        ("", "memory = \"1.5G\"", "environment.memory", "fraction"),
        ("", "memory = \"12 parsecs\"", "environment.memory", "space"),
        ("", "pids = 15", "environment.pids", "from 16 to 65536"),
        ("", "pids = 65537", "environment.pids", "from 16 to 65536"),
        ("", "pids = -1", "environment.pids", "out of range"),
        ("", "cpu = 0.01", "environment.cpu", "out of range"),
        ("", "cpu = 65", "environment.cpu", "out of range"),
        ("", "cpu = \"49m\"", "environment.cpu", "out of range"),
        ("", "cpu = 0", "environment.cpu", "greater than zero"),
        ("", "cpu = -1.5", "environment.cpu", "greater than zero"),
        ("", "cpu = nan", "environment.cpu", "not a number"),
        ("", "cpu = \"fast\"", "environment.cpu", "neither cores nor millicores"),
        ("", "disk = \"1M\"", "environment.disk", "at least 4 MiB"),
        ("", "disk = \"512M\"", "environment.disk", "smaller than memory"),
        ("", "network = \"host\"", "environment.network", "only \"none\""),
        ("provisioning_timeout = \"500ms\"", "", "provisioning_timeout", "from 1s to 10m"),
        ("provisioning_timeout = \"11m\"", "", "provisioning_timeout", "from 1s to 10m"),
        ("provisioning_timeout = \"0s\"", "", "provisioning_timeout", "is zero"),
        ("start_grace = \"25h\"", "", "start_grace", "25h is out of range; it must be at most 24h"),
        ("start_grace = \"-1m\"", "", "start_grace", "negative"),
        ("title = \"  \"", "", "title", "blank"),
    ];
    for (top, env, field, message) in cases {
        let t = text(top, env);
        let t = if field == &"title" { t.replacen("title = \"T\"\n", "", 1) } else { t };
        let needle = if top.is_empty() { env } else { top };
        assert_one(&t, Some(field), Some(needle.split(' ').next().unwrap()), message);
    }
    // The bounds themselves are allowed.
    ok(&text("provisioning_timeout = \"1s\"\nstart_grace = \"24h\"", "memory = \"32M\"\npids = 16\ndisk = \"4M\""));
    ok(&text("provisioning_timeout = \"10m\"", "memory = \"64G\"\npids = 65536\ndisk = \"63G\""));
    // The disk is compared with the memory given, not the default.
    ok(&text("", "memory = \"2G\"\ndisk = \"1G\""));
}

#[test]
fn unknown_fields_are_errors_but_tasks_and_result_are_reserved() {
    let t = text("", "memroy = \"1G\"");
    let p = assert_one(&t, Some("environment.memroy"), Some("memroy"), "unknown field \"memroy\"");
    assert!(p.message.contains("did you mean \"memory\""), "{p}");
    let t = text("titel = \"x\"", "");
    assert_one(&t, Some("titel"), Some("titel"), "did you mean \"title\"");
    let t = text("[extra]\nx = 1", "");
    assert_one(&t, Some("extra"), Some("[extra]"), "unknown field");

    let reserved = format!(
        "{}\n[[tasks]]\nid = \"one\"\nprompt = \"Do it\"\n\n[[tasks]]\nid = \"two\"\n\n[result]\npass = 0.5\n",
        text("", "")
    );
    assert_eq!(ok(&reserved).id.as_str(), "t");
}

#[test]
fn environment_as_inline_table_or_dotted_keys() {
    let head = "id = \"t\"\ntitle = \"T\"\ndescription = \"d\"\nduration = \"10m\"\n";
    let exam = ok(&format!("{head}environment = {{ base = \"host\", cpu = 1.5 }}\n"));
    assert_eq!(exam.environment.cpu_millicores, 1500);
    let exam = ok(&format!("{head}environment.base = \"host\"\nenvironment.pids = 64\n"));
    assert_eq!(exam.environment.pids, 64);
    let t = format!("{head}environment = {{ base = \"host\", pids = 1 }}\n");
    assert_one(&t, Some("environment.pids"), Some("environment ="), "from 16 to 65536");
}

#[test]
fn all_problems_are_collected_each_on_its_line() {
    let t = "\
id = \"Bad_Id\"
title = 7
description = \"d\"
duration = \"-1m\"
start_grace = \"48h\"
colour = \"blue\"

[environment]
base = \"rootfs:relative\"
memory = \"1K\"
pids = 3
cpu = \"lots\"
disk = \"1M\"
network = \"bridge\"
desktop = 1
";
    let ps = problems(t);
    // All of them, in the order of the file.
    let got: Vec<(Option<usize>, Option<&str>)> = ps.iter().map(|p| (p.line, p.field.as_deref())).collect();
    let expected = [
        (Some(1), Some("id")),
        (Some(2), Some("title")),
        (Some(4), Some("duration")),
        (Some(5), Some("start_grace")),
        (Some(6), Some("colour")),
        (Some(9), Some("environment.base")),
        (Some(10), Some("environment.memory")),
        (Some(11), Some("environment.pids")),
        (Some(12), Some("environment.cpu")),
        (Some(13), Some("environment.disk")),
        (Some(14), Some("environment.network")),
        (Some(15), Some("environment.desktop")),
    ];
    assert_eq!(got, expected, "{}", render(&ps));
    assert!(ps.iter().all(|p| p.file == Path::new("x/exam.toml")));
}

// ---- files on disk ----

#[test]
fn huge_file_is_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let exam = dir.path().join("huge");
    // Valid TOML, just too big: parsing it would succeed, so the refusal comes first.
    let padding = "# padding\n".repeat(30_000);
    write(&exam.join("exam.toml"), format!("{}{padding}", text("", "")));
    let ps = load_exam(&exam).unwrap_err();
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].file, exam.join("exam.toml"));
    assert_eq!((ps[0].line, ps[0].field.as_deref()), (None, None));
    assert!(ps[0].message.starts_with("huge file"), "{}", ps[0]);
    // Exactly the limit is fine.
    let base = text("", "");
    let fill = examroom_exams::MAX_EXAM_FILE_BYTES as usize - base.len() - 2;
    write(&exam.join("exam.toml"), format!("{base}#{}\n", "x".repeat(fill)));
    assert_eq!(fs::metadata(exam.join("exam.toml")).unwrap().len(), examroom_exams::MAX_EXAM_FILE_BYTES);
    load_exam(&exam).unwrap();
}

#[test]
fn symlinks_must_stay_inside_the_exam_directory() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside.toml");
    write(&outside, text("", ""));
    let exam = dir.path().join("catalog/linked");
    fs::create_dir_all(&exam).unwrap();
    std::os::unix::fs::symlink(&outside, exam.join("exam.toml")).unwrap();
    let ps = load_exam(&exam).unwrap_err();
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].file, exam.join("exam.toml"));
    assert!(ps[0].message.contains("symlink to a file outside the exam directory"), "{}", ps[0]);

    // A relative symlink that climbs out is refused the same way.
    let climb = dir.path().join("catalog/climb");
    fs::create_dir_all(&climb).unwrap();
    std::os::unix::fs::symlink("../../outside.toml", climb.join("exam.toml")).unwrap();
    assert!(load_exam(&climb).unwrap_err()[0].message.contains("outside"));

    // A symlink to a file inside the directory is fine.
    let inside = dir.path().join("catalog/inside");
    write(&inside.join("definition/real.toml"), text("", ""));
    std::os::unix::fs::symlink("definition/real.toml", inside.join("exam.toml")).unwrap();
    assert_eq!(load_exam(&inside).unwrap().id.as_str(), "t");

    // A dangling symlink is reported, not followed.
    let dangling = dir.path().join("catalog/dangling");
    fs::create_dir_all(&dangling).unwrap();
    std::os::unix::fs::symlink("nowhere.toml", dangling.join("exam.toml")).unwrap();
    assert!(load_exam(&dangling).unwrap_err()[0].message.contains("cannot be followed"));
}

#[test]
fn non_utf8_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"id = \"t\"\ntitle = \"T\"\ndescription = \"caf".to_vec();
    bytes.extend_from_slice(&[0xE9, b'"', b'\n']);
    bytes.extend_from_slice(b"duration = \"10m\"\n[environment]\nbase = \"host\"\n");
    write(&dir.path().join("exam.toml"), bytes);
    let ps = load_exam(dir.path()).unwrap_err();
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].line, Some(3));
    assert!(ps[0].message.contains("not valid UTF-8"), "{}", ps[0]);
}

#[test]
fn exam_toml_must_be_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("exam.toml")).unwrap();
    let ps = load_exam(dir.path()).unwrap_err();
    assert!(ps[0].message.contains("not a regular file"), "{}", ps[0]);
    let empty = tempfile::tempdir().unwrap();
    assert!(load_exam(empty.path()).unwrap_err()[0].message.contains("there is no exam.toml"));
}

#[test]
fn file_problems_display_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let t = text("", "pids = 1");
    write(&dir.path().join("exam.toml"), &t);
    let ps = load_exam(dir.path()).unwrap_err();
    let shown = ps[0].to_string();
    let expected_prefix =
        format!("{}:{}: environment.pids: ", dir.path().join("exam.toml").display(), line_with(&t, "pids"));
    assert!(shown.starts_with(&expected_prefix), "{shown}");
}

// ---- catalogs ----

#[test]
fn one_good_and_three_broken() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("good/exam.toml"), text("", "").replace("\"t\"", "\"good\""));
    write(&root.join("bad-toml/exam.toml"), "id = \"bad-toml\"\ntitle = [\n");
    write(&root.join("bad-limit/exam.toml"), text("", "pids = 1").replace("\"t\"", "\"bad-limit\""));
    write(&root.join("bad-huge/exam.toml"), "#".repeat(300 * 1024));
    // Not exams: skipped without a problem.
    write(&root.join("README.md"), "the catalog");
    write(&root.join(".hidden/exam.toml"), "not even toml [");
    write(&root.join("shared-scripts/setup.sh"), "#!/bin/sh\n");

    let catalog = Catalog::load(root);
    let ids: Vec<&str> = catalog.exams().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["good"]);
    assert_eq!(catalog.len(), 1);
    let ps = catalog.problems();
    assert_eq!(ps.len(), 3, "{}", render(ps));
    // In the order of the directory names.
    assert_eq!(ps[0].file, root.join("bad-huge/exam.toml"));
    assert!(ps[0].message.starts_with("huge file"));
    assert_eq!(ps[1].file, root.join("bad-limit/exam.toml"));
    assert_eq!((ps[1].line, ps[1].field.as_deref()), (Some(8), Some("environment.pids")));
    assert_eq!(ps[2].file, root.join("bad-toml/exam.toml"));
    assert_eq!((ps[2].line, ps[2].field.as_deref()), (Some(3), None));
    assert!(ps[2].message.starts_with("invalid TOML"));

    assert_eq!(validate(root), ps.to_vec());
    assert!(validate(&root.join("good")).is_empty());
    assert_eq!(validate(&root.join("bad-limit")).len(), 1);
}

#[test]
fn duplicate_ids_keep_the_first_by_directory_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let t = text("", "").replace("\"t\"", "\"same\"").replace("\"T\"", "\"First\"");
    write(&root.join("a-first/exam.toml"), &t);
    let later = format!("# the copy\n{}", t.replace("First", "Second"));
    write(&root.join("b-second/exam.toml"), &later);
    let catalog = Catalog::load(root);
    assert_eq!(catalog.len(), 1);
    let exam = catalog.get(&ExamId::parse("same").unwrap()).unwrap();
    assert_eq!(exam.title, "First");
    let ps = catalog.problems();
    assert_eq!(ps.len(), 1, "{}", render(ps));
    assert_eq!(ps[0].file, root.join("b-second/exam.toml"));
    assert_eq!((ps[0].line, ps[0].field.as_deref()), (Some(2), Some("id")));
    assert!(ps[0].message.contains("duplicate exam id \"same\""), "{}", ps[0]);
    assert!(ps[0].message.contains("a-first"), "{}", ps[0]);
}

#[test]
fn exams_are_sorted_by_id_and_need_not_match_their_directory() {
    let dir = tempfile::tempdir().unwrap();
    for (d, id) in [("1", "zeta"), ("2", "alpha"), ("3", "mid")] {
        write(&dir.path().join(d).join("exam.toml"), text("", "").replace("\"t\"", &format!("{id:?}")));
    }
    let catalog = Catalog::load(dir.path());
    assert!(catalog.problems().is_empty());
    let ids: Vec<&str> = catalog.exams().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["alpha", "mid", "zeta"]);
    assert!(catalog.get(&ExamId::parse("zeta").unwrap()).unwrap().dir.ends_with("1"));
    assert!(catalog.get(&ExamId::parse("nope").unwrap()).is_none());
}

#[test]
fn missing_or_empty_catalogs() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let catalog = Catalog::load(&missing);
    assert!(catalog.is_empty());
    assert_eq!(catalog.problems().len(), 1);
    assert_eq!(catalog.problems()[0].file, missing);
    assert_eq!(validate(&missing).len(), 1);

    // An empty catalog loads (the server may start with none) but does not validate.
    assert!(Catalog::load(dir.path()).problems().is_empty());
    let ps = validate(dir.path());
    assert_eq!(ps.len(), 1);
    assert!(ps[0].message.contains("no exams found"), "{}", ps[0]);

    let file = dir.path().join("file");
    write(&file, "x");
    assert!(validate(&file)[0].message.contains("not a directory"));

    let empty = Catalog::empty();
    assert!(empty.is_empty() && empty.problems().is_empty() && empty.exams().next().is_none());
}

#[test]
fn from_exams_reports_duplicates() {
    let exam = ok(&text("", ""));
    let catalog = Catalog::from_exams([exam.clone(), exam]);
    assert_eq!(catalog.len(), 1);
    assert_eq!(catalog.problems().len(), 1);
    assert_eq!(catalog.problems()[0].field.as_deref(), Some("id"));
}
