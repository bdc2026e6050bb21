//! The blueprint snapshot: which files under a blueprint's directory a deployment keeps.
//!
//! # What is left out
//! The walk starts at the blueprint's directory, does not follow symbolic links (they are left
//! out) and never enters an excluded directory. Excluded are, first, the state store's own files
//! (`Store::files`): they are never opened, since closing a descriptor of them would drop this
//! process's SQLite locks; then what the patterns exclude ([`ignore`](super::ignore)): the
//! defaults [`DEFAULT_IGNORES`] (dot-files and dot-directories such as `.git`, and `target`, build
//! output), followed by the lines of `.windlassignore` in the blueprint's directory, which can
//! add patterns or re-include with `!`.
//!
//! # Data flow
//! [`walk`] lists the files with their sizes and refuses a snapshot over [`MAX_BYTES`] or
//! [`MAX_FILES`] before reading any file, then hashes each one reading
//! [`CHUNK`](crate::store::CHUNK) bytes at a time.
//! `Store::create_deployment` stores the list and streams only the contents it does not hold
//! yet; [`Report`] puts the walk's totals and the store's answer together for the caller.

use std::path::{Path, PathBuf};

use super::ignore::Ignore;
use crate::store::{SnapshotFile, Stored, content_hash};

/// The ignore file, in the blueprint's directory.
pub const IGNORE_FILE: &str = ".windlassignore";
/// Patterns that come before the ignore file's: dot-files and dot-directories, and `target`.
pub const DEFAULT_IGNORES: &[&str] = &[".*", "target"];
/// A snapshot larger than this is refused (a safety net: contents are streamed either way).
pub const MAX_BYTES: u64 = 1 << 30;
/// A snapshot of more files than this is refused.
pub const MAX_FILES: usize = 100_000;
/// A snapshot over this size is worth telling the user about.
pub const LARGE_BYTES: u64 = 16 << 20;
/// A snapshot of more files than this is worth telling the user about.
pub const LARGE_FILES: u64 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the blueprint directory {} holds {files} files of {} (a deployment keeps at most {} files of {}); the largest: {}. Exclude what deployments do not need in {} (gitignore syntax: `*.db`, `build/`, `/data/**`)",
        .root.display(), human_size(*.bytes), MAX_FILES, human_size(MAX_BYTES),
        largest_list(.largest), .root.join(IGNORE_FILE).display()
    )]
    TooLarge {
        root: PathBuf,
        files: usize,
        bytes: u64,
        largest: Vec<(String, u64)>,
    },
}

/// The files a deployment keeps, hashed.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub root: PathBuf,
    /// By path.
    pub files: Vec<SnapshotFile>,
}

/// What a snapshot held and what of it was new to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub root: PathBuf,
    pub files: u64,
    pub bytes: u64,
    pub new_files: u64,
    pub new_bytes: u64,
    /// The largest files (at most three), largest first: what to consider excluding.
    pub largest: Vec<(String, u64)>,
}

impl Report {
    pub fn new(snapshot: &Snapshot, stored: Stored) -> Report {
        Report {
            root: snapshot.root.clone(),
            files: snapshot.files.len() as u64,
            bytes: snapshot.files.iter().map(|f| f.size).sum(),
            new_files: stored.new_files,
            new_bytes: stored.new_bytes,
            largest: largest(snapshot.files.iter().map(|f| (f.path.as_str(), f.size))),
        }
    }

    /// Whether the snapshot is large enough to tell the user what it holds.
    pub fn is_large(&self) -> bool {
        self.bytes > LARGE_BYTES || self.files > LARGE_FILES
    }
}

/// A file found by the walk, not read yet.
struct Found {
    path: String,
    source: PathBuf,
    mode: u32,
    size: u64,
}

/// List, check and hash the files under `root` a deployment keeps; never opens a file of `skip`
/// (the state store's own files).
pub fn walk(root: &Path, skip: &[PathBuf]) -> Result<Snapshot, SnapshotError> {
    let ignore = read_ignore(root)?;
    let found = list(root, skip, &ignore)?;
    let bytes: u64 = found.iter().map(|f| f.size).sum();
    if bytes > MAX_BYTES || found.len() > MAX_FILES {
        return Err(SnapshotError::TooLarge {
            root: root.to_path_buf(),
            files: found.len(),
            bytes,
            largest: largest(found.iter().map(|f| (f.path.as_str(), f.size))),
        });
    }
    let mut files = Vec::with_capacity(found.len());
    for f in found {
        let read = |source| SnapshotError::Read {
            path: f.source.clone(),
            source,
        };
        let (hash, size) = std::fs::File::open(&f.source)
            .and_then(content_hash)
            .map_err(read)?;
        files.push(SnapshotFile {
            path: f.path,
            source: f.source,
            hash,
            mode: f.mode,
            size,
        });
    }
    Ok(Snapshot {
        root: root.to_path_buf(),
        files,
    })
}

/// Add a plugin's directory to a snapshot, under `.windlass-plugins/NAME/` (the same walk:
/// its own `.windlassignore`, the defaults, the store's files skipped). The limits apply to the
/// whole snapshot, blueprint and plugins together.
pub fn add_plugin(
    snapshot: &mut Snapshot,
    dir: &Path,
    name: &str,
    skip: &[PathBuf],
) -> Result<(), SnapshotError> {
    let plugin = walk(dir, skip)?;
    let prefix = format!("{}/{name}/", crate::plugins::external::PLUGINS_DIR);
    snapshot.files.extend(plugin.files.into_iter().map(|mut f| {
        f.path = format!("{prefix}{}", f.path);
        f
    }));
    snapshot.files.sort_by(|a, b| a.path.cmp(&b.path));
    snapshot.files.dedup_by(|a, b| a.path == b.path);
    let bytes: u64 = snapshot.files.iter().map(|f| f.size).sum();
    if bytes > MAX_BYTES || snapshot.files.len() > MAX_FILES {
        return Err(SnapshotError::TooLarge {
            root: dir.to_path_buf(),
            files: snapshot.files.len(),
            bytes,
            largest: largest(snapshot.files.iter().map(|f| (f.path.as_str(), f.size))),
        });
    }
    Ok(())
}

fn read_ignore(root: &Path) -> Result<Ignore, SnapshotError> {
    let path = root.join(IGNORE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(SnapshotError::Read { path, source }),
    };
    Ok(Ignore::parse(DEFAULT_IGNORES, &text))
}

/// The files under `root` that are neither excluded nor the store's, by path.
fn list(root: &Path, skip: &[PathBuf], ignore: &Ignore) -> Result<Vec<Found>, SnapshotError> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| SnapshotError::Read {
            path: dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let rel = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if !(kind.is_dir() || kind.is_file()) || ignore.excludes(&rel, kind.is_dir()) {
                continue;
            }
            let path = entry.path();
            if kind.is_dir() {
                stack.push((path, format!("{rel}/")));
                continue;
            }
            if std::fs::canonicalize(&path).is_ok_and(|p| skip.contains(&p)) {
                continue;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            out.push(Found {
                path: rel,
                source: path,
                mode: meta.permissions().mode(),
                size: meta.len(),
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn largest<'a>(files: impl Iterator<Item = (&'a str, u64)>) -> Vec<(String, u64)> {
    let mut all: Vec<(&str, u64)> = files.collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    all.into_iter()
        .take(3)
        .map(|(p, s)| (p.to_string(), s))
        .collect()
}

fn largest_list(largest: &[(String, u64)]) -> String {
    largest
        .iter()
        .map(|(path, size)| format!("{path} ({})", human_size(*size)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `12 B`, `3.4 KiB`, `40.0 MiB`, `1.2 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The largest files of a report, for messages: `big.bin (40.0 MiB), data/a (2.0 MiB)`.
pub fn describe_largest(report: &Report) -> String {
    largest_list(&report.largest)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let dir =
                std::env::temp_dir().join(format!("windlass-snap-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }

        fn file(&self, rel: &str, content: &str) {
            let path = self.0.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }

        fn paths(&self, skip: &[PathBuf]) -> Vec<String> {
            walk(&self.0, skip)
                .unwrap()
                .files
                .into_iter()
                .map(|f| f.path)
                .collect()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn defaults_leave_out_dot_files_target_and_the_store() {
        let d = Dir::new("defaults");
        d.file("blueprint.yaml", "x");
        d.file("scripts/create.sh", "x");
        d.file(".git/config", "x");
        d.file(".env", "x");
        d.file("target/debug/big", "x");
        d.file("state.db", "x");
        let store = std::fs::canonicalize(d.0.join("state.db")).unwrap();
        assert_eq!(
            d.paths(&[store]),
            ["blueprint.yaml", "scripts/create.sh"],
            "walk found"
        );
    }

    #[test]
    fn the_ignore_file_excludes_and_re_includes() {
        let d = Dir::new("ignore");
        d.file("blueprint.yaml", "x");
        d.file("build/out.o", "x");
        d.file("data/a.csv", "x");
        d.file("data/keep.csv", "x");
        d.file("sub/data/b.csv", "x");
        d.file(".env", "x");
        d.file(
            IGNORE_FILE,
            "# build output\nbuild/\n/data/*.csv\n!keep.csv\n!.env\n",
        );
        assert_eq!(
            d.paths(&[]),
            [".env", "blueprint.yaml", "data/keep.csv", "sub/data/b.csv"]
        );
    }

    #[test]
    fn files_are_hashed_with_their_mode_and_size() {
        let d = Dir::new("hash");
        d.file("a", "abc");
        let snapshot = walk(&d.0, &[]).unwrap();
        let f = &snapshot.files[0];
        assert_eq!(
            f.hash,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!((f.size, f.source.clone()), (3, d.0.join("a")));
        let report = Report::new(
            &snapshot,
            Stored {
                new_files: 1,
                new_bytes: 3,
            },
        );
        assert_eq!((report.files, report.bytes), (1, 3));
        assert!(!report.is_large());
    }

    #[test]
    fn a_snapshot_over_the_limit_is_refused_before_any_file_is_read() {
        let d = Dir::new("limit");
        d.file("blueprint.yaml", "x");
        // Sparse: the size is checked before anything is read.
        let big = std::fs::File::create(d.0.join("huge.img")).unwrap();
        big.set_len(MAX_BYTES + 1).unwrap();
        let err = walk(&d.0, &[]).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, SnapshotError::TooLarge { files: 2, .. }),
            "{text}"
        );
        assert!(text.contains("huge.img (1.0 GiB)"), "{text}");
        assert!(text.contains(IGNORE_FILE), "{text}");
        d.file(IGNORE_FILE, "*.img\n");
        assert_eq!(d.paths(&[]), ["blueprint.yaml"]);
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(12), "12 B");
        assert_eq!(human_size(40 << 20), "40.0 MiB");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
    }
}
