//! Warm pools in both backends (see `support`): pooled environments from `filling` to `ready` to `claimed` or `retiring`, claims that store
//! the session in the same transaction, racing claims with one winner per environment, claimed environments that
//! never return to the pool (the database refuses it), and announcements.

mod support;

use std::collections::HashSet;

use examroom_core::{EnvironmentId, ExamId, ExamSessionId, SessionState, UserId};
use examroom_store::{
    Claim, EventKind, ListFilter, NewEvent, NewPoolSchedule, PoolEntry, PoolState, PoolStore, SessionRecord,
    SessionStore, Store, StoreError,
};

const T0: i64 = 1_760_000_000_000;
const OWNER: &str = "main";
const DIGEST: &str = "d1";

fn exam(s: &str) -> ExamId {
    ExamId::parse(s).unwrap()
}

fn session(user: &str, exam_id: &str) -> SessionRecord {
    SessionRecord {
        id: ExamSessionId::new_v4(),
        user_id: UserId::parse(user).unwrap(),
        exam_id: exam(exam_id),
        environment_id: EnvironmentId::new_v4(),
        state: SessionState::Created,
        progress: None,
        created_at: T0,
        ready_at: None,
        started_at: None,
        deadline: None,
        duration_ms: 60_000,
        start_grace_ms: 60_000,
        provisioning_timeout_ms: 60_000,
        ended_at: None,
        end_reason: None,
        failure: None,
        resources_released_at: None,
        graded: None,
        updated_at: T0,
        exam_version: None,
    }
}

fn created(rec: &SessionRecord) -> NewEvent {
    NewEvent {
        at: rec.created_at,
        kind: EventKind::Transition,
        from: None,
        to: Some(SessionState::Created),
        reason: "started".into(),
        actor: format!("candidate:{}", rec.user_id),
        data: None,
    }
}

fn claim(at: i64) -> Claim<'static> {
    Claim { owner: OWNER, exam_digest: DIGEST, made_after: T0 - 3_600_000, at }
}

/// A ready entry of `exam_id`, made at `made`.
async fn ready(store: &Store, exam_id: &str, made: i64) -> EnvironmentId {
    let env = EnvironmentId::new_v4();
    store.insert_pool_entry(&PoolEntry::filling(env, OWNER, exam(exam_id), DIGEST, made)).await.unwrap();
    assert!(store.pool_entry_ready(&env, made + 100).await.unwrap());
    env
}

both!(an_entry_fills_becomes_ready_and_one_session_claims_it, |db| {
    let store = &db.store;
    let env = EnvironmentId::new_v4();
    store.insert_pool_entry(&PoolEntry::filling(env, OWNER, exam("lb"), DIGEST, T0)).await.unwrap();
    // A filling entry is not claimed.
    let early = session("early", "lb");
    assert_eq!(store.insert_claiming(&early, &created(&early), &claim(T0 + 1)).await.unwrap(), None);
    assert!(store.get(&early.id).await.unwrap().is_none(), "nothing stored without a claim");
    assert!(store.pool_entry_ready(&env, T0 + 50).await.unwrap());
    assert!(!store.pool_entry_ready(&env, T0 + 60).await.unwrap(), "ready once");

    let rec = session("ann", "lb");
    let got = store.insert_claiming(&rec, &created(&rec), &claim(T0 + 100)).await.unwrap();
    assert_eq!(got, Some(env));
    let stored = store.get(&rec.id).await.unwrap().unwrap();
    assert_eq!(stored.environment_id, env, "the session has the pooled environment");
    assert_eq!(store.events(&rec.id).await.unwrap().len(), 1);
    let entry = store.pool_claim_of(&rec.id).await.unwrap().unwrap();
    assert_eq!((entry.state, entry.session_id, entry.claimed_at), (PoolState::Claimed, Some(rec.id), Some(T0 + 100)));
    assert_eq!((entry.created_at, entry.ready_at), (T0, Some(T0 + 50)));
    assert!(store.pool_entries(None).await.unwrap().is_empty(), "claimed entries are not in the pool");
    assert_eq!(store.pool_claims_since(OWNER, &exam("lb"), T0).await.unwrap(), 1);
    assert_eq!(store.pool_claims_since(OWNER, &exam("lb"), T0 + 101).await.unwrap(), 0);
    assert_eq!(store.pool_claims_since("other", &exam("lb"), T0).await.unwrap(), 0);

    // Nothing left for the next one.
    let bob = session("bob", "lb");
    assert_eq!(store.insert_claiming(&bob, &created(&bob), &claim(T0 + 200)).await.unwrap(), None);
});

both!(a_claim_takes_only_a_matching_ready_entry_and_the_oldest_first, |db| {
    let store = &db.store;
    let old = ready(store, "lb", T0 - 7_200_000).await; // past the maximum age
    let newer = ready(store, "lb", T0 + 20).await;
    let older = ready(store, "lb", T0 + 10).await;
    let other_exam = ready(store, "qc", T0).await;
    let stale = EnvironmentId::new_v4();
    store.insert_pool_entry(&PoolEntry::filling(stale, OWNER, exam("lb"), "old-digest", T0)).await.unwrap();
    store.pool_entry_ready(&stale, T0).await.unwrap();
    let foreign = EnvironmentId::new_v4();
    store.insert_pool_entry(&PoolEntry::filling(foreign, "replica-2", exam("lb"), DIGEST, T0)).await.unwrap();
    store.pool_entry_ready(&foreign, T0).await.unwrap();

    let mut got = Vec::new();
    for user in ["a", "b", "c"] {
        let rec = session(user, "lb");
        got.push(store.insert_claiming(&rec, &created(&rec), &claim(T0 + 1000)).await.unwrap());
    }
    assert_eq!(got, [Some(older), Some(newer), None], "oldest first; too old, other digests and owners never");
    let left: HashSet<_> = store.pool_entries(Some(OWNER)).await.unwrap().iter().map(|e| e.environment_id).collect();
    assert_eq!(left, HashSet::from([old, other_exam, stale]));
    assert_eq!(store.pool_entries(None).await.unwrap().len(), 4, "every owner's entries are visible");
});

both!(a_refused_session_leaves_the_entry_in_the_pool, |db| {
    let store = &db.store;
    let env = ready(store, "lb", T0).await;
    let first = session("ann", "lb");
    store.insert(&first, &created(&first)).await.unwrap();
    let second = session("ann", "lb");
    match store.insert_claiming(&second, &created(&second), &claim(T0 + 1)).await {
        Err(StoreError::LiveSessionExists { session_id }) => assert_eq!(session_id, first.id),
        other => panic!("expected LiveSessionExists, got {other:?}"),
    }
    let entries = store.pool_entries(None).await.unwrap();
    assert_eq!((entries.len(), entries[0].environment_id, entries[0].state), (1, env, PoolState::Ready));
});

both!(racing_claims_get_distinct_environments, multi_thread, |db| {
    let store = &db.store;
    let pooled: HashSet<_> = {
        let mut s = HashSet::new();
        for i in 0..3 {
            s.insert(ready(store, "lb", T0 + i).await);
        }
        s
    };
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let rec = session(&format!("racer-{i}"), "lb");
                (rec.id, store.insert_claiming(&rec, &created(&rec), &claim(T0 + 500)).await.unwrap())
            })
        })
        .collect();
    let mut won = Vec::new();
    for t in tasks {
        if let (id, Some(env)) = t.await.unwrap() {
            won.push((id, env));
        }
    }
    assert_eq!(won.len(), 3, "one claim per pooled environment");
    let envs: HashSet<_> = won.iter().map(|(_, e)| *e).collect();
    assert_eq!(envs, pooled, "each environment went to exactly one session");
    for (id, env) in &won {
        assert_eq!(store.get(id).await.unwrap().unwrap().environment_id, *env);
    }
    assert_eq!(store.list(&ListFilter::default()).await.unwrap().len(), 3, "the losers stored nothing");
});

both!(a_claimed_environment_never_returns_to_the_pool, |db| {
    let store = &db.store;
    let env = ready(store, "lb", T0).await;
    let rec = session("ann", "lb");
    store.insert_claiming(&rec, &created(&rec), &claim(T0 + 1)).await.unwrap().unwrap();
    assert_eq!(store.retire_pool_entry(&env, OWNER, &[PoolState::Ready, PoolState::Filling]).await.unwrap(), None);
    assert!(!store.delete_pool_entry(&env).await.unwrap());
    // Behind the store's back, the database itself refuses.
    for sql in [
        "UPDATE pool_environments SET state = 'ready', session_id = NULL, claimed_at = NULL",
        "UPDATE pool_environments SET exam_digest = 'x'",
        "DELETE FROM pool_environments",
    ] {
        let err = db.raw(sql).await.expect_err(sql);
        assert!(err.contains("claimed environment"), "{sql}: {err}");
    }
    // A second session with the same environment is refused too.
    let twin = SessionRecord { environment_id: env, ..session("bob", "lb") };
    assert!(store.insert(&twin, &created(&twin)).await.is_err(), "two sessions share an environment");
    // Nor may an entry go back from ready to filling, or from retiring to ready.
    let other = ready(store, "lb", T0).await;
    let err = db
        .raw("UPDATE pool_environments SET state = 'filling' WHERE state = 'ready'")
        .await
        .expect_err("ready → filling");
    assert!(err.contains("not allowed"), "{err}");
    store.retire_pool_entry(&other, OWNER, &[PoolState::Ready]).await.unwrap().unwrap();
    let err = db
        .raw("UPDATE pool_environments SET state = 'ready' WHERE state = 'retiring'")
        .await
        .expect_err("retiring → ready");
    assert!(err.contains("not allowed"), "{err}");
});

both!(retiring_takes_an_entry_out_of_the_pool_until_it_is_deleted, |db| {
    let store = &db.store;
    let filling = EnvironmentId::new_v4();
    store.insert_pool_entry(&PoolEntry::filling(filling, OWNER, exam("lb"), DIGEST, T0)).await.unwrap();
    let env = ready(store, "lb", T0).await;
    // Another owner's entry is not this server's to retire.
    assert_eq!(store.retire_pool_entry(&env, "replica-2", &[PoolState::Ready]).await.unwrap(), None);
    // Only from the states asked for.
    assert_eq!(store.retire_pool_entry(&env, OWNER, &[PoolState::Filling]).await.unwrap(), None);
    assert_eq!(store.retire_pool_entry(&env, OWNER, &[PoolState::Ready]).await.unwrap(), Some(PoolState::Ready));
    let rec = session("ann", "lb");
    assert_eq!(store.insert_claiming(&rec, &created(&rec), &claim(T0 + 1)).await.unwrap(), None, "not claimable");
    // A fill that finds its entry retired meanwhile learns it.
    assert_eq!(
        store.retire_pool_entry(&filling, OWNER, &[PoolState::Ready, PoolState::Filling]).await.unwrap(),
        Some(PoolState::Filling)
    );
    assert!(!store.pool_entry_ready(&filling, T0 + 5).await.unwrap());
    // Retiring again is idempotent for whoever finishes the job.
    assert_eq!(store.retire_pool_entry(&env, OWNER, &[PoolState::Retiring]).await.unwrap(), Some(PoolState::Retiring));
    let states: Vec<_> = store.pool_entries(Some(OWNER)).await.unwrap().iter().map(|e| e.state).collect();
    assert_eq!(states, [PoolState::Retiring, PoolState::Retiring]);
    assert!(store.delete_pool_entry(&env).await.unwrap());
    assert!(store.delete_pool_entry(&filling).await.unwrap());
    assert!(!store.delete_pool_entry(&env).await.unwrap());
    assert!(store.pool_entries(None).await.unwrap().is_empty());
});

both!(announcements_round_trip_expire_and_cancel, |db| {
    let store = &db.store;
    let new = |candidates: u32, at: i64| NewPoolSchedule {
        exam_id: exam("lb"),
        candidates,
        at,
        fill_from: at - 600_000,
        until: at + 3_600_000,
        created_at: T0,
        actor: "proctor:pat".into(),
    };
    let later = store.insert_pool_schedule(&new(40, T0 + 7_200_000)).await.unwrap();
    let sooner = store.insert_pool_schedule(&new(5, T0 + 60_000)).await.unwrap();
    assert_ne!(later.id, sooner.id);
    assert_eq!(later.schedule, new(40, T0 + 7_200_000));
    assert_eq!(later.cancelled_at, None);
    let ids: Vec<i64> = store.pool_schedules(T0).await.unwrap().iter().map(|s| s.id).collect();
    assert_eq!(ids, [sooner.id, later.id], "by start time");
    // Past its `until`, an announcement no longer holds.
    let ids: Vec<i64> = store.pool_schedules(T0 + 60_000 + 3_600_000).await.unwrap().iter().map(|s| s.id).collect();
    assert_eq!(ids, [later.id]);
    assert!(!store.cancel_pool_schedule(&exam("other"), later.id, T0 + 1).await.unwrap(), "of another exam");
    assert!(store.cancel_pool_schedule(&exam("lb"), later.id, T0 + 1).await.unwrap());
    assert!(!store.cancel_pool_schedule(&exam("lb"), later.id, T0 + 2).await.unwrap(), "once");
    let ids: Vec<i64> = store.pool_schedules(T0).await.unwrap().iter().map(|s| s.id).collect();
    assert_eq!(ids, [sooner.id]);
    // Nonsense is refused by the database.
    assert!(store.insert_pool_schedule(&new(0, T0)).await.is_err());
    assert!(store.insert_pool_schedule(&NewPoolSchedule { until: T0, ..new(3, T0) }).await.is_err());
    // Everything survives a reopen.
    store.close().await;
    let store = db.reopen().await;
    assert_eq!(store.pool_schedules(T0).await.unwrap().len(), 1);
});
