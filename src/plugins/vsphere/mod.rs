//! The `vsphere` plugin: VMs on vCenter through the vSphere Automation REST API (`/api`,
//! vSphere 7.0 and later), for the node type `windlass.nodes.vsphere.Server`
//! (`plugins/vsphere/plugin.yaml`).
//!
//! # Operations
//! `vm.create`, `vm.start`, `vm.stop` and `vm.delete` ([`vm`]), the node's lifecycle: a VM is
//! taken from the node's pool of staged, powered-off VMs (powered on) or cloned from its
//! `template` onto the next healthy host round-robin, never past `max_vms_per_host`; its IP is
//! read from the guest identity; scale-in powers pooled VMs off (back to the pool) and deletes
//! clones.
//!
//! # Data flow
//! An operation reads its settings from the node's properties (credentials included, which the
//! engine resolves before the operation runs, `get_secret` or `get_input`), takes the process's
//! session for that vCenter ([`client::SESSIONS`]: one login for the operations that overlap,
//! logged out by the last), and calls the API ([`client`]: timeouts, bounded retries of 429,
//! 500 and 503, re-login on 401). Placement ([`placement`]) is a pure choice made inside the
//! store's allocation transaction under a per-deployment lock, so parallel operations never
//! pick one pooled VM twice or overfill a host; the store keeps each instance's VM and each
//! node's last host (`store::vsphere`). What was chosen and made is in the instance's runtime
//! properties (`vm_name`, `vm_host`, `pooled`, `vm_id`, then `ip`) before anything waits.
//!
//! Nothing here logs or returns the password: it is sent only in the login's header, and every
//! message of a failed operation passes [`client::Connection::mask`].

pub mod client;
pub mod placement;
pub mod vm;

use super::{OpError, OpFuture, OperationContext, Plugin};

/// The functions the type file (`plugins/vsphere/plugin.yaml`) maps operations to
/// (`module.function`, without the plugin name).
pub const FUNCTIONS: &[&str] = &["vm.create", "vm.start", "vm.stop", "vm.delete"];

pub struct VspherePlugin;

impl Plugin for VspherePlugin {
    fn run(&self, ctx: OperationContext) -> OpFuture<'_> {
        Box::pin(async move {
            let cancel = ctx.cancel.clone();
            let operation = match ctx.function.strip_prefix("vm.") {
                Some(op) if FUNCTIONS.contains(&ctx.function.as_str()) => op.to_string(),
                _ => {
                    return Err(OpError::NonRecoverable(format!(
                        "`vsphere.{}` is not an operation of the vsphere plugin",
                        ctx.function
                    )));
                }
            };
            super::unless_cancelled(cancel, vm::run(&ctx, &operation)).await
        })
    }

    fn has_function(&self, function: &str) -> bool {
        FUNCTIONS.contains(&function)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `vsphere.…` implementation in the shipped type file, and only those, is listed.
    #[test]
    fn vsphere_functions_match_the_type_file() {
        crate::plugins::assert_functions_match_type_file(
            include_str!("../../../plugins/vsphere/plugin.yaml"),
            "vsphere.",
            |f| f.starts_with("vm."),
            FUNCTIONS,
        );
    }
}
