//! The spanned YAML tree.
//!
//! `parse` turns one file's text into a [`Node`] tree in which every value, including every
//! mapping key, carries the [`Loc`] it was written at. The YAML scanning and parsing is
//! serde-saphyr's (its granit parser); this module builds the tree from the parser's events:
//! YAML 1.2 core-schema scalars, anchors and aliases (an alias carries the location where it is
//! used), `<<` merge keys (explicit keys win), duplicate keys keeping the last value with a
//! warning (as Cloudify's YAML loader keeps it), nesting and alias expansion bounded. Nothing
//! here knows about blueprints.

use crate::maps::{HashMap, HashMapExt, HashSet};

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span};

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

/// Nesting deeper than this is refused (a guard against stack exhaustion downstream).
const MAX_DEPTH: usize = 256;
/// Values an alias may expand to, in total, before the document is refused ("billion laughs").
const MAX_NODES: usize = 5_000_000;

/// Parse one file's text. An empty file is `Null`.
///
/// Builds the tree straight from the YAML event stream of serde-saphyr's parser (granit), without
/// going through serde: blueprints are read for every command and this is the hot path.
pub fn parse(file: FileId, text: &str) -> Result<Node, SyntaxError> {
    parse_with_warnings(file, text).map(|(node, _)| node)
}

/// [`parse`], also returning what the file does that YAML allows but a reader should know
/// (a duplicate mapping key: the last value is kept, as Cloudify keeps it).
pub fn parse_with_warnings(
    file: FileId,
    text: &str,
) -> Result<(Node, Vec<SyntaxError>), SyntaxError> {
    let mut builder = Builder::new(file, text);
    let root = builder.run()?;
    Ok((root, builder.warnings))
}

/// A collection being built.
enum Frame {
    Seq {
        items: Vec<Node>,
        loc: Loc,
        anchor: usize,
    },
    Map {
        entries: Vec<(Key, Node)>,
        /// Keys seen so far, once the mapping is large enough for linear lookups to hurt.
        seen: Option<HashSet<String>>,
        merges: Vec<Node>,
        key: Option<Node>,
        loc: Loc,
        anchor: usize,
    },
}

struct Builder<'t> {
    file: FileId,
    text: &'t str,
    /// Anchored nodes with their sizes (values, for the alias-expansion bound).
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
    warnings: Vec<SyntaxError>,
}

impl<'t> Builder<'t> {
    fn new(file: FileId, text: &'t str) -> Self {
        Builder {
            file,
            text,
            anchors: HashMap::new(),
            nodes: 0,
            warnings: Vec::new(),
        }
    }

    fn loc(&self, span: &Span) -> Loc {
        let line = span.start.line() as u32;
        let col = span.start.col() as u32 + 1;
        let offset = span
            .start
            .byte_offset()
            .map_or_else(|| byte_offset(self.text, line, col), |o| o as u32);
        let end = span.end.byte_offset().map_or(offset, |o| o as u32);
        Loc {
            file: self.file,
            line,
            col,
            offset,
            len: end.saturating_sub(offset).max(1),
        }
    }

    fn error(&self, loc: Loc, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            message: message.into(),
            loc,
        }
    }

    fn run(&mut self) -> Result<Node, SyntaxError> {
        let mut stack: Vec<Frame> = Vec::new();
        let mut root: Option<Node> = None;
        let mut documents = 0;
        let parser = Parser::new_from_str(self.text);
        for event in parser {
            let (event, span) = event.map_err(|e| {
                let m = e.marker();
                let line = m.line() as u32;
                let col = m.col() as u32 + 1;
                self.error(
                    Loc {
                        file: self.file,
                        line,
                        col,
                        offset: byte_offset(self.text, line, col),
                        len: 1,
                    },
                    e.info()
                        .lines()
                        .next()
                        .unwrap_or("syntax error")
                        .to_string(),
                )
            })?;
            let loc = self.loc(&span);
            let complete = match event {
                Event::DocumentStart(..) => {
                    documents += 1;
                    if documents > 1 {
                        return Err(self.error(
                            loc,
                            "a blueprint file holds one YAML document; found another `---`",
                        ));
                    }
                    continue;
                }
                Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => continue,
                Event::SequenceStart(_, anchor, _) | Event::MappingStart(_, anchor, _) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(
                            self.error(loc, format!("nesting deeper than {MAX_DEPTH} levels"))
                        );
                    }
                    stack.push(if matches!(event, Event::SequenceStart(..)) {
                        Frame::Seq {
                            items: Vec::new(),
                            loc,
                            anchor,
                        }
                    } else {
                        Frame::Map {
                            entries: Vec::new(),
                            seen: None,
                            merges: Vec::new(),
                            key: None,
                            loc,
                            anchor,
                        }
                    });
                    continue;
                }
                Event::SequenceEnd => match stack.pop() {
                    Some(Frame::Seq { items, loc, anchor }) => {
                        self.finish(Node::new(Value::Seq(items), loc), anchor)
                    }
                    _ => return Err(self.error(loc, "unbalanced sequence")),
                },
                Event::MappingEnd => {
                    match stack.pop() {
                        Some(Frame::Map {
                            mut entries,
                            merges,
                            loc,
                            anchor,
                            ..
                        }) => {
                            // Merge keys: explicit entries win, then earlier merge sources win.
                            for source in merges {
                                let sources = match source.value {
                                Value::Map(m) => vec![m],
                                Value::Seq(items) => items
                                    .into_iter()
                                    .map(|n| match n.value {
                                        Value::Map(m) => Ok(m),
                                        _ => Err(self.error(n.loc, "a `<<` merge takes a mapping or a list of mappings")),
                                    })
                                    .collect::<Result<_, _>>()?,
                                _ => return Err(self.error(source.loc, "a `<<` merge takes a mapping or a list of mappings")),
                            };
                                for map in sources {
                                    for (k, v) in map {
                                        if !entries.iter().any(|(e, _)| e.name == k.name) {
                                            entries.push((k, v));
                                        }
                                    }
                                }
                            }
                            self.finish(Node::new(Value::Map(entries), loc), anchor)
                        }
                        _ => return Err(self.error(loc, "unbalanced mapping")),
                    }
                }
                Event::Scalar(text, style, anchor, tag) => {
                    let is_str_tag = tag.as_ref().is_some_and(|t| t.suffix() == "str");
                    let value = if style == ScalarStyle::Plain && !is_str_tag {
                        resolve(&text)
                    } else {
                        Value::Str(text.into_owned())
                    };
                    self.finish(Node::new(value, loc), anchor)
                }
                Event::Alias(id) => match self.anchors.get(&id) {
                    Some((n, size)) => {
                        self.nodes += size;
                        if self.nodes > MAX_NODES {
                            return Err(self.error(loc, "aliases expand to too many values"));
                        }
                        Node::new(n.value.clone(), loc)
                    }
                    None => return Err(self.error(loc, "unknown alias")),
                },
                _ => continue,
            };
            // Attach the completed node to its parent, or make it the document.
            match stack.last_mut() {
                None => root = Some(complete),
                Some(Frame::Seq { items, .. }) => items.push(complete),
                Some(Frame::Map {
                    entries,
                    seen,
                    merges,
                    key,
                    ..
                }) => match key.take() {
                    None => *key = Some(complete),
                    Some(k) => {
                        let name = match &k.value {
                            Value::Seq(_) | Value::Map(_) => {
                                return Err(self.error(k.loc, "a mapping key must be a scalar"));
                            }
                            _ => key_text(&k, self.text),
                        };
                        if name == "<<"
                            && matches!(k.value, Value::Str(_))
                            && k.len_is_plain(self.text)
                        {
                            merges.push(complete);
                        } else if is_duplicate(entries, seen, &name) {
                            // The last value wins, in the first one's place (Python's dict).
                            if let Some(entry) = entries.iter_mut().find(|(e, _)| e.name == name) {
                                let first = entry.0.loc.line;
                                *entry = (
                                    Key {
                                        name: name.clone(),
                                        loc: k.loc,
                                    },
                                    complete,
                                );
                                self.warnings.push(SyntaxError {
                                    message: format!(
                                        "duplicate mapping key `{name}`: this value replaces the one on line {first}"
                                    ),
                                    loc: k.loc,
                                });
                            }
                        } else {
                            entries.push((Key { name, loc: k.loc }, complete));
                        }
                    }
                },
            }
        }
        Ok(root.unwrap_or(Node::new(
            Value::Null,
            Loc {
                file: self.file,
                line: 1,
                col: 1,
                ..Loc::default()
            },
        )))
    }

    fn finish(&mut self, node: Node, anchor: usize) -> Node {
        self.nodes += 1;
        if anchor != 0 {
            let size = count(&node);
            self.anchors.insert(anchor, (node.clone(), size));
        }
        node
    }
}

/// Whether `name` is already a key; records it. Small mappings are scanned, large ones hashed,
/// so a mapping of thousands of node templates stays linear.
fn is_duplicate(entries: &[(Key, Node)], seen: &mut Option<HashSet<String>>, name: &str) -> bool {
    const SCAN_UP_TO: usize = 16;
    if let Some(set) = seen {
        return !set.insert(name.to_string());
    }
    if entries.iter().any(|(e, _)| e.name == name) {
        return true;
    }
    if entries.len() >= SCAN_UP_TO {
        let mut set: HashSet<String> = entries.iter().map(|(k, _)| k.name.clone()).collect();
        set.insert(name.to_string());
        *seen = Some(set);
    }
    false
}

impl Node {
    /// True when the key was written plain (`<<`), not quoted (`"<<"` is an ordinary key).
    fn len_is_plain(&self, text: &str) -> bool {
        text.as_bytes().get(self.loc.offset as usize) == Some(&b'<')
    }
}

/// A key's text: the scalar as written (so `1:` is the key "1" and `true:` the key "true").
fn key_text(k: &Node, text: &str) -> String {
    match &k.value {
        Value::Str(s) => s.clone(),
        _ => {
            let start = k.loc.offset as usize;
            text.get(start..start + k.loc.len as usize)
                .map_or_else(|| k.to_json().to_string(), |s| s.trim().to_string())
        }
    }
}

fn count(n: &Node) -> usize {
    match &n.value {
        Value::Seq(items) => 1 + items.iter().map(count).sum::<usize>(),
        Value::Map(entries) => 1 + entries.iter().map(|(_, v)| count(v)).sum::<usize>(),
        _ => 1,
    }
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    let bytes = text.as_bytes();
    let first = bytes[0];
    if !(first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.') {
        return Value::Str(text.to_string());
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(hex, 16) {
            return Value::Int(i);
        }
    } else if let Some(oct) = text.strip_prefix("0o") {
        if let Ok(i) = i64::from_str_radix(oct, 8) {
            return Value::Int(i);
        }
    } else if bytes[usize::from(first == b'-' || first == b'+')..]
        .iter()
        .all(u8::is_ascii_digit)
        && bytes.len() > usize::from(first == b'-' || first == b'+')
    {
        return text.parse::<i64>().map_or_else(
            |_| {
                text.parse::<f64>()
                    .map_or(Value::Str(text.to_string()), Value::Float)
            },
            Value::Int,
        );
    } else if is_float(text)
        && let Ok(f) = text.parse::<f64>()
    {
        return Value::Float(f);
    }
    Value::Str(text.to_string())
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_float(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - s;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == s {
            return false;
        }
    }
    i == b.len()
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
        let (n, warnings) = parse_with_warnings(FileId(0), "a: 1\nb: 0\na: 2\n").unwrap();
        assert_eq!(n.get("a").unwrap().value, Value::Int(2));
        assert_eq!(n.as_map().unwrap()[0].0.name, "a");
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].message.contains("line 1"),
            "{}",
            warnings[0].message
        );
        assert_eq!(warnings[0].loc.line, 3);
    }

    #[test]
    fn scalars_follow_the_yaml_1_2_core_schema() {
        let n = p(
            "a: 1\nb: -2.5e3\nc: 0x1f\nd: yes\ne: ~\nf: '1'\ng: .inf\nh: 1.2.3\ni: true\nj: !!str 5\n",
        );
        let v = |k: &str| n.get(k).unwrap().value.clone();
        assert_eq!(v("a"), Value::Int(1));
        assert_eq!(v("b"), Value::Float(-2500.0));
        assert_eq!(v("c"), Value::Int(31));
        assert_eq!(v("d"), Value::Str("yes".into()));
        assert_eq!(v("e"), Value::Null);
        assert_eq!(v("f"), Value::Str("1".into()));
        assert_eq!(v("g"), Value::Float(f64::INFINITY));
        assert_eq!(v("h"), Value::Str("1.2.3".into()));
        assert_eq!(v("i"), Value::Bool(true));
        assert_eq!(v("j"), Value::Str("5".into()));
        // Keys are text as written.
        let n = p("1: x\ntrue: y\n");
        let keys: Vec<&str> = n
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.name.as_str())
            .collect();
        assert_eq!(keys, ["1", "true"]);
    }

    #[test]
    fn merge_sources_lose_to_explicit_keys_and_earlier_sources() {
        let n = p(
            "a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc:\n  <<: [*a, *b]\n  x: 0\nd: {\"<<\": 5}\n",
        );
        let c = n.get("c").unwrap();
        assert_eq!(c.get("x").unwrap().value, Value::Int(0));
        assert_eq!(c.get("y").unwrap().value, Value::Int(1));
        assert_eq!(c.get("z").unwrap().value, Value::Int(2));
        // A quoted "<<" is an ordinary key.
        assert_eq!(n.get("d").unwrap().get("<<").unwrap().value, Value::Int(5));
        let e = parse(FileId(0), "a: &a [1]\nb: {<<: *a}\n").unwrap_err();
        assert!(e.message.contains("merge"), "{}", e.message);
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let prev = format!("*a{}", i - 1);
            text.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                [prev.as_str(); 10].join(", ")
            ));
        }
        let e = parse(FileId(0), &text).unwrap_err();
        assert!(e.message.contains("too many"), "{}", e.message);
        let deep = format!("x: {}{}\n", "[".repeat(1000), "]".repeat(1000));
        let e = parse(FileId(0), &deep).unwrap_err();
        assert!(
            e.message.contains("nesting") || e.message.contains("recursion"),
            "{}",
            e.message
        );
        let two = parse(FileId(0), "a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(two.loc.line, 2);
    }

    #[test]
    fn empty_file_is_null() {
        assert_eq!(p("").value, Value::Null);
        assert_eq!(p("# only a comment\n").value, Value::Null);
    }
}
