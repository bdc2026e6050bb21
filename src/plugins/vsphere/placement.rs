//! The allocator: which VM a new instance gets, given what vCenter reports now and what the
//! store says is taken. Pure — no I/O, no clock — so its rules are tested directly; the
//! operation calls it inside the store's allocation transaction (`Store::vsphere_allocate`)
//! while holding the deployment's allocation lock ([`deployment_lock`]).
//!
//! # Rules
//! 1. Pool first: the first pooled VM (in the pool's order: as listed, or by name for a prefix)
//!    that is powered off, held by no instance (of any deployment) on this vCenter, and whose
//!    host is connected, powered on and below `max_vms_per_host`.
//! 2. Otherwise a clone, onto the next candidate host round-robin: the candidates in their
//!    order (the node's `hosts` as listed, else every host by name), starting after the host
//!    this node last cloned onto, skipping hosts that are not `CONNECTED` and `POWERED_ON` now
//!    and hosts at `max_vms_per_host` (counting every VM of the deployment on that host,
//!    pooled ones included).
//! 3. Nothing fits: [`PlacementError`], before anything is cloned, saying why each host was
//!    passed over.
//!
//! # A pool known empty
//! Listing a pool costs one request per healthy host. Once an allocation of an execution found
//! nothing to take in a node's pool (it cloned, or failed for want of a pooled VM), the later
//! creates of that execution skip the listing ([`PoolMemo`]) — until an instance of the
//! deployment releases its VM in this process (a scale-in, a rollback, a heal), which may
//! free a pooled VM or a host slot. A new execution lists again. The memo only ever saves a
//! listing: the choice itself is still made against the store, so it can never hand out a
//! taken VM.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use crate::store::{Placements, VmAllocation};

/// A host as the allocator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub id: String,
    pub name: String,
    /// `CONNECTED` and `POWERED_ON` now.
    pub healthy: bool,
    /// `connection_state/power_state`, for messages.
    pub state: String,
}

/// A VM of the node's pool, with the host it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolVm {
    pub name: String,
    pub host_id: String,
    pub powered_off: bool,
}

/// What one allocation chooses among.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub instance: &'a str,
    pub node: &'a str,
    /// Every host of the vCenter (for pooled VMs' hosts).
    pub hosts: &'a [Host],
    /// The clone candidates, in round-robin order.
    pub candidates: &'a [Host],
    /// The pool, in its order.
    pub pool: &'a [PoolVm],
    /// 0: no limit.
    pub max_per_host: usize,
    /// The name a clone gets; `None` when the node has no template (pool only).
    pub clone_name: Option<String>,
}

/// Why no VM could be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error(
        "no host can take another VM of node `{node}`: {why}; nothing was cloned{hint}",
        hint = if *.full { " (raise max_vms_per_host, or free or add hosts)" } else { "" }
    )]
    NoHost {
        node: String,
        why: String,
        full: bool,
    },
    #[error("node `{node}` has no powered-off pooled VM left ({why}) and no `template` to clone")]
    PoolExhausted { node: String, why: String },
}

/// Choose a VM for `req.instance` given what is `taken`.
pub fn choose(req: &Request<'_>, taken: &Placements) -> Result<VmAllocation, PlacementError> {
    let count = |host_id: &str| taken.per_host.get(host_id).copied().unwrap_or(0);
    let full = |host_id: &str| req.max_per_host > 0 && count(host_id) >= req.max_per_host;
    let by_id: HashMap<&str, &Host> = req.hosts.iter().map(|h| (h.id.as_str(), h)).collect();

    let mut pool_skipped = (0usize, 0usize, 0usize); // in use, powered on, host unavailable/full
    for vm in req.pool {
        if taken.taken_names.contains(&vm.name) {
            pool_skipped.0 += 1;
            continue;
        }
        if !vm.powered_off {
            pool_skipped.1 += 1;
            continue;
        }
        match by_id.get(vm.host_id.as_str()) {
            Some(h) if h.healthy && !full(&h.id) => {
                return Ok(VmAllocation {
                    instance_id: req.instance.to_string(),
                    node_id: req.node.to_string(),
                    vm_name: vm.name.clone(),
                    host: h.name.clone(),
                    host_id: h.id.clone(),
                    pooled: true,
                });
            }
            _ => pool_skipped.2 += 1,
        }
    }

    let Some(clone_name) = &req.clone_name else {
        return Err(PlacementError::PoolExhausted {
            node: req.node.to_string(),
            why: format!(
                "{} pooled: {} held by instances, {} powered on elsewhere, {} on unavailable or full hosts",
                req.pool.len(),
                pool_skipped.0,
                pool_skipped.1,
                pool_skipped.2
            ),
        });
    };

    let n = req.candidates.len();
    let start = taken
        .last_host
        .as_ref()
        .and_then(|last| req.candidates.iter().position(|h| &h.name == last))
        .map_or(0, |i| i + 1);
    let mut why = Vec::new();
    let mut any_full = false;
    for k in 0..n {
        let h = &req.candidates[(start + k) % n];
        if !h.healthy {
            why.push(format!("{} is {}", h.name, h.state));
        } else if full(&h.id) {
            any_full = true;
            why.push(format!(
                "{} is full ({}/{} VMs)",
                h.name,
                count(&h.id),
                req.max_per_host
            ));
        } else {
            return Ok(VmAllocation {
                instance_id: req.instance.to_string(),
                node_id: req.node.to_string(),
                vm_name: clone_name.clone(),
                host: h.name.clone(),
                host_id: h.id.clone(),
                pooled: false,
            });
        }
    }
    if why.is_empty() {
        why.push("vCenter lists no candidate host".to_string());
    }
    why.sort();
    Err(PlacementError::NoHost {
        node: req.node.to_string(),
        why: why.join(", "),
        full: any_full,
    })
}

/// The allocation lock of a deployment in this process: parallel operations of one execution
/// choose one at a time (the store's transaction makes the choice atomic across processes too).
pub fn deployment_lock(deployment: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: LazyLock<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(|| std::sync::Mutex::new(HashMap::new()));
    match LOCKS.lock() {
        Ok(mut locks) => locks
            .entry(deployment.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone(),
        // A poisoned map only means another thread panicked while inserting; the store's
        // transaction still serialises the choice.
        Err(_) => Arc::new(tokio::sync::Mutex::new(())),
    }
}

/// Which nodes' pools are known to have nothing to take, per execution (see the module doc).
#[derive(Debug, Default)]
pub struct PoolMemo {
    /// Releases of VMs per deployment in this process.
    releases: HashMap<String, u64>,
    /// `(deployment, node)` → the execution that found the pool empty and the deployment's
    /// release count when that listing began.
    empty: HashMap<(String, String), (String, u64)>,
}

impl PoolMemo {
    /// The deployment's release count: read it before listing a pool, and hand it to
    /// [`PoolMemo::found_empty`].
    pub fn releases(&self, deployment: &str) -> u64 {
        self.releases.get(deployment).copied().unwrap_or(0)
    }

    /// Whether `execution` found the node's pool empty with no release since.
    pub fn known_empty(&self, deployment: &str, node: &str, execution: &str) -> bool {
        self.empty
            .get(&(deployment.to_string(), node.to_string()))
            .is_some_and(|(e, r)| e == execution && *r == self.releases(deployment))
    }

    /// A listing that began at `releases` gave nothing to take.
    pub fn found_empty(&mut self, deployment: &str, node: &str, execution: &str, releases: u64) {
        self.empty.insert(
            (deployment.to_string(), node.to_string()),
            (execution.to_string(), releases),
        );
    }

    /// An instance of the deployment gave its VM back: every pool of it may have room again.
    pub fn released(&mut self, deployment: &str) {
        *self.releases.entry(deployment.to_string()).or_default() += 1;
    }
}

/// The process's [`PoolMemo`].
pub fn pool_memo<T>(f: impl FnOnce(&mut PoolMemo) -> T) -> T {
    static MEMO: LazyLock<std::sync::Mutex<PoolMemo>> = LazyLock::new(Default::default);
    // A poisoned memo only means a thread panicked while holding it; its data is still a
    // set of hints that the store's choice does not depend on.
    let mut memo = MEMO.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut memo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str, healthy: bool) -> Host {
        Host {
            id: format!("host-{id}"),
            name: format!("esx-{id}"),
            healthy,
            state: if healthy {
                "CONNECTED/POWERED_ON".into()
            } else {
                "DISCONNECTED/POWERED_ON".into()
            },
        }
    }

    fn req<'a>(hosts: &'a [Host], pool: &'a [PoolVm], max: usize) -> Request<'a> {
        Request {
            instance: "dea_1",
            node: "dea",
            hosts,
            candidates: hosts,
            pool,
            max_per_host: max,
            clone_name: Some("dea-dea_1".into()),
        }
    }

    #[test]
    fn round_robin_starts_after_the_last_host_and_skips_unhealthy_and_full() {
        let hosts = [host("a", true), host("b", false), host("c", true)];
        let mut taken = Placements {
            last_host: Some("esx-a".into()),
            ..Default::default()
        };
        let got = choose(&req(&hosts, &[], 2), &taken).unwrap();
        assert_eq!(got.host, "esx-c", "b is disconnected");
        assert!(!got.pooled);
        taken.per_host.insert("host-c".into(), 2);
        let got = choose(&req(&hosts, &[], 2), &taken).unwrap();
        assert_eq!(got.host, "esx-a", "c is full, wraps around");
        taken.last_host = Some("esx-gone".into());
        taken.per_host.clear();
        assert_eq!(choose(&req(&hosts, &[], 0), &taken).unwrap().host, "esx-a");
    }

    #[test]
    fn every_host_full_is_an_error_naming_each() {
        let hosts = [host("a", true), host("b", false)];
        let mut taken = Placements::default();
        taken.per_host.insert("host-a".into(), 1);
        let err = choose(&req(&hosts, &[], 1), &taken)
            .unwrap_err()
            .to_string();
        assert!(err.contains("esx-a is full (1/1 VMs)"), "{err}");
        assert!(err.contains("esx-b is DISCONNECTED"), "{err}");
        assert!(err.contains("nothing was cloned"), "{err}");
    }

    #[test]
    fn pool_first_skipping_taken_powered_on_and_unavailable() {
        let hosts = [host("a", true), host("b", false)];
        let pool = [
            PoolVm {
                name: "p1".into(),
                host_id: "host-a".into(),
                powered_off: true,
            },
            PoolVm {
                name: "p2".into(),
                host_id: "host-a".into(),
                powered_off: false,
            },
            PoolVm {
                name: "p3".into(),
                host_id: "host-b".into(),
                powered_off: true,
            },
            PoolVm {
                name: "p4".into(),
                host_id: "host-a".into(),
                powered_off: true,
            },
        ];
        let mut taken = Placements::default();
        let got = choose(&req(&hosts, &pool, 0), &taken).unwrap();
        assert_eq!((got.vm_name.as_str(), got.pooled), ("p1", true));
        taken.taken_names.insert("p1".into());
        let got = choose(&req(&hosts, &pool, 0), &taken).unwrap();
        assert_eq!(got.vm_name, "p4");
        taken.taken_names.insert("p4".into());
        let got = choose(&req(&hosts, &pool, 0), &taken).unwrap();
        assert!(!got.pooled, "pool exhausted: a clone");
        let mut only_pool = req(&hosts, &pool, 0);
        only_pool.clone_name = None;
        let err = choose(&only_pool, &taken).unwrap_err().to_string();
        assert!(err.contains("no powered-off pooled VM left"), "{err}");
    }

    #[test]
    fn a_pool_is_known_empty_for_its_execution_until_a_release() {
        let mut memo = PoolMemo::default();
        assert!(!memo.known_empty("d", "dea", "x1"));
        let at = memo.releases("d");
        memo.found_empty("d", "dea", "x1", at);
        assert!(memo.known_empty("d", "dea", "x1"));
        assert!(
            !memo.known_empty("d", "dea", "x2"),
            "another execution lists again"
        );
        assert!(!memo.known_empty("d", "other", "x1"));
        memo.released("d");
        assert!(
            !memo.known_empty("d", "dea", "x1"),
            "a release may free a VM"
        );
        // A listing that began before a release says nothing after it.
        memo.found_empty("d", "dea", "x1", at);
        assert!(!memo.known_empty("d", "dea", "x1"));
    }
}
