//! Browser sign-ins, kept in the store so that signing out holds across a restart (issue 9). The api crate makes
//! the cookie's random id and hashes it; this is only their storage.

use examroom_core::DomainError;
use examroom_store::{SessionStore, SignInRecord};

use crate::service::{incident, SessionService};

impl SessionService {
    /// Stores a new browser sign-in (and forgets the expired ones).
    pub async fn record_sign_in(&self, rec: &SignInRecord) -> Result<(), DomainError> {
        self.inner.store.insert_sign_in(rec).await.map_err(|e| incident("store a sign-in", &e))
    }

    /// A browser sign-in by the hash of its id, valid or not.
    pub async fn find_sign_in(&self, id_hash: &str) -> Result<Option<SignInRecord>, DomainError> {
        self.inner.store.sign_in(id_hash).await.map_err(|e| incident("read a sign-in", &e))
    }

    /// Ends a browser sign-in now. False when it was unknown or already ended.
    pub async fn end_sign_in(&self, id_hash: &str) -> Result<bool, DomainError> {
        self.inner.store.sign_out(id_hash, self.now_ms()).await.map_err(|e| incident("end a sign-in", &e))
    }
}
