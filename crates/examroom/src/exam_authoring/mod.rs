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
