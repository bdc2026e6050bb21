//! kubectl command lines for the 2016 plugin's master, and what their JSON output means.
//!
//! The legacy plugin runs `kubectl` on the Kubernetes master over SSH: a command line is a
//! string the remote shell parses, so every argument that is not plainly safe is single-quoted
//! here ([`quote`]); descriptors never go on the command line, they go on standard input
//! (`-f -`). Output is read with `-o json`: [`applied_objects`] turns what `kubectl apply -o
//! json` prints (one object, or a `List` of them) into [`Applied`] records, and [`replicas`]
//! reads a Deployment's `spec.replicas` from `kubectl get deployment NAME -o json`.
//!
//! Nothing here connects anywhere: building and parsing only, so it is all unit-tested.

use serde_json::{Map, Value as Json, json};

/// What kubectl printed could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubectlError {
    #[error("`{command}` printed no JSON kubectl output could be read from: {reason}")]
    NotJson { command: String, reason: String },
    #[error("`{command}` printed {what}, which has no {field}")]
    Missing {
        command: String,
        what: String,
        field: &'static str,
    },
}

/// One object kubectl applied: enough to find it again (to delete it, to scale it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// A Deployment's `spec.replicas` as applied (Kubernetes' default, 1, when unset).
    pub replicas: Option<i64>,
}

impl Applied {
    /// The runtime-property form: `{apiVersion, kind, name, namespace, replicas}` (the last two
    /// only when known).
    pub fn to_json(&self) -> Json {
        let mut m = Map::new();
        m.insert("apiVersion".into(), json!(self.api_version));
        m.insert("kind".into(), json!(self.kind));
        m.insert("name".into(), json!(self.name));
        if let Some(ns) = &self.namespace {
            m.insert("namespace".into(), json!(ns));
        }
        if let Some(r) = self.replicas {
            m.insert("replicas".into(), json!(r));
        }
        Json::Object(m)
    }

    /// Back from [`Applied::to_json`]; `None` when a field is missing.
    pub fn from_json(v: &Json) -> Option<Applied> {
        let text = |k: &str| v.get(k).and_then(Json::as_str).map(str::to_string);
        Some(Applied {
            api_version: text("apiVersion")?,
            kind: text("kind")?,
            name: text("name")?,
            namespace: text("namespace"),
            replicas: v.get("replicas").and_then(Json::as_i64),
        })
    }

    /// A minimal descriptor naming this object (for `kubectl delete -f -`).
    pub fn stub(&self) -> Json {
        let mut metadata = Map::new();
        metadata.insert("name".into(), json!(self.name));
        if let Some(ns) = &self.namespace {
            metadata.insert("namespace".into(), json!(ns));
        }
        json!({"apiVersion": self.api_version, "kind": self.kind, "metadata": metadata})
    }

    /// What it is called in messages: `Deployment default/nodejs`.
    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// `s` as one word of a POSIX shell command line: unchanged when it only holds characters no
/// shell treats specially, else in single quotes (a `'` inside becomes `'\''`).
pub fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '=' | ':' | ',' | '+')
        });
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `kubectl ARGS…`, each argument quoted.
pub fn command(args: &[&str]) -> String {
    let mut line = "kubectl".to_string();
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    line
}

/// The namespace flag, when one is given.
fn namespace_args(namespace: Option<&str>) -> Vec<String> {
    namespace
        .filter(|n| !n.is_empty())
        .map(|n| vec!["--namespace".to_string(), n.to_string()])
        .unwrap_or_default()
}

/// Apply the objects given on standard input, printing them back as JSON.
pub fn apply() -> String {
    command(&["apply", "-f", "-", "-o", "json"])
}

/// Delete the objects given on standard input; objects already gone are fine.
pub fn delete() -> String {
    command(&["delete", "-f", "-", "--ignore-not-found=true"])
}

/// Read a Deployment as JSON.
pub fn get_deployment(name: &str, namespace: Option<&str>) -> String {
    let ns = namespace_args(namespace);
    let mut args = vec!["get", "deployment", name, "-o", "json"];
    args.extend(ns.iter().map(String::as_str));
    command(&args)
}

/// Set a Deployment's replica count.
pub fn scale_deployment(name: &str, namespace: Option<&str>, replicas: i64) -> String {
    let ns = namespace_args(namespace);
    let count = format!("--replicas={replicas}");
    let mut args = vec!["scale", "deployment", name, count.as_str()];
    args.extend(ns.iter().map(String::as_str));
    command(&args)
}

/// Descriptors as kubectl reads them on standard input: one JSON document each, `---` between.
pub fn stdin_documents(objects: &[Json]) -> Vec<u8> {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&o.to_string());
        out.push('\n');
    }
    out.into_bytes()
}

fn parse(command: &str, stdout: &str) -> Result<Json, KubectlError> {
    serde_json::from_str(stdout).map_err(|e| KubectlError::NotJson {
        command: command.to_string(),
        reason: e.to_string(),
    })
}

/// What `kubectl apply -o json` printed: one object, or a `List` whose `items` are the objects.
pub fn applied_objects(command: &str, stdout: &str) -> Result<Vec<Applied>, KubectlError> {
    let value = parse(command, stdout)?;
    let items: Vec<&Json> = if value.get("kind").and_then(Json::as_str) == Some("List") {
        value
            .get("items")
            .and_then(Json::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    } else {
        vec![&value]
    };
    items
        .into_iter()
        .map(|o| applied(o).map_err(|field| missing(command, o, field)))
        .collect()
}

/// An object (a descriptor, or what the API returned) as an [`Applied`] record; the name of the
/// missing field otherwise.
pub fn applied(o: &Json) -> Result<Applied, &'static str> {
    let text = |v: Option<&Json>| v.and_then(Json::as_str).map(str::to_string);
    let kind = text(o.get("kind")).ok_or("kind")?;
    let replicas = (kind == "Deployment").then(|| {
        o.pointer("/spec/replicas")
            .and_then(Json::as_i64)
            .unwrap_or(1)
    });
    Ok(Applied {
        api_version: text(o.get("apiVersion")).ok_or("apiVersion")?,
        name: text(o.pointer("/metadata/name")).ok_or("metadata.name")?,
        namespace: text(o.pointer("/metadata/namespace")),
        kind,
        replicas,
    })
}

fn missing(command: &str, o: &Json, field: &'static str) -> KubectlError {
    let what = match (o.get("kind").and_then(Json::as_str), o) {
        (Some(k), _) => format!("a {k}"),
        (None, Json::Object(_)) => "an object".to_string(),
        (None, _) => "something other than an object".to_string(),
    };
    KubectlError::Missing {
        command: command.to_string(),
        what,
        field,
    }
}

/// `spec.replicas` of the Deployment `kubectl get deployment NAME -o json` printed (1 when the
/// field is unset, Kubernetes' default).
pub fn replicas(command: &str, stdout: &str) -> Result<i64, KubectlError> {
    let value = parse(command, stdout)?;
    if value.get("kind").and_then(Json::as_str) != Some("Deployment") {
        return Err(missing(command, &value, "kind: Deployment"));
    }
    match value.pointer("/spec/replicas") {
        None | Some(Json::Null) => Ok(1),
        Some(v) => v
            .as_i64()
            .ok_or_else(|| missing(command, &value, "integer spec.replicas")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(quote("nodejs"), "nodejs");
        assert_eq!(quote("--replicas=3"), "--replicas=3");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("x;rm -rf /"), "'x;rm -rf /'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(id)"), "'$(id)'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn commands_quote_names() {
        assert_eq!(apply(), "kubectl apply -f - -o json");
        assert_eq!(delete(), "kubectl delete -f - --ignore-not-found=true");
        assert_eq!(
            get_deployment("web", Some("shop")),
            "kubectl get deployment web -o json --namespace shop"
        );
        assert_eq!(
            scale_deployment("we b", None, 3),
            "kubectl scale deployment 'we b' --replicas=3"
        );
    }

    #[test]
    fn one_object_or_a_list() {
        let one = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"n","namespace":"default"},"spec":{"replicas":2}}"#;
        assert_eq!(
            applied_objects("c", one).unwrap(),
            [Applied {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: "n".into(),
                namespace: Some("default".into()),
                replicas: Some(2),
            }]
        );
        let list = r#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"s","namespace":"a"}},
            {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}]}"#;
        let got = applied_objects("c", list).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].label(), "Service a/s");
        assert_eq!(got[1].label(), "Namespace a");
        assert_eq!(got[1].replicas, None);
    }

    #[test]
    fn records_round_trip_and_stubs_name_the_object() {
        let a = Applied {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "n".into(),
            namespace: Some("x".into()),
            replicas: Some(1),
        };
        assert_eq!(Applied::from_json(&a.to_json()), Some(a.clone()));
        assert_eq!(
            a.stub(),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "n", "namespace": "x"}})
        );
    }

    #[test]
    fn bad_output_is_an_error_naming_the_command() {
        let e = applied_objects("kubectl apply", "error: oops").unwrap_err();
        assert!(e.to_string().starts_with("`kubectl apply` printed no JSON"));
        let e = applied_objects("c", r#"{"kind":"Service","metadata":{"name":"s"}}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`c` printed a Service, which has no apiVersion"
        );
    }

    #[test]
    fn replicas_default_to_one() {
        let d = |spec: &str| format!(r#"{{"kind":"Deployment","spec":{spec}}}"#);
        assert_eq!(replicas("c", &d(r#"{"replicas":4}"#)).unwrap(), 4);
        assert_eq!(replicas("c", &d("{}")).unwrap(), 1);
        assert!(replicas("c", &d(r#"{"replicas":"x"}"#)).is_err());
        assert!(replicas("c", r#"{"kind":"Pod"}"#).is_err());
    }

    #[test]
    fn stdin_separates_documents() {
        let s = stdin_documents(&[json!({"a": 1}), json!({"b": 2})]);
        assert_eq!(
            String::from_utf8(s).unwrap(),
            "---\n{\"a\":1}\n---\n{\"b\":2}\n"
        );
    }
}
