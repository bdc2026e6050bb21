//! The `kubernetes` plugin (`plugins/kubernetes/plugin.yaml`).
//!
//! This module only dispatches. The 2016 plugin's types run kubectl on the master over SSH:
//! `microservice.apply` / `microservice.delete` ([`microservice`], command lines and their
//! output in [`kubectl`]) and the `kube_scale` workflow ([`kube_scale`]). The 2.x resource
//! functions (`resource.*`, `file_resource.*`, `multiple_file_resources.*`) fail as not
//! implemented ([`super::unimplemented`]). Every function of the type file is known
//! (`unimplemented::KUBERNETES`), so `deploy` refuses a misspelt one before anything runs.

pub mod kube_scale;
pub mod kubectl;
pub mod microservice;

use super::unimplemented::{KUBERNETES, Unimplemented};
use super::{OpError, OpFuture, OperationContext, Plugin, WorkflowContext};

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
                    _ => {
                        let others = Unimplemented {
                            name: "kubernetes",
                            functions: KUBERNETES,
                        };
                        others.run(ctx.clone()).await
                    }
                }
            };
            tokio::select! {
                r = work => r,
                _ = super::cancelled(cancel) => Err(OpError::NonRecoverable("cancelled".to_string())),
            }
        })
    }

    fn has_function(&self, function: &str) -> bool {
        KUBERNETES.contains(&function)
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
            tokio::select! {
                r = kube_scale::run(&ctx) => r,
                _ = super::cancelled(cancel) => Err(OpError::NonRecoverable("cancelled".to_string())),
            }
        })
    }
}
