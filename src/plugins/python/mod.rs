//! Python operation scripts as Cloudify's script plugin runs them.
//!
//! Cloudify evaluates a `.py` operation script inside its own interpreter with `cloudify.ctx`
//! bound to the operation. windlass ships a `cloudify` package of its own (the files beside
//! this module, compiled into the binary), writes it once per execution next to the blueprint
//! files, and runs `python3 -m cloudify._runner SCRIPT` with that directory on `PYTHONPATH`.
//! The runner executes the script as `__main__`; the package reads the operation's context
//! through the operation's ctx socket ([`super::ctx`], command `operation-context`) and sends
//! logs, runtime properties and the way the script ended back over it. This module owns the
//! package's files, where they are written and how the interpreter is found; it never talks to
//! the script itself.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The package's files: path under the package directory, contents.
const PACKAGE: &[(&str, &str)] = &[
    ("cloudify/__init__.py", include_str!("cloudify/__init__.py")),
    ("cloudify/_runner.py", include_str!("cloudify/_runner.py")),
    (
        "cloudify/_windlass.py",
        include_str!("cloudify/_windlass.py"),
    ),
    (
        "cloudify/decorators.py",
        include_str!("cloudify/decorators.py"),
    ),
    (
        "cloudify/exceptions.py",
        include_str!("cloudify/exceptions.py"),
    ),
    ("cloudify/manager.py", include_str!("cloudify/manager.py")),
    ("cloudify/state.py", include_str!("cloudify/state.py")),
];

/// The module `python3 -m` runs.
pub const RUNNER_MODULE: &str = "cloudify._runner";

#[derive(Debug, thiserror::Error)]
pub enum PythonError {
    #[error(
        "`{script}` is a Python script and there is no `python3` on PATH: install Python 3 (windlass runs `.py` operation scripts with it)"
    )]
    NoInterpreter { script: String },
    #[error("cannot write the `cloudify` Python package to {}: {source}", path.display())]
    Package {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The directory holding the package, beside an execution's blueprint files.
pub fn package_dir(resources: &Path) -> PathBuf {
    resources.parent().unwrap_or(resources).join("python")
}

/// Write the package under `dir` unless it is there already. Each file is written under a
/// temporary name and renamed, so operations starting at once never read half a file.
pub fn write_package(dir: &Path) -> Result<(), PythonError> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    for (name, contents) in PACKAGE {
        let path = dir.join(name);
        if std::fs::read(&path).is_ok_and(|b| b == contents.as_bytes()) {
            continue;
        }
        let err = |source| PythonError::Package {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
        std::fs::write(&tmp, contents).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)?;
    }
    Ok(())
}

/// `python3` as found on `path` (the PATH the script gets).
pub fn interpreter(path: Option<&std::ffi::OsStr>, script: &str) -> Result<PathBuf, PythonError> {
    use std::os::unix::fs::PermissionsExt;
    path.into_iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("python3"))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| PythonError::NoInterpreter {
            script: script.to_string(),
        })
}

/// `PYTHONPATH` with the package's directory first.
pub fn python_path(dir: &Path) -> OsString {
    let mut dirs = vec![dir.to_path_buf()];
    if let Some(existing) = std::env::var_os("PYTHONPATH") {
        dirs.extend(std::env::split_paths(&existing));
    }
    std::env::join_paths(dirs).unwrap_or_else(|_| dir.as_os_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_is_written_whole_and_rewritten_only_when_it_differs() {
        let dir = std::env::temp_dir().join(format!("windlass-pypkg-{}", std::process::id()));
        write_package(&dir).unwrap();
        for (name, contents) in PACKAGE {
            assert_eq!(std::fs::read_to_string(dir.join(name)).unwrap(), *contents);
        }
        std::fs::write(dir.join("cloudify/state.py"), "broken").unwrap();
        write_package(&dir).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("cloudify/state.py")).unwrap(),
            PACKAGE
                .iter()
                .find(|(n, _)| *n == "cloudify/state.py")
                .unwrap()
                .1
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_python3_on_the_path_is_a_clear_error() {
        let empty = std::env::temp_dir().join(format!("windlass-nopy-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let err = interpreter(Some(empty.as_os_str()), "scripts/a.py").unwrap_err();
        assert!(err.to_string().contains("no `python3` on PATH"), "{err}");
        std::fs::remove_dir_all(&empty).unwrap();
    }
}
