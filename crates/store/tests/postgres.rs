//! What only the PostgreSQL backend does: several stores (replicas) on one database keep the rules between them, and
//! a store hears the session changes the others make (LISTEN/NOTIFY), with a resync after its listener reconnects.

use std::time::Duration;

use examroom_core::{transition, EnvironmentId, ExamId, ExamSessionId, SessionState, Trigger, UserId};
use examroom_store::postgres::{test_cluster, PgStore};
use examroom_store::{Change, EventKind, NewEvent, SessionChanges, SessionRecord, SessionStore, Store, StoreError};
use sqlx::Connection;

const T0: i64 = 1_760_000_000_000;

fn minimal(user: &str) -> SessionRecord {
    SessionRecord {
        id: ExamSessionId::new_v4(),
        user_id: UserId::parse(user).unwrap(),
        exam_id: ExamId::parse("linux-basics").unwrap(),
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

fn accepted(rec: &SessionRecord) -> NewEvent {
    NewEvent {
        at: rec.created_at,
        kind: EventKind::Transition,
        from: None,
        to: Some(rec.state),
        reason: "session accepted".into(),
        actor: "system".into(),
        data: None,
    }
}

async fn replicas(n: usize) -> (String, Vec<Store>) {
    let url = test_cluster::cluster().fresh_database().await;
    let mut stores = Vec::new();
    for _ in 0..n {
        stores.push(Store::Postgres(PgStore::connect(&url).await.unwrap()));
    }
    (url, stores)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_inserts_on_three_replicas_admit_exactly_one() {
    let (_url, stores) = replicas(3).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = stores[i % 3].clone();
        tasks.push(tokio::spawn(async move {
            let rec = minimal("racer");
            (rec.id, store.insert(&rec, &accepted(&rec)).await)
        }));
    }
    let mut winners = Vec::new();
    let mut refused = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (id, Ok(())) => winners.push(id),
            (_, Err(StoreError::LiveSessionExists { session_id })) => refused.push(session_id),
            (_, Err(e)) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(refused.len(), 11);
    assert!(refused.iter().all(|id| *id == winners[0]), "every refusal names the winner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_replicas_started_together_migrate_once() {
    let url = test_cluster::cluster().fresh_database().await;
    let connects: Vec<_> = (0..3)
        .map(|_| {
            tokio::spawn({
                let url = url.clone();
                async move { PgStore::connect(&url).await }
            })
        })
        .collect();
    for c in connects {
        c.await.unwrap().unwrap();
    }
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(&mut conn).await.unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations-postgres")).unwrap().count();
    assert_eq!(n, files as i64, "each migration once");
}

/// Waits for the next change on a feed (at most 5 s).
async fn next(changes: &mut examroom_store::Changes) -> Change {
    tokio::time::timeout(Duration::from_secs(5), changes.next()).await.expect("a change within 5 s").expect("feed open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_hears_the_changes_of_the_others_and_resyncs_after_a_reconnect() {
    let (url, stores) = replicas(2).await;
    let (a, b) = (&stores[0], &stores[1]);
    let mut heard_by_b = b.changes().await.unwrap().expect("postgres has a change feed");
    let mut heard_by_a = a.changes().await.unwrap().unwrap();

    let rec = minimal("ann");
    a.insert(&rec, &accepted(&rec)).await.unwrap();
    assert_eq!(next(&mut heard_by_b).await, Change::Session(rec.id));
    let t = transition(SessionState::Created, &Trigger::ProvisioningStarted).unwrap();
    a.apply(&rec.id, &t, &SessionChanges::default(), &NewEvent::transition(&t, T0 + 1, "system")).await.unwrap();
    assert_eq!(next(&mut heard_by_b).await, Change::Session(rec.id));
    // A refused change is not announced: it never happened.
    assert!(a
        .apply(&rec.id, &t, &SessionChanges::default(), &NewEvent::transition(&t, T0 + 2, "system"))
        .await
        .is_err());
    // B's own change reaches A, and A never hears its own.
    let p = examroom_core::Progress::new(1, 2, "Preparing");
    b.set_progress(&rec.id, SessionState::Provisioning, &p, T0 + 3).await.unwrap();
    assert_eq!(next(&mut heard_by_a).await, Change::Session(rec.id));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), heard_by_b.next()).await.is_err(),
        "B heard nothing else (neither A's refused change nor its own)"
    );

    // The listener's connection is cut: B reconnects and asks for a resync (notifications sent meanwhile are lost).
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let cut: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%') t",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(cut >= 2, "both listeners were cut ({cut})");
    assert_eq!(next(&mut heard_by_b).await, Change::Resync);
    // And it hears changes again.
    let other = minimal("bob");
    a.insert(&other, &accepted(&other)).await.unwrap();
    loop {
        match next(&mut heard_by_b).await {
            Change::Session(id) if id == other.id => break,
            Change::Resync => continue,
            c => panic!("unexpected {c:?}"),
        }
    }
}
