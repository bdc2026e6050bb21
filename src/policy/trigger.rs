//! Triggers: what an acting decision runs.
//!
//! Cloudify's one trigger type, `cloudify.policies.triggers.execute_workflow`, is parsed into a
//! [`TriggerSpec`] (`workflow`, `workflow_parameters`, `allow_custom_parameters`, `force`;
//! `socket_timeout` and `conn_timeout`, which configured Riemann's HTTP call, are accepted and
//! ignored). Its `workflow_parameters` are kept as written and rendered per decision by
//! [`render_parameters`]:
//! - `{get_property: [SELF, KEY, …]}`: in a policy trigger, `SELF` is the event that fired it,
//!   with Cloudify's field names — `node_id` (the node instance, the failing one for
//!   `host_failure`), `node_name`, `deployment_id`, `service` (the metric's name), `metric` (its
//!   value), `host`, `failing_node`, `state`, `time` — plus the decision's numbers (`diagnose`,
//!   `aggregate`, `desired`, …);
//! - `{get_input: NAME}` from the deployment's inputs; `{concat: [...]}` of rendered parts;
//! - placeholders in strings: `{{ instance_id }}`, `{{ node_id }}` (the node, not the
//!   instance), `{{ metric }}` (the name), `{{ value }}`, `{{ deployment_id }}`, `{{ policy }}` and
//!   any of the decision's numbers (`{{ desired }}`, `{{ delta }}`). A string that is exactly one
//!   placeholder becomes the value itself, so `delta: '{{ delta }}'` passes a number.
//!
//! Other intrinsic functions (`get_secret`, …) are left as they are, for the caller to resolve.

use serde_json::{Map, Value as Json, json};

use super::config::PolicyError;
use super::sample::node_of;
use super::{Decision, round};

pub const EXECUTE_WORKFLOW: &str = "cloudify.policies.triggers.execute_workflow";

/// The parameters `execute_workflow` takes.
pub const PARAMETERS: [&str; 6] = [
    "workflow",
    "workflow_parameters",
    "allow_custom_parameters",
    "force",
    "socket_timeout",
    "conn_timeout",
];

/// A parsed `execute_workflow` trigger.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TriggerSpec {
    pub name: String,
    pub workflow: String,
    /// As written; rendered per decision by [`render_parameters`].
    pub workflow_parameters: Map<String, Json>,
    pub allow_custom_parameters: bool,
    /// Run even when another execution of the same workflow is in progress.
    pub force: bool,
}

impl TriggerSpec {
    /// Parses trigger `name` of policy `policy`: its type and its `parameters` mapping.
    pub fn parse(
        policy: &str,
        name: &str,
        ty: &str,
        parameters: &Json,
    ) -> Result<Self, PolicyError> {
        let bad = |message: String| PolicyError::BadTrigger {
            policy: policy.into(),
            trigger: name.into(),
            message,
        };
        if ty != EXECUTE_WORKFLOW {
            return Err(bad(format!(
                "the trigger type `{ty}` is not known; windlass runs `{EXECUTE_WORKFLOW}`"
            )));
        }
        let empty = Map::new();
        let params = match parameters {
            Json::Object(m) => m,
            Json::Null => &empty,
            _ => return Err(bad("`parameters` must be a mapping".into())),
        };
        if let Some(k) = params.keys().find(|k| !PARAMETERS.contains(&k.as_str())) {
            let hint = crate::diag::did_you_mean(k, PARAMETERS)
                .map(|d| format!("; {d}"))
                .unwrap_or_default();
            return Err(bad(format!("unknown parameter `{k}`{hint}")));
        }
        let workflow = match params.get("workflow") {
            Some(Json::String(w)) if !w.is_empty() => w.clone(),
            _ => return Err(bad("`workflow` must name a workflow".into())),
        };
        let workflow_parameters = match params.get("workflow_parameters") {
            None | Some(Json::Null) => Map::new(),
            Some(Json::Object(m)) => m.clone(),
            Some(_) => return Err(bad("`workflow_parameters` must be a mapping".into())),
        };
        let flag = |key: &str| match params.get(key) {
            None | Some(Json::Null) => Ok(false),
            Some(Json::Bool(b)) => Ok(*b),
            Some(other) => Err(bad(format!("`{key}` must be true or false, found {other}"))),
        };
        Ok(TriggerSpec {
            name: name.into(),
            workflow,
            workflow_parameters,
            allow_custom_parameters: flag("allow_custom_parameters")?,
            force: flag("force")?,
        })
    }
}

/// The event a decision stands for, as `get_property: [SELF, …]` sees it.
pub fn self_event(decision: &Decision, deployment: &str) -> Map<String, Json> {
    let mut event = Map::new();
    if let Some(i) = &decision.instance {
        event.insert("node_id".into(), json!(i));
        event.insert("node_name".into(), json!(node_of(i)));
        event.insert("host".into(), json!(i));
        event.insert("failing_node".into(), json!(i));
    }
    if let Some(m) = &decision.metric {
        event.insert("service".into(), json!(m));
    }
    if let Some(v) = decision.value {
        event.insert("metric".into(), json!(v));
    }
    event.insert("deployment_id".into(), json!(deployment));
    event.insert("policy".into(), json!(decision.policy));
    event.insert("state".into(), json!("triggering_state"));
    event.insert("time".into(), json!(decision.at.0));
    for (k, v) in &decision.numbers {
        event.entry(k.clone()).or_insert_with(|| v.clone());
    }
    event
}

/// The placeholders a string may use.
fn placeholders(decision: &Decision, deployment: &str) -> Map<String, Json> {
    let mut p = Map::new();
    if let Some(i) = &decision.instance {
        p.insert("instance_id".into(), json!(i));
        p.insert("node_id".into(), json!(node_of(i)));
    }
    if let Some(m) = &decision.metric {
        p.insert("metric".into(), json!(m));
    }
    if let Some(v) = decision.value {
        p.insert("value".into(), json!(round(v)));
    }
    p.insert("deployment_id".into(), json!(deployment));
    p.insert("policy".into(), json!(decision.policy));
    for (k, v) in &decision.numbers {
        p.entry(k.clone()).or_insert_with(|| v.clone());
    }
    p
}

struct Renderer<'a> {
    event: Map<String, Json>,
    placeholders: Map<String, Json>,
    inputs: &'a Map<String, Json>,
}

impl Renderer<'_> {
    fn value(&self, v: &Json) -> Result<Json, String> {
        match v {
            Json::String(s) => self.string(s),
            Json::Array(items) => items
                .iter()
                .map(|i| self.value(i))
                .collect::<Result<_, _>>()
                .map(Json::Array),
            Json::Object(m) if m.len() == 1 => {
                let (k, arg) = m.iter().next().expect("one entry");
                match k.as_str() {
                    "get_property" => self.get_property(arg),
                    "get_input" => self.get_input(arg),
                    "concat" => {
                        let Json::Array(parts) = arg else {
                            return Err("`concat` takes a list".into());
                        };
                        let mut out = String::new();
                        for p in parts {
                            match self.value(p)? {
                                Json::String(s) => out.push_str(&s),
                                other => out.push_str(&other.to_string()),
                            }
                        }
                        Ok(Json::String(out))
                    }
                    _ => Ok(Json::Object(
                        std::iter::once((k.clone(), self.value(arg)?)).collect(),
                    )),
                }
            }
            Json::Object(m) => m
                .iter()
                .map(|(k, v)| Ok((k.clone(), self.value(v)?)))
                .collect::<Result<Map<_, _>, String>>()
                .map(Json::Object),
            other => Ok(other.clone()),
        }
    }

    fn get_property(&self, arg: &Json) -> Result<Json, String> {
        let path = arg.as_array().filter(|a| a.len() >= 2);
        let Some(path) = path else {
            // get_property of a node's property was resolved at plan time or is not a policy's.
            return Ok(json!({"get_property": arg}));
        };
        if path[0] != json!("SELF") {
            return Ok(json!({"get_property": arg}));
        }
        let mut cur = Json::Object(self.event.clone());
        for key in &path[1..] {
            let next = match (key, &cur) {
                (Json::String(k), Json::Object(m)) => m.get(k).cloned(),
                (Json::Number(n), Json::Array(a)) => {
                    n.as_u64().and_then(|i| a.get(i as usize)).cloned()
                }
                _ => None,
            };
            cur = next.ok_or_else(|| {
                let mut known: Vec<&String> = self.event.keys().collect();
                known.sort();
                format!(
                    "the event that fired has no `{}` (it has {})",
                    key.as_str().map_or_else(|| key.to_string(), str::to_string),
                    known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        }
        Ok(cur)
    }

    fn get_input(&self, arg: &Json) -> Result<Json, String> {
        let name = match arg {
            Json::String(s) => s.as_str(),
            Json::Array(a) => a.first().and_then(Json::as_str).unwrap_or(""),
            _ => "",
        };
        let mut cur = self
            .inputs
            .get(name)
            .cloned()
            .ok_or_else(|| format!("no input `{name}`"))?;
        if let Json::Array(a) = arg {
            for key in &a[1..] {
                cur = match (key, &cur) {
                    (Json::String(k), Json::Object(m)) => m.get(k).cloned(),
                    (Json::Number(n), Json::Array(v)) => {
                        n.as_u64().and_then(|i| v.get(i as usize)).cloned()
                    }
                    _ => None,
                }
                .ok_or_else(|| format!("input `{name}` has no `{key}`"))?;
            }
        }
        Ok(cur)
    }

    fn string(&self, s: &str) -> Result<Json, String> {
        if !s.contains("{{") {
            return Ok(Json::String(s.to_string()));
        }
        let mut out = String::new();
        let mut rest = s;
        let mut only: Option<Json> = None;
        let mut parts = 0;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start..].find("}}") else {
                break;
            };
            let name = rest[start + 2..start + len].trim();
            let value = self.placeholders.get(name).ok_or_else(|| {
                let mut known: Vec<&String> = self.placeholders.keys().collect();
                known.sort();
                format!(
                    "no placeholder `{{{{ {name} }}}}` for this decision (there are {})",
                    known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            if !rest[..start].is_empty() {
                parts += 1;
            }
            out.push_str(&rest[..start]);
            match value {
                Json::String(v) => out.push_str(v),
                other => out.push_str(&other.to_string()),
            }
            parts += 1;
            only = Some(value.clone());
            rest = &rest[start + len + 2..];
        }
        if !rest.is_empty() {
            parts += 1;
        }
        out.push_str(rest);
        match only {
            Some(v) if parts == 1 => Ok(v),
            _ => Ok(Json::String(out)),
        }
    }
}

/// The workflow parameters of `trigger` for `decision`, with `SELF`, inputs and placeholders
/// resolved. An error names what could not be resolved.
pub fn render_parameters(
    trigger: &TriggerSpec,
    decision: &Decision,
    deployment: &str,
    inputs: &Map<String, Json>,
) -> Result<Map<String, Json>, PolicyError> {
    let r = Renderer {
        event: self_event(decision, deployment),
        placeholders: placeholders(decision, deployment),
        inputs,
    };
    trigger
        .workflow_parameters
        .iter()
        .map(|(k, v)| Ok((k.clone(), r.value(v)?)))
        .collect::<Result<Map<_, _>, String>>()
        .map_err(|message| PolicyError::BadTrigger {
            policy: decision.policy.clone(),
            trigger: trigger.name.clone(),
            message,
        })
}

#[cfg(test)]
mod tests {
    use super::super::{Outcome, Timestamp};
    use super::*;

    fn decision() -> Decision {
        let mut numbers = Map::new();
        numbers.insert("desired".into(), json!(4));
        numbers.insert("diagnose".into(), json!("heart-beat-failure"));
        Decision {
            policy: "heal_group/autoheal".into(),
            fired: true,
            acting: true,
            outcome: Outcome::Fired,
            reason: "r".into(),
            numbers,
            instance: Some("vm_ab12cd".into()),
            metric: Some("cpu.total.system".into()),
            value: Some(12.5),
            at: Timestamp(100.0),
        }
    }

    fn trigger(params: Json) -> TriggerSpec {
        TriggerSpec::parse(
            "p",
            "t",
            EXECUTE_WORKFLOW,
            &json!({"workflow": "heal", "workflow_parameters": params}),
        )
        .unwrap()
    }

    #[test]
    fn cloudify_autoheal_parameters_resolve_self_to_the_failing_instance() {
        let t = trigger(json!({
            "node_instance_id": {"get_property": ["SELF", "node_id"]},
            "diagnose_value": {"get_property": ["SELF", "diagnose"]},
        }));
        let got = render_parameters(&t, &decision(), "d1", &Map::new()).unwrap();
        assert_eq!(
            Json::Object(got),
            json!({"node_instance_id": "vm_ab12cd", "diagnose_value": "heart-beat-failure"})
        );
    }

    #[test]
    fn placeholders_inputs_and_concat() {
        let t = trigger(json!({
            "note": "{{ node_id }}/{{ instance_id }}: {{ metric }} = {{value}}",
            "delta": "{{ desired }}",
            "amount": "+{{ desired }}",
            "target": {"get_input": "tier"},
            "label": {"concat": ["scale-", {"get_input": "tier"}]},
            "secret": {"get_secret": "token"},
        }));
        let mut inputs = Map::new();
        inputs.insert("tier".into(), json!("web"));
        let got = render_parameters(&t, &decision(), "d1", &inputs).unwrap();
        assert_eq!(
            Json::Object(got),
            json!({
                "note": "vm/vm_ab12cd: cpu.total.system = 12.5",
                "delta": 4,
                "amount": "+4",
                "target": "web",
                "label": "scale-web",
                "secret": {"get_secret": "token"},
            })
        );
    }

    #[test]
    fn unresolvable_references_are_errors_that_say_what_exists() {
        let t = trigger(json!({"x": {"get_property": ["SELF", "nope"]}}));
        let e = render_parameters(&t, &decision(), "d", &Map::new()).unwrap_err();
        assert!(e.to_string().contains("`node_id`"), "{e}");
        let t = trigger(json!({"x": "{{ nope }}"}));
        assert!(render_parameters(&t, &decision(), "d", &Map::new()).is_err());
    }

    #[test]
    fn trigger_parameters_are_checked() {
        let parse = |p: Json| TriggerSpec::parse("p", "t", EXECUTE_WORKFLOW, &p);
        assert!(parse(json!({"workflow_parameters": {}})).is_err());
        let e = parse(json!({"workflow": "scale", "workflow_parametres": {}})).unwrap_err();
        assert!(
            e.to_string().contains("did you mean `workflow_parameters`"),
            "{e}"
        );
        let t = parse(json!({"workflow": "scale", "force": true, "conn_timeout": 5})).unwrap();
        assert!(t.force && !t.allow_custom_parameters);
        assert!(TriggerSpec::parse("p", "t", "other.trigger", &json!({"workflow": "x"})).is_err());
    }
}
