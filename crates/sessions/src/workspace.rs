//! The candidate's workspace on the exam page, kept on the server (never inside the environment): the tasks they
//! flagged for review and visited, their notepad, and the terminals they opened besides "main". It survives a
//! reload or a change of computer; the proctor reads it, during the session and after its end.

use examroom_core::{DomainError, Role, SessionState};
use examroom_store::{SessionRecord, SessionStore, Workspace};

use crate::service::{incident, Caller, SessionService};

/// The longest notepad, in bytes of UTF-8.
pub const MAX_NOTEPAD_BYTES: usize = 32 * 1024;

/// The most terminals one session may open in all, closed ones included. The shim keeps a closed terminal's shell
/// until the environment is destroyed (its protocol has no request to close one yet), so opening is bounded.
pub const MAX_TERMINALS_OPENED: usize = 32;

/// A change to the workspace: each field given replaces the stored one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceChange {
    /// The flagged task ids (each must be one of the exam's tasks).
    pub flagged: Option<Vec<String>>,
    /// The visited task ids (each must be one of the exam's tasks).
    pub visited: Option<Vec<String>>,
    /// The notepad, at most [`MAX_NOTEPAD_BYTES`].
    pub notepad: Option<String>,
}

/// A session's terminals as its candidate sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminals {
    /// Open terminals, "main" first, then in the order they were opened.
    pub open: Vec<String>,
    /// How many may be open at once (the exam's `[environment] terminals`).
    pub limit: u32,
}

/// Whether `name` has the shape of a terminal's name ("main", "t1", ...); anything else is never looked up.
pub fn valid_terminal_name(name: &str) -> bool {
    name == "main"
        || name
            .strip_prefix('t')
            .is_some_and(|n| !n.is_empty() && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// How many terminals the session opened besides "main", closed ones included.
fn opened_in_all(w: &Workspace) -> usize {
    w.closed.len() + w.terminals.len()
}

impl SessionService {
    /// A session's workspace: its candidate's or, for a proctor, anyone's, in any state (the proctor reads it after
    /// the end).
    pub async fn workspace(&self, caller: &Caller, id: &str) -> Result<(SessionRecord, Workspace), DomainError> {
        let rec = self.get(caller, id).await?;
        let w = self.stored_workspace(&rec).await?;
        Ok((rec, w))
    }

    /// Changes the candidate's workspace while the session is ready or active. Task ids are checked against the
    /// session's exam and kept once each, in the order given.
    pub async fn change_workspace(
        &self,
        caller: &Caller,
        id: &str,
        change: WorkspaceChange,
    ) -> Result<Workspace, DomainError> {
        // What the request alone shows wrong is said first, whatever the session's state.
        if let Some(n) = &change.notepad {
            if n.len() > MAX_NOTEPAD_BYTES {
                return Err(DomainError::invalid_request(format!(
                    "the notepad holds at most {} KiB; this is {} bytes",
                    MAX_NOTEPAD_BYTES / 1024,
                    n.len()
                )));
            }
        }
        let rec = self.candidate_session(caller, id).await?;
        let exam = self.exam_of(&rec);
        let known = |ids: Vec<String>, field: &str| -> Result<Vec<String>, DomainError> {
            let mut out: Vec<String> = Vec::with_capacity(ids.len());
            for t in ids {
                if !exam.as_ref().is_some_and(|e| e.tasks.iter().any(|task| task.id == t)) {
                    let mut shown = t.clone();
                    shown.truncate(64);
                    return Err(DomainError::invalid_request(format!("{field}: {shown:?} is not a task of this exam")));
                }
                if !out.contains(&t) {
                    out.push(t);
                }
            }
            Ok(out)
        };
        let flagged = change.flagged.map(|f| known(f, "flagged")).transpose()?;
        let visited = change.visited.map(|v| known(v, "visited")).transpose()?;
        let _turn = self.inner.workspaces.lock().await;
        let mut w = self.stored_workspace(&rec).await?;
        if let Some(f) = flagged {
            w.flagged = f;
        }
        if let Some(v) = visited {
            w.visited = v;
        }
        if let Some(n) = change.notepad {
            w.notepad = n;
        }
        self.store_workspace(&rec, &w).await?;
        Ok(w)
    }

    /// The session's open terminals and the exam's limit (the candidate's own session, or any for a proctor).
    pub async fn terminals(&self, caller: &Caller, id: &str) -> Result<Terminals, DomainError> {
        let rec = self.get(caller, id).await?;
        let w = self.stored_workspace(&rec).await?;
        Ok(self.terminals_of(&rec, &w))
    }

    /// Opens another terminal with a fresh shell, up to the exam's limit. It does not start the clock (attaching does).
    pub async fn open_terminal(&self, caller: &Caller, id: &str) -> Result<(String, Terminals), DomainError> {
        use examroom_runtime::ExecutionRuntime;
        let rec = self.candidate_session(caller, id).await?;
        let _turn = self.inner.workspaces.lock().await;
        let mut w = self.stored_workspace(&rec).await?;
        let now = self.terminals_of(&rec, &w);
        if now.open.len() >= now.limit as usize {
            return Err(DomainError::TooManyTerminals { limit: now.limit });
        }
        if opened_in_all(&w) >= MAX_TERMINALS_OPENED {
            return Err(DomainError::invalid_request(format!(
                "a session may open at most {MAX_TERMINALS_OPENED} terminals in all; use the ones you have"
            )));
        }
        let name = self.inner.runtime.open_terminal(&rec.environment_id, 80, 24).await.map_err(|e| {
            let incident = examroom_core::IncidentId::new_v4();
            tracing::error!(%incident, session_id = %rec.id, error = %e, "opening a terminal failed");
            DomainError::ServiceUnavailable { incident: Some(incident) }
        })?;
        w.terminals.push(name.clone());
        self.store_workspace(&rec, &w).await?;
        Ok((name, self.terminals_of(&rec, &w)))
    }

    /// Closes one of the terminals the candidate opened ("main" stays): it leaves the list and can no longer be
    /// attached. Its shell stays in the environment, idle, until the environment is destroyed.
    pub async fn close_terminal(&self, caller: &Caller, id: &str, name: &str) -> Result<Terminals, DomainError> {
        if caller.role != Role::Candidate {
            return Err(DomainError::Forbidden);
        }
        self.get(caller, id).await?;
        if name == "main" {
            // Before the state: the request alone is wrong, whatever the session's state.
            return Err(DomainError::invalid_request("the main terminal cannot be closed"));
        }
        let rec = self.candidate_session(caller, id).await?;
        let _turn = self.inner.workspaces.lock().await;
        let mut w = self.stored_workspace(&rec).await?;
        let Some(i) = w.terminals.iter().position(|t| t == name) else {
            return Err(DomainError::TerminalNotFound);
        };
        let closed = w.terminals.remove(i);
        w.closed.push(closed);
        self.store_workspace(&rec, &w).await?;
        Ok(self.terminals_of(&rec, &w))
    }

    /// Whether `name` is an open terminal of this session ("main" always is).
    pub(crate) async fn terminal_is_open(&self, rec: &SessionRecord, name: &str) -> Result<bool, DomainError> {
        if name == "main" {
            return Ok(true);
        }
        if !valid_terminal_name(name) {
            return Ok(false);
        }
        Ok(self.stored_workspace(rec).await?.terminals.iter().any(|t| t == name))
    }

    fn terminals_of(&self, rec: &SessionRecord, w: &Workspace) -> Terminals {
        let limit = self.exam_of(rec).map_or(examroom_exams::DEFAULT_TERMINALS, |e| e.environment.terminals);
        let mut open = vec!["main".to_owned()];
        open.extend(w.terminals.iter().cloned());
        Terminals { open, limit }
    }

    /// The candidate's own session, ready or active.
    async fn candidate_session(&self, caller: &Caller, id: &str) -> Result<SessionRecord, DomainError> {
        if caller.role != Role::Candidate {
            return Err(DomainError::Forbidden);
        }
        let rec = self.get(caller, id).await?;
        match rec.state {
            SessionState::Created | SessionState::Provisioning => Err(DomainError::SessionNotReady),
            SessionState::Terminating | SessionState::Terminated | SessionState::Failed => {
                Err(DomainError::SessionEnded)
            }
            SessionState::Ready | SessionState::Active => Ok(rec),
        }
    }

    async fn stored_workspace(&self, rec: &SessionRecord) -> Result<Workspace, DomainError> {
        let w = self.inner.store.workspace(&rec.id).await.map_err(|e| incident("read a workspace", &e))?;
        Ok(w.unwrap_or_default())
    }

    async fn store_workspace(&self, rec: &SessionRecord, w: &Workspace) -> Result<(), DomainError> {
        let now = self.now_ms();
        self.inner.store.set_workspace(&rec.id, w, now).await.map_err(|e| incident("store a workspace", &e))
    }
}
