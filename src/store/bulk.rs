//! Bulk writes straight on a connection's SQLite handle: one single-row statement, prepared
//! once, stepped for every row, inside the caller's transaction.
//!
//! sqlx runs each SQLite connection on a thread of its own and every statement is a round trip
//! to it: the statement and its values go over a channel, the result comes back over another,
//! and each way wakes a sleeping thread (5–70 µs a statement on a held connection on the 2-core
//! VMs here). Writes of thousands of rows (a plan's instances and links, an execution's state
//! updates) therefore went as multi-row statements, which SQLite must parse anew in each process
//! at several times the cost of running them. [`Bulk::lock`] takes the connection's handle from its thread for the
//! duration (`sqlx::sqlite::SqliteConnection::lock_handle`, one round trip); [`Rows::put`] then
//! binds and steps on the calling thread, with no round trip and no parse per row.
//!
//! Only plain values are bound (text, integers, null), every statement is finalized before the
//! handle goes back, and the transaction stays the caller's: its commit or rollback covers these
//! rows as any other.

use std::ffi::{CStr, c_int};
use std::ptr::NonNull;

use libsqlite3_sys as ffi;
use sqlx::sqlite::{LockedSqliteHandle, SqliteConnection};

use super::StoreError;

/// A value bound to one placeholder.
#[derive(Debug, Clone, Copy)]
pub(super) enum Value<'a> {
    Text(&'a str),
    Int(i64),
    Null,
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::Text(s)
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(s: &'a String) -> Self {
        Value::Text(s)
    }
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(s: Option<&'a str>) -> Self {
        s.map_or(Value::Null, Value::Text)
    }
}

impl<'a> From<&'a Option<String>> for Value<'a> {
    fn from(s: &'a Option<String>) -> Self {
        s.as_deref().into()
    }
}

impl From<i64> for Value<'_> {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<bool> for Value<'_> {
    fn from(b: bool) -> Self {
        Value::Int(i64::from(b))
    }
}

/// A connection's SQLite handle, taken from its thread until dropped.
pub(super) struct Bulk<'c> {
    handle: LockedSqliteHandle<'c>,
}

impl<'c> Bulk<'c> {
    /// Take the handle of `conn` (one round trip to its thread).
    pub async fn lock(conn: &'c mut SqliteConnection) -> Result<Bulk<'c>, StoreError> {
        Ok(Bulk {
            handle: conn.lock_handle().await?,
        })
    }

    /// Run `sql`, a statement of one row, once per item: `put` binds the item's values
    /// ([`Rows::put`]). Nothing is prepared when there are no items.
    pub fn each<T>(
        &mut self,
        sql: &str,
        items: &[T],
        mut put: impl FnMut(&mut Rows<'_>, &T) -> Result<u64, StoreError>,
    ) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut rows = self.rows(sql)?;
        for item in items {
            put(&mut rows, item)?;
        }
        Ok(())
    }

    /// Prepare `sql`, a statement of one row.
    pub fn rows(&mut self, sql: &str) -> Result<Rows<'_>, StoreError> {
        let db = self.handle.as_raw_handle();
        let len = c_int::try_from(sql.len()).map_err(|_| bulk_error("statement too long"))?;
        let mut stmt = std::ptr::null_mut();
        // SAFETY: `db` is this connection's open handle, held exclusively through `handle`;
        // `sql` outlives the call, its length is given, and `stmt` receives the statement.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                db.as_ptr(),
                sql.as_ptr().cast(),
                len,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(error(db, rc));
        }
        let stmt = NonNull::new(stmt).ok_or_else(|| bulk_error("empty statement"))?;
        Ok(Rows {
            db,
            stmt,
            _bulk: std::marker::PhantomData,
        })
    }
}

/// A prepared one-row statement; finalized when dropped.
pub(super) struct Rows<'b> {
    db: NonNull<ffi::sqlite3>,
    stmt: NonNull<ffi::sqlite3_stmt>,
    _bulk: std::marker::PhantomData<&'b mut ()>,
}

impl Rows<'_> {
    /// Run the statement once with `values` bound to its placeholders in order; returns the
    /// number of rows it changed.
    pub fn put(&mut self, values: &[Value<'_>]) -> Result<u64, StoreError> {
        let stmt = self.stmt.as_ptr();
        let mut rc = ffi::SQLITE_OK;
        for (i, v) in values.iter().enumerate() {
            let at = c_int::try_from(i + 1).map_err(|_| bulk_error("too many values"))?;
            // SAFETY: `stmt` is a live statement of this handle. Text is bound in place
            // (SQLITE_STATIC): `values` outlives the step below, and the bindings are cleared
            // before this call returns, so SQLite never holds a pointer past it.
            rc = unsafe {
                match *v {
                    Value::Text(s) => ffi::sqlite3_bind_text64(
                        stmt,
                        at,
                        s.as_ptr().cast(),
                        s.len() as u64,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                    Value::Int(n) => ffi::sqlite3_bind_int64(stmt, at, n),
                    Value::Null => ffi::sqlite3_bind_null(stmt, at),
                }
            };
            if rc != ffi::SQLITE_OK {
                break;
            }
        }
        if rc == ffi::SQLITE_OK {
            // SAFETY: as above; a statement without a result row steps to SQLITE_DONE.
            rc = unsafe { ffi::sqlite3_step(stmt) };
        }
        let result = if rc == ffi::SQLITE_DONE || rc == ffi::SQLITE_ROW {
            // SAFETY: the handle is live.
            Ok(unsafe { ffi::sqlite3_changes64(self.db.as_ptr()) } as u64)
        } else {
            Err(error(self.db, rc))
        };
        // SAFETY: resetting a live statement for its next row (its error is the step's, read
        // above) and dropping its pointers into `values`.
        unsafe {
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
        }
        result
    }
}

impl Drop for Rows<'_> {
    fn drop(&mut self) {
        // SAFETY: the statement is live and finalized once, before the handle goes back.
        unsafe {
            ffi::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}

/// SQLite's message for `rc` on `db`.
fn error(db: NonNull<ffi::sqlite3>, rc: c_int) -> StoreError {
    // SAFETY: `sqlite3_errmsg` returns a NUL-terminated string owned by the handle, valid until
    // its next call; it is copied at once.
    let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db.as_ptr())) }
        .to_string_lossy()
        .into_owned();
    StoreError::Bulk { code: rc, message }
}

fn bulk_error(message: &str) -> StoreError {
    StoreError::Bulk {
        code: ffi::SQLITE_MISUSE,
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{Connection, Row};

    #[tokio::test]
    async fn rows_go_in_with_their_values_and_errors_name_the_constraint() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER, note TEXT)")
            .execute(&mut conn)
            .await
            .unwrap();
        {
            let mut bulk = Bulk::lock(&mut conn).await.unwrap();
            let mut rows = bulk
                .rows("INSERT INTO t (id, n, note) VALUES (?, ?, ?)")
                .unwrap();
            let quoted = "it's \"quoted\"; DROP TABLE t; --".to_string();
            assert_eq!(
                rows.put(&["a".into(), 1i64.into(), (&quoted).into()])
                    .unwrap(),
                1
            );
            assert_eq!(
                rows.put(&["b".into(), true.into(), None.into()]).unwrap(),
                1
            );
            let duplicate = rows
                .put(&["a".into(), 3i64.into(), None.into()])
                .unwrap_err();
            assert!(
                duplicate
                    .to_string()
                    .contains("UNIQUE constraint failed: t.id"),
                "{duplicate}"
            );
            // The statement is usable after an error.
            assert_eq!(
                rows.put(&["c".into(), 4i64.into(), Value::Null]).unwrap(),
                1
            );
            drop(rows);
            let wrong = bulk.rows("INSERT INTO nowhere VALUES (?)").err().unwrap();
            assert!(
                wrong.to_string().contains("no such table: nowhere"),
                "{wrong}"
            );
        }
        let got: Vec<(String, i64, Option<String>)> =
            sqlx::query("SELECT id, n, note FROM t ORDER BY id")
                .fetch_all(&mut conn)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
        assert_eq!(
            got,
            vec![
                (
                    "a".into(),
                    1,
                    Some("it's \"quoted\"; DROP TABLE t; --".into())
                ),
                ("b".into(), 1, None),
                ("c".into(), 4, None),
            ]
        );
    }
}
