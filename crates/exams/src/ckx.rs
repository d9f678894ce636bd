//! Importing CK-X labs (`examroom exam import ckx LABS_DIR OUT_DIR`): one examroom exam per lab, and a report of
//! every inconsistency found, never silently dropped.
//!
//! CK-X's format (read, never shipped: its content is under the Business Source License since 2026-05): `labs.json`
//! (`{"labs": [{id, assetPath, name, category, description, warmUpTimeInSeconds, difficulty,
//! examDurationInMinutes}]}`), and per lab `config.json` (`workerNodes`, `questions`, `answers`), `assessment.json`
//! (`{"questions": [{id, namespace, machineHostname, question, concepts, verification: [{id, description,
//! verificationScriptFile, expectedOutput, weightage}]}]}`), `scripts/setup/qN_setup.sh`,
//! `scripts/validation/*.sh` and `answers.md`.
//!
//! What each lab becomes:
//! - each question a task: its text as the prompt (with its namespace and host), its `concepts` as `tags`; each
//!   verification step a check with its `weightage` (an integer or a numeric string) and description; a step whose
//!   script is missing becomes a check that always fails (CK-X scores it 0) and is reported;
//! - CK-X's setup scripts, every `q*_setup.sh`, become one setup script that runs them in CK-X's order (glob order:
//!   q1, q10, q11, …, q2; `natural_order`: q1, q2, …, q10) and stops at the first that fails: their exit codes now
//!   count (CK-X ignored them);
//! - the environment names what the lab needs, for the Docker backend (issue 14): an image with `kubectl`, `helm`
//!   and `jq` ([`JUMPHOST_IMAGE`]) and a per-session cluster service ([`CLUSTER_IMAGE`], with the lab's
//!   `workerNodes`) whose kubeconfig is at [`KUBECONFIG`] (exported in every setup, check and solution). Until that
//!   backend exists the exam is listed as unavailable, with the reason;
//! - `answers.md`: the code blocks under each "Question N" heading become `solutions/qN.sh` where there are shell
//!   blocks; the rest is reported for the author to finish.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::definition::MAX_SCRIPT_BYTES;

/// The image the candidate's environment runs on: kubectl, helm and jq (built by issue 14's `make images`).
pub const JUMPHOST_IMAGE: &str = "examroom/ckx-jumphost:1";
/// The image of the per-session Kubernetes cluster service (k3s: one server and the lab's worker nodes).
pub const CLUSTER_IMAGE: &str = "examroom/ckx-cluster:1";
/// The image of the per-session Docker daemon service, for labs about Docker.
pub const DOCKER_IMAGE: &str = "examroom/ckx-docker:1";
/// Where the cluster service's kubeconfig is, in the candidate's environment.
pub const KUBECONFIG: &str = "/root/.kube/config";

/// What went wrong reading the labs as a whole (a lab's own problems are in its [`LabReport`]).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Reading or writing failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// `labs.json` cannot be used.
    #[error("{0}")]
    Labs(String),
}

/// What was imported of one lab, and every inconsistency found in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabReport {
    /// The lab's id in `labs.json`.
    pub lab: String,
    /// The exam written (its directory under OUT_DIR), when one was.
    pub exam_dir: Option<PathBuf>,
    /// Tasks and checks written.
    pub tasks: usize,
    /// Checks written.
    pub checks: usize,
    /// Each inconsistency and what was done about it.
    pub findings: Vec<String>,
    /// What the author should know (not defects): how setup runs, what the exam needs.
    pub notes: Vec<String>,
}

/// Imports every lab of `labs_dir/labs.json` into `out_dir` (one exam directory per lab, named by its exam id). An
/// existing exam directory is refused (its lab is reported, nothing of it is touched).
pub fn import(labs_dir: &Path, out_dir: &Path, natural_order: bool) -> Result<Vec<LabReport>, ImportError> {
    let index = labs_dir.join("labs.json");
    let text = read_text(&index).map_err(|e| ImportError::Labs(format!("{}: {e}", index.display())))?;
    let json: Value =
        serde_json::from_str(&text).map_err(|e| ImportError::Labs(format!("{}: not JSON: {e}", index.display())))?;
    let Some(labs) = json.get("labs").and_then(Value::as_array) else {
        return Err(ImportError::Labs(format!("{}: no \"labs\" array", index.display())));
    };
    fs::create_dir_all(out_dir)
        .map_err(|source| ImportError::Io { context: format!("create {}", out_dir.display()), source })?;
    let mut seen_ids = BTreeSet::new();
    let mut reports = Vec::new();
    for (i, lab) in labs.iter().enumerate() {
        let mut report =
            LabReport { lab: string(lab, "id").unwrap_or_else(|| format!("labs[{i}]")), ..Default::default() };
        if let Err(e) = import_lab(labs_dir, out_dir, lab, natural_order, &mut seen_ids, &mut report) {
            report.findings.push(format!("not imported: {e}"));
            report.exam_dir = None;
        }
        reports.push(report);
    }
    Ok(reports)
}

fn string(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads a text file of the lab, bounded.
fn read_text(path: &Path) -> Result<String, String> {
    let meta = fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > 4 * MAX_SCRIPT_BYTES {
        return Err(format!("{} bytes is too large", meta.len()));
    }
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())
}

/// An id made of `a-z 0-9 -`: lowercased, anything else becomes `-`, at most 60 characters.
fn id_from(raw: &str) -> String {
    let mut id: String = raw
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' })
        .collect();
    while id.contains("--") {
        id = id.replace("--", "-");
    }
    let id = id.trim_matches('-');
    id.chars().take(60).collect()
}

/// A unique id from `base` in `seen`: `base`, `base-2`, `base-3`, ...
fn unique(base: &str, seen: &mut BTreeSet<String>) -> (String, bool) {
    if seen.insert(base.to_owned()) {
        return (base.to_owned(), false);
    }
    let mut n = 2;
    loop {
        let id = format!("{base}-{n}");
        if seen.insert(id.clone()) {
            return (id, true);
        }
        n += 1;
    }
}

/// The lab's directory: `assetPath` relative to LABS_DIR, or with leading components dropped (CK-X writes them from
/// the facilitator's root, as in `assets/exams/ckad/001`).
fn lab_dir(labs_dir: &Path, asset: &str) -> Option<PathBuf> {
    let rel = Path::new(asset.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return None;
    }
    let parts: Vec<_> = rel.components().collect();
    (0..parts.len()).map(|skip| parts[skip..].iter().collect::<PathBuf>()).map(|p| labs_dir.join(p)).find(|p| {
        fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) && p.join("assessment.json").is_file()
            || p.join("config.json").is_file()
    })
}

/// The name without `_setup.sh`, which CK-X's glob order compares.
fn glob_key(name: &str) -> &str {
    name.strip_suffix("_setup.sh").unwrap_or(name)
}

/// `q10_setup.sh` → 10.
fn setup_number(name: &str) -> Option<u64> {
    name.strip_prefix('q')?.strip_suffix("_setup.sh")?.parse().ok()
}

/// A weightage: an integer or a numeric string.
fn weight(v: Option<&Value>) -> Result<u64, String> {
    match v {
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| format!("weightage {n} is not a whole number")),
        Some(Value::String(s)) => s.trim().parse::<u64>().map_err(|_| format!("weightage {s:?} is not a number")),
        None => Err("no weightage".into()),
        Some(other) => Err(format!("weightage {other} is not a number")),
    }
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A script of the lab with `KUBECONFIG` exported right after its `#!` line (one is added when missing), and Unix
/// line endings.
fn with_kubeconfig(body: &str) -> String {
    let body = body.replace("\r\n", "\n");
    let export = format!("export KUBECONFIG={KUBECONFIG}\n");
    match body.strip_prefix("#!") {
        Some(_) => {
            let (first, rest) = body.split_once('\n').unwrap_or((&body, ""));
            format!("{first}\n{export}{rest}")
        }
        None => format!("#!/bin/bash\n{export}{body}"),
    }
}

/// A here-document delimiter that does not occur in `body`.
fn delimiter(body: &str) -> String {
    let mut d = "EXAMROOM_CKX_SCRIPT".to_string();
    let mut n = 0;
    while body.lines().any(|l| l.trim() == d) {
        n += 1;
        d = format!("EXAMROOM_CKX_SCRIPT_{n}");
    }
    d
}

fn write(path: &Path, body: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    fs::write(path, body).map_err(|e| format!("write {}: {e}", path.display()))
}

fn import_lab(
    labs_dir: &Path,
    out_dir: &Path,
    lab: &Value,
    natural_order: bool,
    seen_ids: &mut BTreeSet<String>,
    report: &mut LabReport,
) -> Result<(), String> {
    let lab_id = report.lab.clone();
    let base_id = match id_from(&lab_id) {
        id if id.is_empty() => "ckx-lab".to_string(),
        id => id,
    };
    let (exam_id, dup) = unique(&base_id, seen_ids);
    if dup {
        report.findings.push(format!("duplicate lab id {lab_id:?} in labs.json: imported as exam {exam_id}"));
    }
    let asset = string(lab, "assetPath").ok_or("the lab has no assetPath")?;
    let dir = lab_dir(labs_dir, &asset)
        .ok_or_else(|| format!("its assetPath {asset:?} names no lab directory under {}", labs_dir.display()))?;
    let config: Value = match read_text(&dir.join("config.json")) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| format!("config.json: not JSON: {e}"))?,
        Err(e) => {
            report.findings.push(format!("config.json: {e}; defaults used (1 worker node)"));
            Value::Null
        }
    };
    let assessment_name = string(&config, "questions").unwrap_or_else(|| "assessment.json".into());
    let assessment_name = if Path::new(&assessment_name).file_name().is_some_and(|n| n == assessment_name.as_str()) {
        assessment_name
    } else {
        report
            .findings
            .push(format!("config.json: questions {assessment_name:?} is not a file name; assessment.json read"));
        "assessment.json".into()
    };
    let assessment: Value =
        serde_json::from_str(&read_text(&dir.join(&assessment_name)).map_err(|e| format!("{assessment_name}: {e}"))?)
            .map_err(|e| format!("{assessment_name}: not JSON: {e}"))?;
    let questions = assessment
        .get("questions")
        .and_then(Value::as_array)
        .ok_or(format!("{assessment_name} has no questions array"))?;

    let out = out_dir.join(&exam_id);
    if fs::symlink_metadata(&out).is_ok() {
        return Err(format!("{} already exists; import into an empty directory", out.display()));
    }
    let staging = out_dir.join(format!(".import-{exam_id}"));
    let _ = fs::remove_dir_all(&staging);
    let result = write_exam(&dir, &staging, lab, &config, questions, &exam_id, natural_order, report);
    match result {
        Ok(()) => {
            fs::rename(&staging, &out).map_err(|e| format!("write {}: {e}", out.display()))?;
            report.exam_dir = Some(out);
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn write_exam(
    lab_dir: &Path,
    out: &Path,
    lab: &Value,
    config: &Value,
    questions: &[Value],
    exam_id: &str,
    natural_order: bool,
    report: &mut LabReport,
) -> Result<(), String> {
    let validation = lab_dir.join("scripts/validation");
    let setup_dir = lab_dir.join("scripts/setup");
    let mut toml = String::new();
    let title = string(lab, "name").unwrap_or_else(|| report.lab.clone());
    let mut description = string(lab, "description").unwrap_or_default();
    for (key, label) in [("category", "Category"), ("difficulty", "Difficulty")] {
        if let Some(v) = string(lab, key) {
            let _ = write!(description, "{}{label}: {v}.", if description.is_empty() { "" } else { " " });
        }
    }
    let minutes = match lab.get("examDurationInMinutes").and_then(string_or_number) {
        Some(m) if m > 0 => m,
        _ => {
            report.findings.push("labs.json: no examDurationInMinutes; 120 minutes used".into());
            120
        }
    };
    let warm_up = lab.get("warmUpTimeInSeconds").and_then(string_or_number).unwrap_or(0);
    let provisioning = (warm_up + 120).clamp(60, 600);
    if warm_up + 120 > 600 {
        report.findings.push(format!("warmUpTimeInSeconds {warm_up}: provisioning_timeout capped at 10m"));
    }
    let docker_lab = string(lab, "category").is_some_and(|c| c.to_lowercase().contains("docker"))
        || id_from(&report.lab).contains("docker");
    let workers = match config.get("workerNodes").and_then(string_or_number) {
        Some(n) => n,
        None if docker_lab => 0,
        None => {
            report.findings.push("config.json: no workerNodes; 1 worker node assumed".into());
            1
        }
    };
    let _ = writeln!(
        toml,
        "# Imported from the CK-X lab {:?} by `examroom exam import ckx` (see import-report.txt).",
        report.lab
    );
    let _ = writeln!(toml, "id = {}", toml_str(exam_id));
    let _ = writeln!(toml, "title = {}", toml_str(&title));
    let _ = writeln!(toml, "description = {}", toml_str(&description));
    let _ = writeln!(toml, "duration = \"{minutes}m\"");
    let _ = writeln!(toml, "provisioning_timeout = \"{provisioning}s\"\n");
    let _ = writeln!(toml, "[environment]\nbackend = \"docker\"\nbase = \"image:{JUMPHOST_IMAGE}\"\nmemory = \"1G\"\n");
    if docker_lab {
        let _ = writeln!(
            toml,
            "[[environment.services]]\nname = \"docker\"\nimage = \"{DOCKER_IMAGE}\"\nenvironment = {{ DOCKER_TLS_CERTDIR = \"\" }}\nready_port = 2375\n"
        );
        report.notes.push(format!(
            "needs a Docker daemon: the service \"docker\" ({DOCKER_IMAGE}), reached as tcp://docker:2375"
        ));
    } else {
        let _ = writeln!(
            toml,
            "[[environment.services]]\nname = \"cluster\"\nimage = \"{CLUSTER_IMAGE}\"\nenvironment = {{ WORKER_NODES = \"{workers}\", KUBECONFIG_OUT = {} }}\nmemory = \"2G\"\nready_command = [\"kubectl\", \"get\", \"nodes\"]\n",
            toml_str(KUBECONFIG)
        );
        report.notes.push(format!(
            "needs a per-session cluster: the service \"cluster\" ({CLUSTER_IMAGE}, 1 server and {workers} worker node(s)), its kubeconfig at {KUBECONFIG}, on the image {JUMPHOST_IMAGE} (kubectl, helm, jq)"
        ));
    }
    report.notes.push(
        "backend = \"docker\": unavailable until the Docker backend with per-session services (issue 14) is enabled on the server".into(),
    );

    // Setup: every q*_setup.sh, in CK-X's order, each required to succeed.
    let mut setups: Vec<String> = fs::read_dir(&setup_dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    setups.retain(|n| n.starts_with('q') && n.ends_with("_setup.sh"));
    // CK-X's glob order compares the names before `_setup.sh` as text: q1, q10, q11, ..., q2.
    setups.sort_by(|a, b| glob_key(a).cmp(glob_key(b)).then(a.cmp(b)));
    if natural_order {
        setups.sort_by_key(|n| (setup_number(n).unwrap_or(u64::MAX), n.clone()));
    }

    // Tasks.
    let mut task_ids = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    let mut weights_sum = 0u64;
    let mut first_task = true;
    let answers = read_text(
        &lab_dir.join(string(config, "answers").filter(|a| !a.contains("..")).unwrap_or_else(|| "answers.md".into())),
    );
    let answers_by_q = answers.as_deref().map(answer_blocks).unwrap_or_default();
    if let Err(e) = &answers {
        report.findings.push(format!("answers.md: {e}; no solutions written"));
    }
    let mut used_scripts = BTreeSet::new();
    for (qi, q) in questions.iter().enumerate() {
        let raw = string(q, "id").unwrap_or_else(|| (qi + 1).to_string());
        let (task_id, dup) = unique(&format!("q{}", id_from(&raw)), &mut task_ids);
        if dup {
            report.findings.push(format!("duplicate question id {raw:?}: imported as task {task_id}"));
        }
        if let Ok(n) = raw.trim().parse::<u64>() {
            numbers.insert(n);
        }
        let text = string(q, "question").unwrap_or_default();
        if text.trim().is_empty() {
            report.findings.push(format!("question {raw}: no question text"));
        }
        let mut prompt = text.replace("\r\n", "\n");
        if let Some(ns) = string(q, "namespace").filter(|s| !s.is_empty()) {
            let _ = write!(prompt, "\n\nNamespace: `{ns}`.");
        }
        if let Some(host) = string(q, "machineHostname").filter(|s| !s.is_empty()) {
            let _ = write!(prompt, "\n\n(In CK-X this was done on the host `{host}`.)");
        }
        if prompt.trim().is_empty() {
            prompt = format!("Question {raw}.");
        }
        let tags: Vec<String> = q
            .get("concepts")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let _ =
            writeln!(toml, "[[tasks]]\nid = {}\ntitle = {}", toml_str(&task_id), toml_str(&format!("Question {raw}")));
        let _ = writeln!(toml, "prompt = {}", toml_str(&prompt));
        if !tags.is_empty() {
            let list: Vec<String> = tags.iter().map(|t| toml_str(t)).collect();
            let _ = writeln!(toml, "tags = [{}]", list.join(", "));
        }
        if first_task && !setups.is_empty() {
            let _ = writeln!(toml, "setup = \"setup/lab.sh\"");
        }
        first_task = false;
        // The solution, from answers.md.
        match answers_by_q.get(raw.trim()) {
            Some((shell, others)) if !shell.is_empty() => {
                let body = format!(
                    "#!/bin/bash\n# From CK-X's answers.md, question {raw}.\nset -e\nexport KUBECONFIG={KUBECONFIG}\n{}\n",
                    shell.join("\n")
                );
                write(&out.join(format!("solutions/{task_id}.sh")), &body)?;
                let _ = writeln!(toml, "solution = \"solutions/{task_id}.sh\"");
                if *others > 0 {
                    report.findings.push(format!("question {raw}: answers.md has {others} block(s) that are not shell (YAML?); solutions/{task_id}.sh holds only the shell ones: finish it by hand"));
                }
            }
            _ if answers.is_ok() => report.findings.push(format!(
                "question {raw}: answers.md has no shell commands for it; no solution written (exam test needs one)"
            )),
            _ => {}
        }
        let steps = q.get("verification").and_then(Value::as_array).cloned().unwrap_or_default();
        if steps.is_empty() {
            report.findings.push(format!(
                "question {raw}: no verification steps; a check that always fails is written (a task needs one)"
            ));
        }
        let mut check_ids = BTreeSet::new();
        let steps: Vec<Value> = if steps.is_empty() { vec![Value::Null] } else { steps };
        for (si, step) in steps.iter().enumerate() {
            let vraw = string(step, "id").unwrap_or_else(|| (si + 1).to_string());
            let (check_id, dup) = unique(&format!("v{}", id_from(&vraw)), &mut check_ids);
            if dup && !step.is_null() {
                report
                    .findings
                    .push(format!("question {raw}: duplicate verification id {vraw:?}: imported as check {check_id}"));
            }
            let description = string(step, "description").filter(|d| !d.trim().is_empty()).unwrap_or_else(|| {
                if !step.is_null() {
                    report.findings.push(format!("question {raw}, verification {vraw}: no description"));
                }
                format!("Question {raw}, step {vraw}")
            });
            let w = if step.is_null() {
                1
            } else {
                match weight(step.get("weightage")) {
                    Ok(0) => {
                        report.findings.push(format!("question {raw}, verification {vraw}: weightage 0; weight 1 used (examroom weights are 1 to 100)"));
                        1
                    }
                    Ok(w) if w > 100 => {
                        report.findings.push(format!("question {raw}, verification {vraw}: weightage {w}; weight 100 used (the most examroom allows)"));
                        100
                    }
                    Ok(w) => {
                        if matches!(step.get("weightage"), Some(Value::String(_))) {
                            report.findings.push(format!("question {raw}, verification {vraw}: weightage {w} is written as a string; read as {w}"));
                        }
                        w
                    }
                    Err(e) => {
                        report.findings.push(format!("question {raw}, verification {vraw}: {e}; weight 1 used"));
                        1
                    }
                }
            };
            weights_sum += w;
            let script_path = format!("checks/{task_id}/{check_id}.sh");
            let file = string(step, "verificationScriptFile").unwrap_or_default();
            let source = (!file.is_empty() && Path::new(&file).file_name().is_some_and(|n| n == file.as_str()))
                .then(|| validation.join(&file));
            let body = match source.as_deref().map(read_text) {
                Some(Ok(body)) if !body.trim().is_empty() => {
                    used_scripts.insert(file.clone());
                    if body.contains('\r') {
                        report.findings.push(format!("{file}: Windows line endings, converted"));
                    }
                    with_kubeconfig(&body)
                }
                _ => {
                    let why = if step.is_null() {
                        "this question has no verification steps in CK-X".to_string()
                    } else if file.is_empty() {
                        report.findings.push(format!("question {raw}, verification {vraw}: names no script; a check that always fails is written (CK-X scores it 0)"));
                        "CK-X names no script for this step".to_string()
                    } else {
                        report.findings.push(format!("question {raw}, verification {vraw}: the script {file:?} is missing; a check that always fails is written (CK-X scores it 0)"));
                        format!("CK-X names {file}, which does not exist")
                    };
                    format!("#!/bin/sh\n# {why}: this check always fails, as it scored 0 in CK-X. Write it.\necho {} >&2\nexit 1\n", shell_quote(&why))
                }
            };
            write(&out.join(&script_path), &body)?;
            let _ = writeln!(
                toml,
                "\n[[tasks.checks]]\nid = {}\ndescription = {}\nscript = {}\nweight = {w}\ntimeout = \"30s\"",
                toml_str(&check_id),
                toml_str(&description),
                toml_str(&script_path)
            );
            report.checks += 1;
        }
        toml.push('\n');
        report.tasks += 1;
    }
    if questions.is_empty() {
        return Err("the lab has no questions".into());
    }
    if weights_sum != 100 {
        report.findings.push(format!("the weights add up to {weights_sum}, not 100 (CK-X scales the score to 100; examroom shows points out of {weights_sum})"));
    }
    // Validation scripts that no step names.
    if let Ok(d) = fs::read_dir(&validation) {
        let mut unused: Vec<String> = d
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !used_scripts.contains(n))
            .collect();
        unused.sort();
        for n in unused {
            report.findings.push(format!("scripts/validation/{n}: no verification step names it; not imported"));
        }
    }

    // The combined setup script.
    if !setups.is_empty() {
        let mut body = format!(
            "#!/bin/bash\n# CK-X's setup scripts, run in {} order: {}. Each must succeed (CK-X ignored their exit codes).\n\
             set -u\nexport KUBECONFIG={KUBECONFIG}\nwork=$(mktemp -d)\ntrap 'rm -rf \"$work\"' EXIT\n",
            if natural_order { "natural" } else { "CK-X's (glob)" },
            setups.join(", ")
        );
        for name in &setups {
            let text = read_text(&setup_dir.join(name))
                .map_err(|e| format!("scripts/setup/{name}: {e}"))?
                .replace("\r\n", "\n");
            if let Some(n) = setup_number(name) {
                if !numbers.contains(&n) {
                    report
                        .findings
                        .push(format!("scripts/setup/{name}: no question {n} uses it; it still runs, as in CK-X"));
                }
            }
            let delim = delimiter(&text);
            let _ = write!(
                body,
                "\ncat > \"$work/{name}\" <<'{delim}'\n{text}{}{delim}\necho \"== {name}\"\nbash \"$work/{name}\" || {{ rc=$?; echo \"{name} failed (exit $rc)\" >&2; exit 1; }}\n",
                if text.ends_with('\n') { "" } else { "\n" }
            );
        }
        if body.len() as u64 > MAX_SCRIPT_BYTES {
            report.findings.push(format!("the setup scripts together are {} bytes, more than the 64 KiB a script may hold; setup/lab.sh must be split by hand", body.len()));
        }
        write(&out.join("setup/lab.sh"), &body)?;
        report.notes.push(format!(
            "setup: {} run in {} order ({}), after the cluster answers; each must now exit 0 (CK-X ignored exit codes)",
            setups.len(),
            if natural_order { "natural" } else { "CK-X's glob" },
            setups.join(", ")
        ));
    }
    write(&out.join(crate::definition::EXAM_FILE), &toml)?;
    write(&out.join("import-report.txt"), &render(report))?;
    Ok(())
}

fn string_or_number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The code blocks of `answers.md` under each "Question N" (or "QN") heading: (shell lines, other blocks), by N.
fn answer_blocks(md: &str) -> BTreeMap<String, (Vec<String>, usize)> {
    let mut out: BTreeMap<String, (Vec<String>, usize)> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut fence: Option<(bool, Vec<String>)> = None;
    for line in md.lines() {
        let t = line.trim();
        if let Some((shell, lines)) = fence.as_mut() {
            if t.starts_with("```") {
                let (shell, lines) = (*shell, std::mem::take(lines));
                fence = None;
                if let Some(q) = &current {
                    let entry = out.entry(q.clone()).or_default();
                    if shell {
                        entry.0.extend(lines);
                    } else {
                        entry.1 += 1;
                    }
                }
            } else {
                lines.push(line.to_owned());
            }
            continue;
        }
        if let Some(lang) = t.strip_prefix("```") {
            let lang = lang.trim().to_lowercase();
            fence = Some((matches!(lang.as_str(), "" | "bash" | "sh" | "shell" | "console"), Vec::new()));
            continue;
        }
        if t.starts_with('#') {
            let heading = t.trim_start_matches('#').trim().to_lowercase();
            let rest = heading.strip_prefix("question").or_else(|| heading.strip_prefix('q')).map(str::trim_start);
            current = rest.and_then(|r| {
                let n: String = r.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
                (!n.is_empty()).then_some(n)
            });
        }
    }
    out
}

/// The report of one lab, as text.
pub fn render(report: &LabReport) -> String {
    let mut s = format!("CK-X lab {}", report.lab);
    match &report.exam_dir {
        Some(dir) => {
            let _ = writeln!(s, ": exam {} ({} task(s), {} check(s))", dir.display(), report.tasks, report.checks);
        }
        None => s.push_str(": not imported\n"),
    }
    for f in &report.findings {
        let _ = writeln!(s, "  inconsistency: {f}");
    }
    for n in &report.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_orders() {
        assert_eq!(id_from("CKAD 001_Lab"), "ckad-001-lab");
        assert_eq!(id_from("--x--"), "x");
        let mut names = vec!["q2_setup.sh".to_string(), "q10_setup.sh".into(), "q1_setup.sh".into()];
        names.sort_by(|a, b| glob_key(a).cmp(glob_key(b)));
        assert_eq!(names, ["q1_setup.sh", "q10_setup.sh", "q2_setup.sh"], "glob order");
        names.sort_by_key(|n| setup_number(n));
        assert_eq!(names, ["q1_setup.sh", "q2_setup.sh", "q10_setup.sh"], "natural order");
        assert_eq!(weight(Some(&Value::String(" 5 ".into()))), Ok(5));
        assert_eq!(weight(Some(&serde_json::json!(3))), Ok(3));
        assert!(weight(Some(&Value::String("five".into()))).is_err());
        assert_eq!(
            with_kubeconfig("#!/bin/bash\r\nkubectl get pods\r\n"),
            "#!/bin/bash\nexport KUBECONFIG=/root/.kube/config\nkubectl get pods\n"
        );
        assert!(with_kubeconfig("kubectl get pods\n").starts_with("#!/bin/bash\nexport KUBECONFIG"));
        assert_eq!(toml_str("a \"b\"\n"), "\"a \\\"b\\\"\\n\"");
    }

    #[test]
    fn answers_by_question() {
        let md = "# Answers\n## Question 1\n```bash\nkubectl create ns a\n```\n```yaml\nkind: Pod\n```\n## Q2\nText\n```\necho two\n```\n";
        let blocks = answer_blocks(md);
        assert_eq!(blocks["1"], (vec!["kubectl create ns a".to_string()], 1));
        assert_eq!(blocks["2"], (vec!["echo two".to_string()], 0));
    }
}
