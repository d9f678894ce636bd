//! An exam session's result: graded checks, or why there is no grade.

use serde::{Deserialize, Serialize};

/// Where grading is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultStatus {
    /// The end is graded and grading has not finished.
    Pending,
    /// Every check ran (a check that hung or crashed counts as failed).
    Graded,
    /// This end is not graded (not started, a proctor's end without grading, a failure), or the environment was lost
    /// during grading.
    NotGraded,
}

impl ResultStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultStatus::Pending => "pending",
            ResultStatus::Graded => "graded",
            ResultStatus::NotGraded => "not_graded",
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The task.
    pub task_id: String,
    /// The check, within its task.
    pub check_id: String,
    /// What it verifies, for a person.
    pub description: String,
    /// It passed (its script exited 0 within its timeout).
    pub passed: bool,
    /// Its weight.
    pub weight: u32,
    /// How long it ran.
    pub duration_ms: u64,
    /// Why it failed without an answer (timed out, could not run), if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The tail of its output, for proctors only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tail: Option<String>,
}

/// A session's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExamResult {
    /// Pending, graded or not graded.
    pub status: ResultStatus,
    /// Points earned.
    pub score: u32,
    /// Points possible.
    pub max_score: u32,
    /// Each check (empty unless graded).
    pub checks: Vec<CheckResult>,
    /// Why it is not graded, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When grading finished (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graded_at: Option<i64>,
}

impl ExamResult {
    /// A result that is not graded, and why.
    pub fn not_graded(max_score: u32, reason: impl Into<String>) -> Self {
        ExamResult {
            status: ResultStatus::NotGraded,
            score: 0,
            max_score,
            checks: Vec::new(),
            reason: Some(reason.into()),
            graded_at: None,
        }
    }

    /// A result whose grading is under way.
    pub fn pending(max_score: u32) -> Self {
        ExamResult {
            status: ResultStatus::Pending,
            score: 0,
            max_score,
            checks: Vec::new(),
            reason: None,
            graded_at: None,
        }
    }

    /// A graded result from its checks.
    pub fn graded(max_score: u32, checks: Vec<CheckResult>, at: i64) -> Self {
        let score = checks.iter().filter(|c| c.passed).map(|c| c.weight).sum();
        ExamResult { status: ResultStatus::Graded, score, max_score, checks, reason: None, graded_at: Some(at) }
    }

    /// What a candidate may see: no output tails, and no checks at all under a score-only policy.
    pub fn for_candidate(&self, show_checks: bool) -> Self {
        let mut r = self.clone();
        if show_checks {
            for c in &mut r.checks {
                c.output_tail = None;
            }
        } else {
            r.checks.clear();
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(passed: bool, weight: u32) -> CheckResult {
        CheckResult {
            task_id: "t".into(),
            check_id: "c".into(),
            description: "d".into(),
            passed,
            weight,
            duration_ms: 1,
            error: None,
            output_tail: Some("secret output".into()),
        }
    }

    #[test]
    fn score_is_the_weight_of_passed_checks() {
        let r = ExamResult::graded(6, vec![check(true, 2), check(false, 3), check(true, 1)], 5);
        assert_eq!((r.status, r.score, r.max_score), (ResultStatus::Graded, 3, 6));
    }

    #[test]
    fn candidates_never_see_output_and_score_only_hides_checks() {
        let r = ExamResult::graded(2, vec![check(true, 2)], 5);
        let shown = r.for_candidate(true);
        assert_eq!(shown.checks.len(), 1);
        assert_eq!(shown.checks[0].output_tail, None);
        assert!(r.for_candidate(false).checks.is_empty());
        assert_eq!(r.for_candidate(false).score, 2);
        let j = serde_json::to_string(&ExamResult::not_graded(4, "not started")).unwrap();
        assert_eq!(j, r#"{"status":"not_graded","score":0,"max_score":4,"checks":[],"reason":"not started"}"#);
    }
}
