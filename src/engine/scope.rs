//! What a scale reads: the instances it touches, not the whole deployment.
//!
//! A scale works on a partial plan: the plan's frame plus the rows of the instances the
//! modification and its operations need. [`Gather`] reads those rows selectively, adds the
//! instances at the other end of their links when asked, and closes the set under "parent of",
//! so containment, host and scaling-group lookups inside it are exact. Three scopes cover every
//! scale step:
//! - [`scale_out`]: the instances new ones hang under, the targets new instances link to, and
//!   the existing sources that get links to them;
//! - [`candidates`]: the newest instances of the scaled entity plus those named by
//!   `include_instances` / `exclude_instances`, to pick what a scale-in removes;
//! - [`around`]: given instances (with everything inside them when asked), every link from or
//!   to them and the instances at the other end (a scale-in, a resumed scale, a rollback).
//!
//! The cost follows the size of the modification and of the related nodes, not the size of
//! the scaled node.

use std::collections::BTreeSet;

use crate::dsl::compiled::ConnectionType;
use crate::plan::instances::shared_scaling_group;
use crate::plan::rows::Assembly;
use crate::plan::{Entity, Plan};
use crate::store::{DeploymentRecord, InstanceRecord, Select, Store, StoreError};

/// Rows read so far for one deployment.
pub struct Gather<'a> {
    store: &'a Store,
    deployment: &'a str,
    assembly: Assembly,
    records: Vec<InstanceRecord>,
}

impl<'a> Gather<'a> {
    pub fn new(store: &'a Store, dep: &'a DeploymentRecord) -> Gather<'a> {
        Gather {
            store,
            deployment: &dep.id,
            assembly: Assembly::new(dep.plan.frame()),
            records: Vec::new(),
        }
    }

    /// Read node instances; returns the ids read.
    async fn instances(&mut self, select: Select<'_>) -> Result<Vec<String>, StoreError> {
        let rows = self.store.instance_rows(self.deployment, select).await?;
        let mut ids = Vec::with_capacity(rows.len());
        for (row, record) in rows {
            ids.push(row.id.clone());
            if !self.assembly.contains(&row.id) {
                self.records.push(record);
                self.assembly.add_instance(row);
            }
        }
        Ok(ids)
    }

    /// Read scaling-group instances; returns the ids read.
    async fn groups(&mut self, select: Select<'_>) -> Result<Vec<String>, StoreError> {
        let rows = self.store.group_rows(self.deployment, select).await?;
        let ids = rows.iter().map(|r| r.id.clone()).collect();
        for row in rows {
            self.assembly.add_group(row);
        }
        Ok(ids)
    }

    /// Read node or group instances by id (those not read yet).
    async fn ids(&mut self, ids: &[String]) -> Result<(), StoreError> {
        let wanted: Vec<String> = ids
            .iter()
            .filter(|id| !self.assembly.contains(id))
            .cloned()
            .collect();
        if !wanted.is_empty() {
            self.instances(Select::Ids(&wanted)).await?;
            self.groups(Select::Ids(&wanted)).await?;
        }
        Ok(())
    }

    /// Everything inside these instances, level by level; returns them with the roots.
    async fn subtrees(&mut self, roots: &[String]) -> Result<Vec<String>, StoreError> {
        let mut all = roots.to_vec();
        let mut level = roots.to_vec();
        while !level.is_empty() {
            let mut next = self.instances(Select::ChildrenOf(&level)).await?;
            next.extend(self.groups(Select::ChildrenOf(&level)).await?);
            all.extend(next.iter().cloned());
            level = next;
        }
        Ok(all)
    }

    /// Every link from or to these node instances, and the instances at their other end.
    async fn links(&mut self, ids: &[String]) -> Result<(), StoreError> {
        for link in self
            .store
            .links_touching(self.deployment, Some(ids))
            .await?
        {
            self.assembly.add_links(link);
        }
        let ends = self.assembly.missing_link_ends();
        self.ids(&ends).await
    }

    /// Read parents until every read row's parent is read too.
    async fn close(&mut self) -> Result<(), StoreError> {
        loop {
            let missing = self.assembly.missing_parents();
            if missing.is_empty() {
                return Ok(());
            }
            let before = self.records.len();
            self.ids(&missing).await?;
            if self.assembly.missing_parents() == missing && self.records.len() == before {
                // Parents that are not stored: `finish` says which.
                return Ok(());
            }
        }
    }

    /// The partial plan and the state of its instances.
    pub fn finish(self, dep: &DeploymentRecord) -> Result<(Plan, Vec<InstanceRecord>), StoreError> {
        let plan = self
            .assembly
            .finish(&dep.compiled)
            .map_err(|e| StoreError::Corrupt(dep.id.clone(), e))?;
        Ok((plan, self.records))
    }
}

/// Whether `x` is `e` or inside it in the containment tree.
fn within(plan: &Plan, x: Entity, e: Entity) -> bool {
    x == e || plan.tree.ancestors(x).any(|a| a == e)
}

/// What adding instances of `e` touches.
pub async fn scale_out(
    store: &Store,
    dep: &DeploymentRecord,
    e: Entity,
) -> Result<(Plan, Vec<InstanceRecord>), StoreError> {
    let (c, plan) = (&dep.compiled, &dep.plan);
    let mut all = BTreeSet::new();
    let mut first = BTreeSet::new();
    let mut g = Gather::new(store, dep);
    match plan.tree.parent(e) {
        Some(Entity::Node(p)) => {
            all.insert(p);
        }
        Some(Entity::Group(p)) => {
            g.groups(Select::All(p)).await?;
        }
        None => {}
    }
    // A shared scaling group inside `e` is a new group instance: nothing existing is in it.
    let in_new_group = |a: usize, b: usize| {
        shared_scaling_group(&plan.tree, a, b).is_some_and(|sg| within(plan, Entity::Group(sg), e))
    };
    for (n, node) in c.nodes.iter().enumerate() {
        let new_node = within(plan, Entity::Node(n), e);
        for r in node.relationships.iter().filter(|r| !r.is_contained_in()) {
            if new_node && !in_new_group(n, r.target) {
                // The new instances of `n` link to `r.target`'s instances.
                let only_first = r.connection == ConnectionType::AllToOne
                    && shared_scaling_group(&plan.tree, n, r.target).is_none();
                if only_first {
                    first.insert(r.target);
                } else {
                    all.insert(r.target);
                }
            }
            if r.connection == ConnectionType::AllToAll
                && within(plan, Entity::Node(r.target), e)
                && !in_new_group(n, r.target)
            {
                // Existing instances of `n` get links to the new ones.
                all.insert(n);
            }
        }
    }
    for &n in &all {
        g.instances(Select::All(n)).await?;
    }
    for &n in first.difference(&all) {
        g.instances(Select::First(n)).await?;
    }
    g.close().await?;
    g.finish(dep)
}

/// The instances a scale-in of `per_parent` instances of `e` (under each parent instance) may
/// pick from.
pub async fn candidates(
    store: &Store,
    dep: &DeploymentRecord,
    e: Entity,
    per_parent: usize,
    named: &[String],
) -> Result<(Plan, Vec<InstanceRecord>), StoreError> {
    let mut g = Gather::new(store, dep);
    // At most one owner per named instance is excluded, so this many newest always suffice.
    let newest = per_parent + named.len();
    let select = |k| match dep.plan.tree.parent(e) {
        None => Select::Newest(k, newest),
        Some(_) => Select::NewestPerParent(k, newest),
    };
    match e {
        Entity::Node(n) => g.instances(select(n)).await?,
        Entity::Group(n) => g.groups(select(n)).await?,
    };
    g.ids(named).await?;
    g.close().await?;
    g.finish(dep)
}

/// These instances (and, with `subtrees`, everything inside them), their links and the
/// instances at the other end.
pub async fn around(
    store: &Store,
    dep: &DeploymentRecord,
    ids: &[String],
    subtrees: bool,
) -> Result<(Plan, Vec<InstanceRecord>), StoreError> {
    let mut g = Gather::new(store, dep);
    g.ids(ids).await?;
    let set = if subtrees {
        g.subtrees(ids).await?
    } else {
        ids.to_vec()
    };
    g.links(&set).await?;
    g.close().await?;
    g.finish(dep)
}
