//! The API client of a Kubernetes resource, from Cloudify's client configuration.
//!
//! A resource's `client_config.configuration` — or, when it has none, its master's
//! `configuration` over `cloudify.kubernetes.relationships.managed_by_master` ([`settings`]) —
//! says how to reach the API, in Cloudify's variants, tried in Cloudify's order:
//! `blueprint_file_name` (a kubeconfig among the blueprint's files), `manager_file_path` (a
//! kubeconfig on this machine), `file_content` (a kubeconfig as YAML text or a mapping); then
//! `api_options` (`host`, `api_key`, `ssl_ca_cert`, `cert_file`, `key_file`, `verify_ssl`) is
//! laid over the current context of that kubeconfig, or makes one of its own ([`kubeconfig`]).
//! Certificates and keys are file paths (relative ones from the blueprint's directory) or PEM
//! text. Everything then goes through kube's own kubeconfig loader, so bearer tokens, client
//! certificates and CA bundles work the same whichever variant gave them.
//!
//! TLS is verified unless `verify_ssl: false` (or a kubeconfig's `insecure-skip-tls-verify`)
//! is written, and then an event says so. Every request has connect, read and write timeouts.
//! Secret values met on the way (API keys, tokens, client keys, passwords) are collected into
//! [`Secrets`], which masks them in every message.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Map, Value as Json, json};

use super::KubeError;
use crate::plugins::{OperationContext, Related};

/// The relationship (base spelling, in every derived type's hierarchy) to a resource's master.
pub const MANAGED_BY_MASTER: &str = "cloudify.relationships.kubernetes.managed_by_master";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Secret values of a client configuration that must never reach an event or an error: the
/// project's one [`crate::secrets::Mask`], fed with what the configuration holds.
#[derive(Debug, Default, Clone)]
pub struct Secrets(crate::secrets::Mask);

impl Secrets {
    fn add(&mut self, value: &str) {
        let value = value.trim();
        // Short values would mask ordinary words; real tokens and keys are long.
        if value.len() >= 6 {
            self.0.add_text(value);
        }
    }

    pub fn mask(&self, text: &str) -> String {
        self.0.apply(text)
    }
}

/// A client and what was learnt making it.
pub struct Connection {
    pub client: kube::Client,
    /// The API server's URL, for messages.
    pub server: String,
    pub secrets: Secrets,
}

/// The client configuration of a node: its own `client_config` when that sets a way to reach
/// the API, else its master's (`configuration` and `authentication` of the target of its
/// `managed_by_master` relationship). Returns the configuration, the authentication and where
/// they came from.
pub fn settings<'a>(
    node: &str,
    properties: &'a Map<String, Json>,
    related: &'a [Related],
) -> Result<(&'a Json, Option<&'a Json>, String), KubeError> {
    let own = properties.get("client_config");
    if let Some(configuration) = own.and_then(|c| c.get("configuration"))
        && is_set(configuration)
    {
        let authentication = own.and_then(|c| c.get("authentication"));
        return Ok((
            configuration,
            authentication,
            format!("{node}'s client_config"),
        ));
    }
    let master = related.iter().find(|r| {
        r.type_hierarchy.iter().any(|t| {
            t == MANAGED_BY_MASTER || t == "cloudify.kubernetes.relationships.managed_by_master"
        })
    });
    match master {
        Some(m) => match m.target_properties.get("configuration") {
            Some(configuration) if is_set(configuration) => Ok((
                configuration,
                m.target_properties.get("authentication"),
                format!("the configuration of its master {}", m.target_node),
            )),
            _ => Err(KubeError::Config(format!(
                "{node} has no client_config and its master {} has no configuration: set `configuration` (api_options, file_content or blueprint_file_name) on the master",
                m.target_node
            ))),
        },
        None => Err(KubeError::Config(format!(
            "{node} has no client_config and no master: set `client_config.configuration`, or relate it to a cloudify.kubernetes.nodes.Master with cloudify.kubernetes.relationships.managed_by_master"
        ))),
    }
}

fn non_empty(v: Option<&Json>) -> bool {
    match v {
        None | Some(Json::Null) => false,
        Some(Json::String(s)) => !s.trim().is_empty(),
        Some(Json::Object(m)) => m.values().any(|v| non_empty(Some(v))),
        Some(Json::Array(a)) => !a.is_empty(),
        Some(_) => true,
    }
}

/// Whether a `configuration` sets any way to reach the API.
fn is_set(configuration: &Json) -> bool {
    [
        "blueprint_file_name",
        "manager_file_path",
        "file_content",
        "api_options",
    ]
    .iter()
    .any(|k| non_empty(configuration.get(*k)))
}

fn text<'a>(map: &'a Json, key: &str) -> Option<&'a str> {
    map.get(key)
        .and_then(Json::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn config_error(what: &str, e: impl std::fmt::Display) -> KubeError {
    KubeError::Config(format!("{what}: {e}"))
}

/// `~/…` from the home directory, relative paths from `base`.
fn file_path(name: &str, base: &Path) -> PathBuf {
    if let Some(rest) = name.strip_prefix("~/")
        && let Some(home) = std::env::home_dir()
    {
        return home.join(rest);
    }
    base.join(name)
}

fn read_kubeconfig(path: &Path, given_as: &str) -> Result<Json, KubeError> {
    let what = format!("kubeconfig {given_as}");
    let text = std::fs::read_to_string(path).map_err(|e| config_error(&what, e))?;
    let mut config = parse_yaml(&text, &what)?;
    // Paths inside a kubeconfig file are relative to that file, as kubectl reads them.
    let dir = path.parent().unwrap_or(Path::new("."));
    absolutise(
        &mut config,
        "clusters",
        "cluster",
        &["certificate-authority"],
        dir,
    );
    absolutise(
        &mut config,
        "users",
        "user",
        &["client-certificate", "client-key", "tokenFile"],
        dir,
    );
    Ok(config)
}

fn parse_yaml(text: &str, what: &str) -> Result<Json, KubeError> {
    match serde_saphyr::from_str::<Json>(text) {
        Ok(v @ Json::Object(_)) => Ok(v),
        // The parser's message may quote the text, which may hold a token: say where only.
        Ok(_) => Err(KubeError::Config(format!("{what} is not a mapping"))),
        Err(_) => Err(KubeError::Config(format!("{what} is not valid YAML"))),
    }
}

fn absolutise(config: &mut Json, list: &str, inner: &str, keys: &[&str], dir: &Path) {
    let Some(entries) = config.get_mut(list).and_then(Json::as_array_mut) else {
        return;
    };
    for entry in entries {
        let Some(fields) = entry.get_mut(inner).and_then(Json::as_object_mut) else {
            continue;
        };
        for key in keys {
            if let Some(Json::String(p)) = fields.get_mut(*key)
                && Path::new(p.as_str()).is_relative()
            {
                *p = dir.join(p.as_str()).to_string_lossy().into_owned();
            }
        }
    }
}

/// The kubeconfig `configuration` describes (see the module doc), the secrets in it, and
/// whether TLS verification is off. `resources` is the blueprint's directory.
pub fn kubeconfig(configuration: &Json, resources: &Path) -> Result<(Json, Secrets), KubeError> {
    let mut config = if let Some(name) = text(configuration, "blueprint_file_name") {
        Some(read_kubeconfig(
            &resources.join(name),
            &format!("{name} (blueprint_file_name)"),
        )?)
    } else if let Some(name) = text(configuration, "manager_file_path") {
        Some(read_kubeconfig(
            &file_path(name, resources),
            &format!("{name} (manager_file_path)"),
        )?)
    } else {
        match configuration.get("file_content") {
            Some(Json::String(s)) if !s.trim().is_empty() => {
                Some(parse_yaml(s, "the kubeconfig in file_content")?)
            }
            Some(m @ Json::Object(_)) if non_empty(Some(m)) => Some(m.clone()),
            None | Some(Json::Null) | Some(Json::String(_)) | Some(Json::Object(_)) => None,
            Some(_) => {
                return Err(KubeError::Config(
                    "file_content must be a kubeconfig, as YAML text or a mapping".to_string(),
                ));
            }
        }
    };
    let options = configuration
        .get("api_options")
        .filter(|o| non_empty(Some(o)));
    let mut secrets = Secrets::default();
    if let Some(options) = options {
        if let Some(key) = text(options, "api_key") {
            secrets.add(key);
        }
        let config = config.get_or_insert_with(|| {
            json!({
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "windlass", "cluster": {}}],
                "users": [{"name": "windlass", "user": {}}],
                "contexts": [{"name": "windlass", "context": {"cluster": "windlass", "user": "windlass"}}],
                "current-context": "windlass",
            })
        });
        overlay(config, options, resources)?;
    }
    let Some(config) = config else {
        return Err(KubeError::Config(
            "configuration sets no way to reach the API: give api_options (host, api_key), file_content or blueprint_file_name".to_string(),
        ));
    };
    for user in config
        .get("users")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        for key in ["token", "client-key-data", "password"] {
            if let Some(v) = user.pointer(&format!("/user/{key}")).and_then(Json::as_str) {
                secrets.add(v);
            }
        }
    }
    Ok((config, secrets))
}

/// The names of the current context's cluster and user (the first context when none is set).
fn current(config: &Json) -> (Option<String>, Option<String>) {
    let contexts = config.get("contexts").and_then(Json::as_array);
    let wanted = config.get("current-context").and_then(Json::as_str);
    let context = contexts.and_then(|c| {
        c.iter()
            .find(|c| wanted.is_some() && c.get("name").and_then(Json::as_str) == wanted)
            .or_else(|| c.first())
    });
    let field = |k: &str| {
        context
            .and_then(|c| c.pointer(&format!("/context/{k}")))
            .and_then(Json::as_str)
            .map(str::to_string)
    };
    (field("cluster"), field("user"))
}

/// The `inner` mapping of the entry of `list` named `name` (made when missing).
fn entry<'a>(
    config: &'a mut Json,
    list: &str,
    inner: &str,
    name: &str,
) -> Option<&'a mut Map<String, Json>> {
    let entries = config.get_mut(list)?.as_array_mut()?;
    let i = match entries
        .iter()
        .position(|e| e.get("name").and_then(Json::as_str) == Some(name))
    {
        Some(i) => i,
        None => {
            entries.push(json!({"name": name, inner: {}}));
            entries.len() - 1
        }
    };
    let e = entries[i].as_object_mut()?;
    e.entry(inner.to_string())
        .or_insert_with(|| json!({}))
        .as_object_mut()
}

/// PEM text goes in as `KEY-data` (base64, as kubeconfigs carry it), a file name as `KEY`.
fn pem_or_path(fields: &mut Map<String, Json>, key: &str, value: &str, resources: &Path) {
    fields.remove(key);
    fields.remove(&format!("{key}-data"));
    if value.contains("-----BEGIN") {
        fields.insert(
            format!("{key}-data"),
            Json::String(base64::engine::general_purpose::STANDARD.encode(value)),
        );
    } else {
        fields.insert(
            key.to_string(),
            Json::String(file_path(value, resources).to_string_lossy().into_owned()),
        );
    }
}

/// `verify_ssl` as written: false only when it says so.
fn verify_ssl(options: &Json) -> bool {
    match options.get("verify_ssl") {
        Some(Json::Bool(b)) => *b,
        Some(Json::String(s)) => !s.trim().eq_ignore_ascii_case("false"),
        _ => true,
    }
}

fn overlay(config: &mut Json, options: &Json, resources: &Path) -> Result<(), KubeError> {
    let (cluster, user) = current(config);
    let cluster = cluster.unwrap_or_else(|| "windlass".to_string());
    let user = user.unwrap_or_else(|| "windlass".to_string());
    let Some(c) = entry(config, "clusters", "cluster", &cluster) else {
        return Err(KubeError::Config(
            "the kubeconfig has no list of clusters".to_string(),
        ));
    };
    if let Some(host) = text(options, "host") {
        c.insert("server".to_string(), Json::String(host.to_string()));
    }
    if c.get("server")
        .and_then(Json::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(KubeError::Config(
            "api_options needs `host`, the API server's URL (https://HOST:PORT)".to_string(),
        ));
    }
    if let Some(ca) = text(options, "ssl_ca_cert") {
        pem_or_path(c, "certificate-authority", ca, resources);
    }
    if !verify_ssl(options) {
        c.insert("insecure-skip-tls-verify".to_string(), Json::Bool(true));
    }
    let Some(u) = entry(config, "users", "user", &user) else {
        return Err(KubeError::Config(
            "the kubeconfig has no list of users".to_string(),
        ));
    };
    if let Some(key) = text(options, "api_key") {
        let token = key.strip_prefix("Bearer ").unwrap_or(key).trim();
        u.insert("token".to_string(), Json::String(token.to_string()));
    }
    if let Some(cert) = text(options, "cert_file") {
        pem_or_path(u, "client-certificate", cert, resources);
    }
    if let Some(key) = text(options, "key_file") {
        pem_or_path(u, "client-key", key, resources);
    }
    Ok(())
}

/// The client for the operation's node (see the module doc).
pub async fn connect(ctx: &OperationContext) -> Result<Connection, KubeError> {
    let (configuration, authentication, origin) =
        settings(&ctx.node_id, &ctx.node_properties, &ctx.related)?;
    if let Some(auth) = authentication
        && ["gcp_service_account", "azure_service_account"]
            .iter()
            .any(|k| non_empty(auth.get(*k)))
    {
        return Err(KubeError::Config(format!(
            "{origin}: `authentication` (Google or Azure service accounts) is not supported by windlass yet: give a kubeconfig or api_options with a token"
        )));
    }
    let (config, secrets) = kubeconfig(configuration, &ctx.resources)?;
    let masked =
        |e: &dyn std::fmt::Display| KubeError::Config(secrets.mask(&format!("{origin}: {e}")));
    let kubeconfig: Kubeconfig = serde_json::from_value(config).map_err(|e| masked(&e))?;
    let mut client_config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| masked(&e))?;
    client_config.connect_timeout = Some(CONNECT_TIMEOUT);
    client_config.read_timeout = Some(READ_TIMEOUT);
    client_config.write_timeout = Some(WRITE_TIMEOUT);
    client_config.reset_reader_on_write = true;
    // One retry policy, ours (`api::call`: 429 and every 5xx, bounded); kube's own would retry
    // 429/503/504 again inside each of our attempts.
    client_config.default_retry = false;
    let server = client_config.cluster_url.to_string();
    let server = server.trim_end_matches('/').to_string();
    if client_config.accept_invalid_certs {
        ctx.log(
            "warning",
            format!(
                "TLS verification is off for {server} ({origin} says verify_ssl: false or insecure-skip-tls-verify): its certificate is not checked"
            ),
        );
    }
    super::install_crypto_provider();
    let client = kube::Client::try_from(client_config).map_err(|e| masked(&e))?;
    Ok(Connection {
        client,
        server,
        secrets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn map(v: Json) -> Map<String, Json> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn master(props: Json) -> Related {
        Related {
            type_hierarchy: vec![
                "cloudify.kubernetes.relationships.managed_by_master".into(),
                MANAGED_BY_MASTER.into(),
                "cloudify.relationships.connected_to".into(),
            ],
            target_node: "master".into(),
            target_properties: Arc::new(map(props)),
        }
    }

    #[test]
    fn own_client_config_wins_and_the_master_is_the_fallback() {
        let related = [master(
            json!({"configuration": {"api_options": {"host": "https://m"}}}),
        )];
        let own = map(
            json!({"client_config": {"configuration": {"api_options": {"host": "https://own"}}}}),
        );
        let (c, _, origin) = settings("web", &own, &related).unwrap();
        assert_eq!(c.pointer("/api_options/host"), Some(&json!("https://own")));
        assert_eq!(origin, "web's client_config");
        // An empty client_config (what the type's defaults leave) is no configuration.
        let empty = map(json!({"client_config": {"configuration": {"api_options": {}}}}));
        let (c, _, origin) = settings("web", &empty, &related).unwrap();
        assert_eq!(c.pointer("/api_options/host"), Some(&json!("https://m")));
        assert_eq!(origin, "the configuration of its master master");
        let e = settings("web", &empty, &[]).unwrap_err();
        assert!(e.to_string().contains("managed_by_master"), "{e}");
    }

    #[test]
    fn api_options_make_a_kubeconfig_and_their_key_is_a_secret() {
        let configuration = json!({"api_options": {
            "host": "https://10.0.0.1:6443", "api_key": "Bearer tok-123456789",
            "ssl_ca_cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "verify_ssl": "false"}});
        let (config, secrets) = kubeconfig(&configuration, Path::new("/bp")).unwrap();
        let cluster = &config["clusters"][0]["cluster"];
        assert_eq!(cluster["server"], json!("https://10.0.0.1:6443"));
        assert_eq!(cluster["insecure-skip-tls-verify"], json!(true));
        assert!(cluster["certificate-authority-data"].is_string());
        assert_eq!(config["users"][0]["user"]["token"], json!("tok-123456789"));
        assert_eq!(
            secrets.mask("sent Bearer tok-123456789 to it"),
            "sent ****** to it"
        );
        assert_eq!(secrets.mask("token tok-123456789"), "token ******");
    }

    #[test]
    fn api_options_lay_over_a_kubeconfig_and_file_paths_are_from_the_blueprint() {
        let configuration = json!({
            "file_content": "apiVersion: v1\nclusters:\n- name: c\n  cluster: {server: 'https://a'}\nusers:\n- name: u\n  user: {token: kubeconfig-token}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
            "api_options": {"host": "https://b", "ssl_ca_cert": "ca.pem"}});
        let (config, secrets) = kubeconfig(&configuration, Path::new("/bp")).unwrap();
        assert_eq!(
            config["clusters"][0]["cluster"]["server"],
            json!("https://b")
        );
        assert_eq!(
            config["clusters"][0]["cluster"]["certificate-authority"],
            json!("/bp/ca.pem")
        );
        assert!(
            config["clusters"][0]["cluster"]
                .get("insecure-skip-tls-verify")
                .is_none()
        );
        assert_eq!(secrets.mask("kubeconfig-token"), "******");
    }

    #[test]
    fn api_options_without_a_host_are_refused() {
        let e = kubeconfig(
            &json!({"api_options": {"api_key": "abcdefgh"}}),
            Path::new("/"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("`host`"), "{e}");
        assert!(!e.to_string().contains("abcdefgh"));
    }

    #[test]
    fn verify_ssl_is_off_only_when_written_false() {
        assert!(verify_ssl(&json!({})));
        assert!(verify_ssl(&json!({"verify_ssl": "true"})));
        assert!(verify_ssl(&json!({"verify_ssl": true})));
        assert!(!verify_ssl(&json!({"verify_ssl": false})));
        assert!(!verify_ssl(&json!({"verify_ssl": "False"})));
    }
}
