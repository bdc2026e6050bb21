//! Source files and locations.
//!
//! Owns the text of every file a blueprint was read from (the main file, its imports and the
//! built-in type files) and the `Loc` type that every parsed value carries. A `Loc` is four
//! integers; turning it into `file:line:col` or a source snippet needs the `Sources` it came from,
//! which is why diagnostics are rendered only at the edge (see `crate::diag`).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Index of a file inside one `Sources`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub struct FileId(pub u32);

/// Where a value was written: file, 1-based line and column, byte offset and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Loc {
    pub file: FileId,
    pub line: u32,
    pub col: u32,
    pub offset: u32,
    pub len: u32,
}

impl Loc {
    /// True for locations of values that were not written anywhere (defaults, generated values).
    pub fn is_unknown(&self) -> bool {
        self.line == 0
    }
}

/// One loaded file: the name shown to users and its text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub name: String,
    pub text: Arc<str>,
}

/// Every file read while loading one blueprint, indexed by `FileId`.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    files: Vec<SourceFile>,
}

impl Sources {
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<Arc<str>>) -> FileId {
        self.files.push(SourceFile {
            name: name.into(),
            text: text.into(),
        });
        FileId(self.files.len() as u32 - 1)
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    /// `file:line:col` for a location, or just the file name when the position is unknown.
    pub fn describe(&self, loc: Loc) -> Described<'_> {
        Described { sources: self, loc }
    }
}

/// Display adapter returned by [`Sources::describe`].
pub struct Described<'a> {
    sources: &'a Sources,
    loc: Loc,
}

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.sources.get(self.loc.file).name;
        if self.loc.is_unknown() {
            write!(f, "{name}")
        } else {
            write!(f, "{name}:{}:{}", self.loc.line, self.loc.col)
        }
    }
}
