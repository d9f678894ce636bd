//! Exam versions: the catalog now, and every version of an exam that a live session still runs on.
//!
//! A session records the version of the exam definition it started on (`Exam::version`, a digest of everything it
//! uses). The catalog may be reloaded while sessions run (`SIGHUP`, or a change in its directory, see
//! [`SessionService::reload_catalog`]); a session keeps its own version for its setup, its tasks and its grading.
//! [`ExamVersions`] holds the current catalog and, by version, each exam a session may still need: every version
//! in the current catalog and every version a live session recorded. A reload drops the versions no live session
//! uses any more.
//!
//! Versions are kept in memory: after a restart of the server, a session whose version is no longer in the catalog
//! goes on with the current definition of its exam (logged as a warning).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use examroom_core::ExamId;
use examroom_exams::{Catalog, Exam};

/// The current catalog and the versions of exams that sessions may still use.
pub struct ExamVersions {
    book: RwLock<Book>,
}

struct Book {
    catalog: Arc<Catalog>,
    /// The current version of each exam of the catalog.
    current: HashMap<ExamId, (String, Arc<Exam>)>,
    /// Every kept version: the current ones and those live sessions use.
    kept: HashMap<String, Arc<Exam>>,
}

/// What a reload changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Exams that were not in the catalog before.
    pub added: Vec<String>,
    /// Exams whose version changed.
    pub changed: Vec<String>,
    /// Exams no longer in the catalog.
    pub removed: Vec<String>,
    /// Older versions kept because live sessions run on them.
    pub kept_for_sessions: usize,
    /// Problems of the new catalog (exams left out).
    pub problems: usize,
}

impl ExamVersions {
    /// Versions of `catalog`'s exams.
    pub fn new(catalog: Catalog) -> ExamVersions {
        let (current, kept) = index(&catalog);
        ExamVersions { book: RwLock::new(Book { catalog: Arc::new(catalog), current, kept }) }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Book> {
        self.book.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The catalog now.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.read().catalog.clone()
    }

    /// The current definition of an exam, with its version.
    pub fn current(&self, id: &ExamId) -> Option<(String, Arc<Exam>)> {
        self.read().current.get(id).cloned()
    }

    /// The definition a session uses: its recorded `version` when that is kept, else (a session from before
    /// versions, or whose version was lost with a restart) the exam's current definition.
    pub fn of(&self, id: &ExamId, version: Option<&str>) -> Option<Arc<Exam>> {
        let book = self.read();
        if let Some(v) = version {
            if let Some(exam) = book.kept.get(v).filter(|e| e.id == *id) {
                return Some(exam.clone());
            }
        }
        let exam = book.current.get(id).map(|(_, e)| e.clone());
        if let (Some(v), Some(_)) = (version, &exam) {
            tracing::warn!(exam = %id, version = v, "a session's exam version is no longer known; it uses the current one");
        }
        exam
    }

    /// Replaces the catalog, keeping the versions in `in_use` (those of live sessions).
    pub fn replace(&self, catalog: Catalog, in_use: &HashSet<String>) -> ReloadReport {
        let (current, new_kept) = index(&catalog);
        let mut book = self.book.write().unwrap_or_else(|p| p.into_inner());
        let mut report = ReloadReport { problems: catalog.problems().len(), ..ReloadReport::default() };
        for (id, (version, _)) in &current {
            match book.current.get(id) {
                None => report.added.push(id.to_string()),
                Some((old, _)) if old != version => report.changed.push(id.to_string()),
                Some(_) => {}
            }
        }
        report.removed = book.current.keys().filter(|id| !current.contains_key(*id)).map(|id| id.to_string()).collect();
        report.added.sort();
        report.changed.sort();
        report.removed.sort();
        let mut kept = new_kept;
        for (version, exam) in book.kept.drain() {
            if in_use.contains(&version) && !kept.contains_key(&version) {
                report.kept_for_sessions += 1;
                kept.insert(version, exam);
            }
        }
        *book = Book { catalog: Arc::new(catalog), current, kept };
        report
    }

    /// How many versions are kept (the current ones included).
    pub fn kept(&self) -> usize {
        self.read().kept.len()
    }
}

type Index = (HashMap<ExamId, (String, Arc<Exam>)>, HashMap<String, Arc<Exam>>);

fn index(catalog: &Catalog) -> Index {
    let mut current = HashMap::new();
    let mut kept = HashMap::new();
    for exam in catalog.exams() {
        let version = exam.version();
        let exam = Arc::new(exam.clone());
        kept.insert(version.clone(), exam.clone());
        current.insert(exam.id.clone(), (version, exam));
    }
    (current, kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use examroom_exams::{Check, EnvironmentConfig, Script, Task};
    use std::time::Duration;

    fn exam(id: &str, check_body: &str) -> Exam {
        let script = Script { path: "checks/a.sh".into(), body: check_body.into() };
        Exam {
            id: ExamId::parse(id).unwrap(),
            title: "T".into(),
            description: String::new(),
            duration: Duration::from_secs(60),
            environment: EnvironmentConfig::host(),
            provisioning_timeout: Duration::from_secs(60),
            start_grace: Duration::from_secs(60),
            dir: "/x".into(),
            tasks: vec![Task {
                id: "a".into(),
                title: "A".into(),
                prompt: "p".into(),
                setup: None,
                setup_at: Default::default(),
                checks: vec![Check {
                    id: "c".into(),
                    description: "c".into(),
                    script,
                    weight: 1,
                    timeout: Duration::from_secs(5),
                    may_pass_unsolved: None,
                }],
                solution: None,
                tags: Vec::new(),
            }],
            result: Default::default(),
            attempts: examroom_exams::Attempts::AtMost(1),
            pool: Default::default(),
            total_points: None,
            resources: Vec::new(),
            warnings: examroom_exams::DEFAULT_WARNINGS.to_vec(),
        }
    }

    #[test]
    fn a_session_keeps_its_version_across_reloads_until_none_uses_it() {
        let v1 = exam("e", "exit 1\n");
        let v2 = exam("e", "exit 0\n");
        let (ver1, ver2) = (v1.version(), v2.version());
        assert_ne!(ver1, ver2, "a changed check is a new version");
        let id = v1.id.clone();
        let versions = ExamVersions::new(Catalog::from_exams([v1.clone()]));
        assert_eq!(versions.of(&id, Some(&ver1)).unwrap().tasks[0].checks[0].script.body, "exit 1\n");

        // A reload while a session runs on v1: v1 stays for it, new sessions get v2.
        let report = versions.replace(Catalog::from_exams([v2.clone()]), &HashSet::from([ver1.clone()]));
        assert_eq!(report.changed, vec!["e".to_string()]);
        assert_eq!(report.kept_for_sessions, 1);
        assert_eq!(versions.of(&id, Some(&ver1)).unwrap().tasks[0].checks[0].script.body, "exit 1\n");
        assert_eq!(versions.current(&id).unwrap().0, ver2);
        assert_eq!(versions.of(&id, None).unwrap().tasks[0].checks[0].script.body, "exit 0\n");
        assert_eq!(versions.kept(), 2);

        // No session uses v1 any more: the next reload drops it; a session that still named it gets the current.
        let report = versions.replace(Catalog::from_exams([v2.clone()]), &HashSet::new());
        assert!(report.changed.is_empty() && report.added.is_empty() && report.removed.is_empty(), "{report:?}");
        assert_eq!(versions.kept(), 1);
        assert_eq!(versions.of(&id, Some(&ver1)).unwrap().tasks[0].checks[0].script.body, "exit 0\n");

        // Removed from the catalog: a live session still has it; a new lookup by id does not.
        let report = versions.replace(Catalog::empty(), &HashSet::from([ver2.clone()]));
        assert_eq!(report.removed, vec!["e".to_string()]);
        assert!(versions.of(&id, Some(&ver2)).is_some());
        assert!(versions.of(&id, None).is_none());
        assert!(versions.catalog().is_empty());
    }

    #[test]
    fn lint_knows_the_grading_budget() {
        assert_eq!(examroom_exams::lint::GRADING_BUDGET, crate::ending::GRADING_BUDGET);
    }

    #[test]
    fn prompts_weights_and_titles_are_part_of_the_version_but_not_of_the_environment_digest() {
        let a = exam("e", "exit 0\n");
        let mut b = a.clone();
        b.tasks[0].prompt = "another prompt".into();
        assert_ne!(a.version(), b.version());
        assert_eq!(a.digest(), b.digest());
        let mut c = a.clone();
        c.tasks[0].checks[0].weight = 2;
        assert_ne!(a.version(), c.version());
        let mut d = a.clone();
        d.tasks[0].solution = Some(Script { path: "s.sh".into(), body: "true\n".into() });
        assert_eq!(a.version(), d.version(), "a reference solution is not part of what candidates get");
    }
}
