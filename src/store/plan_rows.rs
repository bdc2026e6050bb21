//! A deployment's plan as rows: the frame in `deployments.plan`, node instances (their plan
//! columns next to their state), scaling-group instances and links (relationship instances).
//!
//! Rows are read whole (`deployment`) or selectively ([`Select`]) so a scale reads only the
//! instances it touches; a [`PlanChange`] adds and removes rows and rewrites the frame in one
//! transaction. Deployments stored by windlass 0.1 (the whole plan as one JSON value) are
//! converted to rows by [`convert_plan_blobs`] when the store is opened.

use serde_json::Value as Json;
use sqlx::Row;
use sqlx::sqlite::SqliteConnection;
use sqlx::sqlite::SqliteRow;

use super::bulk::Bulk;
use super::{InstanceRecord, ROWS_PER_STATEMENT, Store, StoreError};
use crate::dsl::Compiled;
use crate::plan::rows::{Assembly, GroupRow, InstanceRow, LinkRun, ParentRef};
use crate::plan::{Frame, Plan};

const INSTANCE_COLUMNS: &str = "id, node_id, state, runtime_properties, version, seq, node, parent, parent_is_group, contained_in, host, groups, idx";

/// Which node instances to read.
#[derive(Debug, Clone, Copy)]
pub enum Select<'a> {
    /// These ids (node instances, or group instances for [`Store::group_rows`]).
    Ids(&'a [String]),
    /// Every instance of a node (or scaling group).
    All(usize),
    /// The first instance of a node (or scaling group) by creation order.
    First(usize),
    /// The newest `n` instances of a node (or scaling group).
    Newest(usize, usize),
    /// The newest `n` instances of a node (or scaling group) under each parent instance.
    NewestPerParent(usize, usize),
    /// The instances whose parent is one of these.
    ChildrenOf(&'a [String]),
    /// Every instance of the deployment, in creation order.
    Every,
}

/// The state a new instance is stored in: `started` when its install has nothing to run
/// (`engine::graph::nothing_to_install`), else `uninitialized`.
pub fn initial_state(started: bool) -> &'static str {
    if started { "started" } else { "uninitialized" }
}

/// A node instance to store.
#[derive(Debug)]
pub struct NewInstance {
    pub row: InstanceRow,
    /// Its node's name.
    pub node: String,
    /// Stored `started` rather than `uninitialized` ([`initial_state`]).
    pub started: bool,
}

/// Rows to add and ids to remove, with the frame that results.
#[derive(Debug, Default)]
pub struct PlanChange {
    pub instances: Vec<NewInstance>,
    pub groups: Vec<GroupRow>,
    /// New links, in the order they were made, as runs (see [`crate::plan::rows::runs`]).
    pub links: Vec<LinkRun>,
    /// Node and group instances to remove, with every link from or to them.
    pub removed: Vec<String>,
    /// New parameters of an execution, written in the same transaction (a scale records what it
    /// added together with the rows).
    pub execution_parameters: Option<(String, Json)>,
}

fn parent_columns(p: &Option<ParentRef>) -> (Option<&str>, bool) {
    match p {
        None => (None, false),
        Some(ParentRef::Node(id)) => (Some(id), false),
        Some(ParentRef::Group(id)) => (Some(id), true),
    }
}

fn parent_from(id: Option<String>, is_group: bool) -> Option<ParentRef> {
    id.map(|id| {
        if is_group {
            ParentRef::Group(id)
        } else {
            ParentRef::Node(id)
        }
    })
}

fn corrupt(deployment: &str, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(deployment.to_string(), what.to_string())
}

fn instance_from(
    deployment: &str,
    r: &SqliteRow,
) -> Result<(InstanceRow, InstanceRecord), StoreError> {
    let id: String = r.get(0);
    let record = InstanceRecord {
        id: id.clone(),
        node_id: r.get(1),
        state: r.get(2),
        runtime_properties: serde_json::from_str(r.get::<&str, _>(3))
            .map_err(|e| corrupt(deployment, e))?,
        version: r.get(4),
    };
    let groups: &str = r.get(11);
    let row = InstanceRow {
        seq: r.get(5),
        id,
        node: r.get::<i64, _>(6) as usize,
        parent: parent_from(r.get(7), r.get(8)),
        contained_in: r.get(9),
        host: r.get(10),
        groups: groups.split_whitespace().map(str::to_string).collect(),
        index: r.get::<i64, _>(12) as u32,
    };
    Ok((row, record))
}

fn group_from(r: &SqliteRow) -> GroupRow {
    GroupRow {
        id: r.get(0),
        group: r.get::<i64, _>(1) as usize,
        parent: parent_from(r.get(2), r.get(3)),
        seq: r.get(4),
    }
}

const LINK_COLUMNS: &str = "seq, source, relationship, target_node, target, targets";

fn link_from(deployment: &str, r: &SqliteRow) -> Result<LinkRun, StoreError> {
    let targets = match (r.get::<Option<String>, _>(4), r.get::<Option<&str>, _>(5)) {
        (Some(one), _) => vec![one],
        (None, Some(many)) => serde_json::from_str(many).map_err(|e| corrupt(deployment, e))?,
        (None, None) => Vec::new(),
    };
    Ok(LinkRun {
        seq: r.get(0),
        source: r.get(1),
        relationship: r.get::<i64, _>(2) as usize,
        target_node: r.get::<i64, _>(3) as usize,
        targets,
    })
}

/// The `target` and `targets` columns of a run: one target, or a JSON list of several.
fn target_columns(targets: &[String]) -> (Option<&str>, Option<String>) {
    match targets {
        [one] => (Some(one.as_str()), None),
        many => (None, Some(Json::from(many).to_string())),
    }
}

/// `?2, ?3, …`: numbered placeholders for `n` values after the deployment (`?1`).
fn numbered(n: usize) -> String {
    (2..n + 2)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `column IN (?2, …)` clauses over chunks of `ids`, with the ids each binds.
fn in_chunks(column: &str, ids: &[String]) -> Vec<(String, Vec<String>)> {
    ids.chunks(ROWS_PER_STATEMENT)
        .map(|c| (format!("{column} IN ({})", numbered(c.len())), c.to_vec()))
        .collect()
}

/// `WHERE` clauses (after `deployment_id = ?1`) and bound values of a selection from `table`,
/// whose entity column is `kind_column` (node / grp).
fn selection(select: Select<'_>, table: &str, kind_column: &str) -> Vec<(String, Vec<String>)> {
    match select {
        Select::Ids(ids) => in_chunks("id", ids),
        Select::ChildrenOf(ids) => in_chunks("parent", ids),
        Select::Every => vec![("1 ORDER BY seq".to_string(), Vec::new())],
        Select::All(k) => vec![(format!("{kind_column} = {k} ORDER BY seq"), Vec::new())],
        Select::First(k) => vec![(
            format!("{kind_column} = {k} ORDER BY seq LIMIT 1"),
            Vec::new(),
        )],
        Select::Newest(k, n) => vec![(
            format!("{kind_column} = {k} ORDER BY seq DESC LIMIT {n}"),
            Vec::new(),
        )],
        Select::NewestPerParent(k, n) => vec![(
            format!(
                "rowid IN (SELECT rowid FROM (SELECT rowid, row_number() OVER (PARTITION BY parent ORDER BY seq DESC) AS r \
                 FROM {table} WHERE deployment_id = ?1 AND {kind_column} = {k}) WHERE r <= {n})"
            ),
            Vec::new(),
        )],
    }
}

impl Store {
    /// `head` (`SELECT … FROM … WHERE deployment_id = ?1 AND`) with each clause, its values
    /// bound after the deployment; all rows, in clause order.
    async fn fetch(
        &self,
        head: &str,
        deployment: &str,
        clauses: Vec<(String, Vec<String>)>,
    ) -> Result<Vec<SqliteRow>, StoreError> {
        let mut out = Vec::new();
        for (clause, binds) in clauses {
            let sql = format!("{head} {clause}");
            let mut q = sqlx::query(&sql).bind(deployment);
            for b in &binds {
                q = q.bind(b);
            }
            out.extend(q.fetch_all(&mut *self.db.get().await?).await?);
        }
        Ok(out)
    }

    /// Node instances of a deployment, with their state.
    pub async fn instance_rows(
        &self,
        deployment: &str,
        select: Select<'_>,
    ) -> Result<Vec<(InstanceRow, InstanceRecord)>, StoreError> {
        let head =
            format!("SELECT {INSTANCE_COLUMNS} FROM node_instances WHERE deployment_id = ?1 AND");
        let clauses = selection(select, "node_instances", "node");
        self.fetch(&head, deployment, clauses)
            .await?
            .iter()
            .map(|r| instance_from(deployment, r))
            .collect()
    }

    /// Scaling-group instances of a deployment.
    pub async fn group_rows(
        &self,
        deployment: &str,
        select: Select<'_>,
    ) -> Result<Vec<GroupRow>, StoreError> {
        let head = "SELECT id, grp, parent, parent_is_group, seq FROM group_instances WHERE deployment_id = ?1 AND";
        let clauses = selection(select, "group_instances", "grp");
        let rows = self.fetch(head, deployment, clauses).await?;
        Ok(rows.iter().map(group_from).collect())
    }

    /// Runs of links from or to any of these node instances, whole (`None`: every run, in
    /// order). A run with several targets is found through its target node: the runs that
    /// point at the nodes of `ids` are read and kept when they name one of them.
    pub async fn links_touching(
        &self,
        deployment: &str,
        ids: Option<&[String]>,
    ) -> Result<Vec<LinkRun>, StoreError> {
        let head = format!("SELECT {LINK_COLUMNS} FROM link_runs WHERE deployment_id = ?1 AND");
        let Some(ids) = ids else {
            let rows = self
                .fetch(
                    &head,
                    deployment,
                    vec![("1 ORDER BY seq".to_string(), Vec::new())],
                )
                .await?;
            return rows.iter().map(|r| link_from(deployment, r)).collect();
        };
        let mut clauses = [in_chunks("source", ids), in_chunks("target", ids)].concat();
        clauses.extend(ids.chunks(ROWS_PER_STATEMENT).map(|c| {
            (
                format!(
                    "targets IS NOT NULL AND target_node IN (SELECT node FROM node_instances WHERE deployment_id = ?1 AND id IN ({}))",
                    numbered(c.len())
                ),
                c.to_vec(),
            )
        }));
        let wanted: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        let mut out = Vec::new();
        for r in self.fetch(&head, deployment, clauses).await? {
            let run = link_from(deployment, &r)?;
            if wanted.contains(run.source.as_str())
                || run.targets.iter().any(|t| wanted.contains(t.as_str()))
            {
                out.push(run);
            }
        }
        Ok(out)
    }

    /// Which of these ids a node or group instance of the deployment already has.
    pub async fn existing_ids(
        &self,
        deployment: &str,
        ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let mut out: Vec<String> = self
            .instance_rows(deployment, Select::Ids(ids))
            .await?
            .into_iter()
            .map(|(r, _)| r.id)
            .collect();
        out.extend(
            self.group_rows(deployment, Select::Ids(ids))
                .await?
                .into_iter()
                .map(|g| g.id),
        );
        Ok(out)
    }

    /// The whole plan of a deployment, from its frame and every row, with every instance's
    /// state (read together: one pass over the instance rows).
    pub async fn whole_plan(
        &self,
        deployment: &str,
        frame: Frame,
        compiled: &Compiled,
    ) -> Result<(Plan, Vec<InstanceRecord>), StoreError> {
        let mut a = Assembly::new(frame);
        let mut records = Vec::new();
        for (row, record) in self.instance_rows(deployment, Select::Every).await? {
            a.add_instance(row);
            records.push(record);
        }
        for row in self.group_rows(deployment, Select::Every).await? {
            a.add_group(row);
        }
        for run in self.links_touching(deployment, None).await? {
            a.add_links(run);
        }
        let plan = a.finish(compiled).map_err(|e| corrupt(deployment, e))?;
        Ok((plan, records))
    }

    /// Apply a plan change and store the new frame, in one transaction.
    pub async fn change_plan(
        &self,
        deployment: &str,
        frame: &Frame,
        change: &PlanChange,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        write_frame(&mut tx, deployment, frame).await?;
        insert_rows(&mut tx, deployment, change).await?;
        remove_links_to(&mut tx, deployment, &change.removed).await?;
        if let Some((execution, parameters)) = &change.execution_parameters {
            sqlx::query("UPDATE executions SET parameters = ? WHERE id = ?")
                .bind(parameters.to_string())
                .bind(execution)
                .execute(&mut *tx)
                .await?;
        }
        for (table, column) in [
            ("link_runs", "source"),
            ("link_runs", "target"),
            ("node_instances", "id"),
            ("group_instances", "id"),
        ] {
            for (clause, ids) in in_chunks(column, &change.removed) {
                let sql = format!("DELETE FROM {table} WHERE deployment_id = ?1 AND {clause}");
                let mut q = sqlx::query(&sql).bind(deployment);
                for id in &ids {
                    q = q.bind(id);
                }
                q.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Take removed instances out of the runs with several targets that name them (before the
/// instances' rows go: their nodes find the runs). A run left with one target keeps it in
/// `target`, one left with none goes. The runs are read once, through the removed instances'
/// nodes, however many instances go.
async fn remove_links_to(
    tx: &mut SqliteConnection,
    deployment: &str,
    removed: &[String],
) -> Result<(), StoreError> {
    let mut nodes = std::collections::BTreeSet::new();
    for (clause, ids) in in_chunks("id", removed) {
        let sql = format!(
            "SELECT DISTINCT node FROM node_instances WHERE deployment_id = ?1 AND {clause}"
        );
        let mut q = sqlx::query(&sql).bind(deployment);
        for id in &ids {
            q = q.bind(id);
        }
        for r in q.fetch_all(&mut *tx).await? {
            nodes.insert(r.try_get::<i64, _>(0)?);
        }
    }
    let nodes: Vec<i64> = nodes.into_iter().collect();
    let gone: std::collections::HashSet<&str> = removed.iter().map(String::as_str).collect();
    // (seq, what is left of its targets)
    let mut changed: Vec<(i64, Vec<String>)> = Vec::new();
    for chunk in nodes.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT {LINK_COLUMNS} FROM link_runs WHERE deployment_id = ?1 AND targets IS NOT NULL \
             AND target_node IN ({})",
            numbered(chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(deployment);
        for node in chunk {
            q = q.bind(node);
        }
        for r in q.fetch_all(&mut *tx).await? {
            let run = link_from(deployment, &r)?;
            if run.targets.iter().any(|t| gone.contains(t.as_str())) {
                let left = run
                    .targets
                    .into_iter()
                    .filter(|t| !gone.contains(t.as_str()))
                    .collect();
                changed.push((run.seq, left));
            }
        }
    }
    if changed.is_empty() {
        return Ok(());
    }
    let (emptied, left): (Vec<_>, Vec<_>) = changed.iter().partition(|(_, left)| left.is_empty());
    let mut bulk = Bulk::lock(tx).await?;
    bulk.each(
        "UPDATE link_runs SET target = ?, targets = ? WHERE seq = ?",
        &left,
        |rows, (seq, left)| {
            let (target, targets) = target_columns(left);
            rows.put(&[target.into(), targets.as_deref().into(), (*seq).into()])
        },
    )?;
    bulk.each(
        "DELETE FROM link_runs WHERE seq = ?",
        &emptied,
        |rows, (seq, _)| rows.put(&[(*seq).into()]),
    )?;
    Ok(())
}

pub(super) async fn write_frame(
    tx: &mut SqliteConnection,
    deployment: &str,
    frame: &Frame,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE deployments SET plan = ? WHERE id = ?")
        .bind(serde_json::to_string(frame).unwrap_or_default())
        .bind(deployment)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The change's new instance, group and link rows, stepped on the connection's own handle.
pub(super) async fn insert_rows(
    tx: &mut SqliteConnection,
    deployment: &str,
    change: &PlanChange,
) -> Result<(), StoreError> {
    let mut bulk = Bulk::lock(tx).await?;
    // The runtime properties and version every new instance starts with are written in the
    // statement, not bound.
    let sql = format!(
        "INSERT INTO node_instances (deployment_id, {INSTANCE_COLUMNS}) \
         VALUES (?, ?, ?, ?, '{{}}', 0, ?, ?, ?, ?, ?, ?, ?, ?)"
    );
    bulk.insert(&sql, &change.instances, |rows, new| {
        let r = &new.row;
        let (parent, parent_is_group) = parent_columns(&r.parent);
        let groups = r.groups.join(" ");
        rows.put(&[
            deployment.into(),
            (&r.id).into(),
            (&new.node).into(),
            initial_state(new.started).into(),
            r.seq.into(),
            (r.node as i64).into(),
            parent.into(),
            parent_is_group.into(),
            (&r.contained_in).into(),
            (&r.host).into(),
            groups.as_str().into(),
            i64::from(r.index).into(),
        ])
    })?;
    bulk.insert(
        "INSERT INTO group_instances (deployment_id, id, grp, parent, parent_is_group, seq) \
         VALUES (?, ?, ?, ?, ?, ?)",
        &change.groups,
        |rows, g| {
            let (parent, parent_is_group) = parent_columns(&g.parent);
            rows.put(&[
                deployment.into(),
                (&g.id).into(),
                (g.group as i64).into(),
                parent.into(),
                parent_is_group.into(),
                g.seq.into(),
            ])
        },
    )?;
    bulk.insert(
        "INSERT INTO link_runs (deployment_id, source, relationship, target_node, target, targets) \
         VALUES (?, ?, ?, ?, ?, ?)",
        &change.links,
        |rows, l| {
            let (target, targets) = target_columns(&l.targets);
            rows.put(&[
                deployment.into(),
                (&l.source).into(),
                (l.relationship as i64).into(),
                (l.target_node as i64).into(),
                target.into(),
                targets.as_deref().into(),
            ])
        },
    )?;
    Ok(())
}

/// The rows of a whole new plan, as a change that adds them all; the instances of the nodes
/// `started` names are stored `started`.
pub(super) fn change_adding(plan: &Plan, compiled: &Compiled, started: &[bool]) -> PlanChange {
    let (instances, groups, links) = crate::plan::rows::all_rows(plan, compiled);
    PlanChange {
        instances: instances
            .into_iter()
            .map(|row| NewInstance {
                node: compiled.nodes[row.node].id.0.clone(),
                started: started.get(row.node).copied().unwrap_or(false),
                row,
            })
            .collect(),
        groups,
        links,
        removed: Vec::new(),
        execution_parameters: None,
    }
}

/// Deployments stored before plans had rows keep the whole plan as one JSON value: write its
/// rows (keeping each instance's state) and replace it by the frame.
pub(super) async fn convert_plan_blobs(tx: &mut SqliteConnection) -> Result<(), StoreError> {
    let rows = sqlx::query("SELECT id, compiled, plan FROM deployments")
        .fetch_all(&mut *tx)
        .await?;
    for r in rows {
        let id: String = r.get(0);
        let compiled: Compiled =
            serde_json::from_str(r.get::<&str, _>(1)).map_err(|e| corrupt(&id, e))?;
        let mut plan: Plan =
            serde_json::from_str(r.get::<&str, _>(2)).map_err(|e| corrupt(&id, e))?;
        number_old_plan(&mut plan);
        // The instances' state rows exist already: keep them, add the plan columns.
        let change = change_adding(&plan, &compiled, &[]);
        let states = sqlx::query(
            "SELECT id, state, runtime_properties, version FROM node_instances WHERE deployment_id = ?",
        )
        .bind(&id)
        .fetch_all(&mut *tx)
        .await?;
        let states: std::collections::HashMap<String, (String, String, i64)> = states
            .iter()
            .map(|s| (s.get(0), (s.get(1), s.get(2), s.get(3))))
            .collect();
        sqlx::query("DELETE FROM node_instances WHERE deployment_id = ?")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        insert_rows(tx, &id, &change).await?;
        for new in &change.instances {
            let row = &new.row;
            if let Some((state, props, version)) = states.get(&row.id) {
                sqlx::query("UPDATE node_instances SET state = ?, runtime_properties = ?, version = ? WHERE deployment_id = ? AND id = ?")
                    .bind(state)
                    .bind(props)
                    .bind(version)
                    .bind(&id)
                    .bind(&row.id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        write_frame(tx, &id, &plan.frame()).await?;
    }
    Ok(())
}

/// Give an old plan's instances the creation order and indexes they would have had.
fn number_old_plan(plan: &mut Plan) {
    for (i, inst) in plan.instances.iter_mut().enumerate() {
        inst.seq = i as i64;
    }
    let base = plan.instances.len() as i64;
    for (g, gi) in plan.group_instances.iter_mut().enumerate() {
        gi.seq = base + g as i64;
    }
    plan.next_seq = base + plan.group_instances.len() as i64;
    plan.next_index = plan.by_node.iter().map(|l| l.len() as u32 + 1).collect();
    for list in &plan.by_node {
        for (k, i) in list.iter().enumerate() {
            plan.instances[*i as usize].index = k as u32 + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::store::schema::MIGRATIONS;

    /// A state file written by windlass 0.1 (schema 1: the plan as one JSON value) is
    /// converted when opened: same instances, links and state, nothing lost.
    #[tokio::test]
    async fn plans_stored_as_one_value_are_converted_to_rows() {
        let text = "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  vm: { type: cloudify.nodes.Compute, instances: { deploy: 2 } }\n  app:\n    type: cloudify.nodes.Root\n    relationships: [{ type: cloudify.relationships.contained_in, target: vm }]\n  lb:\n    type: cloudify.nodes.Root\n    relationships: [{ type: cloudify.relationships.connected_to, target: app }]\ngroups:\n  g: { members: [vm] }\npolicies:\n  p: { type: cloudify.policies.scaling, targets: [g], properties: { default_instances: 2 } }\n";
        let bp =
            crate::blueprint::open_str(Path::new("t.yaml"), text, &Default::default()).unwrap();
        let dir = std::env::temp_dir().join(format!("windlass-convert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("old.db");
        let _ = std::fs::remove_file(&path);
        {
            // Schema 1 as windlass 0.1 wrote it, without the fields 0.2 added to the plan.
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", path.display()))
                .await
                .unwrap();
            for statement in MIGRATIONS[0].split(';').filter(|s| !s.trim().is_empty()) {
                sqlx::query(statement).execute(&pool).await.unwrap();
            }
            sqlx::query("PRAGMA user_version = 1")
                .execute(&pool)
                .await
                .unwrap();
            let mut old = serde_json::to_value(&bp.plan).unwrap();
            old.as_object_mut().unwrap().remove("next_index");
            old.as_object_mut().unwrap().remove("next_seq");
            for key in ["instances", "group_instances"] {
                for i in old[key].as_array_mut().unwrap() {
                    i.as_object_mut().unwrap().remove("seq");
                    i.as_object_mut().unwrap().remove("index");
                }
            }
            sqlx::query("INSERT INTO deployments VALUES ('d', 'b.yaml', 'now', '{}', ?, ?)")
                .bind(crate::store::operation_sets::tests::inline(&bp.compiled))
                .bind(old.to_string())
                .execute(&pool)
                .await
                .unwrap();
            for (k, inst) in bp.plan.instances.iter().enumerate() {
                sqlx::query("INSERT INTO node_instances VALUES ('d', ?, ?, 'started', ?, 3)")
                    .bind(&inst.id.0)
                    .bind(&bp.compiled.nodes[inst.node].id.0)
                    .bind(format!("{{\"k\": {k}}}"))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }
        let store = Store::open(path.to_str().unwrap()).await.unwrap();
        let dep = store.deployment("d").await.unwrap();
        // Creation order is renumbered (instances first, then group instances).
        let unnumbered = |p: &Plan| {
            let mut v = p.instances.clone();
            v.iter_mut().for_each(|i| i.seq = 0);
            v
        };
        assert_eq!(unnumbered(&dep.plan), unnumbered(&bp.plan));
        assert!(dep.plan.instances.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(
            dep.plan.group_instances.len(),
            bp.plan.group_instances.len()
        );
        assert_eq!(dep.plan.by_node, bp.plan.by_node);
        assert_eq!(dep.plan.next_index, bp.plan.next_index);
        let states = store.instances("d").await.unwrap();
        assert_eq!(states.len(), bp.plan.instances.len());
        for (k, s) in states.iter().enumerate() {
            assert_eq!((s.state.as_str(), s.version), ("started", 3));
            assert_eq!(s.runtime_properties["k"], serde_json::json!(k));
        }
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
