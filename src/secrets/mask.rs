//! [`Mask`]: replaces secret values with `******` in text and JSON shown to people or stored
//! outside the secrets table. One mask per execution (every secret it revealed) sits in the
//! recorder; plugins build their own for what they learn (the SSH plugin's key text and
//! passwords) and hand messages through it before they reach an event or an error.

use serde_json::{Map, Value as Json};

/// What a masked value is replaced with.
pub const HIDDEN: &str = "******";

/// Secret texts to hide, longest first so that a secret containing another is hidden whole.
#[derive(Clone, Default)]
pub struct Mask {
    secrets: Vec<String>,
}

// Not derived: a mask holds secret values, and `{:?}` must not print them.
impl std::fmt::Debug for Mask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mask({} values)", self.secrets.len())
    }
}

impl Mask {
    pub fn new() -> Mask {
        Mask::default()
    }

    /// Hide exactly `text` (nothing when it is empty).
    pub fn add_text(&mut self, text: &str) {
        if text.is_empty() || self.secrets.iter().any(|s| s == text) {
            return;
        }
        self.secrets.push(text.to_string());
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// Hide a secret value in every form it may be shown in: as it is, trimmed, escaped as in
    /// a JSON string (an operation's returned value, a runtime property printed as JSON), line
    /// by line when it has several (a script echoing a key file prints one event per line),
    /// and, when it is a JSON document, each of its strings (`get_secret: [NAME, key]`).
    pub fn add_value(&mut self, value: &str) {
        self.add_text(value);
        self.add_text(value.trim());
        let quoted = Json::String(value.to_string()).to_string();
        self.add_text(&quoted[1..quoted.len() - 1]);
        if value.trim().contains('\n') {
            for line in value.lines().map(str::trim).filter(|l| l.len() >= 4) {
                self.add_text(line);
            }
        }
        if let Ok(doc @ (Json::Object(_) | Json::Array(_))) = serde_json::from_str::<Json>(value) {
            self.add_text(&doc.to_string());
            self.add_leaves(&doc);
        }
    }

    fn add_leaves(&mut self, doc: &Json) {
        match doc {
            Json::String(s) => self.add_value(s),
            Json::Array(items) => items.iter().for_each(|i| self.add_leaves(i)),
            Json::Object(m) => m.values().for_each(|v| self.add_leaves(v)),
            _ => {}
        }
    }

    /// Everything `other` hides, too.
    pub fn extend(&mut self, other: &Mask) {
        for s in &other.secrets {
            self.add_text(s);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret replaced by `******`.
    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), HIDDEN);
            }
        }
        out
    }

    /// `value` with every string (keys included) masked.
    pub fn apply_json(&self, value: &Json) -> Json {
        if self.secrets.is_empty() {
            return value.clone();
        }
        match value {
            Json::String(s) => Json::String(self.apply(s)),
            Json::Array(items) => Json::Array(items.iter().map(|i| self.apply_json(i)).collect()),
            Json::Object(m) => Json::Object(self.apply_map(m)),
            other => other.clone(),
        }
    }

    /// [`Mask::apply_json`] of a mapping.
    pub fn apply_map(&self, m: &Map<String, Json>) -> Map<String, Json> {
        m.iter()
            .map(|(k, v)| (self.apply(k), self.apply_json(v)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hides_values_in_every_form_and_longest_first() {
        let mut m = Mask::new();
        m.add_value("hunter2");
        m.add_value("hunter2-extra");
        m.add_value("line one\nsecond \"line\"\n");
        assert_eq!(m.apply("a hunter2-extra b hunter2"), "a ****** b ******");
        assert_eq!(m.apply("say: second \"line\""), "say: ******");
        assert_eq!(
            m.apply(r#"returned "line one\nsecond \"line\"\n""#),
            "returned \"******\""
        );
        assert_eq!(m.apply("nothing"), "nothing");
        assert_eq!(
            format!("{m:?}"),
            format!("Mask({} values)", m.secrets.len())
        );
    }

    #[test]
    fn json_secrets_hide_their_strings() {
        let mut m = Mask::new();
        m.add_value(r#"{"user": "admin", "password": "s3cr3t!", "port": 5432}"#);
        assert_eq!(m.apply("login admin/s3cr3t!"), "login ******/******");
        assert_eq!(
            m.apply_json(&json!({"p": ["x s3cr3t!"], "n": 5432})),
            json!({"p": ["x ******"], "n": 5432})
        );
    }
}
