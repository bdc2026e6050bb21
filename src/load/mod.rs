//! Load: files → spanned YAML documents, imports resolved.
//!
//! `load_file` reads the main blueprint, parses it into a [`yaml::Node`] tree and follows its
//! `imports` depth-first: relative paths (against the importing file), Cloudify's built-in types
//! by any of their URLs (cut down to what the main file's DSL version has), `plugin:NAME` for shipped plugins, and `ns--…` namespaces. Each file is
//! loaded once per namespace, so import cycles are harmless. Remote URLs are refused with a clear
//! error: loading never touches the network. The output is a flat list of [`Document`]s, main
//! file first, which the DSL stage merges; every problem found is collected, not just the first.

pub mod builtin;
pub mod source;
pub mod yaml;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Diagnostics};
use source::{FileId, Loc, Sources};
use yaml::Node;

/// One parsed file and the namespace its names live in.
#[derive(Debug, Clone)]
pub struct Document {
    pub file: FileId,
    pub root: Node,
    /// `Some("ns")` when imported as `ns--…` (nested namespaces joined with `--`).
    pub namespace: Option<String>,
    /// The file the user named; only it must carry `tosca_definitions_version`.
    pub is_main: bool,
}

/// Every document of a blueprint and the sources their locations point into.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub sources: Sources,
    pub documents: Vec<Document>,
    /// Directory of the main file: scripts and relative resources are resolved against it.
    pub root_dir: PathBuf,
}

/// Why a blueprint could not be loaded at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read blueprint {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Load the main file and everything it imports. `Err` only when the main file cannot be read;
/// every other problem is a diagnostic, returned with what could be loaded.
pub fn load_file(path: &Path) -> Result<(Loaded, Diagnostics), LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(load_str(path, &text))
}

/// Load from text already in memory; `path` names the file and anchors relative imports.
pub fn load_str(path: &Path, text: &str) -> (Loaded, Diagnostics) {
    let root_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut loader = Loader {
        sources: Sources::default(),
        documents: Vec::new(),
        seen: HashSet::new(),
        diags: Diagnostics::default(),
        main_version: None,
    };
    let origin = Origin::File(canonical(path));
    loader.seen.insert((origin.clone(), None));
    loader.add(
        origin,
        path.display().to_string(),
        text.to_string(),
        None,
        true,
    );
    let Loader {
        sources,
        documents,
        diags,
        ..
    } = loader;
    (
        Loaded {
            sources,
            documents,
            root_dir,
        },
        diags,
    )
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Origin {
    File(PathBuf),
    Builtin(&'static str),
}

struct Loader {
    sources: Sources,
    documents: Vec<Document>,
    seen: HashSet<(Origin, Option<String>)>,
    diags: Diagnostics,
    /// The main file's `tosca_definitions_version`: picks what the built-in types offer.
    main_version: Option<String>,
}

impl Loader {
    fn add(
        &mut self,
        origin: Origin,
        name: String,
        text: String,
        namespace: Option<String>,
        is_main: bool,
    ) {
        let is_builtin_types = name == builtin::CLOUDIFY_TYPES_NAME;
        let file = self.sources.add(name, text);
        let text = self.sources.get(file).text.clone();
        let parsed = yaml::parse_with_warnings(file, &text).map(|(mut root, warnings)| {
            for w in warnings {
                self.diags.warn(Diagnostic::new(w.loc, w.message));
            }
            if is_main {
                self.main_version = root
                    .get("tosca_definitions_version")
                    .and_then(Node::as_str)
                    .map(str::to_string);
            }
            if is_builtin_types {
                builtin::apply_version_gates(&mut root, self.main_version.as_deref());
            }
            root
        });
        let root = match parsed {
            Ok(root) => root,
            Err(e) => {
                self.diags.push(Diagnostic::new(
                    e.loc,
                    format!("invalid YAML: {}", e.message),
                ));
                return;
            }
        };
        let imports = collect_imports(&root, &mut self.diags);
        self.documents.push(Document {
            file,
            root,
            namespace: namespace.clone(),
            is_main,
        });
        for (import, loc) in imports {
            self.import(&origin, &import, loc, namespace.clone());
        }
    }

    fn import(&mut self, from: &Origin, import: &str, loc: Loc, namespace: Option<String>) {
        // `ns--target`: the names of target live under `ns--` (nested inside any outer one).
        if let Some((ns, rest)) = import.split_once("--")
            && !ns.is_empty()
            && !ns.contains('/')
            && !ns.contains(':')
        {
            let ns = match namespace {
                Some(outer) => format!("{outer}--{ns}"),
                None => ns.to_string(),
            };
            return self.import(from, rest, loc, Some(ns));
        }
        let resolved = if builtin::is_cloudify_types(import) {
            Ok((
                Origin::Builtin(builtin::CLOUDIFY_TYPES_NAME),
                builtin::CLOUDIFY_TYPES_NAME.to_string(),
                builtin::CLOUDIFY_TYPES,
            ))
        } else if let Some(plugin) = builtin::plugin(import) {
            match plugin {
                Ok(p) => Ok((Origin::Builtin(p.file), p.file.to_string(), p.yaml)),
                Err(name) => Err(Diagnostic::new(
                    loc,
                    format!("plugin `{name}` is not shipped with windlass"),
                )
                .with_help(format!(
                    "shipped plugins: {}",
                    builtin::PLUGINS
                        .iter()
                        .map(|p| p.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            }
        } else if import.contains("://") {
            Err(Diagnostic::new(
                loc,
                format!("cannot import `{import}`: windlass does not fetch remote imports"),
            )
            .with_help(
                "import Cloudify's types by their usual URL or `cloudify/types/types.yaml`, shipped plugins as `plugin:NAME`, and other files by a path relative to the blueprint",
            ))
        } else {
            return self.import_file(from, import, loc, namespace);
        };
        match resolved {
            Ok((origin, name, text)) => {
                // Built-in files define only `cloudify.*` names, which namespaces never prefix:
                // one copy serves every namespace.
                let namespace = None;
                if self.seen.insert((origin.clone(), namespace.clone())) {
                    self.add(origin, name, text.to_string(), namespace, false);
                }
            }
            Err(d) => self.diags.push(d),
        }
    }

    fn import_file(&mut self, from: &Origin, import: &str, loc: Loc, namespace: Option<String>) {
        let base = match from {
            Origin::File(p) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
            Origin::Builtin(_) => {
                self.diags.push(Diagnostic::new(
                    loc,
                    format!("a built-in type file cannot import the file `{import}`"),
                ));
                return;
            }
        };
        let path = base.join(import);
        let origin = Origin::File(canonical(&path));
        if !self.seen.insert((origin.clone(), namespace.clone())) {
            return;
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => self.add(origin, display_path(&path), text, namespace, false),
            Err(e) => self.diags.push(
                Diagnostic::new(loc, format!("cannot import `{import}`: {e}"))
                    .with_help(format!("looked for {}", path.display())),
            ),
        }
    }
}

/// A path as users should read it: relative to the working directory when inside it.
fn display_path(path: &Path) -> String {
    let path = canonical(path);
    std::env::current_dir()
        .ok()
        .map(|d| canonical(&d))
        .and_then(|d| path.strip_prefix(d).ok().map(Path::to_path_buf))
        .unwrap_or(path)
        .display()
        .to_string()
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The `imports:` list of a document, each entry with its location.
fn collect_imports(root: &Node, diags: &mut Diagnostics) -> Vec<(String, Loc)> {
    let Some(imports) = root.get("imports") else {
        return Vec::new();
    };
    match &imports.value {
        yaml::Value::Null => Vec::new(),
        yaml::Value::Seq(items) => items
            .iter()
            .filter_map(|item| match item.as_str() {
                Some(s) => Some((s.to_string(), item.loc)),
                None => {
                    diags.error(
                        item.loc,
                        format!(
                            "an import must be a string, found a {}",
                            item.value.kind_name()
                        ),
                    );
                    None
                }
            })
            .collect(),
        other => {
            diags.error(
                imports.loc,
                format!("`imports` must be a list, found a {}", other.kind_name()),
            );
            Vec::new()
        }
    }
}
