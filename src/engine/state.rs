//! Live node-instance state during an execution: lifecycle state and runtime properties,
//! shared by the walker and the operations (through `ctx`), written through the recorder with
//! a version that grows on every change.
//!
//! A scale tracks only the instances it touches; the others are read from the store when an
//! operation asks for them by id or for all of them (`ctx node-instances`). No one else
//! changes them meanwhile (one execution per deployment runs at a time), so the store's copy
//! is current.

use crate::maps::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value as Json};

use super::events::Recorder;
use crate::store::{InstanceRecord, Select, Store, StoreError, Write};

#[derive(Clone)]
pub struct Instances {
    inner: Arc<Mutex<HashMap<String, InstanceRecord>>>,
    recorder: Recorder,
    /// Where untracked instances are read from, when only some are tracked.
    backing: Option<Store>,
}

impl Instances {
    /// Track `records`; with `backing`, these are only some of the deployment's instances.
    pub fn new(records: Vec<InstanceRecord>, recorder: Recorder, backing: Option<Store>) -> Self {
        Instances {
            inner: Arc::new(Mutex::new(
                records.into_iter().map(|r| (r.id.clone(), r)).collect(),
            )),
            recorder,
            backing,
        }
    }

    /// Make sure an instance is tracked, reading it from the store if needed.
    pub async fn load(&self, id: &str) -> Result<(), StoreError> {
        let tracked = self
            .inner
            .lock()
            .map(|m| m.contains_key(id))
            .unwrap_or(true);
        if let (Some(store), false) = (&self.backing, tracked) {
            let ids = [id.to_string()];
            let rows = store
                .instance_rows(self.recorder.deployment(), Select::Ids(&ids))
                .await?;
            self.insert(rows.into_iter().map(|(_, r)| r).collect());
        }
        Ok(())
    }

    /// Make sure every instance of the deployment is tracked.
    pub async fn load_all(&self) -> Result<(), StoreError> {
        if let Some(store) = &self.backing {
            self.insert(store.instances(self.recorder.deployment()).await?);
        }
        Ok(())
    }

    fn with<T>(&self, id: &str, f: impl FnOnce(&mut InstanceRecord) -> T) -> Option<T> {
        let mut map = self.inner.lock().ok()?;
        map.get_mut(id).map(f)
    }

    /// Track more instances (read or added by a scale). One already tracked keeps its live
    /// state.
    pub fn insert(&self, records: Vec<InstanceRecord>) {
        if let Ok(mut map) = self.inner.lock() {
            for r in records {
                map.entry(r.id.clone()).or_insert(r);
            }
        }
    }

    /// Every instance: `(id, node_id, state, runtime_properties)`, sorted by id.
    pub fn all(&self) -> Vec<(String, String, String, Map<String, Json>)> {
        let mut out: Vec<_> = self
            .inner
            .lock()
            .map(|m| {
                m.values()
                    .map(|r| {
                        (
                            r.id.clone(),
                            r.node_id.clone(),
                            r.state.clone(),
                            r.runtime_properties.clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub fn state(&self, id: &str) -> String {
        self.with(id, |r| r.state.clone()).unwrap_or_default()
    }

    pub fn runtime_properties(&self, id: &str) -> Map<String, Json> {
        self.with(id, |r| r.runtime_properties.clone())
            .unwrap_or_default()
    }

    /// Set an instance's state; one already in it writes nothing.
    pub fn set_state(&self, id: &str, state: &str) {
        if self.with(id, |r| r.state == state) == Some(true) {
            return;
        }
        self.change(id, |r| r.state = state.to_string());
    }

    /// Replace all of an instance's runtime properties (a Python script's dict, saved whole).
    pub fn replace_runtime_properties(&self, id: &str, properties: Map<String, Json>) {
        self.change(id, |r| r.runtime_properties = properties);
    }

    /// Set a runtime property; `key` may be dotted (`a.b.c`) to reach into nested mappings.
    /// Secret values in it are masked here already, so the live state matches the store's.
    pub fn set_runtime_property(&self, id: &str, key: &str, value: Json) -> Result<(), String> {
        let value = self.recorder.masked_json(&value);
        let mut result = Ok(());
        self.change(id, |r| {
            let mut parts: Vec<&str> = key.split('.').collect();
            let last = parts.pop().unwrap_or(key);
            let mut cur = &mut r.runtime_properties;
            for p in parts {
                let entry = cur
                    .entry(p.to_string())
                    .or_insert_with(|| Json::Object(Map::new()));
                if !entry.is_object() {
                    result = Err(format!(
                        "runtime property `{p}` is not a mapping, cannot set `{key}`"
                    ));
                    return;
                }
                cur = entry.as_object_mut().expect("checked above");
            }
            cur.insert(last.to_string(), value);
        });
        result
    }

    fn change(&self, id: &str, f: impl FnOnce(&mut InstanceRecord)) {
        let record = self.with(id, |r| {
            f(r);
            r.version += 1;
            r.clone()
        });
        if let Some(record) = record {
            self.recorder.write(Write::Instance {
                deployment: self.recorder.deployment().to_string(),
                record,
            });
        }
    }
}
