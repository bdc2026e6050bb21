//! Plugins whose type file ships but whose operations this version cannot run yet.
//!
//! A blueprint that imports such a plugin's types validates, plans and deploys: `deploy`'s
//! check that every operation names a function the plugin offers still catches a misspelt
//! `kubernetes.resource.craete`. Running one of its operations fails — a reported operation
//! error, never retried, naming the function — so an install stops there instead of pretending
//! that the resource exists. When a plugin gets its implementation, its registry entry points
//! to that instead and its function list moves with it.

use super::{OpError, OpFuture, OperationContext, Plugin};

/// The functions the `kubernetes` type file (`plugins/kubernetes/plugin.yaml`) maps operations
/// and workflows to (`module.function`, without the plugin name).
pub const KUBERNETES: &[&str] = &[
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

/// A plugin that knows its functions and runs none of them.
pub struct Unimplemented {
    pub name: &'static str,
    pub functions: &'static [&'static str],
}

impl Plugin for Unimplemented {
    fn run(&self, ctx: OperationContext) -> OpFuture<'_> {
        let message = format!(
            "`{}.{}` ({}) is not implemented in this version of windlass",
            self.name, ctx.function, ctx.operation
        );
        Box::pin(async move { Err(OpError::NonRecoverable(message)) })
    }

    fn has_function(&self, function: &str) -> bool {
        self.functions.contains(&function)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `kubernetes.…` implementation in the shipped type file, and only those, is listed.
    #[test]
    fn kubernetes_functions_match_the_type_file() {
        let yaml = include_str!("../../plugins/kubernetes/plugin.yaml");
        let mut named: Vec<&str> = yaml
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("kubernetes."))
            .filter(|f| f.contains('.') && !f.starts_with("io/"))
            .collect();
        named.sort_unstable();
        named.dedup();
        let mut listed = KUBERNETES.to_vec();
        listed.sort_unstable();
        assert_eq!(named, listed);
    }
}
