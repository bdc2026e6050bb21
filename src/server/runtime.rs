//! The policy runtime: the one task that holds every live [`PolicySet`] and acts on decisions.
//!
//! Samples arrive through a bounded channel from the intakes ([`Handle::submit`]). Every
//! `TICK` the runtime lets time pass for every set (silent hosts, periodic evaluations), and
//! every `REFRESH` it re-reads which deployments are installed: a deployment that became
//! installed gets its set built from its compiled blueprint, one that is no longer installed
//! (or gone) loses its set. What a policy needs to know about a deployment — the size of what
//! it scales, which instances are started — is read from the store at the same time
//! ([`Facts`]) and passed to the sets as their [`View`].
//!
//! Autoscaling rules (`windlass rules`, `/api/v1/rules`) are read on every refresh too: a rule
//! of a live deployment that is new or changed becomes policies of its set
//! ([`Rule::add_to`]: `rule:NAME/out`, `rule:NAME/in`), one deleted or changed loses them, so a
//! rule is live, changed or gone within a refresh. A changed rule starts afresh (empty windows,
//! no cooldown). From then on its policies are evaluated, reported and acted on like a
//! blueprint's.
//!
//! A decision becomes an event of its deployment (`policy_fired`, `policy_suppressed`; the
//! reason and the numbers behind it in the message). An acting decision's triggers start their
//! workflows through [`engine::start`], and each execution is walked in a task of its own, so
//! the runtime never waits for a workflow. Live state is written to the store once per
//! refresh, for `windlass policies ID` and `GET /api/v1/deployments/ID/policies`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value as Json, json};
use tokio::sync::{mpsc, watch};

use super::Settings;
use crate::engine;
use crate::policy::{self, Decision, PolicySet, Rule, Sample, Timestamp, View};
use crate::store::{EventRecord, Store, Write};

/// How often time passes for the sets.
const TICK: Duration = Duration::from_millis(250);
/// How often installed deployments and their facts are re-read.
const REFRESH: Duration = Duration::from_millis(500);
/// Sample batches waiting for the runtime at most; intakes wait beyond that (backpressure).
const QUEUE: usize = 1024;

/// The intakes' and handlers' way to the runtime.
#[derive(Clone)]
pub struct Handle {
    samples: mpsc::Sender<Vec<Sample>>,
    stopped: watch::Receiver<bool>,
    stats: Arc<Stats>,
}

/// Counters the runtime keeps for `/api/v1/status`.
#[derive(Debug, Default)]
pub struct Stats {
    pub samples: AtomicU64,
    /// Samples for a deployment that is not installed (or has no policies).
    pub unrouted: AtomicU64,
    pub decisions: AtomicU64,
    pub executions_started: AtomicU64,
    pub executions_refused: AtomicU64,
    pub live_deployments: AtomicU64,
    pub stopping: AtomicBool,
}

impl Handle {
    /// Hand samples to the runtime; waits while its queue is full. False once it has stopped.
    pub async fn submit(&self, samples: Vec<Sample>) -> bool {
        if samples.is_empty() {
            return true;
        }
        self.samples.send(samples).await.is_ok()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Wait until the runtime has stopped (after shutdown was signalled).
    pub async fn stopped(&self) {
        let mut s = self.stopped.clone();
        super::until_set(&mut s).await;
    }
}

/// Seconds since the epoch: the clock the runtime passes to policies.
pub fn now() -> Timestamp {
    Timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64(),
    )
}

/// Start the runtime task.
pub fn spawn(store: Store, settings: &Settings, shutdown: watch::Receiver<bool>) -> Handle {
    let (tx, rx) = mpsc::channel(QUEUE);
    let (stopped_tx, stopped_rx) = watch::channel(false);
    let stats = Arc::new(Stats::default());
    let (ended_tx, ended_rx) = mpsc::unbounded_channel();
    let runtime = Runtime {
        store,
        policy_settings: policy::Settings {
            host_failure_ttl: settings.host_failure_ttl.as_secs_f64(),
            ..policy::Settings::default()
        },
        options: settings.options.clone(),
        live: HashMap::new(),
        stats: stats.clone(),
        ended: ended_tx,
    };
    tokio::spawn(async move {
        runtime.run(rx, ended_rx, shutdown).await;
        let _ = stopped_tx.send(true);
    });
    Handle {
        samples: tx,
        stopped: stopped_rx,
        stats,
    }
}

/// One installed deployment with policies.
struct Live {
    /// `created_at` of the deployment the set was built for: a deployment deleted and created
    /// again under the same id gets a new set.
    created_at: String,
    set: PolicySet,
    /// For each policy, the node or scaling group its triggers scale (when they scale).
    targets: HashMap<String, String>,
    /// Scaling group names by their index in the plan's tree.
    groups: Vec<String>,
    facts: Facts,
    /// The rules whose policies are in `set` (or were refused), as they were read.
    rules: HashMap<String, Rule>,
    /// Policies were added or removed since the live state was last saved.
    changed: bool,
}

/// What policies may ask about a deployment, as last read from the store.
#[derive(Default)]
struct Facts {
    /// Instances not deleted, per node and per scaling group; replicas per microservice node.
    sizes: HashMap<String, u64>,
    started: HashSet<String>,
    targets: HashMap<String, String>,
}

impl View for Facts {
    fn target_size(&self, policy: &str) -> Option<u64> {
        self.sizes.get(self.targets.get(policy)?).copied()
    }

    fn is_started(&self, instance: &str) -> bool {
        self.started.contains(instance)
    }
}

struct Runtime {
    store: Store,
    policy_settings: policy::Settings,
    options: engine::Options,
    live: HashMap<String, Live>,
    stats: Arc<Stats>,
    /// Deployments whose execution, started by a policy, just ended: their facts are re-read
    /// before any further sample is evaluated, so a policy never judges the size from before
    /// the scale it started.
    ended: mpsc::UnboundedSender<String>,
}

impl Runtime {
    async fn run(
        mut self,
        mut samples: mpsc::Receiver<Vec<Sample>>,
        mut ended: mpsc::UnboundedReceiver<String>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut refresh = tokio::time::interval(REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            // In this order: an ended execution's facts before any later sample (which then
            // sees the size it left), and the clocks before samples, so a flood of samples
            // never starves them.
            tokio::select! {
                biased;
                _ = crate::server::until_set(&mut shutdown) => break,
                Some(id) = ended.recv() => self.reread_facts(&id).await,
                _ = refresh.tick() => self.refresh().await,
                _ = tick.tick() => self.tick().await,
                batch = samples.recv() => {
                    let Some(batch) = batch else { break };
                    self.observe(batch).await;
                }
            }
        }
        self.stats.stopping.store(true, Ordering::Relaxed);
    }

    async fn observe(&mut self, batch: Vec<Sample>) {
        let now = now();
        let mut decisions: Vec<(String, Decision)> = Vec::new();
        for sample in &batch {
            self.stats.samples.fetch_add(1, Ordering::Relaxed);
            match self.live.get_mut(&sample.deployment) {
                Some(live) => decisions.extend(
                    live.set
                        .observe(sample, now, &live.facts)
                        .into_iter()
                        .map(|d| (sample.deployment.clone(), d)),
                ),
                None => {
                    self.stats.unrouted.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.act(decisions).await;
    }

    async fn tick(&mut self) {
        let now = now();
        let mut decisions = Vec::new();
        for (id, live) in &mut self.live {
            decisions.extend(
                live.set
                    .tick(now, &live.facts)
                    .into_iter()
                    .map(|d| (id.clone(), d)),
            );
        }
        self.act(decisions).await;
    }

    /// Record decisions as events; start the workflows of acting ones.
    async fn act(&mut self, decisions: Vec<(String, Decision)>) {
        if decisions.is_empty() {
            return;
        }
        let mut writes = Vec::new();
        for (deployment, decision) in decisions {
            self.stats.decisions.fetch_add(1, Ordering::Relaxed);
            writes.push(event(
                &deployment,
                "",
                if decision.fired {
                    "policy_fired"
                } else {
                    "policy_suppressed"
                },
                decision.instance.clone(),
                decision_message(&decision),
            ));
            if !decision.acting {
                continue;
            }
            let actions = match self.live.get(&deployment) {
                Some(live) => live.set.actions(&decision),
                None => continue,
            };
            for action in actions {
                let message = match action {
                    Err(e) => {
                        self.stats
                            .executions_refused
                            .fetch_add(1, Ordering::Relaxed);
                        writes.push(event(
                            &deployment,
                            "",
                            "policy_workflow_refused",
                            None,
                            format!("policy {}: {e}", decision.policy),
                        ));
                        continue;
                    }
                    Ok(action) => self.start(&deployment, &action).await,
                };
                writes.push(message);
            }
        }
        if let Err(e) = self.store.apply(&writes).await {
            super::note(&format!("cannot record policy decisions: {e}"));
        }
    }

    /// Start one trigger's workflow; returns the event that says what happened.
    async fn start(&self, deployment: &str, action: &policy::Action) -> Write {
        let started = engine::start(
            &self.store,
            deployment,
            &action.workflow,
            action.parameters.clone(),
            action.allow_custom_parameters,
        )
        .await;
        match started {
            Ok(started) => {
                self.stats
                    .executions_started
                    .fetch_add(1, Ordering::Relaxed);
                let execution = started.execution().to_string();
                let store = self.store.clone();
                let options = self.options.clone();
                let (id, workflow) = (deployment.to_string(), action.workflow.clone());
                let ended = self.ended.clone();
                tokio::spawn(async move {
                    if let Err(e) = started.run(&store, &options).await {
                        super::note(&format!("{workflow} of {id}: {e}"));
                    }
                    let _ = ended.send(id);
                });
                event(
                    deployment,
                    &execution,
                    "policy_workflow_started",
                    None,
                    format!(
                        "policy {} started `{}` (execution {execution}) with {}",
                        action.policy,
                        action.workflow,
                        Json::Object(action.parameters.clone())
                    ),
                )
            }
            Err(e) => {
                self.stats
                    .executions_refused
                    .fetch_add(1, Ordering::Relaxed);
                event(
                    deployment,
                    "",
                    "policy_workflow_refused",
                    None,
                    format!(
                        "policy {} could not start `{}`: {e}",
                        action.policy, action.workflow
                    ),
                )
            }
        }
    }

    /// Follow the store: build sets for newly installed deployments, drop those gone or
    /// uninstalled, re-read the facts of the others, and save every set's live state.
    async fn refresh(&mut self) {
        let states = match self.store.deployment_states().await {
            Ok(s) => s,
            Err(e) => {
                super::note(&format!("cannot read deployments: {e}"));
                return;
            }
        };
        let installed: HashMap<&str, &str> = states
            .iter()
            .filter(|s| s.installed && !s.deleting)
            .map(|s| (s.id.as_str(), s.created_at.as_str()))
            .collect();
        self.live
            .retain(|id, live| installed.get(id.as_str()) == Some(&live.created_at.as_str()));
        for (id, created_at) in &installed {
            if !self.live.contains_key(*id)
                && let Some(live) = self.build(id, created_at).await
            {
                self.live.insert(id.to_string(), live);
            }
        }
        self.stats
            .live_deployments
            .store(self.live.len() as u64, Ordering::Relaxed);
        self.sync_rules().await;
        let now = now();
        let mut snapshots = Vec::new();
        for (id, live) in &mut self.live {
            if live.set.is_empty() {
                // A set whose last policies went (a deleted rule) is saved empty once.
                if std::mem::take(&mut live.changed) {
                    snapshots.push((id.clone(), live.set.snapshot(now)));
                }
                continue;
            }
            live.changed = false;
            match read_facts(&self.store, id, &live.targets, &live.groups).await {
                Ok(facts) => live.facts = facts,
                Err(e) => super::note(&format!("cannot read instances of {id}: {e}")),
            }
            snapshots.push((id.clone(), live.set.snapshot(now)));
        }
        if let Err(e) = self.store.save_policy_states(&snapshots).await {
            super::note(&format!("cannot save policy state: {e}"));
        }
    }

    /// Re-read one deployment's facts (after an execution of it ended).
    async fn reread_facts(&mut self, id: &str) {
        let Some(live) = self.live.get_mut(id) else {
            return;
        };
        match read_facts(&self.store, id, &live.targets, &live.groups).await {
            Ok(facts) => live.facts = facts,
            Err(e) => super::note(&format!("cannot read instances of {id}: {e}")),
        }
    }

    /// Bring every live set's rule policies in line with the stored rules: remove those of
    /// rules deleted or changed, add those of rules new or changed. A rule whose target cannot
    /// be resolved (the deployment changed under it) is refused with an event, once.
    async fn sync_rules(&mut self) {
        let stored = match self.store.rules(None).await {
            Ok(r) => r,
            Err(e) => {
                super::note(&format!("cannot read rules: {e}"));
                return;
            }
        };
        let mut wanted: HashMap<String, HashMap<String, Rule>> = HashMap::new();
        for r in stored {
            wanted
                .entry(r.rule.deployment.clone())
                .or_default()
                .insert(r.rule.name.clone(), r.rule);
        }
        let mut writes = Vec::new();
        for (id, live) in &mut self.live {
            let wanted = wanted.remove(id).unwrap_or_default();
            let stale: Vec<String> = live
                .rules
                .iter()
                .filter(|(name, rule)| wanted.get(*name) != Some(*rule))
                .map(|(name, _)| name.clone())
                .collect();
            for name in stale {
                if let Some(rule) = live.rules.remove(&name) {
                    for policy in rule.policy_names() {
                        live.set.remove(&policy);
                        live.targets.remove(&policy);
                        live.facts.targets.remove(&policy);
                    }
                    live.changed = true;
                }
            }
            let new: Vec<Rule> = wanted
                .into_values()
                .filter(|r| !live.rules.contains_key(&r.name))
                .collect();
            if new.is_empty() {
                continue;
            }
            let dep = match self.store.deployment_frame(id).await {
                Ok(d) => d,
                Err(e) => {
                    super::note(&format!("cannot read deployment {id}: {e}"));
                    continue;
                }
            };
            for rule in new {
                let added = rule
                    .resolve(&dep.compiled, &dep.plan.tree)
                    .map_err(|e| e.to_string())
                    .and_then(|resolved| {
                        rule.add_to(&mut live.set, &resolved, &self.policy_settings)
                            .map_err(|e| e.to_string())
                            .map(|()| resolved)
                    });
                match added {
                    Ok(resolved) => {
                        for policy in rule.policy_names() {
                            live.targets.insert(policy.clone(), resolved.scaled.clone());
                            live.facts.targets.insert(policy, resolved.scaled.clone());
                        }
                    }
                    Err(e) => writes.push(event(
                        id,
                        "",
                        "policy_refused",
                        None,
                        format!("rule {}: {e}", rule.name),
                    )),
                }
                live.rules.insert(rule.name.clone(), rule);
                live.changed = true;
            }
        }
        if let Err(e) = self.store.apply(&writes).await {
            super::note(&format!("cannot record rule errors: {e}"));
        }
    }

    /// A deployment's set, or `None` (and an event per error) when its blueprint cannot be
    /// read. Policies that cannot be built are left out, each with an event.
    async fn build(&self, id: &str, created_at: &str) -> Option<Live> {
        let dep = match self.store.deployment_frame(id).await {
            Ok(d) => d,
            Err(e) => {
                super::note(&format!("cannot read deployment {id}: {e}"));
                return None;
            }
        };
        let (set, errors) = PolicySet::from_compiled(id, &dep.compiled, &self.policy_settings);
        let writes: Vec<Write> = errors
            .iter()
            .map(|e| event(id, "", "policy_refused", None, e.to_string()))
            .collect();
        if let Err(e) = self.store.apply(&writes).await {
            super::note(&format!("cannot record policy errors: {e}"));
        }
        let targets = scale_targets(&dep.compiled.policies);
        let groups = dep
            .plan
            .tree
            .groups
            .iter()
            .map(|g| g.name.clone())
            .collect();
        Some(Live {
            created_at: created_at.to_string(),
            set,
            facts: Facts::default(),
            targets,
            groups,
            rules: HashMap::new(),
            changed: false,
        })
    }
}

/// For each policy whose triggers scale something, the key of its size in [`Facts::sizes`]:
/// the node or group a `scale` names, or `replicas:NODE` for a `kube_scale` of a microservice
/// (whose replicas windlass keeps in the instance's runtime property `replicas`).
fn scale_targets(policies: &crate::maps::IndexMap<String, Json>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (name, p) in policies {
        let triggers = p.get("triggers").and_then(Json::as_object);
        for t in triggers.into_iter().flat_map(|t| t.values()) {
            let params = t.get("parameters").unwrap_or(t);
            let workflow = params.get("workflow").and_then(Json::as_str).unwrap_or("");
            let workflow_params = params.get("workflow_parameters").and_then(Json::as_object);
            let target = workflow_params.and_then(|w| {
                ["scalable_entity_name", "node_id", "name"]
                    .iter()
                    .find_map(|k| w.get(*k).and_then(Json::as_str))
            });
            if let Some(target) = target {
                let key = if workflow == "kube_scale" {
                    format!("{REPLICAS}{target}")
                } else {
                    target.to_string()
                };
                out.insert(name.clone(), key);
            }
        }
    }
    out
}

/// Prefix of a microservice's replica count in [`Facts::sizes`].
const REPLICAS: &str = "replicas:";

/// The replica count an instance keeps: `replicas` (a 2016 microservice, set at install and by
/// every `kube_scale`), or the `spec.replicas` of the Deployment in `kubernetes` (a 2.x
/// resource, as the API last returned it).
fn replicas(props: &Map<String, Json>) -> Option<u64> {
    if let Some(n) = props.get("replicas").and_then(Json::as_u64) {
        return Some(n);
    }
    let objects = match props.get("kubernetes")? {
        Json::Array(all) => all.iter().collect::<Vec<_>>(),
        one => vec![one],
    };
    objects
        .into_iter()
        .find(|o| o.get("kind").and_then(Json::as_str) == Some("Deployment"))
        .and_then(|d| d.pointer("/spec/replicas"))
        .and_then(Json::as_u64)
}

async fn read_facts(
    store: &Store,
    deployment: &str,
    targets: &HashMap<String, String>,
    groups: &[String],
) -> Result<Facts, crate::store::StoreError> {
    let mut facts = Facts {
        targets: targets.clone(),
        ..Facts::default()
    };
    for i in store.instances(deployment).await? {
        if i.state == "deleted" {
            continue;
        }
        if i.state == "started" {
            facts.started.insert(i.id.clone());
        }
        if let Some(replicas) = replicas(&i.runtime_properties) {
            facts
                .sizes
                .insert(format!("{REPLICAS}{}", i.node_id), replicas);
        }
        *facts.sizes.entry(i.node_id).or_default() += 1;
    }
    for (group, size) in store.group_sizes(deployment).await? {
        if let Some(name) = groups.get(group) {
            facts.sizes.insert(name.clone(), size);
        }
    }
    Ok(facts)
}

/// A decision as one line: the policy, its reason, and the numbers behind it.
fn decision_message(d: &Decision) -> String {
    let mut numbers: Map<String, Json> = d.numbers.clone();
    if let Some(m) = &d.metric {
        numbers.insert("metric".into(), json!(m));
    }
    if let Some(v) = d.value {
        numbers.insert("value".into(), json!(v));
    }
    format!(
        "policy {}: {} — {}: {}",
        d.policy,
        if d.fired { "fired" } else { "held back" },
        d.reason,
        Json::Object(numbers)
    )
}

fn event(
    deployment: &str,
    execution: &str,
    event_type: &str,
    instance: Option<String>,
    message: String,
) -> Write {
    Write::Event {
        deployment: deployment.to_string(),
        event: EventRecord {
            seq: 0,
            timestamp: crate::store::now(),
            execution_id: execution.to_string(),
            event_type: event_type.to_string(),
            node_instance_id: instance,
            operation: None,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_each_policy_scales_is_found_in_its_triggers() {
        let policies: crate::maps::IndexMap<String, Json> = [
            (
                "g/out".to_string(),
                json!({"triggers": {"t": {"type": "cloudify.policies.triggers.execute_workflow",
                    "parameters": {"workflow": "scale", "workflow_parameters": {"scalable_entity_name": "web", "delta": 1}}}}}),
            ),
            (
                "g/kube".to_string(),
                json!({"triggers": {"t": {"parameters": {"workflow": "kube_scale",
                    "workflow_parameters": {"name": "nodejs", "amount": "+1"}}}}}),
            ),
            ("g/heal".to_string(), json!({"triggers": {"t": {"parameters": {"workflow": "heal"}}}})),
        ]
        .into_iter()
        .collect();
        let targets = scale_targets(&policies);
        assert_eq!(targets.get("g/out").map(String::as_str), Some("web"));
        assert_eq!(
            targets.get("g/kube").map(String::as_str),
            Some("replicas:nodejs")
        );
        assert!(!targets.contains_key("g/heal"));
        let facts = Facts {
            sizes: [("web".to_string(), 3), ("replicas:nodejs".to_string(), 2)]
                .into_iter()
                .collect(),
            started: HashSet::new(),
            targets,
        };
        assert_eq!(facts.target_size("g/out"), Some(3));
        assert_eq!(facts.target_size("g/kube"), Some(2));
        assert_eq!(facts.target_size("g/heal"), None);
    }

    #[test]
    fn replicas_come_from_a_microservice_or_the_recorded_deployment() {
        let props = |v: Json| v.as_object().unwrap().clone();
        assert_eq!(replicas(&props(json!({"replicas": 2}))), Some(2));
        let deployment = json!({"kind": "Deployment", "spec": {"replicas": 4}});
        assert_eq!(
            replicas(&props(json!({"kubernetes": deployment.clone()}))),
            Some(4)
        );
        let list = json!({"kubernetes": [{"kind": "Service", "spec": {}}, deployment]});
        assert_eq!(replicas(&props(list)), Some(4));
        assert_eq!(
            replicas(&props(json!({"kubernetes": {"kind": "Service"}}))),
            None
        );
        assert_eq!(replicas(&props(json!({}))), None);
    }
}
