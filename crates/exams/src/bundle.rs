//! Exam bundles: one archive that carries an exam from its author to a server (`examroom exam pack DIR`,
//! `examroom exam install ARCHIVE`).
//!
//! A bundle is a gzip'd tar of `manifest.json` and the exam directory's files under `exam/`. The manifest names the
//! format, the exam's id and version, and every file with its size and SHA-256:
//!
//! ```json
//! {"format": "examroom-exam-bundle/1", "exam_id": "quick-check", "version": "…64 hex…",
//!  "files": [{"path": "exam.toml", "size": 312, "sha256": "…"}, …]}
//! ```
//!
//! An archive is hostile input until installed, and the rules of exam directories apply to it: only regular files
//! (no symlink, hard link, device or FIFO), relative paths without `..`, each file at most [`MAX_SCRIPT_BYTES`]
//! (`exam.toml` at most [`MAX_EXAM_FILE_BYTES`]), at most [`MAX_BUNDLE_FILES`] files and [`MAX_BUNDLE_BYTES`] in all,
//! read with a bound on what the decompressor may produce. Every file must be in the manifest with its digest and
//! size, and nothing else may be in the archive. The files are written to a hidden directory in the catalog, loaded
//! as an exam (which must load without a problem, with the manifest's id and version), and only then renamed into
//! place as `<catalog>/<exam id>`: a refused bundle leaves nothing, and a server watching the catalog never sees half
//! an exam.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::load_exam;
use crate::definition::{format_bytes, EXAM_FILE, MAX_EXAM_CONTENT_BYTES, MAX_EXAM_FILE_BYTES, MAX_SCRIPT_BYTES};

/// The manifest's `format`.
pub const BUNDLE_FORMAT: &str = "examroom-exam-bundle/1";
/// The manifest's name in the archive.
pub const MANIFEST: &str = "manifest.json";
/// Where the exam's files are in the archive.
const EXAM_PREFIX: &str = "exam/";
/// The most files a bundle may hold.
pub const MAX_BUNDLE_FILES: usize = 1000;
/// The most a bundle's files may hold together (uncompressed).
pub const MAX_BUNDLE_BYTES: u64 = MAX_EXAM_CONTENT_BYTES + 2 * MAX_EXAM_FILE_BYTES;
/// The most a manifest may hold.
const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// What went wrong with a bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Reading or writing failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
    /// The exam or the archive is refused; the message says why.
    #[error("{0}")]
    Refused(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> BundleError {
    let context = context.into();
    move |source| BundleError::Io { context, source }
}

fn refused(message: impl Into<String>) -> BundleError {
    BundleError::Refused(message.into())
}

/// The manifest of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`BUNDLE_FORMAT`].
    pub format: String,
    /// The exam's id.
    pub exam_id: String,
    /// The exam's version (`Exam::version`).
    pub version: String,
    /// Every file, sorted by path.
    pub files: Vec<ManifestFile>,
}

/// One file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Relative to the exam directory.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Packs the exam directory `dir` into the bundle `out`. The exam must load without a problem; every regular file of
/// the directory goes in (hidden entries are left out), and a symlink or anything else that is not a regular file or
/// a directory is refused. Returns the manifest.
pub fn pack(dir: &Path, out: &Path) -> Result<Manifest, BundleError> {
    let exam = load_exam(dir).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        refused(format!("the exam does not load; fix it first:\n{}", list.join("\n")))
    })?;
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut total = 0u64;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let here = dir.join(&rel);
        for entry in fs::read_dir(&here).map_err(io_err(format!("read {}", here.display())))? {
            let entry = entry.map_err(io_err(format!("read {}", here.display())))?;
            let name = entry.file_name();
            if name.as_encoded_bytes().starts_with(b".") {
                continue;
            }
            let path = rel.join(&name);
            let shown = path.to_string_lossy().into_owned();
            let kind = entry.file_type().map_err(io_err(format!("read {shown}")))?;
            if kind.is_dir() {
                stack.push(path);
                continue;
            }
            if kind.is_symlink() {
                return Err(refused(format!(
                    "{shown} is a symlink; a bundle holds files only (put the file itself there)"
                )));
            }
            if !kind.is_file() {
                return Err(refused(format!("{shown} is not a regular file")));
            }
            let Some(text) = path.to_str() else {
                return Err(refused(format!("{shown}: the name is not UTF-8")));
            };
            let bytes = fs::read(dir.join(&path)).map_err(io_err(format!("read {shown}")))?;
            check_size(text, bytes.len() as u64)?;
            total += bytes.len() as u64;
            if total > MAX_BUNDLE_BYTES || files.len() >= MAX_BUNDLE_FILES {
                return Err(refused(format!(
                    "the exam directory holds more than a bundle may ({MAX_BUNDLE_FILES} files, {})",
                    format_bytes(MAX_BUNDLE_BYTES)
                )));
            }
            files.insert(text.to_owned(), bytes);
        }
    }
    let manifest = Manifest {
        format: BUNDLE_FORMAT.into(),
        exam_id: exam.id.to_string(),
        version: exam.version(),
        files: files
            .iter()
            .map(|(path, bytes)| ManifestFile {
                path: path.clone(),
                size: bytes.len() as u64,
                sha256: sha256_hex(bytes),
            })
            .collect(),
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| refused(format!("the manifest: {e}")))?;
    let tmp = out.with_extension("partial");
    let file = fs::File::create(&tmp).map_err(io_err(format!("create {}", tmp.display())))?;
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::default()));
    let mut add = |name: &str, bytes: &[u8]| -> Result<(), BundleError> {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, bytes).map_err(io_err(format!("write {name}")))
    };
    add(MANIFEST, &json)?;
    for (path, bytes) in &files {
        add(&format!("{EXAM_PREFIX}{path}"), bytes)?;
    }
    let gz = tar.into_inner().map_err(io_err("finish the archive"))?;
    let mut file = gz.finish().map_err(io_err("finish the archive"))?;
    file.flush().map_err(io_err("finish the archive"))?;
    file.sync_all().map_err(io_err("finish the archive"))?;
    fs::rename(&tmp, out).map_err(io_err(format!("write {}", out.display())))?;
    Ok(manifest)
}

fn check_size(path: &str, size: u64) -> Result<(), BundleError> {
    let max = if path == EXAM_FILE { MAX_EXAM_FILE_BYTES } else { MAX_SCRIPT_BYTES };
    if size > max {
        return Err(refused(format!("huge file: {path} is {size} bytes, more than the {} allowed", format_bytes(max))));
    }
    Ok(())
}

/// A path inside a bundle, checked: relative, `/`-separated normal components only.
fn check_path(path: &str) -> Result<(), BundleError> {
    let p = Path::new(path);
    let normal = !path.is_empty()
        && !path.contains('\0')
        && !path.contains('\\')
        && p.components().all(|c| matches!(c, Component::Normal(_)))
        && !path.ends_with('/');
    if !normal {
        return Err(refused(format!(
            "the path {path:?} escapes the exam directory or is not a plain relative path; refused"
        )));
    }
    Ok(())
}

/// Reads a bundle, checking every rule; returns its manifest and its files (by path relative to the exam directory).
pub fn read(archive: &Path) -> Result<(Manifest, BTreeMap<String, Vec<u8>>), BundleError> {
    let file = fs::File::open(archive).map_err(io_err(format!("open {}", archive.display())))?;
    // The decompressor produces at most this much, whatever the archive says (tar headers and padding included).
    let budget = MAX_BUNDLE_BYTES + MAX_MANIFEST_BYTES + (MAX_BUNDLE_FILES as u64 + 2) * 1536;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file).take(budget));
    let mut manifest: Option<Vec<u8>> = None;
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut total = 0u64;
    let bad = |e: io::Error| refused(format!("not a readable bundle (a gzip'd tar): {e}"));
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8(raw).map_err(|_| refused("a path in the bundle is not UTF-8"))?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            check_path(name.trim_end_matches('/'))?;
            continue;
        }
        if kind.is_symlink() || kind.is_hard_link() {
            return Err(refused(format!("{name} is a link; a bundle holds regular files only")));
        }
        if !kind.is_file() {
            return Err(refused(format!("{name} is not a regular file; a bundle holds regular files only")));
        }
        check_path(&name)?;
        let size = entry.header().size().map_err(bad)?;
        if name == MANIFEST {
            if manifest.is_some() {
                return Err(refused("the bundle holds two manifests"));
            }
            if size > MAX_MANIFEST_BYTES {
                return Err(refused("the manifest is too large"));
            }
            let mut bytes = Vec::new();
            (&mut entry).take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut bytes).map_err(bad)?;
            manifest = Some(bytes);
            continue;
        }
        let Some(path) = name.strip_prefix(EXAM_PREFIX) else {
            return Err(refused(format!("{name} is neither the manifest nor under {EXAM_PREFIX}; refused")));
        };
        check_path(path)?;
        check_size(path, size)?;
        if files.len() >= MAX_BUNDLE_FILES {
            return Err(refused(format!("the bundle holds more than {MAX_BUNDLE_FILES} files")));
        }
        let mut bytes = Vec::new();
        (&mut entry).take(MAX_SCRIPT_BYTES.max(MAX_EXAM_FILE_BYTES) + 1).read_to_end(&mut bytes).map_err(bad)?;
        check_size(path, bytes.len() as u64)?;
        total += bytes.len() as u64;
        if total > MAX_BUNDLE_BYTES {
            return Err(refused(format!("the bundle's files hold more than {}", format_bytes(MAX_BUNDLE_BYTES))));
        }
        if files.insert(path.to_owned(), bytes).is_some() {
            return Err(refused(format!("{path} is in the bundle twice")));
        }
    }
    let manifest = manifest.ok_or_else(|| refused(format!("the bundle has no {MANIFEST}")))?;
    let manifest: Manifest =
        serde_json::from_slice(&manifest).map_err(|e| refused(format!("the manifest is not valid: {e}")))?;
    if manifest.format != BUNDLE_FORMAT {
        return Err(refused(format!("unknown bundle format {:?}; this server reads {BUNDLE_FORMAT}", manifest.format)));
    }
    // Every file listed, with its size and digest; nothing unlisted.
    let mut listed = std::collections::BTreeSet::new();
    for f in &manifest.files {
        check_path(&f.path)?;
        let Some(bytes) = files.get(&f.path) else {
            return Err(refused(format!("the manifest lists {}, which the bundle does not hold", f.path)));
        };
        if bytes.len() as u64 != f.size || sha256_hex(bytes) != f.sha256 {
            return Err(refused(format!(
                "{}: its digest does not match the manifest's; the bundle is damaged or altered",
                f.path
            )));
        }
        listed.insert(f.path.as_str());
    }
    if let Some(extra) = files.keys().find(|p| !listed.contains(p.as_str())) {
        return Err(refused(format!("{extra} is in the bundle but not in its manifest; refused")));
    }
    if !files.contains_key(EXAM_FILE) {
        return Err(refused(format!("the bundle has no {EXAM_FILE}")));
    }
    Ok((manifest, files))
}

/// What `install` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The manifest.
    pub manifest: Manifest,
    /// Where the exam now is.
    pub dir: PathBuf,
    /// Whether an exam of that id was replaced.
    pub replaced: bool,
}

/// Installs the bundle `archive` into the catalog directory `catalog`, as `<catalog>/<exam id>`. An exam already
/// there is refused unless `replace`.
pub fn install(archive: &Path, catalog: &Path, replace: bool) -> Result<Installed, BundleError> {
    let (manifest, files) = read(archive)?;
    let id =
        examroom_core::ExamId::parse(&manifest.exam_id).map_err(|e| refused(format!("the manifest's exam id: {e}")))?;
    fs::create_dir_all(catalog).map_err(io_err(format!("create {}", catalog.display())))?;
    let dest = catalog.join(id.as_str());
    if fs::symlink_metadata(&dest).is_ok() && !replace {
        return Err(refused(format!(
            "{} already exists; give --replace to replace it (sessions running on it keep their version)",
            dest.display()
        )));
    }
    let staging = catalog.join(format!(".install-{}-{}", id.as_str(), std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let result = (|| {
        for (path, bytes) in &files {
            let to = staging.join(path);
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent).map_err(io_err(format!("create {}", parent.display())))?;
            }
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&to)
                .map_err(io_err(format!("write {}", to.display())))?;
            f.write_all(bytes).map_err(io_err(format!("write {}", to.display())))?;
        }
        let exam = load_exam(&staging).map_err(|problems| {
            let list: Vec<String> = problems.iter().map(|p| format!("  {}", p.message)).collect();
            refused(format!("the bundle's exam does not load:\n{}", list.join("\n")))
        })?;
        if exam.id != id {
            return Err(refused(format!("the manifest says {id}, but its exam.toml says {}", exam.id)));
        }
        if exam.version() != manifest.version {
            return Err(refused("the exam's version is not the manifest's; the bundle is damaged or altered"));
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    let replaced = fs::symlink_metadata(&dest).is_ok();
    if replaced {
        let old = catalog.join(format!(".replaced-{}-{}", id.as_str(), std::process::id()));
        fs::rename(&dest, &old).map_err(io_err(format!("move {} aside", dest.display())))?;
        if let Err(e) = fs::rename(&staging, &dest) {
            let _ = fs::rename(&old, &dest);
            return Err(io_err(format!("install {}", dest.display()))(e));
        }
        let _ = fs::remove_dir_all(&old);
    } else {
        fs::rename(&staging, &dest).map_err(io_err(format!("install {}", dest.display())))?;
    }
    Ok(Installed { manifest, dir: dest, replaced })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exam_dir(root: &Path) -> PathBuf {
        let dir = root.join("src");
        fs::create_dir_all(dir.join("checks")).unwrap();
        fs::create_dir_all(dir.join("solutions")).unwrap();
        fs::write(dir.join("checks/c.sh"), "#!/bin/sh\ntest -f /root/x\n").unwrap();
        fs::write(dir.join("solutions/t.sh"), "#!/bin/sh\ntouch /root/x\n").unwrap();
        fs::write(
            dir.join(EXAM_FILE),
            "id = \"bundled\"\ntitle = \"B\"\ndescription = \"\"\nduration = \"5m\"\n[environment]\nbase = \"host\"\n\
             [[tasks]]\nid = \"t\"\ntitle = \"T\"\nprompt = \"Make `/root/x`.\"\nsolution = \"solutions/t.sh\"\n\
             [[tasks.checks]]\nid = \"c\"\ndescription = \"x exists\"\nscript = \"checks/c.sh\"\n",
        )
        .unwrap();
        dir
    }

    /// Writes a gzip'd tar of `entries` (name, kind, bytes, link target).
    fn archive(path: &Path, entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) {
        let f = fs::File::create(path).unwrap();
        let mut t = tar::Builder::new(flate2::write::GzEncoder::new(f, flate2::Compression::fast()));
        for (name, kind, bytes, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            // Raw names: the tar crate's own checks would refuse the hostile ones before we could write them.
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            t.append(&h, *bytes).unwrap();
        }
        t.into_inner().unwrap().finish().unwrap();
    }

    #[test]
    fn a_packed_exam_installs_and_loads_with_its_version() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = exam_dir(tmp.path());
        let out = tmp.path().join("b.tar.gz");
        let manifest = pack(&dir, &out).unwrap();
        assert_eq!(manifest.exam_id, "bundled");
        let paths: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["checks/c.sh", "exam.toml", "solutions/t.sh"]);
        let catalog = tmp.path().join("catalog");
        let installed = install(&out, &catalog, false).unwrap();
        assert_eq!(installed.dir, catalog.join("bundled"));
        assert!(!installed.replaced);
        assert_eq!(load_exam(&installed.dir).unwrap().version(), manifest.version);
        // Again: refused without --replace, done with it.
        let e = install(&out, &catalog, false).unwrap_err();
        assert!(e.to_string().contains("already exists; give --replace"), "{e}");
        assert!(install(&out, &catalog, true).unwrap().replaced);
        // Nothing else was left in the catalog.
        let names: Vec<String> =
            fs::read_dir(&catalog).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["bundled"]);
    }

    #[test]
    fn packing_refuses_a_broken_exam_and_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = exam_dir(tmp.path());
        std::os::unix::fs::symlink("/etc/passwd", dir.join("checks/passwd")).unwrap();
        let e = pack(&dir, &tmp.path().join("b.tar.gz")).unwrap_err();
        assert!(e.to_string().contains("is a symlink"), "{e}");
        fs::remove_file(dir.join("checks/passwd")).unwrap();
        fs::write(dir.join("checks/c.sh"), "").unwrap();
        let e = pack(&dir, &tmp.path().join("b.tar.gz")).unwrap_err();
        assert!(e.to_string().contains("the exam does not load"), "{e}");
    }

    #[test]
    fn hostile_bundles_are_refused_and_leave_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = exam_dir(tmp.path());
        let good = tmp.path().join("good.tar.gz");
        let manifest = pack(&dir, &good).unwrap();
        let (_, files) = read(&good).unwrap();
        let json = serde_json::to_vec(&manifest).unwrap();
        let entries = |extra: Vec<(&'static str, tar::EntryType, Vec<u8>, Option<&'static str>)>| {
            let mut all: Vec<(String, tar::EntryType, Vec<u8>, Option<&'static str>)> =
                vec![(MANIFEST.into(), tar::EntryType::Regular, json.clone(), None)];
            for (p, b) in &files {
                all.push((format!("exam/{p}"), tar::EntryType::Regular, b.clone(), None));
            }
            for (n, k, b, l) in extra {
                all.push((n.into(), k, b, l));
            }
            all
        };
        let write = |name: &str, all: Vec<(String, tar::EntryType, Vec<u8>, Option<&'static str>)>| {
            let path = tmp.path().join(name);
            let refs: Vec<(&str, tar::EntryType, &[u8], Option<&str>)> =
                all.iter().map(|(n, k, b, l)| (n.as_str(), *k, b.as_slice(), *l)).collect();
            archive(&path, &refs);
            path
        };
        let catalog = tmp.path().join("catalog");
        let cases: Vec<(&str, PathBuf, &str)> = vec![
            (
                "escape",
                write("escape.tgz", entries(vec![("exam/../../evil", tar::EntryType::Regular, b"x".to_vec(), None)])),
                "escapes",
            ),
            (
                "absolute",
                write("abs.tgz", entries(vec![("/etc/evil", tar::EntryType::Regular, b"x".to_vec(), None)])),
                "escapes",
            ),
            (
                "symlink",
                write(
                    "link.tgz",
                    entries(vec![("exam/checks/l", tar::EntryType::Symlink, vec![], Some("/etc/passwd"))]),
                ),
                "is a link",
            ),
            (
                "hardlink",
                write("hard.tgz", entries(vec![("exam/checks/h", tar::EntryType::Link, vec![], Some("/etc/passwd"))])),
                "is a link",
            ),
            (
                "fifo",
                write("fifo.tgz", entries(vec![("exam/checks/f", tar::EntryType::Fifo, vec![], None)])),
                "not a regular file",
            ),
            (
                "unlisted",
                write(
                    "extra.tgz",
                    entries(vec![("exam/checks/extra.sh", tar::EntryType::Regular, b"x".to_vec(), None)]),
                ),
                "not in its manifest",
            ),
            (
                "huge",
                write(
                    "huge.tgz",
                    entries(vec![(
                        "exam/big",
                        tar::EntryType::Regular,
                        vec![b'a'; (MAX_SCRIPT_BYTES + 1) as usize],
                        None,
                    )]),
                ),
                "huge file",
            ),
            (
                "outside",
                write("outside.tgz", entries(vec![("evil", tar::EntryType::Regular, b"x".to_vec(), None)])),
                "neither the manifest",
            ),
        ];
        for (what, path, message) in cases {
            let e = install(&path, &catalog, false).unwrap_err();
            assert!(e.to_string().contains(message), "{what}: {e}");
        }
        // A file altered after packing: its digest does not match.
        let mut altered = entries(vec![]);
        let c = altered.iter_mut().find(|e| e.0 == "exam/checks/c.sh").unwrap();
        c.2 = b"#!/bin/sh\nexit 0\n".to_vec();
        let e = install(&write("altered.tgz", altered), &catalog, false).unwrap_err();
        assert!(e.to_string().contains("digest does not match"), "{e}");
        // Not an archive at all.
        fs::write(tmp.path().join("junk"), b"not a bundle").unwrap();
        assert!(install(&tmp.path().join("junk"), &catalog, false)
            .unwrap_err()
            .to_string()
            .contains("not a readable bundle"));
        // Nothing was left behind.
        let left: Vec<_> =
            fs::read_dir(&catalog).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "{left:?}");
        assert!(!tmp.path().join("evil").exists() && !Path::new("/etc/evil").exists());
    }
}
