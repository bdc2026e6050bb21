//! The `openstack` plugin: Cloudify's OpenStack plugin v3 types (`plugins/openstack/plugin.yaml`)
//! over the OpenStack APIs.
//!
//! # Operations
//! - `…compute.server.create` / `delete` ([`server`]): Nova servers — created from
//!   `resource_config` and the node's relationships (key pair, ports, networks, security groups,
//!   server group), the id recorded (and committed) before the server is polled with a growing
//!   pause until ACTIVE; ERROR fails quoting the server's `fault.message`. Its addresses become
//!   the runtime properties Cloudify's plugin sets (`ip`, `ipv4_address`, `ipv4_addresses`,
//!   `public_ip_address`, `networks`, `addresses`, …). Delete polls until 404; a server already
//!   gone is deleted.
//! - `…compute.server.connect_floating_ip` / `disconnect_floating_ip`: the relationship
//!   operations of `server_connected_to_floating_ip` (Neutron: the server's port, then the
//!   floating IP's `port_id`).
//! - `…compute.keypair.*` (Nova key pairs) and `…network.{network,subnet,port,security_group,
//!   floating_ip}.*` ([`network`]): one create and one delete each.
//!
//! Every resource can be adopted instead (`use_external_resource`, by `resource_config.id` or
//! `name`); an adopted resource is recorded as such and left alone by delete.
//!
//! # Data flow
//! An operation reads `client_config` ([`config`]) into a [`api::Session`], which authenticates
//! to Keystone v3 ([`keystone`]: password or application credential; the token is reused by
//! every operation of the process until it nears expiry) and finds the services in the token's
//! catalog. [`nova`] and [`neutron`] are the APIs' requests; [`api`] sends them with timeouts,
//! bounded retries of 409/429/5xx and one re-authentication on 401.
//!
//! Nothing here logs or returns a password, application-credential secret or token: every
//! message passes [`config::Secrets::mask`].

pub mod api;
pub mod config;
pub mod instance;
pub mod keystone;
pub mod network;
pub mod neutron;
pub mod nova;
pub mod server;

use serde_json::{Map, Value as Json};

pub use api::OsError;

use super::{OpError, OpFuture, OperationContext, Plugin};
use api::Session;
use config::{ClientConfig, Secrets};

/// The functions the type file (`plugins/openstack/plugin.yaml`) maps operations to
/// (`module.function`, without the plugin name).
pub const FUNCTIONS: &[&str] = &[
    "openstack_plugin.resources.compute.server.create",
    "openstack_plugin.resources.compute.server.delete",
    "openstack_plugin.resources.compute.server.connect_floating_ip",
    "openstack_plugin.resources.compute.server.disconnect_floating_ip",
    "openstack_plugin.resources.compute.keypair.create",
    "openstack_plugin.resources.compute.keypair.delete",
    "openstack_plugin.resources.network.network.create",
    "openstack_plugin.resources.network.network.delete",
    "openstack_plugin.resources.network.subnet.create",
    "openstack_plugin.resources.network.subnet.delete",
    "openstack_plugin.resources.network.port.create",
    "openstack_plugin.resources.network.port.delete",
    "openstack_plugin.resources.network.security_group.create",
    "openstack_plugin.resources.network.security_group.delete",
    "openstack_plugin.resources.network.floating_ip.create",
    "openstack_plugin.resources.network.floating_ip.delete",
];

pub struct OpenstackPlugin;

impl Plugin for OpenstackPlugin {
    fn run(&self, ctx: OperationContext) -> OpFuture<'_> {
        Box::pin(async move {
            let cancel = ctx.cancel.clone();
            super::unless_cancelled(cancel, dispatch(&ctx))
                .await
                .map(|()| None)
        })
    }

    fn has_function(&self, function: &str) -> bool {
        FUNCTIONS.contains(&function)
    }
}

async fn dispatch(ctx: &OperationContext) -> Result<(), OpError> {
    let Some(rest) = ctx.function.strip_prefix("openstack_plugin.resources.") else {
        return Err(unknown(ctx));
    };
    let (resource, operation) = rest.rsplit_once('.').ok_or_else(|| unknown(ctx))?;
    let (session, secrets) = open(ctx)?;
    let result = match (resource, operation) {
        ("compute.server", "create") => server::create(ctx, &session).await,
        ("compute.server", "delete") => server::delete(ctx, &session).await,
        ("compute.server", "connect_floating_ip") => {
            server::connect_floating_ip(ctx, &session).await
        }
        ("compute.server", "disconnect_floating_ip") => {
            server::disconnect_floating_ip(ctx, &session).await
        }
        ("compute.keypair", "create") => server::create_keypair(ctx, &session).await,
        ("compute.keypair", "delete") => server::delete_keypair(ctx, &session).await,
        (resource, op) => match network::kind_of(resource) {
            Some(kind) if op == "create" => network::create(ctx, &session, kind).await,
            Some(kind) if op == "delete" => network::delete(ctx, &session, kind).await,
            _ => return Err(unknown(ctx)),
        },
    };
    result.map_err(|e| e.into_op_error(&secrets))
}

fn unknown(ctx: &OperationContext) -> OpError {
    OpError::NonRecoverable(format!(
        "`openstack.{}` is not an operation of the openstack plugin",
        ctx.function
    ))
}

/// The properties of the instance the operation acts for: the node's, or for a relationship
/// operation those of its side.
pub(crate) fn own_properties(ctx: &OperationContext) -> &Map<String, Json> {
    match &ctx.relationship {
        Some(r) if r.side == super::Side::Source => &r.source_properties,
        Some(r) => &r.target_properties,
        None => &ctx.node_properties,
    }
}

/// The session of the operation's `client_config`; says so in an event when TLS is not
/// verified.
fn open(ctx: &OperationContext) -> Result<(Session, Secrets), OpError> {
    let props = own_properties(ctx);
    let (config, secrets) = ClientConfig::read(
        props.get("client_config"),
        ctx.inputs.get("client_config"),
        &ctx.resources,
    )
    .map_err(|e| OpError::NonRecoverable(e.to_string()))?;
    if config.insecure {
        ctx.log(
            "warning",
            format!(
                "TLS certificates of {} and its services are not verified (`insecure: true`)",
                config.auth_url
            ),
        );
    }
    let session = Session::new(config, secrets.clone()).map_err(|e| e.into_op_error(&secrets))?;
    Ok((session, secrets))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `openstack.…` implementation in the shipped type file, and only those, is listed.
    #[test]
    fn openstack_functions_match_the_type_file() {
        crate::plugins::assert_functions_match_type_file(
            include_str!("../../../plugins/openstack/plugin.yaml"),
            "openstack.",
            |f| f.starts_with("openstack_plugin."),
            FUNCTIONS,
        );
    }

    /// Every listed function is dispatched to an operation.
    #[test]
    fn every_function_is_dispatched() {
        for f in FUNCTIONS {
            let rest = f.strip_prefix("openstack_plugin.resources.").unwrap();
            let (resource, op) = rest.rsplit_once('.').unwrap();
            let known = resource == "compute.server"
                || resource == "compute.keypair"
                || (network::kind_of(resource).is_some() && (op == "create" || op == "delete"));
            assert!(known, "{f}");
        }
    }
}
