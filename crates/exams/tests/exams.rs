//! The exam catalog from the outside: the repository's samples, every kind of bad input (each reported with
//! its file, line and field), tasks with their scripts on disk, and catalogs generated in temporary directories.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use examroom_core::ExamId;
use examroom_exams::{
    load_exam, parse_exam, validate, Attempts, Catalog, EnvironmentConfig, Exam, Problem, ResultPolicy,
    MAX_SCRIPT_BYTES,
};

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
    assert_eq!(
        ids,
        [
            "desktop-web",
            "docker-postgres",
            "linux-admin",
            "linux-basics",
            "processes-and-logs",
            "quick-check",
            "shell-scripting",
            "tools-image"
        ]
    );

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
    assert_eq!((quick.tasks.len(), quick.max_score()), (1, 1));

    assert_eq!(validate(&samples()), vec![]);
    assert_eq!(validate(&samples().join("linux-basics")), vec![]);
    assert_eq!(load_exam(&samples().join("quick-check")).unwrap().id.as_str(), "quick-check");
}

/// The real samples: at least five tasks each, the expected points, setup steps and result policy.
#[test]
fn samples_have_tasks() {
    let catalog = Catalog::load(&samples());
    let exam = |id: &str| catalog.get(&ExamId::parse(id).unwrap()).unwrap();
    // (id, tasks, points, setup steps, policy)
    let expected = [
        ("linux-basics", 6, 18, 5, ResultPolicy::ShowChecks),
        ("shell-scripting", 6, 21, 0, ResultPolicy::ShowChecks),
        ("processes-and-logs", 6, 15, 5, ResultPolicy::ScoreOnly),
        ("linux-admin", 6, 18, 4, ResultPolicy::ShowChecks),
    ];
    for (id, tasks, points, setups, policy) in expected {
        let e = exam(id);
        assert!(e.tasks.len() >= 5, "{id}");
        assert_eq!(e.tasks.len(), tasks, "{id}");
        assert_eq!(e.max_score(), points, "{id}");
        assert_eq!(e.tasks.iter().map(|t| t.max_score()).sum::<u32>(), points, "{id}");
        assert_eq!(e.setup_steps().len(), setups, "{id}");
        assert_eq!(e.result, policy, "{id}");
        for (task, script) in e.setup_steps() {
            assert_eq!(task.setup.as_ref(), Some(script));
        }
    }
    // The prompt of a task with prompt_file is the file's text.
    let shell = exam("shell-scripting");
    let greet = shell.task("greet").unwrap();
    assert_eq!(greet.prompt, fs::read_to_string(samples().join("shell-scripting/tasks/greet.md")).unwrap());
    assert_eq!(greet.check("arguments").unwrap().weight, 2);
    assert_eq!(greet.check("arguments").unwrap().timeout, Duration::from_secs(10));
    let find = exam("linux-basics").task("find-big-files").unwrap();
    assert_eq!(find.checks[0].timeout, Duration::from_secs(5));
}

/// Every task of every sample has a reference solution at `solutions/<task-id>.sh`, every solution belongs to a
/// task, and every script under `checks/` and `setup/` is used: nothing is left lying around.
#[test]
fn samples_have_a_solution_for_every_task_and_no_stray_scripts() {
    let catalog = Catalog::load(&samples());
    for exam in catalog.exams() {
        let dir = samples().join(exam.dir.file_name().unwrap());
        let tasks: BTreeSet<String> = exam.tasks.iter().map(|t| format!("{}.sh", t.id)).collect();
        let solutions: BTreeSet<String> = fs::read_dir(dir.join("solutions"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(tasks, solutions, "{}: tasks and solutions/ differ", exam.id.as_str());
        // Each task names its own solution, for `examroom exam test`.
        for t in &exam.tasks {
            let named = t.solution.as_ref().map(|s| s.path.clone());
            assert_eq!(named, Some(PathBuf::from(format!("solutions/{}.sh", t.id))), "{}/{}", exam.id.as_str(), t.id);
        }
        for solution in &solutions {
            let body = fs::read_to_string(dir.join("solutions").join(solution)).unwrap();
            assert!(body.starts_with("#!/bin/sh\n") && body.len() > 20, "{}/{solution}", exam.id.as_str());
        }

        let used: BTreeSet<PathBuf> = exam
            .tasks
            .iter()
            .flat_map(|t| t.setup.iter().chain(t.checks.iter().map(|c| &c.script)))
            .map(|s| s.path.clone())
            .collect();
        let mut on_disk = BTreeSet::new();
        for sub in ["checks", "setup"] {
            collect_files(&dir, &dir.join(sub), &mut on_disk);
        }
        assert_eq!(used, on_disk, "{}: scripts named in exam.toml and on disk differ", exam.id.as_str());
        for task in &exam.tasks {
            for script in task.setup.iter().chain(task.checks.iter().map(|c| &c.script)) {
                assert!(["#!/bin/sh\n", "#!/bin/bash\n"].iter().any(|s| script.body.starts_with(s)), "{script:?}");
            }
            // Setup runs as root inside the environment with the PATH it sets; checks run with examroom's fixed
            // PATH (the pristine base and examroom-run) and must not reach for the candidate's directories.
            if let Some(script) = &task.setup {
                assert!(script.body.contains("\nPATH=/usr/local/sbin:"), "{}: set PATH", script.path.display());
            }
            for check in &task.checks {
                assert!(
                    !check.script.body.contains("PATH="),
                    "{}: a check keeps the fixed PATH",
                    check.script.path.display()
                );
            }
        }
    }
}

/// Files under `dir`, relative to `base`.
fn collect_files(base: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(base, &path, out);
        } else {
            out.insert(path.strip_prefix(base).unwrap().to_path_buf());
        }
    }
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
    assert_eq!(exam.environment.profile, "shell");
    assert_eq!(exam.dir, PathBuf::from("x"));
}

#[test]
fn a_profile_is_shell_or_system() {
    assert_eq!(ok(&text("", "profile = \"system\"")).environment.profile, "system");
    assert_eq!(ok(&text("", "profile = \"shell\"")).environment.profile, "shell");
    assert_one(
        &text("", "profile = \"vm\""),
        Some("environment.profile"),
        Some("profile = \"vm\""),
        "profile \"vm\" is not known; write \"shell\"",
    );
    assert_one(&text("", "profile = true"), Some("environment.profile"), Some("profile = true"), "expected a string");
}

#[test]
fn a_desktop_has_a_resolution_and_ports_are_listed() {
    let exam = ok(&text("", "desktop = true"));
    assert!(exam.environment.desktop);
    assert_eq!(exam.environment.resolution, (1280, 800));
    assert!(exam.environment.ports.is_empty());
    let exam = ok(&text("", "desktop = true\nresolution = \"1024x768\"\nports = [8000, 8080]"));
    assert_eq!(exam.environment.resolution, (1024, 768));
    assert_eq!(exam.environment.ports, vec![8000, 8080]);
    // Ports without a desktop are fine (a web task on a shell exam).
    assert_eq!(ok(&text("", "ports = [3000]")).environment.ports, vec![3000]);
    let env = |body: &str| text("", body);
    let one = |body: &str, field: &str, needle: &str, message: &str| {
        assert_one(&env(body), Some(field), Some(needle), message);
    };
    one("desktop = true\nresolution = \"big\"", "environment.resolution", "resolution", "is not valid");
    one("desktop = true\nresolution = \"100x100\"", "environment.resolution", "resolution", "320x200");
    one("resolution = \"1024x768\"", "environment.resolution", "resolution", "set desktop = true");
    one("ports = 8000", "environment.ports", "ports", "an array of port numbers");
    one("ports = [0]", "environment.ports", "ports", "not a port");
    one("ports = [70000]", "environment.ports", "ports", "not a port");
    one("ports = [\"80\"]", "environment.ports", "ports", "not a port");
    one("ports = [80, 80]", "environment.ports", "ports", "listed twice");
    one("desktop = true\nports = [5900]", "environment.ports", "ports", "the desktop's own");
    let many: Vec<String> = (1..=17).map(|p| p.to_string()).collect();
    one(&format!("ports = [{}]", many.join(",")), "environment.ports", "ports", "at most 16");
    one("desktop = true\nprofile = \"system\"", "environment.desktop", "desktop", "profile \"shell\" only");
    // The digest of an exam without a desktop size or ports is what it was before they existed.
    let plain = ok(&text("", "desktop = true"));
    let sized = ok(&text("", "desktop = true\nresolution = \"1024x768\""));
    let ported = ok(&text("", "desktop = true\nports = [8000]"));
    assert_ne!(plain.digest(), sized.digest());
    assert_ne!(plain.digest(), ported.digest());
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
fn unknown_fields_are_errors() {
    let t = text("", "memroy = \"1G\"");
    let p = assert_one(&t, Some("environment.memroy"), Some("memroy"), "unknown field \"memroy\"");
    assert!(p.message.contains("did you mean \"memory\""), "{p}");
    let t = text("titel = \"x\"", "");
    assert_one(&t, Some("titel"), Some("titel"), "did you mean \"title\"");
    let t = text("[extra]\nx = 1", "");
    assert_one(&t, Some("extra"), Some("[extra]"), "unknown field");
    // tasks and result are fields now: a typo in them is caught too.
    let t = format!("{}\n[[task]]\nid = \"one\"\n", text("", ""));
    assert_one(&t, Some("task"), Some("[[task]]"), "did you mean \"tasks\"");
    let t = format!("{}\n[results]\nshow = \"score\"\n", text("", ""));
    assert_one(&t, Some("results"), Some("[results]"), "did you mean \"result\"");
    let t = format!("{}\n[result]\npass = 0.5\n", text("", ""));
    assert_one(&t, Some("result.pass"), Some("pass"), "unknown field \"pass\"");
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

// ---- tasks, checks and the result policy ----

/// A valid exam.toml with one task: a setup script and two checks.
fn task_text() -> String {
    format!(
        "{}\n{}",
        text("", ""),
        r#"[[tasks]]
id = "make-dir"
title = "Create a directory"
prompt = """
Create `/srv/data` owned by `alice`."""
setup = "setup/make-dir.sh"

[[tasks.checks]]
id = "exists"
description = "/srv/data exists"
script = "checks/exists.sh"
weight = 2
timeout = "5s"

[[tasks.checks]]
id = "owner"
description = "alice owns /srv/data"
script = "checks/owner.sh"
"#
    )
}

/// The scripts that [`task_text`] names.
const TASK_FILES: &[(&str, &str)] = &[
    ("setup/make-dir.sh", "#!/bin/sh\nmkdir -p /srv\n"),
    ("checks/exists.sh", "#!/bin/sh\ntest -d /srv/data\n"),
    ("checks/owner.sh", "test \"$(stat -c %U /srv/data)\" = alice\n"),
    ("checks/other.sh", "#!/bin/bash\ntrue\n"),
    ("tasks/make-dir.md", "# Make a directory\n\nCreate `/srv/data`.\n"),
];

/// An exam directory holding `exam.toml` (with `toml` in it) and [`TASK_FILES`].
fn exam_dir(toml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("exam.toml"), toml);
    for (path, body) in TASK_FILES {
        write(&dir.path().join(path), body);
    }
    dir
}

fn load_ok(dir: &Path) -> Exam {
    load_exam(dir).unwrap_or_else(|ps| panic!("refused:\n{}", render(&ps)))
}

/// Exactly one problem when `toml` is loaded from an exam directory: in its exam.toml, about `field`, on the
/// line holding `needle` (or no line), with `message` in it.
fn assert_one_on_disk(dir: &Path, toml: &str, field: &str, needle: Option<&str>, message: &str) -> Problem {
    assert_one_on_disk_at(dir, toml, field, needle.map(|n| line_with(toml, n)), message)
}

/// [`assert_one_on_disk`] on a given line.
fn assert_one_on_disk_at(dir: &Path, toml: &str, field: &str, line: Option<usize>, message: &str) -> Problem {
    write(&dir.join("exam.toml"), toml);
    let ps = match load_exam(dir) {
        Ok(exam) => panic!("accepted: {exam:?}\n{toml}"),
        Err(ps) => ps,
    };
    assert_eq!(ps.len(), 1, "expected one problem, got:\n{}\nin:\n{toml}", render(&ps));
    let p = ps.into_iter().next().unwrap();
    assert_eq!(p.file, dir.join("exam.toml"));
    assert_eq!(p.field.as_deref(), Some(field), "{p}");
    assert_eq!(p.line, line, "{p}\nin:\n{toml}");
    assert!(p.message.contains(message), "{p} does not mention {message:?}");
    p
}

/// The 1-based line of the `n`th (from 0) line of `text` that contains `needle`.
fn nth_line_with(text: &str, needle: &str, n: usize) -> usize {
    text.lines().enumerate().filter(|(_, l)| l.contains(needle)).nth(n).map(|(i, _)| i + 1).unwrap()
}

#[test]
fn tasks_checks_and_defaults() {
    let dir = exam_dir(&task_text());
    let exam = load_ok(dir.path());
    assert_eq!(exam.result, ResultPolicy::ShowChecks);
    assert_eq!(exam.tasks.len(), 1);
    let task = &exam.tasks[0];
    assert_eq!(task.id, "make-dir");
    assert_eq!(task.title, "Create a directory");
    assert_eq!(task.prompt, "Create `/srv/data` owned by `alice`.");
    let setup = task.setup.as_ref().unwrap();
    assert_eq!(setup.path, PathBuf::from("setup/make-dir.sh"));
    assert_eq!(setup.body, "#!/bin/sh\nmkdir -p /srv\n");
    assert_eq!(setup.interpreter(), ["/bin/sh"]);
    let ids: Vec<&str> = task.checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["exists", "owner"]);
    let exists = task.check("exists").unwrap();
    assert_eq!(exists.description, "/srv/data exists");
    assert_eq!((exists.weight, exists.timeout), (2, Duration::from_secs(5)));
    assert_eq!(exists.script.body, "#!/bin/sh\ntest -d /srv/data\n");
    // Defaults: weight 1, timeout 10 s; a script without #! is run by /bin/sh.
    let owner = task.check("owner").unwrap();
    assert_eq!((owner.weight, owner.timeout), (1, Duration::from_secs(10)));
    assert!(!owner.script.has_shebang());
    assert_eq!(owner.script.interpreter(), ["/bin/sh"]);
    assert_eq!((task.max_score(), exam.max_score()), (3, 3));
    let steps = exam.setup_steps();
    assert_eq!(steps.len(), 1);
    assert_eq!((steps[0].0.id.as_str(), steps[0].1.path.as_path()), ("make-dir", Path::new("setup/make-dir.sh")));
    assert!(exam.task("nope").is_none() && task.check("nope").is_none());

    // An exam without tasks: no score, no steps.
    let none = ok(&text("", ""));
    assert!(none.tasks.is_empty());
    assert_eq!((none.max_score(), none.setup_steps().len(), none.result), (0, 0, ResultPolicy::ShowChecks));
}

#[test]
fn several_tasks_prompt_files_and_the_score_only_policy() {
    let toml = format!(
        "{}\n[result]\nshow = \"score\"\n\n{}",
        text("", ""),
        r#"[[tasks]]
id = "one"
title = "One"
prompt_file = "tasks/make-dir.md"
[[tasks.checks]]
id = "a"
description = "A"
script = "checks/other.sh"
weight = 100
timeout = "5m"

[[tasks]]
id = "two"
title = "Two"
prompt = "Do two."
setup = "./setup/make-dir.sh"
[[tasks.checks]]
id = "a"
description = "Same check id as task one's: fine, ids are per task"
script = "checks/exists.sh"
timeout = "1s"

[[tasks]]
id = "three"
title = "Three"
prompt = "Do three."
setup = "setup/make-dir.sh"
[[tasks.checks]]
id = "a"
description = "A"
script = "checks/exists.sh"
weight = 3
"#
    );
    let dir = exam_dir(&toml);
    let exam = load_ok(dir.path());
    assert_eq!(exam.result, ResultPolicy::ScoreOnly);
    assert!(!exam.result.shows_checks());
    let ids: Vec<&str> = exam.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["one", "two", "three"]);
    assert_eq!(exam.tasks[0].prompt, "# Make a directory\n\nCreate `/srv/data`.\n");
    assert_eq!(exam.tasks[0].checks[0].script.interpreter(), ["/bin/bash"]);
    assert_eq!(exam.tasks[0].checks[0].timeout, Duration::from_secs(300));
    assert_eq!(exam.tasks[1].checks[0].timeout, Duration::from_secs(1));
    assert_eq!(exam.max_score(), 100 + 1 + 3);
    let steps: Vec<&str> = exam.setup_steps().iter().map(|(t, _)| t.id.as_str()).collect();
    assert_eq!(steps, ["two", "three"]);
    // The path is kept as written.
    assert_eq!(exam.tasks[1].setup.as_ref().unwrap().path, PathBuf::from("./setup/make-dir.sh"));

    // show = "checks" written out.
    let dir = exam_dir(&toml.replace("show = \"score\"", "show = \"checks\""));
    assert_eq!(load_ok(dir.path()).result, ResultPolicy::ShowChecks);
}

#[test]
fn tasks_as_inline_tables() {
    let toml = text(
        r#"tasks = [
  { id = "a", title = "A", prompt = "Do a.", checks = [
      { id = "x", description = "X", script = "checks/exists.sh", weight = 4 },
  ] },
]
result = { show = "score" }"#,
        "",
    );
    let dir = exam_dir(&toml);
    let exam = load_ok(dir.path());
    assert_eq!((exam.tasks.len(), exam.max_score(), exam.result), (1, 4, ResultPolicy::ScoreOnly));
    // A problem inside an inline table is on the line of the table.
    let bad = toml.replace("weight = 4", "weight = 0");
    assert_one_on_disk(dir.path(), &bad, "tasks[0].checks[0].weight", Some("weight = 0"), "worth nothing");
    // An element that is not a table.
    let bad = toml.replace("tasks = [", "tasks = [\n  \"oops\",");
    assert_one_on_disk(dir.path(), &bad, "tasks[0]", Some("oops"), "expected a table such as [[tasks]]");
}

/// Every bad field of a task or a check, each reported alone, with the file, the line and the field.
#[test]
fn bad_task_fields_name_file_line_and_field() {
    let good = task_text();
    let dir = exam_dir(&good);
    load_ok(dir.path());
    // (replace this, with this, field, the line holding this (None: no line), message)
    let cases: &[(&str, &str, &str, Option<&str>, &str)] = &[
        // Scripts.
        ("checks/owner.sh", "checks/nope.sh", "tasks[0].checks[1].script", Some("nope.sh"), "missing check script"),
        ("setup/make-dir.sh", "setup/nope.sh", "tasks[0].setup", Some("nope.sh"), "missing setup script"),
        ("checks/owner.sh", "nowhere/owner.sh", "tasks[0].checks[1].script", Some("nowhere"), "does not exist"),
        ("checks/owner.sh", "checks/owner.sh/x", "tasks[0].checks[1].script", Some("owner.sh/x"), "does not exist"),
        (
            "checks/owner.sh",
            "../owner.sh",
            "tasks[0].checks[1].script",
            Some("../owner.sh"),
            "escapes the exam directory",
        ),
        ("checks/owner.sh", "checks/../../x.sh", "tasks[0].checks[1].script", Some("x.sh"), "contains \"..\""),
        ("checks/owner.sh", "/etc/passwd", "tasks[0].checks[1].script", Some("/etc/passwd"), "absolute path"),
        ("setup/make-dir.sh", "/bin/sh", "tasks[0].setup", Some("/bin/sh"), "escapes the exam directory"),
        ("checks/owner.sh", "", "tasks[0].checks[1].script", Some("script = \"\""), "path is empty"),
        ("checks/owner.sh", "checks", "tasks[0].checks[1].script", Some("\"checks\""), "is a directory"),
        (
            "script = \"checks/owner.sh\"",
            "script = 7",
            "tasks[0].checks[1].script",
            Some("script = 7"),
            "expected a string",
        ),
        (
            "script = \"checks/exists.sh\"\n",
            "",
            "tasks[0].checks[0].script",
            Some("[[tasks.checks]]"),
            "missing required",
        ),
        // Weights.
        ("weight = 2", "weight = 0", "tasks[0].checks[0].weight", Some("weight"), "worth nothing"),
        ("weight = 2", "weight = -1", "tasks[0].checks[0].weight", Some("weight"), "weight -1 is negative"),
        ("weight = 2", "weight = 101", "tasks[0].checks[0].weight", Some("weight"), "from 1 to 100"),
        ("weight = 2", "weight = 1.5", "tasks[0].checks[0].weight", Some("weight"), "expected a whole number"),
        ("weight = 2", "weight = \"2\"", "tasks[0].checks[0].weight", Some("weight"), "expected a whole number"),
        // Timeouts.
        ("timeout = \"5s\"", "timeout = \"-5s\"", "tasks[0].checks[0].timeout", Some("timeout"), "is negative"),
        ("timeout = \"5s\"", "timeout = \"0s\"", "tasks[0].checks[0].timeout", Some("timeout"), "is zero"),
        ("timeout = \"5s\"", "timeout = \"500ms\"", "tasks[0].checks[0].timeout", Some("timeout"), "from 1s to 5m"),
        ("timeout = \"5s\"", "timeout = \"6m\"", "tasks[0].checks[0].timeout", Some("timeout"), "from 1s to 5m"),
        ("timeout = \"5s\"", "timeout = 5", "tasks[0].checks[0].timeout", Some("timeout"), "expected a duration"),
        ("timeout = \"5s\"", "timeout = \"5 s\"", "tasks[0].checks[0].timeout", Some("timeout"), "space"),
        // Ids.
        (
            "id = \"make-dir\"",
            "id = \"Make_Dir\"",
            "tasks[0].id",
            Some("Make_Dir"),
            "task id \"Make_Dir\" contains 'M'",
        ),
        ("id = \"make-dir\"", "id = \"-x\"", "tasks[0].id", Some("\"-x\""), "must not start with '-'"),
        ("id = \"owner\"", "id = \"\"", "tasks[0].checks[1].id", Some("id = \"\""), "check id is empty"),
        ("id = \"make-dir\"\n", "", "tasks[0].id", Some("[[tasks]]"), "missing required field"),
        // Titles, prompts and descriptions.
        ("title = \"Create a directory\"", "title = \" \"", "tasks[0].title", Some("title = \" \""), "blank"),
        ("title = \"Create a directory\"\n", "", "tasks[0].title", Some("[[tasks]]"), "missing required field"),
        (
            "description = \"alice owns /srv/data\"",
            "description = \"\"",
            "tasks[0].checks[1].description",
            Some("description = \"\""),
            "blank",
        ),
        (
            "setup = \"setup/make-dir.sh\"",
            "prompt_file = \"tasks/make-dir.md\"",
            "tasks[0].prompt_file",
            Some("prompt_file"),
            "either prompt or prompt_file",
        ),
        (
            "prompt = \"\"\"\nCreate `/srv/data` owned by `alice`.\"\"\"\n",
            "",
            "tasks[0].prompt",
            Some("[[tasks]]"),
            "prompt_file",
        ),
        (
            "prompt = \"\"\"\nCreate `/srv/data` owned by `alice`.\"\"\"",
            "prompt_file = \"tasks/none.md\"",
            "tasks[0].prompt_file",
            Some("none.md"),
            "missing prompt file",
        ),
        (
            "prompt = \"\"\"\nCreate `/srv/data` owned by `alice`.\"\"\"",
            "prompt_file = \"/etc/motd\"",
            "tasks[0].prompt_file",
            Some("motd"),
            "escapes",
        ),
        (
            "prompt = \"\"\"\nCreate `/srv/data` owned by `alice`.\"\"\"",
            "prompt = \"  \"",
            "tasks[0].prompt",
            Some("prompt = \"  \""),
            "blank",
        ),
        // Unknown fields, with a did-you-mean.
        (
            "title = \"Create",
            "titel = \"x\"\ntitle = \"Create",
            "tasks[0].titel",
            Some("titel"),
            "did you mean \"title\"",
        ),
        ("weight = 2", "wieght = 2", "tasks[0].checks[0].wieght", Some("wieght"), "did you mean \"weight\""),
        (
            "timeout = \"5s\"",
            "timeout = \"5s\"\npoints = 3",
            "tasks[0].checks[0].points",
            Some("points"),
            "unknown field",
        ),
        (
            "setup = \"setup/",
            "set-up = \"x\"\nsetup = \"setup/",
            "tasks[0].set-up",
            Some("set-up"),
            "did you mean \"setup\"",
        ),
        (
            "[[tasks.checks]]\nid = \"owner\"",
            "[[tasks.check]]\nid = \"owner\"",
            "tasks[0].check",
            Some("[[tasks.check]]"),
            "did you mean \"checks\"",
        ),
    ];
    for (from, to, field, needle, message) in cases {
        assert!(good.contains(from), "{from:?} is not in the good text");
        let bad = good.replacen(from, to, 1);
        assert_one_on_disk(dir.path(), &bad, field, *needle, message);
    }
}

#[test]
fn duplicate_ids_are_refused() {
    let dir = exam_dir("");
    // Two checks with one id in a task.
    let t = task_text().replace("id = \"owner\"", "id = \"exists\"");
    let (first, second) = (nth_line_with(&t, "id = \"exists\"", 0), nth_line_with(&t, "id = \"exists\"", 1));
    let p =
        assert_one_on_disk_at(dir.path(), &t, "tasks[0].checks[1].id", Some(second), "duplicate check id \"exists\"");
    assert!(p.message.contains(&format!("tasks[0].checks[0].id (line {first}) already uses it")), "{p}");
    // Two tasks with one id.
    let second_task = task_text().split_once("[[tasks]]").unwrap().1.to_owned();
    let t = format!("{}[[tasks]]{second_task}", task_text());
    let (first, second) = (nth_line_with(&t, "id = \"make-dir\"", 0), nth_line_with(&t, "id = \"make-dir\"", 1));
    let p = assert_one_on_disk_at(dir.path(), &t, "tasks[1].id", Some(second), "duplicate task id \"make-dir\"");
    assert!(p.message.contains(&format!("tasks[0].id (line {first}) already uses it")), "{p}");
    // Three tasks with one id: each later one is reported.
    let t = format!("{}[[tasks]]{second_task}[[tasks]]{second_task}", task_text());
    write(&dir.path().join("exam.toml"), &t);
    let ps = load_exam(dir.path()).unwrap_err();
    let fields: Vec<_> = ps.iter().map(|p| p.field.as_deref().unwrap()).collect();
    assert_eq!(fields, ["tasks[1].id", "tasks[2].id"], "{}", render(&ps));
}

#[test]
fn a_task_needs_checks() {
    let dir = exam_dir("");
    // No [[tasks.checks]] at all: reported at the task's header.
    let t = format!("{}\n[[tasks]]\nid = \"lonely\"\ntitle = \"L\"\nprompt = \"p\"\n", text("", ""));
    assert_one_on_disk(dir.path(), &t, "tasks[0].checks", Some("[[tasks]]"), "the task has no checks");
    // An empty list.
    let t = format!("{}\n[[tasks]]\nid = \"lonely\"\ntitle = \"L\"\nprompt = \"p\"\nchecks = []\n", text("", ""));
    assert_one_on_disk(dir.path(), &t, "tasks[0].checks", Some("checks = []"), "the task has no checks");
    // A [[tasks.checks]] before any [[tasks]] makes `tasks` a plain table.
    let t = format!("{}\n[[tasks.checks]]\nid = \"x\"\n", text("", ""));
    let p = assert_one_on_disk(dir.path(), &t, "tasks", Some("[[tasks.checks]]"), "expected an array of tables");
    assert!(p.message.contains("after its [[tasks]]"), "{p}");
    // Tasks given as something else entirely.
    let t = text("tasks = \"make-dir\"", "");
    assert_one_on_disk(dir.path(), &t, "tasks", Some("tasks ="), "one [[tasks]] section (double brackets) for each");
}

#[test]
fn result_policy_problems() {
    let dir = exam_dir("");
    let t = format!("{}\n[result]\nshow = \"scores\"\n", text("", ""));
    let p = assert_one_on_disk(dir.path(), &t, "result.show", Some("scores"), "unknown result policy \"scores\"");
    assert!(p.message.contains("did you mean \"score\""), "{p}");
    assert!(p.message.contains("show = \"checks\""), "{p}");
    let t = format!("{}\n[result]\nshow = true\n", text("", ""));
    assert_one_on_disk(dir.path(), &t, "result.show", Some("show"), "expected a string");
    let t = text("result = \"score\"", "");
    assert_one_on_disk(dir.path(), &t, "result", Some("result ="), "expected a table such as [result]");
    // An empty [result] takes the default.
    write(&dir.path().join("exam.toml"), format!("{}\n[result]\n", text("", "")));
    assert_eq!(load_ok(dir.path()).result, ResultPolicy::ShowChecks);
}

#[test]
fn script_contents_are_checked() {
    let dir = exam_dir("");
    let field = "tasks[0].checks[1].script";
    let needle = Some("checks/owner.sh");
    let cases: &[(&[u8], &str)] = &[
        (b"", "is empty"),
        (b"  \n\n", "is empty"),
        (b"#!/bin/sh\r\ntrue\r\n", "Windows line endings"),
        (b"#!sh\ntrue\n", "not an absolute path"),
        (b"#!\ntrue\n", "names no interpreter"),
        (b"#!/bin/sh\ntrue\n\0\n", "NUL byte (line 3"),
        (b"#!/bin/sh\necho caf\xe9\n", "not valid UTF-8 (line 2 of it)"),
    ];
    for (body, message) in cases {
        write(&dir.path().join("checks/owner.sh"), body);
        assert_one_on_disk(dir.path(), &task_text(), field, needle, message);
    }
    write(&dir.path().join("checks/owner.sh"), "#!/usr/bin/env python3\nprint()\n");
    let exam = load_ok(dir.path());
    assert_eq!(exam.tasks[0].checks[1].script.interpreter(), ["/usr/bin/env", "python3"]);
}

#[test]
fn huge_scripts_are_refused() {
    let dir = exam_dir(&task_text());
    // 65 KiB: refused.
    write(&dir.path().join("checks/owner.sh"), format!("#!/bin/sh\n{}", "#".repeat(65 * 1024)));
    let p =
        assert_one_on_disk(dir.path(), &task_text(), "tasks[0].checks[1].script", Some("checks/owner.sh"), "huge file");
    assert!(p.message.contains("64 KiB"), "{p}");
    assert!(p.to_string().starts_with(&format!("{}:", dir.path().join("exam.toml").display())));
    // A huge setup script too.
    write(&dir.path().join("setup/make-dir.sh"), vec![b'#'; 10 << 20]);
    write(&dir.path().join("checks/owner.sh"), "true\n");
    assert_one_on_disk(dir.path(), &task_text(), "tasks[0].setup", Some("setup/make-dir.sh"), "huge file");
    // Exactly 64 KiB is fine.
    let body = format!("#!/bin/sh\n{}\n", "#".repeat(MAX_SCRIPT_BYTES as usize - 11));
    assert_eq!(body.len() as u64, MAX_SCRIPT_BYTES);
    write(&dir.path().join("setup/make-dir.sh"), &body);
    assert_eq!(load_ok(dir.path()).tasks[0].setup.as_ref().unwrap().body.len() as u64, MAX_SCRIPT_BYTES);
}

#[test]
fn an_exam_cannot_read_more_than_its_budget() {
    // 2 tasks of 35 checks, each naming the same 64 KiB script: 4.375 MiB, over the 4 MiB allowed.
    let mut t = text("", "");
    for task in 0..2 {
        t.push_str(&format!("\n[[tasks]]\nid = \"t{task}\"\ntitle = \"T\"\nprompt = \"p\"\n"));
        for check in 0..35 {
            t.push_str(&format!(
                "[[tasks.checks]]\nid = \"c{check}\"\ndescription = \"d\"\nscript = \"checks/big.sh\"\n"
            ));
        }
    }
    let dir = exam_dir(&t);
    write(&dir.path().join("checks/big.sh"), format!("#!/bin/sh\n{}\n", "#".repeat(MAX_SCRIPT_BYTES as usize - 11)));
    let ps = load_exam(dir.path()).unwrap_err();
    assert!(!ps.is_empty() && ps.len() <= 6, "{}", render(&ps));
    assert!(ps.iter().all(|p| p.message.starts_with("huge exam")), "{}", render(&ps));
    // 64 scripts of 64 KiB fit; the 65th does not.
    assert_eq!(ps.len(), 6, "{}", render(&ps));
    assert_eq!(ps[0].field.as_deref(), Some("tasks[1].checks[29].script"), "{}", render(&ps));
}

#[test]
fn too_many_tasks_or_checks() {
    let mut t = text("", "");
    for task in 0..101 {
        t.push_str(&format!("\n[[tasks]]\nid = \"t{task}\"\ntitle = \"T\"\nprompt = \"p\"\n"));
        t.push_str("[[tasks.checks]]\nid = \"c\"\ndescription = \"d\"\nscript = \"checks/exists.sh\"\n");
    }
    let dir = exam_dir(&t);
    let ps = load_exam(dir.path()).unwrap_err();
    assert_eq!(ps.len(), 1, "{}", render(&ps));
    assert_eq!(ps[0].field.as_deref(), Some("tasks"));
    assert!(ps[0].message.contains("at most 100"), "{}", ps[0]);

    let mut t = format!("{}\n[[tasks]]\nid = \"t\"\ntitle = \"T\"\nprompt = \"p\"\n", text("", ""));
    for check in 0..51 {
        t.push_str(&format!(
            "[[tasks.checks]]\nid = \"c{check}\"\ndescription = \"d\"\nscript = \"checks/exists.sh\"\n"
        ));
    }
    write(&dir.path().join("exam.toml"), &t);
    let ps = load_exam(dir.path()).unwrap_err();
    assert_eq!(ps.len(), 1, "{}", render(&ps));
    assert_eq!(ps[0].field.as_deref(), Some("tasks[0].checks"));
    assert!(ps[0].message.contains("at most 50"), "{}", ps[0]);
}

#[test]
fn symlinks_out_of_the_exam_directory_are_refused() {
    let top = tempfile::tempdir().unwrap();
    let outside = top.path().join("outside");
    write(&outside.join("steal.sh"), "#!/bin/sh\ncat /etc/shadow\n");
    let dir = top.path().join("exam");
    fs::create_dir_all(&dir).unwrap();
    for (path, body) in TASK_FILES {
        write(&dir.join(path), body);
    }
    let field = "tasks[0].checks[1].script";
    let needle = Some("checks/owner.sh");

    // The script itself is a symlink to a file outside.
    fs::remove_file(dir.join("checks/owner.sh")).unwrap();
    std::os::unix::fs::symlink(outside.join("steal.sh"), dir.join("checks/owner.sh")).unwrap();
    let p = assert_one_on_disk(&dir, &task_text(), field, needle, "escapes the exam directory");
    assert!(p.message.contains("symlink"), "{p}");

    // A relative symlink that climbs out.
    fs::remove_file(dir.join("checks/owner.sh")).unwrap();
    std::os::unix::fs::symlink("../../outside/steal.sh", dir.join("checks/owner.sh")).unwrap();
    assert_one_on_disk(&dir, &task_text(), field, needle, "escapes the exam directory");

    // A directory along the way is a symlink to outside.
    fs::remove_file(dir.join("checks/owner.sh")).unwrap();
    fs::rename(dir.join("checks"), dir.join("real-checks")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("checks")).unwrap();
    write(&outside.join("owner.sh"), "true\n");
    write(&outside.join("exists.sh"), "true\n");
    let t = task_text();
    write(&dir.join("exam.toml"), &t);
    let ps = load_exam(&dir).unwrap_err();
    assert_eq!(ps.len(), 2, "{}", render(&ps));
    assert!(ps.iter().all(|p| p.message.contains("escapes the exam directory")), "{}", render(&ps));
    assert_eq!(ps[0].field.as_deref(), Some("tasks[0].checks[0].script"));
    assert_eq!(ps[1].field.as_deref(), Some(field));

    // A dangling symlink is a missing script.
    fs::remove_file(dir.join("checks")).unwrap();
    fs::rename(dir.join("real-checks"), dir.join("checks")).unwrap();
    std::os::unix::fs::symlink("gone.sh", dir.join("checks/owner.sh")).unwrap();
    assert_one_on_disk(&dir, &task_text(), field, needle, "missing check script");

    // A symlink that stays inside is fine, and the script is read through it.
    fs::remove_file(dir.join("checks/owner.sh")).unwrap();
    std::os::unix::fs::symlink("other.sh", dir.join("checks/owner.sh")).unwrap();
    let exam = load_ok(&dir);
    assert_eq!(exam.tasks[0].checks[1].script.body, "#!/bin/bash\ntrue\n");
    assert_eq!(exam.tasks[0].checks[1].script.path, PathBuf::from("checks/owner.sh"));

    // The exam directory reached through a symlink is fine too.
    let via = top.path().join("via");
    std::os::unix::fs::symlink(&dir, &via).unwrap();
    load_ok(&via);
}

#[test]
fn a_fifo_is_refused_without_hanging() {
    let dir = exam_dir(&task_text());
    fs::remove_file(dir.path().join("checks/owner.sh")).unwrap();
    let status = std::process::Command::new("mkfifo").arg(dir.path().join("checks/owner.sh")).status().unwrap();
    assert!(status.success());
    assert_one_on_disk(
        dir.path(),
        &task_text(),
        "tasks[0].checks[1].script",
        Some("checks/owner.sh"),
        "not a regular file",
    );
}

#[test]
fn scripts_are_read_once_at_load_time() {
    let dir = exam_dir(&task_text());
    let exam = load_ok(dir.path());
    // Swapping or removing the file afterwards changes nothing in the loaded exam.
    write(&dir.path().join("checks/exists.sh"), "#!/bin/sh\nexit 0 # swapped\n");
    fs::remove_file(dir.path().join("checks/owner.sh")).unwrap();
    assert_eq!(exam.tasks[0].checks[0].script.body, "#!/bin/sh\ntest -d /srv/data\n");
    assert_eq!(exam.tasks[0].checks[1].script.body, "test \"$(stat -c %U /srv/data)\" = alice\n");
}

#[test]
fn every_task_problem_in_one_go_in_file_order() {
    let dir = exam_dir("");
    let t = format!(
        "{}\n{}",
        text("", ""),
        r#"[[tasks]]
id = "a"
title = "A"
prompt = "p"
setup = "../setup.sh"

[[tasks.checks]]
id = "x"
description = "X"
script = "checks/missing.sh"
weight = 0
timeout = "-1s"

[[tasks.checks]]
id = "x"
description = " "
script = "checks/exists.sh"

[[tasks]]
id = "a"
prompt = "p"
prompt_file = "tasks/make-dir.md"

[result]
show = "everything"
"#
    );
    write(&dir.path().join("exam.toml"), &t);
    let ps = load_exam(dir.path()).unwrap_err();
    let got: Vec<(Option<usize>, Option<&str>)> = ps.iter().map(|p| (p.line, p.field.as_deref())).collect();
    let at = |needle: &str| Some(line_with(&t, needle));
    let second_task = t.lines().enumerate().filter(|(_, l)| *l == "[[tasks]]").nth(1).unwrap().0 + 1;
    let expected = [
        (at("../setup.sh"), Some("tasks[0].setup")),
        (at("checks/missing.sh"), Some("tasks[0].checks[0].script")),
        (at("weight = 0"), Some("tasks[0].checks[0].weight")),
        (at("timeout = \"-1s\""), Some("tasks[0].checks[0].timeout")),
        (Some(nth_line_with(&t, "id = \"x\"", 1)), Some("tasks[0].checks[1].id")),
        (at("description = \" \""), Some("tasks[0].checks[1].description")),
        (Some(second_task), Some("tasks[1].title")),
        (Some(second_task), Some("tasks[1].checks")),
        (Some(second_task + 1), Some("tasks[1].id")),
        (at("prompt_file"), Some("tasks[1].prompt_file")),
        (at("everything"), Some("result.show")),
    ];
    assert_eq!(got, expected, "{}", render(&ps));
    assert!(ps.iter().all(|p| p.file == dir.path().join("exam.toml")));
}

#[test]
fn a_broken_exam_with_tasks_is_skipped_and_the_others_kept() {
    let top = tempfile::tempdir().unwrap();
    let root = top.path();
    let make = |name: &str, toml: String| {
        let dir = root.join(name);
        write(&dir.join("exam.toml"), toml.replace("id = \"t\"", &format!("id = \"{name}\"")));
        for (path, body) in TASK_FILES {
            write(&dir.join(path), body);
        }
        dir
    };
    make("a-good", task_text());
    let missing = make("b-missing-script", task_text());
    fs::remove_file(missing.join("checks/exists.sh")).unwrap();
    let escaping = make("c-escaping", task_text());
    write(&root.join("secret.sh"), "#!/bin/sh\n");
    fs::remove_file(escaping.join("setup/make-dir.sh")).unwrap();
    std::os::unix::fs::symlink(root.join("secret.sh"), escaping.join("setup/make-dir.sh")).unwrap();
    make("d-duplicate-check", task_text().replace("id = \"owner\"", "id = \"exists\""));
    make("e-good-too", task_text());

    let catalog = Catalog::load(root);
    let ids: Vec<&str> = catalog.exams().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["a-good", "e-good-too"]);
    let ps = catalog.problems();
    let got: Vec<(PathBuf, Option<&str>)> = ps.iter().map(|p| (p.file.clone(), p.field.as_deref())).collect();
    assert_eq!(
        got,
        [
            (root.join("b-missing-script/exam.toml"), Some("tasks[0].checks[0].script")),
            (root.join("c-escaping/exam.toml"), Some("tasks[0].setup")),
            (root.join("d-duplicate-check/exam.toml"), Some("tasks[0].checks[1].id")),
        ],
        "{}",
        render(ps)
    );
    assert!(ps.iter().all(|p| p.line.is_some()), "{}", render(ps));
    assert_eq!(validate(root), ps.to_vec());
    assert!(validate(&root.join("a-good")).is_empty());
    assert_eq!(validate(&root.join("c-escaping")).len(), 1);
}

// ---- attempts (issue 9) ----

/// [`task_text`] with `top` added to the top level.
fn task_text_with(top: &str) -> String {
    task_text().replacen("duration = \"10m\"\n", &format!("duration = \"10m\"\n{top}\n"), 1)
}

#[test]
fn attempts_default_to_one_for_graded_exams_and_to_unlimited_without_checks() {
    // Graded (it has checks), whatever candidates see of the result.
    let dir = exam_dir(&task_text());
    assert_eq!(load_ok(dir.path()).attempts, Attempts::AtMost(1));
    write(&dir.path().join("exam.toml"), format!("{}\n[result]\nshow = \"score\"\n", task_text()));
    assert_eq!(load_ok(dir.path()).attempts, Attempts::AtMost(1));
    // Nothing graded: no limit.
    assert_eq!(ok(&text("", "")).attempts, Attempts::Unlimited);
    assert_eq!(Attempts::AtMost(3).limit(), Some(3));
    assert_eq!(Attempts::Unlimited.limit(), None);
    assert_eq!((Attempts::AtMost(3).to_string(), Attempts::Unlimited.to_string()), ("3".into(), "unlimited".into()));
}

#[test]
fn attempts_can_be_written() {
    let dir = exam_dir(&task_text_with("attempts = 3"));
    assert_eq!(load_ok(dir.path()).attempts, Attempts::AtMost(3));
    write(&dir.path().join("exam.toml"), task_text_with("attempts = \"unlimited\""));
    assert_eq!(load_ok(dir.path()).attempts, Attempts::Unlimited);
    assert_eq!(ok(&text("attempts = 1", "")).attempts, Attempts::AtMost(1));
    assert_eq!(ok(&text("attempts = 100", "")).attempts, Attempts::AtMost(100));
}

#[test]
fn bad_attempts_are_refused_with_what_to_write() {
    for (value, message) in [
        ("0", "would let nobody take the exam"),
        ("-1", "out of range"),
        ("101", "out of range"),
        ("\"many\"", "is not a number of attempts"),
        ("\"3\"", "is not a number of attempts"),
        ("1.5", "expected a whole number of attempts"),
        ("true", "expected a whole number of attempts"),
    ] {
        let t = text(&format!("attempts = {value}"), "");
        let p = assert_one(&t, Some("attempts"), Some("attempts ="), message);
        assert!(p.message.contains("\"unlimited\""), "{p}");
    }
    let t = text("attempt = 2", "");
    assert_one(&t, Some("attempt"), Some("attempt ="), "did you mean \"attempts\"");
}

// ---- warm pools: [pool], setup_at, the digest ----

/// Two tasks with setup scripts; the first runs when a candidate takes the environment.
fn claim_text(extra: &str) -> String {
    format!(
        "{}\n{extra}\n{}",
        text("", ""),
        r#"[[tasks]]
id = "whoami"
title = "Who"
prompt = "Your id is in /root/id."
setup = "setup/make-dir.sh"
setup_at = "claim"
[[tasks.checks]]
id = "a"
description = "A"
script = "checks/exists.sh"

[[tasks]]
id = "later"
title = "Later"
prompt = "Do it."
setup = "checks/other.sh"
[[tasks.checks]]
id = "a"
description = "A"
script = "checks/exists.sh"
"#
    )
}

#[test]
fn setup_at_claim_runs_after_every_prepare_script() {
    let dir = exam_dir(&claim_text(""));
    let exam = load_ok(dir.path());
    assert_eq!(exam.tasks[0].setup_at, examroom_exams::SetupAt::Claim);
    assert_eq!(exam.tasks[1].setup_at, examroom_exams::SetupAt::Prepare);
    let ids = |steps: Vec<(&examroom_exams::Task, &examroom_exams::Script)>| -> Vec<String> {
        steps.iter().map(|(t, _)| t.id.clone()).collect()
    };
    assert_eq!(ids(exam.prepare_steps()), ["later"]);
    assert_eq!(ids(exam.claim_steps()), ["whoami"]);
    // Every path runs the prepare scripts first, then the claim scripts.
    assert_eq!(ids(exam.setup_steps()), ["later", "whoami"]);
    // The default pool: none, 4 hours.
    assert_eq!(exam.pool, examroom_exams::PoolConfig::default());
    assert_eq!((exam.pool.size, exam.pool.max_age), (0, Duration::from_secs(4 * 3600)));
}

#[test]
fn bad_setup_at_and_pool_fields_are_named() {
    let dir = tempfile::tempdir().unwrap();
    for (path, body) in TASK_FILES {
        write(&dir.path().join(path), body);
    }
    let good = claim_text("");
    let bad = good.replace("setup_at = \"claim\"", "setup_at = \"clam\"");
    let p = assert_one_on_disk(dir.path(), &bad, "tasks[0].setup_at", Some("clam"), "unknown setup time");
    assert!(p.message.contains("did you mean \"claim\""), "{p}");
    let bad = good.replace("setup = \"setup/make-dir.sh\"\n", "");
    assert_one_on_disk(dir.path(), &bad, "tasks[0].setup_at", Some("setup_at"), "no setup script");
    let bad = good.replace("setup_at = \"claim\"", "setup_at = true");
    assert_one_on_disk(dir.path(), &bad, "tasks[0].setup_at", Some("setup_at"), "expected a string");

    let pool = |body: &str| claim_text(&format!("[pool]\n{body}\n"));
    let exam = load_ok({
        write(&dir.path().join("exam.toml"), pool("size = 12\nmax_age = \"90m\""));
        dir.path()
    });
    assert_eq!((exam.pool.size, exam.pool.max_age), (12, Duration::from_secs(90 * 60)));
    assert_one_on_disk(dir.path(), &pool("size = 1001"), "pool.size", Some("size = 1001"), "from 0 to 1000");
    assert_one_on_disk(dir.path(), &pool("size = -1"), "pool.size", Some("size = -1"), "out of range");
    assert_one_on_disk(dir.path(), &pool("max_age = \"5s\""), "pool.max_age", Some("max_age"), "from 10s to");
    assert_one_on_disk(dir.path(), &pool("max_age = \"169h\""), "pool.max_age", Some("max_age"), "out of range");
    let p = assert_one_on_disk(dir.path(), &pool("sise = 3"), "pool.sise", Some("sise"), "unknown field");
    assert!(p.message.contains("did you mean \"size\""), "{p}");
    assert_one(&text("pool = 3", ""), Some("pool"), Some("pool = 3"), "expected a table");
}

#[test]
fn the_digest_follows_what_goes_into_an_environment() {
    let dir = exam_dir(&claim_text(""));
    let base = load_ok(dir.path());
    let digest = base.digest();
    assert_eq!(digest.len(), 64);
    assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(load_ok(dir.path()).digest(), digest, "the same files give the same digest");

    // What does not reach an environment does not change it.
    let mut same = base.clone();
    same.title = "Another title".into();
    same.description = "Another description".into();
    same.duration = Duration::from_secs(1);
    same.tasks[0].prompt = "Another prompt".into();
    same.pool.size = 40;
    assert_eq!(same.digest(), digest);

    // Everything that does reach one changes it.
    let changed: Vec<fn(&mut Exam)> = vec![
        |e| e.environment.memory_bytes += 1,
        |e| e.environment.base = "rootfs:/srv/root".into(),
        |e| e.environment.pids += 1,
        |e| e.environment.cpu_millicores += 1,
        |e| e.environment.disk_bytes = Some(64 * MIB),
        |e| e.environment.desktop = true,
        |e| e.environment.profile = "system".into(),
        |e| e.tasks[1].setup.as_mut().unwrap().body.push_str("echo more\n"),
        |e| e.tasks[1].setup_at = examroom_exams::SetupAt::Claim,
        |e| e.tasks[0].checks[0].script.body.push('\n'),
        |e| e.tasks[0].id = "renamed".into(),
        |e| e.tasks.swap(0, 1),
        |e| {
            e.tasks.pop();
        },
    ];
    for (i, change) in changed.iter().enumerate() {
        let mut e = base.clone();
        change(&mut e);
        assert_ne!(e.digest(), digest, "change {i} kept the digest");
    }
}

#[test]
fn backends_and_services_are_read_and_checked() {
    let ok_text = text(
        "",
        "backend = \"docker\"\n[[environment.services]]\nname = \"db\"\nimage = \"examroom/postgres:16\"\ncommand = \
         [\"postgres\", \"-c\", \"fsync=off\"]\nenvironment = { POSTGRES_PASSWORD = \"x\", A = \"1\" }\nmemory = \"256M\"\n\
         ready_port = 5432\n[[environment.services]]\nname = \"cache\"\nimage = \"examroom/redis:7\"\nready_command = \
         [\"redis-cli\", \"ping\"]\n",
    );
    let exam = ok(&ok_text);
    assert_eq!(exam.environment.backend, "docker");
    let db = &exam.environment.services[0];
    assert_eq!(db.name, "db");
    assert_eq!(db.command, ["postgres", "-c", "fsync=off"]);
    assert_eq!(db.environment, [("A".to_string(), "1".to_string()), ("POSTGRES_PASSWORD".into(), "x".into())]);
    assert_eq!((db.memory_bytes, db.ready_port), (Some(256 * MIB), Some(5432)));
    assert_eq!(exam.environment.services[1].ready_command, ["redis-cli", "ping"]);
    assert_ne!(exam.digest(), ok(&text("", "")).digest(), "services change what an environment is");
    assert_eq!(ok(&text("", "")).environment.backend, "sandbox");

    assert_one(&text("", "backend = \"k8s\""), Some("environment.backend"), Some("backend ="), "not known");
    let dup = text("", "[[environment.services]]\nname = \"db\"\nimage = \"a\"\n[[environment.services]]\nname = \"db\" # again\nimage = \"b\"\n");
    assert_one(&dup, Some("environment.services[1].name"), Some("# again"), "duplicate service name");
    let bad_image = text("", "[[environment.services]]\nname = \"db\"\nimage = \"Postgres\"\n");
    assert_one(&bad_image, Some("environment.services[0].image"), Some("Postgres"), "image name");
    let bad_command = text("", "[[environment.services]]\nname = \"db\"\nimage = \"a\"\ncommand = \"postgres\"\n");
    assert_one(&bad_command, Some("environment.services[0].command"), Some("command ="), "an array of strings");
    let bad_var = text("", "[[environment.services]]\nname = \"db\"\nimage = \"a\"\nenvironment = { N = 1 }\n");
    assert_one(&bad_var, Some("environment.services[0].environment.N"), Some("N = 1"), "a string");
    let no_image = text("", "[[environment.services]]\nname = \"db\"\n");
    assert_one(
        &no_image,
        Some("environment.services[0].image"),
        Some("[[environment.services]]"),
        "missing required field",
    );
}

#[test]
fn solutions_reasons_tags_and_total_points() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("checks")).unwrap();
    fs::write(dir.path().join("checks/c.sh"), "#!/bin/sh\nexit 0\n").unwrap();
    fs::create_dir_all(dir.path().join("solutions")).unwrap();
    fs::write(dir.path().join("solutions/t.sh"), "#!/bin/sh\ntrue\n").unwrap();
    let exam_text = |task: &str, check: &str| {
        format!(
            "id = \"t\"\ntitle = \"T\"\ndescription = \"\"\nduration = \"5m\"\ntotal_points = 1\n[environment]\nbase = \"host\"\n\
             [[tasks]]\nid = \"t\"\ntitle = \"T\"\nprompt = \"p\"\n{task}\n[[tasks.checks]]\nid = \"c\"\ndescription = \"d\"\n\
             script = \"checks/c.sh\"\n{check}\n"
        )
    };
    let parse_in = |t: &str| parse_exam(t, &dir.path().join("exam.toml"), dir.path());
    let exam = parse_in(&exam_text(
        "solution = \"solutions/t.sh\"\ntags = [\"files\", \"users\"]",
        "may_pass_unsolved = \"a smoke check\"",
    ))
    .unwrap();
    assert_eq!(exam.total_points, Some(1));
    assert_eq!(exam.tasks[0].solution.as_ref().unwrap().body, "#!/bin/sh\ntrue\n");
    assert_eq!(exam.tasks[0].tags, ["files", "users"]);
    assert_eq!(exam.tasks[0].checks[0].may_pass_unsolved.as_deref(), Some("a smoke check"));
    // A solution is no part of the version; a tag is.
    let bare = parse_in(&exam_text("", "")).unwrap();
    let solved = parse_in(&exam_text("solution = \"solutions/t.sh\"", "")).unwrap();
    assert_eq!(bare.version(), solved.version());
    assert_ne!(bare.version(), exam.version());

    let ps = parse_in(&exam_text("solution = \"solutions/missing.sh\"", "may_pass_unsolved = \" \"")).unwrap_err();
    assert!(
        ps.iter()
            .any(|p| p.field.as_deref() == Some("tasks[0].solution") && p.message.contains("missing solution script")),
        "{ps:?}"
    );
    assert!(
        ps.iter()
            .any(|p| p.field.as_deref() == Some("tasks[0].checks[0].may_pass_unsolved") && p.message.contains("blank")),
        "{ps:?}"
    );
    let ps = parse_in(&exam_text("tags = \"files\"", "")).unwrap_err();
    assert!(ps.iter().any(|p| p.field.as_deref() == Some("tasks[0].tags")), "{ps:?}");
}

#[test]
fn resources_terminals_and_warnings_default_and_parse() {
    let exam = ok(&text("", ""));
    assert!(exam.resources.is_empty());
    assert_eq!(exam.environment.terminals, 4);
    assert_eq!(exam.warnings, [Duration::from_secs(600), Duration::from_secs(60)]);

    let exam = ok(&text(
        "warnings = [\"30s\", \"5m\"]\n[[resources]]\ntitle = \"Kubernetes docs\"\nurl = \"https://kubernetes.io/docs/\"\n\
         [[resources]]\ntitle = \"Local\"\nurl = \"http://127.0.0.1:8080/x?y=1#z\"",
        "terminals = 2",
    ));
    assert_eq!(exam.environment.terminals, 2);
    assert_eq!(exam.warnings, [Duration::from_secs(300), Duration::from_secs(30)]);
    assert_eq!(exam.resources.len(), 2);
    assert_eq!(exam.resources[0].title, "Kubernetes docs");
    assert_eq!(exam.resources[0].url, "https://kubernetes.io/docs/");
    assert_eq!(exam.resources[1].url, "http://127.0.0.1:8080/x?y=1#z");
    assert_ne!(exam.version(), ok(&text("", "")).version());
    assert!(ok(&text("warnings = []", "")).warnings.is_empty());
}

#[test]
fn bad_resources_terminals_and_warnings_are_refused_with_their_place() {
    for (url, why) in [
        ("javascript:alert(1)", "not an http or https URL"),
        ("ftp://example.org/", "not an http or https URL"),
        ("//example.org/", "not an http or https URL"),
        ("https://user:pw@example.org/", "credentials"),
        ("https:///path", "no valid host"),
        ("https://exa mple.org/", "spaces"),
    ] {
        let t = text(&format!("[[resources]]\ntitle = \"Docs\"\nurl = {url:?}"), "");
        assert_one(&t, Some("resources[0].url"), Some("url ="), why);
    }
    let t = text("[[resources]]\ntitle = \" \"\nurl = \"https://example.org/\"", "");
    assert_one(&t, Some("resources[0].title"), Some("title = \" \""), "blank");
    let t = text("[[resources]]\ntitle = \"Docs\"\nurl = \"https://example.org/\"\nhref = \"x\"", "");
    assert_one(&t, Some("resources[0].href"), Some("href"), "");
    let t = text("", "terminals = 9");
    assert_one(&t, Some("environment.terminals"), Some("terminals"), "");
    let t = text("", "terminals = 0");
    assert_one(&t, Some("environment.terminals"), Some("terminals"), "");
    let t = text("warnings = [\"10m\"]", "");
    assert_one(&t, Some("warnings[0]"), Some("warnings"), "shorter than the exam");
    let t = text("warnings = [\"1m\", \"1m\"]", "");
    assert_one(&t, Some("warnings[1]"), Some("warnings"), "twice");
    let t = text("warnings = \"1m\"", "");
    assert_one(&t, Some("warnings"), Some("warnings"), "");
}
