//! `GET /api/v1/deployments/{id}/instances`: the node instances, as `windlass instances ID
//! --json` prints them (`[{"id","node_id","host_id","state","runtime_properties",
//! "relationships":[{"type","target_name","target_id"}]}]`, in plan order).

use std::collections::HashMap;

use axum::Json as AxumJson;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::ApiError;
use crate::server::AppState;
use crate::store::InstanceRecord;

pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let dep = state.store.deployment(&id).await?;
    let records = state.store.instances(&id).await?;
    let by_id: HashMap<&str, &InstanceRecord> =
        records.iter().map(|r| (r.id.as_str(), r)).collect();
    let rows: Vec<Json> = dep
        .plan
        .instances
        .iter()
        .map(|inst| {
            let node = &dep.compiled.nodes[inst.node];
            let rec = by_id.get(inst.id.0.as_str());
            json!({
                "id": inst.id,
                "node_id": node.id,
                "host_id": inst.host.map(|h| dep.plan.instance_id(h)),
                "state": rec.map_or("uninitialized", |r| r.state.as_str()),
                "runtime_properties": rec.map(|r| Json::Object(r.runtime_properties.clone())).unwrap_or(json!({})),
                "relationships": inst.relationships.iter().map(|r| {
                    let rel = &node.relationships[r.relationship];
                    json!({"type": rel.type_name, "target_name": dep.compiled.nodes[rel.target].id, "target_id": dep.plan.instance_id(r.target)})
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(AxumJson(Json::Array(rows)).into_response())
}
