//! Blueprint file contents, content-addressed: each distinct content is stored once, in chunks,
//! and shared by every deployment whose snapshot holds it.
//!
//! Tables: `contents` (SHA-256 in hex, size, number of chunks) is written after all of a
//! content's `content_chunks` (1 MiB each), so a `contents` row means the content is complete;
//! `snapshot_files` lists each deployment's files (path, hash, mode, size) and references
//! `contents`, so SQLite itself refuses a file row without its content or the removal of content
//! a deployment still lists.
//!
//! Data flow: the engine's snapshot walk hashes each file ([`content_hash`]) and hands the list
//! ([`SnapshotFile`]) to `create_deployment`, which, in its own transaction, stores the list and
//! — for hashes not stored yet — streams the file again chunk by chunk, checking that it still
//! has the hash. Materialising reads one chunk per query. Neither direction holds a whole file in
//! memory. Deleting a deployment deletes its list, then the contents no list references.
//! This module only reads the files it is given; it never walks directories.

use std::io::Read;
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::sqlite::SqliteConnection;

use super::{ROWS_PER_STATEMENT, Store, StoreError, placeholders};

/// Size of a stored chunk, and of every read while hashing or storing.
pub const CHUNK: usize = 1 << 20;

/// A file of a snapshot as the walk found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    /// Relative to the blueprint's directory, `/`-separated.
    pub path: String,
    /// Where its content is read from when the store does not hold it yet.
    pub source: PathBuf,
    /// SHA-256 of the content, lowercase hex ([`content_hash`]).
    pub hash: String,
    pub mode: u32,
    pub size: u64,
}

/// A file of a stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub path: String,
    pub hash: String,
    pub mode: u32,
    pub size: u64,
    /// Number of chunks of its content.
    pub chunks: i64,
}

/// What a snapshot added to the store: contents no deployment had before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stored {
    pub new_files: u64,
    pub new_bytes: u64,
}

/// SHA-256 (lowercase hex) and length of what `reader` yields, read [`CHUNK`] bytes at a time.
pub fn content_hash(mut reader: impl Read) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = Vec::new();
    let mut size = 0u64;
    while next_chunk(&mut reader, &mut buf)? {
        hasher.update(&buf);
        size += buf.len() as u64;
    }
    Ok((hex(&hasher.finalize()), size))
}

/// Replace `buf` by the next chunk of `reader` (up to [`CHUNK`] bytes); false at the end.
/// The buffer grows with what is read, so a small file never costs a whole chunk of memory.
fn next_chunk(reader: &mut impl Read, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    buf.clear();
    reader.by_ref().take(CHUNK as u64).read_to_end(buf)?;
    Ok(!buf.is_empty())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn is_stored(tx: &mut SqliteConnection, hash: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query("SELECT 1 FROM contents WHERE hash = ?")
        .bind(hash)
        .fetch_optional(&mut *tx)
        .await?
        .is_some())
}

/// Store `files` as the snapshot of `deployment`, adding the contents not stored yet.
pub(super) async fn insert_files(
    tx: &mut SqliteConnection,
    deployment: &str,
    files: &[SnapshotFile],
) -> Result<Stored, StoreError> {
    let mut stored = Stored::default();
    for file in files {
        if !is_stored(tx, &file.hash).await? {
            insert_content(tx, file).await?;
            stored.new_files += 1;
            stored.new_bytes += file.size;
        }
    }
    for batch in files.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO snapshot_files (deployment_id, path, hash, mode, size) VALUES {}",
            placeholders(batch.len(), 5)
        );
        let mut q = sqlx::query(&sql);
        for f in batch {
            q = q
                .bind(deployment)
                .bind(&f.path)
                .bind(&f.hash)
                .bind(i64::from(f.mode))
                .bind(f.size as i64);
        }
        q.execute(&mut *tx).await?;
    }
    Ok(stored)
}

/// Stream one file's content into chunks; refuse it when it no longer has the hash the walk
/// computed (it changed in between), so a hash always names the content stored under it.
async fn insert_content(tx: &mut SqliteConnection, file: &SnapshotFile) -> Result<(), StoreError> {
    let unreadable = |source| StoreError::Source {
        path: file.source.clone(),
        source,
    };
    let mut reader = std::fs::File::open(&file.source).map_err(unreadable)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut seq = 0i64;
    loop {
        let mut buf = Vec::new();
        if !next_chunk(&mut reader, &mut buf).map_err(unreadable)? {
            break;
        }
        hasher.update(&buf);
        size += buf.len() as u64;
        sqlx::query("INSERT INTO content_chunks (hash, seq, data) VALUES (?, ?, ?)")
            .bind(&file.hash)
            .bind(seq)
            .bind(buf)
            .execute(&mut *tx)
            .await?;
        seq += 1;
    }
    if hex(&hasher.finalize()) != file.hash || size != file.size {
        return Err(StoreError::Changed(file.source.clone()));
    }
    sqlx::query("INSERT INTO contents (hash, size, chunks) VALUES (?, ?, ?)")
        .bind(&file.hash)
        .bind(size as i64)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Delete a deployment's file list, then every content no other list references.
pub(super) async fn delete_files(
    tx: &mut SqliteConnection,
    deployment: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM snapshot_files WHERE deployment_id = ?")
        .bind(deployment)
        .execute(&mut *tx)
        .await?;
    const UNREFERENCED: &str = "SELECT hash FROM contents WHERE NOT EXISTS (SELECT 1 FROM snapshot_files f WHERE f.hash = contents.hash)";
    sqlx::query(&format!(
        "DELETE FROM content_chunks WHERE hash IN ({UNREFERENCED})"
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "DELETE FROM contents WHERE hash IN ({UNREFERENCED})"
    ))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Move the rows of 0.1 stores (`resources`: one whole file per row and deployment) into
/// contents and file lists. Each old row is read whole once, as 0.1 wrote it.
pub(super) async fn convert_resources(tx: &mut SqliteConnection) -> Result<(), StoreError> {
    let keys =
        sqlx::query("SELECT deployment_id, path FROM resources ORDER BY deployment_id, path")
            .fetch_all(&mut *tx)
            .await?;
    for key in keys {
        let (deployment, path): (String, String) = (key.get(0), key.get(1));
        let row =
            sqlx::query("SELECT content, mode FROM resources WHERE deployment_id = ? AND path = ?")
                .bind(&deployment)
                .bind(&path)
                .fetch_one(&mut *tx)
                .await?;
        let content: Vec<u8> = row.get(0);
        let (hash, size) = content_hash(content.as_slice())
            .map_err(|e| StoreError::Corrupt(deployment.clone(), e.to_string()))?;
        if !is_stored(tx, &hash).await? {
            let mut seq = 0i64;
            for chunk in content.chunks(CHUNK) {
                sqlx::query("INSERT INTO content_chunks (hash, seq, data) VALUES (?, ?, ?)")
                    .bind(&hash)
                    .bind(seq)
                    .bind(chunk)
                    .execute(&mut *tx)
                    .await?;
                seq += 1;
            }
            sqlx::query("INSERT INTO contents (hash, size, chunks) VALUES (?, ?, ?)")
                .bind(&hash)
                .bind(size as i64)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO snapshot_files (deployment_id, path, hash, mode, size) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&deployment)
        .bind(&path)
        .bind(&hash)
        .bind(row.get::<i64, _>(1))
        .bind(size as i64)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("DELETE FROM resources")
        .execute(&mut *tx)
        .await?;
    Ok(())
}

impl Store {
    /// The files of a deployment's snapshot, by path.
    pub async fn snapshot_files(&self, deployment: &str) -> Result<Vec<StoredFile>, StoreError> {
        let rows = sqlx::query(
            "SELECT f.path, f.hash, f.mode, f.size, c.chunks FROM snapshot_files f \
             JOIN contents c ON c.hash = f.hash WHERE f.deployment_id = ? ORDER BY f.path",
        )
        .bind(deployment)
        .fetch_all(&mut *self.db.get().await?)
        .await?;
        Ok(rows
            .iter()
            .map(|r| StoredFile {
                path: r.get(0),
                hash: r.get(1),
                mode: r.get::<i64, _>(2) as u32,
                size: r.get::<i64, _>(3) as u64,
                chunks: r.get(4),
            })
            .collect())
    }

    /// Chunk `seq` of a file of `deployment`'s snapshot (from 0 to `file.chunks - 1`).
    pub async fn content_chunk(
        &self,
        deployment: &str,
        file: &StoredFile,
        seq: i64,
    ) -> Result<Vec<u8>, StoreError> {
        sqlx::query("SELECT data FROM content_chunks WHERE hash = ? AND seq = ?")
            .bind(&file.hash)
            .bind(seq)
            .fetch_optional(&mut *self.db.get().await?)
            .await?
            .map(|r| r.get(0))
            .ok_or_else(|| {
                StoreError::Corrupt(
                    deployment.to_string(),
                    format!("chunk {seq} of the content of {} is missing", file.path),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const BLUEPRINT: &str = "tosca_definitions_version: cloudify_dsl_1_3\nnode_templates: {}\n";

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("windlass-blobs-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        /// Write a file and describe it as the snapshot walk would.
        fn file(&self, rel: &str, content: &[u8]) -> SnapshotFile {
            let source = self.0.join(rel.replace('/', "_"));
            std::fs::write(&source, content).unwrap();
            let (hash, size) = content_hash(content).unwrap();
            SnapshotFile {
                path: rel.to_string(),
                source,
                hash,
                mode: 0o644,
                size,
            }
        }

        async fn store(&self) -> Store {
            Store::open(self.0.join("state.db").to_str().unwrap())
                .await
                .unwrap()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    async fn deploy(store: &Store, id: &str, files: &[SnapshotFile]) -> Result<Stored, StoreError> {
        let bp = crate::blueprint::open_str(Path::new("bp.yaml"), BLUEPRINT, &Default::default())
            .unwrap();
        store
            .create_blueprint(id, &serde_json::json!({}), &bp, files)
            .await
    }

    async fn count(store: &Store, table: &str) -> i64 {
        sqlx::query(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&store.db.pool)
            .await
            .unwrap()
            .get(0)
    }

    /// The materialised content of every file of a deployment, by path.
    async fn contents(store: &Store, id: &str) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for file in store.snapshot_files(id).await.unwrap() {
            let mut data = Vec::new();
            for seq in 0..file.chunks {
                data.extend(store.content_chunk(id, &file, seq).await.unwrap());
            }
            assert_eq!(data.len() as u64, file.size);
            out.push((file.path, data));
        }
        out
    }

    fn big(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn hashes_are_sha256() {
        let (hash, size) = content_hash(&b"abc"[..]).unwrap();
        assert_eq!(
            hash,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(size, 3);
    }

    #[tokio::test]
    async fn a_content_is_stored_once_for_every_deployment_that_holds_it() {
        let s = Scratch::new("dedupe");
        let store = s.store().await;
        let shared = big(CHUNK * 2 + 5, 1);
        let a = vec![
            s.file("data/shared.bin", &shared),
            s.file("script.sh", b"echo a"),
            s.file("copy.bin", &shared),
        ];
        let stored = deploy(&store, "a", &a).await.unwrap();
        assert_eq!(
            stored,
            Stored {
                new_files: 2,
                new_bytes: shared.len() as u64 + 6
            }
        );
        let b = vec![s.file("data/shared.bin", &shared), s.file("other", b"b")];
        let stored = deploy(&store, "b", &b).await.unwrap();
        assert_eq!(
            stored,
            Stored {
                new_files: 1,
                new_bytes: 1
            }
        );
        assert_eq!(count(&store, "contents").await, 3);
        assert_eq!(count(&store, "content_chunks").await, 3 + 1 + 1);
        assert_eq!(count(&store, "snapshot_files").await, 5);
        let got = contents(&store, "a").await;
        assert_eq!(got[0], ("copy.bin".to_string(), shared.clone()));
        assert_eq!(got[1], ("data/shared.bin".to_string(), shared.clone()));
        assert_eq!(got[2], ("script.sh".to_string(), b"echo a".to_vec()));
    }

    #[tokio::test]
    async fn deleting_a_deployment_keeps_the_contents_another_one_holds() {
        let s = Scratch::new("delete");
        let store = s.store().await;
        let shared = big(CHUNK + 1, 2);
        deploy(
            &store,
            "a",
            &[s.file("shared", &shared), s.file("only-a", b"a")],
        )
        .await
        .unwrap();
        deploy(&store, "b", &[s.file("shared", &shared)])
            .await
            .unwrap();
        store.delete_deployment("a").await.unwrap();
        assert_eq!(count(&store, "contents").await, 1);
        assert_eq!(count(&store, "content_chunks").await, 2);
        assert_eq!(
            contents(&store, "b").await,
            vec![("shared".to_string(), shared)]
        );
        store.delete_deployment("b").await.unwrap();
        assert_eq!(count(&store, "contents").await, 0);
        assert_eq!(count(&store, "content_chunks").await, 0);
        assert_eq!(count(&store, "snapshot_files").await, 0);
    }

    #[tokio::test]
    async fn a_file_that_changed_after_hashing_is_refused_and_nothing_is_stored() {
        let s = Scratch::new("changed");
        let store = s.store().await;
        let file = s.file("f", b"before");
        std::fs::write(&file.source, b"after!").unwrap();
        let err = deploy(&store, "a", &[file]).await.unwrap_err();
        assert!(matches!(err, StoreError::Changed(_)), "{err}");
        assert_eq!(count(&store, "deployments").await, 0);
        assert_eq!(count(&store, "content_chunks").await, 0);
    }

    #[tokio::test]
    async fn rows_of_0_1_stores_are_converted_on_open() {
        let s = Scratch::new("convert");
        let path = s.0.join("state.db");
        let big_file = big(CHUNK * 2 + 100, 3);
        {
            // A store as the migrations before this one left it, with 0.1's whole-file rows.
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            let before = super::super::schema::SNAPSHOT_CONTENTS - 1;
            for step in &super::super::schema::MIGRATIONS[..before] {
                for statement in step.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                    sqlx::query(statement).execute(&pool).await.unwrap();
                }
            }
            sqlx::query(&format!("PRAGMA user_version = {before}"))
                .execute(&pool)
                .await
                .unwrap();
            for id in ["old1", "old2"] {
                sqlx::query("INSERT INTO deployments (id, blueprint, created_at, inputs, compiled, plan) VALUES (?, 'bp.yaml', '', '{}', '{}', '{}')")
                    .bind(id)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            for (id, path, content, mode) in [
                ("old1", "big.bin", big_file.as_slice(), 0o644),
                ("old1", "scripts/run.sh", b"echo hi".as_slice(), 0o755),
                ("old2", "big.bin", big_file.as_slice(), 0o600),
            ] {
                sqlx::query("INSERT INTO resources (deployment_id, path, content, mode) VALUES (?, ?, ?, ?)")
                    .bind(id)
                    .bind(path)
                    .bind(content)
                    .bind(mode)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }
        let store = s.store().await;
        assert_eq!(count(&store, "resources").await, 0);
        assert_eq!(count(&store, "contents").await, 2);
        assert_eq!(count(&store, "content_chunks").await, 3 + 1);
        assert_eq!(
            contents(&store, "old1").await,
            vec![
                ("big.bin".to_string(), big_file.clone()),
                ("scripts/run.sh".to_string(), b"echo hi".to_vec())
            ]
        );
        let old2 = store.snapshot_files("old2").await.unwrap();
        assert_eq!(old2.len(), 1);
        assert_eq!(old2[0].mode, 0o600);
        assert_eq!(old2[0].hash, content_hash(big_file.as_slice()).unwrap().0);
    }
}
