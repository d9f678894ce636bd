//! The store suite runs every test against both backends: SQLite in a temporary file, and PostgreSQL in a fresh
//! database of this test process's throwaway cluster (`examroom_store::postgres::test_cluster`).

#![allow(dead_code)]

use std::path::PathBuf;

use examroom_store::postgres::{test_cluster, PgStore};
use examroom_store::sqlite::SqliteStore;
use examroom_store::Store;
use sqlx::Connection;
use tempfile::TempDir;

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A store on a fresh database, and the way around it (raw SQL) and back into it (reopen).
pub struct Db {
    pub store: Store,
    pub backend: Backend,
    _dir: Option<TempDir>,
    path: PathBuf,
    url: String,
}

impl Db {
    pub async fn new(backend: Backend) -> Db {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("examroom.db");
                let store = Store::Sqlite(SqliteStore::open(&path).await.unwrap());
                Db { store, backend, _dir: Some(dir), path, url: String::new() }
            }
            Backend::Postgres => {
                let url = test_cluster::cluster().fresh_database().await;
                let store = Store::Postgres(PgStore::connect(&url).await.unwrap());
                Db { store, backend, _dir: None, path: PathBuf::new(), url }
            }
        }
    }

    /// Another store on the same database (as after a restart).
    pub async fn reopen(&self) -> Store {
        match self.backend {
            Backend::Sqlite => Store::Sqlite(SqliteStore::open(&self.path).await.unwrap()),
            Backend::Postgres => Store::Postgres(PgStore::connect(&self.url).await.unwrap()),
        }
    }

    /// Runs `sql` on a connection of its own, around the store. Ok(rows affected), or the database's error.
    pub async fn raw(&self, sql: &str) -> Result<u64, String> {
        match self.backend {
            Backend::Sqlite => {
                use sqlx::ConnectOptions;
                let mut conn = sqlx::sqlite::SqliteConnectOptions::new().filename(&self.path).connect().await.unwrap();
                let done = sqlx::query(sql).execute(&mut conn).await;
                conn.close().await.unwrap();
                done.map(|d| d.rows_affected()).map_err(|e| e.to_string())
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                let done = sqlx::query(sql).execute(&mut conn).await;
                conn.close().await.unwrap();
                done.map(|d| d.rows_affected()).map_err(|e| e.to_string())
            }
        }
    }
}

/// `both!(name, |db| { … })`: the test `name::sqlite` and `name::postgres`, each with `db` a fresh [`Db`].
/// `both!(name, multi_thread, |db| { … })` runs them on a multi-threaded runtime.
#[macro_export]
macro_rules! both {
    ($name:ident, |$db:ident| $body:block) => {
        $crate::both!(@ $name, [tokio::test], |$db| $body);
    };
    ($name:ident, multi_thread, |$db:ident| $body:block) => {
        $crate::both!(@ $name, [tokio::test(flavor = "multi_thread", worker_threads = 4)], |$db| $body);
    };
    (@ $name:ident, [$($attr:tt)*], |$db:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[$($attr)*]
            async fn sqlite() {
                let $db = $crate::support::Db::new($crate::support::Backend::Sqlite).await;
                $body
            }
            #[$($attr)*]
            async fn postgres() {
                let $db = $crate::support::Db::new($crate::support::Backend::Postgres).await;
                $body
            }
        }
    };
}
