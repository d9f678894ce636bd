//! The image store, a directory (0700) in the data directory:
//!
//! ```text
//! images/<hex>/rootfs         the flattened image (the environment's read-only lower layer)
//! images/<hex>/manifest.json  its manifest (for a docker save: the OCI manifest made from it); <hex> is its digest
//! images/<hex>/config.json    its config, verified
//! images/<hex>/image.json     what examroom records (ImageInfo)
//! names/<name>                NAME:TAG → the manifest digest ('/' written as '+')
//! tmp/<kind>-<pid>-<n>        imports and removals under way (removed when they end, or when their process is gone)
//! lock                        taken while names change and trees come and go
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::layout::{self, Source};
use crate::unpack::{self, Tree};
use crate::{names, ImageError, Limits, Result};

/// Where the image's `Env` and `WorkingDir` reach the candidate's login shell.
pub const PROFILE_SCRIPT: &str = "etc/profile.d/examroom-image.sh";

/// What the store records about an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// The manifest's digest: the image's identity.
    pub digest: String,
    /// Names (NAME:TAG) that point at it (filled in by [`ImageStore::list`] and [`ImageStore::resolve`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// The config's digest.
    pub config_digest: String,
    /// The layers' digests (uncompressed: the config's `diff_ids`), lowest first.
    pub layers: Vec<String>,
    /// The config's `Env`.
    pub env: Vec<String>,
    /// The config's `WorkingDir`.
    pub working_dir: Option<String>,
    /// The config's `User` (recorded; the candidate's shell runs as root of the environment).
    pub user: Option<String>,
    /// Bytes of file content, unpacked.
    pub size_bytes: u64,
    /// Entries, unpacked.
    pub inodes: u64,
    /// Where the flattened tree is (filled in on reading).
    #[serde(skip)]
    pub rootfs: PathBuf,
}

/// What an import did.
#[derive(Clone, Debug)]
pub struct ImportReport {
    /// The image.
    pub image: ImageInfo,
    /// The name given to it, if any.
    pub name: Option<String>,
    /// Whether it was there already (nothing unpacked).
    pub outcome: Imported,
}

/// Whether an import unpacked anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Imported {
    /// Its layers were unpacked now.
    Unpacked,
    /// The store had it already (maybe from an import at the same time).
    AlreadyPresent,
}

/// The image store.
#[derive(Clone, Debug)]
pub struct ImageStore {
    dir: PathBuf,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A directory under `tmp/` removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The store's lock, held while it lives.
struct Locked(#[allow(dead_code)] std::fs::File);

impl ImageStore {
    /// The store at `dir`, as it is (nothing is made: reading a store that does not exist finds no image).
    pub fn at(dir: impl Into<PathBuf>) -> ImageStore {
        ImageStore { dir: dir.into() }
    }

    /// The store at `dir`, made (0700) where missing; leftovers of imports whose process is gone are removed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<ImageStore> {
        let s = ImageStore::at(dir);
        for d in [s.dir.clone(), s.dir.join("images"), s.dir.join("names"), s.dir.join("tmp")] {
            std::fs::create_dir_all(&d).map_err(ImageError::io(format!("make {}", d.display())))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))
                .map_err(ImageError::io(format!("chmod {}", d.display())))?;
        }
        s.sweep();
        Ok(s)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn sweep(&self) {
        let Ok(rd) = std::fs::read_dir(self.dir.join("tmp")) else { return };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) || pid.is_none() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    fn scratch(&self, kind: &str) -> Result<Scratch> {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let p = self.dir.join("tmp").join(format!("{kind}-{}-{nanos}{n}", std::process::id()));
        std::fs::create_dir(&p).map_err(ImageError::io(format!("make {}", p.display())))?;
        Ok(Scratch(p))
    }

    fn lock(&self) -> Result<Locked> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("lock"))
            .map_err(ImageError::io("open the store's lock"))?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| ImageError::Io { context: "lock the store".into(), source: e.into() })?;
        Ok(Locked(f))
    }

    fn image_dir(&self, d: &Digest) -> PathBuf {
        self.dir.join("images").join(d.hex())
    }

    /// Imports an OCI image layout directory, an OCI archive or a docker/podman save archive, and names it `name`
    /// (else the name the archive gives, if any). Nothing is left behind when it fails.
    pub fn import(&self, src: &Path, name: Option<&str>, limits: Limits) -> Result<ImportReport> {
        let name = name.map(names::validate_name).transpose()?;
        let md = std::fs::metadata(src).map_err(ImageError::io(format!("{}", src.display())))?;
        let stage;
        let source = if md.is_dir() {
            Source::dir(src)?
        } else if md.is_file() {
            stage = self.scratch("stage")?;
            Source::staged(src, &stage.0, limits)?
        } else {
            return Err(ImageError::Corrupt(format!("{} is neither a directory nor a file", src.display())));
        };
        let plan = layout::plan(&source, name.as_deref())?;
        let name = match name {
            Some(n) => Some(n),
            None => plan.names.iter().find_map(|n| names::validate_name(n).ok()),
        };
        let dir = self.image_dir(&plan.digest);
        let outcome = if dir.join("image.json").exists() {
            Imported::AlreadyPresent
        } else {
            let work = self.scratch("import")?;
            let rootfs = work.0.join("rootfs");
            std::fs::create_dir(&rootfs).map_err(ImageError::io("make the tree"))?;
            let mut tree = Tree::open(&rootfs, limits)?;
            for (i, layer) in plan.layers.iter().enumerate() {
                layout::apply_layer(&source, &mut tree, layer, i + 1, limits)?;
            }
            let (env, working_dir, user) = layout::runtime_config(&plan.parsed_config);
            let info = ImageInfo {
                digest: plan.digest.to_string(),
                names: Vec::new(),
                config_digest: plan.config_digest.to_string(),
                layers: plan.parsed_config.rootfs().diff_ids().clone(),
                env,
                working_dir,
                user,
                size_bytes: tree.budget.used_bytes(),
                inodes: tree.budget.used_inodes(),
                rootfs: PathBuf::new(),
            };
            apply_config(&rootfs, &info)?;
            write(&work.0.join("manifest.json"), &plan.manifest)?;
            write(&work.0.join("config.json"), &plan.config)?;
            let json = serde_json::to_vec_pretty(&info).map_err(|e| ImageError::Corrupt(e.to_string()))?;
            write(&work.0.join("image.json"), &json)?;
            let _lock = self.lock()?;
            match rustix::fs::renameat_with(
                rustix::fs::CWD,
                &work.0,
                rustix::fs::CWD,
                &dir,
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                Ok(()) => Imported::Unpacked,
                // Another import of the same image finished first: one copy stays, ours goes with `work`.
                Err(rustix::io::Errno::EXIST) | Err(rustix::io::Errno::NOTEMPTY) => Imported::AlreadyPresent,
                Err(e) => {
                    return Err(ImageError::Io { context: format!("move into {}", dir.display()), source: e.into() })
                }
            }
        };
        if let Some(n) = &name {
            let _lock = self.lock()?;
            if !dir.join("image.json").exists() {
                // Removed between the import and the naming.
                return Err(ImageError::NotFound { reference: plan.digest.to_string() });
            }
            let file = self.dir.join("names").join(names::file_name(n));
            let tmp = self.dir.join("names").join(format!(".{}.{}", names::file_name(n), std::process::id()));
            write(&tmp, format!("{}\n", plan.digest).as_bytes())?;
            std::fs::rename(&tmp, &file).map_err(ImageError::io(format!("name {n}")))?;
        }
        let image = self.read_info(&plan.digest)?;
        Ok(ImportReport { image, name, outcome })
    }

    fn read_info(&self, d: &Digest) -> Result<ImageInfo> {
        let dir = self.image_dir(d);
        let bytes =
            std::fs::read(dir.join("image.json")).map_err(|_| ImageError::NotFound { reference: d.to_string() })?;
        let mut info: ImageInfo =
            serde_json::from_slice(&bytes).map_err(|e| ImageError::Corrupt(format!("{}: {e}", dir.display())))?;
        info.rootfs = dir.join("rootfs");
        info.names = self.names()?.into_iter().filter(|(_, dg)| dg == d).map(|(n, _)| n).collect();
        Ok(info)
    }

    /// Every name and the digest it points at, sorted by name.
    fn names(&self) -> Result<Vec<(String, Digest)>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(self.dir.join("names")) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(ImageError::io("list the names")(e)),
        };
        for e in rd.flatten() {
            let Some(name) = names::from_file_name(&e.file_name().to_string_lossy()) else { continue };
            let Ok(text) = std::fs::read_to_string(e.path()) else { continue };
            if let Ok(d) = Digest::parse(text.trim()) {
                out.push((name, d));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The image a reference names: `sha256:<hex>` (a manifest digest) or `NAME[:TAG]`.
    pub fn resolve(&self, reference: &str) -> Result<ImageInfo> {
        let digest = self.digest_of(reference)?;
        self.read_info(&digest)
    }

    fn digest_of(&self, reference: &str) -> Result<Digest> {
        if reference.starts_with("sha256:") {
            return Digest::parse(reference);
        }
        let name = names::validate_name(reference)?;
        let file = self.dir.join("names").join(names::file_name(&name));
        let text = std::fs::read_to_string(file).map_err(|_| ImageError::NotFound { reference: reference.into() })?;
        Digest::parse(text.trim()).map_err(|_| ImageError::Corrupt(format!("the name {name} holds no digest")))
    }

    /// Every image, by digest.
    pub fn list(&self) -> Result<Vec<ImageInfo>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(self.dir.join("images")) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(ImageError::io("list the images")(e)),
        };
        for e in rd.flatten() {
            let Ok(d) = Digest::parse(&format!("sha256:{}", e.file_name().to_string_lossy())) else { continue };
            if let Ok(info) = self.read_info(&d) {
                out.push(info);
            }
        }
        out.sort_by(|a, b| a.names.cmp(&b.names).then(a.digest.cmp(&b.digest)));
        Ok(out)
    }

    /// Removes a name (`NAME:TAG`) or an image (`sha256:…`, with every name pointing at it). An image no name points
    /// at any more is collected, unless `users` (given its tree) names someone using it: then nothing changes and the
    /// answer is [`ImageError::InUse`]. Returns the digests collected.
    pub fn remove(&self, reference: &str, users: &dyn Fn(&Path) -> Vec<String>) -> Result<Vec<String>> {
        let _lock = self.lock()?;
        let digest = self.digest_of(reference)?;
        let dir = self.image_dir(&digest);
        if !dir.join("image.json").exists() && reference.starts_with("sha256:") {
            return Err(ImageError::NotFound { reference: reference.into() });
        }
        let all = self.names()?;
        let dropped: Vec<&String> = if reference.starts_with("sha256:") {
            all.iter().filter(|(_, d)| *d == digest).map(|(n, _)| n).collect()
        } else {
            all.iter()
                .filter(|(n, _)| Some(n) == names::validate_name(reference).ok().as_ref())
                .map(|(n, _)| n)
                .collect()
        };
        let still_named = all.iter().any(|(n, d)| *d == digest && !dropped.contains(&n));
        let mut collected = Vec::new();
        if !still_named && dir.exists() {
            // Moved aside first: a create that starts now finds no image; then the users are looked for.
            let aside = self.scratch("rm")?;
            let parked = aside.0.join("image");
            std::fs::rename(&dir, &parked).map_err(ImageError::io(format!("move {}", dir.display())))?;
            let using = users(&dir.join("rootfs"));
            if !using.is_empty() {
                std::fs::rename(&parked, &dir).map_err(ImageError::io(format!("move back {}", dir.display())))?;
                return Err(ImageError::InUse { reference: reference.into(), users: using.join(", ") });
            }
            collected.push(digest.to_string());
        }
        for n in dropped {
            let _ = std::fs::remove_file(self.dir.join("names").join(names::file_name(n)));
        }
        Ok(collected)
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(ImageError::io(format!("create {}", path.display())))?;
    f.write_all(bytes).map_err(ImageError::io(format!("write {}", path.display())))
}

/// Single-quotes `s` for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Writes the image's `Env` and `WorkingDir` into a profile script that login shells read (and an `/etc/profile`
/// that reads `profile.d` where the image has none).
fn apply_config(rootfs: &Path, info: &ImageInfo) -> Result<()> {
    let mut script = String::from("# Written by examroom from the image's config (Env, WorkingDir).\n");
    for kv in &info.env {
        let Some((k, v)) = kv.split_once('=') else { continue };
        let valid = k.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if valid && !v.contains('\0') {
            script.push_str(&format!("export {k}={}\n", quote(v)));
        }
    }
    if let Some(wd) = &info.working_dir {
        script.push_str(&format!("cd {} 2>/dev/null || true\n", quote(wd)));
    }
    unpack::write_file(rootfs, PROFILE_SCRIPT, script.as_bytes(), 0o644)?;
    if !unpack::exists(rootfs, "etc/profile") {
        let profile = "for f in /etc/profile.d/*.sh; do [ -r \"$f\" ] && . \"$f\"; done\nunset f\n";
        unpack::write_file(rootfs, "etc/profile", profile.as_bytes(), 0o644)?;
    }
    Ok(())
}
