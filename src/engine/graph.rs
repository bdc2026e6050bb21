//! Workflows as task graphs.
//!
//! A graph is a set of jobs, one per node instance, each a sequence of steps (lifecycle state
//! changes and operations, including relationship operations on the source and target sides),
//! with dependencies between jobs: for install an instance's job waits for the jobs of every
//! instance it has relationships to (so a contained instance is created only after its host
//! started, and a connected_to target is started before the source's preconfigure); uninstall
//! reverses the edges. Relationship steps name an operation for all of an instance's
//! relationship instances at once, so a job's size does not grow with its links: the walker
//! expands them only where the relationship has an implementation. The keys that record an
//! operation as done are stable for the same deployment, so resume can skip what an earlier
//! run recorded as done.

use std::borrow::Cow;
use std::sync::Arc;

use crate::dsl::Compiled;
use crate::plan::Plan;
use crate::plugins::Side;

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

/// One step of a job. Steps hold no per-step strings: the keys that record an operation as
/// done ([`operation_key`], [`relationship_key`]) are made only for operations that have an
/// implementation, when they run, so a step costs the same whatever the deployment's ids, and
/// relationship steps cost nothing per relationship instance until one has an operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    State(&'static str),
    /// An operation of the instance's node.
    Operation {
        name: Cow<'static, str>,
        extra_inputs: Arc<serde_json::Map<String, serde_json::Value>>,
    },
    /// A relationship operation on the source and then the target side of every relationship
    /// instance of the job's instance, in order.
    Relationships {
        name: &'static str,
    },
    /// A relationship operation on both sides of one relationship instance (`rel` indexes the
    /// instance's relationship instances).
    Relationship {
        name: &'static str,
        rel: usize,
    },
}

/// The key that records an operation of `instance` as done.
pub fn operation_key(plan: &Plan, instance: u32, name: &str) -> String {
    format!("{}:{name}", plan.instance_id(instance))
}

/// The key that records one side of a relationship operation as done.
pub fn relationship_key(plan: &Plan, instance: u32, name: &str, rel: usize, side: Side) -> String {
    let target = plan.instances[instance as usize].relationships[rel].target;
    format!(
        "{}:{name}@{}->{}",
        plan.instance_id(instance),
        crate::plugins::ctx::side_name(side),
        plan.instance_id(target)
    )
}

#[derive(Debug, Clone)]
pub struct Job {
    pub instance: u32,
    /// Shared between jobs that do the same (every job of an install).
    pub steps: Arc<[Step]>,
    pub deps: Vec<usize>,
}

#[derive(Debug, Clone, Default)]
pub struct TaskGraph {
    pub jobs: Vec<Job>,
}

/// `cloudify.interfaces.lifecycle.OP`, as a static string.
macro_rules! lifecycle {
    ($op:literal) => {
        Step::Operation {
            name: Cow::Borrowed(concat!("cloudify.interfaces.lifecycle.", $op)),
            extra_inputs: Arc::default(),
        }
    };
}

/// `cloudify.interfaces.monitoring.OP`: Cloudify runs `start` after `poststart` on install and
/// `stop` first on uninstall (and so on reinstall).
macro_rules! monitoring {
    ($op:literal) => {
        Step::Operation {
            name: Cow::Borrowed(concat!("cloudify.interfaces.monitoring.", $op)),
            extra_inputs: Arc::default(),
        }
    };
}

/// `cloudify.interfaces.relationship_lifecycle.OP` on every relationship instance.
macro_rules! relationships {
    ($op:literal) => {
        Step::Relationships {
            name: concat!("cloudify.interfaces.relationship_lifecycle.", $op),
        }
    };
}

/// The relationship operation `op` (`establish`, `unlink`, …) by its full name.
fn relationship_operation(op: &str) -> &'static str {
    match op {
        "preconfigure" => "cloudify.interfaces.relationship_lifecycle.preconfigure",
        "postconfigure" => "cloudify.interfaces.relationship_lifecycle.postconfigure",
        "establish" => "cloudify.interfaces.relationship_lifecycle.establish",
        _ => "cloudify.interfaces.relationship_lifecycle.unlink",
    }
}

/// Every instance of a deployment, in plan order.
fn all(plan: &Plan) -> Vec<u32> {
    (0..plan.instances.len() as u32).collect()
}

/// Each of the plan's instances' job in a graph over `set` (the set's order), if it has one.
fn positions(plan: &Plan, set: impl IntoIterator<Item = u32>) -> Vec<Option<usize>> {
    let mut position = vec![None; plan.instances.len()];
    for (j, i) in set.into_iter().enumerate() {
        position[i as usize] = Some(j);
    }
    position
}

/// `install`: Cloudify's per-instance sequence; targets before sources.
pub fn install(plan: &Plan) -> TaskGraph {
    install_subset(plan, &all(plan))
}

/// `install` of some instances (scale-out); relationships to others are taken as installed.
pub fn install_subset(plan: &Plan, set: &[u32]) -> TaskGraph {
    let position = positions(plan, set.iter().copied());
    let steps = install_steps();
    let jobs = set
        .iter()
        .map(|&i| {
            let targets = plan.instances[i as usize]
                .relationships
                .iter()
                .map(|r| r.target);
            Job {
                instance: i,
                steps: steps.clone(),
                deps: within(targets, &position),
            }
        })
        .collect();
    TaskGraph { jobs }
}

/// The steps of every instance's install job.
fn install_steps() -> Arc<[Step]> {
    Arc::from([
        Step::State("initializing"),
        lifecycle!("precreate"),
        Step::State("creating"),
        lifecycle!("create"),
        Step::State("created"),
        relationships!("preconfigure"),
        Step::State("configuring"),
        lifecycle!("configure"),
        Step::State("configured"),
        relationships!("postconfigure"),
        Step::State("starting"),
        lifecycle!("start"),
        Step::State("started"),
        lifecycle!("poststart"),
        monitoring!("start"),
        relationships!("establish"),
    ])
}

/// For each node, whether its instances' install is only state changes and waits for nothing
/// else: no install operation of the node or of its relationships (on either side) has an
/// implementation, and the same holds for every node it has a relationship to, transitively.
/// Such an instance ends its install `started` whatever else the install does, and nothing
/// can be seen between: `deploy` stores it `started` (see `engine::create_opened`).
pub fn nothing_to_install(c: &Compiled) -> Vec<bool> {
    let steps = install_steps();
    let own: Vec<bool> = c
        .nodes
        .iter()
        .map(|n| {
            steps.iter().all(|step| match step {
                Step::State(_) => true,
                Step::Operation { name, .. } => {
                    !c.operations(n.operations).contains_key(name.as_ref())
                }
                Step::Relationships { name } => {
                    !n.relationships.iter().any(|r| c.implements(r, name))
                }
                Step::Relationship { .. } => false,
            })
        })
        .collect();
    // Depth first, targets before the node, without recursion (a chain of templates can be
    // deeper than a worker thread's stack). A target still being visited is a cycle, which
    // validation refuses; it counts as having something to install.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unseen,
        Visiting,
        Done(bool),
    }
    let mut mark = vec![Mark::Unseen; c.nodes.len()];
    for root in 0..c.nodes.len() {
        if mark[root] != Mark::Unseen {
            continue;
        }
        mark[root] = Mark::Visiting;
        let mut stack = vec![(root, 0usize)];
        while let Some((n, next)) = stack.last_mut() {
            let relationships = &c.nodes[*n].relationships;
            if let Some(r) = relationships.get(*next) {
                *next += 1;
                if mark[r.target] == Mark::Unseen {
                    mark[r.target] = Mark::Visiting;
                    stack.push((r.target, 0));
                }
                continue;
            }
            let n = *n;
            stack.pop();
            let nothing = own[n]
                && relationships
                    .iter()
                    .all(|r| mark[r.target] == Mark::Done(true));
            mark[n] = Mark::Done(nothing);
        }
    }
    mark.into_iter().map(|m| m == Mark::Done(true)).collect()
}

/// Job indexes of the instances that are in the graph.
fn within(instances: impl Iterator<Item = u32>, position: &[Option<usize>]) -> Vec<usize> {
    let mut deps: Vec<usize> = instances
        .filter_map(|t| position.get(t as usize).copied().flatten())
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
    let position = positions(plan, set.iter().copied());
    let mut dependants: Vec<Vec<u32>> = vec![Vec::new(); set.len()];
    for (s, inst) in plan.instances.iter().enumerate() {
        for r in &inst.relationships {
            if let Some(j) = position[r.target as usize] {
                dependants[j].push(s as u32);
            }
        }
    }
    let jobs = set
        .iter()
        .enumerate()
        .map(|(j, &i)| {
            let state = state_of(i);
            let mut steps = Vec::new();
            // Which steps an instance needs depends on how far along the lifecycle it got.
            let at = STATES.iter().position(|s| *s == state);
            let between = |from: &str, to: &str| {
                let index = |x: &str| STATES.iter().position(|s| *s == x);
                at.is_some_and(|a| {
                    index(from).is_some_and(|f| f <= a) && index(to).is_some_and(|t| a <= t)
                })
            };
            if between("starting", "stopping") {
                steps.extend([
                    Step::State("stopping"),
                    monitoring!("stop"),
                    lifecycle!("prestop"),
                    lifecycle!("stop"),
                    Step::State("stopped"),
                ]);
            }
            if between("configuring", "stopped") {
                steps.push(relationships!("unlink"));
            }
            if between("creating", "deleting") {
                steps.extend([
                    Step::State("deleting"),
                    lifecycle!("delete"),
                    lifecycle!("postdelete"),
                ]);
            }
            if state != "uninitialized" && state != "deleted" {
                steps.push(Step::State("deleted"));
            }
            Job {
                instance: i,
                steps: steps.into(),
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
    compiled: &Compiled,
    links: &[(u32, usize)],
    op: &str,
    after_target: bool,
) {
    let name = relationship_operation(op);
    // A link whose relationship implements `op` on neither side needs no job: a scale that
    // adds 100 targets to a 1,000-instance fan-in costs nothing per link beyond its row.
    let implemented = |&&(s, k): &&(u32, usize)| {
        let inst = &plan.instances[s as usize];
        let rel = &compiled.nodes[inst.node].relationships[inst.relationships[k].relationship];
        compiled.implements(rel, name)
    };
    let links: Vec<&(u32, usize)> = links.iter().filter(implemented).collect();
    if links.is_empty() {
        return;
    }
    let position = positions(plan, graph.jobs.iter().map(|job| job.instance));
    for &&(s, k) in &links {
        let steps: Arc<[Step]> = Arc::from([Step::Relationship { name, rel: k }]);
        let target_job = position[plan.instances[s as usize].relationships[k].target as usize];
        let me = graph.jobs.len();
        let deps = if after_target {
            target_job.into_iter().collect()
        } else {
            Vec::new()
        };
        graph.jobs.push(Job {
            instance: s,
            steps,
            deps,
        });
        if !after_target && let Some(t) = target_job {
            graph.jobs[t].deps.push(me);
        }
    }
}

/// `execute_operation` on the selected instances, optionally in dependency order.
///
/// In dependency order every instance waits for the instances it has relationships to, as in
/// Cloudify: instances that are not selected take part as empty jobs, so an order that goes
/// through them (A depends on B depends on C, B not selected) is kept. Empty jobs cost no task
/// and write nothing.
pub fn execute_operation(
    plan: &Plan,
    selected: &[u32],
    operation: &str,
    kwargs: &serde_json::Map<String, serde_json::Value>,
    by_dependency_order: bool,
) -> TaskGraph {
    let step: Arc<[Step]> = Arc::from([Step::Operation {
        name: Cow::Owned(operation.to_string()),
        extra_inputs: Arc::new(kwargs.clone()),
    }]);
    if !by_dependency_order {
        let jobs = selected
            .iter()
            .map(|&i| Job {
                instance: i,
                steps: step.clone(),
                deps: Vec::new(),
            })
            .collect();
        return TaskGraph { jobs };
    }
    let chosen: std::collections::HashSet<u32> = selected.iter().copied().collect();
    let everyone = all(plan);
    let position = positions(plan, everyone.iter().copied());
    let nothing: Arc<[Step]> = Arc::from([]);
    let jobs = everyone
        .iter()
        .map(|&i| Job {
            instance: i,
            steps: if chosen.contains(&i) {
                step.clone()
            } else {
                nothing.clone()
            },
            deps: within(
                plan.instances[i as usize]
                    .relationships
                    .iter()
                    .map(|r| r.target),
                &position,
            ),
        })
        .collect();
    TaskGraph { jobs }
}

/// One instance running the named operations of its node, in order.
pub fn operations(instance: u32, names: &[&str]) -> TaskGraph {
    let steps = names
        .iter()
        .map(|name| Step::Operation {
            name: Cow::Owned(name.to_string()),
            extra_inputs: Arc::default(),
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn nothing_to_install_follows_every_relationship_to_its_end() {
        // `vm` creates something; `app` on it has nothing of its own but waits for it; `db` and
        // `cache` (connected to `db`) have nothing anywhere; `lb` establishes its link to `db`.
        let text = "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nplugins: { p: { executor: central_deployment_agent, install: false } }\nnode_templates:\n  vm:\n    type: cloudify.nodes.Root\n    interfaces: { cloudify.interfaces.lifecycle: { create: p.tasks.create } }\n  app:\n    type: cloudify.nodes.Root\n    relationships: [{ type: cloudify.relationships.contained_in, target: vm }]\n  db: { type: cloudify.nodes.Root }\n  cache:\n    type: cloudify.nodes.Root\n    relationships: [{ type: cloudify.relationships.connected_to, target: db }]\n  lb:\n    type: cloudify.nodes.Root\n    relationships:\n      - type: cloudify.relationships.connected_to\n        target: db\n        source_interfaces: { cloudify.interfaces.relationship_lifecycle: { establish: p.tasks.link } }\n";
        let bp =
            crate::blueprint::open_str(Path::new("t.yaml"), text, &Default::default()).unwrap();
        let c = &bp.compiled;
        let nothing = nothing_to_install(c);
        let of = |n: &str| nothing[*c.node_index.get(n).unwrap()];
        assert_eq!(
            ["vm", "app", "db", "cache", "lb"].map(of),
            [false, false, true, true, false]
        );
    }
}
