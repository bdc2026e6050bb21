//! The 2016 plugin's `cloudify.kubernetes.MicroService`: a descriptor applied with kubectl on
//! the Kubernetes master, over SSH.
//!
//! Flow of `microservice.apply` (the node's `create`):
//! 1. The master: the target of the instance's `cloudify.kubernetes.relationships.connected_to_master`
//!    relationship, a `cloudify.kubernetes.Master`. Its properties (runtime functions resolved)
//!    become an SSH [`HostSpec`] through the `ssh` plugin's [`host_spec`]: `ip`, `ssh_user`,
//!    `ssh_keyfilename` or `ssh_key` (the key's text), `ssh_port`, `known_hosts_file`,
//!    `accept_new_host_keys` ([`Master`]).
//! 2. The descriptor ([`descriptors`]): exactly one of `config` (a mapping, or YAML text),
//!    `config_files` (`[{file, overrides}]`, blueprint files) or `config_path` with
//!    `config_overrides`. Files are parsed without rendering, as Cloudify did; overrides are
//!    applied by `crate::template` with `%{…}` tokens from a [`TokenContext`] (the management IP
//!    from `--management-ip`, `WINDLASS_MANAGEMENT_IP` or the default route).
//! 3. `kubectl apply -f - -o json` on the master, the objects on standard input, never on the
//!    command line. What kubectl applied is recorded at once in the instance's runtime
//!    properties: `applied` (a list of `{apiVersion, kind, name, namespace, replicas}`) and, when
//!    the microservice holds one Deployment, `replicas` (which `kube_scale` keeps current).
//!
//! `microservice.delete` runs `kubectl delete -f - --ignore-not-found=true` with the recorded
//! objects (or, when nothing was recorded, the descriptor as it would be applied; when that
//! cannot even be made, nothing was ever applied and there is nothing to delete).
//!
//! kubectl's standard error is quoted in failures and logged as events; key text never leaves
//! the SSH handshake, and the `ssh` plugin's mask hides it (and `*password`/`*secret`/`*token`
//! values) in everything shown.

use std::path::Path;

use serde_json::{Map, Value as Json};

use super::kubectl::{self, Applied};
use crate::engine::attributes::{Resolver, Scope};
use crate::plugins::ssh::{self, HostSpec, Mask, Output, SpecError, SshError, host_spec};
use crate::plugins::{OpError, OperationContext};
use crate::template::{
    Descriptor, TemplateError, TokenContext, apply_overrides, load_descriptor, parse_documents,
    resolve_management_ip,
};

/// The relationship that joins a microservice to its master.
pub const CONNECTED_TO_MASTER: &str = "cloudify.kubernetes.relationships.connected_to_master";
/// The master's type.
pub const MASTER_TYPE: &str = "cloudify.kubernetes.Master";
/// The microservice's type.
pub const MICROSERVICE_TYPE: &str = "cloudify.kubernetes.MicroService";

/// Why a microservice or its master cannot be used as written.
#[derive(Debug, thiserror::Error)]
pub enum MicroserviceError {
    #[error(
        "`{node}` has no `{CONNECTED_TO_MASTER}` relationship: a MicroService needs the master kubectl runs on"
    )]
    NoMaster { node: String },
    #[error(
        "`{node}` is connected to {count} masters ({names}); kubectl runs on one: keep one `connected_to_master`"
    )]
    SeveralMasters {
        node: String,
        count: usize,
        names: String,
    },
    #[error("`{master}` is a {ty}, not a {MASTER_TYPE}: kubectl runs on a master")]
    NotAMaster { master: String, ty: String },
    #[error("master `{master}`: property `{property}`: {reason}")]
    MasterProperty {
        master: String,
        property: String,
        reason: String,
    },
    #[error("master `{master}`: {source}")]
    MasterConnection { master: String, source: SpecError },
    #[error(
        "`{node}` sets {given}: give exactly one of `config`, `config_files` and `config_path`"
    )]
    Sources { node: String, given: String },
    #[error(
        "`{node}` sets `config_overrides` without `config_path`: they apply to config_path's descriptor"
    )]
    OverridesWithoutPath { node: String },
    #[error("`{node}`: `{property}` must be {expected}")]
    Shape {
        node: String,
        property: String,
        expected: &'static str,
    },
    #[error("`{node}`: descriptor `{file}` is not in the blueprint's files: {reason}")]
    NoFile {
        node: String,
        file: String,
        reason: String,
    },
    #[error(
        "`{node}`: `{file}` holds {count} objects; overrides apply to a descriptor of one object"
    )]
    OverridesNeedOneObject {
        node: String,
        file: String,
        count: usize,
    },
    #[error("`{node}`: {file}: {source}")]
    Template {
        node: String,
        file: String,
        /// Boxed: template errors are large, and this error travels in every `Result`.
        source: Box<TemplateError>,
    },
    #[error("`{node}`: descriptor object {index} of {file}: it has no {field}")]
    Object {
        node: String,
        file: String,
        index: usize,
        field: &'static str,
    },
}

/// A master that kubectl commands run on: where to connect, and what to hide in messages.
pub struct Master {
    pub node: String,
    pub spec: HostSpec,
    pub mask: Mask,
}

/// The master's properties that describe its SSH login, renamed for [`host_spec`]
/// (`ssh_key` is the key's text: `key`).
const LOGIN_PROPERTIES: &[(&str, &str)] = &[
    ("ip", "ip"),
    ("ssh_user", "ssh_user"),
    ("ssh_keyfilename", "ssh_keyfilename"),
    ("ssh_key", "key"),
    ("ssh_port", "ssh_port"),
    ("known_hosts_file", "known_hosts_file"),
    ("accept_new_host_keys", "accept_new_host_keys"),
];

impl Master {
    /// The master described by `properties` (runtime functions already resolved), with
    /// `overrides` (e.g. `kube_scale`'s `ssh_user`, already in host_spec's names) winning.
    /// Relative key and known_hosts files are found under `base`, the blueprint's directory.
    pub fn new(
        node: &str,
        properties: &Map<String, Json>,
        overrides: &Map<String, Json>,
        base: &Path,
    ) -> Result<Master, MicroserviceError> {
        let mut login: Map<String, Json> = LOGIN_PROPERTIES
            .iter()
            .filter_map(|(from, to)| Some((to.to_string(), properties.get(*from)?.clone())))
            .collect();
        // `host_spec` prefers key text to a key file whatever the layer: a key given in
        // `overrides` replaces both of the master's.
        if ["key", "key_filename"]
            .iter()
            .any(|k| overrides.contains_key(*k))
        {
            login.remove("key");
            login.remove("ssh_keyfilename");
        }
        let layers = [overrides, &login];
        let spec =
            host_spec(&layers, base).map_err(|source| MicroserviceError::MasterConnection {
                master: node.to_string(),
                source,
            })?;
        // The execution's own secrets are masked by its recorder and in its error.
        let mask = ssh::mask(&spec, &layers, &crate::secrets::Revealed::none());
        Ok(Master {
            node: node.to_string(),
            spec,
            mask,
        })
    }

    /// `user@host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}@{}:{}", self.spec.user, self.spec.host, self.spec.port)
    }

    /// Run a kubectl command line on the master; a non-zero exit is an error quoting kubectl's
    /// last standard-error lines. `log` gets every standard-error line (masked), and the
    /// standard-output lines when `log_stdout`.
    pub async fn kubectl(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        log_stdout: bool,
        log: &(dyn Fn(&str, String) + Sync),
    ) -> Result<Output, SshError> {
        log(
            "info",
            format!("running `{command}` on {} ({})", self.address(), self.node),
        );
        let out = ssh::run_on(&self.spec, command, stdin).await?;
        if log_stdout {
            for l in &out.stdout {
                log("stdout", self.mask.apply(l));
            }
        }
        for l in &out.stderr {
            log("stderr", self.mask.apply(l));
        }
        out.checked(&self.spec, command)
    }

    /// An SSH failure as an operation error: masked, and retried only when retrying can help.
    pub fn op_error(&self, e: &SshError, timeout_recoverable: bool) -> OpError {
        ssh::op_error(e, &self.mask, timeout_recoverable)
    }
}

/// A node's properties with their runtime functions (`get_attribute`, `get_secret`, …) resolved
/// for instance `instance`; the first that cannot be resolved is an error naming it.
pub fn resolved_properties(
    resolver: &Resolver<'_>,
    node: &str,
    properties: &Map<String, Json>,
    instance: u32,
) -> Result<Map<String, Json>, MicroserviceError> {
    let scope = Scope {
        this: Some(instance),
        ..Scope::default()
    };
    properties
        .iter()
        .map(|(k, v)| {
            resolver
                .resolve(v, scope)
                .map(|v| (k.clone(), v))
                .map_err(|reason| MicroserviceError::MasterProperty {
                    master: node.to_string(),
                    property: k.clone(),
                    reason,
                })
        })
        .collect()
}

/// The master of the operation's instance, over `connected_to_master`.
fn master_of(ctx: &OperationContext) -> Result<Master, MicroserviceError> {
    let no_master = || MicroserviceError::NoMaster {
        node: ctx.node_id.clone(),
    };
    let topology = ctx.topology.as_ref().ok_or_else(no_master)?;
    let masters: Vec<_> = topology
        .targets()
        .filter(|t| {
            t.relationship
                .type_hierarchy
                .iter()
                .any(|h| h == CONNECTED_TO_MASTER)
        })
        .collect();
    let target = match masters.as_slice() {
        [] => return Err(no_master()),
        [one] => one,
        several => {
            return Err(MicroserviceError::SeveralMasters {
                node: ctx.node_id.clone(),
                count: several.len(),
                names: several
                    .iter()
                    .map(|t| t.instance_id)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    };
    if !target.node.type_hierarchy.iter().any(|h| h == MASTER_TYPE) {
        return Err(MicroserviceError::NotAMaster {
            master: target.node.id.0.clone(),
            ty: target.node.type_name.clone(),
        });
    }
    let resolver = Resolver {
        compiled: &topology.compiled,
        plan: &topology.plan,
        instances: &ctx.instances,
        deployment: &ctx.deployment_id,
        secrets: &ctx.secrets,
    };
    let properties = resolved_properties(
        &resolver,
        &target.node.id.0,
        &target.node.properties,
        target.instance,
    )?;
    Master::new(&target.node.id.0, &properties, &Map::new(), &ctx.resources)
}

/// What `%{…}` tokens stand for in this operation's overrides.
fn tokens(ctx: &OperationContext) -> TokenContext {
    let (management_ip, management_ip_problem) = match resolve_management_ip(None) {
        Ok(ip) => (Some(ip.addr.to_string()), None),
        Err(e) => (None, Some(e.to_string())),
    };
    TokenContext {
        management_ip,
        management_ip_problem,
        deployment_id: ctx.deployment_id.clone(),
        node_id: ctx.node_id.clone(),
        node_properties: (*ctx.node_properties).clone(),
        instance_id: ctx.instance_id.clone(),
        instance_runtime_properties: ctx.instances.runtime_properties(&ctx.instance_id),
    }
}

/// Whether a property holds something (its type's defaults `{}`, `[]` and `''` do not).
fn given(v: Option<&Json>) -> bool {
    match v {
        None | Some(Json::Null) => false,
        Some(Json::String(s)) => !s.is_empty(),
        Some(Json::Array(a)) => !a.is_empty(),
        Some(Json::Object(m)) => !m.is_empty(),
        Some(_) => true,
    }
}

/// The objects a microservice describes, overrides applied, in the order written.
pub fn descriptors(
    node: &str,
    properties: &Map<String, Json>,
    resources: &Path,
    tokens: &TokenContext,
) -> Result<Vec<Json>, MicroserviceError> {
    let shape = |property: &str, expected: &'static str| MicroserviceError::Shape {
        node: node.to_string(),
        property: property.to_string(),
        expected,
    };
    let sources: Vec<&str> = ["config", "config_files", "config_path"]
        .into_iter()
        .filter(|k| given(properties.get(*k)))
        .collect();
    if sources.len() != 1 {
        return Err(MicroserviceError::Sources {
            node: node.to_string(),
            given: if sources.is_empty() {
                "none of them".to_string()
            } else {
                sources
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            },
        });
    }
    let strings = |property: &str, v: Option<&Json>| -> Result<Vec<String>, MicroserviceError> {
        match v {
            None | Some(Json::Null) => Ok(Vec::new()),
            Some(Json::Array(a)) => a
                .iter()
                .map(|o| o.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| shape(property, "a list of override strings")),
            Some(_) => Err(shape(property, "a list of override strings")),
        }
    };
    let template = |file: &str, source: TemplateError| MicroserviceError::Template {
        node: node.to_string(),
        file: file.to_string(),
        source: Box::new(source),
    };
    let mut objects = Vec::new();
    let mut add = |file: &str, docs: Vec<Json>, overrides: &[String]| {
        if overrides.is_empty() {
            objects.extend(docs);
            return Ok(());
        }
        let [mut doc] = <[Json; 1]>::try_from(docs).map_err(|docs| {
            MicroserviceError::OverridesNeedOneObject {
                node: node.to_string(),
                file: file.to_string(),
                count: docs.len(),
            }
        })?;
        apply_overrides(&mut doc, overrides, tokens).map_err(|e| template(file, e))?;
        objects.push(doc);
        Ok(())
    };
    let read = |file: &str| -> Result<Vec<Json>, MicroserviceError> {
        let text = std::fs::read_to_string(resources.join(file)).map_err(|e| {
            MicroserviceError::NoFile {
                node: node.to_string(),
                file: file.to_string(),
                reason: e.to_string(),
            }
        })?;
        load_descriptor(Descriptor::Text {
            name: file,
            text: &text,
        })
        .map_err(|e| template(file, e))
    };
    let config_overrides = strings("config_overrides", properties.get("config_overrides"))?;
    if !config_overrides.is_empty() && sources[0] != "config_path" {
        return Err(MicroserviceError::OverridesWithoutPath {
            node: node.to_string(),
        });
    }
    match sources[0] {
        "config" => {
            let docs = match &properties["config"] {
                Json::Object(_) => vec![properties["config"].clone()],
                Json::String(text) => parse_documents("config", text, false)
                    .map_err(|e| template("config", e.into()))?,
                _ => return Err(shape("config", "a mapping (the descriptor) or YAML text")),
            };
            add("config", docs, &[])?;
        }
        "config_path" => {
            let Some(file) = properties["config_path"].as_str() else {
                return Err(shape("config_path", "a file name"));
            };
            add(file, read(file)?, &config_overrides)?;
        }
        _ => {
            let Some(list) = properties["config_files"].as_array() else {
                return Err(shape("config_files", "a list of `{file, overrides}`"));
            };
            for entry in list {
                let Some(file) = entry.get("file").and_then(Json::as_str) else {
                    return Err(shape(
                        "config_files",
                        "a list of `{file, overrides}`, each with `file` naming a blueprint file",
                    ));
                };
                let overrides = strings("config_files[].overrides", entry.get("overrides"))?;
                add(file, read(file)?, &overrides)?;
            }
        }
    }
    Ok(objects)
}

/// Each descriptor object as an [`Applied`] record (what it will be once applied).
fn records(node: &str, objects: &[Json]) -> Result<Vec<Applied>, MicroserviceError> {
    objects
        .iter()
        .enumerate()
        .map(|(i, o)| {
            kubectl::applied(o).map_err(|field| MicroserviceError::Object {
                node: node.to_string(),
                file: "the descriptor".to_string(),
                index: i + 1,
                field,
            })
        })
        .collect()
}

fn non_recoverable(e: impl std::fmt::Display, mask: Option<&Mask>) -> OpError {
    let text = e.to_string();
    OpError::NonRecoverable(match mask {
        Some(m) => m.apply(&text),
        None => text,
    })
}

fn logger(ctx: &OperationContext) -> impl Fn(&str, String) + Sync + '_ {
    move |level: &str, message: String| ctx.log(level, message)
}

/// `kubernetes.microservice.apply`.
pub async fn apply(ctx: &OperationContext) -> Result<Option<Json>, OpError> {
    let master = master_of(ctx).map_err(|e| non_recoverable(e, None))?;
    let mut spec_timeout = master.spec.clone();
    spec_timeout.command_timeout = ctx.timeout;
    let master = Master {
        spec: spec_timeout,
        ..master
    };
    let objects = descriptors(
        &ctx.node_id,
        &ctx.node_properties,
        &ctx.resources,
        &tokens(ctx),
    )
    .map_err(|e| non_recoverable(e, Some(&master.mask)))?;
    let planned = records(&ctx.node_id, &objects).map_err(|e| non_recoverable(e, None))?;
    ctx.log(
        "info",
        format!(
            "applying {} with kubectl on {}",
            planned
                .iter()
                .map(Applied::label)
                .collect::<Vec<_>>()
                .join(", "),
            master.node
        ),
    );
    let command = kubectl::apply();
    let out = master
        .kubectl(
            &command,
            Some(&kubectl::stdin_documents(&objects)),
            false,
            &logger(ctx),
        )
        .await
        .map_err(|e| master.op_error(&e, ctx.timeout_recoverable))?;
    let applied = match kubectl::applied_objects(&command, &out.stdout.join("\n")) {
        Ok(a) if a.len() == objects.len() => a,
        Ok(_) | Err(_) => {
            ctx.log(
                "warning",
                "kubectl's output did not list the applied objects; recording the descriptor's",
            );
            planned
        }
    };
    record(ctx, &applied)?;
    Ok(None)
}

/// Runtime properties `applied` and, for one Deployment, `replicas`.
fn record(ctx: &OperationContext, applied: &[Applied]) -> Result<(), OpError> {
    let set = |k: &str, v: Json| {
        ctx.instances
            .set_runtime_property(&ctx.instance_id, k, v)
            .map_err(OpError::NonRecoverable)
    };
    set(
        "applied",
        Json::Array(applied.iter().map(Applied::to_json).collect()),
    )?;
    let deployments: Vec<&Applied> = applied.iter().filter(|a| a.kind == "Deployment").collect();
    if let [d] = deployments.as_slice()
        && let Some(r) = d.replicas
    {
        set("replicas", Json::from(r))?;
    }
    for a in applied {
        ctx.log("info", format!("applied {}", a.label()));
    }
    Ok(())
}

/// `kubernetes.microservice.delete`.
pub async fn delete(ctx: &OperationContext) -> Result<Option<Json>, OpError> {
    let recorded: Vec<Applied> = ctx
        .instances
        .runtime_properties(&ctx.instance_id)
        .get("applied")
        .and_then(Json::as_array)
        .map(|a| a.iter().filter_map(Applied::from_json).collect())
        .unwrap_or_default();
    let objects = if recorded.is_empty() {
        // Nothing recorded: an apply may have run without its record (a killed process), so
        // delete what it would have applied.
        match descriptors(
            &ctx.node_id,
            &ctx.node_properties,
            &ctx.resources,
            &tokens(ctx),
        ) {
            Ok(o) => o,
            Err(e) => {
                ctx.log(
                    "info",
                    format!("nothing to delete: the descriptor was never applied ({e})"),
                );
                return Ok(None);
            }
        }
    } else {
        recorded.iter().map(Applied::stub).collect()
    };
    let master = master_of(ctx).map_err(|e| non_recoverable(e, None))?;
    let mut spec = master.spec.clone();
    spec.command_timeout = ctx.timeout;
    let master = Master { spec, ..master };
    master
        .kubectl(
            &kubectl::delete(),
            Some(&kubectl::stdin_documents(&objects)),
            true,
            &logger(ctx),
        )
        .await
        .map_err(|e| master.op_error(&e, ctx.timeout_recoverable))?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(v: Json) -> Map<String, Json> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn scratch(files: &[(&str, &str)]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "windlass-microservice-unit-{}-{}",
            std::process::id(),
            files.len()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn tokens() -> TokenContext {
        TokenContext {
            management_ip: Some("192.0.2.7".into()),
            deployment_id: "demo".into(),
            node_id: "web".into(),
            ..TokenContext::default()
        }
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - {name: a, env: [{name: IP, value: ''}]}\n";

    #[test]
    fn config_files_with_overrides_and_tokens() {
        let dir = scratch(&[("r/pod.yaml", POD)]);
        let p = props(
            json!({"config_files": [{"file": "r/pod.yaml", "overrides": [
            "['spec']['containers'][0]['env'][0]['value'] = '%{management_ip}'",
            "['metadata']['labels'] = {'d': '%{deployment.id}'}"]}]}),
        );
        let got = descriptors("web", &p, &dir, &tokens()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            got[0]["spec"]["containers"][0]["env"][0]["value"],
            "192.0.2.7"
        );
        assert_eq!(got[0]["metadata"]["labels"]["d"], "demo");
    }

    #[test]
    fn config_inline_and_config_path() {
        let inline = props(
            json!({"config": {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}}),
        );
        let got = descriptors("web", &inline, Path::new("/nonexistent"), &tokens()).unwrap();
        assert_eq!(got[0]["kind"], "Service");
        let text = props(
            json!({"config": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"}),
        );
        assert_eq!(
            descriptors("web", &text, Path::new("/x"), &tokens())
                .unwrap()
                .len(),
            2
        );
        let dir = scratch(&[("pod.yaml", POD), ("other", "")]);
        let p = props(json!({"config_path": "pod.yaml",
            "config_overrides": ["['metadata']['name'] = 'q'"]}));
        let got = descriptors("web", &p, &dir, &tokens()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(got[0]["metadata"]["name"], "q");
    }

    #[test]
    fn errors_name_the_node_file_and_override() {
        let dir = scratch(&[("pod.yaml", POD), ("a", ""), ("b", "")]);
        let missing = props(json!({"config_files": [{"file": "pod.yaml", "overrides": [
            "['spec']['containers'][1]['env'][0]['value'] = 'x'"]}]}));
        let e = descriptors("web", &missing, &dir, &tokens())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("`web`: pod.yaml: override `"), "{e}");
        assert!(e.contains("spec.containers[1]: the list has 1 item"), "{e}");
        let malformed =
            props(json!({"config_files": [{"file": "pod.yaml", "overrides": ["['spec' = 1"]}]}));
        let e = descriptors("web", &malformed, &dir, &tokens()).unwrap_err();
        assert!(matches!(e, MicroserviceError::Template { .. }), "{e}");
        let absent = props(json!({"config_files": [{"file": "nope.yaml"}]}));
        let e = descriptors("web", &absent, &dir, &tokens()).unwrap_err();
        assert!(matches!(e, MicroserviceError::NoFile { ref file, .. } if file == "nope.yaml"));
        let _ = std::fs::remove_dir_all(&dir);
        let both = props(json!({"config": {"kind": "x"}, "config_path": "p"}));
        assert_eq!(
            descriptors("web", &both, Path::new("/"), &tokens())
                .unwrap_err()
                .to_string(),
            "`web` sets `config` and `config_path`: give exactly one of `config`, `config_files` and `config_path`"
        );
        let none = props(json!({"config": {}, "config_files": [], "config_path": ""}));
        assert!(matches!(
            descriptors("web", &none, Path::new("/"), &tokens()),
            Err(MicroserviceError::Sources { .. })
        ));
    }

    #[test]
    fn master_login_from_the_legacy_properties() {
        let p = props(
            json!({"ip": "10.0.0.5", "ssh_user": "ubuntu", "ssh_key": "-----BEGIN-----\nAAAAkeyline000\n-----END-----\n",
            "ssh_port": 2222, "master_port": 8080, "known_hosts_file": "kh", "accept_new_host_keys": true}),
        );
        let m = Master::new("kube_master", &p, &Map::new(), Path::new("/bp")).unwrap();
        assert_eq!(m.address(), "ubuntu@10.0.0.5:2222");
        assert_eq!(m.spec.known_hosts.as_deref(), Some(Path::new("/bp/kh")));
        assert!(m.spec.accept_new_host_keys);
        assert_eq!(m.mask.apply("x AAAAkeyline000 y"), "x ****** y");
        let over = props(json!({"user": "admin", "key_filename": "/k"}));
        let m = Master::new("kube_master", &p, &over, Path::new("/bp")).unwrap();
        assert_eq!(m.spec.user, "admin");
        assert!(matches!(m.spec.key, ssh::KeySource::File(ref f) if f == Path::new("/k")));
        let no_key =
            props(json!({"ip": "h", "ssh_user": "u", "ssh_keyfilename": "", "ssh_key": ""}));
        let e = Master::new("m", &no_key, &Map::new(), Path::new("/"))
            .err()
            .unwrap();
        assert!(
            e.to_string().starts_with("master `m`: no private key"),
            "{e}"
        );
    }
}
