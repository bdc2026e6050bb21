//! Plugins: what operations call.
//!
//! A [`Plugin`] runs one operation with an [`OperationContext`]: which deployment, node,
//! instance and (for relationship operations) which side, the evaluated inputs, access to
//! runtime properties through [`crate::engine::state::Instances`], a logger and a cancellation
//! signal. The [`Registry`] maps the plugin names used in blueprints (`script`, `noop`, `ssh`,
//! `kubernetes`, …) to implementations; the engine checks every operation against it before
//! anything runs. Functions whose types ship before their implementation fail, saying so
//! ([`unimplemented::Unimplemented`]).

pub mod ctx;
pub mod guard;
pub mod kubernetes;
pub mod noop;
pub mod script;
pub mod ssh;
pub mod unimplemented;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value as Json};

use crate::engine::events::Recorder;
use crate::engine::state::Instances;

/// Which end of a relationship an operation runs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

/// A relationship operation's two ends.
#[derive(Debug, Clone)]
pub struct RelationshipContext {
    pub side: Side,
    pub source_instance: String,
    pub source_node: String,
    pub source_properties: Arc<Map<String, Json>>,
    pub target_instance: String,
    pub target_node: String,
    pub target_properties: Arc<Map<String, Json>>,
}

/// A relationship of the operation's node (its source side), as a plugin needs it to find what
/// its node is managed by (a Kubernetes resource's master, for instance).
#[derive(Debug, Clone)]
pub struct Related {
    /// The relationship's type and its ancestors, most derived first.
    pub type_hierarchy: Vec<String>,
    pub target_node: String,
    pub target_properties: Arc<Map<String, Json>>,
}

impl Related {
    /// Every relationship of `node` in `compiled`, in the blueprint's order.
    pub fn of(compiled: &crate::dsl::Compiled, node: usize) -> Arc<[Related]> {
        compiled.nodes[node]
            .relationships
            .iter()
            .map(|r| Related {
                type_hierarchy: r.type_hierarchy.clone(),
                target_node: compiled.nodes[r.target].id.0.clone(),
                target_properties: Arc::new(compiled.nodes[r.target].properties.clone()),
            })
            .collect()
    }
}

/// Everything one operation may see and touch.
#[derive(Clone)]
pub struct OperationContext {
    pub deployment_id: String,
    pub execution_id: String,
    pub node_id: String,
    pub node_properties: Arc<Map<String, Json>>,
    pub instance_id: String,
    /// `interface.operation`, e.g. `cloudify.interfaces.lifecycle.create`.
    pub operation: String,
    /// `module.function` inside the plugin.
    pub function: String,
    pub relationship: Option<RelationshipContext>,
    /// The node's relationships to other nodes (whatever side the operation runs for).
    pub related: Arc<[Related]>,
    pub inputs: Map<String, Json>,
    pub instances: Instances,
    pub recorder: Recorder,
    pub cancel: tokio::sync::watch::Receiver<bool>,
    /// Where the deployment's blueprint files are materialised.
    pub resources: PathBuf,
    pub timeout: Option<Duration>,
    pub timeout_recoverable: bool,
}

impl OperationContext {
    pub fn log(&self, level: &str, message: impl Into<String>) {
        self.recorder.event(
            &self.execution_id,
            "log",
            Some(self.instance_id.as_str()).filter(|i| !i.is_empty()),
            Some(&self.operation),
            format!("{level}: {}", message.into()),
        );
    }
}

/// Resolves when cancellation is signalled (never, if the sender is gone without signalling).
pub async fn cancelled(rx: tokio::sync::watch::Receiver<bool>) {
    // Polled rather than awaited on the channel: simple, and immune to how a receiver clone
    // remembers which values it has seen.
    while !*rx.borrow() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// How an operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpError {
    /// The operation asked to be retried (always retried).
    #[error("retry requested: {message}")]
    Retry {
        message: String,
        after: Option<Duration>,
    },
    /// Never retried.
    #[error("{0}")]
    NonRecoverable(String),
    /// Retried up to `max_retries`.
    #[error("{0}")]
    Failed(String),
}

pub type OpFuture<'a> = Pin<Box<dyn Future<Output = Result<Option<Json>, OpError>> + Send + 'a>>;

pub trait Plugin: Send + Sync {
    /// Run one operation; `Ok(value)` carries what the operation returned, if anything.
    fn run(&self, ctx: OperationContext) -> OpFuture<'_>;

    /// Whether `function` names an operation this plugin offers.
    fn has_function(&self, function: &str) -> bool;

    /// True when running an operation twice is harmless: the engine then need not make its
    /// completion durable before going on (it still records it).
    fn side_effect_free(&self) -> bool {
        false
    }
}

/// Plugin name → implementation.
#[derive(Clone)]
pub struct Registry {
    plugins: HashMap<String, Arc<dyn Plugin>>,
}

impl Default for Registry {
    fn default() -> Self {
        let mut plugins: HashMap<String, Arc<dyn Plugin>> = HashMap::new();
        plugins.insert("script".to_string(), Arc::new(script::ScriptPlugin));
        plugins.insert("noop".to_string(), Arc::new(noop::NoopPlugin));
        plugins.insert("ssh".to_string(), Arc::new(ssh::SshPlugin));
        plugins.insert(
            "kubernetes".to_string(),
            Arc::new(kubernetes::KubernetesPlugin),
        );
        Registry { plugins }
    }
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Plugin>> {
        self.plugins.get(name)
    }

    pub fn names(&self) -> Vec<&str> {
        let mut n: Vec<&str> = self.plugins.keys().map(String::as_str).collect();
        n.sort();
        n
    }
}
