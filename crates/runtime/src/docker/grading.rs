//! Grading for the Docker backend: checks run in a separate container, `examroom-<env>-grading`, made from the
//! candidate's **pristine image** (the image id their container was created from, never their writable layer), with
//! the candidate's files mounted in as data. Nothing inside the candidate's container takes part: it is paused (the
//! freeze), and the shim in it is paused with it.
//!
//! # What a check sees (the sandbox's trusted view, `sandbox::shim::trusted::view`, built from Docker mounts)
//! - **Code is the image's**: the grading container's own root filesystem is the pristine image (read-only), so
//!   `/usr` (with `/usr/local`), `/bin`, `/sbin` and `/lib*` are never the candidate's, whatever they replaced.
//! - **The candidate's data top-level directories** (`/root`, `/home`, `/srv`, `/opt`, `/var`, `/run`, and any
//!   directory they made at the top) are their files, taken from the candidate container's merged overlay directory
//!   (`GraphDriver.Data.MergedDir`) through `local` volumes of type `none` with the options
//!   `bind,ro,noexec,nosuid,nodev`: read-only, **noexec**, nosuid, nodev.
//! - **`/etc`** is assembled as the sandbox's `etc.rs` does: a volume of our own holding the pristine image's entries
//!   that steer code ([`FROM_PRISTINE`]: `nsswitch.conf`, `ld.so.*`, `profile`, `pam.d`...), with the candidate's
//!   other entries mounted over it: their directories as noexec volumes, their regular files as read-only binds,
//!   their symlinks recreated as symlinks (resolved inside the check's view, never on the host). An entry the
//!   candidate deleted is absent. `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` are the candidate's live
//!   ones (Docker's own files for their container, which they edit in place), read-only.
//! - **Their whole tree**, as they left it, at `/candidate` (read-only, noexec).
//! - `/tmp` is the check's own tmpfs (noexec); `/dev` is Docker's minimal one; `/proc` shows the candidate's
//!   processes (see below).
//!
//! # What holds and what does not
//! - Holds: every program a check runs by name is the image's: `PATH` is fixed ([`CHECK_PATH`], all pristine), the
//!   loader's and NSS's configuration are pristine, and every directory of the candidate's is mounted noexec.
//! - Does **not** hold: Docker's plain bind mounts cannot be noexec, and a `local` volume can only hold a
//!   directory, so the candidate's **regular files** at the top level and in `/etc` are read-only binds that keep
//!   their execute bit (nosuid is moot: checks run as root). A pristine program that executes a file in `/etc` that is
//!   not in [`FROM_PRISTINE`] would run the candidate's. Through `/proc/<pid>/root` of a candidate process (the pid
//!   namespace is shared) a check could reach their live tree, executable: checks must not go there. Also: Docker clears a volume's noexec when the container's
//!   mount is itself marked read-only (runc remounts it with only `ro`), so the volumes are mounted without
//!   Docker's `ReadOnly`: they are read-only by their own mount, and checks hold no `CAP_SYS_ADMIN` to change it.
//! - Not visible as data: the candidate's tmpfs mounts and volumes (Docker gives no host path for a container's
//!   tmpfs; only the merged overlay is used), top-level symlinks other than code (seen at `/candidate`), sockets,
//!   devices and pipes.
//! - The candidate must be **paused** (frozen) while the grading container is made and while a check runs: dockerd
//!   resolves the bind sources on the host, and a running candidate could swap a directory for a symlink between
//!   our check of it and that resolution. [`exec_trusted`] refuses to run otherwise.
//!
//! # Namespaces and confinement
//! - Network: the candidate's (`container:examroom-<env>`), so `ss`, `netstat` and `curl localhost` checks see their
//!   listening sockets (the kernel completes handshakes on a listening socket even while its owner is frozen). No
//!   other network.
//! - Pid: the candidate's (`container:examroom-<env>`), as in the sandbox, so that `ps`/`pgrep` checks see their
//!   processes. Sound because they are frozen: none of them can signal or trace a check, and checks hold
//!   `CAP_DAC_READ_SEARCH` only (not `CAP_SYS_PTRACE`). The grading container dies with the candidate's init.
//! - Checks run as root (uid 0) with every capability dropped but `CAP_DAC_READ_SEARCH` (read any file), with
//!   `no-new-privileges`, Docker's default seccomp profile, never privileged, a read-only root, and the candidate
//!   container's memory, pids and CPU limits.
//! - The grading container's own process is the image's `sleep` (the image needs one, as every base image has).
//! - Checks of one environment run one at a time (this process serialises them); after each check every process it
//!   left in the grading container is killed.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, HostConfig, Mount, MountType, MountVolumeOptions, RestartPolicy,
    RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder, TopOptionsBuilder,
};
use bollard::Docker;
use examroom_core::EnvironmentId;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::time::{sleep, Instant};

use super::services::{api_error, bounded, is_status, labels, session_name, LABEL_ENVIRONMENT, LABEL_ROLE};
use crate::error::RuntimeError;
// The same rules as the sandbox's check view: which entries of `/etc` come from the pristine base (etc.rs says why).
use crate::sandbox::shim::trusted::etc::{matches, nested, FROM_PRISTINE};
use crate::types::{ExecOutput, ExecRequest};

/// The `PATH` of every check. All of it is the pristine image's (unlike the sandbox's host base, `/usr/local` is the
/// image's own here, so it is on the path).
pub const CHECK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Top-level names whose content is code: always the pristine image's (and any name starting with `lib`).
const CODE_TOPS: &[&str] = &["usr", "bin", "sbin"];

/// Top-level names of the candidate's tree that are never taken as data.
const NOT_DATA: &[&str] = &["etc", "proc", "sys", "dev", "tmp", "candidate", ".examroom", ".dockerenv"];

/// `/etc` files Docker mounts itself (the candidate's own, live: with the candidate's network namespace, Docker
/// mounts their container's files).
const DOCKER_ETC: &[&str] = &["hosts", "hostname", "resolv.conf"];

/// How long the grading container may take to be made and start.
const MAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// After a check's timeout, how long its output may still drain once its processes are killed.
const DRAIN_AFTER_KILL: Duration = Duration::from_secs(5);

/// The grading container's name: `examroom-<env>-grading`.
fn grading_name(env: &EnvironmentId) -> String {
    format!("examroom-{env}-grading")
}

/// Runs `req` as a check of environment `env`: in the grading container (made on first use, see the module's
/// documentation), as root, with a fixed `PATH`, the request's other variables (minus loader and shell start-up
/// variables), its working directory (`/` when that is not a directory in the check's view), its stdin, its timeout
/// (the check and everything it started are killed from the host) and its per-stream output cap.
///
/// The candidate's container must be paused (frozen): [`RuntimeError::Unsupported`] otherwise. Docker reports a
/// check killed by a signal as exit code 128 + the signal, so `exit_code` carries that; only a check killed at its
/// timeout has `signal` (SIGKILL) and no exit code.
pub(crate) async fn exec_trusted(
    docker: &Docker,
    label: &str,
    env: &EnvironmentId,
    req: ExecRequest,
) -> Result<ExecOutput, RuntimeError> {
    if req.argv.is_empty() {
        return Err(RuntimeError::invalid("argv", "a check needs a program to run"));
    }
    let lock = env_lock(env);
    let _held = lock.lock().await;
    let candidate = session_name(env);
    let cand = match docker.inspect_container(&candidate, None).await {
        Ok(c) => c,
        Err(e) if is_status(&e, 404) => return Err(RuntimeError::NotFound),
        Err(e) => return Err(api_error(&format!("inspect {candidate}"), e)),
    };
    let state = cand.state.clone().unwrap_or_default();
    if state.running != Some(true) {
        return Err(RuntimeError::Lost(format!("the candidate's container {candidate} is not running")));
    }
    if state.paused != Some(true) {
        return Err(RuntimeError::Unsupported(format!(
            "a trusted command runs only on a frozen environment, and {candidate} is not paused: freeze the \
             environment first"
        )));
    }
    let grading = match tokio::time::timeout(MAKE_TIMEOUT, ensure_grading(docker, label, env, &cand)).await {
        Ok(r) => r?,
        Err(_) => {
            let _ = remove_grading(docker, env).await;
            return Err(RuntimeError::Timeout {
                what: format!("the grading container {} to be made and start", grading_name(env)),
                ms: MAKE_TIMEOUT.as_millis() as u64,
            });
        }
    };
    let out = run_check(docker, &grading, req).await;
    kill_leftovers(docker, &grading).await;
    out
}

/// The running grading container.
struct Grading {
    name: String,
    id: String,
    /// Host pid of its own process (the long sleep).
    pid: i64,
}

/// The label on the grading container that records what it was made of (a digest of the image and the [`Plan`]).
const LABEL_PLAN: &str = "examroom.grading-plan";

/// Finds the grading container running and made of what the candidate's tree holds now, or makes it (again: when
/// it does not run, or when the candidate's top-level or `/etc` entries changed since it was made, for example
/// after they were unfrozen and frozen again).
async fn ensure_grading(
    docker: &Docker,
    label: &str,
    env: &EnvironmentId,
    cand: &ContainerInspectResponse,
) -> Result<Grading, RuntimeError> {
    let name = grading_name(env);
    let candidate = session_name(env);
    let image = cand.image.clone().filter(|i| !i.is_empty()).ok_or_else(|| {
        RuntimeError::Backend(format!("{candidate} names no image: its pristine image cannot be found"))
    })?;
    let driver = cand.graph_driver.as_ref();
    let merged = driver.and_then(|d| d.data.get("MergedDir")).map(PathBuf::from).ok_or_else(|| {
        RuntimeError::Unsupported(format!(
            "grading needs the candidate's merged directory, and the Docker storage driver {:?} gives none (use \
             overlay2)",
            driver.map(|d| d.name.clone()).unwrap_or_default()
        ))
    })?;
    if !merged.is_dir() {
        return Err(RuntimeError::Backend(format!(
            "the candidate's files ({}) are not visible from here: the examroom server must run on the Docker \
             host, as root",
            merged.display()
        )));
    }
    let plan = Plan::read(&merged);
    let digest = {
        use md5::{Digest, Md5};
        let d = Md5::digest(format!("{image}\n{}\n{plan:?}", merged.display()).as_bytes());
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let made = Made {
        image: &image,
        merged: &merged,
        plan: &plan,
        digest: &digest,
        host: cand.host_config.clone().unwrap_or_default(),
    };
    for _ in 0..2 {
        match docker.inspect_container(&name, None).await {
            Ok(g) => {
                let st = g.state.unwrap_or_default();
                let same =
                    g.config.and_then(|c| c.labels).and_then(|l| l.get(LABEL_PLAN).cloned()) == Some(digest.clone());
                if same && st.running == Some(true) && st.pid.unwrap_or(0) > 0 {
                    return Ok(Grading { name, id: g.id.unwrap_or_default(), pid: st.pid.unwrap_or(0) });
                }
                // Made by an earlier call that did not finish, stopped, or made of other entries: make it again.
                remove_grading(docker, env).await?;
            }
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(api_error(&format!("inspect {name}"), e)),
        }
        let made = make_grading(docker, label, env, &made);
        if let Err(e) = made.await {
            let _ = remove_grading(docker, env).await;
            return Err(e);
        }
    }
    Err(RuntimeError::Backend(format!("the grading container {name} did not stay running once started")))
}

/// What a grading container is made of.
struct Made<'a> {
    /// The candidate container's image id.
    image: &'a str,
    /// The candidate container's merged directory (a host path).
    merged: &'a Path,
    plan: &'a Plan,
    /// Recorded in [`LABEL_PLAN`].
    digest: &'a str,
    /// The candidate container's limits, applied to the grading container too.
    host: HostConfig,
}

/// One mount of the grading container, before it becomes a Docker [`Mount`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// A directory of the candidate's (a host path under their merged directory), as a noexec volume.
    Dir(PathBuf),
    /// A regular file of the candidate's, as a read-only bind.
    File(PathBuf),
}

/// What the grading container is made of, read from the candidate's merged directory.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    /// (target in the grading container, source).
    mounts: Vec<(PathBuf, Source)>,
    /// Inside our `/etc` volume: directories to make (mount points and directories of nested rules), files to make
    /// (mount points), symlinks to make (name, target), all relative to `/etc`.
    etc_dirs: Vec<PathBuf>,
    etc_files: Vec<PathBuf>,
    etc_links: Vec<(PathBuf, PathBuf)>,
}

/// The entries of a directory, sorted (an unreadable one has none).
fn entries(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut names: Vec<_> =
        std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    names.sort();
    names
}

impl Plan {
    /// Reads the candidate's tree at `merged` (a host path; the candidate is frozen, so nothing changes under us).
    /// Nothing below `merged` is followed through a symlink: every directory used as a source was seen as a
    /// directory by `lstat`, below parents that were too.
    fn read(merged: &Path) -> Plan {
        let mut plan = Plan::default();
        for name in entries(merged) {
            let bytes = name.as_bytes();
            let s = name.to_string_lossy();
            if CODE_TOPS.contains(&s.as_ref()) || bytes.starts_with(b"lib") || NOT_DATA.contains(&s.as_ref()) {
                continue;
            }
            let path = merged.join(&name);
            let Ok(md) = std::fs::symlink_metadata(&path) else { continue };
            let target = Path::new("/").join(&name);
            if md.is_dir() {
                plan.mounts.push((target, Source::Dir(path)));
            } else if md.is_file() {
                plan.mounts.push((target, Source::File(path)));
            }
        }
        let etc = merged.join("etc");
        if std::fs::symlink_metadata(&etc).map(|m| m.is_dir()).unwrap_or(false) {
            plan.read_etc(&etc, Path::new(""), FROM_PRISTINE);
        }
        plan
    }

    fn read_etc(&mut self, dir: &Path, rel: &Path, rules: &[&str]) {
        for name in entries(dir) {
            let bytes = name.as_bytes();
            if matches(bytes, rules) || (rel.as_os_str().is_empty() && DOCKER_ETC.iter().any(|d| d.as_bytes() == bytes))
            {
                continue;
            }
            let path = dir.join(&name);
            let Ok(md) = std::fs::symlink_metadata(&path) else { continue };
            let at = rel.join(&name);
            let inner = nested(bytes, rules);
            if md.is_dir() && !inner.is_empty() {
                // Only some entries of this directory come from the pristine image: mount it entry by entry.
                self.etc_dirs.push(at.clone());
                self.read_etc(&path, &at, &inner);
            } else if md.is_dir() {
                self.etc_dirs.push(at.clone());
                self.mounts.push((Path::new("/etc").join(&at), Source::Dir(path)));
            } else if md.is_file() {
                self.etc_files.push(at.clone());
                self.mounts.push((Path::new("/etc").join(&at), Source::File(path)));
            } else if md.file_type().is_symlink() {
                if let Ok(to) = std::fs::read_link(&path) {
                    self.etc_links.push((at, to));
                }
            }
        }
    }
}

/// Removes from our copy of the pristine `/etc` (a host directory) everything but [`FROM_PRISTINE`].
fn prune_pristine(dir: &Path, rules: &[&str]) -> std::io::Result<()> {
    for name in entries(dir) {
        let bytes = name.as_bytes();
        if matches(bytes, rules) {
            continue;
        }
        let path = dir.join(&name);
        let md = std::fs::symlink_metadata(&path)?;
        let inner = nested(bytes, rules);
        if md.is_dir() && !inner.is_empty() {
            prune_pristine(&path, &inner)?;
        } else if md.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Makes the mount points and symlinks of the candidate's `/etc` entries in our `/etc` volume (a host directory),
/// and the files Docker mounts its own over.
fn fill_etc(dir: &Path, plan: &Plan) -> std::io::Result<()> {
    for d in &plan.etc_dirs {
        std::fs::create_dir_all(dir.join(d))?;
    }
    for f in plan
        .etc_files
        .iter()
        .chain(DOCKER_ETC.iter().map(Path::new).map(|p| p.to_path_buf()).collect::<Vec<_>>().iter())
    {
        let at = dir.join(f);
        if std::fs::symlink_metadata(&at).is_err() {
            std::fs::File::create(&at)?;
        }
    }
    for (at, to) in &plan.etc_links {
        let at = dir.join(at);
        if std::fs::symlink_metadata(&at).is_err() {
            std::os::unix::fs::symlink(to, &at)?;
        }
    }
    Ok(())
}

/// Makes and starts the grading container of `env`.
async fn make_grading(docker: &Docker, label: &str, env: &EnvironmentId, made: &Made<'_>) -> Result<(), RuntimeError> {
    let name = grading_name(env);
    let candidate = session_name(env);
    let (merged, plan) = (made.merged, made.plan);
    let role_labels = labels(label, env, "grading");
    let mut n = 0usize;
    let mut noexec_volume = |source: &Path| {
        n += 1;
        let vol = format!("{name}-{n}");
        let req = VolumeCreateRequest {
            name: Some(vol.clone()),
            driver: Some("local".into()),
            driver_opts: Some(HashMap::from([
                ("type".to_string(), "none".to_string()),
                ("o".to_string(), "bind,ro,noexec,nosuid,nodev".to_string()),
                ("device".to_string(), source.to_string_lossy().into_owned()),
            ])),
            labels: Some(role_labels.clone()),
            ..Default::default()
        };
        (vol, req)
    };
    let volume_mount = |vol: &str, target: &Path| Mount {
        target: Some(target.to_string_lossy().into_owned()),
        source: Some(vol.to_string()),
        typ: Some(MountType::VOLUME),
        // Not Docker's read-only: that remount would clear noexec (the volume's own mount is read-only).
        read_only: Some(false),
        // Never copy the image's files into the candidate's directory.
        volume_options: Some(MountVolumeOptions { no_copy: Some(true), ..Default::default() }),
        ..Default::default()
    };
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    let (whole, req) = noexec_volume(merged);
    volumes.push(req);
    mounts.push(volume_mount(&whole, Path::new("/candidate")));
    let etc_volume = format!("{name}-etc");
    volumes.push(VolumeCreateRequest {
        name: Some(etc_volume.clone()),
        driver: Some("local".into()),
        labels: Some(role_labels.clone()),
        ..Default::default()
    });
    mounts.push(Mount {
        target: Some("/etc".into()),
        source: Some(etc_volume.clone()),
        typ: Some(MountType::VOLUME),
        read_only: Some(true),
        // Docker copies the pristine image's /etc into this empty volume at create; we keep only FROM_PRISTINE.
        volume_options: Some(MountVolumeOptions { no_copy: Some(false), ..Default::default() }),
        ..Default::default()
    });
    for (target, source) in &plan.mounts {
        match source {
            Source::Dir(path) => {
                let (vol, req) = noexec_volume(path);
                volumes.push(req);
                mounts.push(volume_mount(&vol, target));
            }
            Source::File(path) => mounts.push(Mount {
                target: Some(target.to_string_lossy().into_owned()),
                source: Some(path.to_string_lossy().into_owned()),
                typ: Some(MountType::BIND),
                read_only: Some(true),
                ..Default::default()
            }),
        }
    }
    for req in volumes {
        let vol = req.name.clone().unwrap_or_default();
        bounded(&format!("create the grading volume {vol}"), docker.create_volume(req)).await?;
    }
    let host = made.host.clone();
    let positive = |v: Option<i64>| v.filter(|v| *v > 0);
    let body = ContainerCreateBody {
        image: Some(made.image.to_string()),
        entrypoint: Some(vec!["sleep".into()]),
        cmd: Some(vec!["2147483647".into()]),
        env: Some(vec![format!("PATH={CHECK_PATH}")]),
        user: Some("0:0".into()),
        working_dir: Some("/".into()),
        labels: Some({
            let mut l = role_labels.clone();
            l.insert(LABEL_PLAN.to_string(), made.digest.to_string());
            l
        }),
        host_config: Some(HostConfig {
            network_mode: Some(format!("container:{candidate}")),
            pid_mode: Some(format!("container:{candidate}")),
            ipc_mode: Some("private".into()),
            privileged: Some(false),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(vec!["DAC_READ_SEARCH".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            mounts: Some(mounts),
            tmpfs: Some(HashMap::from([("/tmp".to_string(), "rw,noexec,nosuid,nodev,size=64m,mode=1777".to_string())])),
            memory: positive(host.memory),
            memory_swap: positive(host.memory_swap),
            pids_limit: positive(host.pids_limit),
            nano_cpus: positive(host.nano_cpus),
            cpu_quota: positive(host.cpu_quota),
            cpu_period: positive(host.cpu_period),
            restart_policy: Some(RestartPolicy { name: Some(RestartPolicyNameEnum::NO), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let opts = CreateContainerOptionsBuilder::default().name(&name).build();
    match docker.create_container(Some(opts), body).await {
        Ok(_) => {}
        Err(e) if is_status(&e, 409) => {
            // Another call is making it: wait for it to run.
            return wait_running(docker, &name).await;
        }
        Err(e) => return Err(api_error(&format!("create the grading container {name}"), e)),
    }
    let etc_dir = bounded("inspect the grading /etc volume", docker.inspect_volume(&etc_volume)).await?.mountpoint;
    let etc_dir = PathBuf::from(etc_dir);
    prune_pristine(&etc_dir, FROM_PRISTINE)
        .and_then(|()| fill_etc(&etc_dir, plan))
        .map_err(|e| RuntimeError::io(format!("assemble the check's /etc in {}", etc_dir.display()), e))?;
    bounded(&format!("start the grading container {name}"), docker.start_container(&name, None)).await?;
    Ok(())
}

/// Waits (bounded) until the container `name` runs.
async fn wait_running(docker: &Docker, name: &str) -> Result<(), RuntimeError> {
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if let Ok(c) = docker.inspect_container(name, None).await {
            if c.state.and_then(|s| s.running) == Some(true) {
                return Ok(());
            }
        }
        sleep(Duration::from_millis(100)).await;
    }
    Err(RuntimeError::Timeout { what: format!("{name} to run (made by another call)"), ms: 30_000 })
}

/// The environment of a check: the request's variables minus `PATH` and those that make a loader or a shell run
/// other code, then `PATH` = [`CHECK_PATH`] and `TMPDIR=/tmp` unless given.
fn check_env(requested: &[(String, String)]) -> Vec<String> {
    let refused = |k: &str| k == "PATH" || k.starts_with("LD_") || k == "BASH_ENV" || k == "ENV" || k.contains('=');
    let mut env: Vec<String> =
        requested.iter().filter(|(k, _)| !k.is_empty() && !refused(k)).map(|(k, v)| format!("{k}={v}")).collect();
    env.push(format!("PATH={CHECK_PATH}"));
    if !requested.iter().any(|(k, _)| k == "TMPDIR") {
        env.push("TMPDIR=/tmp".into());
    }
    env
}

/// Whether `cwd` is a directory in the view of the process `pid` (resolved inside its root, so that no symlink of the
/// candidate's reaches outside).
fn dir_in_view(pid: i64, cwd: &str) -> bool {
    let Ok(root) = std::fs::File::open(format!("/proc/{pid}/root")) else { return false };
    let Ok(path) = CString::new(cwd.trim_start_matches('/').as_bytes().to_vec()) else { return false };
    if path.as_bytes().is_empty() {
        return true;
    }
    /// The kernel's `struct open_how`.
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    };
    use std::os::fd::AsRawFd;
    // SAFETY: openat2 with a valid directory descriptor, a NUL-terminated path and an `open_how` of its size.
    let fd = unsafe {
        libc::syscall(libc::SYS_openat2, root.as_raw_fd(), path.as_ptr(), &how, std::mem::size_of::<OpenHow>())
    };
    if fd < 0 {
        return false;
    }
    // SAFETY: closing the descriptor openat2 just gave us.
    unsafe { libc::close(fd as i32) };
    true
}

/// Runs one check in the grading container.
async fn run_check(docker: &Docker, g: &Grading, req: ExecRequest) -> Result<ExecOutput, RuntimeError> {
    let start = Instant::now();
    let cwd = if dir_in_view(g.pid, &req.cwd) { req.cwd.clone() } else { "/".to_string() };
    let exec = bounded(
        "create a check's exec in the grading container",
        docker.create_exec(
            &g.name,
            CreateExecOptions::<String> {
                attach_stdin: Some(!req.stdin.is_empty()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                tty: Some(false),
                env: Some(check_env(&req.env)),
                cmd: Some(req.argv.clone()),
                privileged: Some(false),
                user: Some("0:0".into()),
                working_dir: Some(cwd),
                ..Default::default()
            },
        ),
    )
    .await?;
    let started = bounded("start a check", docker.start_exec(&exec.id, None)).await?;
    let StartExecResults::Attached { mut output, mut input } = started else {
        return Err(RuntimeError::Backend("the Docker Engine started the check detached".into()));
    };
    let stdin = req.stdin;
    let feeder = tokio::spawn(async move {
        if !stdin.is_empty() {
            let _ = input.write_all(&stdin).await;
        }
        let _ = input.shutdown().await;
    });
    let limit = usize::try_from(req.output_limit).unwrap_or(usize::MAX);
    let (mut stdout, mut stderr, mut truncated) = (Vec::new(), Vec::new(), false);
    let mut keep = |buf: &mut Vec<u8>, bytes: &[u8]| {
        let room = limit.saturating_sub(buf.len());
        if bytes.len() > room {
            truncated = true;
        }
        buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    };
    let deadline = start + req.timeout;
    let mut timed_out = false;
    let mut drain_until = None;
    loop {
        let until = drain_until.unwrap_or(deadline);
        tokio::select! {
            item = output.next() => match item {
                Some(Ok(bollard::container::LogOutput::StdOut { message })) => keep(&mut stdout, &message),
                Some(Ok(bollard::container::LogOutput::StdErr { message })) => keep(&mut stderr, &message),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
            _ = tokio::time::sleep_until(until) => {
                if drain_until.is_some() {
                    break;
                }
                timed_out = true;
                kill_exec(docker, g, &exec.id).await;
                kill_leftovers(docker, g).await;
                drain_until = Some(Instant::now() + DRAIN_AFTER_KILL);
            }
        }
    }
    feeder.abort();
    let mut exit_code = None;
    let wait_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < wait_until {
        let info = bounded("inspect a check's exec", docker.inspect_exec(&exec.id)).await?;
        if info.running != Some(true) {
            exit_code = info.exit_code;
            break;
        }
        sleep(Duration::from_millis(20)).await;
    }
    let (exit_code, signal) = if timed_out {
        (None, Some(libc::SIGKILL))
    } else {
        match exit_code {
            Some(c) => (Some(c as i32), None),
            None => {
                return Err(RuntimeError::Backend(
                    "a check's output ended but the Docker Engine never said how it exited".into(),
                ))
            }
        }
    };
    Ok(ExecOutput { exit_code, signal, timed_out, stdout, stderr, truncated, duration: start.elapsed() })
}

/// Kills a check's process (the exec's pid, from exec inspect) from the host.
async fn kill_exec(docker: &Docker, g: &Grading, exec_id: &str) {
    if let Ok(info) = docker.inspect_exec(exec_id).await {
        if let Some(pid) = info.pid.filter(|p| *p > 0) {
            kill_in(pid, &g.id);
        }
    }
}

/// Kills every process in the grading container but its own long sleep (what a check left behind).
async fn kill_leftovers(docker: &Docker, g: &Grading) {
    let opts = TopOptionsBuilder::default().ps_args("-o pid").build();
    let Ok(Ok(top)) = tokio::time::timeout(Duration::from_secs(10), docker.top_processes(&g.name, Some(opts))).await
    else {
        return;
    };
    let col = top.titles.unwrap_or_default().iter().position(|t| t == "PID").unwrap_or(0);
    for row in top.processes.unwrap_or_default() {
        if let Some(pid) = row.get(col).and_then(|p| p.trim().parse::<i64>().ok()) {
            if pid != g.pid {
                kill_in(pid, &g.id);
            }
        }
    }
}

/// Sends SIGKILL to the host pid `pid` if it is (still) in the container `id`'s cgroup: through a pidfd, so a pid
/// reused in between is never signalled.
fn kill_in(pid: i64, id: &str) {
    if id.is_empty() || pid <= 0 {
        return;
    }
    // SAFETY: pidfd_open on a pid number; the result is a descriptor we own or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return;
    }
    let fd = fd as i32;
    let ours = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).map(|c| c.contains(id)).unwrap_or(false);
    if ours {
        // SAFETY: signalling through the pidfd we hold.
        unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, fd, libc::SIGKILL, std::ptr::null::<libc::siginfo_t>(), 0)
        };
    }
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(fd) };
}

/// Removes the grading container of `env` and its volumes (the candidate's files stay: every volume of theirs is a
/// read-only bind, which removing only unmounts). A missing container is fine.
pub(crate) async fn remove(docker: &Docker, env: &EnvironmentId) -> Result<(), RuntimeError> {
    let lock = env_lock(env);
    let _held = lock.lock().await;
    let out = remove_grading(docker, env).await;
    LOCKS.lock().unwrap_or_else(|p| p.into_inner()).remove(env);
    out
}

/// [`remove`], under the environment's lock already held.
async fn remove_grading(docker: &Docker, env: &EnvironmentId) -> Result<(), RuntimeError> {
    let name = grading_name(env);
    let opts = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
    match tokio::time::timeout(Duration::from_secs(30), docker.remove_container(&name, Some(opts))).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) if is_status(&e, 404) => {}
        Ok(Err(e)) => return Err(api_error(&format!("remove {name}"), e)),
        Err(_) => {
            return Err(RuntimeError::Timeout { what: format!("the Docker Engine to remove {name}"), ms: 30_000 })
        }
    }
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_ENVIRONMENT}={env}"), format!("{LABEL_ROLE}=grading")],
    )]);
    let opts = ListVolumesOptionsBuilder::default().filters(&filters).build();
    let list = bounded("list the grading volumes", docker.list_volumes(Some(opts))).await?;
    let mut first = None;
    for v in list.volumes.unwrap_or_default() {
        // Docker releases a volume a little after its container is gone: retry briefly.
        let mut last = None;
        for _ in 0..20 {
            match docker.remove_volume(&v.name, None::<bollard::query_parameters::RemoveVolumeOptions>).await {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) if is_status(&e, 404) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(api_error(&format!("remove the grading volume {}", v.name), e)),
            }
            sleep(Duration::from_millis(100)).await;
        }
        if let Some(e) = last {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// One lock per environment: its checks run one at a time (a check must never see another's processes, and the
/// processes a check leaves are killed when it ends), and its grading container is made once.
static LOCKS: std::sync::LazyLock<std::sync::Mutex<HashMap<EnvironmentId, std::sync::Arc<tokio::sync::Mutex<()>>>>> =
    std::sync::LazyLock::new(Default::default);

fn env_lock(env: &EnvironmentId) -> std::sync::Arc<tokio::sync::Mutex<()>> {
    LOCKS.lock().unwrap_or_else(|p| p.into_inner()).entry(*env).or_default().clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_names_and_prefixes_and_nest() {
        for yes in ["ld.so.preload", "ld.so.cache", "nsswitch.conf", "python3.11", "zshrc", "pam.d"] {
            assert!(matches(yes.as_bytes(), FROM_PRISTINE), "{yes}");
        }
        for no in ["passwd", "group", "shadow", "hosts", "cron.d", "ssl", "ssh", "nsswitch.conf.bak"] {
            assert!(!matches(no.as_bytes(), FROM_PRISTINE), "{no}");
        }
        assert_eq!(nested(b"ssh", FROM_PRISTINE), ["ssh_config", "ssh_config.d"]);
        assert!(nested(b"cron.d", FROM_PRISTINE).is_empty());
    }

    #[test]
    fn the_plan_takes_data_as_data_and_never_code_or_links() {
        let t = tempfile::tempdir().unwrap();
        let m = t.path();
        for d in ["usr/bin", "bin", "lib64", "root", "home/u", "etc/cron.d", "etc/ssh", "etc/pam.d", "proc", "tmp"] {
            std::fs::create_dir_all(m.join(d)).unwrap();
        }
        std::fs::write(m.join("answer.txt"), "x").unwrap();
        std::fs::write(m.join("etc/passwd"), "root").unwrap();
        std::fs::write(m.join("etc/nsswitch.conf"), "passwd: x").unwrap();
        std::fs::write(m.join("etc/hosts"), "").unwrap();
        std::fs::write(m.join("etc/ssh/ssh_config"), "").unwrap();
        std::fs::write(m.join("etc/ssh/sshd_config"), "").unwrap();
        std::os::unix::fs::symlink("/", m.join("escape")).unwrap();
        std::os::unix::fs::symlink("/usr/share/zoneinfo/UTC", m.join("etc/localtime")).unwrap();
        let plan = Plan::read(m);
        let targets: Vec<&Path> = plan.mounts.iter().map(|(t, _)| t.as_path()).collect();
        assert_eq!(
            targets,
            [
                Path::new("/answer.txt"),
                Path::new("/home"),
                Path::new("/root"),
                Path::new("/etc/cron.d"),
                Path::new("/etc/passwd"),
                Path::new("/etc/ssh/sshd_config"),
            ]
        );
        assert!(matches!(&plan.mounts[1].1, Source::Dir(p) if p == &m.join("home")));
        assert!(matches!(&plan.mounts[4].1, Source::File(p) if p == &m.join("etc/passwd")));
        assert_eq!(plan.etc_links, [(PathBuf::from("localtime"), PathBuf::from("/usr/share/zoneinfo/UTC"))]);
        assert_eq!(plan.etc_dirs, [PathBuf::from("cron.d"), PathBuf::from("ssh")]);

        // Our /etc keeps only the pristine entries that steer code, then gets the candidate's mount points.
        let pristine = t.path().join("pristine");
        for d in ["pam.d", "ssh", "cron.d"] {
            std::fs::create_dir_all(pristine.join(d)).unwrap();
        }
        for f in ["nsswitch.conf", "passwd", "group", "ssh/ssh_config", "ssh/moduli", "pam.d/login"] {
            std::fs::write(pristine.join(f), "p").unwrap();
        }
        prune_pristine(&pristine, FROM_PRISTINE).unwrap();
        fill_etc(&pristine, &plan).unwrap();
        let mut left: Vec<String> = walk(&pristine);
        left.sort();
        assert_eq!(
            left,
            [
                "cron.d",
                "hostname",
                "hosts",
                "localtime",
                "nsswitch.conf",
                "pam.d",
                "pam.d/login",
                "passwd",
                "resolv.conf",
                "ssh",
                "ssh/ssh_config",
                "ssh/sshd_config",
            ]
        );
        assert_eq!(std::fs::read_to_string(pristine.join("nsswitch.conf")).unwrap(), "p");
        assert_eq!(
            std::fs::read_to_string(pristine.join("passwd")).unwrap(),
            "",
            "a mount point, not the pristine file"
        );
    }

    fn walk(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let md = std::fs::symlink_metadata(e.path()).unwrap();
            if md.is_dir() {
                out.extend(walk(&e.path()).into_iter().map(|s| format!("{name}/{s}")));
            }
            out.push(name);
        }
        out
    }

    #[test]
    fn checks_get_a_fixed_path_and_no_loader_variables() {
        let env = check_env(&[
            ("HOME".into(), "/root".into()),
            ("LD_PRELOAD".into(), "/root/x.so".into()),
            ("PATH".into(), "/root/bin".into()),
            ("BASH_ENV".into(), "/root/.evil".into()),
        ]);
        assert_eq!(env, ["HOME=/root", &format!("PATH={CHECK_PATH}"), "TMPDIR=/tmp"]);
    }
}
