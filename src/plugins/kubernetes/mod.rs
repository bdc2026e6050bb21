//! The `kubernetes` plugin: Cloudify's Kubernetes plugin (cloudify-kubernetes-plugin 2.x)
//! speaking the Kubernetes API through the `kube` crate (HTTPS with rustls and the aws-lc-rs
//! provider).
//!
//! # Operations
//! - `resource.*` (a `BlueprintDefinedResource` and its kinds: the object is the node's
//!   `definition`), `file_resource.*` (`FileDefinedResource`: the objects of one descriptor
//!   file rendered as Jinja with its `template_variables`) and `multiple_file_resources.*`
//!   (`MultipleFileDefinedResources`: those of every file in `files`); each offers `create`
//!   (server-side apply), `wait_ready`, `update`, `delete` and `check_status` ([`resource`]).
//! - `microservice.*` and `kube_plugin.workflows.kube_scale` (the 2016 plugin's kubectl over
//!   SSH) are not this module's: they fail as not implemented in this version.
//!
//! # Data flow
//! An operation builds its client from the node's `client_config`, or its master's
//! `configuration` over `managed_by_master` ([`config`]); resolves each object's kind to an API
//! path by discovery of its group version, and calls the API with bounded retries of 429 and
//! 5xx answers ([`api`]). What the API returned is kept in the instance's runtime property
//! `kubernetes`. `windlass scale ID NODE AMOUNT` on a Deployment node changes its replicas
//! through the `scale` subresource ([`scale`]), called by the engine's scale workflow.
//!
//! Nothing here logs or returns a secret (API keys, tokens, client keys): every message that
//! could carry one goes through [`config::Secrets::mask`].

pub mod api;
pub mod config;
pub mod resource;
pub mod scale;

pub use api::KubeError;

use super::{OpError, OpFuture, OperationContext, Plugin};

/// The functions the `kubernetes` type file (`plugins/kubernetes/plugin.yaml`) maps operations
/// and workflows to (`module.function`, without the plugin name).
pub const FUNCTIONS: &[&str] = &[
    "resource.create",
    "resource.wait_ready",
    "resource.update",
    "resource.delete",
    "resource.check_status",
    "file_resource.create",
    "file_resource.wait_ready",
    "file_resource.update",
    "file_resource.delete",
    "file_resource.check_status",
    "multiple_file_resources.create",
    "multiple_file_resources.wait_ready",
    "multiple_file_resources.update",
    "multiple_file_resources.delete",
    "multiple_file_resources.check_status",
    "microservice.apply",
    "microservice.delete",
    "kube_plugin.workflows.kube_scale",
];

/// Functions of [`FUNCTIONS`] another part of windlass will run (kubectl over SSH): until
/// then they fail as not implemented.
const NOT_HERE: &[&str] = &[
    "microservice.apply",
    "microservice.delete",
    "kube_plugin.workflows.kube_scale",
];

pub struct KubernetesPlugin;

impl Plugin for KubernetesPlugin {
    fn run(&self, ctx: OperationContext) -> OpFuture<'_> {
        Box::pin(async move {
            if NOT_HERE.contains(&ctx.function.as_str()) {
                return super::unimplemented::Unimplemented {
                    name: "kubernetes",
                    functions: FUNCTIONS,
                }
                .run(ctx)
                .await;
            }
            let Some((module, operation)) = resource::parse_function(&ctx.function) else {
                return Err(OpError::NonRecoverable(format!(
                    "`kubernetes.{}` is not a function of the kubernetes plugin",
                    ctx.function
                )));
            };
            tokio::select! {
                r = resource::run(&ctx, module, operation) => r,
                _ = super::cancelled(ctx.cancel.clone()) => {
                    Err(OpError::NonRecoverable("cancelled".to_string()))
                }
            }
        })
    }

    fn has_function(&self, function: &str) -> bool {
        FUNCTIONS.contains(&function)
    }
}

/// Install aws-lc-rs as rustls's process-wide crypto provider, once (kube's TLS connector
/// builds its configuration from the default provider).
pub(crate) fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err only when a provider is installed already, which is as good.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `kubernetes.…` implementation in the shipped type file, and only those, is listed.
    #[test]
    fn kubernetes_functions_match_the_type_file() {
        let yaml = include_str!("../../../plugins/kubernetes/plugin.yaml");
        let mut named: Vec<&str> = yaml
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("kubernetes."))
            .filter(|f| f.contains('.') && !f.starts_with("io/"))
            .collect();
        named.sort_unstable();
        named.dedup();
        let mut listed = FUNCTIONS.to_vec();
        listed.sort_unstable();
        assert_eq!(named, listed);
    }

    /// Every function this module runs itself is one `resource::parse_function` knows.
    #[test]
    fn every_function_is_dispatched() {
        for f in FUNCTIONS.iter().filter(|f| !NOT_HERE.contains(f)) {
            assert!(resource::parse_function(f).is_some(), "{f}");
        }
    }
}
