//! Workflows as task graphs.
//!
//! A graph is a set of jobs, one per node instance, each a sequence of steps (lifecycle state
//! changes and operations, including relationship operations on the source and target sides),
//! with dependencies between jobs: for install an instance's job waits for the jobs of every
//! instance it has relationships to (so a contained instance is created only after its host
//! started, and a connected_to target is started before the source's preconfigure); uninstall
//! reverses the edges. Step keys are stable for the same deployment, so resume can skip what an
//! earlier run recorded as done.

use crate::dsl::Compiled;
use crate::plan::Plan;
use crate::plugins::Side;

const LIFECYCLE: &str = "cloudify.interfaces.lifecycle";
const RELATIONSHIP: &str = "cloudify.interfaces.relationship_lifecycle";

#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    State(&'static str),
    /// An operation of the instance's node.
    Operation {
        name: String,
        extra_inputs: serde_json::Map<String, serde_json::Value>,
    },
    /// A relationship operation: `rel` indexes the instance's relationship instances.
    Relationship {
        name: String,
        rel: usize,
        side: Side,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub key: String,
    pub kind: StepKind,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub instance: u32,
    pub steps: Vec<Step>,
    pub deps: Vec<usize>,
}

#[derive(Debug, Clone, Default)]
pub struct TaskGraph {
    pub jobs: Vec<Job>,
}

struct Builder<'a> {
    plan: &'a Plan,
    instance: u32,
    steps: Vec<Step>,
}

impl Builder<'_> {
    fn id(&self) -> &str {
        &self.plan.instances[self.instance as usize].id.0
    }
    fn state(&mut self, s: &'static str) {
        let key = format!("{}:state={s}", self.id());
        self.steps.push(Step {
            key,
            kind: StepKind::State(s),
        });
    }
    fn op(&mut self, op: &str) {
        let name = format!("{LIFECYCLE}.{op}");
        let key = format!("{}:{name}", self.id());
        self.steps.push(Step {
            key,
            kind: StepKind::Operation {
                name,
                extra_inputs: Default::default(),
            },
        });
    }
    fn rel_ops(&mut self, op: &str) {
        let name = format!("{RELATIONSHIP}.{op}");
        for (rel, r) in self.plan.instances[self.instance as usize]
            .relationships
            .iter()
            .enumerate()
        {
            let target = self.plan.instance_id(r.target).0.clone();
            for side in [Side::Source, Side::Target] {
                let key = format!(
                    "{}:{name}@{}->{target}",
                    self.id(),
                    crate::plugins::ctx::side_name(side)
                );
                self.steps.push(Step {
                    key,
                    kind: StepKind::Relationship {
                        name: name.clone(),
                        rel,
                        side,
                    },
                });
            }
        }
    }
}

/// Instances of a deployment to act on, in plan order.
fn all(plan: &Plan) -> impl Iterator<Item = u32> {
    0..plan.instances.len() as u32
}

/// `install`: Cloudify's per-instance sequence; targets before sources.
pub fn install(plan: &Plan) -> TaskGraph {
    let jobs = all(plan)
        .map(|i| {
            let mut b = Builder {
                plan,
                instance: i,
                steps: Vec::new(),
            };
            b.state("initializing");
            b.op("precreate");
            b.state("creating");
            b.op("create");
            b.state("created");
            b.rel_ops("preconfigure");
            b.state("configuring");
            b.op("configure");
            b.state("configured");
            b.rel_ops("postconfigure");
            b.state("starting");
            b.op("start");
            b.state("started");
            b.op("poststart");
            b.rel_ops("establish");
            Job {
                instance: i,
                steps: b.steps,
                deps: targets(plan, i),
            }
        })
        .collect();
    TaskGraph { jobs }
}

/// `uninstall`: dependants first; what an instance reached decides which steps it needs, so an
/// instance whose create failed half-way still gets `delete`.
pub fn uninstall(plan: &Plan, state_of: impl Fn(u32) -> String) -> TaskGraph {
    let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); plan.instances.len()];
    for (s, inst) in plan.instances.iter().enumerate() {
        for r in &inst.relationships {
            dependants[r.target as usize].push(s);
        }
    }
    let jobs = all(plan)
        .map(|i| {
            let state = state_of(i);
            let mut b = Builder {
                plan,
                instance: i,
                steps: Vec::new(),
            };
            let reached = |states: &[&str]| states.contains(&state.as_str());
            if reached(&["starting", "started", "stopping"]) {
                b.state("stopping");
                b.op("prestop");
                b.op("stop");
                b.state("stopped");
            }
            if reached(&[
                "configuring",
                "configured",
                "starting",
                "started",
                "stopping",
                "stopped",
            ]) {
                b.rel_ops("unlink");
            }
            if reached(&[
                "creating",
                "created",
                "configuring",
                "configured",
                "starting",
                "started",
                "stopping",
                "stopped",
                "deleting",
            ]) {
                b.state("deleting");
                b.op("delete");
                b.op("postdelete");
            }
            if !reached(&["uninitialized", "deleted"]) {
                b.state("deleted");
            }
            let mut deps = dependants[i as usize].clone();
            deps.sort_unstable();
            deps.dedup();
            Job {
                instance: i,
                steps: b.steps,
                deps,
            }
        })
        .collect();
    TaskGraph { jobs }
}

/// `execute_operation` on the selected instances, optionally in dependency order.
pub fn execute_operation(
    plan: &Plan,
    selected: &[u32],
    operation: &str,
    kwargs: &serde_json::Map<String, serde_json::Value>,
    by_dependency_order: bool,
) -> TaskGraph {
    let position: std::collections::HashMap<u32, usize> =
        selected.iter().enumerate().map(|(j, i)| (*i, j)).collect();
    let jobs = selected
        .iter()
        .map(|&i| {
            let key = format!("{}:{operation}", plan.instance_id(i));
            let step = Step {
                key,
                kind: StepKind::Operation {
                    name: operation.to_string(),
                    extra_inputs: kwargs.clone(),
                },
            };
            let deps = if by_dependency_order {
                plan.instances[i as usize]
                    .relationships
                    .iter()
                    .filter_map(|r| position.get(&r.target).copied())
                    .collect()
            } else {
                Vec::new()
            };
            Job {
                instance: i,
                steps: vec![step],
                deps,
            }
        })
        .collect();
    TaskGraph { jobs }
}

fn targets(plan: &Plan, i: u32) -> Vec<usize> {
    let mut t: Vec<usize> = plan.instances[i as usize]
        .relationships
        .iter()
        .map(|r| r.target as usize)
        .collect();
    t.sort_unstable();
    t.dedup();
    t
}

/// Operations every step of the graph calls that have an implementation, for plugin checks.
pub fn node_operation_exists(c: &Compiled, node: usize, name: &str) -> bool {
    c.nodes[node].operations.contains_key(name)
}
