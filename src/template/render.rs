//! Descriptor files: Jinja rendering and multi-document YAML parsing.
//!
//! A descriptor (a Kubernetes manifest named by `FileDefinedResource.file.resource_path`, or by
//! a legacy `MicroService`'s `config_files`) is read from a file or given as text. Cloudify
//! renders the former with Jinja and its `template_variables`; here minijinja does it, with
//! strict undefined so a misspelt variable is an error, not an empty string (Cloudify's Jinja
//! would have written nothing and let Kubernetes reject the result, or worse, accept it). Auto
//! escaping is off: the output is YAML, not HTML. Legacy `config_files` were never rendered by
//! Cloudify, so [`load_descriptor`] parses without rendering.
//!
//! The text is then parsed as YAML (serde-saphyr), every document one object; empty documents
//! (a trailing `---`) are skipped, any other non-mapping is an error. Every error names the
//! descriptor and the line: for a template error, the line in the descriptor and the variables
//! that were available; for a YAML error, the line in the rendered text.
//!
//! Nothing here reads anything but the one descriptor file, nor knows about Kubernetes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde_json::{Map, Value as Json};
use serde_saphyr::Spanned;

use super::TemplateError;
use crate::dsl::values::kind_name;

/// Where a descriptor comes from.
#[derive(Debug, Clone, Copy)]
pub enum Descriptor<'a> {
    /// A file, named in errors by the path as given.
    File(&'a Path),
    /// Text already in memory (an embedded `config`, a test), named in errors by `name`.
    Text { name: &'a str, text: &'a str },
}

/// A descriptor that cannot be read, rendered or parsed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot read descriptor {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: template syntax error: {message} ({})", at(file, *line), available_text(available))]
    Syntax {
        file: String,
        line: usize,
        message: String,
        available: Vec<String>,
    },
    #[error("{}: {} ({})", at(file, *line), undefined_text(name.as_deref()), available_text(available))]
    Undefined {
        file: String,
        line: usize,
        /// The variable (or `variable.attribute`) that is not defined, when it can be told.
        name: Option<String>,
        available: Vec<String>,
    },
    #[error("{}: template error: {message} ({})", at(file, *line), available_text(available))]
    Template {
        file: String,
        line: usize,
        message: String,
        available: Vec<String>,
    },
    #[error("{}:{column}: {} is not valid YAML: {message}", at(file, *line), if *rendered { "the rendered descriptor" } else { "the descriptor" })]
    Yaml {
        file: String,
        line: usize,
        column: usize,
        message: String,
        /// Whether the line is in the rendered text (it can differ from the file's).
        rendered: bool,
    },
    #[error("{}: document {index} is {kind}, not a mapping: each document of a descriptor is one object", at(file, *line))]
    NotAMapping {
        file: String,
        line: usize,
        /// 1-based, counting non-empty documents.
        index: usize,
        kind: &'static str,
    },
    #[error("{file}: the descriptor holds no object")]
    Empty { file: String },
}

fn at(file: &str, line: usize) -> String {
    if line == 0 {
        file.to_string()
    } else {
        format!("{file}:{line}")
    }
}

fn undefined_text(name: Option<&str>) -> String {
    match name {
        Some(n) => format!("undefined variable `{n}`"),
        None => "undefined value (a variable, attribute or item that does not exist)".to_string(),
    }
}

fn available_text(available: &[String]) -> String {
    if available.is_empty() {
        "no template_variables were given".to_string()
    } else {
        format!("variables available: {}", available.join(", "))
    }
}

/// Renders the descriptor with `vars` and parses every YAML document in the result.
pub fn render_descriptor(
    descriptor: Descriptor<'_>,
    vars: &Map<String, Json>,
) -> Result<Vec<Json>, TemplateError> {
    let (name, text) = read(descriptor)?;
    let rendered = render_text(&name, &text, vars)?;
    Ok(parse_documents(&name, &rendered, true)?)
}

/// Parses every YAML document of the descriptor as it is, without rendering.
pub fn load_descriptor(descriptor: Descriptor<'_>) -> Result<Vec<Json>, TemplateError> {
    let (name, text) = read(descriptor)?;
    Ok(parse_documents(&name, &text, false)?)
}

fn read(descriptor: Descriptor<'_>) -> Result<(String, String), RenderError> {
    match descriptor {
        Descriptor::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| RenderError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            Ok((path.display().to_string(), text))
        }
        Descriptor::Text { name, text } => Ok((name.to_string(), text.to_string())),
    }
}

/// Renders `text` (named `name` in errors) as a Jinja template with strict undefined.
pub fn render_text(
    name: &str,
    text: &str,
    vars: &Map<String, Json>,
) -> Result<String, RenderError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    let available: Vec<String> = vars.keys().cloned().collect();
    let template = env
        .template_from_named_str(name, text)
        .map_err(|e| RenderError::Syntax {
            file: name.to_string(),
            line: e.line().unwrap_or(0),
            message: message(&e),
            available: available.clone(),
        })?;
    template
        .render(minijinja::Value::from(minijinja::value::Serde(vars)))
        .map_err(|e| {
            let line = e.line().unwrap_or(0);
            match e.kind() {
                ErrorKind::UndefinedError => {
                    let globals: HashSet<&str> = env.globals().map(|(n, _)| n).collect();
                    RenderError::Undefined {
                        file: name.to_string(),
                        line,
                        name: culprit(
                            &template.undeclared_variables(true),
                            vars,
                            &globals,
                            text.lines().nth(line.saturating_sub(1)).unwrap_or(""),
                        ),
                        available,
                    }
                }
                ErrorKind::SyntaxError => RenderError::Syntax {
                    file: name.to_string(),
                    line,
                    message: message(&e),
                    available,
                },
                _ => RenderError::Template {
                    file: name.to_string(),
                    line,
                    message: message(&e),
                    available,
                },
            }
        })
}

fn message(e: &minijinja::Error) -> String {
    e.detail()
        .map_or_else(|| e.kind().to_string(), str::to_string)
}

/// The undefined name that made the render fail on `line`: among the names the template reads
/// from outside (`a`, or `a.b` for an attribute), those that `vars` does not hold, preferring
/// one written on the failing line. `None` when it cannot be told (a loop variable's missing
/// attribute, a missing item of a list).
fn culprit(
    undeclared: &HashSet<String>,
    vars: &Map<String, Json>,
    globals: &HashSet<&str>,
    line: &str,
) -> Option<String> {
    let mut missing: Vec<&String> = undeclared
        .iter()
        .filter(|n| {
            let root = n.split('.').next().unwrap_or(n);
            !globals.contains(root) && !resolves(vars, n)
        })
        .collect();
    missing.sort();
    let on_line = |n: &&String| {
        let root = n.split('.').next().unwrap_or(n);
        contains_word(line, root)
    };
    missing
        .iter()
        .find(|n| on_line(n))
        .map(|n| undefined_part(vars, n))
}

/// The dotted name cut after its first step that does not exist (`image.tag.x` → `image.tag`).
fn undefined_part(vars: &Map<String, Json>, dotted: &str) -> String {
    let mut parts = dotted.split('.');
    let root = parts.next().unwrap_or(dotted);
    let mut shown = root.to_string();
    let mut current = match vars.get(root) {
        Some(v) => v,
        None => return shown,
    };
    for part in parts {
        shown.push('.');
        shown.push_str(part);
        match current.get(part) {
            Some(v) => current = v,
            None => return shown,
        }
    }
    shown
}

fn resolves(vars: &Map<String, Json>, dotted: &str) -> bool {
    let mut parts = dotted.split('.');
    let Some(mut current) = parts.next().and_then(|root| vars.get(root)) else {
        return false;
    };
    for part in parts {
        match current.get(part) {
            Some(v) => current = v,
            None => return false,
        }
    }
    true
}

/// Whether `word` occurs in `line` as a whole identifier.
fn contains_word(line: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    line.match_indices(word).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// serde-saphyr's message without the position (the error carries it) or its advice on its own
/// options.
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let full = e.without_snippet().to_string();
    let mut message = full.as_str();
    if let Some(i) = message.rfind(" at line ") {
        message = &message[..i];
    }
    if let Some(i) = message.find(", set DuplicateKeyPolicy") {
        message = &message[..i];
    }
    message.trim_end_matches([',', ' ']).to_string()
}

/// Every YAML document of `text` as a JSON object, empty documents skipped.
pub fn parse_documents(name: &str, text: &str, rendered: bool) -> Result<Vec<Json>, RenderError> {
    let documents: Vec<Spanned<Json>> = serde_saphyr::from_multiple(text).map_err(|e| {
        let location = e.location();
        RenderError::Yaml {
            file: name.to_string(),
            line: location.map_or(0, |l| l.line() as usize),
            column: location.map_or(0, |l| l.column() as usize),
            message: yaml_message(&e),
            rendered,
        }
    })?;
    let mut objects = Vec::with_capacity(documents.len());
    for (i, document) in documents.into_iter().enumerate() {
        match document.value {
            Json::Object(_) => objects.push(document.value),
            other => {
                return Err(RenderError::NotAMapping {
                    file: name.to_string(),
                    line: document.referenced.line() as usize,
                    index: i + 1,
                    kind: kind_name(&other),
                });
            }
        }
    }
    if objects.is_empty() {
        return Err(RenderError::Empty {
            file: name.to_string(),
        });
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(value: Json) -> Map<String, Json> {
        value.as_object().cloned().unwrap()
    }

    fn render(text: &str, v: Json) -> Result<Vec<Json>, TemplateError> {
        render_descriptor(
            Descriptor::Text {
                name: "pod.yaml",
                text,
            },
            &vars(v),
        )
    }

    fn render_error(text: &str, v: Json) -> RenderError {
        match render(text, v) {
            Err(TemplateError::Render(e)) => e,
            other => panic!("expected a render error, got {other:?}"),
        }
    }

    const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ name }}
spec:
  replicas: {{ replicas }}
  template:
    spec:
      containers:
{% for image in images %}
        - name: c{{ loop.index }}
          image: {{ image }}
{% endfor %}
";

    #[test]
    fn renders_variables_loops_and_types() {
        let docs = render(
            DEPLOYMENT,
            json!({"name": "web", "replicas": 2, "images": ["node:20", "diamond"]}),
        )
        .unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0]["metadata"]["name"], json!("web"));
        assert_eq!(docs[0]["spec"]["replicas"], json!(2));
        assert_eq!(
            docs[0]["spec"]["template"]["spec"]["containers"][1],
            json!({"name": "c2", "image": "diamond"})
        );
    }

    #[test]
    fn an_unknown_variable_names_the_line_and_what_was_available() {
        let err = render_error(DEPLOYMENT, json!({"name": "web", "images": []}));
        match &err {
            RenderError::Undefined {
                file,
                line,
                name,
                available,
            } => {
                assert_eq!(file, "pod.yaml");
                assert_eq!(*line, 6);
                assert_eq!(name.as_deref(), Some("replicas"));
                assert_eq!(available, &["name".to_string(), "images".to_string()]);
            }
            other => panic!("{other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.starts_with("pod.yaml:6: undefined variable `replicas`"),
            "{text}"
        );
        assert!(text.contains("variables available: name, images"), "{text}");
    }

    #[test]
    fn a_missing_attribute_is_named_with_its_variable() {
        let err = render_error(
            "a: 1\nimage: {{ image.repo }}:{{ image.tag }}\n",
            json!({"image": {"repo": "node"}}),
        );
        assert!(
            matches!(&err, RenderError::Undefined { line: 2, name: Some(n), .. } if n == "image.tag"),
            "{err:?}"
        );
    }

    #[test]
    fn strict_undefined_also_refuses_tests_on_missing_values() {
        // Lenient Jinja would take a missing variable as false; strict refuses it.
        let err = render_error("{% if verbose %}a: 1{% endif %}\nb: 2\n", json!({}));
        assert!(
            matches!(&err, RenderError::Undefined { line: 1, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("no template_variables were given"),
            "{err}"
        );
        // `is defined` stays the way to make a variable optional.
        let docs = render(
            "{% if verbose is defined %}a: 1{% endif %}\nb: 2\n",
            json!({}),
        )
        .unwrap();
        assert_eq!(docs, vec![json!({"b": 2})]);
    }

    #[test]
    fn a_syntax_error_names_the_line() {
        let err = render_error("a: 1\nb: 2\nc: {{ name \n", json!({"name": "x"}));
        assert!(
            matches!(&err, RenderError::Syntax { line: 3, .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("pod.yaml:3: template syntax error"),
            "{text}"
        );
        assert!(text.contains("variables available: name"), "{text}");
        let err = render_error("{% for x in xs %}\na: 1\n", json!({"xs": []}));
        assert!(matches!(&err, RenderError::Syntax { .. }), "{err:?}");
    }

    #[test]
    fn other_template_errors_carry_the_line() {
        let err = render_error("a: 1\nb: {{ n + 'x' }}\n", json!({"n": 1}));
        assert!(
            matches!(&err, RenderError::Template { line: 2, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn no_html_escaping_in_yaml() {
        let docs = render("a: \"{{ v }}\"\n", json!({"v": "<&>'"})).unwrap();
        assert_eq!(docs[0]["a"], json!("<&>'"));
        let docs = render_descriptor(
            Descriptor::Text {
                name: "x.html",
                text: "a: '{{ v }}'\n",
            },
            &vars(json!({"v": "<b>"})),
        )
        .unwrap();
        assert_eq!(docs[0]["a"], json!("<b>"));
    }

    #[test]
    fn multi_document_files_become_one_object_each() {
        let text = "---\nkind: Deployment\nmetadata: {name: {{ n }}}\n---\nkind: Service\nmetadata: {name: {{ n }}}\n---\n";
        let docs = render(text, json!({"n": "web"})).unwrap();
        assert_eq!(
            docs,
            vec![
                json!({"kind": "Deployment", "metadata": {"name": "web"}}),
                json!({"kind": "Service", "metadata": {"name": "web"}})
            ]
        );
    }

    #[test]
    fn a_document_that_is_not_a_mapping_is_named() {
        let err = render_error("kind: Pod\n---\n- a\n- b\n", json!({}));
        assert!(
            matches!(
                &err,
                RenderError::NotAMapping {
                    index: 2,
                    kind: "a list",
                    line: 3,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("pod.yaml:3: document 2 is a list"),
            "{err}"
        );
        assert!(matches!(
            render_error("# only a comment\n---\n", json!({})),
            RenderError::Empty { .. }
        ));
    }

    #[test]
    fn invalid_yaml_is_located_in_the_rendered_text() {
        let err = render_error("a: 1\nb: [1, 2\nc: 3\n", json!({}));
        match &err {
            RenderError::Yaml { line, rendered, .. } => {
                assert!(*line >= 2, "{err}");
                assert!(*rendered);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            err.to_string()
                .contains("the rendered descriptor is not valid YAML"),
            "{err}"
        );
        assert!(!err.to_string().contains(" at line "), "{err}");
        let err = render_error("a: 1\na: 2\n", json!({}));
        assert_eq!(
            err.to_string(),
            "pod.yaml:2:1: the rendered descriptor is not valid YAML: duplicate mapping key: a"
        );
    }

    #[test]
    fn files_are_read_and_named_by_path() {
        let dir = std::env::temp_dir().join(format!("windlass-render-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("svc.yaml");
        std::fs::write(&path, "kind: Service\nspec:\n  port: {{ port }}\n").unwrap();
        let docs = render_descriptor(Descriptor::File(&path), &vars(json!({"port": 80}))).unwrap();
        assert_eq!(docs[0]["spec"]["port"], json!(80));
        let err = render_descriptor(Descriptor::File(&path), &Map::new()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{}:3: undefined variable `port`", path.display())),
            "{err}"
        );
        let missing = dir.join("missing.yaml");
        assert!(matches!(
            render_descriptor(Descriptor::File(&missing), &Map::new()),
            Err(TemplateError::Render(RenderError::Read { .. }))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_descriptor_does_not_render() {
        let docs = load_descriptor(Descriptor::Text {
            name: "cm.yaml",
            text: "kind: ConfigMap\ndata:\n  tpl: '{{ not_a_variable }}'\n",
        })
        .unwrap();
        assert_eq!(docs[0]["data"]["tpl"], json!("{{ not_a_variable }}"));
    }
}
