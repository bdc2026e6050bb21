//! Live node-instance state during an execution: lifecycle state and runtime properties,
//! shared by the walker and the operations (through `ctx`), written through the recorder with
//! a version that grows on every change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value as Json};

use super::events::Recorder;
use crate::store::{InstanceRecord, Write};

#[derive(Clone)]
pub struct Instances {
    inner: Arc<Mutex<HashMap<String, InstanceRecord>>>,
    recorder: Recorder,
}

impl Instances {
    pub fn new(records: Vec<InstanceRecord>, recorder: Recorder) -> Self {
        Instances {
            inner: Arc::new(Mutex::new(
                records.into_iter().map(|r| (r.id.clone(), r)).collect(),
            )),
            recorder,
        }
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

    pub fn set_state(&self, id: &str, state: &str) {
        self.change(id, |r| r.state = state.to_string());
    }

    /// Set a runtime property; `key` may be dotted (`a.b.c`) to reach into nested mappings.
    pub fn set_runtime_property(&self, id: &str, key: &str, value: Json) -> Result<(), String> {
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
