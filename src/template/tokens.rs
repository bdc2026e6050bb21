//! Cloudify's `%{...}` tokens: runtime values written into override strings.
//!
//! Cloudify's legacy Kubernetes plugin replaced `%{management_ip}` with the manager's address
//! and every other `%{EXPR}` with Python's `str(eval("ctx." + EXPR))`. windlass never evaluates:
//! it knows the expressions blueprints use — `management_ip`, `deployment.id`, `node.id`,
//! `instance.id`, and a key path into `node.properties` or `instance.runtime_properties`
//! (written `.KEY`, `['KEY']` or `[0]`, as Python would accept after `eval`) — and looks them up
//! in a [`TokenContext`] the caller fills. Anything else is an error naming the token and the
//! known ones. `@{node,key}` (another node's runtime properties, which needed the manager's REST
//! API) is refused with its own error rather than left in the text.
//!
//! This module owns the token grammar and lookup only; where tokens may appear (inside string
//! literals or as a whole value) is decided by `overrides`.

use serde_json::{Map, Value as Json};

use crate::dsl::values::kind_name;

/// The token forms windlass knows, for "unknown token" messages.
pub const KNOWN_TOKENS: &[&str] = &[
    "%{management_ip}",
    "%{deployment.id}",
    "%{node.id}",
    "%{node.properties.KEY}",
    "%{instance.id}",
    "%{instance.runtime_properties.KEY}",
];

/// The values tokens stand for, filled by the plugin that applies the overrides.
#[derive(Debug, Clone, Default)]
pub struct TokenContext {
    /// The address scripts and containers reach windlass at; `None` when it could not be
    /// resolved (then only `%{management_ip}` fails, with `management_ip_problem` as the reason).
    pub management_ip: Option<String>,
    /// Why the management IP is unknown, shown when a token needs it.
    pub management_ip_problem: Option<String>,
    pub deployment_id: String,
    pub node_id: String,
    pub node_properties: Map<String, Json>,
    pub instance_id: String,
    pub instance_runtime_properties: Map<String, Json>,
}

/// A token that cannot be resolved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TokenError {
    #[error("unknown token `%{{{token}}}`: the known tokens are {}", KNOWN_TOKENS.join(", "))]
    Unknown { token: String },
    #[error(
        "token `%{{{token}}}`: {owner} have no `{at}` ({})",
        list_keys(available)
    )]
    MissingKey {
        token: String,
        /// Whose properties: "node `web`'s properties".
        owner: String,
        /// The key path up to and including the missing step (`labels.tier`).
        at: String,
        /// The missing key.
        missing: String,
        /// The keys that exist where the missing one was looked for.
        available: Vec<String>,
    },
    #[error("token `%{{{token}}}`: {owner} have no `{at}` (the list has {len} item{})", if *len == 1 { "" } else { "s" })]
    IndexOutOfRange {
        token: String,
        owner: String,
        at: String,
        len: usize,
    },
    #[error("token `%{{{token}}}`: `{at}` is {kind}, which has no `{step}`")]
    NotAContainer {
        token: String,
        at: String,
        kind: &'static str,
        step: String,
    },
    #[error("token `%{{{token}}}`: malformed key path: {reason}")]
    MalformedPath { token: String, reason: String },
    #[error("`%{{` without a closing `}}` in `{text}`")]
    Unterminated { text: String },
    #[error(
        "`@{{{token}}}` (another node's runtime properties) is not supported by windlass: pass the value with `get_attribute` in the blueprint instead"
    )]
    OtherNode { token: String },
    #[error("token `%{{management_ip}}`: the management IP is unknown: {reason}")]
    NoManagementIp { reason: String },
}

fn list_keys(keys: &[String]) -> String {
    if keys.is_empty() {
        "nothing is there".to_string()
    } else {
        format!("keys there: {}", keys.join(", "))
    }
}

/// One step of a key path into properties.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(i64),
}

impl TokenContext {
    /// The value of the token whose text between `%{` and `}` is `token`.
    pub fn resolve(&self, token: &str) -> Result<Json, TokenError> {
        let trimmed = token.trim();
        match trimmed {
            "management_ip" => {
                return match &self.management_ip {
                    Some(ip) => Ok(Json::String(ip.clone())),
                    None => Err(TokenError::NoManagementIp {
                        reason: self
                            .management_ip_problem
                            .clone()
                            .unwrap_or_else(|| "it was not given".to_string()),
                    }),
                };
            }
            "deployment.id" => return Ok(Json::String(self.deployment_id.clone())),
            "node.id" => return Ok(Json::String(self.node_id.clone())),
            "instance.id" => return Ok(Json::String(self.instance_id.clone())),
            _ => {}
        }
        let (root, owner, rest) = if let Some(rest) = trimmed.strip_prefix("node.properties") {
            (
                &self.node_properties,
                format!("the properties of node `{}`", self.node_id),
                rest,
            )
        } else if let Some(rest) = trimmed.strip_prefix("instance.runtime_properties") {
            (
                &self.instance_runtime_properties,
                format!("the runtime properties of instance `{}`", self.instance_id),
                rest,
            )
        } else {
            return Err(TokenError::Unknown {
                token: trimmed.to_string(),
            });
        };
        // `node.propertiesX` is not a path into `node.properties`.
        if !(rest.starts_with('.') || rest.starts_with('[')) {
            return Err(TokenError::Unknown {
                token: trimmed.to_string(),
            });
        }
        let steps = parse_path(rest).map_err(|reason| TokenError::MalformedPath {
            token: trimmed.to_string(),
            reason,
        })?;
        lookup(root, &steps, trimmed, &owner)
    }

    /// `text` with every `%{...}` replaced by its value as Python's `str()` would write it
    /// (strings as they are, `True`/`False`/`None`, lists and dicts in Python's notation).
    pub fn substitute(&self, text: &str) -> Result<String, TokenError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        loop {
            let percent = rest.find("%{");
            let at = rest.find("@{");
            let (start, is_other) = match (percent, at) {
                (None, None) => break,
                (Some(p), None) => (p, false),
                (None, Some(a)) => (a, true),
                (Some(p), Some(a)) => (p.min(a), a < p),
            };
            out.push_str(&rest[..start]);
            let inner = &rest[start + 2..];
            let Some(end) = inner.find('}') else {
                return Err(TokenError::Unterminated {
                    text: text.to_string(),
                });
            };
            let token = &inner[..end];
            if is_other {
                return Err(TokenError::OtherNode {
                    token: token.to_string(),
                });
            }
            out.push_str(&python_str(&self.resolve(token)?));
            rest = &inner[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Parses `.a.b['c d'][0]` into steps.
fn parse_path(text: &str) -> Result<Vec<Step>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                i = start;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let key: String = chars[start..i].iter().collect();
                if key.trim().is_empty() {
                    return Err(format!("an empty key after `.` at character {start}"));
                }
                steps.push(Step::Key(key.trim().to_string()));
            }
            '[' => {
                let close = chars[i..]
                    .iter()
                    .position(|&c| c == ']')
                    .map(|p| p + i)
                    .ok_or_else(|| format!("`[` at character {} is not closed", i + 1))?;
                let inside: String = chars[i + 1..close].iter().collect();
                let inside = inside.trim();
                let quoted = (inside.starts_with('\'') && inside.ends_with('\''))
                    || (inside.starts_with('"') && inside.ends_with('"'));
                if quoted && inside.len() >= 2 {
                    steps.push(Step::Key(inside[1..inside.len() - 1].to_string()));
                } else if let Ok(n) = inside.parse::<i64>() {
                    steps.push(Step::Index(n));
                } else {
                    return Err(format!(
                        "`[{inside}]` is neither a quoted key nor an integer index"
                    ));
                }
                i = close + 1;
            }
            c => return Err(format!("unexpected `{c}` at character {}", i + 1)),
        }
    }
    if steps.is_empty() {
        return Err("a key is needed, as in `.KEY` or `['KEY']`".to_string());
    }
    Ok(steps)
}

fn lookup(
    root: &Map<String, Json>,
    steps: &[Step],
    token: &str,
    owner: &str,
) -> Result<Json, TokenError> {
    let mut current: Option<&Json> = None;
    let mut at = String::new();
    for step in steps {
        let before = at.clone();
        match step {
            Step::Key(k) => {
                if !at.is_empty() {
                    at.push('.');
                }
                at.push_str(k);
            }
            Step::Index(n) => at.push_str(&format!("[{n}]")),
        }
        let next = match (step, current) {
            (Step::Key(k), None) => lookup_key(root, k, token, owner, &at)?,
            (Step::Key(k), Some(Json::Object(map))) => lookup_key(map, k, token, owner, &at)?,
            (Step::Index(n), Some(Json::Array(items))) => {
                let len = items.len();
                let index = if *n < 0 { len as i64 + n } else { *n };
                if index < 0 || index >= len as i64 {
                    return Err(TokenError::IndexOutOfRange {
                        token: token.to_string(),
                        owner: owner.to_string(),
                        at,
                        len,
                    });
                }
                &items[index as usize]
            }
            (step, other) => {
                return Err(TokenError::NotAContainer {
                    token: token.to_string(),
                    at: if before.is_empty() {
                        owner.to_string()
                    } else {
                        before
                    },
                    kind: other.map_or("a mapping", kind_name),
                    step: match step {
                        Step::Key(k) => format!("key `{k}`"),
                        Step::Index(n) => format!("item [{n}]"),
                    },
                });
            }
        };
        current = Some(next);
    }
    Ok(current.cloned().unwrap_or(Json::Null))
}

fn lookup_key<'a>(
    map: &'a Map<String, Json>,
    key: &str,
    token: &str,
    owner: &str,
    at: &str,
) -> Result<&'a Json, TokenError> {
    map.get(key).ok_or_else(|| TokenError::MissingKey {
        token: token.to_string(),
        owner: owner.to_string(),
        at: at.to_string(),
        missing: key.to_string(),
        available: map.keys().cloned().collect(),
    })
}

/// A value as Python's `str()` writes it, which is what Cloudify put into override text.
pub fn python_str(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => python_repr(other),
    }
}

fn python_repr(value: &Json) -> String {
    match value {
        Json::Null => "None".to_string(),
        Json::Bool(true) => "True".to_string(),
        Json::Bool(false) => "False".to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) => {
            let mut out = String::with_capacity(s.len() + 2);
            out.push('\'');
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\'' => out.push_str("\\'"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c => out.push(c),
                }
            }
            out.push('\'');
            out
        }
        Json::Array(items) => format!(
            "[{}]",
            items.iter().map(python_repr).collect::<Vec<_>>().join(", ")
        ),
        Json::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!(
                    "{}: {}",
                    python_repr(&Json::String(k.clone())),
                    python_repr(v)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context() -> TokenContext {
        TokenContext {
            management_ip: Some("10.1.2.3".into()),
            management_ip_problem: None,
            deployment_id: "demo".into(),
            node_id: "nodejs".into(),
            node_properties:
                json!({"port": 8080, "labels": {"app": "web"}, "ports": [80, 443], "on": true})
                    .as_object()
                    .cloned()
                    .unwrap(),
            instance_id: "nodejs_a1b2c3".into(),
            instance_runtime_properties: json!({"ip": "192.0.2.7"}).as_object().cloned().unwrap(),
        }
    }

    #[test]
    fn simple_tokens_resolve() {
        let c = context();
        assert_eq!(c.resolve("management_ip").unwrap(), json!("10.1.2.3"));
        assert_eq!(c.resolve("deployment.id").unwrap(), json!("demo"));
        assert_eq!(c.resolve("node.id").unwrap(), json!("nodejs"));
        assert_eq!(c.resolve("instance.id").unwrap(), json!("nodejs_a1b2c3"));
        assert_eq!(
            c.resolve("instance.runtime_properties.ip").unwrap(),
            json!("192.0.2.7")
        );
    }

    #[test]
    fn property_paths_in_dotted_and_python_forms() {
        let c = context();
        assert_eq!(c.resolve("node.properties.port").unwrap(), json!(8080));
        assert_eq!(c.resolve("node.properties['port']").unwrap(), json!(8080));
        assert_eq!(
            c.resolve("node.properties.labels.app").unwrap(),
            json!("web")
        );
        assert_eq!(
            c.resolve("node.properties[\"labels\"]['app']").unwrap(),
            json!("web")
        );
        assert_eq!(c.resolve("node.properties.ports[1]").unwrap(), json!(443));
        assert_eq!(c.resolve("node.properties.ports[-1]").unwrap(), json!(443));
    }

    #[test]
    fn substitute_writes_values_as_python_str() {
        let c = context();
        assert_eq!(
            c.substitute("http://%{management_ip}:%{node.properties.port}/%{deployment.id}")
                .unwrap(),
            "http://10.1.2.3:8080/demo"
        );
        assert_eq!(c.substitute("%{node.properties.on}").unwrap(), "True");
        assert_eq!(
            c.substitute("%{node.properties.labels}").unwrap(),
            "{'app': 'web'}"
        );
        assert_eq!(c.substitute("no tokens").unwrap(), "no tokens");
    }

    #[test]
    fn unknown_token_names_it_and_the_known_ones() {
        let err = context().substitute("x %{manager_ip} y").unwrap_err();
        assert_eq!(
            err,
            TokenError::Unknown {
                token: "manager_ip".into()
            }
        );
        let text = err.to_string();
        assert!(text.contains("`%{manager_ip}`"), "{text}");
        for known in KNOWN_TOKENS {
            assert!(text.contains(known), "{text} lacks {known}");
        }
        assert!(matches!(
            context().resolve("node.propertiesfoo"),
            Err(TokenError::Unknown { .. })
        ));
    }

    #[test]
    fn missing_property_names_the_key_and_what_exists() {
        let err = context()
            .resolve("node.properties.labels.tier")
            .unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, TokenError::MissingKey { missing, available, .. }
                if missing == "tier" && available == &["app".to_string()]),
            "{text}"
        );
        assert_eq!(
            text,
            "token `%{node.properties.labels.tier}`: the properties of node `nodejs` have no \
             `labels.tier` (keys there: app)"
        );
        let err = context().resolve("node.properties.ports[2]").unwrap_err();
        assert!(
            matches!(&err, TokenError::IndexOutOfRange { at, len: 2, .. } if at == "ports[2]"),
            "{err}"
        );
        let err = context().resolve("node.properties.port.x").unwrap_err();
        assert!(
            matches!(
                err,
                TokenError::NotAContainer {
                    kind: "a number",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn malformed_and_unsupported_forms_are_errors() {
        let c = context();
        assert!(matches!(
            c.resolve("node.properties[port]"),
            Err(TokenError::MalformedPath { .. })
        ));
        assert!(matches!(
            c.resolve("node.properties."),
            Err(TokenError::MalformedPath { .. })
        ));
        assert!(matches!(
            c.substitute("a %{node.id"),
            Err(TokenError::Unterminated { .. })
        ));
        assert!(matches!(
            c.substitute("@{kube_master,ip}"),
            Err(TokenError::OtherNode { .. })
        ));
    }

    #[test]
    fn unknown_management_ip_says_why() {
        let c = TokenContext {
            management_ip_problem: Some("no default route".into()),
            ..TokenContext::default()
        };
        let err = c.resolve("management_ip").unwrap_err();
        assert!(err.to_string().contains("no default route"), "{err}");
        // Other tokens still work without it.
        assert_eq!(c.resolve("deployment.id").unwrap(), json!(""));
    }
}
