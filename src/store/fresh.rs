//! A new state file, made whole before anyone can open it.
//!
//! Creating a SQLite file in place and switching it to WAL costs several fsyncs (the rollback
//! journal of the switch, its header, the directory, the first WAL header): about 10 ms on a
//! common disk, a third of a small `deploy`. Instead a new store is built under a temporary
//! name beside the final one, with no journal and no syncs, migrated to today's schema and
//! switched to WAL; then the file is synced once and linked into place with `link(2)`, which
//! fails when the name exists. Of several processes creating one store at once exactly one
//! link wins; the others drop their temporary file and open the winner's. A crash before the
//! link leaves a temporary file and no store, so nothing half-made is ever opened.
//!
//! The new file gets today's schema in one batch (`fresh_schema.sql`) rather than by running
//! every migration since the first: their `ALTER TABLE`s each made SQLite re-read the whole
//! schema, 9 ms of a first command. A test holds the batch to what the migrations make.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{StoreError, schema};

/// Today's schema, as running every migration on an empty file makes it.
const SCHEMA: &str = include_str!("fresh_schema.sql");

/// Make the store at `path` if no file is there. Returns once a complete store exists at
/// `path`, made by this process or by another one.
pub(super) async fn create_if_missing(path: &Path) -> Result<(), StoreError> {
    if path.exists() {
        return Ok(());
    }
    let temporary = temporary_name(path);
    let result = build(&temporary, path).await;
    // Whether linked or lost to another process, the temporary name goes.
    let _ = std::fs::remove_file(&temporary);
    for suffix in ["-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", temporary.display()));
    }
    result
}

fn temporary_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.new-{}", std::process::id()))
}

async fn build(temporary: &Path, path: &Path) -> Result<(), StoreError> {
    let open_error = |source| StoreError::Open {
        location: path.display().to_string(),
        source,
    };
    let _ = std::fs::remove_file(temporary);
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", temporary.display()))
        .map_err(open_error)?
        .create_if_missing(true)
        // Nobody else can see this file yet: a crash loses nothing but the file itself.
        .journal_mode(SqliteJournalMode::Off)
        .synchronous(SqliteSynchronous::Off)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(open_error)?;
    create_schema(&pool).await?;
    // WAL is a property of the file; the stores that open it find it set.
    sqlx::query("PRAGMA journal_mode = WAL")
        .execute(&pool)
        .await?;
    pool.close().await;
    let io_error = |source| StoreError::Create {
        path: path.to_path_buf(),
        source,
    };
    std::fs::File::open(temporary)
        .and_then(|f| f.sync_all())
        .map_err(io_error)?;
    match std::fs::hard_link(temporary, path) {
        Ok(()) => {}
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(io_error(e)),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error)?;
    }
    Ok(())
}

/// Today's schema on an empty database, recorded as having run every migration.
async fn create_schema(pool: &sqlx::SqlitePool) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;
    sqlx::raw_sql(&format!(
        "PRAGMA user_version = {}",
        schema::MIGRATIONS.len()
    ))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::*;

    async fn memory() -> sqlx::SqlitePool {
        SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap()
    }

    /// `(type, name, table, sql)` of every schema object, in the order made, and the version.
    async fn described(pool: &sqlx::SqlitePool) -> (Vec<(String, String, String, String)>, i64) {
        let objects = sqlx::query(
            "SELECT type, name, tbl_name, COALESCE(sql, '') FROM sqlite_master ORDER BY rowid",
        )
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
        let version = sqlx::query("PRAGMA user_version")
            .fetch_all(pool)
            .await
            .unwrap()[0]
            .get(0);
        (objects, version)
    }

    #[tokio::test]
    async fn the_fresh_schema_is_what_the_migrations_make() {
        let migrated = memory().await;
        super::super::migrate(&mut migrated.acquire().await.unwrap())
            .await
            .unwrap();
        let fresh = memory().await;
        create_schema(&fresh).await.unwrap();
        let (want, want_version) = described(&migrated).await;
        let (got, got_version) = described(&fresh).await;
        assert_eq!(got_version, want_version);
        if got != want {
            let dump: String = want
                .iter()
                .filter(|(_, name, _, sql)| !sql.is_empty() && !name.starts_with("sqlite_"))
                .map(|(_, _, _, sql)| format!("{sql};\n"))
                .collect();
            panic!(
                "src/store/fresh_schema.sql differs from what the migrations make; its statements should be:\n{dump}"
            );
        }
    }

    #[tokio::test]
    async fn a_fresh_store_needs_no_migration() {
        let pool = memory().await;
        create_schema(&pool).await.unwrap();
        super::super::migrate(&mut pool.acquire().await.unwrap())
            .await
            .unwrap();
        assert_eq!(described(&pool).await.1, schema::MIGRATIONS.len() as i64);
    }
}
