//! Where a store statement gets its connection: the command's own, or one from the pool.
//!
//! A command of the command line ([`super::Connections::Single`]) takes one connection out of
//! the pool when the store opens and keeps it behind a mutex for the store's life. Going
//! through sqlx's pool costs every statement more than the statement: the pool hands a
//! connection back from a task of its own after testing it with a round trip to the
//! connection's thread, and the next statement waits for that (about 120 µs a statement on the
//! 2-core VMs here, against 6–15 µs on a held connection; a deploy runs a few dozen). The
//! manager ([`super::Connections::Shared`]) keeps using the pool, whose several connections let
//! reads go on beside a write.
//!
//! [`Conn`] is either kind, dereferencing to the connection; [`Tx`] is a write transaction on
//! one, begun with `BEGIN IMMEDIATE` and rolled back when dropped uncommitted, as sqlx's own
//! transactions are.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnection, SqliteTransactionManager};
use sqlx::{Sqlite, SqlitePool, TransactionManager};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::StoreError;

/// How long a statement waits for the command's connection, as it would for the pool's
/// (`acquire_timeout`): longer than SQLite's busy timeout, so that a lock held by another
/// process surfaces as SQLite's own "database is locked".
pub(super) const WAIT: Duration = Duration::from_secs(60);

/// Connections of a store: the pool, and the command's own connection when it keeps one.
#[derive(Debug, Clone)]
pub(super) struct Connections {
    pub pool: SqlitePool,
    own: Option<Arc<Mutex<SqliteConnection>>>,
}

impl Connections {
    /// Statements go through `pool`.
    pub fn pooled(pool: SqlitePool) -> Connections {
        Connections { pool, own: None }
    }

    /// Statements go through one connection taken out of `pool` for good.
    pub async fn own(pool: SqlitePool) -> Result<Connections, StoreError> {
        let conn = pool.acquire().await?.detach();
        Ok(Connections {
            pool,
            own: Some(Arc::new(Mutex::new(conn))),
        })
    }

    /// A connection for one statement or transaction.
    pub async fn get(&self) -> Result<Conn, StoreError> {
        Ok(match &self.own {
            Some(own) => Conn::Own(
                tokio::time::timeout(WAIT, own.clone().lock_owned())
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)?,
            ),
            None => Conn::Pooled(self.pool.acquire().await?),
        })
    }

    /// A write transaction that holds SQLite's write lock from its start.
    pub async fn write(&self) -> Result<Tx, StoreError> {
        let mut conn = self.get().await?;
        SqliteTransactionManager::begin(&mut conn, Some("BEGIN IMMEDIATE".into())).await?;
        Ok(Tx { conn, open: true })
    }

    /// Close the command's own connection, then the pool's.
    pub async fn close(self) {
        if let Some(own) = self.own
            && let Ok(own) = Arc::try_unwrap(own)
        {
            let _ = sqlx::Connection::close(own.into_inner()).await;
        }
        self.pool.close().await;
    }
}

/// A connection for the time it is held.
pub(crate) enum Conn {
    Own(OwnedMutexGuard<SqliteConnection>),
    Pooled(PoolConnection<Sqlite>),
}

impl Deref for Conn {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match self {
            Conn::Own(c) => c,
            Conn::Pooled(c) => c,
        }
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            Conn::Own(c) => c,
            Conn::Pooled(c) => c,
        }
    }
}

/// A write transaction; rolled back unless committed.
pub(crate) struct Tx {
    conn: Conn,
    open: bool,
}

impl Tx {
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        SqliteTransactionManager::commit(&mut self.conn).await?;
        self.open = false;
        Ok(())
    }
}

impl Deref for Tx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.open {
            // Queued on the connection's thread ahead of anything sent after it.
            SqliteTransactionManager::start_rollback(&mut self.conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::super::{Connections as Kind, Store};

    async fn count(store: &Store) -> i64 {
        sqlx::query("SELECT count(*) FROM tokens")
            .fetch_one(&mut *store.db.get().await.unwrap())
            .await
            .unwrap()
            .get(0)
    }

    async fn insert(tx: &mut super::Tx, name: &str) {
        sqlx::query("INSERT INTO tokens (name, hash, created_at) VALUES (?, ?, 'now')")
            .bind(name)
            .bind(format!("hash of {name}"))
            .execute(&mut **tx)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_held_connection_commits_rolls_back_and_serves_tasks_in_turn() {
        let dir = std::env::temp_dir().join(format!("windlass-conn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for kind in [Kind::Single, Kind::Shared] {
            let path = dir.join(format!("{kind:?}.db"));
            let store = Store::open_with(path.to_str().unwrap(), kind)
                .await
                .unwrap();
            let mut tx = store.write().await.unwrap();
            insert(&mut tx, "kept").await;
            tx.commit().await.unwrap();
            let mut tx = store.write().await.unwrap();
            insert(&mut tx, "dropped").await;
            drop(tx);
            assert_eq!(count(&store).await, 1, "{kind:?}");
            // Tasks of one process take their turns on the one connection.
            let writers: Vec<_> = (0..8)
                .map(|i| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        let mut tx = store.write().await.unwrap();
                        insert(&mut tx, &format!("task {i}")).await;
                        tx.commit().await.unwrap();
                        count(&store).await
                    })
                })
                .collect();
            for w in writers {
                assert!(w.await.unwrap() >= 2);
            }
            assert_eq!(count(&store).await, 9, "{kind:?}");
            store.close().await;
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
