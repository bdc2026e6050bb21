//! Secrets: named values kept encrypted in the state store and handed to operations through
//! `get_secret`, never shown.
//!
//! # Where values live
//! The store's `secrets` table holds, per name, an AES-256-GCM ciphertext and its nonce
//! ([`cipher`], the name bound as associated data); the key is a file of its own ([`key`]),
//! outside the store, so a copy of the state file reveals nothing. A value exists in clear
//! only in `windlass secrets get`'s output and, during an execution, in memory: in the
//! [`Revealed`] set the engine loads before anything runs, in the inputs and properties of the
//! operations that use it, and in what those operations do with it.
//!
//! # Flow
//! `engine` calls [`reveal`] before an execution starts: it finds every `get_secret` of the
//! blueprint ([`uses`]), reports all missing secrets at once with where each is used, then
//! decrypts the ones used. The [`Revealed`] set answers `get_secret` (`engine::attributes`) and
//! carries a [`Mask`] of every value, which the execution's recorder applies to every event
//! and runtime property it writes and to the execution's error. Outputs never decrypt:
//! [`hidden`] answers `get_secret` with `******`.
//!
//! # Must not
//! Nothing here logs, and no error message quotes a value: errors name secrets, keys and the
//! key file, nothing else.

pub mod cipher;
pub mod key;
pub mod mask;
pub mod uses;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use serde_json::{Map, Value as Json};

use crate::dsl::Compiled;
use crate::dsl::functions::{PLAN_TIME, apply, is_runtime_function};
use crate::dsl::values::kind_name;
use crate::store::{SecretListing, Store, StoreError};
pub use key::{KEY_ENV, Key, key_path};
pub use mask::{HIDDEN, Mask};
pub use uses::{SecretUse, uses};

/// The longest name `windlass secrets set` takes.
const MAX_NAME: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a secret name is 1 to {MAX_NAME} letters, digits, `_`, `.` or `-`; got {0:?}")]
    BadName(String),
    #[error("the value of secret `{0}` is empty; a secret needs a value")]
    Empty(String),
    #[error("the value of secret `{0}` is not UTF-8 text")]
    NotText(String),
    #[error("no secret is named `{0}`")]
    NoSecret(String),
    #[error(
        "the blueprint uses secrets that do not exist (nothing was run):\n  {}\nset them with `windlass secrets set NAME VALUE` (or `--file F`, or `-` for standard input)",
        .0.iter().map(|m| format!("`{}`: {}", m.name, m.places.join("; "))).collect::<Vec<_>>().join("\n  ")
    )]
    Missing(Vec<MissingSecret>),
    #[error(
        "the blueprint reads keys its secrets do not have (nothing was run):\n  {}",
        .0.join("\n  ")
    )]
    BadKeys(Vec<String>),
    #[error("cannot tell where the secrets key file is: set {KEY_ENV}, XDG_CONFIG_HOME or HOME")]
    NoKeyPath,
    #[error(
        "the secrets key file {0} does not exist, but the store holds secrets: they were set with another key file ({KEY_ENV}); point {KEY_ENV} at it"
    )]
    KeyMissing(PathBuf),
    #[error("the secrets key file {0} is not a regular file")]
    KeyNotFile(PathBuf),
    #[error(
        "the secrets key file {path} is accessible to group or others (mode {mode:03o}); a key must be private: `chmod 600 {path}` if it is yours",
        path = .path.display()
    )]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error(
        "the secrets key file {path} holds {size} bytes; a windlass key is 32 random bytes",
        path = .path.display()
    )]
    KeySize { path: PathBuf, size: u64 },
    #[error("the secrets key file {path}: {source}", path = .path.display())]
    KeyIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot decrypt secret `{name}` with the key file {path}: it was encrypted with another key, or its stored bytes were altered",
        path = .path.display()
    )]
    WrongKey { name: String, path: PathBuf },
    #[error("cannot encrypt secret `{0}`")]
    Seal(String),
    #[error("cannot read random bytes from the system")]
    Random,
}

/// A secret the blueprint uses that the store does not hold, with where it is used.
#[derive(Debug, Clone, PartialEq)]
pub struct MissingSecret {
    pub name: String,
    pub places: Vec<String>,
}

/// Refuse names outside `[A-Za-z0-9_.-]{1,256}`.
pub fn check_name(name: &str) -> Result<(), SecretError> {
    if crate::store::is_plain_name(name, MAX_NAME) {
        Ok(())
    } else {
        Err(SecretError::BadName(name.to_string()))
    }
}

/// Encrypt and store a secret (the key file is made on first use). Returns whether it is new.
pub async fn set(store: &Store, name: &str, value: &[u8]) -> Result<bool, SecretError> {
    check_name(name)?;
    if value.is_empty() {
        return Err(SecretError::Empty(name.to_string()));
    }
    if std::str::from_utf8(value).is_err() {
        return Err(SecretError::NotText(name.to_string()));
    }
    let key = Key::load_or_create(&key_path()?)?;
    let (nonce, sealed) = key
        .cipher
        .seal(name, value)
        .map_err(|_| SecretError::Seal(name.to_string()))?;
    Ok(store.put_secret(name, &nonce, &sealed).await?)
}

/// A secret's value.
pub async fn get(store: &Store, name: &str) -> Result<String, SecretError> {
    check_name(name)?;
    let names = [name.to_string()];
    let rows = store.secret_rows(Some(&names)).await?;
    let Some(row) = rows.into_iter().next() else {
        return Err(SecretError::NoSecret(name.to_string()));
    };
    let key = Key::load(&key_path()?)?;
    open(&key, &row)
}

/// Every secret's name and dates.
pub async fn list(store: &Store) -> Result<Vec<SecretListing>, SecretError> {
    Ok(store.secret_listing().await?)
}

/// Delete a secret; one that does not exist is an error.
pub async fn delete(store: &Store, name: &str) -> Result<(), SecretError> {
    check_name(name)?;
    if store.delete_secret(name).await? {
        Ok(())
    } else {
        Err(SecretError::NoSecret(name.to_string()))
    }
}

fn open(key: &Key, row: &crate::store::SecretRow) -> Result<String, SecretError> {
    let plain = key
        .cipher
        .open(&row.name, &row.nonce, &row.ciphertext)
        .map_err(|_| SecretError::WrongKey {
            name: row.name.clone(),
            path: key.path.clone(),
        })?;
    String::from_utf8(plain).map_err(|_| SecretError::NotText(row.name.clone()))
}

/// The secrets one execution may use, and the mask that hides them.
#[derive(Default)]
pub struct Revealed {
    values: Values,
    mask: Mask,
}

#[derive(Default)]
enum Values {
    /// The blueprint uses none.
    #[default]
    None,
    /// Decrypted values, by name.
    Plain(HashMap<String, String>),
    /// Names that exist; each reads as `******` (outputs).
    Hidden(HashSet<String>),
}

// Not derived: `{:?}` must never print a value.
impl std::fmt::Debug for Revealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&String> = match &self.values {
            Values::None => Vec::new(),
            Values::Plain(m) => m.keys().collect(),
            Values::Hidden(s) => s.iter().collect(),
        };
        write!(f, "Revealed({names:?})")
    }
}

impl Revealed {
    /// No secrets: `get_secret` is an error (for callers that checked there is none to load).
    pub fn none() -> Revealed {
        Revealed::default()
    }

    /// Every revealed value, for the recorder and for plugins that show text.
    pub fn mask(&self) -> &Mask {
        &self.mask
    }

    /// `get_secret`'s value: `NAME` or `[NAME, key or index, …]`. A value that is a JSON
    /// object or list is that structure; keys walk into it. Errors name the secret and the
    /// key, never the value.
    pub fn lookup(&self, arg: &Json) -> Result<Json, String> {
        let (name, path): (&str, &[Json]) = match arg {
            Json::String(s) => (s, &[]),
            Json::Array(a) => match a.split_first() {
                Some((Json::String(s), rest)) => (s, rest),
                _ => {
                    return Err(format!(
                        "get_secret: the secret's name must be a string, got {}",
                        a.first().map_or("nothing", kind_name)
                    ));
                }
            },
            other => {
                return Err(format!(
                    "get_secret takes a name or a list of the name and keys, got {}",
                    kind_name(other)
                ));
            }
        };
        let value = match &self.values {
            Values::Hidden(names) if names.contains(name) => {
                return Ok(Json::String(HIDDEN.to_string()));
            }
            Values::Plain(m) => m.get(name),
            _ => None,
        };
        let Some(value) = value else {
            return Err(format!("get_secret: secret `{name}` does not exist"));
        };
        let doc = serde_json::from_str::<Json>(value)
            .ok()
            .filter(|d| d.is_object() || d.is_array());
        let Some(mut doc) = doc else {
            if let Some(first) = path.first() {
                return Err(format!(
                    "get_secret: secret `{name}` is not a JSON object or list, so it has no key {first}"
                ));
            }
            return Ok(Json::String(value.clone()));
        };
        for step in path {
            doc = match (doc, step) {
                (Json::Object(mut m), Json::String(k)) => m
                    .remove(k)
                    .ok_or_else(|| format!("get_secret: secret `{name}` has no key `{k}`"))?,
                (Json::Array(mut a), Json::Number(n))
                    if n.as_u64().is_some_and(|i| (i as usize) < a.len()) =>
                {
                    a.swap_remove(n.as_u64().unwrap_or(0) as usize)
                }
                _ => return Err(format!("get_secret: secret `{name}` has no key {step}")),
            };
        }
        Ok(doc)
    }

    /// `value` with its `get_secret` calls replaced by their values, and the plan-time
    /// functions around them (`concat`) applied once no runtime function is left in their
    /// arguments. Other runtime functions stay as they are: this is what node properties look
    /// like to an operation.
    pub fn substitute(&self, value: &Json) -> Result<Json, String> {
        match value {
            Json::Array(items) => items
                .iter()
                .map(|v| self.substitute(v))
                .collect::<Result<_, _>>()
                .map(Json::Array),
            Json::Object(m) if m.len() == 1 => {
                let (name, arg) = m.iter().next().expect("one entry");
                let arg = self.substitute(arg)?;
                if name == "get_secret" && !is_runtime_function(&arg) {
                    return self.lookup(&arg);
                }
                if PLAN_TIME.contains(&name.as_str()) && !is_runtime_function(&arg) {
                    let args = match arg {
                        Json::Array(a) => a,
                        other => vec![other],
                    };
                    return apply(name, &args).map_err(|e| format!("`{name}`: {e}"));
                }
                Ok(Json::Object(Map::from_iter([(name.clone(), arg)])))
            }
            Json::Object(m) => m
                .iter()
                .map(|(k, v)| Ok((k.clone(), self.substitute(v)?)))
                .collect::<Result<_, String>>()
                .map(Json::Object),
            other => Ok(other.clone()),
        }
    }

    /// Whether `value` calls `get_secret` anywhere.
    pub fn used_in(value: &Json) -> bool {
        match value {
            Json::Object(m) => m.contains_key("get_secret") || m.values().any(Revealed::used_in),
            Json::Array(a) => a.iter().any(Revealed::used_in),
            _ => false,
        }
    }
}

/// The names `compiled` uses, all missing ones reported at once; `None` for "every secret"
/// (a name is computed at run time).
async fn needed(
    store: &Store,
    used: &[SecretUse],
) -> Result<Option<Vec<crate::store::SecretRow>>, SecretError> {
    if used.is_empty() {
        return Ok(None);
    }
    let dynamic = used.iter().any(|u| u.name.is_none());
    let mut names: Vec<String> = used.iter().filter_map(|u| u.name.clone()).collect();
    names.sort();
    names.dedup();
    let rows = store
        .secret_rows(if dynamic { None } else { Some(&names) })
        .await?;
    let present: HashSet<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    let mut missing: Vec<MissingSecret> = Vec::new();
    for u in used {
        let Some(name) = u.name.as_deref().filter(|n| !present.contains(n)) else {
            continue;
        };
        match missing.iter_mut().find(|m| m.name == name) {
            Some(m) => m.places.push(u.place.clone()),
            None => missing.push(MissingSecret {
                name: name.to_string(),
                places: vec![u.place.clone()],
            }),
        }
    }
    if !missing.is_empty() {
        return Err(SecretError::Missing(missing));
    }
    Ok(Some(rows))
}

/// Everything an execution of `compiled` needs: every secret it uses, decrypted (every secret
/// of the store when a name is computed at run time). Fails, before anything runs, with one
/// error naming every missing secret and where it is used, or naming the key file when it
/// cannot decrypt.
pub async fn reveal(store: &Store, compiled: &Compiled) -> Result<Revealed, SecretError> {
    let used = uses(compiled);
    let Some(rows) = needed(store, &used).await? else {
        return Ok(Revealed::none());
    };
    if rows.is_empty() {
        return Ok(Revealed {
            values: Values::Plain(HashMap::new()),
            mask: Mask::new(),
        });
    }
    let key = Key::load(&key_path()?)?;
    let mut values = HashMap::new();
    let mut mask = Mask::new();
    for row in &rows {
        let value = open(&key, row)?;
        mask.add_value(&value);
        values.insert(row.name.clone(), value);
    }
    let revealed = Revealed {
        values: Values::Plain(values),
        mask,
    };
    // Keys written out are checked now too, so a misspelt key fails before anything runs.
    let bad: Vec<String> = used
        .iter()
        .filter(|u| !is_runtime_function(&u.arg))
        .filter_map(|u| {
            let why = revealed.lookup(&u.arg).err()?;
            Some(format!(
                "{} ({})",
                why.trim_start_matches("get_secret: "),
                u.place
            ))
        })
        .collect();
    if !bad.is_empty() {
        return Err(SecretError::BadKeys(bad));
    }
    Ok(revealed)
}

/// For reading outputs: every secret the store holds reads as `******`; nothing is decrypted.
pub async fn hidden(store: &Store) -> Result<Revealed, SecretError> {
    let names = store
        .secret_listing()
        .await?
        .into_iter()
        .map(|s| s.name)
        .collect();
    Ok(Revealed {
        values: Values::Hidden(names),
        mask: Mask::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plain(pairs: &[(&str, &str)]) -> Revealed {
        let mut mask = Mask::new();
        let values = pairs
            .iter()
            .map(|(k, v)| {
                mask.add_value(v);
                (k.to_string(), v.to_string())
            })
            .collect();
        Revealed {
            values: Values::Plain(values),
            mask,
        }
    }

    #[test]
    fn lookup_walks_json_secrets_and_never_quotes_values() {
        let r = plain(&[
            ("pw", "hunter2"),
            ("db", r#"{"user": "app", "hosts": ["a", "b"]}"#),
        ]);
        assert_eq!(r.lookup(&json!("pw")).unwrap(), json!("hunter2"));
        assert_eq!(r.lookup(&json!(["db", "user"])).unwrap(), json!("app"));
        assert_eq!(r.lookup(&json!(["db", "hosts", 1])).unwrap(), json!("b"));
        assert_eq!(r.lookup(&json!("db")).unwrap()["user"], json!("app"));
        for (arg, why) in [
            (json!("nope"), "`nope` does not exist"),
            (json!(["db", "password"]), "has no key `password`"),
            (json!(["pw", "x"]), "not a JSON object or list"),
            (json!(["db", "hosts", 5]), "has no key 5"),
        ] {
            let e = r.lookup(&arg).unwrap_err();
            assert!(e.contains(why), "{e}");
            assert!(!e.contains("hunter2") && !e.contains("app"), "{e}");
        }
        assert!(!format!("{r:?}").contains("hunter2"));
    }

    #[test]
    fn substitute_resolves_secrets_and_the_concat_around_them_only() {
        let r = plain(&[("pw", "hunter2")]);
        let v = json!({
            "url": {"concat": ["pg://u:", {"get_secret": "pw"}, "@h"]},
            "ip": {"get_attribute": ["SELF", "ip"]},
            "mixed": {"concat": [{"get_secret": "pw"}, {"get_attribute": ["SELF", "ip"]}]},
        });
        assert_eq!(
            r.substitute(&v).unwrap(),
            json!({
                "url": "pg://u:hunter2@h",
                "ip": {"get_attribute": ["SELF", "ip"]},
                "mixed": {"concat": ["hunter2", {"get_attribute": ["SELF", "ip"]}]},
            })
        );
        assert!(Revealed::used_in(&v));
        assert!(!Revealed::used_in(&json!({"a": [1, {"b": "get_secret"}]})));
    }

    #[test]
    fn names_are_checked() {
        for ok in ["a", "db_password", "x.y-Z9"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "a b", "a/b", "é", &"x".repeat(257)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
