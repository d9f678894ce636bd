//! `examroom exam …` for exam authors: `validate` (with lint), `test` (each task's reference solution in a real
//! session), `pack` and `install` (bundles), and `import ckx` (CK-X labs).

pub mod exam_test;

use std::path::Path;

use examroom_exams::{Lint, Problem, Severity};

/// Prints what `exam validate` found: the problems and lint's errors first, then its hints. Fails when there is a
/// problem or an error; hints alone pass.
pub fn report_validation(dir: &Path, problems: &[Problem], lints: &[Lint]) -> anyhow::Result<()> {
    let errors: Vec<&Lint> = lints.iter().filter(|l| l.severity == Severity::Error).collect();
    let hints: Vec<&Lint> = lints.iter().filter(|l| l.severity == Severity::Hint).collect();
    let failed = problems.len() + errors.len();
    if failed > 0 {
        println!("errors:");
        for p in problems {
            println!("  {p}");
        }
        for l in &errors {
            println!("  {}", l.problem);
        }
    }
    if !hints.is_empty() {
        println!("hints (worth a look; they do not fail validation):");
        for l in &hints {
            println!("  {}", l.problem);
        }
    }
    if failed == 0 {
        println!("{}: no problems{}", dir.display(), if hints.is_empty() { "" } else { " (see the hints)" });
        Ok(())
    } else {
        anyhow::bail!("{failed} error(s), {} hint(s)", hints.len())
    }
}

/// `examroom exam pack DIR [--out FILE]`.
pub fn pack(dir: &Path, out: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let out = match out {
        Some(out) => out,
        None => {
            let exam = examroom_exams::load_exam(dir).map_err(|problems| {
                let list: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
                anyhow::anyhow!("the exam does not load; fix it first:\n{}", list.join("\n"))
            })?;
            std::path::PathBuf::from(format!("{}-{}.examroom.tar.gz", exam.id, exam.short_version()))
        }
    };
    let manifest = examroom_exams::bundle::pack(dir, &out)?;
    println!(
        "{}: exam {} version {}, {} file(s)",
        out.display(),
        manifest.exam_id,
        &manifest.version[..12],
        manifest.files.len()
    );
    Ok(())
}

/// `examroom exam install ARCHIVE [--exams DIR] [--replace]`.
pub fn install(archive: &Path, exams: &Path, replace: bool) -> anyhow::Result<()> {
    let done = examroom_exams::bundle::install(archive, exams, replace)?;
    println!(
        "installed exam {} version {} in {}{}",
        done.manifest.exam_id,
        &done.manifest.version[..12],
        done.dir.display(),
        if done.replaced { " (replacing the exam that was there)" } else { "" }
    );
    Ok(())
}

/// `examroom exam import ckx LABS_DIR OUT_DIR [--natural-order]`: prints each lab's report (also written as
/// `import-report.txt` in its exam), then validates what was written. Fails when a lab could not be imported or an
/// imported exam does not validate.
pub fn import_ckx(labs_dir: &Path, out_dir: &Path, natural_order: bool) -> anyhow::Result<()> {
    let reports = examroom_exams::ckx::import(labs_dir, out_dir, natural_order)?;
    let mut failed = 0;
    for report in &reports {
        print!("{}", examroom_exams::ckx::render(report));
        let Some(dir) = &report.exam_dir else {
            failed += 1;
            continue;
        };
        let problems = examroom_exams::validate(dir);
        let errors: Vec<String> = examroom_exams::lint(dir)
            .into_iter()
            .filter(|l| l.severity == Severity::Error)
            .map(|l| l.problem.to_string())
            .chain(problems.iter().map(|p| p.to_string()))
            .collect();
        if errors.is_empty() {
            println!("  validates: yes (`examroom exam validate {}`)", dir.display());
        } else {
            failed += 1;
            println!("  validates: no");
            for e in errors {
                println!("    {e}");
            }
        }
    }
    println!(
        "{} lab(s) read, {} imported into {}",
        reports.len(),
        reports.iter().filter(|r| r.exam_dir.is_some()).count(),
        out_dir.display()
    );
    if failed > 0 {
        anyhow::bail!("{failed} lab(s) not imported or not valid");
    }
    Ok(())
}
