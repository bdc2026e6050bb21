//! Plugins: what operations call.
//!
//! A [`Plugin`] runs one operation with an [`OperationContext`]: which deployment, node,
//! instance and (for relationship operations) which side, the evaluated inputs, access to
//! runtime properties through [`crate::engine::state::Instances`], a logger and a cancellation
//! signal. The [`Registry`] maps the plugin names used in blueprints (`script`, `noop`, `ssh`,
//! `kubernetes`, `openstack`, `vsphere`, …) to implementations, and [`Registry::for_blueprint`]
//! adds the external plugins a blueprint loaded from the plugin path ([`external`]); the engine
//! checks every operation against it before anything runs.
//!
//! An operation reaches the instances its own instance's relationships point to through
//! [`OperationContext::topology`] (read from the plan on demand, so an operation that needs none
//! costs nothing per link). A plugin may also offer workflows ([`Plugin::has_workflow`],
//! [`Plugin::workflow`]): the engine runs one as an execution with a [`WorkflowContext`].

pub mod ctx;
pub mod external;
pub mod guard;
pub mod kubernetes;
pub mod noop;
pub mod openstack;
pub mod python;
pub mod rest;
pub mod script;
pub mod ssh;
pub mod vsphere;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value as Json};

use crate::dsl::Compiled;
use crate::dsl::compiled::{CompiledNode, CompiledRelationship};
use crate::engine::events::Recorder;
use crate::engine::state::Instances;
use crate::plan::Plan;
use crate::store::Write;

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
    /// Where the instance sits in the deployment: what its relationships point to. `None` for
    /// an operation that belongs to no instance (a script workflow).
    pub topology: Option<Topology>,
    /// How many times this operation was retried before this attempt (Cloudify's
    /// `ctx.operation.retry_number`): 0 on the first attempt.
    pub retry_number: u32,
    /// How many retries a failure gets (Cloudify's `ctx.operation.max_retries`; -1 unlimited).
    pub max_retries: i64,
    /// The execution's secrets, for `get_secret` in what a plugin resolves itself (a master's
    /// properties) and for its mask. Inputs and `node_properties` come with theirs resolved.
    pub secrets: Arc<crate::secrets::Revealed>,
}

/// One instance's place in the plan: the targets of its relationships, read on demand.
#[derive(Clone)]
pub struct Topology {
    pub compiled: Arc<Compiled>,
    pub plan: Arc<Plan>,
    /// The instance's index in `plan.instances`.
    pub instance: u32,
}

/// The far end of one of an instance's relationships.
pub struct RelationshipTarget<'a> {
    pub relationship: &'a CompiledRelationship,
    pub node: &'a CompiledNode,
    /// The target instance's index in the plan and its id.
    pub instance: u32,
    pub instance_id: &'a str,
}

impl Topology {
    /// Every relationship instance of the instance, in declaration order.
    pub fn targets(&self) -> impl Iterator<Item = RelationshipTarget<'_>> {
        let inst = self.plan.instances.get(self.instance as usize);
        let node = inst.and_then(|i| self.compiled.nodes.get(i.node));
        inst.into_iter()
            .flat_map(|i| i.relationships.iter())
            .filter_map(move |r| {
                let target = self.plan.instances.get(r.target as usize)?;
                Some(RelationshipTarget {
                    relationship: node?.relationships.get(r.relationship)?,
                    node: self.compiled.nodes.get(target.node)?,
                    instance: r.target,
                    instance_id: target.id.0.as_str(),
                })
            })
    }
}

/// What a plugin's workflow runs with: the whole deployment, its live instances, the
/// execution's recorder (events and durable task records) and cancellation.
#[derive(Clone)]
pub struct WorkflowContext {
    pub deployment_id: String,
    pub execution_id: String,
    /// The workflow's name in the blueprint (`kube_scale`).
    pub workflow: String,
    /// `module.function` inside the plugin.
    pub function: String,
    /// The checked parameters, defaults filled in.
    pub parameters: Map<String, Json>,
    pub compiled: Arc<Compiled>,
    pub plan: Arc<Plan>,
    pub instances: Instances,
    pub recorder: Recorder,
    pub cancel: tokio::sync::watch::Receiver<bool>,
    /// Where the deployment's blueprint files are materialised.
    pub resources: PathBuf,
    /// Steps a previous attempt of this execution recorded with [`WorkflowContext::record`]:
    /// a resumed workflow skips or reuses them.
    pub done: HashSet<String>,
    /// The execution's secrets (`get_secret` in what the workflow resolves).
    pub secrets: Arc<crate::secrets::Revealed>,
}

impl WorkflowContext {
    /// An event of this execution, optionally about one instance.
    pub fn event(&self, event_type: &str, instance: Option<&str>, message: impl Into<String>) {
        self.recorder.event(
            &self.execution_id,
            event_type,
            instance,
            Some(&self.workflow),
            message.into(),
        );
    }

    /// Record a step as done, durably (committed before this returns), so that `resume` finds
    /// it in [`WorkflowContext::done`].
    pub async fn record(&self, key: &str) -> Result<(), String> {
        self.recorder.write(Write::Task {
            execution: self.execution_id.clone(),
            key: key.to_string(),
            state: "succeeded".to_string(),
            result: None,
        });
        self.recorder.flush().await
    }
}

impl OperationContext {
    /// A context for work outside the task graph (a workflow that acts as an operation): no
    /// node, instance, inputs or relationships yet ([`OperationContext::on_node`] adds them).
    #[allow(clippy::too_many_arguments)]
    pub fn standalone(
        deployment_id: &str,
        execution_id: &str,
        operation: &str,
        function: &str,
        instances: Instances,
        recorder: Recorder,
        cancel: tokio::sync::watch::Receiver<bool>,
        resources: PathBuf,
    ) -> OperationContext {
        OperationContext {
            deployment_id: deployment_id.to_string(),
            execution_id: execution_id.to_string(),
            node_id: String::new(),
            node_properties: Arc::new(Map::new()),
            instance_id: String::new(),
            operation: operation.to_string(),
            function: function.to_string(),
            relationship: None,
            related: Arc::new([]),
            inputs: Map::new(),
            instances,
            recorder,
            cancel,
            resources,
            timeout: None,
            timeout_recoverable: false,
            topology: None,
            retry_number: 0,
            max_retries: 0,
            secrets: Arc::new(crate::secrets::Revealed::none()),
        }
    }

    /// The same context as node `node`'s instance `instance` (set `secrets` first: the node's
    /// properties are given with their `get_secret` calls resolved).
    pub fn on_node(mut self, compiled: &crate::dsl::Compiled, node: usize, instance: &str) -> Self {
        let n = &compiled.nodes[node];
        self.node_id = n.id.0.clone();
        // `get_secret` resolved as for any operation; the engine checked every one exists.
        self.node_properties = Arc::new(
            n.properties
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        self.secrets.substitute(v).unwrap_or_else(|_| v.clone()),
                    )
                })
                .collect(),
        );
        self.related = Related::of(compiled, node);
        self.instance_id = instance.to_string();
        self
    }

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

/// Run an operation's `work` until it ends, or until cancellation is signalled, which fails it
/// (never retried).
pub async fn unless_cancelled<T>(
    cancel: tokio::sync::watch::Receiver<bool>,
    work: impl Future<Output = Result<T, OpError>>,
) -> Result<T, OpError> {
    tokio::select! {
        r = work => r,
        _ = cancelled(cancel) => Err(OpError::NonRecoverable("cancelled".to_string())),
    }
}

/// For a built-in plugin's test: its `functions` are exactly those its type file `yaml` maps
/// operations to, the words `PLUGIN.FUNCTION` (prefix `plugin`, e.g. `"vsphere."`) whose
/// `FUNCTION` `keep` accepts.
#[cfg(test)]
pub(crate) fn assert_functions_match_type_file(
    yaml: &str,
    plugin: &str,
    keep: impl Fn(&str) -> bool,
    functions: &[&str],
) {
    let mut named: Vec<&str> = yaml
        .split_whitespace()
        .filter_map(|w| w.strip_prefix(plugin))
        .filter(|f| keep(f))
        .collect();
    named.sort_unstable();
    named.dedup();
    let mut listed = functions.to_vec();
    listed.sort_unstable();
    assert_eq!(named, listed);
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
    /// Retried up to `max_retries`, after `after` instead of the retry interval (a Python
    /// script's `RecoverableError(retry_after=…)`).
    #[error("{message}")]
    Recoverable { message: String, after: Duration },
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

    /// Whether `function` names a workflow this plugin runs ([`Plugin::workflow`]).
    fn has_workflow(&self, _function: &str) -> bool {
        false
    }

    /// Run one of this plugin's workflows to its end.
    fn workflow(&self, ctx: WorkflowContext) -> OpFuture<'_> {
        let message = format!("`{}` is not a workflow of this plugin", ctx.function);
        Box::pin(async move { Err(OpError::NonRecoverable(message)) })
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
        plugins.insert(
            "openstack".to_string(),
            Arc::new(openstack::OpenstackPlugin),
        );
        plugins.insert("vsphere".to_string(), Arc::new(vsphere::VspherePlugin));
        Registry { plugins }
    }
}

impl Registry {
    /// The shipped plugins and the blueprint's runnable external plugins (which take the place
    /// of a shipped plugin of the same name). An external plugin without `windlass-plugin`
    /// leaves the shipped plugin of its name in place, if there is one.
    pub fn for_blueprint(compiled: &Compiled) -> Registry {
        let mut registry = Registry::default();
        for (name, spec) in &compiled.external_plugins {
            if spec.runnable {
                registry.plugins.insert(
                    name.clone(),
                    Arc::new(external::ExternalRunner {
                        name: name.clone(),
                        spec: spec.clone(),
                    }),
                );
            }
        }
        registry
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Plugin>> {
        self.plugins.get(name)
    }

    pub fn names(&self) -> Vec<&str> {
        let mut n: Vec<&str> = self.plugins.keys().map(String::as_str).collect();
        n.sort();
        n
    }
}
