//! Load: files → spanned YAML documents, imports resolved.
//!
//! `load_file` reads the main blueprint, parses it into a [`yaml::Node`] tree and follows its
//! `imports` depth-first: relative paths (against the importing file), Cloudify's built-in types
//! by any of their URLs (cut down to what the main file's DSL version has), `plugin:NAME` (`?version=…` ignored; also the dict form
//! `- plugin:NAME: {properties}`), and `ns--…` namespaces. Each file is loaded once per
//! namespace, so import cycles are harmless. Remote URLs are refused with a clear error: loading
//! never touches the network. The output is a flat list of [`Document`]s, main file first, which
//! the DSL stage merges; every problem found is collected, not just the first.
//!
//! # The plugin path
//! [`PluginPath`] lists directories laid out as Cloudify plugin source trees (`DIR/NAME/plugin.yaml`).
//! `plugin:NAME` is looked up there, directory by directory, before the plugins windlass ships;
//! a relative import that is not beside its importing file is looked up in each directory as
//! Cloudify's resources root is (`DIR/IMPORT`, `name_<version>.yaml` first). A document read
//! from a plugin directory remembers it ([`Document::plugin`]), so the plugins it declares can
//! be run from there; [`Loaded::imports`] records where every import resolved, for `validate -v`.

pub mod builtin;
pub mod source;
pub mod yaml;

use crate::maps::{HashSet, HashSetExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

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
    /// The plugin directory (on the plugin path) this document was read from.
    pub plugin: Option<PluginDir>,
    /// The properties of a dict-form import (`- plugin:NAME: {props}`), for the plugins it
    /// declares.
    pub import_properties: Option<Node>,
}

/// A plugin's directory on the plugin path: `DIR/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginDir {
    /// The directory's name (`NAME` of `plugin:NAME`).
    pub name: String,
    /// Its absolute path.
    pub dir: PathBuf,
    /// Whether it holds an executable `windlass-plugin` that runs its operations.
    pub runnable: bool,
}

/// The executable in a plugin's directory that runs its operations.
pub const PLUGIN_RUNNER: &str = "windlass-plugin";

impl PluginDir {
    fn at(name: &str, dir: &Path) -> PluginDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = canonical(dir);
        let runnable = std::fs::metadata(dir.join(PLUGIN_RUNNER))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        PluginDir {
            name: name.to_string(),
            dir,
            runnable,
        }
    }
}

/// Where one import resolved, as `validate -v` shows it.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub import: String,
    pub loc: Loc,
    /// The file read (a path, or `<builtin>/…` for a shipped file).
    pub file: String,
}

/// The directories `plugin:NAME` and relative imports are looked up in, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginPath {
    pub dirs: Vec<PathBuf>,
}

/// The environment variable that lists plugin directories (colon-separated).
pub const PLUGINS_ENV: &str = "WINDLASS_PLUGINS";

static INSTALLED_PATH: OnceLock<PluginPath> = OnceLock::new();

impl PluginPath {
    /// The directories of a colon-separated list (empty entries skipped).
    pub fn parse(list: &str) -> PluginPath {
        PluginPath {
            dirs: list
                .split(':')
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .collect(),
        }
    }

    /// Make `path` the plugin path of every blueprint this process loads (the command line
    /// does, once, from `--plugins` / `WINDLASS_PLUGINS`). Later calls change nothing.
    pub fn install(path: PluginPath) {
        let _ = INSTALLED_PATH.set(path);
    }

    /// The installed plugin path, else `WINDLASS_PLUGINS`'s.
    pub fn current() -> PluginPath {
        match INSTALLED_PATH.get() {
            Some(p) => p.clone(),
            None => std::env::var(PLUGINS_ENV)
                .map(|l| PluginPath::parse(&l))
                .unwrap_or_default(),
        }
    }

    /// `DIR/NAME/plugin.yaml` of the first directory that has one.
    fn find_plugin(&self, name: &str) -> Option<(PluginDir, PathBuf)> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return None;
        }
        self.dirs.iter().find_map(|d| {
            let file = d.join(name).join("plugin.yaml");
            file.is_file()
                .then(|| (PluginDir::at(name, &d.join(name)), file))
        })
    }

    /// A relative import as Cloudify's resources root resolves it: `DIR/stem_VERSION.ext`,
    /// then `DIR/IMPORT`, in each directory. The plugin directory is `DIR/FIRST` when the
    /// file lies below one.
    fn find_resource(
        &self,
        import: &str,
        version: Option<&str>,
    ) -> Option<(Option<PluginDir>, PathBuf)> {
        let rel = Path::new(import);
        let versioned = version.and_then(|v| {
            let stem = rel.file_stem()?.to_str()?;
            let name = match rel.extension().and_then(|e| e.to_str()) {
                Some(ext) => format!("{stem}_{v}.{ext}"),
                None => format!("{stem}_{v}"),
            };
            Some(rel.with_file_name(name))
        });
        self.dirs.iter().find_map(|d| {
            let file = versioned
                .iter()
                .map(|v| d.join(v))
                .chain(std::iter::once(d.join(rel)))
                .find(|f| f.is_file())?;
            let first = rel.components().next().and_then(|c| match c {
                std::path::Component::Normal(n) => n.to_str(),
                _ => None,
            });
            let plugin = first
                .filter(|_| rel.components().count() > 1)
                .map(|n| PluginDir::at(n, &d.join(n)));
            Some((plugin, file))
        })
    }
}

/// Every document of a blueprint and the sources their locations point into.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub sources: Sources,
    pub documents: Vec<Document>,
    /// Directory of the main file: scripts and relative resources are resolved against it.
    pub root_dir: PathBuf,
    /// Every import and the file it resolved to, in the order they were followed.
    pub imports: Vec<Resolution>,
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

/// Load the main file and everything it imports, with the process's plugin path
/// ([`PluginPath::current`]). `Err` only when the main file cannot be read; every other
/// problem is a diagnostic, returned with what could be loaded.
pub fn load_file(path: &Path) -> Result<(Loaded, Diagnostics), LoadError> {
    load_file_with(path, &PluginPath::current())
}

/// [`load_file`] with an explicit plugin path.
pub fn load_file_with(
    path: &Path,
    plugin_path: &PluginPath,
) -> Result<(Loaded, Diagnostics), LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let early = EarlyMain::take(path, &text);
    Ok(load_text(path, &text, plugin_path, early))
}

/// Load from text already in memory; `path` names the file and anchors relative imports.
pub fn load_str(path: &Path, text: &str) -> (Loaded, Diagnostics) {
    load_str_with(path, text, &PluginPath::current())
}

/// [`load_str`] with an explicit plugin path.
pub fn load_str_with(path: &Path, text: &str, plugin_path: &PluginPath) -> (Loaded, Diagnostics) {
    load_text(path, text, plugin_path, None)
}

/// [`load_str_with`], with the main file's parse when it was made already ([`EarlyMain`]).
fn load_text(
    path: &Path,
    text: &str,
    plugin_path: &PluginPath,
    early_main: Option<Parsed>,
) -> (Loaded, Diagnostics) {
    let root_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut loader = Loader {
        sources: Sources::default(),
        documents: Vec::new(),
        seen: HashSet::new(),
        diags: Diagnostics::default(),
        main_version: None,
        plugin_path: plugin_path.clone(),
        imports: Vec::new(),
        prefetch: Prefetch::start(text),
        early_main,
    };
    let origin = Origin::File(canonical(path));
    loader.seen.insert((origin.clone(), None));
    loader.add(
        origin,
        path.display().to_string(),
        text.to_string(),
        Placement {
            namespace: None,
            is_main: true,
            plugin: None,
            properties: None,
        },
    );
    let Loader {
        sources,
        documents,
        diags,
        imports,
        ..
    } = loader;
    (
        Loaded {
            sources,
            documents,
            root_dir,
            imports,
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
    /// The main file's `tosca_definitions_version`: picks what the built-in types offer and
    /// which versioned file of a plugin directory an import finds (`name_1_4.yaml`).
    main_version: Option<String>,
    plugin_path: PluginPath,
    imports: Vec<Resolution>,
    /// The built-in types being parsed on another thread while the main file is.
    prefetch: Option<Prefetch>,
    /// The main file's parse, made before the command line was parsed ([`EarlyMain`]).
    early_main: Option<Parsed>,
}

type Parsed = Result<(Node, Vec<yaml::SyntaxError>), yaml::SyntaxError>;

/// Cloudify's built-in types, parsed on a thread of their own as `PREFETCH_FILE`: nearly every
/// blueprint imports them as its first import, which is the file id they get then. Used only
/// when they do get that id; otherwise they are parsed again where they are imported.
struct Prefetch(std::thread::JoinHandle<Parsed>);

const PREFETCH_FILE: FileId = FileId(1);

/// The parse [`prefetch_builtin_types`] started, until a load takes it.
static EARLY: std::sync::Mutex<Option<std::thread::JoinHandle<Parsed>>> =
    std::sync::Mutex::new(None);

/// Start parsing the built-in types now, before anything says which blueprint is loaded: the
/// command line calls this first thing for the commands that load one, so that the parse (a
/// third of a 200-node blueprint's loading) runs while arguments are parsed and the state store
/// opens instead of beside the blueprint's own parse. The next load whose main file may import
/// them takes it ([`Prefetch::start`]); a process that loads none just ends with it. The thread
/// reads nothing but the types' text compiled into the binary.
pub fn prefetch_builtin_types() {
    let Ok(mut early) = EARLY.lock() else { return };
    if early.is_none() {
        *early = Prefetch::spawn().map(|p| p.0);
    }
}

/// The id the main file gets, as the first file of a load.
const MAIN_FILE: FileId = FileId(0);

/// A main file read and parsed on a thread of its own before the command line was parsed, at
/// the path the command line seemed to name (`cli` guesses it from the raw arguments while clap,
/// which takes 0.5 ms, has not run yet). A load uses it only for that very path and only when
/// the text it reads itself is the text that was parsed; otherwise (a wrong guess, a file that
/// changed) it parses as always and the early parse is dropped unused.
pub struct EarlyMain {
    path: PathBuf,
    parse: std::thread::JoinHandle<Option<(String, Parsed)>>,
}

static EARLY_MAIN: std::sync::Mutex<Option<EarlyMain>> = std::sync::Mutex::new(None);

impl EarlyMain {
    /// Start reading and parsing `path` as a main file. The thread reads that one file and
    /// nothing else (no environment, no imports).
    pub fn start(path: PathBuf) {
        let early = path.clone();
        let thread = std::thread::Builder::new()
            .name("blueprint-early".into())
            .spawn(move || {
                let text = std::fs::read_to_string(&early).ok()?;
                let parsed = yaml::parse_with_warnings(MAIN_FILE, &text);
                Some((text, parsed))
            });
        if let (Ok(parse), Ok(mut slot)) = (thread, EARLY_MAIN.lock()) {
            *slot = Some(EarlyMain { path, parse });
        }
    }

    /// The early parse of the main file at `path` whose text is `text`, if there is one. One of
    /// another path stays where it is: no load takes it.
    fn take(path: &Path, text: &str) -> Option<Parsed> {
        let early = {
            let mut slot = EARLY_MAIN.lock().ok()?;
            if slot.as_ref()?.path != path {
                return None;
            }
            slot.take()?
        };
        match early.parse.join() {
            Ok(Some((read, parsed))) if read == text => Some(parsed),
            _ => None,
        }
    }
}

impl Prefetch {
    /// Start parsing when `main` (the main file's text) may import the built-in types; `None`
    /// when it cannot, or no thread can be had. A parse started early is taken instead.
    fn start(main: &str) -> Option<Prefetch> {
        if !main.contains("types.yaml") {
            return None;
        }
        let early = EARLY.lock().ok().and_then(|mut e| e.take());
        early.map(Prefetch).or_else(Prefetch::spawn)
    }

    fn spawn() -> Option<Prefetch> {
        std::thread::Builder::new()
            .name("types-yaml".into())
            .spawn(|| yaml::parse_with_warnings(PREFETCH_FILE, builtin::CLOUDIFY_TYPES))
            .ok()
            .map(Prefetch)
    }

    /// The parse of the built-in types as file `file`, if this one is it.
    fn take(this: &mut Option<Prefetch>, file: FileId) -> Option<Parsed> {
        if file != PREFETCH_FILE {
            return None;
        }
        this.take()?.0.join().ok()
    }
}

/// Where a document sits: its namespace, whether it is the main file, the plugin directory it
/// was read from and its import's properties.
struct Placement {
    namespace: Option<String>,
    is_main: bool,
    plugin: Option<PluginDir>,
    properties: Option<Node>,
}

impl Loader {
    fn add(&mut self, origin: Origin, name: String, text: String, placement: Placement) {
        let Placement {
            namespace,
            is_main,
            plugin,
            properties,
        } = placement;
        let is_builtin_types = name == builtin::CLOUDIFY_TYPES_NAME;
        let file = self.sources.add(name, text);
        let text = self.sources.get(file).text.clone();
        let prefetched = if is_main && file == MAIN_FILE {
            self.early_main.take()
        } else {
            is_builtin_types
                .then(|| Prefetch::take(&mut self.prefetch, file))
                .flatten()
        };
        let parsed = prefetched
            .unwrap_or_else(|| yaml::parse_with_warnings(file, &text))
            .map(|(mut root, warnings)| {
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
            plugin: plugin.clone(),
            import_properties: properties,
        });
        for import in imports {
            let from = From {
                origin: &origin,
                plugin: plugin.as_ref(),
            };
            self.import(&from, import, namespace.clone());
        }
    }

    fn import(&mut self, from: &From<'_>, import: Import, namespace: Option<String>) {
        let Import {
            text: import,
            loc,
            properties,
        } = import;
        let import = import.as_str();
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
            let rest = Import {
                text: rest.to_string(),
                loc,
                properties,
            };
            return self.import(from, rest, Some(ns));
        }
        if let Some(name) = builtin::plugin_name(import)
            && let Some((plugin, path)) = self.plugin_path.find_plugin(name)
        {
            let placement = Placement {
                namespace,
                is_main: false,
                plugin: Some(plugin),
                properties,
            };
            return self.read_file(import, loc, &path, placement);
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
                Err(_) => {
                    Err(self.missing_plugin(builtin::plugin_name(import).unwrap_or(import), loc))
                }
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
            let placement = Placement {
                namespace,
                is_main: false,
                plugin: None,
                properties,
            };
            return self.import_file(from, import, loc, placement);
        };
        match resolved {
            Ok((origin, name, text)) => {
                self.imports.push(Resolution {
                    import: import.to_string(),
                    loc,
                    file: name.clone(),
                });
                // Built-in files define only `cloudify.*` names, which namespaces never prefix:
                // one copy serves every namespace.
                let placement = Placement {
                    namespace: None,
                    is_main: false,
                    plugin: None,
                    properties,
                };
                if self.seen.insert((origin.clone(), None)) {
                    self.add(origin, name, text.to_string(), placement);
                }
            }
            Err(d) => self.diags.push(d),
        }
    }

    /// `plugin:NAME` found neither on the plugin path nor among the shipped plugins: the error
    /// names every directory searched.
    fn missing_plugin(&self, name: &str, loc: Loc) -> Diagnostic {
        let shipped = builtin::PLUGINS
            .iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
            .join(", ");
        let searched = if self.plugin_path.dirs.is_empty() {
            format!(
                "no plugin directories are set (`--plugins DIR` or {PLUGINS_ENV}); shipped plugins: {shipped}"
            )
        } else {
            format!(
                "looked for {}; shipped plugins: {shipped}",
                self.plugin_path
                    .dirs
                    .iter()
                    .map(|d| d.join(name).join("plugin.yaml").display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Diagnostic::new(
            loc,
            format!("plugin `{name}` is neither on the plugin path nor shipped with windlass"),
        )
        .with_help(searched)
    }

    fn import_file(&mut self, from: &From<'_>, import: &str, loc: Loc, mut placement: Placement) {
        let base = match from.origin {
            Origin::File(p) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
            Origin::Builtin(_) => {
                self.diags.push(Diagnostic::new(
                    loc,
                    format!("a built-in type file cannot import the file `{import}`"),
                ));
                return;
            }
        };
        let beside = base.join(import);
        if beside.is_file() || Path::new(import).is_absolute() {
            // A file of a plugin's directory belongs to that plugin.
            placement.plugin = from
                .plugin
                .filter(|p| canonical(&beside).starts_with(&p.dir))
                .cloned();
            return self.read_file(import, loc, &beside, placement);
        }
        if let Some((plugin, path)) = self.plugin_path.find_resource(
            import,
            self.main_version
                .as_deref()
                .and_then(|v| v.strip_prefix("cloudify_dsl_")),
        ) {
            placement.plugin = plugin;
            return self.read_file(import, loc, &path, placement);
        }
        let mut looked = vec![beside.display().to_string()];
        looked.extend(
            self.plugin_path
                .dirs
                .iter()
                .map(|d| d.join(import).display().to_string()),
        );
        let why = match std::fs::metadata(&beside) {
            Ok(_) => "not a file".to_string(),
            Err(e) => e.to_string(),
        };
        self.diags.push(
            Diagnostic::new(loc, format!("cannot import `{import}`: {why}"))
                .with_help(format!("looked for {}", looked.join(", "))),
        );
    }

    /// Read an imported file (once per namespace) and record where the import resolved.
    fn read_file(&mut self, import: &str, loc: Loc, path: &Path, placement: Placement) {
        let origin = Origin::File(canonical(path));
        self.imports.push(Resolution {
            import: import.to_string(),
            loc,
            file: display_path(path),
        });
        if !self
            .seen
            .insert((origin.clone(), placement.namespace.clone()))
        {
            return;
        }
        match std::fs::read_to_string(path) {
            Ok(text) => self.add(origin, display_path(path), text, placement),
            Err(e) => self.diags.push(
                Diagnostic::new(loc, format!("cannot import `{import}`: {e}"))
                    .with_help(format!("looked for {}", path.display())),
            ),
        }
    }
}

/// The importing document, as an import is resolved against it.
struct From<'a> {
    origin: &'a Origin,
    plugin: Option<&'a PluginDir>,
}

/// One entry of `imports:`.
struct Import {
    text: String,
    loc: Loc,
    /// The mapping of a dict-form import.
    properties: Option<Node>,
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

/// The `imports:` list of a document, each entry with its location: strings, and single-entry
/// mappings (`- plugin:NAME: {properties}`) as Cloudify takes them.
fn collect_imports(root: &Node, diags: &mut Diagnostics) -> Vec<Import> {
    let Some(imports) = root.get("imports") else {
        return Vec::new();
    };
    match &imports.value {
        yaml::Value::Null => Vec::new(),
        yaml::Value::Seq(items) => items
            .iter()
            .filter_map(|item| match (&item.value, item.as_str()) {
                (_, Some(s)) => Some(Import {
                    text: s.to_string(),
                    loc: item.loc,
                    properties: None,
                }),
                (yaml::Value::Map(entries), _) if entries.len() == 1 => {
                    let (key, value) = &entries[0];
                    Some(Import {
                        text: key.name.clone(),
                        loc: key.loc,
                        properties: Some(value.clone()),
                    })
                }
                (yaml::Value::Map(_), _) => {
                    diags.error(
                        item.loc,
                        "an import with properties must be a mapping of one entry: `- plugin:NAME: {PROPERTY: VALUE}`",
                    );
                    None
                }
                _ => {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in types as loaded for a 1.3 main file whose `n`th file they are.
    fn types_as_file(n: u32) -> Node {
        let (mut root, _) = yaml::parse_with_warnings(FileId(n), builtin::CLOUDIFY_TYPES)
            .expect("the shipped types parse");
        builtin::apply_version_gates(&mut root, Some("cloudify_dsl_1_3"));
        root
    }

    fn types_document(loaded: &Loaded) -> &Document {
        loaded
            .documents
            .iter()
            .find(|d| loaded.sources.get(d.file).name == builtin::CLOUDIFY_TYPES_NAME)
            .expect("the types are loaded")
    }

    /// The early parse has one slot per process: its tests take turns.
    static EARLY_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn early_main_waiting(path: &Path) -> bool {
        EARLY_MAIN
            .lock()
            .map(|slot| slot.as_ref().is_some_and(|e| e.path == path))
            .unwrap_or(false)
    }

    #[test]
    fn a_main_file_parsed_early_loads_as_one_parsed_in_place() {
        let _turn = EARLY_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join(format!("windlass-early-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let path = dir.join("blueprint.yaml");
        // A duplicate key: the early parse's warnings are the load's too.
        let text = "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\ndescription: a\ndescription: b\nnode_templates: {}\n";
        std::fs::write(&path, text).expect("write");
        EarlyMain::start(path.clone());
        assert!(early_main_waiting(&path));
        let (early, mut early_diags) = load_file(&path).expect("loads");
        // Taken by that load, not left for another.
        assert!(!early_main_waiting(&path));
        let (in_place, in_place_diags) = load_str(&path, text);
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(early.documents[0].root, in_place.documents[0].root);
        assert_eq!(early.documents[0].file, MAIN_FILE);
        assert_eq!(format!("{early_diags:?}"), format!("{in_place_diags:?}"));
        assert_eq!(early_diags.take_warnings().len(), 1);
    }

    #[test]
    fn an_early_parse_of_another_file_or_of_other_text_is_not_used() {
        let _turn = EARLY_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join(format!("windlass-early2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let (guessed, loaded) = (dir.join("guessed.yaml"), dir.join("loaded.yaml"));
        std::fs::write(&guessed, "description: guessed\n").expect("write");
        std::fs::write(&loaded, "description: loaded\n").expect("write");
        EarlyMain::start(guessed.clone());
        let (other, _) = load_file(&loaded).expect("loads");
        assert_eq!(
            other.documents[0]
                .root
                .get("description")
                .and_then(Node::as_str),
            Some("loaded")
        );
        // Still waiting for its own path; the file changes before that load reads it.
        assert!(early_main_waiting(&guessed));
        // Wait for the early read to be over before changing the file under it.
        let early = EARLY_MAIN.lock().expect("lock").take().expect("waiting");
        let parse = early.parse.join().expect("parsed");
        *EARLY_MAIN.lock().expect("lock") = Some(EarlyMain {
            path: guessed.clone(),
            parse: std::thread::spawn(move || parse),
        });
        std::fs::write(&guessed, "description: changed\n").expect("write");
        let (changed, _) = load_file(&guessed).expect("loads");
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(
            changed.documents[0]
                .root
                .get("description")
                .and_then(Node::as_str),
            Some("changed")
        );
    }

    #[test]
    fn types_parsed_ahead_are_what_parsing_them_in_place_gives() {
        let main =
            "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\n";
        let (loaded, diags) = load_str(Path::new("/nowhere/blueprint.yaml"), main);
        assert!(diags.is_empty(), "{diags:?}");
        let types = types_document(&loaded);
        assert_eq!(types.file, PREFETCH_FILE);
        assert_eq!(types.root, types_as_file(PREFETCH_FILE.0));
    }

    #[test]
    fn types_imported_after_another_file_are_parsed_as_that_file() {
        let dir = std::env::temp_dir().join(format!("windlass-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        std::fs::write(dir.join("first.yaml"), "node_types: {}\n").expect("write");
        let main = "tosca_definitions_version: cloudify_dsl_1_3\nimports: [first.yaml, cloudify/types/types.yaml]\n";
        let (loaded, diags) = load_str(&dir.join("blueprint.yaml"), main);
        std::fs::remove_dir_all(&dir).ok();
        assert!(diags.is_empty(), "{diags:?}");
        let types = types_document(&loaded);
        assert_eq!(types.file, FileId(2));
        assert_eq!(types.root, types_as_file(2));
    }
}
