//! Bulk writes straight on a connection's SQLite handle: a statement prepared once and stepped
//! for every row (or every [`ROWS_PER_STEP`] rows), inside the caller's transaction.
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
//! Stepping a statement has a cost of its own besides its rows (cursors opened on the table
//! and each index, a statement journal, the halt): [`Bulk::insert`] therefore inserts
//! [`ROWS_PER_STEP`] rows a step, with the one-row statement's values repeated, and the rows
//! left over one at a time (the 1,995 plan rows of a 1,000-instance chain: 32.5 M → 27.6 M
//! instructions).
//!
//! Only plain values are bound (text, integers, null), every statement is finalized before the
//! handle goes back, and the transaction stays the caller's: its commit or rollback covers these
//! rows as any other.

use std::ffi::{CStr, c_int};
use std::ptr::NonNull;

use libsqlite3_sys as ffi;
use sqlx::sqlite::{LockedSqliteHandle, SqliteConnection};

use super::StoreError;

/// Rows a step of [`Bulk::insert`]: enough that the cost of a step is spread thin, few enough
/// that preparing the statement (in every process anew) stays cheap.
pub(super) const ROWS_PER_STEP: usize = 32;

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
        self.steps(sql, 1, items, &mut put)
    }

    /// Run `sql`, an `INSERT … VALUES (…)` of one row with `?` placeholders, once per item as
    /// [`Bulk::each`] does, but [`ROWS_PER_STEP`] rows a step while enough are left.
    pub fn insert<T>(
        &mut self,
        sql: &str,
        items: &[T],
        mut put: impl FnMut(&mut Rows<'_>, &T) -> Result<u64, StoreError>,
    ) -> Result<(), StoreError> {
        let (batched, rest) = items.split_at(items.len() - items.len() % ROWS_PER_STEP);
        if !batched.is_empty() {
            let many = repeat_values(sql, ROWS_PER_STEP)?;
            self.steps(&many, ROWS_PER_STEP, batched, &mut put)?;
        }
        self.steps(sql, 1, rest, &mut put)
    }

    /// `items` through `sql`, a statement of `per_step` rows (`items` a multiple of them).
    fn steps<T>(
        &mut self,
        sql: &str,
        per_step: usize,
        items: &[T],
        put: &mut impl FnMut(&mut Rows<'_>, &T) -> Result<u64, StoreError>,
    ) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut rows = self.prepare(sql, per_step)?;
        for item in items {
            put(&mut rows, item)?;
        }
        Ok(())
    }

    /// Prepare `sql`, a statement of `per_step` rows.
    fn prepare(&mut self, sql: &str, per_step: usize) -> Result<Rows<'_>, StoreError> {
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
            per_step,
            bound: 0,
            _bulk: std::marker::PhantomData,
        })
    }
}

/// `sql`, an `INSERT … VALUES (…)` of one row, made to insert `n` rows.
fn repeat_values(sql: &str, n: usize) -> Result<String, StoreError> {
    let not_one_row = || bulk_error("not an INSERT … VALUES (…) of one row with `?` placeholders");
    let at = sql.rfind("VALUES").ok_or_else(not_one_row)?;
    let (head, tuple) = (&sql[..at], sql[at + "VALUES".len()..].trim());
    let numbered = tuple
        .as_bytes()
        .windows(2)
        .any(|w| w[0] == b'?' && w[1].is_ascii_digit());
    if !head.trim_start().starts_with("INSERT") || numbered || !one_tuple(tuple) {
        return Err(not_one_row());
    }
    Ok(format!("{head}VALUES {}", vec![tuple; n].join(", ")))
}

/// Whether `text` is one parenthesized tuple and nothing after it (`(?, 'a)', ?)`, not
/// `(?) RETURNING (id)`).
fn one_tuple(text: &str) -> bool {
    if !text.starts_with('(') {
        return false;
    }
    let (mut depth, mut quoted) = (0usize, false);
    for (i, c) in text.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i == text.len() - 1;
                }
            }
            _ => {}
        }
    }
    false
}

/// A prepared statement of `per_step` rows; finalized when dropped.
pub(super) struct Rows<'b> {
    db: NonNull<ffi::sqlite3>,
    stmt: NonNull<ffi::sqlite3_stmt>,
    per_step: usize,
    /// Rows bound since the last step.
    bound: usize,
    _bulk: std::marker::PhantomData<&'b mut ()>,
}

impl Rows<'_> {
    /// Bind `values` to the placeholders of the next row, in order, and run the statement once
    /// its every row is bound; returns the number of rows it changed (0 while rows are still
    /// wanted).
    pub fn put(&mut self, values: &[Value<'_>]) -> Result<u64, StoreError> {
        let stmt = self.stmt.as_ptr();
        // One row a step binds text in place (SQLITE_STATIC): `values` outlives the step, and
        // the bindings are cleared before this call returns. Rows bound for a later step are
        // copied (SQLITE_TRANSIENT), as their values are gone by then.
        let (first, keep) = if self.per_step == 1 {
            (0, ffi::SQLITE_STATIC())
        } else {
            (self.bound * values.len(), ffi::SQLITE_TRANSIENT())
        };
        let mut rc = ffi::SQLITE_OK;
        for (i, v) in values.iter().enumerate() {
            let at = c_int::try_from(first + i + 1).map_err(|_| bulk_error("too many values"))?;
            // SAFETY: `stmt` is a live statement of this handle; text is kept as said above, so
            // SQLite never holds a pointer into `values` past this call.
            rc = unsafe {
                match *v {
                    Value::Text(s) => ffi::sqlite3_bind_text64(
                        stmt,
                        at,
                        s.as_ptr().cast(),
                        s.len() as u64,
                        keep,
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
        if rc == ffi::SQLITE_OK && self.bound + 1 < self.per_step {
            self.bound += 1;
            return Ok(0);
        }
        self.bound = 0;
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
        // SAFETY: resetting a live statement for its next rows (its error is the step's, read
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
    use sqlx::Connection;

    /// A connection to a new in-memory database with the table `create` makes.
    async fn with_table(create: &str) -> SqliteConnection {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::query(create).execute(&mut conn).await.unwrap();
        conn
    }

    #[tokio::test]
    async fn rows_go_in_with_their_values_and_errors_name_the_constraint() {
        let mut conn =
            with_table("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER, note TEXT)").await;
        {
            let mut bulk = Bulk::lock(&mut conn).await.unwrap();
            let mut rows = bulk
                .prepare("INSERT INTO t (id, n, note) VALUES (?, ?, ?)", 1)
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
            let wrong = bulk
                .prepare("INSERT INTO nowhere VALUES (?)", 1)
                .err()
                .unwrap();
            assert!(
                wrong.to_string().contains("no such table: nowhere"),
                "{wrong}"
            );
        }
        let got: Vec<(String, i64, Option<String>)> =
            sqlx::query_as("SELECT id, n, note FROM t ORDER BY id")
                .fetch_all(&mut conn)
                .await
                .unwrap();
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

    #[tokio::test]
    async fn inserts_go_many_rows_a_step_and_the_rest_one_by_one() {
        let mut conn =
            with_table("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, fixed TEXT)").await;
        let n = 2 * ROWS_PER_STEP + 3;
        let ids: Vec<i64> = (0..n as i64).collect();
        {
            let mut bulk = Bulk::lock(&mut conn).await.unwrap();
            let sql = "INSERT INTO t (id, name, fixed) VALUES (?, ?, 'sa(m)e')";
            bulk.insert(sql, &ids, |rows, id| {
                // A value that is gone by the time its row's step runs.
                let name = format!("row {id}");
                rows.put(&[(*id).into(), name.as_str().into()])
            })
            .unwrap();
            // A duplicate inside a batch fails the batch with SQLite's own message.
            let again: Vec<i64> = (1000..1000 + ROWS_PER_STEP as i64 - 1).chain([5]).collect();
            let err = bulk
                .insert(sql, &again, |rows, id| {
                    rows.put(&[(*id).into(), Value::Null])
                })
                .unwrap_err();
            assert!(
                err.to_string().contains("UNIQUE constraint failed: t.id"),
                "{err}"
            );
            for wrong in [
                "UPDATE t SET name = ? WHERE id = ?",
                "INSERT INTO t (id, name) VALUES (?1, ?2)",
                "INSERT INTO t (id, name) VALUES (?, ?) ON CONFLICT DO NOTHING",
                "INSERT INTO t (id, name) VALUES (?, ?) RETURNING (id)",
            ] {
                let err = bulk
                    .insert(wrong, &ids, |rows, id| {
                        rows.put(&[(*id).into(), Value::Null])
                    })
                    .unwrap_err();
                assert!(err.to_string().contains("not an INSERT"), "{wrong}: {err}");
            }
        }
        let got: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT id, name, fixed FROM t ORDER BY id")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let want: Vec<(i64, String, String)> = ids
            .iter()
            .map(|&i| (i, format!("row {i}"), "sa(m)e".to_string()))
            .collect();
        assert_eq!(got, want);
    }
}
