//! Several replicas behind one address: a change one replica stores reaches the status streams (and every other
//! subscriber) of the others.
//!
//! With a store that several replicas share (PostgreSQL), the store's change feed ([`examroom_store::Changes`]) says
//! which session another replica changed; the session is read from the store and published to this replica's
//! subscribers exactly as a change of its own. Notifications sent while the feed's connection was down are lost, so
//! after a reconnect ([`Change::Resync`]) every session that may have changed since the feed was last known good is
//! read again and published: every open stream resyncs from the store. With SQLite (one server) there is no feed and
//! nothing to do.

use examroom_store::{Change, Changes, ListFilter, SessionStore};

use crate::service::SessionService;

impl SessionService {
    /// Follows the store's change feed in the background, if the store has one.
    pub(crate) async fn follow_other_replicas(&self) -> Result<(), examroom_store::StoreError> {
        let Some(changes) = self.inner.store.changes().await? else { return Ok(()) };
        tracing::info!(backend = self.inner.store.backend_name(), "following other replicas' session changes");
        tokio::spawn(self.clone().follow(changes));
        Ok(())
    }

    async fn follow(self, mut changes: Changes) {
        // The feed was good from here on; a resync republishes what changed since then (a second of margin for
        // clocks of replicas on other machines).
        let mut good_since = self.now_ms() - 1_000;
        while let Some(change) = changes.next().await {
            match change {
                Change::Session(id) => match self.inner.store.get(&id).await {
                    Ok(Some(rec)) => self.publish(&rec),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(session = %id, error = %e, "reading a session another replica changed"),
                },
                Change::Resync => {
                    let resynced_at = self.now_ms() - 1_000;
                    match self.inner.store.list(&ListFilter::default()).await {
                        Ok(all) => {
                            let mut n = 0;
                            for rec in all.iter().filter(|r| r.state.is_live() || r.updated_at >= good_since) {
                                self.publish(rec);
                                n += 1;
                            }
                            tracing::info!(sessions = n, "resynced open streams from the store");
                            good_since = resynced_at;
                        }
                        Err(e) => tracing::warn!(error = %e, "resync after the change feed reconnected"),
                    }
                }
            }
        }
    }
}
