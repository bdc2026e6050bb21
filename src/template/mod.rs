//! Descriptor templating and overrides: what a Kubernetes descriptor becomes before a plugin
//! sends it.
//!
//! The flow, as a plugin calls it:
//!
//! 1. [`render_descriptor`] reads a descriptor file (or text), renders it as Jinja with the
//!    resource's `template_variables` (strict undefined) and parses every YAML document into a
//!    JSON object; [`load_descriptor`] parses without rendering (legacy `config_files`, which
//!    Cloudify never rendered). `render.rs`.
//! 2. [`apply_overrides`] applies Cloudify's assignment strings
//!    (`['spec']['replicas'] = 3`) to one parsed object: each is parsed by a small parser, never
//!    evaluated, and `%{...}` tokens in it are resolved from a [`TokenContext`]. All or nothing:
//!    a failing override leaves the object as it was. `overrides.rs`, `tokens.rs`.
//! 3. [`resolve_management_ip`] gives the address `%{management_ip}` stands for.
//!    `management_ip.rs`.
//!
//! Every failure is a typed error that names what the user wrote: the descriptor's `file:line`
//! and the variables that were available, or the override and its first step that does not
//! exist, or the unknown token and the known ones. This module performs no I/O beyond reading the
//! one descriptor file (and the routing table, for the management IP), and knows nothing of
//! Kubernetes APIs, SSH or the engine.

mod management_ip;
mod overrides;
mod render;
mod tokens;

pub use management_ip::{
    ENV_VAR as MANAGEMENT_IP_ENV, ManagementIp, ManagementIpError, Source as ManagementIpSource,
    resolve_management_ip,
};
pub use overrides::{Override, OverrideError, OverrideErrorKind};
pub use render::{
    Descriptor, RenderError, load_descriptor, parse_documents, render_descriptor, render_text,
};
pub use tokens::{KNOWN_TOKENS, TokenContext, TokenError, python_str};

use serde_json::Value as Json;

/// Anything that can go wrong turning a descriptor into the objects to send.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Override(#[from] OverrideError),
}

/// Applies `overrides` in order to `descriptor`, all or nothing (see [`Override`]).
pub fn apply_overrides(
    descriptor: &mut Json,
    overrides: &[String],
    tokens: &TokenContext,
) -> Result<(), TemplateError> {
    Ok(overrides::apply_all(descriptor, overrides, tokens)?)
}
