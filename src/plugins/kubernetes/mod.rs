//! The `kubernetes` plugin: both families of Cloudify's Kubernetes plugin
//! (`plugins/kubernetes/plugin.yaml`).
//!
//! # Operations
//! - cloudify-kubernetes-plugin 2.x, through the Kubernetes API (the `kube` crate, HTTPS with
//!   rustls and the aws-lc-rs provider): `resource.*` (a `BlueprintDefinedResource` and its
//!   kinds: the object is the node's `definition`), `file_resource.*` (`FileDefinedResource`:
//!   the objects of one descriptor file rendered as Jinja with its `template_variables`) and
//!   `multiple_file_resources.*` (`MultipleFileDefinedResources`); each offers `create`
//!   (server-side apply), `wait_ready`, `update`, `delete` and `check_status` ([`resource`]).
//! - The 2016 plugin, kubectl on the master over SSH: `microservice.apply` /
//!   `microservice.delete` ([`microservice`], command lines and their output in [`kubectl`])
//!   and the `kube_scale` workflow ([`kube_scale`]), which scales a modern Deployment node
//!   through the API's `scale` subresource when no SSH user is given ([`scale`]).
//!
//! # Data flow
//! An API operation builds its client from the node's `client_config`, or its master's
//! `configuration` over `managed_by_master` ([`config`]); resolves each object's kind to an API
//! path by discovery of its group version, and calls the API with bounded retries of 429 and
//! 5xx answers ([`api`]). What the API returned is kept in the instance's runtime property
//! `kubernetes`. `windlass scale ID NODE AMOUNT` on a Deployment node changes its replicas
//! through the `scale` subresource, called by the engine's scale workflow.
//!
//! Nothing here logs or returns a secret (API keys, tokens, client keys, SSH keys): every
//! message that could carry one goes through [`config::Secrets::mask`] or the SSH plugin's mask.

pub mod api;
pub mod config;
pub mod descriptors;
pub mod kube_scale;
pub mod kubectl;
pub mod microservice;
pub mod resource;
pub mod scale;

pub use api::KubeError;

use super::{OpError, OpFuture, OperationContext, Plugin, WorkflowContext};

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
    KUBE_SCALE,
];

const KUBE_SCALE: &str = "kube_plugin.workflows.kube_scale";

pub struct KubernetesPlugin;

impl Plugin for KubernetesPlugin {
    fn run(&self, ctx: OperationContext) -> OpFuture<'_> {
        Box::pin(async move {
            let cancel = ctx.cancel.clone();
            let work = async {
                match ctx.function.as_str() {
                    "microservice.apply" => microservice::apply(&ctx).await,
                    "microservice.delete" => microservice::delete(&ctx).await,
                    function => match resource::parse_function(function) {
                        Some((module, operation)) => resource::run(&ctx, module, operation).await,
                        None => Err(OpError::NonRecoverable(format!(
                            "`kubernetes.{function}` is not an operation of the kubernetes plugin"
                        ))),
                    },
                }
            };
            super::unless_cancelled(cancel, work).await
        })
    }

    fn has_function(&self, function: &str) -> bool {
        FUNCTIONS.contains(&function)
    }

    fn has_workflow(&self, function: &str) -> bool {
        function == KUBE_SCALE
    }

    fn workflow(&self, ctx: WorkflowContext) -> OpFuture<'_> {
        Box::pin(async move {
            if ctx.function != KUBE_SCALE {
                return Err(OpError::NonRecoverable(format!(
                    "`kubernetes.{}` is not a workflow",
                    ctx.function
                )));
            }
            let cancel = ctx.cancel.clone();
            super::unless_cancelled(cancel, kube_scale::run(&ctx)).await
        })
    }
}

// Kept under this name for the callers that still reach it here (`config.rs`, and the
// openstack plugin's `api.rs`, which should call `crate::plugins::rest` directly).
pub(crate) use super::rest::install_crypto_provider;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `kubernetes.…` implementation in the shipped type file, and only those, is listed.
    #[test]
    fn kubernetes_functions_match_the_type_file() {
        crate::plugins::assert_functions_match_type_file(
            include_str!("../../../plugins/kubernetes/plugin.yaml"),
            "kubernetes.",
            |f| f.contains('.') && !f.starts_with("io/"),
            FUNCTIONS,
        );
    }

    /// Every operation is dispatched: the resource functions by `resource::parse_function`,
    /// the microservice ones by name, the workflow by `has_workflow`.
    #[test]
    fn every_function_is_dispatched() {
        for f in FUNCTIONS {
            let known = resource::parse_function(f).is_some()
                || f.starts_with("microservice.")
                || KubernetesPlugin.has_workflow(f);
            assert!(known, "{f}");
        }
    }
}
