//! Conversion of compiled blueprints stored before operation sets (migration 13).
//!
//! Until then every node and relationship of `deployments.compiled` held its operations
//! inline (`"operations": {…}`, `"source_operations": {…}`, `"target_operations": {…}`). Today
//! they hold an index into `operation_sets`, a list of the distinct sets whose first entry is
//! empty ([`crate::dsl::compiled::OperationSetId`]). The conversion works on the JSON value, so
//! it needs no copy of the old Rust types: each inline set is replaced by the index of the
//! first equal set, and the list is added. A value that already has `operation_sets`, or that
//! is not a compiled blueprint, is left as it is.

use serde_json::{Map, Value as Json};
use sqlx::Row;
use sqlx::sqlite::SqliteConnection;

use super::StoreError;

/// Convert every stored deployment whose compiled blueprint keeps operations inline.
pub(super) async fn convert(tx: &mut SqliteConnection) -> Result<(), StoreError> {
    let rows = sqlx::query("SELECT id, compiled FROM deployments")
        .fetch_all(&mut *tx)
        .await?;
    for r in rows {
        let id: String = r.get(0);
        // A value that is not a compiled blueprint is left as it is: reading that deployment
        // reports it as damaged, and the store's other deployments stay usable.
        let Ok(mut compiled) = serde_json::from_str::<Json>(r.get::<&str, _>(1)) else {
            continue;
        };
        if with_sets(&mut compiled) != Ok(true) {
            continue;
        }
        sqlx::query("UPDATE deployments SET compiled = ? WHERE id = ?")
            .bind(compiled.to_string())
            .bind(&id)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Move the inline operation sets of a compiled blueprint into `operation_sets`. Returns
/// whether anything changed (false when it had its sets already).
fn with_sets(compiled: &mut Json) -> Result<bool, String> {
    let root = compiled
        .as_object_mut()
        .ok_or("the compiled blueprint is not a JSON object")?;
    if root.contains_key("operation_sets") {
        return Ok(false);
    }
    let mut sets = Sets {
        list: vec![Json::Object(Map::new())],
        index: [(String::from("{}"), 0)].into_iter().collect(),
    };
    let nodes = root
        .get_mut("nodes")
        .and_then(Json::as_array_mut)
        .ok_or("the compiled blueprint has no list of nodes")?;
    for node in nodes {
        sets.replace(node, "operations")?;
        let relationships = node
            .get_mut("relationships")
            .and_then(Json::as_array_mut)
            .into_iter()
            .flatten();
        for rel in relationships {
            sets.replace(rel, "source_operations")?;
            sets.replace(rel, "target_operations")?;
        }
    }
    root.insert("operation_sets".to_string(), Json::Array(sets.list));
    Ok(true)
}

/// The distinct sets met so far, and where each is in the list (by its JSON text).
struct Sets {
    list: Vec<Json>,
    index: std::collections::HashMap<String, u64>,
}

impl Sets {
    /// Replace `owner[field]`, an inline set, with the index of its set in the list.
    fn replace(&mut self, owner: &mut Json, field: &str) -> Result<(), String> {
        let slot = owner
            .get_mut(field)
            .ok_or_else(|| format!("a node or relationship has no `{field}`"))?;
        if !slot.is_object() {
            return Err(format!("`{field}` is not a mapping of operations"));
        }
        let set = slot.take();
        let next = self.list.len() as u64;
        let at = *self.index.entry(set.to_string()).or_insert(next);
        if at == next {
            self.list.push(set);
        }
        *slot = Json::from(at);
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inline_sets_become_indexes_of_distinct_sets() {
        let create = json!({"cloudify.interfaces.lifecycle.create": {"plugin": "script", "implementation": "script_runner.tasks.run"}});
        let mut compiled = json!({"nodes": [
            {"operations": create, "relationships": [
                {"source_operations": {}, "target_operations": create}]},
            {"operations": {}, "relationships": []},
            {"operations": create},
        ]});
        assert!(with_sets(&mut compiled).unwrap());
        assert_eq!(compiled["operation_sets"], json!([{}, create]));
        assert_eq!(compiled["nodes"][0]["operations"], json!(1));
        assert_eq!(
            compiled["nodes"][0]["relationships"][0]["source_operations"],
            json!(0)
        );
        assert_eq!(
            compiled["nodes"][0]["relationships"][0]["target_operations"],
            json!(1)
        );
        assert_eq!(compiled["nodes"][1]["operations"], json!(0));
        assert_eq!(compiled["nodes"][2]["operations"], json!(1));
        // Converted once: a second pass changes nothing.
        let before = compiled.clone();
        assert!(!with_sets(&mut compiled).unwrap());
        assert_eq!(compiled, before);
    }

    /// `compiled` as windlass stored it before operation sets: every set inline.
    pub(in crate::store) fn inline(compiled: &crate::dsl::Compiled) -> String {
        let mut v = serde_json::to_value(compiled).unwrap();
        let sets = v.as_object_mut().unwrap().remove("operation_sets").unwrap();
        let set = |slot: &mut Json| *slot = sets[slot.as_u64().unwrap() as usize].clone();
        for node in v["nodes"].as_array_mut().unwrap() {
            set(&mut node["operations"]);
            for rel in node["relationships"].as_array_mut().unwrap() {
                set(&mut rel["source_operations"]);
                set(&mut rel["target_operations"]);
            }
        }
        v.to_string()
    }

    /// A store written before operation sets is converted when opened: every node and
    /// relationship keeps exactly its operations.
    #[tokio::test]
    async fn a_store_with_inline_sets_is_converted_when_opened() {
        let text = "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nplugins: { p: { executor: central_deployment_agent, install: false } }\nnode_templates:\n  vm: { type: cloudify.nodes.Compute, properties: { agent_config: { install_method: none } } }\n  vm2: { type: cloudify.nodes.Compute, properties: { agent_config: { install_method: none } } }\n  app:\n    type: cloudify.nodes.Root\n    interfaces: { cloudify.interfaces.lifecycle: { create: p.tasks.create } }\n    relationships:\n      - { type: cloudify.relationships.contained_in, target: vm }\n      - { type: cloudify.relationships.connected_to, target: vm2, source_interfaces: { cloudify.interfaces.relationship_lifecycle: { establish: p.tasks.link } } }\n";
        let path = std::path::Path::new("t.yaml");
        let bp = crate::blueprint::open_str(path, text, &Default::default()).unwrap();
        // Both hosts share the Compute type's set; the app and its link have their own.
        assert_eq!(
            bp.compiled.nodes[0].operations,
            bp.compiled.nodes[1].operations
        );
        assert_eq!(bp.compiled.operation_sets.len(), 4);
        let dir = std::env::temp_dir().join(format!("windlass-sets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("old.db");
        let location = file.to_str().unwrap();
        let store = crate::store::Store::open(location).await.unwrap();
        let inputs = Json::Object(Map::new());
        store
            .create_blueprint("d", &inputs, &bp, &[])
            .await
            .unwrap();
        sqlx::query("UPDATE deployments SET compiled = ?")
            .bind(inline(&bp.compiled))
            .execute(&store.db.pool)
            .await
            .unwrap();
        sqlx::query("PRAGMA user_version = 12")
            .execute(&store.db.pool)
            .await
            .unwrap();
        store.close().await;
        let store = crate::store::Store::open(location).await.unwrap();
        let dep = store.deployment("d").await.unwrap();
        let c = &dep.compiled;
        assert_eq!(c.operation_sets.len(), 4);
        for (n, was) in c.nodes.iter().zip(&bp.compiled.nodes) {
            assert_eq!(
                c.operations(n.operations),
                bp.compiled.operations(was.operations)
            );
            for (r, was) in n.relationships.iter().zip(&was.relationships) {
                let (now, then) = (
                    c.operations(r.source_operations),
                    bp.compiled.operations(was.source_operations),
                );
                assert_eq!(now, then);
                let (now, then) = (
                    c.operations(r.target_operations),
                    bp.compiled.operations(was.target_operations),
                );
                assert_eq!(now, then);
            }
        }
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_value_is_an_error_not_a_panic() {
        assert!(with_sets(&mut json!([])).is_err());
        assert!(with_sets(&mut json!({"nodes": [{"operations": 3}]})).is_err());
        assert!(with_sets(&mut json!({"nodes": [{}]})).is_err());
    }
}
