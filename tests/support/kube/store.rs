//! The objects the contract server holds, and everything that happens to them.
//!
//! One `Store` behind one mutex: objects keyed by (kind, namespace, name), a global
//! `resourceVersion` counter, field ownership per object (for `managedFields` and apply
//! conflicts), the history of watch events and the open watches.
//!
//! Time is counted in reads, never in clocks, so tests are deterministic: a workload written
//! with more replicas than are available becomes ready after `ready_after` reads of it (a GET, a
//! LIST that returns it, a GET of its scale); a deleted object is still returned by the next
//! `delete_after` reads, then is gone. A watch stands for a client that polls until the end: an
//! object it watches finishes its countdown at once (unless it was made never to become ready),
//! and the watch sees the `MODIFIED` or `DELETED` event.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{BuildHasher, RandomState};

use serde_json::{Map, Value as Json, json};
use tokio::sync::mpsc::UnboundedSender;

use super::kinds::{self, Kind};
use super::patch::{self, FieldPath};
use super::status::{Cause, Status};

type Key = (&'static str, String, String);

/// The countdowns given to objects written from now on.
#[derive(Debug, Clone, Copy)]
pub struct Countdowns {
    pub ready_after: u32,
    pub delete_after: u32,
}

/// What a write does to field ownership.
enum Ownership<'a> {
    /// An update (create, PUT, patch, scale): the manager owns the fields it changed.
    Update(&'a str),
    /// A server-side apply: the manager owns exactly the fields it applied.
    Apply(&'a str, BTreeSet<FieldPath>),
}

struct Owner {
    manager: String,
    operation: &'static str,
    time: String,
    fields: BTreeSet<FieldPath>,
}

struct Entry {
    kind: &'static Kind,
    object: Json,
    owners: Vec<Owner>,
    /// Reads left before the object becomes ready; `None` when it is ready.
    until_ready: Option<u32>,
    /// Reads left before a deleted object is gone; `None` unless it is being deleted.
    until_gone: Option<u32>,
}

/// Which objects a LIST or watch covers.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub namespace: Option<String>,
    /// From `fieldSelector=metadata.name=…`.
    pub name: Option<String>,
    /// From `labelSelector=a=b,c=d` (equality only).
    pub labels: Vec<(String, String)>,
}

impl Selector {
    fn matches(&self, key: &Key, object: &Json) -> bool {
        self.namespace.as_ref().is_none_or(|ns| *ns == key.1)
            && self.name.as_ref().is_none_or(|n| *n == key.2)
            && self.labels.iter().all(|(k, v)| {
                object
                    .pointer(&format!("/metadata/labels/{k}"))
                    .and_then(Json::as_str)
                    == Some(v)
            })
    }
}

struct Watcher {
    kind: &'static str,
    selector: Selector,
    sender: UnboundedSender<Vec<u8>>,
}

struct Event {
    resource_version: u64,
    kind: &'static str,
    key: Key,
    kind_of_event: &'static str,
    object: Json,
}

pub struct Store {
    objects: BTreeMap<Key, Entry>,
    resource_version: u64,
    pub countdowns: Countdowns,
    never_ready: HashSet<Key>,
    history: Vec<Event>,
    watchers: Vec<Watcher>,
    random: RandomState,
    counter: u64,
}

/// A write's result: the HTTP code (200 or 201) and the object.
pub type Written = Result<(u16, Json), Status>;

impl Store {
    /// A store holding the namespaces every cluster has.
    pub fn new(countdowns: Countdowns) -> Store {
        let mut store = Store {
            objects: BTreeMap::new(),
            resource_version: 0,
            countdowns,
            never_ready: HashSet::new(),
            history: Vec::new(),
            watchers: Vec::new(),
            random: RandomState::new(),
            counter: 0,
        };
        let namespace = kinds::by_kind("Namespace").expect("Namespace is served");
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let object =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            store
                .create(namespace, "", object, "kube-apiserver", false)
                .expect("the built-in namespaces are valid");
        }
        store
    }

    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    fn random(&mut self) -> u64 {
        self.counter += 1;
        self.random.hash_one(self.counter)
    }

    fn uid(&mut self) -> String {
        let (a, b) = (self.random(), self.random());
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }

    pub fn never_ready(&mut self, kind: &'static Kind, namespace: &str, name: &str) {
        self.never_ready
            .insert((kind.kind, namespace.to_string(), name.to_string()));
    }

    /// The object as stored, without counting as a read.
    pub fn peek(&self, kind: &'static Kind, namespace: &str, name: &str) -> Option<Json> {
        let key = (kind.kind, namespace.to_string(), name.to_string());
        self.objects.get(&key).map(|e| e.object.clone())
    }

    // --- reads -------------------------------------------------------------------------------

    /// A read of one object: it moves the object's countdowns.
    fn read(&mut self, key: &Key) -> Option<Json> {
        let never_ready = self.never_ready.contains(key);
        let entry = self.objects.get_mut(key)?;
        match entry.until_gone {
            Some(0) => {
                self.remove(key);
                return None;
            }
            Some(left) => entry.until_gone = Some(left - 1),
            None => {}
        }
        match entry.until_ready {
            Some(0) if !never_ready => self.become_ready(key),
            Some(left) if left > 0 => entry.until_ready = Some(left - 1),
            _ => {}
        }
        self.objects.get(key).map(|e| e.object.clone())
    }

    pub fn get(
        &mut self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Json, Status> {
        let key = (kind.kind, namespace.to_string(), name.to_string());
        self.read(&key).ok_or_else(|| Status::not_found(kind, name))
    }

    pub fn list(&mut self, kind: &'static Kind, selector: &Selector) -> Json {
        let keys: Vec<Key> = self
            .objects
            .iter()
            .filter(|(k, e)| k.0 == kind.kind && selector.matches(k, &e.object))
            .map(|(k, _)| k.clone())
            .collect();
        let items: Vec<Json> = keys
            .iter()
            .filter_map(|k| self.read(k))
            .map(|mut item| {
                // A list's items carry neither kind nor apiVersion: the list says them.
                if let Json::Object(map) = &mut item {
                    map.remove("kind");
                    map.remove("apiVersion");
                }
                item
            })
            .collect();
        json!({
            "kind": format!("{}List", kind.kind),
            "apiVersion": kind.api_version(),
            "metadata": {"resourceVersion": self.resource_version.to_string()},
            "items": items,
        })
    }

    /// Open a watch: objects it covers finish their countdowns, then it gets every event after
    /// `since` (or an `ADDED` per object when `since` is absent or `0`), then every new one.
    pub fn watch(
        &mut self,
        kind: &'static Kind,
        selector: Selector,
        since: Option<u64>,
        sender: UnboundedSender<Vec<u8>>,
    ) {
        let keys: Vec<Key> = self
            .objects
            .iter()
            .filter(|(k, e)| k.0 == kind.kind && selector.matches(k, &e.object))
            .map(|(k, _)| k.clone())
            .collect();
        for key in &keys {
            let never_ready = self.never_ready.contains(key);
            let Some(entry) = self.objects.get(key) else {
                continue;
            };
            if entry.until_gone.is_some() {
                self.remove(key);
            } else if entry.until_ready.is_some() && !never_ready {
                self.become_ready(key);
            }
        }
        let backlog: Vec<Vec<u8>> = match since {
            Some(rv) if rv > 0 => self
                .history
                .iter()
                .filter(|e| {
                    e.resource_version > rv
                        && e.kind == kind.kind
                        && selector.matches(&e.key, &e.object)
                })
                .map(|e| event_line(e.kind_of_event, &e.object))
                .collect(),
            _ => self
                .objects
                .iter()
                .filter(|(k, e)| k.0 == kind.kind && selector.matches(k, &e.object))
                .map(|(_, e)| event_line("ADDED", &e.object))
                .collect(),
        };
        for line in backlog {
            if sender.send(line).is_err() {
                return;
            }
        }
        self.watchers.push(Watcher {
            kind: kind.kind,
            selector,
            sender,
        });
    }

    fn emit(&mut self, kind_of_event: &'static str, key: &Key, object: &Json) {
        let resource_version = self.resource_version;
        self.history.push(Event {
            resource_version,
            kind: key.0,
            key: key.clone(),
            kind_of_event,
            object: object.clone(),
        });
        let line = event_line(kind_of_event, object);
        self.watchers.retain(|w| {
            if w.kind != key.0 || !w.selector.matches(key, object) {
                return !w.sender.is_closed();
            }
            w.sender.send(line.clone()).is_ok()
        });
    }

    fn bump(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    fn become_ready(&mut self, key: &Key) {
        let rv = self.bump();
        let Some(entry) = self.objects.get_mut(key) else {
            return;
        };
        entry.until_ready = None;
        let status = status_of(entry.kind, &entry.object, true);
        entry.object["status"] = status;
        entry.object["metadata"]["resourceVersion"] = json!(rv);
        let object = entry.object.clone();
        self.emit("MODIFIED", key, &object);
    }

    fn remove(&mut self, key: &Key) {
        let Some(entry) = self.objects.remove(key) else {
            return;
        };
        self.bump();
        let mut object = entry.object;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        self.emit("DELETED", key, &object);
        if entry.kind.kind == "Namespace" {
            let inside: Vec<Key> = self
                .objects
                .keys()
                .filter(|k| k.1 == key.2)
                .cloned()
                .collect();
            for key in inside {
                self.remove(&key);
            }
        }
    }

    // --- writes ------------------------------------------------------------------------------

    fn namespace_accepts(&self, kind: &Kind, namespace: &str) -> Result<(), Status> {
        if !kind.namespaced {
            return Ok(());
        }
        let key = ("Namespace", String::new(), namespace.to_string());
        match self.objects.get(&key) {
            None => Err(Status::not_found(
                kinds::by_kind("Namespace").expect("served"),
                namespace,
            )),
            Some(e) if e.until_gone.is_some() => Err(Status::forbidden(format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {namespace} \
                 because it is being terminated",
                kind.qualified_plural(),
                e.object
                    .pointer("/metadata/name")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
            ))),
            Some(_) => Ok(()),
        }
    }

    /// POST, or an apply of an object that does not exist yet.
    pub fn create(
        &mut self,
        kind: &'static Kind,
        namespace: &str,
        body: Json,
        manager: &str,
        apply: bool,
    ) -> Written {
        let mut object = identity_checked(kind, namespace, body)?;
        if object
            .pointer("/metadata/name")
            .and_then(Json::as_str)
            .is_none()
            && let Some(prefix) = object
                .pointer("/metadata/generateName")
                .and_then(Json::as_str)
        {
            let suffix: String = (0..5)
                .map(|_| (b'a' + (self.random() % 26) as u8) as char)
                .collect();
            object["metadata"]["name"] = json!(format!("{prefix}{suffix}"));
        }
        let name = name_of(&object);
        validate(kind, &object)?;
        self.namespace_accepts(kind, namespace)?;
        let key = (kind.kind, namespace.to_string(), name.clone());
        if let Some(existing) = self.objects.get(&key) {
            return Err(Status::already_exists(
                kind,
                &name,
                existing.until_gone.is_some(),
            ));
        }
        if let Json::Object(map) = &mut object {
            map.remove("status");
        }
        let ownership = if apply {
            Ownership::Apply(manager, patch::leaf_fields(&object))
        } else {
            Ownership::Update(manager)
        };
        let uid = self.uid();
        let meta = &mut object["metadata"];
        meta["uid"] = json!(uid);
        meta["creationTimestamp"] = json!(now());
        if kind.generation {
            meta["generation"] = json!(1);
        }
        self.fill_defaults(kind, &mut object);
        let ready_at_once = self.countdowns.ready_after == 0;
        let becomes_ready =
            has_countdown(kind) && (!ready_at_once || self.never_ready.contains(&key));
        let status = status_of(kind, &object, !becomes_ready);
        if !status.is_null() {
            object["status"] = status;
        }
        let entry = Entry {
            kind,
            object: Json::Null,
            owners: Vec::new(),
            until_ready: becomes_ready.then_some(self.countdowns.ready_after),
            until_gone: None,
        };
        self.objects.insert(key.clone(), entry);
        let object = self.commit(&key, Json::Null, object, ownership, "ADDED");
        Ok((201, object))
    }

    /// PUT of a whole object.
    pub fn replace(
        &mut self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
        body: Json,
        manager: &str,
    ) -> Written {
        let key = (kind.kind, namespace.to_string(), name.to_string());
        let old = self
            .objects
            .get(&key)
            .map(|e| e.object.clone())
            .ok_or_else(|| Status::not_found(kind, name))?;
        let body = identity_checked(kind, namespace, body)?;
        same_name(&body, name)?;
        precondition(kind, &old, &body)?;
        let new = keep_system_fields(kind, &old, body);
        validate(kind, &new)?;
        Ok((
            200,
            self.commit(&key, old, new, Ownership::Update(manager), "MODIFIED"),
        ))
    }

    /// PATCH other than apply: `patch_type` is the request's content type.
    pub fn patch(
        &mut self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
        patch_type: PatchType,
        body: &Json,
        manager: &str,
    ) -> Written {
        let key = (kind.kind, namespace.to_string(), name.to_string());
        let old = self
            .objects
            .get(&key)
            .map(|e| e.object.clone())
            .ok_or_else(|| Status::not_found(kind, name))?;
        let mut patched = old.clone();
        patch_type.apply(&mut patched, body).map_err(|e| {
            Status::invalid(
                kind.kind,
                kind.group,
                name,
                &[Cause::invalid("patch", "", &e.0)],
            )
        })?;
        precondition(kind, &old, &patched)?;
        same_name(&patched, name)?;
        let new = keep_system_fields(kind, &old, patched);
        validate(kind, &new)?;
        Ok((
            200,
            self.commit(&key, old, new, Ownership::Update(manager), "MODIFIED"),
        ))
    }

    /// Server-side apply (`application/apply-patch+yaml`).
    pub fn apply(
        &mut self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
        body: Json,
        manager: &str,
        force: bool,
    ) -> Written {
        let key = (kind.kind, namespace.to_string(), name.to_string());
        let body = identity_checked(kind, namespace, body)?;
        same_name(&body, name)?;
        let Some(entry) = self.objects.get(&key) else {
            return self.create(kind, namespace, body, manager, true);
        };
        let old = entry.object.clone();
        precondition(kind, &old, &body)?;
        let applied = patch::leaf_fields(&body);
        let mut conflicts = Vec::new();
        for owner in entry
            .owners
            .iter()
            .filter(|o| !(o.manager == manager && o.operation == "Apply"))
        {
            for field in applied.intersection(&owner.fields) {
                if patch::get(&old, field) != patch::get(&body, field) {
                    conflicts.push((owner.manager.clone(), patch::display(field)));
                }
            }
        }
        if !conflicts.is_empty() && !force {
            return Err(Status::apply_conflict(kind, name, &conflicts));
        }
        let previously: BTreeSet<FieldPath> = entry
            .owners
            .iter()
            .find(|o| o.manager == manager && o.operation == "Apply")
            .map(|o| o.fields.clone())
            .unwrap_or_default();
        let mut new = old.clone();
        for field in previously.difference(&applied) {
            let shared = entry.owners.iter().any(|o| {
                !(o.manager == manager && o.operation == "Apply") && o.fields.contains(field)
            });
            if !shared {
                patch::remove(&mut new, field);
            }
        }
        let mut body = body;
        if let Json::Object(map) = &mut body {
            map.remove("status");
        }
        patch::apply_merge(&mut new, &body);
        let new = keep_system_fields(kind, &old, new);
        validate(kind, &new)?;
        Ok((
            200,
            self.commit(
                &key,
                old,
                new,
                Ownership::Apply(manager, applied),
                "MODIFIED",
            ),
        ))
    }

    /// DELETE. The object goes at once when `delete_after` is 0, else it is marked with a
    /// `deletionTimestamp` (and the finalizer its propagation policy implies) and goes later.
    pub fn delete(
        &mut self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
        options: &Json,
    ) -> Written {
        let policy = options.get("propagationPolicy").and_then(Json::as_str);
        if let Some(policy) = policy
            && !matches!(policy, "Foreground" | "Background" | "Orphan")
        {
            return Err(Status::invalid(
                "DeleteOptions",
                "meta.k8s.io",
                "",
                &[Cause {
                    reason: "FieldValueNotSupported",
                    field: "propagationPolicy".into(),
                    message: format!(
                        "Unsupported value: \"{policy}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                    ),
                }],
            ));
        }
        let key = (kind.kind, namespace.to_string(), name.to_string());
        let entry = self
            .objects
            .get(&key)
            .ok_or_else(|| Status::not_found(kind, name))?;
        let mut object = entry.object.clone();
        if let Some(expected) = options
            .pointer("/preconditions/resourceVersion")
            .and_then(Json::as_str)
            && object
                .pointer("/metadata/resourceVersion")
                .and_then(Json::as_str)
                != Some(expected)
        {
            return Err(Status::modified(kind, name));
        }
        if let Some(expected) = options.pointer("/preconditions/uid").and_then(Json::as_str) {
            let actual = object
                .pointer("/metadata/uid")
                .and_then(Json::as_str)
                .unwrap_or_default();
            if actual != expected {
                return Err(Status {
                    code: 409,
                    reason: "Conflict",
                    message: format!(
                        "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {expected}, UID in object meta: {actual}",
                        kind.qualified_plural()
                    ),
                    details: Some(Box::new(
                        json!({"name": name, "group": kind.group, "kind": kind.plural}),
                    )),
                    retry_after: None,
                });
            }
        }
        if entry.until_gone.is_some() {
            return Ok((200, object));
        }
        if self.countdowns.delete_after == 0 {
            self.remove(&key);
            return Ok((200, object));
        }
        let rv = self.bump();
        object["metadata"]["deletionTimestamp"] = json!(now());
        object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        object["metadata"]["resourceVersion"] = json!(rv);
        let finalizer = match policy {
            Some("Foreground") => Some("foregroundDeletion"),
            Some("Orphan") => Some("orphan"),
            _ => None,
        };
        if let Some(finalizer) = finalizer {
            object["metadata"]["finalizers"] = json!([finalizer]);
        }
        if kind.kind == "Namespace" {
            object["status"] = json!({"phase": "Terminating"});
        }
        let entry = self.objects.get_mut(&key).expect("checked above");
        entry.object = object.clone();
        entry.until_gone = Some(self.countdowns.delete_after);
        self.emit("MODIFIED", &key, &object);
        Ok((200, object))
    }

    // --- the scale subresource ---------------------------------------------------------------

    pub fn get_scale(
        &mut self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Json, Status> {
        let object = self.get(kind, namespace, name)?;
        Ok(scale_of(&object))
    }

    /// PUT or PATCH of a scale: `scale` is the new `Scale`; its `spec.replicas` becomes the
    /// object's.
    pub fn set_scale(
        &mut self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
        scale: &Json,
        manager: &str,
    ) -> Result<Json, Status> {
        let key = (kind.kind, namespace.to_string(), name.to_string());
        let old = self
            .objects
            .get(&key)
            .map(|e| e.object.clone())
            .ok_or_else(|| Status::not_found(kind, name))?;
        if let Some(expected) = scale
            .pointer("/metadata/resourceVersion")
            .and_then(Json::as_str)
            && old
                .pointer("/metadata/resourceVersion")
                .and_then(Json::as_str)
                != Some(expected)
        {
            return Err(Status::modified(kind, name));
        }
        let replicas = match scale.pointer("/spec/replicas") {
            Some(Json::Number(n)) => n.as_i64(),
            None | Some(Json::Null) => Some(0),
            Some(_) => None,
        };
        let replicas = match replicas {
            Some(r) if r >= 0 => r,
            _ => {
                let shown = scale
                    .pointer("/spec/replicas")
                    .map(Json::to_string)
                    .unwrap_or_default();
                return Err(Status::invalid(
                    "Scale",
                    "autoscaling",
                    name,
                    &[Cause::invalid(
                        "spec.replicas",
                        &shown,
                        "must be greater than or equal to 0",
                    )],
                ));
            }
        };
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(replicas);
        let object = self.commit(&key, old, new, Ownership::Update(manager), "MODIFIED");
        Ok(scale_of(&object))
    }

    // --- bookkeeping -------------------------------------------------------------------------

    /// Store a written object: generation, status, ownership, `managedFields`,
    /// `resourceVersion`, and the watch event.
    fn commit(
        &mut self,
        key: &Key,
        old: Json,
        mut new: Json,
        ownership: Ownership,
        event: &'static str,
    ) -> Json {
        let rv = self.bump();
        let never_ready = self.never_ready.contains(key);
        let countdowns = self.countdowns;
        let Some(entry) = self.objects.get_mut(key) else {
            return new;
        };
        let kind = entry.kind;
        let spec_changed = old.get("spec") != new.get("spec");
        if kind.generation && spec_changed && !old.is_null() {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Json::as_i64)
                .unwrap_or(1);
            new["metadata"]["generation"] = json!(generation + 1);
        }
        if spec_changed && !old.is_null() && has_countdown(kind) {
            // The workload must catch up with its new spec unless what is available covers it.
            let wanted = desired(kind, &new);
            let available = available(kind, &old);
            if (wanted <= available || countdowns.ready_after == 0) && !never_ready {
                entry.until_ready = None;
                new["status"] = status_of(kind, &new, true);
            } else {
                entry.until_ready = Some(countdowns.ready_after);
                new["status"] = status_of(kind, &new, false);
            }
        }
        let time = now();
        match ownership {
            Ownership::Update(manager) => {
                let changed = patch::changed_fields(&old, &new);
                let changed: BTreeSet<FieldPath> = changed
                    .into_iter()
                    .filter(|f| patch::get(&new, f).is_some())
                    .collect();
                if !changed.is_empty() {
                    for owner in &mut entry.owners {
                        owner.fields.retain(|f| !changed.contains(f));
                    }
                    take_fields(&mut entry.owners, manager, "Update", &time, changed);
                }
            }
            Ownership::Apply(manager, applied) => {
                for owner in entry
                    .owners
                    .iter_mut()
                    .filter(|o| !(o.manager == manager && o.operation == "Apply"))
                {
                    // Fields applied with the same value stay shared; forced ones change hands.
                    owner.fields.retain(|f| {
                        !applied.contains(f) || patch::get(&old, f) == patch::get(&new, f)
                    });
                }
                entry
                    .owners
                    .retain(|o| !(o.manager == manager && o.operation == "Apply"));
                take_fields(&mut entry.owners, manager, "Apply", &time, applied);
            }
        }
        entry.owners.retain(|o| !o.fields.is_empty());
        new["metadata"]["managedFields"] = Json::Array(
            entry
                .owners
                .iter()
                .map(|o| {
                    json!({
                        "manager": o.manager,
                        "operation": o.operation,
                        "apiVersion": kind.api_version(),
                        "time": o.time,
                        "fieldsType": "FieldsV1",
                        "fieldsV1": fields_v1(&o.fields),
                    })
                })
                .collect(),
        );
        new["metadata"]["resourceVersion"] = json!(rv);
        entry.object = new.clone();
        self.emit(event, key, &new);
        new
    }

    fn fill_defaults(&mut self, kind: &Kind, object: &mut Json) {
        let name = name_of(object);
        match kind.kind {
            "Deployment" | "ReplicaSet" | "StatefulSet" => {
                if object.pointer("/spec/replicas").is_none() {
                    object["spec"]["replicas"] = json!(1);
                }
                if kind.kind == "Deployment" && object.pointer("/spec/strategy").is_none() {
                    object["spec"]["strategy"] = json!({
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}
                    });
                }
            }
            "Service" => {
                if object.pointer("/spec/type").is_none() {
                    object["spec"]["type"] = json!("ClusterIP");
                }
                if object.pointer("/spec/clusterIP").is_none() {
                    let ip = format!(
                        "10.96.{}.{}",
                        (self.counter / 250) % 250,
                        self.counter % 250 + 1
                    );
                    object["spec"]["clusterIP"] = json!(ip);
                    object["spec"]["clusterIPs"] = json!([ip]);
                }
                if let Some(Json::Array(ports)) = object.pointer_mut("/spec/ports") {
                    for port in ports {
                        if port.get("protocol").is_none() {
                            port["protocol"] = json!("TCP");
                        }
                        if port.get("targetPort").is_none()
                            && let Some(p) = port.get("port").cloned()
                        {
                            port["targetPort"] = p;
                        }
                    }
                }
            }
            "Secret" => {
                if let Some(Json::Object(plain)) =
                    object.as_object_mut().and_then(|o| o.remove("stringData"))
                {
                    for (key, value) in plain {
                        let text = value
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| value.to_string());
                        object["data"][key] = json!(super::tls::base64(text.as_bytes()));
                    }
                }
                if object.get("type").is_none() {
                    object["type"] = json!("Opaque");
                }
            }
            "Namespace" => {
                object["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
                object["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            "Pod" => {
                if object.pointer("/spec/restartPolicy").is_none() {
                    object["spec"]["restartPolicy"] = json!("Always");
                }
                object["spec"]["nodeName"] = json!("contract-node");
            }
            _ => {}
        }
    }
}

fn take_fields(
    owners: &mut Vec<Owner>,
    manager: &str,
    operation: &'static str,
    time: &str,
    fields: BTreeSet<FieldPath>,
) {
    match owners
        .iter_mut()
        .find(|o| o.manager == manager && o.operation == operation)
    {
        Some(owner) => {
            owner.fields.extend(fields);
            owner.time = time.to_string();
        }
        None => owners.push(Owner {
            manager: manager.to_string(),
            operation,
            time: time.to_string(),
            fields,
        }),
    }
}

/// `FieldsV1`: `{"f:spec": {"f:replicas": {}}}`.
fn fields_v1(fields: &BTreeSet<FieldPath>) -> Json {
    let mut root = Map::new();
    for path in fields {
        let mut node = &mut root;
        for segment in path {
            node = node
                .entry(format!("f:{segment}"))
                .or_insert_with(|| Json::Object(Map::new()))
                .as_object_mut()
                .expect("only maps are inserted");
        }
    }
    Json::Object(root)
}

fn event_line(kind_of_event: &str, object: &Json) -> Vec<u8> {
    let mut line =
        serde_json::to_vec(&json!({"type": kind_of_event, "object": object})).unwrap_or_default();
    line.push(b'\n');
    line
}

/// The patch formats of `PATCH`, by content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Strategic,
    Json,
}

impl PatchType {
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        match content_type.split(';').next().unwrap_or_default().trim() {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/json-patch+json" => Some(PatchType::Json),
            _ => None,
        }
    }

    pub fn apply(self, target: &mut Json, body: &Json) -> Result<(), patch::JsonPatchError> {
        match self {
            PatchType::Merge => patch::merge_patch(target, body),
            PatchType::Strategic => patch::strategic_merge_patch(target, body),
            PatchType::Json => patch::json_patch(target, body)?,
        }
        Ok(())
    }
}

fn name_of(object: &Json) -> String {
    object
        .pointer("/metadata/name")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A body must be an object of the URL's kind and namespace; the namespace is filled in.
fn identity_checked(kind: &Kind, namespace: &str, body: Json) -> Result<Json, Status> {
    let Json::Object(_) = body else {
        return Err(Status::bad_request(
            "the body of the request was in an unknown format",
        ));
    };
    let mut body = body;
    let api_version = body
        .get("apiVersion")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string();
    if api_version != kind.api_version() {
        return Err(Status::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            kind.api_version()
        )));
    }
    let object_kind = body.get("kind").and_then(Json::as_str).unwrap_or_default();
    if object_kind != kind.kind {
        return Err(Status::bad_request(format!(
            "the kind in the data ({object_kind}) does not match the expected kind ({})",
            kind.kind
        )));
    }
    if !body.get("metadata").is_some_and(Json::is_object) {
        body["metadata"] = json!({});
    }
    if kind.namespaced {
        match body.pointer("/metadata/namespace").and_then(Json::as_str) {
            Some(ns) if ns != namespace => {
                return Err(Status::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => body["metadata"]["namespace"] = json!(namespace),
        }
    }
    Ok(body)
}

fn same_name(body: &Json, name: &str) -> Result<(), Status> {
    let in_body = name_of(body);
    if in_body != name {
        return Err(Status::bad_request(format!(
            "the name of the object ({in_body}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

/// A `metadata.resourceVersion` in a write must be the current one.
fn precondition(kind: &Kind, old: &Json, body: &Json) -> Result<(), Status> {
    let sent = body
        .pointer("/metadata/resourceVersion")
        .and_then(Json::as_str);
    let current = old
        .pointer("/metadata/resourceVersion")
        .and_then(Json::as_str);
    match sent {
        Some(sent) if Some(sent) != current => Err(Status::modified(kind, &name_of(old))),
        _ => Ok(()),
    }
}

/// What a client may not change: identity, system metadata, and status (written through
/// `/status` on a real server, by its controllers here).
fn keep_system_fields(kind: &Kind, old: &Json, mut new: Json) -> Json {
    for field in [
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        match old["metadata"].get(field) {
            Some(value) => new["metadata"][field] = value.clone(),
            None => {
                if let Some(meta) = new.get_mut("metadata").and_then(Json::as_object_mut) {
                    meta.remove(field);
                }
            }
        }
    }
    match old.get("status") {
        Some(status) => new["status"] = status.clone(),
        None => {
            if let Json::Object(map) = &mut new {
                map.remove("status");
            }
        }
    }
    if kind.kind == "Secret"
        && let Some(Json::Object(plain)) = new.as_object_mut().and_then(|o| o.remove("stringData"))
    {
        for (key, value) in plain {
            let text = value
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            new["data"][key] = json!(super::tls::base64(text.as_bytes()));
        }
    }
    new
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The API's validation for what the tests and plugins write: names, workload selectors and
/// templates, containers, replicas, service ports.
fn validate(kind: &Kind, object: &Json) -> Result<(), Status> {
    let name = name_of(object);
    let mut causes = Vec::new();
    if name.is_empty() {
        causes.push(Cause::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if !is_dns_subdomain(&name) {
        causes.push(Cause::invalid(
            "metadata.name",
            &format!("{name:?}"),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ));
    }
    match kind.kind {
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => {
            match object.pointer("/spec/selector") {
                None | Some(Json::Null) => causes.push(Cause::required("spec.selector", "")),
                Some(selector) => {
                    let labels = object.pointer("/spec/template/metadata/labels");
                    let wanted = selector.get("matchLabels").and_then(Json::as_object);
                    let matches = wanted.is_some_and(|wanted| {
                        wanted
                            .iter()
                            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
                    });
                    if !matches {
                        let shown = labels.map(Json::to_string).unwrap_or_else(|| "{}".into());
                        causes.push(Cause::invalid(
                            "spec.template.metadata.labels",
                            &shown,
                            "`selector` does not match template `labels`",
                        ));
                    }
                }
            }
            containers(
                object.pointer("/spec/template/spec"),
                "spec.template.spec",
                &mut causes,
            );
            if let Some(replicas) = object.pointer("/spec/replicas").and_then(Json::as_i64)
                && replicas < 0
            {
                causes.push(Cause::invalid(
                    "spec.replicas",
                    &replicas.to_string(),
                    "must be greater than or equal to 0",
                ));
            }
        }
        "Pod" => containers(object.get("spec"), "spec", &mut causes),
        "Service" => {
            let headless = object.pointer("/spec/clusterIP").and_then(Json::as_str) == Some("None");
            let external =
                object.pointer("/spec/type").and_then(Json::as_str) == Some("ExternalName");
            let ports = object.pointer("/spec/ports").and_then(Json::as_array);
            if !headless && !external && ports.is_none_or(Vec::is_empty) {
                causes.push(Cause::required("spec.ports", ""));
            }
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(Status::invalid(kind.kind, kind.group, &name, &causes))
    }
}

fn containers(pod_spec: Option<&Json>, at: &str, causes: &mut Vec<Cause>) {
    let list = pod_spec
        .and_then(|s| s.get("containers"))
        .and_then(Json::as_array);
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        causes.push(Cause::required(&format!("{at}.containers"), ""));
        return;
    };
    for (i, container) in list.iter().enumerate() {
        for field in ["name", "image"] {
            if container
                .get(field)
                .and_then(Json::as_str)
                .is_none_or(str::is_empty)
            {
                causes.push(Cause::required(
                    &format!("{at}.containers[{i}].{field}"),
                    "",
                ));
            }
        }
    }
}

/// Kinds whose status becomes ready over reads.
fn has_countdown(kind: &Kind) -> bool {
    matches!(
        kind.kind,
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Pod"
    )
}

fn desired(kind: &Kind, object: &Json) -> i64 {
    match kind.kind {
        "DaemonSet" | "Pod" => 1,
        _ => object
            .pointer("/spec/replicas")
            .and_then(Json::as_i64)
            .unwrap_or(1),
    }
}

fn available(kind: &Kind, object: &Json) -> i64 {
    let field = match kind.kind {
        "DaemonSet" => "/status/numberAvailable",
        "Pod" => return 0,
        _ => "/status/availableReplicas",
    };
    object.pointer(field).and_then(Json::as_i64).unwrap_or(0)
}

fn condition(kind: &str, ok: bool, reason: &str, message: &str, time: &str) -> Json {
    json!({
        "type": kind,
        "status": if ok { "True" } else { "False" },
        "lastUpdateTime": time,
        "lastTransitionTime": time,
        "reason": reason,
        "message": message,
    })
}

/// The status a workload controller (or the kubelet, for a Pod) would have written by now:
/// `ready` when everything asked for is available. Zero counts are left out, as the API
/// omits them.
fn status_of(kind: &Kind, object: &Json, ready: bool) -> Json {
    let name = name_of(object);
    let wanted = desired(kind, object);
    let have = if ready {
        wanted
    } else {
        available(kind, object).min(wanted)
    };
    let generation = object
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    let time = now();
    let mut status = match kind.kind {
        "Deployment" => {
            let (progress_reason, progress_message) = if ready {
                (
                    "NewReplicaSetAvailable",
                    format!("ReplicaSet \"{name}-6d4cf56db6\" has successfully progressed."),
                )
            } else {
                (
                    "ReplicaSetUpdated",
                    format!("ReplicaSet \"{name}-6d4cf56db6\" is progressing."),
                )
            };
            json!({
                "observedGeneration": generation,
                "replicas": wanted,
                "updatedReplicas": wanted,
                "readyReplicas": have,
                "availableReplicas": have,
                "unavailableReplicas": wanted - have,
                "conditions": [
                    if ready {
                        condition("Available", true, "MinimumReplicasAvailable", "Deployment has minimum availability.", &time)
                    } else {
                        condition("Available", false, "MinimumReplicasUnavailable", "Deployment does not have minimum availability.", &time)
                    },
                    condition("Progressing", true, progress_reason, &progress_message, &time),
                ],
            })
        }
        "ReplicaSet" => json!({
            "observedGeneration": generation,
            "replicas": wanted,
            "fullyLabeledReplicas": wanted,
            "readyReplicas": have,
            "availableReplicas": have,
        }),
        "StatefulSet" => json!({
            "observedGeneration": generation,
            "replicas": wanted,
            "currentReplicas": wanted,
            "updatedReplicas": wanted,
            "readyReplicas": have,
            "availableReplicas": have,
        }),
        "DaemonSet" => json!({
            "observedGeneration": generation,
            "desiredNumberScheduled": 1,
            "currentNumberScheduled": 1,
            "updatedNumberScheduled": 1,
            "numberMisscheduled": 0,
            "numberReady": have,
            "numberAvailable": have,
            "numberUnavailable": 1 - have,
        }),
        "Pod" => {
            let containers = object
                .pointer("/spec/containers")
                .and_then(Json::as_array)
                .cloned()
                .unwrap_or_default();
            let statuses: Vec<Json> = containers
                .iter()
                .map(|c| {
                    json!({
                        "name": c.get("name").cloned().unwrap_or(Json::Null),
                        "image": c.get("image").cloned().unwrap_or(Json::Null),
                        "imageID": "",
                        "ready": ready,
                        "started": ready,
                        "restartCount": 0,
                        "state": if ready {
                            json!({"running": {"startedAt": time}})
                        } else {
                            json!({"waiting": {"reason": "ContainerCreating"}})
                        },
                    })
                })
                .collect();
            let cond = |kind: &str, ok: bool| {
                let mut c = json!({"type": kind, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": time});
                if !ok {
                    c["reason"] = json!("ContainersNotReady");
                }
                c
            };
            let mut status = json!({
                "phase": if ready { "Running" } else { "Pending" },
                "conditions": [
                    cond("PodScheduled", true),
                    cond("Initialized", true),
                    cond("ContainersReady", ready),
                    cond("Ready", ready),
                ],
                "hostIP": "10.0.0.10",
                "startTime": time,
                "qosClass": "BestEffort",
                "containerStatuses": statuses,
            });
            if ready {
                status["podIP"] = json!("10.244.0.10");
            }
            status
        }
        "Namespace" => json!({"phase": "Active"}),
        "PersistentVolumeClaim" => json!({
            "phase": "Bound",
            "accessModes": object.pointer("/spec/accessModes").cloned().unwrap_or(json!([])),
            "capacity": {"storage": object.pointer("/spec/resources/requests/storage").cloned().unwrap_or(json!("0"))},
        }),
        "Service" => json!({"loadBalancer": {}}),
        _ => Json::Null,
    };
    if let Json::Object(map) = &mut status {
        map.retain(|_, v| v.as_i64() != Some(0));
    }
    status
}

/// The `autoscaling/v1` `Scale` of a workload.
pub fn scale_of(object: &Json) -> Json {
    let meta = &object["metadata"];
    let selector: Vec<String> = object
        .pointer("/spec/selector/matchLabels")
        .and_then(Json::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let mut scale = json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": object.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": object.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector.join(","),
        },
    });
    if scale["spec"]["replicas"] == json!(0) {
        scale["spec"] = json!({});
    }
    scale
}

/// Now, as RFC 3339 in UTC with seconds (the API's `Time`).
pub fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = windlass::store::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}
