//! A directory of exams ([`Catalog`]), reading one exam directory safely ([`load_exam`]), and the checks
//! behind `examroom exam validate DIR` ([`validate`]).
//!
//! The catalog directory holds one sub-directory per exam, each with an `exam.toml`. Sub-directories are
//! read in order of their names. Hidden entries (names starting with `.`), plain files and sub-directories
//! without an `exam.toml` are skipped. A broken exam is reported in [`Catalog::problems`] and left out; it
//! never stops the others from loading, and nothing here panics. Two exams with the same id: the first, by
//! directory name, is kept, and the later one is reported and left out.
//!
//! Before `exam.toml` is parsed it must be a regular file (not a FIFO or a device), no larger than
//! [`MAX_EXAM_FILE_BYTES`], valid UTF-8, and if it is a symlink, one that stays inside its exam directory.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use examroom_core::ExamId;

use crate::definition::{format_bytes, Exam, EXAM_FILE, MAX_EXAM_FILE_BYTES};
use crate::parse::{parse_exam_located, Locations};
use crate::problem::Problem;

/// The exams of one catalog directory, by id, and the problems found while loading it.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    exams: BTreeMap<ExamId, Exam>,
    problems: Vec<Problem>,
}

impl Catalog {
    /// Loads every exam under `dir` (one sub-directory per exam). Never fails: an unreadable `dir` or a
    /// broken exam becomes a [`Problem`], and each problem is also logged as a warning.
    pub fn load(dir: &Path) -> Catalog {
        let catalog = Self::scan(dir);
        for problem in &catalog.problems {
            tracing::warn!(problem = %problem, "exam skipped");
        }
        tracing::info!(
            dir = %dir.display(),
            exams = catalog.exams.len(),
            problems = catalog.problems.len(),
            "exam catalog loaded"
        );
        catalog
    }

    /// A catalog with no exams and no problems.
    pub fn empty() -> Catalog {
        Catalog::default()
    }

    /// A catalog of exams that are already loaded, for tests and embedding. A later exam with the id of an
    /// earlier one is left out and reported.
    pub fn from_exams(exams: impl IntoIterator<Item = Exam>) -> Catalog {
        let mut catalog = Catalog::empty();
        for exam in exams {
            catalog.insert(exam, None);
        }
        catalog
    }

    /// The exam with this id.
    pub fn get(&self, id: &ExamId) -> Option<&Exam> {
        self.exams.get(id)
    }

    /// Every exam, sorted by id.
    pub fn exams(&self) -> impl Iterator<Item = &Exam> {
        self.exams.values()
    }

    /// How many exams loaded.
    pub fn len(&self) -> usize {
        self.exams.len()
    }

    /// Whether no exam loaded.
    pub fn is_empty(&self) -> bool {
        self.exams.is_empty()
    }

    /// Everything that was wrong, in the order of the exam directories' names. Empty when all is well.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// [`Catalog::load`] without logging.
    pub(crate) fn scan(dir: &Path) -> Catalog {
        let mut catalog = Catalog::empty();
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                catalog.problems.push(Problem::new(dir, format!("cannot read the exam catalog directory: {e}")));
                return catalog;
            }
        };
        let mut exam_dirs: Vec<(std::ffi::OsString, PathBuf)> = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    catalog.problems.push(Problem::new(dir, format!("cannot list the exam catalog directory: {e}")));
                    continue;
                }
            };
            let name = entry.file_name();
            let path = entry.path();
            if name.as_encoded_bytes().starts_with(b".") || !path.is_dir() {
                continue;
            }
            if fs::symlink_metadata(path.join(EXAM_FILE)).is_err() {
                tracing::debug!(dir = %path.display(), "no {EXAM_FILE}; not an exam directory");
                continue;
            }
            exam_dirs.push((name, path));
        }
        exam_dirs.sort();
        for (_, path) in exam_dirs {
            match load_located(&path) {
                Ok((exam, locations)) => catalog.insert(exam, Some((path.join(EXAM_FILE), locations))),
                Err(problems) => catalog.problems.extend(problems),
            }
        }
        catalog
    }

    /// Adds `exam` unless its id is taken, in which case the exam is reported at `located` (its file as the
    /// catalog named it, and where its id is) and left out.
    fn insert(&mut self, exam: Exam, located: Option<(PathBuf, Locations)>) {
        let (file, id_line) = match located {
            Some((file, locations)) => (file, locations.id_line),
            None => (exam.file(), None),
        };
        if let Some(first) = self.exams.get(&exam.id) {
            let message = format!(
                "duplicate exam id {:?}: {} already defines it; this exam is skipped",
                exam.id.as_str(),
                first.file().display()
            );
            self.problems.push(Problem::new(file, message).at_line(id_line).with_field("id"));
            return;
        }
        self.exams.insert(exam.id.clone(), exam);
    }
}

/// Loads one exam directory: reads its `exam.toml` safely and parses it. On failure the result holds every
/// problem found.
pub fn load_exam(dir: &Path) -> Result<Exam, Vec<Problem>> {
    load_located(dir).map(|(exam, _)| exam)
}

fn load_located(dir: &Path) -> Result<(Exam, Locations), Vec<Problem>> {
    let file = dir.join(EXAM_FILE);
    let text = read_exam_file(dir, &file).map_err(|p| vec![p])?;
    let exam_dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    parse_exam_located(&text, &file, &exam_dir)
}

/// Reads `file` (the `exam.toml` of `dir`), refusing what must not be parsed.
fn read_exam_file(dir: &Path, file: &Path) -> Result<String, Problem> {
    let refuse = |message: String| Problem::new(file, message);
    let link = fs::symlink_metadata(file).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => refuse(format!("there is no {EXAM_FILE} in this directory")),
        _ => refuse(format!("cannot read {EXAM_FILE}: {e}")),
    })?;
    if link.file_type().is_symlink() {
        let target = fs::canonicalize(file)
            .map_err(|e| refuse(format!("{EXAM_FILE} is a symlink that cannot be followed: {e}")))?;
        let dir = fs::canonicalize(dir).map_err(|e| refuse(format!("cannot resolve the exam directory: {e}")))?;
        if !target.starts_with(&dir) {
            return Err(refuse(format!(
                "{EXAM_FILE} is a symlink to a file outside the exam directory; refused (put the file itself here)"
            )));
        }
    }
    let meta = fs::metadata(file).map_err(|e| refuse(format!("cannot read {EXAM_FILE}: {e}")))?;
    if !meta.is_file() {
        return Err(refuse(format!("{EXAM_FILE} is not a regular file")));
    }
    let huge = |size: String| {
        refuse(format!(
            "huge file: {EXAM_FILE} is {size}, more than the {} allowed; refused before parsing",
            format_bytes(MAX_EXAM_FILE_BYTES)
        ))
    };
    if meta.len() > MAX_EXAM_FILE_BYTES {
        return Err(huge(format!("{} bytes", meta.len())));
    }
    let mut bytes = Vec::new();
    fs::File::open(file)
        .and_then(|f| f.take(MAX_EXAM_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| refuse(format!("cannot read {EXAM_FILE}: {e}")))?;
    // The file may have grown since it was measured.
    if bytes.len() as u64 > MAX_EXAM_FILE_BYTES {
        return Err(huge("larger".to_owned()));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        refuse(format!("{EXAM_FILE} is not valid UTF-8; save it as UTF-8")).at_line(Some(line))
    })
}

/// [`validate`], and also each exam whose base is an image (`base = "image:REF"`) that `missing` says is not there
/// (`missing` answers what is wrong and how to fix it, e.g. the command that imports the image).
pub fn validate_images(dir: &Path, missing: &dyn Fn(&str) -> Option<String>) -> Vec<Problem> {
    let mut problems = validate(dir);
    let exams: Vec<Exam> = if fs::symlink_metadata(dir.join(EXAM_FILE)).is_ok() {
        load_exam(dir).into_iter().collect()
    } else {
        Catalog::scan(dir).exams.into_values().collect()
    };
    for exam in exams {
        // Another backend's images are not in this store (the Docker backend's are in its engine).
        if exam.environment.backend != crate::definition::BACKEND_SANDBOX {
            continue;
        }
        let Some(reference) = exam.environment.base.strip_prefix("image:") else { continue };
        let Some(why) = missing(reference) else { continue };
        let file = exam.dir.join(EXAM_FILE);
        let line = fs::read_to_string(&file).ok().and_then(|text| {
            text.lines().position(|l| l.trim_start().starts_with("base") && l.contains("image:")).map(|i| i + 1)
        });
        problems.push(Problem::new(file, why).at_line(line).with_field("environment.base"));
    }
    problems
}

/// Validates `dir` for `examroom exam validate DIR`: one exam directory (when it holds an `exam.toml`) or a
/// catalog directory. Returns every problem found, nothing when all is well. A catalog with no exams at all
/// is a problem too, since it is almost certainly the wrong directory.
pub fn validate(dir: &Path) -> Vec<Problem> {
    if fs::symlink_metadata(dir.join(EXAM_FILE)).is_ok() {
        return load_exam(dir).err().unwrap_or_default();
    }
    match fs::metadata(dir) {
        Err(e) => return vec![Problem::new(dir, format!("cannot read the directory: {e}"))],
        Ok(meta) if !meta.is_dir() => {
            return vec![Problem::new(dir, "not a directory; give an exam directory or a catalog directory")]
        }
        Ok(_) => {}
    }
    let catalog = Catalog::scan(dir);
    let mut problems = catalog.problems;
    if catalog.exams.is_empty() && problems.is_empty() {
        problems.push(Problem::new(
            dir,
            format!("no exams found: expected {EXAM_FILE} here or in its sub-directories (one per exam)"),
        ));
    }
    problems
}
