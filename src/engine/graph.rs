//! Workflows as task graphs.
//!
//! A graph is a set of jobs, one per node instance, each a sequence of steps (lifecycle state
//! changes and operations, including relationship operations on the source and target sides),
//! with dependencies between jobs: for install an instance's job waits for the jobs of every
//! instance it has relationships to (so a contained instance is created only after its host
//! started, and a connected_to target is started before the source's preconfigure); uninstall
//! reverses the edges. Step keys are stable for the same deployment, so resume can skip what an
//! earlier run recorded as done.

use std::collections::HashMap;

use crate::plan::Plan;
use crate::plugins::Side;

const LIFECYCLE: &str = "cloudify.interfaces.lifecycle";
const RELATIONSHIP: &str = "cloudify.interfaces.relationship_lifecycle";

/// Node-instance states in lifecycle order.
const STATES: [&str; 12] = [
    "uninitialized",
    "initializing",
    "creating",
    "created",
    "configuring",
    "configured",
    "starting",
    "started",
    "stopping",
    "stopped",
    "deleting",
    "deleted",
];

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
        for rel in 0..self.plan.instances[self.instance as usize]
            .relationships
            .len()
        {
            self.rel_op(op, rel);
        }
    }

    /// `op` on both sides of one relationship instance.
    fn rel_op(&mut self, op: &str, rel: usize) {
        let name = format!("{RELATIONSHIP}.{op}");
        let r = self.plan.instances[self.instance as usize].relationships[rel];
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

/// Every instance of a deployment, in plan order.
fn all(plan: &Plan) -> Vec<u32> {
    (0..plan.instances.len() as u32).collect()
}

/// `install`: Cloudify's per-instance sequence; targets before sources.
pub fn install(plan: &Plan) -> TaskGraph {
    install_subset(plan, &all(plan))
}

/// `install` of some instances (scale-out); relationships to others are taken as installed.
pub fn install_subset(plan: &Plan, set: &[u32]) -> TaskGraph {
    let position: HashMap<u32, usize> = set.iter().enumerate().map(|(j, i)| (*i, j)).collect();
    let jobs = set
        .iter()
        .map(|&i| {
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
            let targets = plan.instances[i as usize]
                .relationships
                .iter()
                .map(|r| r.target);
            Job {
                instance: i,
                steps: b.steps,
                deps: within(targets, &position),
            }
        })
        .collect();
    TaskGraph { jobs }
}

/// Job indexes of the instances that are in the graph.
fn within(instances: impl Iterator<Item = u32>, position: &HashMap<u32, usize>) -> Vec<usize> {
    let mut deps: Vec<usize> = instances
        .filter_map(|t| position.get(&t).copied())
        .collect();
    deps.sort_unstable();
    deps.dedup();
    deps
}

/// `uninstall`: dependants first; what an instance reached decides which steps it needs, so an
/// instance whose create failed half-way still gets `delete`.
pub fn uninstall(plan: &Plan, state_of: impl Fn(u32) -> String) -> TaskGraph {
    uninstall_subset(plan, &all(plan), state_of)
}

/// `uninstall` of some instances (scale-in, rollback); dependants inside the set go first.
pub fn uninstall_subset(plan: &Plan, set: &[u32], state_of: impl Fn(u32) -> String) -> TaskGraph {
    let position: HashMap<u32, usize> = set.iter().enumerate().map(|(j, i)| (*i, j)).collect();
    let mut dependants: Vec<Vec<u32>> = vec![Vec::new(); set.len()];
    for (s, inst) in plan.instances.iter().enumerate() {
        for r in &inst.relationships {
            if let Some(&j) = position.get(&r.target) {
                dependants[j].push(s as u32);
            }
        }
    }
    let jobs = set
        .iter()
        .enumerate()
        .map(|(j, &i)| {
            let state = state_of(i);
            let mut b = Builder {
                plan,
                instance: i,
                steps: Vec::new(),
            };
            // Which steps an instance needs depends on how far along the lifecycle it got.
            let at = STATES.iter().position(|s| *s == state);
            let between = |from: &str, to: &str| {
                let index = |x: &str| STATES.iter().position(|s| *s == x);
                at.is_some_and(|a| {
                    index(from).is_some_and(|f| f <= a) && index(to).is_some_and(|t| a <= t)
                })
            };
            if between("starting", "stopping") {
                b.state("stopping");
                b.op("prestop");
                b.op("stop");
                b.state("stopped");
            }
            if between("configuring", "stopped") {
                b.rel_ops("unlink");
            }
            if between("creating", "deleting") {
                b.state("deleting");
                b.op("delete");
                b.op("postdelete");
            }
            if state != "uninitialized" && state != "deleted" {
                b.state("deleted");
            }
            Job {
                instance: i,
                steps: b.steps,
                deps: within(dependants[j].iter().copied(), &position),
            }
        })
        .collect();
    TaskGraph { jobs }
}

/// Jobs that run a relationship operation for single relationship instances `(source, index)`.
/// With `after_target`, each waits for its target's job (establish after the target installed);
/// otherwise the target's job waits for it (unlink before the target is uninstalled).
pub fn add_link_jobs(
    graph: &mut TaskGraph,
    plan: &Plan,
    links: &[(u32, usize)],
    op: &str,
    after_target: bool,
) {
    let position: HashMap<u32, usize> = graph
        .jobs
        .iter()
        .enumerate()
        .map(|(j, job)| (job.instance, j))
        .collect();
    for &(s, k) in links {
        let mut b = Builder {
            plan,
            instance: s,
            steps: Vec::new(),
        };
        b.rel_op(op, k);
        let target_job = position
            .get(&plan.instances[s as usize].relationships[k].target)
            .copied();
        let me = graph.jobs.len();
        let deps = if after_target {
            target_job.into_iter().collect()
        } else {
            Vec::new()
        };
        graph.jobs.push(Job {
            instance: s,
            steps: b.steps,
            deps,
        });
        if !after_target && let Some(t) = target_job {
            graph.jobs[t].deps.push(me);
        }
    }
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

/// One instance running the named operations of its node, in order.
pub fn operations(plan: &Plan, instance: u32, names: &[&str]) -> TaskGraph {
    let steps = names
        .iter()
        .map(|name| Step {
            key: format!("{}:{name}", plan.instance_id(instance)),
            kind: StepKind::Operation {
                name: name.to_string(),
                extra_inputs: Default::default(),
            },
        })
        .collect();
    TaskGraph {
        jobs: vec![Job {
            instance,
            steps,
            deps: Vec::new(),
        }],
    }
}
