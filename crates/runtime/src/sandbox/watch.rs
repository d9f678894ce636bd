//! Knowing at once that an environment was lost: its shim or its init died.
//!
//! For every environment it knows (made by this process, or found again by `list` after a restart) the runtime keeps a
//! small task that waits on two process descriptors (`pidfd_open`): the shim's and its init's. Either one ending sends
//! the environment's id to every subscriber ([`Watcher::subscribe`]); the session service then reconciles at once
//! instead of at its next periodic pass, so a session whose shim was killed fails as `environment_lost` within about a
//! second. A notice is a hint, never a verdict: the reconciler asks the runtime for the truth (a machine booted again
//! for grading has a new init, and that is not a loss).

use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use examroom_core::EnvironmentId;
use tokio::io::unix::AsyncFd;
use tokio::sync::broadcast;

use super::state::{self, ShimState};

/// Notices of possibly lost environments, to every subscriber.
pub(crate) struct Watcher {
    tx: broadcast::Sender<EnvironmentId>,
    watched: Mutex<HashMap<EnvironmentId, tokio::task::AbortHandle>>,
}

impl Watcher {
    pub fn new() -> Arc<Watcher> {
        let (tx, _) = broadcast::channel(1024);
        Arc::new(Watcher { tx, watched: Mutex::new(HashMap::new()) })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<EnvironmentId> {
        self.tx.subscribe()
    }

    /// Starts watching the environment in `dir` (once; a second call does nothing). Needs a tokio runtime.
    pub fn watch(&self, id: EnvironmentId, dir: PathBuf) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let mut watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        if watched.get(&id).is_some_and(|h| !h.is_finished()) {
            return;
        }
        let tx = self.tx.clone();
        let task = tokio::spawn(async move { watch_one(id, dir, tx).await });
        watched.insert(id, task.abort_handle());
    }

    /// Stops watching (the environment is being destroyed on purpose).
    pub fn forget(&self, id: &EnvironmentId) {
        if let Some(h) = self.watched.lock().unwrap_or_else(|p| p.into_inner()).remove(id) {
            h.abort();
        }
    }
}

/// A process descriptor for `pid`, if it still runs.
fn pidfd(pid: i32) -> Option<AsyncFd<OwnedFd>> {
    if pid <= 0 {
        return None;
    }
    // SAFETY: a plain syscall; the descriptor it returns is ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was just returned by pidfd_open and is owned by nobody else; an `OwnedFd` keeps returning that same
    // descriptor, open, for as long as the `AsyncFd` holds it.
    unsafe { AsyncFd::register(OwnedFd::from_raw_fd(fd as i32)) }.ok()
}

/// Whether `pid` runs the shim of `dir` (and is not a reused pid).
fn is_shim_of(pid: i32, dir: &std::path::Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let mut want = b"__shim\0".to_vec();
    want.extend_from_slice(dir.as_os_str().as_encoded_bytes());
    cmdline.windows(want.len()).any(|w| w == want.as_slice())
}

async fn watch_one(id: EnvironmentId, dir: PathBuf, tx: broadcast::Sender<EnvironmentId>) {
    // The shim writes its state as it makes the environment: wait (bounded) for both pids.
    let mut st = ShimState::default();
    for _ in 0..100 {
        st = state::read_json(&dir.join(state::STATE)).unwrap_or_default();
        if st.shim_pid > 0 && st.init_pid > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !dir.exists() {
        return;
    }
    let shim = if is_shim_of(st.shim_pid, &dir) { pidfd(st.shim_pid) } else { None };
    let Some(shim) = shim else {
        let _ = tx.send(id);
        return;
    };
    let mut init_pid = st.init_pid;
    loop {
        let init = pidfd(init_pid);
        match init {
            Some(init) => {
                tokio::select! {
                    _ = shim.readable() => {
                        let _ = tx.send(id);
                        return;
                    }
                    _ = init.readable() => {
                        let _ = tx.send(id);
                    }
                }
            }
            None => {
                // Init is gone (and reported); the shim still holds the environment until it is destroyed.
                let _ = tx.send(id);
                let _ = shim.readable().await;
                return;
            }
        }
        // A machine booted again for grading has a new init: watch that one, once the shim has recorded it.
        let mut next = init_pid;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let st: ShimState = state::read_json(&dir.join(state::STATE)).unwrap_or_default();
            if st.init_pid != init_pid && st.init_pid > 0 {
                next = st.init_pid;
                break;
            }
        }
        if next == init_pid {
            // No new init: the environment is lost; the shim's end is the last thing to tell.
            let _ = shim.readable().await;
            let _ = tx.send(id);
            return;
        }
        init_pid = next;
    }
}
