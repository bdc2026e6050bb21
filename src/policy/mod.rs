//! Policies: metric samples in, decisions out.
//!
//! # Overview
//! A deployment's group policies (Cloudify's `groups: {G: {policies: …}}`) and top-level
//! non-scaling policies are evaluated here, natively: no Riemann, no Clojure. Each policy type
//! is a plain state machine in its own file implementing [`Policy`]; [`PolicySet`] holds the
//! policies of one deployment, routes samples to them and turns what they decide into
//! [`Decision`]s, each of which the caller records as an event and, when it acts, turns into a
//! workflow execution through the policy's triggers ([`trigger`]).
//!
//! # A rough outline
//! compiled policy (`{type, properties, targets, triggers}`) ──[`config::build`]──▶
//! `Box<dyn Policy>` ──[`PolicySet::observe`] (a sample) / [`PolicySet::tick`] (the clock)──▶
//! `Vec<Decision>` ──[`PolicySet::actions`]──▶ workflow + rendered parameters.
//!
//! # Time
//! Nothing here reads a clock, sleeps or does I/O. The caller passes "now" with every call, so
//! tests drive time by hand and a replay gives the same decisions. A sample's own timestamp
//! places it in a window and counts towards stability; "now" expires windows and measures
//! cooldowns, intervals and TTLs.
//!
//! # Rules
//! An autoscaling rule made without a blueprint (`windlass rules`, `/api/v1/rules`) is not a
//! policy type of its own: [`rule`] maps it onto `sliding_window` policies added to its
//! deployment's set with [`PolicySet::add`], so it is evaluated exactly like a blueprint's.
//!
//! # What the caller knows
//! A policy sometimes needs facts about the deployment that only the caller has: the current
//! size of what a policy scales, whether an instance is started. They come through [`View`].
//!
//! # What this module must not do
//! Start workflows, write the store, log. Decisions are data; the caller acts on them.

pub mod config;
mod ewma;
mod host_failure;
mod hpa;
mod predictive;
mod restraints;
pub mod rule;
pub mod sample;
mod set;
mod sliding_window;
mod threshold;
pub mod trigger;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

pub use config::{BUILTIN_TYPES, PolicyError, Settings, TypeSpec, build, builtin_type};
pub use rule::{Rule, RuleError};
pub use sample::{Sample, Timestamp, Window};
pub use set::{Action, PolicySet};
pub use trigger::{TriggerSpec, render_parameters};

/// Why a policy decided what it did. Serialized in snake_case (`below_threshold`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The condition held and nothing held it back.
    Fired,
    /// The value is on the quiet side of the threshold.
    NotBreached,
    /// The threshold is breached, but not for `stability_time` yet.
    StabilityNotReached,
    /// The policy fired less than `interval_between_workflows` / `cooldown_time` ago.
    Cooldown,
    /// The target is at its scale limit (or min/max) already.
    Limit,
    /// The caller does not know the target's current size, so a limit cannot be checked.
    SizeUnknown,
    /// `is_node_started_before_workflow` and the instance is not started.
    NotStarted,
    /// HPA: the metric is within the tolerance of its target.
    WithinTolerance,
    /// HPA: a scale-down held back by the stabilization window.
    Stabilized,
    /// HPA: the desired size is the current size.
    AtDesired,
    /// No source reports, or too few points for a forecast.
    NoData,
}

/// What one policy decided at one moment, fired or not, with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The policy's name (`GROUP/POLICY` for group policies).
    pub policy: String,
    pub fired: bool,
    /// Fired and not `dry_run`: the caller runs the triggers.
    pub acting: bool,
    pub outcome: Outcome,
    /// One sentence for people: why it fired, or what held it back.
    pub reason: String,
    /// The values the decision rests on (aggregate, threshold, cooldown left, forecast, …).
    pub numbers: Map<String, Json>,
    /// The node instance the decision is about (host_failure, per-instance threshold).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The metric name and value that led to the decision, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    pub at: Timestamp,
}

/// A decision before [`PolicySet`] names its policy and applies `dry_run`.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub outcome: Outcome,
    pub reason: String,
    pub numbers: Map<String, Json>,
    pub instance: Option<String>,
    pub metric: Option<String>,
    pub value: Option<f64>,
}

impl Verdict {
    pub fn new(outcome: Outcome, reason: impl Into<String>) -> Self {
        Verdict {
            outcome,
            reason: reason.into(),
            numbers: Map::new(),
            instance: None,
            metric: None,
            value: None,
        }
    }

    pub fn fired(&self) -> bool {
        self.outcome == Outcome::Fired
    }

    pub fn num(mut self, key: &str, value: impl Into<Json>) -> Self {
        self.numbers.insert(key.to_string(), value.into());
        self
    }

    pub fn instance(mut self, instance: Option<&str>) -> Self {
        self.instance = instance.map(str::to_string);
        self
    }

    pub fn from_sample(mut self, sample: &Sample) -> Self {
        self.metric = Some(sample.name.clone());
        self.value = Some(sample.value);
        self
    }
}

/// What the caller knows about the deployment when it asks a policy.
pub trait View {
    /// The current size of what the policy scales: node instances of the `scale` target, the
    /// replicas of a `kube_scale` microservice. `None` when unknown.
    fn target_size(&self, policy: &str) -> Option<u64>;
    /// Whether a node instance is in the `started` state.
    fn is_started(&self, instance: &str) -> bool;
}

/// One policy type's state machine.
///
/// `observe` is called with every sample of the policy's deployment whose instance belongs to
/// the policy's targets; `tick` with the clock, at least once a second, for what happens without
/// samples (a silent host, a periodic HPA evaluation). Both return every verdict they reached,
/// suppressed ones included; [`PolicySet`] decides which of those to report.
pub trait Policy: Send + Sync {
    fn observe(&mut self, sample: &Sample, now: Timestamp, view: &dyn View) -> Vec<Verdict>;
    fn tick(&mut self, now: Timestamp, view: &dyn View) -> Vec<Verdict>;
    /// Live state for `windlass policies ID`: windows, last values, cooldown left.
    fn snapshot(&self, now: Timestamp) -> Json;
}

/// Rounds a number for decisions and snapshots, so events read `22.5`, not `22.500000000004`.
pub(crate) fn round(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1e6).round() / 1e6
    } else {
        x
    }
}
