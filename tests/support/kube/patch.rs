//! How a write changes an object: JSON merge patch (RFC 7386), the subset of strategic merge
//! patch that kubectl sends, JSON patch (RFC 6902), and server-side apply's field sets.
//!
//! Server-side apply is modelled on leaf fields: an object's fields are the paths to its scalars,
//! lists and empty maps (lists are atomic, as `x-kubernetes-list-type: atomic` fields are; the
//! real API merges some lists by key). Each manager owns a set of such paths; `managedFields`
//! is rendered from those sets. Everything here is pure: the store decides what to keep.

use std::collections::BTreeSet;

use serde_json::{Map, Value as Json};

/// A field as a list of map keys from the object's root.
pub type FieldPath = Vec<String>;

/// `.spec.replicas`, as the API writes a field in conflict messages.
pub fn display(path: &FieldPath) -> String {
    path.iter().map(|s| format!(".{s}")).collect()
}

/// Fields no manager owns: identity, system metadata and status.
fn untracked(path: &[String]) -> bool {
    match path {
        [top] => matches!(top.as_str(), "apiVersion" | "kind"),
        [top, ..] if top == "status" => true,
        [meta, field, ..] if meta == "metadata" => matches!(
            field.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
                | "managedFields"
                | "selfLink"
        ),
        _ => false,
    }
}

/// Every owned leaf field of `value`.
pub fn leaf_fields(value: &Json) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    collect(value, &mut Vec::new(), &mut out);
    out
}

fn collect(value: &Json, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match value {
        Json::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                prefix.push(key.clone());
                if !untracked(prefix) {
                    collect(child, prefix, out);
                }
                prefix.pop();
            }
        }
        _ if !prefix.is_empty() => {
            out.insert(prefix.clone());
        }
        _ => {}
    }
}

pub fn get<'a>(value: &'a Json, path: &[String]) -> Option<&'a Json> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

/// Remove a field, and the maps it leaves empty (but not the object's top-level keys).
pub fn remove(value: &mut Json, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    if let Some(Json::Object(map)) = get_mut(value, parents) {
        map.remove(last);
        if map.is_empty() && parents.len() > 1 {
            remove(value, parents);
        }
    }
}

fn get_mut<'a>(value: &'a mut Json, path: &[String]) -> Option<&'a mut Json> {
    path.iter().try_fold(value, |v, key| v.get_mut(key))
}

/// The leaf fields whose value differs between two versions of an object (added, changed or
/// removed).
pub fn changed_fields(before: &Json, after: &Json) -> BTreeSet<FieldPath> {
    let old = leaf_fields(before);
    let new = leaf_fields(after);
    old.union(&new)
        .filter(|p| get(before, p) != get(after, p))
        .cloned()
        .collect()
}

/// Lay an applied configuration over an object: maps merge key by key, everything else is
/// replaced by the applied value.
pub fn apply_merge(target: &mut Json, applied: &Json) {
    match (target, applied) {
        (Json::Object(t), Json::Object(a)) => {
            for (key, value) in a {
                match t.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        apply_merge(existing, value)
                    }
                    _ => {
                        t.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (t, a) => *t = a.clone(),
    }
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Json, patch: &Json) {
    let Json::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Json::Object(Map::new());
    }
    let Json::Object(t) = target else { return };
    for (key, value) in patch {
        if value.is_null() {
            t.remove(key);
        } else {
            merge_patch(t.entry(key.clone()).or_insert(Json::Null), value);
        }
    }
}

/// The key that identifies the items of a list field in strategic merge patch, from the
/// `patchMergeKey` tags of the core types; `None` for a list that is replaced whole.
fn merge_key(field: &str, items: &[Json]) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "hostAliases" => Some("ip"),
        "conditions" => Some("type"),
        "ports" if items.iter().any(|i| i.get("containerPort").is_some()) => Some("containerPort"),
        "ports" => Some("port"),
        _ => None,
    }
}

/// Strategic merge patch as kubectl sends it: merge patch, with lists of the core types merged
/// by their merge key, `$patch: replace|delete` on maps and list items,
/// `$deleteFromPrimitiveList/FIELD`, and the ordering directives (`$setElementOrder/FIELD`,
/// `$retainKeys`) accepted and ignored.
pub fn strategic_merge_patch(target: &mut Json, patch: &Json) {
    let Json::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    match patch.get("$patch").and_then(Json::as_str) {
        Some("replace") => {
            let mut replaced = patch.clone();
            replaced.remove("$patch");
            *target = Json::Object(replaced);
            return;
        }
        Some("delete") => {
            *target = Json::Object(Map::new());
            return;
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Json::Object(Map::new());
    }
    let Json::Object(t) = target else { return };
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Json::Array(items)), Json::Array(gone)) = (t.get_mut(field), value) {
                items.retain(|item| !gone.contains(item));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        match value {
            Json::Null => {
                t.remove(key);
            }
            Json::Array(items) => match (merge_key(key, items), t.get_mut(key)) {
                (Some(merge_key), Some(Json::Array(existing))) => {
                    merge_list(existing, items, merge_key)
                }
                _ => {
                    t.insert(key.clone(), Json::Array(without_directives(items)));
                }
            },
            Json::Object(_) => {
                strategic_merge_patch(t.entry(key.clone()).or_insert(Json::Null), value)
            }
            _ => {
                t.insert(key.clone(), value.clone());
            }
        }
    }
}

fn without_directives(items: &[Json]) -> Vec<Json> {
    items
        .iter()
        .filter(|i| i.get("$patch").is_none())
        .cloned()
        .collect()
}

fn merge_list(existing: &mut Vec<Json>, patch: &[Json], key: &str) {
    for item in patch {
        let id = item.get(key);
        let position = id.and_then(|id| existing.iter().position(|e| e.get(key) == Some(id)));
        match (item.get("$patch").and_then(Json::as_str), position) {
            (Some("delete"), Some(i)) => {
                existing.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => strategic_merge_patch(&mut existing[i], item),
            (_, None) => {
                let mut added = Json::Null;
                strategic_merge_patch(&mut added, item);
                existing.push(added);
            }
        }
    }
}

/// Why a JSON patch could not be applied (the API answers 422 with it).
#[derive(Debug)]
pub struct JsonPatchError(pub String);

/// RFC 6902 JSON patch: `add`, `remove`, `replace`, `move`, `copy`, `test`.
pub fn json_patch(target: &mut Json, ops: &Json) -> Result<(), JsonPatchError> {
    let ops = ops
        .as_array()
        .ok_or_else(|| JsonPatchError("a JSON patch must be a list of operations".into()))?;
    for op in ops {
        let name = op.get("op").and_then(Json::as_str).unwrap_or_default();
        let path = pointer(op.get("path"))?;
        match name {
            "add" => add(target, &path, value_of(op)?)?,
            "remove" => {
                take(target, &path)?;
            }
            "replace" => {
                take(target, &path)?;
                add(target, &path, value_of(op)?)?;
            }
            "move" => {
                let value = take(target, &pointer(op.get("from"))?)?;
                add(target, &path, value)?;
            }
            "copy" => {
                let from = pointer(op.get("from"))?;
                let value = find(target, &from)?.clone();
                add(target, &path, value)?;
            }
            "test" => {
                if find(target, &path)? != &value_of(op)? {
                    return Err(JsonPatchError(format!(
                        "testing value {} failed",
                        op.get("path").unwrap_or(&Json::Null)
                    )));
                }
            }
            other => {
                return Err(JsonPatchError(format!(
                    "unexpected kind of operation: {other:?}"
                )));
            }
        }
    }
    Ok(())
}

fn value_of(op: &Json) -> Result<Json, JsonPatchError> {
    op.get("value")
        .cloned()
        .ok_or_else(|| JsonPatchError("operation is missing its value".into()))
}

fn pointer(path: Option<&Json>) -> Result<Vec<String>, JsonPatchError> {
    let text = path
        .and_then(Json::as_str)
        .ok_or_else(|| JsonPatchError("operation is missing its path".into()))?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let rest = text
        .strip_prefix('/')
        .ok_or_else(|| JsonPatchError(format!("invalid JSON pointer {text:?}")))?;
    Ok(rest
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn missing(path: &[String]) -> JsonPatchError {
    JsonPatchError(format!("doc is missing path: \"/{}\"", path.join("/")))
}

fn find<'a>(target: &'a Json, path: &[String]) -> Result<&'a Json, JsonPatchError> {
    path.iter()
        .try_fold(target, |v, key| match v {
            Json::Object(m) => m.get(key),
            Json::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        })
        .ok_or_else(|| missing(path))
}

fn parent<'a>(target: &'a mut Json, path: &[String]) -> Result<&'a mut Json, JsonPatchError> {
    let mut v = target;
    for key in path {
        v = match v {
            Json::Object(m) => m.get_mut(key),
            Json::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| missing(path))?;
    }
    Ok(v)
}

fn add(target: &mut Json, path: &[String], value: Json) -> Result<(), JsonPatchError> {
    let Some((last, parents)) = path.split_last() else {
        *target = value;
        return Ok(());
    };
    match parent(target, parents)? {
        Json::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Json::Array(a) if last == "-" => {
            a.push(value);
            Ok(())
        }
        Json::Array(a) => match last.parse::<usize>() {
            Ok(i) if i <= a.len() => {
                a.insert(i, value);
                Ok(())
            }
            _ => Err(missing(path)),
        },
        _ => Err(missing(path)),
    }
}

fn take(target: &mut Json, path: &[String]) -> Result<Json, JsonPatchError> {
    let (last, parents) = path.split_last().ok_or_else(|| missing(path))?;
    match parent(target, parents)? {
        Json::Object(m) => m.remove(last).ok_or_else(|| missing(path)),
        Json::Array(a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => Ok(a.remove(i)),
            _ => Err(missing(path)),
        },
        _ => Err(missing(path)),
    }
}
