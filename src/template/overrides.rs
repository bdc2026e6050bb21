//! Cloudify's override strings, parsed and applied to a parsed descriptor.
//!
//! An override is a Python assignment with the target object left out:
//! `['spec']['template']['spec']['containers'][1]['env'][0]['value'] = '%{management_ip}'`.
//! Cloudify's plugin ran it with `exec("base" + override)`; windlass parses it instead — a
//! subscript path of quoted keys and integer indexes, `=`, and a Python literal (strings in
//! single or double quotes with Python's escapes and `r`/`u` prefixes, adjacent strings joined,
//! ints with `_` and Python 2's `L`, floats, `True`/`False`/`None`, lists, tuples, dicts) — so an
//! override can do nothing but set one value.
//!
//! Flow: [`Override::parse`] gives a path and a literal without looking at any context, so a
//! malformed override is found before anything runs. [`Override::apply`] then resolves `%{...}`
//! tokens (inside string literals, where they become text, as Cloudify's textual substitution
//! did; or as a whole value, `= %{node.properties.replicas}`, where they keep the value's type)
//! and walks the path the way Python's subscripts would: every step but the last must exist, the
//! last may add a key to a mapping (as `d['k'] = v` does) but never an item to a list. The first
//! step that does not exist is named in the error, with what was there instead.

use serde_json::{Map, Value as Json};

use super::tokens::{TokenContext, TokenError};
use crate::dsl::values::kind_name;

/// One parsed override.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    text: String,
    path: Vec<PathStep>,
    value: Literal,
}

#[derive(Debug, Clone, PartialEq)]
enum PathStep {
    /// A string key; may hold `%{...}` tokens.
    Key(String),
    Index(i64),
}

/// A Python literal as written. Strings keep their tokens until `apply`.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Literal>),
    Dict(Vec<(Literal, Literal)>),
    /// A `%{...}` written where a value goes, outside quotes.
    Token(String),
}

/// An override that is malformed or does not fit the descriptor.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("override `{text}`: {kind}")]
pub struct OverrideError {
    /// The override as written.
    pub text: String,
    /// Boxed: token errors make the kind large, and errors travel in every `Result`.
    pub kind: Box<OverrideErrorKind>,
}

/// What is wrong with an override.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OverrideErrorKind {
    /// Not of the form `['key'][0] = literal` (column is 1-based, in characters).
    #[error("column {column}: {message}")]
    Syntax { column: usize, message: String },
    #[error("{at}: no such key; {}", list_keys(available))]
    MissingKey { at: String, available: Vec<String> },
    #[error("{at}: the list has {len} item{}", if *len == 1 { "" } else { "s" })]
    IndexOutOfRange { at: String, len: usize },
    /// A step into a scalar, a key into a list or an index into a mapping.
    #[error("{at}: {container} is {kind}, {hint}")]
    WrongStep {
        at: String,
        container: String,
        kind: &'static str,
        hint: &'static str,
    },
    #[error("{0}")]
    Token(TokenError),
    #[error("{0}")]
    Value(String),
}

fn list_keys(keys: &[String]) -> String {
    if keys.is_empty() {
        "the mapping is empty".to_string()
    } else {
        format!("the mapping has: {}", keys.join(", "))
    }
}

impl Override {
    /// Parses one override string without evaluating anything.
    pub fn parse(text: &str) -> Result<Override, OverrideError> {
        let mut parser = Parser {
            chars: text.chars().collect(),
            pos: 0,
        };
        parser
            .override_()
            .map(|(path, value)| Override {
                text: text.to_string(),
                path,
                value,
            })
            .map_err(|(column, message)| OverrideError {
                text: text.to_string(),
                kind: Box::new(OverrideErrorKind::Syntax { column, message }),
            })
    }

    /// The override as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Sets the value in `doc`, resolving tokens from `tokens`. On error `doc` is unchanged:
    /// the assignment is the last thing done.
    pub fn apply(&self, doc: &mut Json, tokens: &TokenContext) -> Result<(), OverrideError> {
        self.apply_inner(doc, tokens).map_err(|kind| OverrideError {
            text: self.text.clone(),
            kind: Box::new(kind),
        })
    }

    fn apply_inner(&self, doc: &mut Json, tokens: &TokenContext) -> Result<(), OverrideErrorKind> {
        let steps = self
            .path
            .iter()
            .map(|step| match step {
                PathStep::Key(k) => tokens
                    .substitute(k)
                    .map(PathStep::Key)
                    .map_err(OverrideErrorKind::Token),
                PathStep::Index(n) => Ok(PathStep::Index(*n)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let value = to_json(&self.value, tokens)?;
        let mut current = doc;
        let last = steps.len() - 1;
        for (i, step) in steps.iter().enumerate() {
            let at = describe(&steps[..=i]);
            let container = if i == 0 {
                "the descriptor".to_string()
            } else {
                describe(&steps[..i])
            };
            current = match (step, current) {
                (PathStep::Key(k), Json::Object(map)) => {
                    if i == last {
                        map.insert(k.clone(), value);
                        return Ok(());
                    }
                    if !map.contains_key(k) {
                        return Err(OverrideErrorKind::MissingKey {
                            at,
                            available: map.keys().cloned().collect(),
                        });
                    }
                    map.get_mut(k).expect("key checked above")
                }
                (PathStep::Index(n), Json::Array(items)) => {
                    let len = items.len();
                    let index = if *n < 0 { len as i64 + n } else { *n };
                    if index < 0 || index >= len as i64 {
                        return Err(OverrideErrorKind::IndexOutOfRange { at, len });
                    }
                    let slot = &mut items[index as usize];
                    if i == last {
                        *slot = value;
                        return Ok(());
                    }
                    slot
                }
                (PathStep::Key(_), other @ Json::Array(_)) => {
                    return Err(OverrideErrorKind::WrongStep {
                        at,
                        container,
                        kind: kind_name(other),
                        hint: "which takes an index like [0]",
                    });
                }
                (PathStep::Index(_), other @ Json::Object(_)) => {
                    return Err(OverrideErrorKind::WrongStep {
                        at,
                        container,
                        kind: kind_name(other),
                        hint: "which takes a quoted key like ['name']",
                    });
                }
                (_, other) => {
                    return Err(OverrideErrorKind::WrongStep {
                        at,
                        container,
                        kind: kind_name(other),
                        hint: "not a mapping or a list",
                    });
                }
            };
        }
        Ok(())
    }
}

/// Parses every override, then applies them in order to a copy of `doc`, which replaces `doc`
/// only when all succeeded: a failing override never leaves a half-changed descriptor.
pub fn apply_all(
    doc: &mut Json,
    overrides: &[String],
    tokens: &TokenContext,
) -> Result<(), OverrideError> {
    let parsed = overrides
        .iter()
        .map(|o| Override::parse(o))
        .collect::<Result<Vec<_>, _>>()?;
    let mut copy = doc.clone();
    for o in &parsed {
        o.apply(&mut copy, tokens)?;
    }
    *doc = copy;
    Ok(())
}

/// A path as users read it: `spec.template.spec.containers[1]`, keys that are not plain names
/// in Python's form (`metadata.labels['app.kubernetes.io/name']`).
fn describe(steps: &[PathStep]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            PathStep::Key(k)
                if !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathStep::Key(k) => {
                out.push_str("['");
                out.push_str(&k.replace('\\', "\\\\").replace('\'', "\\'"));
                out.push_str("']");
            }
            PathStep::Index(n) => out.push_str(&format!("[{n}]")),
        }
    }
    out
}

fn to_json(literal: &Literal, tokens: &TokenContext) -> Result<Json, OverrideErrorKind> {
    Ok(match literal {
        Literal::None => Json::Null,
        Literal::Bool(b) => Json::Bool(*b),
        Literal::Int(n) => Json::from(*n),
        Literal::Float(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .ok_or_else(|| OverrideErrorKind::Value(format!("{f} is not a finite number")))?,
        Literal::Str(s) => Json::String(tokens.substitute(s).map_err(OverrideErrorKind::Token)?),
        Literal::Token(t) => tokens.resolve(t).map_err(OverrideErrorKind::Token)?,
        Literal::List(items) => Json::Array(
            items
                .iter()
                .map(|i| to_json(i, tokens))
                .collect::<Result<_, _>>()?,
        ),
        Literal::Dict(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                let key = match to_json(k, tokens)? {
                    Json::String(s) => s,
                    other => {
                        return Err(OverrideErrorKind::Value(format!(
                            "a dict key in a descriptor must be a string, not {}",
                            kind_name(&other)
                        )));
                    }
                };
                // Python keeps the first position and the last value of a repeated key; so
                // does an insertion-ordered map.
                map.insert(key, to_json(v, tokens)?);
            }
            Json::Object(map)
        }
    })
}

/// A syntax error: 1-based column and message.
type SyntaxError = (usize, String);

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, SyntaxError> {
        Err((self.pos + 1, message.into()))
    }

    fn found(&self) -> String {
        match self.peek() {
            None => "the end".to_string(),
            Some(c) => format!("`{c}`"),
        }
    }

    fn expect(&mut self, c: char) -> Result<(), SyntaxError> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            self.error(format!("expected `{c}`, found {}", self.found()))
        }
    }

    fn override_(&mut self) -> Result<(Vec<PathStep>, Literal), SyntaxError> {
        let mut path = Vec::new();
        self.skip_ws();
        if self.peek() != Some('[') {
            return self.error(format!(
                "an override starts with a subscript like ['spec'], found {}",
                self.found()
            ));
        }
        while {
            self.skip_ws();
            self.peek() == Some('[')
        } {
            self.pos += 1;
            self.skip_ws();
            let step = match self.peek() {
                Some(q) if is_string_start(q, self.peek_at(1)) => PathStep::Key(self.string()?),
                Some(c) if c.is_ascii_digit() || c == '-' || c == '+' => {
                    let start = self.pos;
                    match self.number()? {
                        Literal::Int(n) => PathStep::Index(n),
                        _ => return Err((start + 1, "a list index must be an integer".into())),
                    }
                }
                _ => {
                    return self.error(format!(
                        "a subscript holds a quoted key or an integer index, found {}",
                        self.found()
                    ));
                }
            };
            path.push(step);
            self.expect(']')?;
        }
        self.skip_ws();
        match self.peek() {
            Some('=') if self.peek_at(1) != Some('=') => self.pos += 1,
            _ => {
                return self.error(format!(
                    "expected `=` after the subscripts, found {} (only plain assignment is supported)",
                    self.found()
                ));
            }
        }
        let value = self.value()?;
        self.skip_ws();
        match self.peek() {
            None | Some('#') => Ok((path, value)),
            Some(_) => self.error(format!(
                "unexpected {} after the value (an override assigns one literal)",
                self.found()
            )),
        }
    }

    fn value(&mut self) -> Result<Literal, SyntaxError> {
        self.skip_ws();
        match self.peek() {
            None => self.error("expected a value, found the end"),
            Some(q) if is_string_start(q, self.peek_at(1)) => self.string().map(Literal::Str),
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => self.number(),
            Some('[') => {
                self.pos += 1;
                Ok(Literal::List(self.items(']')?))
            }
            Some('(') => {
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(')') {
                    self.pos += 1;
                    return Ok(Literal::List(Vec::new()));
                }
                let first = self.value()?;
                self.skip_ws();
                match self.peek() {
                    // A parenthesised value, not a tuple.
                    Some(')') => {
                        self.pos += 1;
                        Ok(first)
                    }
                    Some(',') => {
                        self.pos += 1;
                        let mut items = vec![first];
                        items.extend(self.items(')')?);
                        Ok(Literal::List(items))
                    }
                    _ => self.error(format!("expected `,` or `)`, found {}", self.found())),
                }
            }
            Some('{') => {
                self.pos += 1;
                self.dict()
            }
            Some('%') if self.peek_at(1) == Some('{') => {
                let start = self.pos + 2;
                let Some(end) = self.chars[start..].iter().position(|&c| c == '}') else {
                    return self.error("`%{` without a closing `}`");
                };
                self.pos = start + end + 1;
                Ok(Literal::Token(
                    self.chars[start..start + end].iter().collect(),
                ))
            }
            Some(c) if c.is_alphabetic() || c == '_' => {
                let start = self.pos;
                while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    self.pos += 1;
                }
                let word: String = self.chars[start..self.pos].iter().collect();
                match word.as_str() {
                    "True" => Ok(Literal::Bool(true)),
                    "False" => Ok(Literal::Bool(false)),
                    "None" => Ok(Literal::None),
                    _ => Err((
                        start + 1,
                        format!(
                            "`{word}` is a name, and overrides hold literals only (quote it for a string: '{word}')"
                        ),
                    )),
                }
            }
            Some(_) => self.error(format!("expected a value, found {}", self.found())),
        }
    }

    /// Comma-separated values up to `close` (a trailing comma is allowed).
    fn items(&mut self, close: char) -> Result<Vec<Literal>, SyntaxError> {
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(items);
            }
            items.push(self.value()?);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(c) if c == close => {}
                _ => {
                    return self
                        .error(format!("expected `,` or `{close}`, found {}", self.found()));
                }
            }
        }
    }

    fn dict(&mut self) -> Result<Literal, SyntaxError> {
        let mut entries = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some('}') {
                self.pos += 1;
                return Ok(Literal::Dict(entries));
            }
            let key = self.value()?;
            self.expect(':')?;
            let value = self.value()?;
            entries.push((key, value));
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some('}') => {}
                _ => return self.error(format!("expected `,` or `}}`, found {}", self.found())),
            }
        }
    }

    /// One or more adjacent string literals, joined (Python's `'a' 'b'` is `'ab'`).
    fn string(&mut self) -> Result<String, SyntaxError> {
        let mut out = String::new();
        loop {
            self.one_string(&mut out)?;
            let save = self.pos;
            self.skip_ws();
            match self.peek() {
                Some(q) if is_string_start(q, self.peek_at(1)) => {}
                _ => {
                    self.pos = save;
                    return Ok(out);
                }
            }
        }
    }

    fn one_string(&mut self, out: &mut String) -> Result<(), SyntaxError> {
        let mut raw = false;
        while let Some(c) = self.peek() {
            match c {
                'r' | 'R' => raw = true,
                'u' | 'U' => {}
                'b' | 'B' => return self.error("bytes literals have no place in a descriptor"),
                _ => break,
            }
            self.pos += 1;
        }
        let quote = match self.peek() {
            Some(q @ ('\'' | '"')) => q,
            _ => return self.error(format!("expected a quote, found {}", self.found())),
        };
        let open = self.pos;
        self.pos += 1;
        loop {
            let Some(c) = self.peek() else {
                return Err((
                    open + 1,
                    format!("string opened here is not closed with {quote}"),
                ));
            };
            self.pos += 1;
            if c == quote {
                return Ok(());
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some(e) = self.peek() else {
                return Err((
                    open + 1,
                    format!("string opened here is not closed with {quote}"),
                ));
            };
            self.pos += 1;
            if raw {
                // A raw string keeps the backslash; it still cannot end at an escaped quote.
                out.push('\\');
                out.push(e);
                continue;
            }
            match e {
                '\n' => {}
                '\\' | '\'' | '"' => out.push(e),
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '0' => out.push('\0'),
                'a' => out.push('\u{7}'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'v' => out.push('\u{b}'),
                'x' => out.push(self.hex_escape(2)?),
                'u' => out.push(self.hex_escape(4)?),
                'U' => out.push(self.hex_escape(8)?),
                // Python keeps unknown escapes as written.
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        }
    }

    fn hex_escape(&mut self, digits: usize) -> Result<char, SyntaxError> {
        let end = self.pos + digits;
        let text: String = self
            .chars
            .get(self.pos..end)
            .unwrap_or(&[])
            .iter()
            .collect();
        let code = (text.len() == digits)
            .then(|| u32::from_str_radix(&text, 16).ok())
            .flatten();
        match code.and_then(char::from_u32) {
            Some(c) => {
                self.pos = end;
                Ok(c)
            }
            None => self.error(format!(
                "a \\x, \\u or \\U escape needs {digits} hex digits"
            )),
        }
    }

    fn number(&mut self) -> Result<Literal, SyntaxError> {
        let start = self.pos;
        let negative = match self.peek() {
            Some('-') => {
                self.pos += 1;
                true
            }
            Some('+') => {
                self.pos += 1;
                false
            }
            _ => false,
        };
        self.skip_ws();
        let body_start = self.pos;
        let radix = match (self.peek(), self.peek_at(1)) {
            (Some('0'), Some('x' | 'X')) => 16,
            (Some('0'), Some('o' | 'O')) => 8,
            (Some('0'), Some('b' | 'B')) => 2,
            _ => 10,
        };
        if radix != 10 {
            self.pos += 2;
            let digits_start = self.pos;
            while self
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                self.pos += 1;
            }
            let digits: String = self.chars[digits_start..self.pos]
                .iter()
                .filter(|&&c| c != '_')
                .collect();
            let digits = digits.trim_end_matches(['L', 'l']);
            return match i64::from_str_radix(digits, radix) {
                Ok(n) => Ok(Literal::Int(if negative { -n } else { n })),
                Err(_) => Err((
                    start + 1,
                    format!("`{}` is not a valid integer", self.slice(start)),
                )),
            };
        }
        let mut is_float = false;
        while let Some(c) = self.peek() {
            match c {
                '0'..='9' | '_' => {}
                '.' => is_float = true,
                'e' | 'E' => {
                    is_float = true;
                    if matches!(self.peek_at(1), Some('+' | '-')) {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
            self.pos += 1;
        }
        let body: String = self.chars[body_start..self.pos]
            .iter()
            .filter(|&&c| c != '_')
            .collect();
        if body.is_empty() || body == "." {
            return Err((
                start + 1,
                format!("expected a number, found {}", self.found()),
            ));
        }
        if is_float {
            let f: f64 = body.parse().map_err(|_| {
                (
                    start + 1,
                    format!("`{}` is not a valid number", self.slice(start)),
                )
            })?;
            return Ok(Literal::Float(if negative { -f } else { f }));
        }
        // Python 2's long suffix, which overrides of that era may carry.
        if matches!(self.peek(), Some('L' | 'l')) {
            self.pos += 1;
        }
        if body.len() > 1 && body.starts_with('0') && body.chars().any(|c| c != '0') {
            return Err((
                start + 1,
                format!(
                    "`{}`: leading zeros are not allowed (write 0o… for octal)",
                    self.slice(start)
                ),
            ));
        }
        let n: i64 = body.parse().map_err(|_| {
            (
                start + 1,
                format!("`{}` does not fit in a 64-bit integer", self.slice(start)),
            )
        })?;
        Ok(Literal::Int(if negative { -n } else { n }))
    }

    fn slice(&self, start: usize) -> String {
        self.chars[start..self.pos].iter().collect()
    }
}

/// Whether `c` (followed by `next`) begins a string literal, prefixes included.
fn is_string_start(c: char, next: Option<char>) -> bool {
    c == '\''
        || c == '"'
        || (matches!(c, 'r' | 'R' | 'u' | 'U' | 'b' | 'B') && matches!(next, Some('\'' | '"')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tokens() -> TokenContext {
        TokenContext {
            management_ip: Some("10.1.2.3".into()),
            deployment_id: "demo".into(),
            node_id: "nodejs".into(),
            node_properties: json!({"replicas": 3, "name": "web"})
                .as_object()
                .cloned()
                .unwrap(),
            instance_id: "nodejs_x1y2z3".into(),
            ..TokenContext::default()
        }
    }

    /// The seed's pod descriptor shape: a Node.js container and a collector sidecar.
    fn pod() -> Json {
        json!({
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "spec": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "nodejs", "image": "node"},
                {"name": "diamond", "image": "collector", "env": [
                    {"name": "CLOUDIFY_HOST", "value": "x"},
                    {"name": "METRICS_TOPIC", "value": "cloudify-monitoring"},
                    {"name": "DEPLOYMENT_ID", "value": "x"}
                ]}
            ]}}}
        })
    }

    fn apply(doc: &mut Json, o: &str) -> Result<(), OverrideError> {
        Override::parse(o)?.apply(doc, &tokens())
    }

    fn kind(o: &str) -> OverrideErrorKind {
        let mut doc = pod();
        *apply(&mut doc, o).unwrap_err().kind
    }

    #[test]
    fn the_seed_overrides_set_the_collector_environment() {
        let mut doc = pod();
        apply_all(
            &mut doc,
            &[
                "['spec']['template']['spec']['containers'][1]['env'][0]['value'] = '%{management_ip}'".into(),
                "['spec']['template']['spec']['containers'][1]['env'][2]['value'] = '%{deployment.id}'".into(),
            ],
            &tokens(),
        )
        .unwrap();
        let env = &doc["spec"]["template"]["spec"]["containers"][1]["env"];
        assert_eq!(env[0]["value"], json!("10.1.2.3"));
        assert_eq!(env[1]["value"], json!("cloudify-monitoring"));
        assert_eq!(env[2]["value"], json!("demo"));
    }

    #[test]
    fn literals_of_every_kind() {
        let cases: &[(&str, Json)] = &[
            ("'single'", json!("single")),
            ("\"double\"", json!("double")),
            ("'it\\'s' \" joined\"", json!("it's joined")),
            ("u'unicode'", json!("unicode")),
            ("r'C:\\dir'", json!("C:\\dir")),
            ("'tab\\there\\x41\\u00e9'", json!("tab\there\u{41}\u{e9}")),
            ("'\\d'", json!("\\d")),
            ("42", json!(42)),
            ("-7", json!(-7)),
            ("1_000", json!(1000)),
            ("5L", json!(5)),
            ("0x1F", json!(31)),
            ("2.5", json!(2.5)),
            ("-1e3", json!(-1000.0)),
            (".5", json!(0.5)),
            ("True", json!(true)),
            ("False", json!(false)),
            ("None", json!(null)),
            ("[1, 'a', [True], ]", json!([1, "a", [true]])),
            ("(1, 2)", json!([1, 2])),
            ("(3)", json!(3)),
            ("()", json!([])),
            (
                "{'a': 1, \"b\": {'c': None}, 'a': 2}",
                json!({"a": 2, "b": {"c": null}}),
            ),
            ("%{node.properties.replicas}", json!(3)),
            ("'%{node.id}-%{instance.id}'", json!("nodejs-nodejs_x1y2z3")),
            (
                "{'%{node.properties.name}': %{node.properties.replicas}}",
                json!({"web": 3}),
            ),
            ("'x'  # a trailing comment", json!("x")),
        ];
        for (literal, expected) in cases {
            let mut doc = json!({"k": 0});
            apply(&mut doc, &format!("['k'] = {literal}"))
                .unwrap_or_else(|e| panic!("{literal}: {e}"));
            assert_eq!(&doc["k"], expected, "{literal}");
        }
    }

    #[test]
    fn the_last_key_may_be_new_but_not_the_last_index() {
        let mut doc = pod();
        apply(&mut doc, "['metadata'] = {'name': 'web'}").unwrap();
        apply(&mut doc, "['metadata']['labels'] = {}").unwrap();
        assert_eq!(doc["metadata"], json!({"name": "web", "labels": {}}));
        apply(
            &mut doc,
            "['spec']['template']['spec']['containers'][-1]['image'] = 'c2'",
        )
        .unwrap();
        assert_eq!(
            doc["spec"]["template"]["spec"]["containers"][1]["image"],
            json!("c2")
        );
        assert_eq!(
            kind("['spec']['template']['spec']['containers'][2] = {}"),
            OverrideErrorKind::IndexOutOfRange {
                at: "spec.template.spec.containers[2]".into(),
                len: 2
            }
        );
    }

    #[test]
    fn a_missing_index_names_the_step_and_the_length() {
        let mut doc = pod();
        doc["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .pop();
        let err = apply(
            &mut doc,
            "['spec']['template']['spec']['containers'][1]['env'][0]['value'] = '%{management_ip}'",
        )
        .unwrap_err();
        assert_eq!(
            *err.kind,
            OverrideErrorKind::IndexOutOfRange {
                at: "spec.template.spec.containers[1]".into(),
                len: 1
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("containers[1]: the list has 1 item"),
            "{text}"
        );
        assert!(text.starts_with("override `['spec']"), "{text}");
        assert_eq!(
            kind("['spec']['template']['spec']['containers'][-3]['x'] = 1"),
            OverrideErrorKind::IndexOutOfRange {
                at: "spec.template.spec.containers[-3]".into(),
                len: 2
            }
        );
    }

    #[test]
    fn a_missing_key_names_the_step_and_the_keys_there() {
        let err = kind("['spec']['tempalte']['spec'] = 1");
        assert_eq!(
            err,
            OverrideErrorKind::MissingKey {
                at: "spec.tempalte".into(),
                available: vec!["replicas".into(), "template".into()]
            }
        );
        assert!(
            err.to_string()
                .contains("the mapping has: replicas, template")
        );
        assert!(matches!(
            kind("['metadata']['labels']['app.kubernetes.io/name'] = 'x'"),
            OverrideErrorKind::MissingKey { at, .. } if at == "metadata"
        ));
    }

    #[test]
    fn wrong_kinds_of_steps() {
        assert_eq!(
            kind("['spec']['template']['spec']['containers']['name'] = 1"),
            OverrideErrorKind::WrongStep {
                at: "spec.template.spec.containers.name".into(),
                container: "spec.template.spec.containers".into(),
                kind: "a list",
                hint: "which takes an index like [0]",
            }
        );
        assert!(matches!(
            kind("['spec'][0] = 1"),
            OverrideErrorKind::WrongStep {
                kind: "a mapping",
                ..
            }
        ));
        assert!(matches!(
            kind("['spec']['replicas']['x'] = 1"),
            OverrideErrorKind::WrongStep {
                kind: "a number",
                ..
            }
        ));
        let mut list = json!([1]);
        assert!(matches!(
            *apply(&mut list, "['a'] = 1").unwrap_err().kind,
            OverrideErrorKind::WrongStep { ref container, .. } if container == "the descriptor"
        ));
    }

    #[test]
    fn malformed_overrides_are_syntax_errors_with_a_column() {
        let cases: &[(&str, usize, &str)] = &[
            ("spec = 1", 1, "starts with a subscript"),
            ("['spec'] == 1", 10, "expected `=`"),
            ("['spec'] += 1", 10, "expected `=`"),
            ("['spec'] 1", 10, "expected `=`"),
            ("['spec'] =", 11, "expected a value"),
            ("['spec'] = 'open", 12, "not closed"),
            ("['spec'] = foo", 12, "`foo` is a name"),
            ("['spec'] = __import__('os')", 12, "is a name"),
            ("['spec'] = 1 2", 14, "unexpected"),
            ("['spec'] = [1, 2", 17, "expected `,` or `]`"),
            ("['spec'] = {'a' 1}", 17, "expected `:`"),
            ("['spec'] = 007", 12, "leading zeros"),
            ("['spec'] = 99999999999999999999", 12, "64-bit"),
            ("['spec'] = b'x'", 12, "bytes"),
            ("['spec'] = '\\x4'", 15, "hex digits"),
            ("['spec'", 8, "expected `]`"),
            ("[spec] = 1", 2, "quoted key or an integer"),
            ("['spec'][1.5] = 1", 10, "integer"),
            ("['spec'] = %{node.id", 12, "closing"),
            ("['spec'].update({})", 9, "expected `=`"),
        ];
        for (text, column, needle) in cases {
            match Override::parse(text).map_err(|e| *e.kind) {
                Err(OverrideErrorKind::Syntax { column: c, message }) => {
                    assert!(message.contains(needle), "{text}: {message}");
                    assert_eq!(c, *column, "{text}: {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn token_errors_name_the_override() {
        let mut doc = pod();
        let err = apply(&mut doc, "['spec']['replicas'] = '%{manager}'").unwrap_err();
        assert!(matches!(
            &*err.kind,
            OverrideErrorKind::Token(TokenError::Unknown { token }) if token == "manager"
        ));
        assert!(
            err.to_string()
                .contains("['spec']['replicas'] = '%{manager}'")
        );
        assert!(matches!(
            *apply(&mut doc, "['%{node.properties.nope}'] = 1")
                .unwrap_err()
                .kind,
            OverrideErrorKind::Token(TokenError::MissingKey { .. })
        ));
        assert!(matches!(
            *apply(&mut doc, "['spec'] = {1: 2}").unwrap_err().kind,
            OverrideErrorKind::Value(_)
        ));
    }

    #[test]
    fn a_failing_override_leaves_the_descriptor_unchanged() {
        let mut doc = pod();
        let err = apply_all(
            &mut doc,
            &[
                "['spec']['replicas'] = 5".into(),
                "['spec']['missing']['x'] = 1".into(),
            ],
            &tokens(),
        )
        .unwrap_err();
        assert!(matches!(*err.kind, OverrideErrorKind::MissingKey { .. }));
        assert_eq!(doc, pod());
        // A malformed override is found before any is applied.
        let err = apply_all(
            &mut doc,
            &["['spec']['replicas'] = 5".into(), "['spec'] =".into()],
            &tokens(),
        )
        .unwrap_err();
        assert!(matches!(*err.kind, OverrideErrorKind::Syntax { .. }));
        assert_eq!(doc, pod());
    }
}
