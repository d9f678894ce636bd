//! Both backends (SQLite in a real file, PostgreSQL in a throwaway cluster; see `support`): round trips, ownership, the
//! one-live-session rule under racing inserts, compare-and-swap transitions, the append-only trail, reopening, and
//! listing. A few SQLite-only tests (file mode, in-memory store) are at the end.

mod support;

use std::collections::HashSet;

use examroom_core::{
    transition, EndReason, EnvironmentId, ExamId, ExamSessionId, Failure, FailureCode, Progress, SessionState, Trigger,
    UserId,
};
use examroom_store::sqlite::SqliteStore;
use examroom_store::{
    EventKind, ListFilter, NewEvent, SessionChanges, SessionRecord, SessionStore, Store, StoreError, Workspace,
};
use serde_json::json;

const MIN: i64 = 60_000;
const T0: i64 = 1_760_000_000_000;

fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

/// A freshly accepted session: only the required fields.
fn minimal(user_id: &str, created_at: i64) -> SessionRecord {
    SessionRecord {
        id: ExamSessionId::new_v4(),
        user_id: user(user_id),
        exam_id: ExamId::parse("linux-basics").unwrap(),
        environment_id: EnvironmentId::new_v4(),
        state: SessionState::Created,
        progress: None,
        created_at,
        ready_at: None,
        started_at: None,
        deadline: None,
        duration_ms: 90 * MIN,
        start_grace_ms: 10 * MIN,
        provisioning_timeout_ms: MIN,
        ended_at: None,
        end_reason: None,
        failure: None,
        resources_released_at: None,
        graded: None,
        updated_at: created_at,
        exam_version: None,
    }
}

/// Every field set (not a consistent lifecycle, just every column exercised).
fn full(user_id: &str) -> SessionRecord {
    SessionRecord {
        id: ExamSessionId::new_v4(),
        user_id: user(user_id),
        exam_id: ExamId::parse("networking-101").unwrap(),
        environment_id: EnvironmentId::new_v4(),
        state: SessionState::Failed,
        progress: Some(Progress::new(2, 5, "Running setup step \"install\" — ünïcode")),
        created_at: T0,
        ready_at: Some(T0 + 1),
        started_at: Some(T0 + 2),
        deadline: Some(T0 + 2 + 45 * MIN),
        duration_ms: 45 * MIN,
        start_grace_ms: 5 * MIN,
        provisioning_timeout_ms: 2 * MIN,
        ended_at: Some(T0 + 3),
        end_reason: Some(EndReason::TerminatedByProctor),
        failure: Some(Failure::new(FailureCode::EnvironmentLost).with_detail("container exited 137 (OOM)")),
        resources_released_at: Some(T0 + 4),
        graded: Some(false),
        updated_at: T0 + 5,
        exam_version: Some("ab".repeat(32)),
    }
}

fn accepted(rec: &SessionRecord) -> NewEvent {
    NewEvent {
        at: rec.created_at,
        kind: EventKind::Transition,
        from: None,
        to: Some(rec.state),
        reason: "session accepted".to_owned(),
        actor: format!("candidate:{}", rec.user_id),
        data: Some(json!({ "exam_id": rec.exam_id.as_str() })),
    }
}

/// Moves a session along one legal transition, with the changes the session service would make.
async fn advance(store: &Store, id: &ExamSessionId, trigger: Trigger, at: i64) -> SessionRecord {
    let current = store.get(id).await.unwrap().unwrap();
    let t = transition(current.state, &trigger).unwrap();
    let mut changes = SessionChanges::default();
    match t.to {
        SessionState::Created => {}
        SessionState::Provisioning => changes.progress = Some(Some(Progress::new(1, 3, "Creating your environment"))),
        SessionState::Ready => {
            changes.ready_at = Some(at);
            changes.progress = Some(None);
        }
        SessionState::Active => {
            changes.started_at = Some(at);
            changes.deadline = Some(at + current.duration_ms);
        }
        SessionState::Terminating => {
            changes.ended_at = Some(at);
            changes.end_reason = t.end_reason;
            changes.graded = t.graded();
        }
        SessionState::Terminated => {
            changes.resources_released_at = Some(at);
            changes.progress = Some(None);
        }
        SessionState::Failed => {
            changes.ended_at = Some(at);
            changes.failure = t.failure_code().map(Failure::new);
            changes.resources_released_at = Some(at);
        }
    }
    let rec = store.apply(id, &t, &changes, &NewEvent::transition(&t, at, "system")).await.unwrap();
    assert_eq!(rec.state, t.to);
    assert_eq!(rec.updated_at, at);
    rec
}

async fn to_active(store: &Store, id: &ExamSessionId, at: i64) -> SessionRecord {
    advance(store, id, Trigger::ProvisioningStarted, at).await;
    advance(store, id, Trigger::ProvisioningSucceeded, at + 1).await;
    advance(store, id, Trigger::StartRequested, at + 2).await
}

async fn to_terminated(store: &Store, id: &ExamSessionId, at: i64) -> SessionRecord {
    to_active(store, id, at).await;
    advance(store, id, Trigger::Submitted, at + 3).await;
    advance(store, id, Trigger::TeardownVerified, at + 4).await
}

both!(full_record_round_trips, |db| {
    let store = &db.store;
    let rec = full("alice@example.org");
    let event = accepted(&rec);
    store.insert(&rec, &event).await.unwrap();

    let got = store.get(&rec.id).await.unwrap().unwrap();
    assert_eq!(got, rec);
    assert_eq!(got.failure.as_ref().unwrap().detail.as_deref(), Some("container exited 137 (OOM)"));
    assert_eq!(store.get_owned(&rec.id, &rec.user_id).await.unwrap().unwrap(), rec);

    let events = store.events(&rec.id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].session_id, rec.id);
    assert_eq!(events[0].event, event);
});

both!(minimal_record_round_trips, |db| {
    let store = &db.store;
    let rec = minimal("bob", T0);
    let event = NewEvent { data: None, ..accepted(&rec) };
    store.insert(&rec, &event).await.unwrap();
    assert_eq!(store.get(&rec.id).await.unwrap().unwrap(), rec);
    assert_eq!(store.events(&rec.id).await.unwrap()[0].event, event);
});

both!(not_yours_is_not_found, |db| {
    let store = &db.store;
    let rec = minimal("alice", T0);
    store.insert(&rec, &accepted(&rec)).await.unwrap();

    assert_eq!(store.get_owned(&rec.id, &user("alice")).await.unwrap(), Some(rec.clone()));
    // Another candidate's session and a random id look exactly the same.
    assert_eq!(store.get_owned(&rec.id, &user("mallory")).await.unwrap(), None);
    assert_eq!(store.get_owned(&ExamSessionId::new_v4(), &user("alice")).await.unwrap(), None);
    assert_eq!(store.get_owned(&ExamSessionId::new_v4(), &user("mallory")).await.unwrap(), None);
    assert_eq!(store.get(&ExamSessionId::new_v4()).await.unwrap(), None);
});

both!(one_live_session_per_user, |db| {
    let store = &db.store;
    let first = minimal("carol", T0);
    store.insert(&first, &accepted(&first)).await.unwrap();

    let second = minimal("carol", T0 + MIN);
    match store.insert(&second, &accepted(&second)).await {
        Err(StoreError::LiveSessionExists { session_id }) => assert_eq!(session_id, first.id),
        other => panic!("expected LiveSessionExists, got {other:?}"),
    }
    // Nothing of the refused session was stored.
    assert_eq!(store.get(&second.id).await.unwrap(), None);
    assert!(store.events(&second.id).await.unwrap().is_empty());
    // Another candidate is not affected.
    let other = minimal("dave", T0 + MIN);
    store.insert(&other, &accepted(&other)).await.unwrap();

    // Every live state blocks; the final state frees the slot.
    to_active(store, &first.id, T0 + 2 * MIN).await;
    assert!(matches!(store.insert(&second, &accepted(&second)).await, Err(StoreError::LiveSessionExists { .. })));
    advance(store, &first.id, Trigger::Submitted, T0 + 3 * MIN).await;
    assert!(matches!(store.insert(&second, &accepted(&second)).await, Err(StoreError::LiveSessionExists { .. })));
    let ended = advance(store, &first.id, Trigger::TeardownVerified, T0 + 4 * MIN).await;
    assert_eq!(ended.state, SessionState::Terminated);
    assert_eq!(ended.end_reason, Some(EndReason::Submitted));
    assert_eq!(ended.graded, Some(true));

    store.insert(&second, &accepted(&second)).await.unwrap();
    assert_eq!(store.live_for_user(&user("carol")).await.unwrap().unwrap().id, second.id);

    // `failed` is final too.
    advance(store, &second.id, Trigger::Failed(FailureCode::BackendUnavailable), T0 + 5 * MIN).await;
    assert_eq!(store.live_for_user(&user("carol")).await.unwrap(), None);
    let third = minimal("carol", T0 + 6 * MIN);
    store.insert(&third, &accepted(&third)).await.unwrap();
});

both!(duplicate_id_is_a_backend_error, |db| {
    let store = &db.store;
    let rec = minimal("erin", T0);
    store.insert(&rec, &accepted(&rec)).await.unwrap();
    let same_id = SessionRecord { user_id: user("frank"), ..rec.clone() };
    assert!(matches!(store.insert(&same_id, &accepted(&same_id)).await, Err(StoreError::Backend(_))));
    assert_eq!(store.live_for_user(&user("frank")).await.unwrap(), None);
});

both!(racing_inserts_for_one_user_admit_exactly_one, multi_thread, |db| {
    let store = &db.store;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let rec = minimal("racer", T0 + i);
                let result = store.insert(&rec, &accepted(&rec)).await;
                (rec.id, result)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut refused = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (id, Ok(())) => winners.push(id),
            (_, Err(StoreError::LiveSessionExists { session_id })) => refused.push(session_id),
            (_, Err(e)) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one insert wins");
    assert_eq!(refused.len(), 9);
    assert!(refused.iter().all(|id| *id == winners[0]), "every refusal names the winner");
    let stored = store.list(&ListFilter { user: Some(user("racer")), ..ListFilter::default() }).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, winners[0]);
});

both!(racing_inserts_for_different_users_all_succeed, multi_thread, |db| {
    let store = &db.store;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let rec = minimal(&format!("user-{i}"), T0 + i);
                store.insert(&rec, &accepted(&rec)).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let all = store.list(&ListFilter::default()).await.unwrap();
    assert_eq!(all.len(), 50);
    assert_eq!(all.iter().map(|r| r.user_id.clone()).collect::<HashSet<_>>().len(), 50);
});

both!(racing_transitions_have_one_winner, multi_thread, |db| {
    let store = &db.store;
    for round in 0..10 {
        let rec = minimal(&format!("cas-{round}"), T0);
        store.insert(&rec, &accepted(&rec)).await.unwrap();
        to_active(store, &rec.id, T0 + 1).await;

        let spawn = |trigger: Trigger| {
            let store = store.clone();
            let id = rec.id;
            tokio::spawn(async move {
                let t = transition(SessionState::Active, &trigger).unwrap();
                let changes = SessionChanges {
                    ended_at: Some(T0 + 10),
                    end_reason: t.end_reason,
                    graded: t.graded(),
                    ..SessionChanges::default()
                };
                store.apply(&id, &t, &changes, &NewEvent::transition(&t, T0 + 10, "system")).await
            })
        };
        let submit = spawn(Trigger::Submitted);
        let expire = spawn(Trigger::DeadlinePassed);
        let results = [submit.await.unwrap(), expire.await.unwrap()];

        let won: Vec<&SessionRecord> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(won.len(), 1, "exactly one transition wins");
        for r in &results {
            if let Err(e) = r {
                assert!(
                    matches!(
                        e,
                        StoreError::StateConflict { expected: SessionState::Active, actual: SessionState::Terminating }
                    ),
                    "the loser sees the conflict, got {e:?}"
                );
            }
        }
        let stored = store.get(&rec.id).await.unwrap().unwrap();
        assert_eq!(&stored, won[0]);
        assert!(matches!(stored.end_reason, Some(EndReason::Submitted | EndReason::Expired)));

        let events = store.events(&rec.id).await.unwrap();
        let terminating: Vec<_> = events.iter().filter(|e| e.event.to == Some(SessionState::Terminating)).collect();
        assert_eq!(terminating.len(), 1, "the trail has exactly one terminating transition");
        assert_eq!(terminating[0].event.reason, transition(SessionState::Active, &trigger_of(&stored)).unwrap().reason);
    }
});

fn trigger_of(rec: &SessionRecord) -> Trigger {
    match rec.end_reason {
        Some(EndReason::Submitted) => Trigger::Submitted,
        Some(EndReason::Expired) => Trigger::DeadlinePassed,
        other => panic!("unexpected end reason {other:?}"),
    }
}

both!(apply_refuses_stale_and_unknown_sessions, |db| {
    let store = &db.store;
    let rec = minimal("grace", T0);
    store.insert(&rec, &accepted(&rec)).await.unwrap();

    let t = transition(SessionState::Ready, &Trigger::StartRequested).unwrap();
    let event = NewEvent::transition(&t, T0 + 1, "candidate:grace");
    let err = store.apply(&rec.id, &t, &SessionChanges::default(), &event).await.unwrap_err();
    assert!(matches!(err, StoreError::StateConflict { expected: SessionState::Ready, actual: SessionState::Created }));
    let err = store.apply(&ExamSessionId::new_v4(), &t, &SessionChanges::default(), &event).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound));

    // A refused transition changes nothing and leaves no event.
    assert_eq!(store.get(&rec.id).await.unwrap().unwrap(), rec);
    assert_eq!(store.events(&rec.id).await.unwrap().len(), 1);
});

both!(apply_sets_only_the_given_changes, |db| {
    let store = &db.store;
    let rec = minimal("heidi", T0);
    store.insert(&rec, &accepted(&rec)).await.unwrap();

    let provisioning = advance(store, &rec.id, Trigger::ProvisioningStarted, T0 + 1).await;
    assert_eq!(provisioning.progress, Some(Progress::new(1, 3, "Creating your environment")));
    let ready = advance(store, &rec.id, Trigger::ProvisioningSucceeded, T0 + 2).await;
    assert_eq!(ready.progress, None, "Some(None) clears the progress");
    assert_eq!(ready.ready_at, Some(T0 + 2));
    let active = advance(store, &rec.id, Trigger::FirstAttach, T0 + 3).await;
    assert_eq!(active.ready_at, Some(T0 + 2), "None leaves a field as it is");
    assert_eq!(active.started_at, Some(T0 + 3));
    assert_eq!(active.deadline, Some(T0 + 3 + 90 * MIN));
    assert_eq!(active.ended_at, None);
    assert_eq!(active.created_at, T0);
    assert_eq!(store.get(&rec.id).await.unwrap().unwrap(), active);

    let events = store.events(&rec.id).await.unwrap();
    let trail: Vec<_> = events.iter().map(|e| (e.event.from, e.event.to)).collect();
    assert_eq!(
        trail,
        [
            (None, Some(SessionState::Created)),
            (Some(SessionState::Created), Some(SessionState::Provisioning)),
            (Some(SessionState::Provisioning), Some(SessionState::Ready)),
            (Some(SessionState::Ready), Some(SessionState::Active)),
        ]
    );
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq), "oldest first");
});

both!(set_progress_is_a_compare_and_swap_with_an_event, |db| {
    let store = &db.store;
    let rec = minimal("ivan", T0);
    store.insert(&rec, &accepted(&rec)).await.unwrap();
    advance(store, &rec.id, Trigger::ProvisioningStarted, T0 + 1).await;

    let step = Progress::new(2, 3, "Running setup step 1 of 2");
    let updated = store.set_progress(&rec.id, SessionState::Provisioning, &step, T0 + 2).await.unwrap();
    assert_eq!(updated.progress, Some(step.clone()));
    assert_eq!(updated.updated_at, T0 + 2);
    assert_eq!(updated.state, SessionState::Provisioning);

    let last = store.events(&rec.id).await.unwrap().pop().unwrap();
    assert_eq!(last.event.kind, EventKind::Progress);
    assert_eq!(last.event.at, T0 + 2);
    assert_eq!(last.event.reason, step.message);
    assert_eq!(last.event.data, Some(json!({"step": 2, "total": 3, "message": "Running setup step 1 of 2"})));

    let err = store.set_progress(&rec.id, SessionState::Terminating, &step, T0 + 3).await.unwrap_err();
    assert!(matches!(
        err,
        StoreError::StateConflict { expected: SessionState::Terminating, actual: SessionState::Provisioning }
    ));
    let err = store.set_progress(&ExamSessionId::new_v4(), SessionState::Provisioning, &step, T0).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound));
    assert_eq!(store.events(&rec.id).await.unwrap().len(), 3);
});

both!(append_event_needs_a_session, |db| {
    let store = &db.store;
    let rec = minimal("judy", T0);
    store.insert(&rec, &accepted(&rec)).await.unwrap();
    let attach = NewEvent {
        at: T0 + 1,
        kind: EventKind::Attach,
        from: None,
        to: None,
        reason: "terminal attached".to_owned(),
        actor: "candidate:judy".to_owned(),
        data: Some(json!({"channel": "terminal"})),
    };
    store.append_event(&rec.id, &attach).await.unwrap();
    let takeover = NewEvent { at: T0 + 2, kind: EventKind::Takeover, data: None, ..attach.clone() };
    store.append_event(&rec.id, &takeover).await.unwrap();
    let events = store.events(&rec.id).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.event.kind).collect::<Vec<_>>(),
        [EventKind::Transition, EventKind::Attach, EventKind::Takeover]
    );
    assert_eq!(events[1].event, attach);

    let err = store.append_event(&ExamSessionId::new_v4(), &attach).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "got {err:?}");
});

both!(events_are_append_only, |db| {
    let store = &db.store;
    let rec = minimal("ken", T0);
    store.insert(&rec, &accepted(&rec)).await.unwrap();
    to_active(store, &rec.id, T0 + 1).await;
    let before = store.events(&rec.id).await.unwrap();

    // Go around the store, straight to the database.
    let id = rec.id;
    let update =
        db.raw(&format!("UPDATE events SET reason = 'rewritten' WHERE session_id = '{id}'")).await.unwrap_err();
    assert!(update.contains("append-only"), "{update}");
    let delete = db.raw(&format!("DELETE FROM events WHERE session_id = '{id}'")).await.unwrap_err();
    assert!(delete.contains("append-only"), "{delete}");
    // A session with a trail cannot be deleted from under it either.
    assert!(db.raw(&format!("DELETE FROM sessions WHERE id = '{id}'")).await.is_err());
    if db.backend == support::Backend::Postgres {
        let truncate = db.raw("TRUNCATE events").await.unwrap_err();
        assert!(truncate.contains("append-only"), "{truncate}");
    }

    assert_eq!(store.events(&rec.id).await.unwrap(), before);
    assert!(store.get(&rec.id).await.unwrap().is_some());
});

both!(survives_reopen, |db| {
    let store = &db.store;
    let live = minimal("leo", T0);
    store.insert(&live, &accepted(&live)).await.unwrap();
    let live = to_active(store, &live.id, T0 + 1).await;
    let done = minimal("mia", T0);
    store.insert(&done, &accepted(&done)).await.unwrap();
    let done = to_terminated(store, &done.id, T0 + 1).await;
    let live_events = store.events(&live.id).await.unwrap();
    let done_events = store.events(&done.id).await.unwrap();
    store.close().await;

    let store = &db.reopen().await;
    assert_eq!(store.get(&live.id).await.unwrap().unwrap(), live);
    assert_eq!(store.get(&done.id).await.unwrap().unwrap(), done);
    assert_eq!(store.events(&live.id).await.unwrap(), live_events);
    assert_eq!(store.events(&done.id).await.unwrap(), done_events);
    assert_eq!(store.live_for_user(&user("leo")).await.unwrap().unwrap().id, live.id);
    // The rule still holds, and sequence numbers keep increasing.
    let again = minimal("leo", T0 + MIN);
    assert!(matches!(
        store.insert(&again, &accepted(&again)).await,
        Err(StoreError::LiveSessionExists { session_id }) if session_id == live.id
    ));
    let next = advance(store, &live.id, Trigger::DeadlinePassed, T0 + MIN).await;
    assert_eq!(next.end_reason, Some(EndReason::Expired));
    let after = store.events(&live.id).await.unwrap();
    assert!(after.last().unwrap().seq > done_events.last().unwrap().seq);
    store.close().await;
});

#[cfg(unix)]
#[tokio::test]
async fn database_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("examroom.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.ping().await.unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
}

#[tokio::test]
async fn open_fails_cleanly_without_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open(&dir.path().join("missing").join("examroom.db")).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)));
}

both!(list_filters, |db| {
    let store = &db.store;
    // nina: two ended sessions and a live one; omar: one active; pat: one failed.
    let nina_1 = minimal("nina", T0);
    store.insert(&nina_1, &accepted(&nina_1)).await.unwrap();
    to_terminated(store, &nina_1.id, T0 + 10).await;
    let nina_2 = minimal("nina", T0 + MIN);
    store.insert(&nina_2, &accepted(&nina_2)).await.unwrap();
    advance(store, &nina_2.id, Trigger::Failed(FailureCode::ProvisioningFailed), T0 + MIN + 1).await;
    let nina_3 = minimal("nina", T0 + 2 * MIN);
    store.insert(&nina_3, &accepted(&nina_3)).await.unwrap();
    let omar = minimal("omar", T0 + 3 * MIN);
    store.insert(&omar, &accepted(&omar)).await.unwrap();
    to_active(store, &omar.id, T0 + 3 * MIN).await;
    let pat = minimal("pat", T0 + 4 * MIN);
    store.insert(&pat, &accepted(&pat)).await.unwrap();
    advance(store, &pat.id, Trigger::Failed(FailureCode::Internal), T0 + 4 * MIN + 1).await;

    let ids = |recs: Vec<SessionRecord>| recs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let list = |filter: ListFilter| {
        let store = store.clone();
        async move { ids(store.list(&filter).await.unwrap()) }
    };

    // Newest first.
    assert_eq!(list(ListFilter::default()).await, [pat.id, omar.id, nina_3.id, nina_2.id, nina_1.id]);
    assert_eq!(
        list(ListFilter { user: Some(user("nina")), ..ListFilter::default() }).await,
        [nina_3.id, nina_2.id, nina_1.id]
    );
    assert_eq!(
        list(ListFilter { state: Some(SessionState::Failed), ..ListFilter::default() }).await,
        [pat.id, nina_2.id]
    );
    assert_eq!(list(ListFilter { live_only: true, ..ListFilter::default() }).await, [omar.id, nina_3.id]);
    assert_eq!(
        list(ListFilter { user: Some(user("nina")), live_only: true, ..ListFilter::default() }).await,
        [nina_3.id]
    );
    assert_eq!(
        list(ListFilter { user: Some(user("nina")), state: Some(SessionState::Terminated), live_only: false }).await,
        [nina_1.id]
    );
    // Filters combine with AND: a final state and live_only match nothing.
    assert!(list(ListFilter { user: None, state: Some(SessionState::Terminated), live_only: true }).await.is_empty());
    assert!(list(ListFilter { user: Some(user("nobody")), ..ListFilter::default() }).await.is_empty());
});

#[tokio::test]
async fn memory_store_works_like_a_file() {
    let store = &Store::Sqlite(SqliteStore::open_memory().await.unwrap());
    store.ping().await.unwrap();
    let rec = full("quinn");
    store.insert(&rec, &accepted(&rec)).await.unwrap();
    assert_eq!(store.get_owned(&rec.id, &rec.user_id).await.unwrap().unwrap(), rec);
    let live = minimal("quinn", T0);
    store.insert(&live, &accepted(&live)).await.unwrap();
    assert!(matches!(
        store.insert(&minimal("quinn", T0), &accepted(&live)).await,
        Err(StoreError::LiveSessionExists { .. })
    ));
    to_terminated(store, &live.id, T0 + 1).await;
    assert_eq!(store.events(&live.id).await.unwrap().len(), 6);
}

// ---- Attempts (issue 9) ----

fn exam(s: &str) -> ExamId {
    ExamId::parse(s).unwrap()
}

both!(attempts_count_sessions_that_reached_active_and_did_not_fail, |db| {
    let store = &db.store;
    let (nora, basics) = (user("nora"), exam("linux-basics"));
    assert_eq!(store.attempts_used(&nora, &basics).await.unwrap(), 0);

    // Failed while provisioning: never active, no attempt.
    let a = minimal("nora", T0);
    store.insert(&a, &accepted(&a)).await.unwrap();
    advance(store, &a.id, Trigger::ProvisioningStarted, T0 + 1).await;
    advance(store, &a.id, Trigger::Failed(FailureCode::ProvisioningFailed), T0 + 2).await;
    assert_eq!(store.attempts_used(&nora, &basics).await.unwrap(), 0);

    // Ready, never started (not_started): no attempt.
    let b = minimal("nora", T0 + MIN);
    store.insert(&b, &accepted(&b)).await.unwrap();
    advance(store, &b.id, Trigger::ProvisioningStarted, T0 + MIN + 1).await;
    advance(store, &b.id, Trigger::ProvisioningSucceeded, T0 + MIN + 2).await;
    assert_eq!(store.attempts_used(&nora, &basics).await.unwrap(), 0);
    advance(store, &b.id, Trigger::StartGraceExpired, T0 + MIN + 3).await;
    advance(store, &b.id, Trigger::TeardownVerified, T0 + MIN + 4).await;
    assert_eq!(store.attempts_used(&nora, &basics).await.unwrap(), 0);

    // Active, then lost on our side (failed): no attempt.
    let c = minimal("nora", T0 + 2 * MIN);
    store.insert(&c, &accepted(&c)).await.unwrap();
    to_active(store, &c.id, T0 + 2 * MIN).await;
    assert_eq!(store.attempts_used(&nora, &basics).await.unwrap(), 1, "an active session is an attempt");
    advance(store, &c.id, Trigger::Failed(FailureCode::EnvironmentLost), T0 + 2 * MIN + 5).await;
    assert_eq!(store.attempts_used(&nora, &basics).await.unwrap(), 0, "a failed session is not");

    // Started and submitted: one attempt; other users and other exams are not counted.
    let d = minimal("nora", T0 + 3 * MIN);
    store.insert(&d, &accepted(&d)).await.unwrap();
    to_terminated(store, &d.id, T0 + 3 * MIN).await;
    let other_user = minimal("otto", T0);
    store.insert(&other_user, &accepted(&other_user)).await.unwrap();
    to_terminated(store, &other_user.id, T0).await;
    let mut other_exam = minimal("nora", T0 + 4 * MIN);
    other_exam.exam_id = exam("networking-101");
    store.insert(&other_exam, &accepted(&other_exam)).await.unwrap();
    to_terminated(store, &other_exam.id, T0 + 4 * MIN).await;
    assert_eq!(store.attempts_used(&nora, &basics).await.unwrap(), 1);
    assert_eq!(store.attempts_used(&nora, &exam("networking-101")).await.unwrap(), 1);
    assert_eq!(store.attempts_used(&user("otto"), &basics).await.unwrap(), 1);
});

both!(attempt_grants_round_trip_and_are_append_only, |db| {
    let store = &db.store;
    let grant = |who: &str, extra: u32, at: i64| examroom_store::AttemptGrant {
        user_id: user(who),
        exam_id: exam("linux-basics"),
        extra,
        reason: format!("grant at {at} — ünïcode"),
        actor: "proctor:pat".into(),
        at,
    };
    let (g1, g2, other) = (grant("nora", 1, T0), grant("nora", 3, T0 + 1), grant("otto", 2, T0 + 2));
    for g in [&g1, &g2, &other] {
        store.grant_attempts(g).await.unwrap();
    }
    assert_eq!(store.attempt_grants(&user("nora"), &exam("linux-basics")).await.unwrap(), vec![g1, g2]);
    assert_eq!(store.attempt_grants(&user("nora"), &exam("networking-101")).await.unwrap(), vec![]);
    // The database refuses a grant of 0 and any change to the trail.
    assert!(store.grant_attempts(&grant("nora", 0, T0)).await.is_err());
    let e = db.raw("UPDATE attempt_grants SET extra = 50").await.unwrap_err();
    assert!(e.contains("append-only"), "{e}");
    let e = db.raw("DELETE FROM attempt_grants").await.unwrap_err();
    assert!(e.contains("append-only"), "{e}");
    assert_eq!(store.attempt_grants(&user("otto"), &exam("linux-basics")).await.unwrap(), vec![other]);
});

// ---- Browser sign-ins (issue 9) ----

fn sign_in(hash: &str, created_at: i64, expires_at: i64) -> examroom_store::SignInRecord {
    examroom_store::SignInRecord {
        id_hash: hash.into(),
        user_id: user("nora"),
        role: examroom_core::Role::Proctor,
        key_fingerprint: "k1".into(),
        created_at,
        expires_at,
        signed_out_at: None,
    }
}

both!(sign_ins_round_trip_sign_out_once_and_survive_reopen, |db| {
    let store = &db.store;
    let rec = sign_in("aa", T0, T0 + 60 * MIN);
    store.insert_sign_in(&rec).await.unwrap();
    assert_eq!(store.sign_in("aa").await.unwrap().as_ref(), Some(&rec));
    assert!(rec.is_valid(T0 + 1, "k1"));
    assert!(!rec.is_valid(T0 + 60 * MIN, "k1"), "not valid from its expiry on");
    assert!(!rec.is_valid(T0 + 1, "k2"), "not valid under other keys");
    assert_eq!(store.sign_in("bb").await.unwrap(), None);
    // The same id twice is refused.
    assert!(store.insert_sign_in(&rec).await.is_err());

    assert!(store.sign_out("aa", T0 + 5).await.unwrap());
    assert!(!store.sign_out("aa", T0 + 6).await.unwrap(), "already signed out");
    assert!(!store.sign_out("bb", T0 + 6).await.unwrap(), "unknown");
    store.close().await;

    // After a restart the sign-out still holds.
    let store = db.reopen().await;
    let back = store.sign_in("aa").await.unwrap().unwrap();
    assert_eq!(back.signed_out_at, Some(T0 + 5));
    assert!(!back.is_valid(T0 + 7, "k1"));
    store.close().await;
});

both!(expired_sign_ins_are_deleted_when_a_new_one_is_made, |db| {
    let store = &db.store;
    store.insert_sign_in(&sign_in("old", T0, T0 + MIN)).await.unwrap();
    store.insert_sign_in(&sign_in("current", T0, T0 + 10 * MIN)).await.unwrap();
    assert!(store.sign_in("old").await.unwrap().is_some());
    store.insert_sign_in(&sign_in("new", T0 + 2 * MIN, T0 + 30 * MIN)).await.unwrap();
    assert_eq!(store.sign_in("old").await.unwrap(), None, "expired before the new sign-in: deleted");
    assert!(store.sign_in("current").await.unwrap().is_some());
    assert!(store.sign_in("new").await.unwrap().is_some());
});

both!(apply_chain_stores_each_transition_with_its_event_or_none, |db| {
    let store = &db.store;
    let rec = minimal("chain", T0);
    store.insert(&rec, &accepted(&rec)).await.unwrap();
    let step = |from: SessionState, trigger: Trigger, at: i64| {
        let t = transition(from, &trigger).unwrap();
        let changes = SessionChanges { ready_at: (t.to == SessionState::Ready).then_some(at), ..Default::default() };
        let event = NewEvent::transition(&t, at, "system");
        (t, changes, event)
    };
    // A chain whose second step does not start where the first ends stores nothing.
    let bad = [
        step(SessionState::Created, Trigger::ProvisioningStarted, T0 + 1),
        step(SessionState::Ready, Trigger::StartRequested, T0 + 2),
    ];
    match store.apply_chain(&rec.id, &bad).await {
        Err(StoreError::StateConflict { expected, actual }) => {
            assert_eq!((expected, actual), (SessionState::Ready, SessionState::Provisioning))
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.get(&rec.id).await.unwrap().unwrap().state, SessionState::Created, "all or none");
    assert_eq!(store.events(&rec.id).await.unwrap().len(), 1);
    let good = [
        step(SessionState::Created, Trigger::ProvisioningStarted, T0 + 1),
        step(SessionState::Provisioning, Trigger::ProvisioningSucceeded, T0 + 2),
    ];
    let records = store.apply_chain(&rec.id, &good).await.unwrap();
    let states: Vec<_> = records.iter().map(|r| r.state).collect();
    assert_eq!(states, [SessionState::Provisioning, SessionState::Ready]);
    assert_eq!((records[0].updated_at, records[1].ready_at), (T0 + 1, Some(T0 + 2)));
    let events = store.events(&rec.id).await.unwrap();
    let trail: Vec<_> = events.iter().map(|e| (e.event.from, e.event.to)).collect();
    assert_eq!(
        trail,
        [
            (None, Some(SessionState::Created)),
            (Some(SessionState::Created), Some(SessionState::Provisioning)),
            (Some(SessionState::Provisioning), Some(SessionState::Ready)),
        ]
    );
    // The same chain again is stale.
    assert!(matches!(store.apply_chain(&rec.id, &good).await, Err(StoreError::StateConflict { .. })));
});

// A start storm's burst of writes: many sessions at once each recording several steps. Every write succeeds, and
// none waits in SQLite's busy handler (whose sleeps turned such a burst into seconds of waiting and "database is
// locked" after the busy timeout): writers queue in the process instead. PostgreSQL takes the burst on its own.
both!(a_burst_of_concurrent_writes_all_succeed, multi_thread, |db| {
    let store = &db.store;
    let mut ids = Vec::new();
    for i in 0..200 {
        let mut rec = minimal(&format!("burst-{i}"), T0);
        rec.state = SessionState::Provisioning;
        store.insert(&rec, &accepted(&rec)).await.unwrap();
        ids.push(rec.id);
    }
    let mut tasks = Vec::new();
    for id in ids.clone() {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for step in 1..=10u32 {
                s.set_progress(
                    &id,
                    SessionState::Provisioning,
                    &Progress::new(step, 10, "Preparing"),
                    T0 + i64::from(step),
                )
                .await?;
            }
            Ok::<_, StoreError>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for id in &ids {
        assert_eq!(store.events(id).await.unwrap().len(), 11, "every step recorded");
    }
});

both!(workspace_round_trips_survives_reopen_and_needs_a_session, |db| {
    let store = &db.store;
    let rec = minimal("carol", T0);
    store.insert(&rec, &accepted(&rec)).await.unwrap();
    assert_eq!(store.workspace(&rec.id).await.unwrap(), None);

    let w = Workspace {
        flagged: vec!["t2".into()],
        visited: vec!["t1".into(), "t2".into()],
        notepad: "check the PVC — later".into(),
        terminals: vec!["t1".into()],
        closed: vec!["t2".into()],
    };
    store.set_workspace(&rec.id, &w, T0 + 1).await.unwrap();
    assert_eq!(store.workspace(&rec.id).await.unwrap(), Some(w.clone()));
    let w2 = Workspace { flagged: vec![], ..w.clone() };
    store.set_workspace(&rec.id, &w2, T0 + 2).await.unwrap();
    store.close().await;

    let store = &db.reopen().await;
    assert_eq!(store.workspace(&rec.id).await.unwrap(), Some(w2));
    let unknown = ExamSessionId::new_v4();
    assert!(matches!(store.set_workspace(&unknown, &w, T0).await, Err(StoreError::NotFound)));
    assert_eq!(store.workspace(&unknown).await.unwrap(), None);
    store.close().await;
});
