//! The key file: 32 random bytes that encrypt every secret of every state file of one user.
//!
//! Where: `WINDLASS_SECRETS_KEY` if set, else `$XDG_CONFIG_HOME/windlass/secrets.key`, else
//! `~/.config/windlass/secrets.key`. It is made on first use by `windlass secrets set` only
//! (reading never makes one): written under a temporary name opened with `O_EXCL` and mode
//! 0600, synced, then hard-linked into place, which fails if a key is there already — so a key
//! is never half-written and never overwritten, even by two processes racing. A key file that
//! is not a regular file, not 32 bytes long, or readable or writable by group or others is
//! refused, with what to do.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::SecretError;
use super::cipher::{Cipher, KEY_LEN, random};

/// The environment variable naming the key file.
pub const KEY_ENV: &str = "WINDLASS_SECRETS_KEY";

/// Where the key file is (it may not exist yet).
pub fn key_path() -> Result<PathBuf, SecretError> {
    if let Some(p) = std::env::var_os(KEY_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })
        .ok_or(SecretError::NoKeyPath)?;
    Ok(base.join("windlass").join("secrets.key"))
}

/// A loaded key and the file it came from (for messages).
pub struct Key {
    pub path: PathBuf,
    pub cipher: Cipher,
}

impl Key {
    /// The key at `path`; an error when there is none.
    pub fn load(path: &Path) -> Result<Key, SecretError> {
        let io = |source| SecretError::KeyIo {
            path: path.to_path_buf(),
            source,
        };
        let mut file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SecretError::KeyMissing(path.to_path_buf()));
            }
            Err(e) => return Err(io(e)),
        };
        // Checked on the open file, so the checks and the read see the same file.
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(SecretError::KeyNotFile(path.to_path_buf()));
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretError::KeyPermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        if meta.len() != KEY_LEN as u64 {
            return Err(SecretError::KeySize {
                path: path.to_path_buf(),
                size: meta.len(),
            });
        }
        let mut bytes = [0u8; KEY_LEN];
        file.read_exact(&mut bytes).map_err(io)?;
        let cipher = Cipher::new(&bytes);
        bytes.fill(0);
        Ok(Key {
            path: path.to_path_buf(),
            cipher,
        })
    }

    /// The key at `path`, made first if there is none.
    pub fn load_or_create(path: &Path) -> Result<Key, SecretError> {
        match Key::load(path) {
            Err(SecretError::KeyMissing(_)) => {}
            other => return other,
        }
        create(path)?;
        Key::load(path)
    }
}

/// Write a new key at `path` unless one appears there first (then that one is kept).
fn create(path: &Path) -> Result<(), SecretError> {
    let io = |source| SecretError::KeyIo {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    let mut bytes = [0u8; KEY_LEN];
    random(&mut bytes).map_err(|_| SecretError::Random)?;
    let name = path.file_name().map_or_else(
        || "secrets.key".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut suffix = [0u8; 8];
    random(&mut suffix).map_err(|_| SecretError::Random)?;
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        u64::from_le_bytes(suffix)
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()
    })();
    bytes.fill(0);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        }
        // Another process made one meanwhile: that one is the key.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_key_is_made_once_private_and_checked() {
        let dir = std::env::temp_dir().join(format!("windlass-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub/secrets.key");
        assert!(matches!(Key::load(&path), Err(SecretError::KeyMissing(_))));
        Key::load_or_create(&path).unwrap();
        let first = std::fs::read(&path).unwrap();
        assert_eq!(first.len(), KEY_LEN);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        Key::load_or_create(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), first, "never overwritten");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Key::load(&path),
            Err(SecretError::KeyPermissions { mode: 0o644, .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(
            Key::load(&path),
            Err(SecretError::KeySize { size: 5, .. })
        ));
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1,
            "no temporary file is left"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
