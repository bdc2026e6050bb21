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

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::StoreError;

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
    super::migrate(&pool).await?;
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
