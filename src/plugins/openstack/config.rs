//! The client configuration of an OpenStack node: its `client_config` property, read into a
//! [`ClientConfig`], and the [`Secrets`] that must never be printed.
//!
//! The password and the application credential's secret live only here and in the body of a
//! Keystone request: [`ClientConfig`]'s `Debug` hides them, and every message that leaves the
//! plugin goes through [`Secrets::mask`].

use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value as Json};

use super::api::OsError;

/// How long one HTTP request may take when `client_config.timeout` is not written.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How the plugin authenticates to Keystone v3.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Auth {
    /// `password` with a user (by name and domain, or id) scoped to a project.
    Password {
        username: String,
        password: String,
        user_domain: Domain,
        project: Project,
    },
    /// `application_credential`: an id, or a name with the user it belongs to, and its secret.
    /// Such a token is scoped to the credential's project by Keystone.
    ApplicationCredential {
        id: Option<String>,
        name: Option<String>,
        username: Option<String>,
        user_domain: Domain,
        secret: String,
    },
}

/// A domain by id or by name (`Default` when neither is written, as the clients do).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Domain {
    Id(String),
    Name(String),
}

/// A project by id, or by name within a domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Project {
    Id(String),
    Name { name: String, domain: Domain },
}

/// What `client_config` says.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClientConfig {
    /// Keystone's v3 root, without a trailing slash (`…/v3`).
    pub auth_url: String,
    pub auth: Auth,
    pub region: Option<String>,
    /// Which catalog endpoints: `public` unless written.
    pub interface: String,
    pub insecure: bool,
    /// PEM text of the CAs to trust besides the system's.
    pub ca_pem: Option<String>,
    pub timeout: Duration,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match &self.auth {
            Auth::Password { .. } => "password",
            Auth::ApplicationCredential { .. } => "application_credential",
        };
        f.debug_struct("ClientConfig")
            .field("auth_url", &self.auth_url)
            .field("auth", &auth)
            .field("region", &self.region)
            .field("interface", &self.interface)
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

/// Values that must never appear in an event, a log line or an error.
#[derive(Debug, Clone, Default)]
pub struct Secrets(Vec<String>);

impl Secrets {
    pub fn add(&mut self, value: &str) {
        let value = value.trim();
        // Very short values would mask ordinary words; they are masked where they are known to
        // be (the Keystone body) and nowhere else.
        if value.len() >= 4 && !self.0.iter().any(|s| s == value) {
            self.0.push(value.to_string());
            self.0.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.0 {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "******");
            }
        }
        out
    }
}

impl ClientConfig {
    /// Read `client_config` (the node's property, with the operation's `client_config` input
    /// laid over it key by key). Relative `ca_cert` paths are read under `base`.
    pub fn read(
        property: Option<&Json>,
        input: Option<&Json>,
        base: &Path,
    ) -> Result<(ClientConfig, Secrets), OsError> {
        let mut merged = Map::new();
        for layer in [property, input].into_iter().flatten() {
            match layer {
                Json::Object(m) => merged.extend(m.iter().map(|(k, v)| (k.clone(), v.clone()))),
                Json::Null => {}
                _ => return Err(OsError::Config("`client_config` is not a mapping".into())),
            }
        }
        let text = |key: &str| -> Result<Option<String>, OsError> {
            match merged.get(key) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::String(s)) if s.trim().is_empty() => Ok(None),
                Some(Json::String(s)) => Ok(Some(s.trim().to_string())),
                Some(Json::Number(n)) => Ok(Some(n.to_string())),
                Some(_) => Err(OsError::Config(format!(
                    "`client_config.{key}` must be a string"
                ))),
            }
        };
        let flag = |key: &str| -> Result<bool, OsError> {
            match merged.get(key) {
                None | Some(Json::Null) => Ok(false),
                Some(Json::Bool(b)) => Ok(*b),
                Some(Json::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
                Some(_) => Err(OsError::Config(format!(
                    "`client_config.{key}` must be true or false"
                ))),
            }
        };
        let mut secrets = Secrets::default();

        let auth_url = text("auth_url")?
            .ok_or_else(|| OsError::Config("`client_config.auth_url` is required".into()))?;
        if !(auth_url.starts_with("http://") || auth_url.starts_with("https://")) {
            return Err(OsError::Config(format!(
                "`client_config.auth_url` must be an http:// or https:// URL, not {auth_url:?}"
            )));
        }
        let trimmed = auth_url.trim_end_matches('/');
        let auth_url = if trimmed.ends_with("/v3") {
            trimmed.to_string()
        } else {
            format!("{trimmed}/v3")
        };

        let domain = |id: &str, name: &str| -> Result<Domain, OsError> {
            Ok(match (text(id)?, text(name)?) {
                (Some(id), _) => Domain::Id(id),
                (None, Some(name)) => Domain::Name(name),
                (None, None) => Domain::Name("Default".to_string()),
            })
        };
        let user_domain = domain("user_domain_id", "user_domain_name")?;
        let auth_type = text("auth_type")?.unwrap_or_default().to_ascii_lowercase();
        let app_id = text("application_credential_id")?;
        let app_name = text("application_credential_name")?;
        let app_secret = text("application_credential_secret")?;
        let wants_app = matches!(
            auth_type.as_str(),
            "v3applicationcredential" | "application_credential"
        ) || (auth_type.is_empty() && app_secret.is_some());
        let auth = if wants_app {
            let secret = app_secret.ok_or_else(|| {
                OsError::Config(
                    "application credential auth needs `client_config.application_credential_secret`"
                        .into(),
                )
            })?;
            secrets.add(&secret);
            if app_id.is_none() && app_name.is_none() {
                return Err(OsError::Config(
                    "application credential auth needs `application_credential_id` or `application_credential_name`"
                        .into(),
                ));
            }
            let username = text("username")?;
            if app_id.is_none() && username.is_none() {
                return Err(OsError::Config(
                    "an application credential named by `application_credential_name` needs `username`"
                        .into(),
                ));
            }
            Auth::ApplicationCredential {
                id: app_id,
                name: app_name,
                username,
                user_domain,
                secret,
            }
        } else {
            if !(auth_type.is_empty() || auth_type == "password" || auth_type == "v3password") {
                return Err(OsError::Config(format!(
                    "`client_config.auth_type` {auth_type:?} is not supported (password, v3applicationcredential)"
                )));
            }
            let username = text("username")?
                .ok_or_else(|| OsError::Config("`client_config.username` is required".into()))?;
            let password = text("password")?
                .ok_or_else(|| OsError::Config("`client_config.password` is required".into()))?;
            secrets.add(&password);
            let project = match (text("project_id")?, text("project_name")?) {
                (Some(id), _) => Project::Id(id),
                (None, Some(name)) => Project::Name {
                    name,
                    domain: domain("project_domain_id", "project_domain_name")?,
                },
                (None, None) => {
                    return Err(OsError::Config(
                        "`client_config.project_name` (or `project_id`) is required".into(),
                    ));
                }
            };
            Auth::Password {
                username,
                password,
                user_domain,
                project,
            }
        };

        let ca_pem = match text("ca_cert")? {
            None => None,
            Some(t) if t.contains("-----BEGIN") => Some(t),
            Some(path) => {
                let path = if Path::new(&path).is_absolute() {
                    Path::new(&path).to_path_buf()
                } else {
                    base.join(&path)
                };
                Some(std::fs::read_to_string(&path).map_err(|e| {
                    OsError::Config(format!(
                        "cannot read `client_config.ca_cert` {}: {e}",
                        path.display()
                    ))
                })?)
            }
        };
        let timeout = match merged.get("timeout") {
            None | Some(Json::Null) => DEFAULT_TIMEOUT,
            Some(v) => match v.as_f64().filter(|s| *s > 0.0 && s.is_finite()) {
                Some(s) => Duration::from_secs_f64(s),
                None => {
                    return Err(OsError::Config(
                        "`client_config.timeout` must be a positive number of seconds".into(),
                    ));
                }
            },
        };
        let interface = text("interface")?
            .unwrap_or_else(|| "public".to_string())
            .trim_end_matches("URL")
            .to_string();
        Ok((
            ClientConfig {
                auth_url,
                auth,
                region: text("region_name")?,
                interface,
                insecure: flag("insecure")?,
                ca_pem,
                timeout,
            },
            secrets,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn password_config_with_defaults() {
        let p = json!({"auth_url": "http://k:5000", "username": "u", "password": "hunter22",
                       "project_name": "p", "region_name": "R"});
        let (c, s) = ClientConfig::read(Some(&p), None, Path::new("/")).unwrap();
        assert_eq!(c.auth_url, "http://k:5000/v3");
        assert_eq!(c.interface, "public");
        assert!(
            matches!(&c.auth, Auth::Password { project: Project::Name { domain: Domain::Name(d), .. }, .. } if d == "Default")
        );
        assert_eq!(s.mask("x hunter22 y"), "x ****** y");
        assert!(!format!("{c:?}").contains("hunter22"));
    }

    #[test]
    fn application_credentials_and_errors() {
        let p = json!({"auth_url": "https://k/v3/", "application_credential_id": "a1",
                       "application_credential_secret": "s3cr3t!"});
        let (c, s) = ClientConfig::read(Some(&p), None, Path::new("/")).unwrap();
        assert!(matches!(c.auth, Auth::ApplicationCredential { .. }));
        assert_eq!(c.auth_url, "https://k/v3");
        assert_eq!(s.mask("s3cr3t!"), "******");
        let missing = json!({"auth_url": "http://k", "username": "u", "password": "pw"});
        let e = ClientConfig::read(Some(&missing), None, Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("project_name"), "{e}");
    }
}
