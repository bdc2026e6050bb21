//! The spanned YAML tree.
//!
//! `parse` turns one file's text into a [`Node`] tree in which every value, including every
//! mapping key, carries the [`Loc`] it was written at. serde-saphyr does the YAML work (YAML 1.2,
//! anchors, aliases, `<<` merge keys, duplicate-key detection); this module only asks it for
//! `Spanned` values at every level. Aliased and merged values carry the location where they are
//! used, so an error inside a merged anchor points at the `<<` that brought it in.
//! Nothing here knows about blueprints.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

use super::source::{FileId, Loc};

/// A YAML value with the location it was written at.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub loc: Loc,
}

/// A mapping key: keys are always read as text (`1: x` has the key `"1"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub loc: Loc,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

impl Value {
    /// The YAML kind as users call it, for "expected a mapping, found a string" messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Seq(_) => "list",
            Value::Map(_) => "mapping",
        }
    }
}

impl Node {
    pub fn new(value: Value, loc: Loc) -> Self {
        Node { value, loc }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// Look a key up in a mapping (linear: mappings in blueprints are small, and large ones are
    /// turned into indexed maps by the DSL layer).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// The value as plain JSON, dropping locations (used for property values and outputs).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A YAML syntax error in one file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    pub message: String,
    pub loc: Loc,
}

/// Parse one file's text. An empty file is `Null`.
pub fn parse(file: FileId, text: &str) -> Result<Node, SyntaxError> {
    CURRENT_FILE.with(|c| c.set(file));
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.with_snippet = false;
    // YAML 1.2: only true/false are booleans (`y`, `on` stay strings, as in key names like `y`).
    options.strict_booleans = true;
    match serde_saphyr::from_str_with_options::<Option<Node>>(text, options) {
        Ok(node) => Ok(node.unwrap_or(Node::new(
            Value::Null,
            Loc {
                file,
                line: 1,
                col: 1,
                ..Loc::default()
            },
        ))),
        Err(e) => {
            let mut loc = e.location().map(|l| to_loc(&l, 1)).unwrap_or(Loc {
                file,
                line: 1,
                col: 1,
                ..Loc::default()
            });
            // Error locations may lack a byte offset; derive it so snippets point right.
            loc.offset = byte_offset(text, loc.line, loc.col);
            Err(SyntaxError {
                message: first_line(&e.to_string()),
                loc,
            })
        }
    }
}

/// serde-saphyr's messages may carry their own location suffix, snippet and advice about its
/// options; we render our own location and keep only what is wrong.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    let line = line.split(" at line ").next().unwrap_or(line);
    line.split(", set DuplicateKeyPolicy")
        .next()
        .unwrap_or(line)
        .to_string()
}

/// Byte offset of a 1-based line and character column.
fn byte_offset(text: &str, line: u32, col: u32) -> u32 {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1) as usize)
        .map(str::len)
        .sum();
    let within: usize = text[start.min(text.len())..]
        .chars()
        .take(col.saturating_sub(1) as usize)
        .map(char::len_utf8)
        .sum();
    (start + within).min(text.len()) as u32
}

thread_local! {
    /// The file being deserialized: `Deserialize` impls cannot take extra arguments.
    static CURRENT_FILE: Cell<FileId> = const { Cell::new(FileId(0)) };
}

fn to_loc(l: &Location, len: usize) -> Loc {
    let line = u32::try_from(l.line()).unwrap_or(u32::MAX);
    let col = u32::try_from(l.column()).unwrap_or(u32::MAX);
    let offset = l
        .span()
        .byte_offset()
        .and_then(|o| u32::try_from(o).ok())
        .unwrap_or(0);
    Loc {
        file: CURRENT_FILE.with(Cell::get),
        line,
        col,
        offset,
        len: len.max(1) as u32,
    }
}

fn value_len(v: &Value) -> usize {
    match v {
        Value::Str(s) => s.len(),
        Value::Int(i) => i.to_string().len(),
        Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        _ => 1,
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(d)?;
        let len = value_len(&spanned.value);
        Ok(Node {
            loc: to_loc(&spanned.referenced, len),
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let node = Node::deserialize(d)?;
        let name = match node.value {
            Value::Str(s) => s,
            Value::Null => "null".to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Seq(_) | Value::Map(_) => {
                return Err(de::Error::custom("a mapping key must be a scalar"));
            }
        };
        Ok(Key {
            name,
            loc: node.loc,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key::<Key>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Node {
        parse(FileId(0), text).expect("valid yaml")
    }

    #[test]
    fn every_value_has_its_location() {
        let n = p("a:\n  b: [1, two]\n  c: true\n");
        let b = n.get("a").unwrap().get("b").unwrap();
        assert_eq!((b.loc.line, b.loc.col), (2, 6));
        let two = &b.as_seq().unwrap()[1];
        assert_eq!(two.as_str(), Some("two"));
        assert_eq!((two.loc.line, two.loc.col), (2, 10));
        let (key, _) = &n.get("a").unwrap().as_map().unwrap()[1];
        assert_eq!((key.name.as_str(), key.loc.line, key.loc.col), ("c", 3, 3));
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let n = p("base: &b\n  x: 1\n  y: 2\nchild:\n  <<: *b\n  y: 3\nalias: *b\n");
        let child = n.get("child").unwrap();
        assert_eq!(child.get("x").unwrap().value, Value::Int(1));
        assert_eq!(child.get("y").unwrap().value, Value::Int(3));
        assert_eq!(
            n.get("alias").unwrap().get("y").unwrap().value,
            Value::Int(2)
        );
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let e = parse(FileId(0), "a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(e.loc.line >= 2, "{e:?}");
        let e = parse(FileId(0), "a: 1\na: 2\n").unwrap_err();
        assert!(e.message.contains("duplicate"), "{}", e.message);
        assert_eq!(e.loc.line, 2);
    }

    #[test]
    fn empty_file_is_null() {
        assert_eq!(p("").value, Value::Null);
        assert_eq!(p("# only a comment\n").value, Value::Null);
    }
}
