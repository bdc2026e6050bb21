//! Scaling a Deployment's replicas through its `scale` subresource (`autoscaling/v1` `Scale`):
//! `GET`, then `PATCH` of `spec.replicas`, at
//! `/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale`.
//!
//! [`scale_deployment`] takes the amount as users write it — `3` (a count), `+2` / `-1` (a
//! change), `+0` when empty — and refuses a count below zero before writing anything.
//! [`scale_node`] is what `windlass scale ID NODE AMOUNT` runs for a node of type
//! `cloudify.kubernetes.resources.Deployment`: it finds the Deployment in the instance's runtime
//! property `kubernetes` (else in the node's `definition`), scales it, and records the
//! Deployment as the API then returns it.

use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value as Json, json};

use super::api::{self, KubeError};
use super::config;
use super::resource::{default_namespace, kept, record, recorded};
use crate::plugins::{OpError, OperationContext};

/// An amount: a replica count, or a change to the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    To(i64),
    By(i64),
}

impl Amount {
    /// `3`, `+2`, `-1`; empty is `+0`.
    pub fn parse(text: &str) -> Result<Amount, KubeError> {
        let t = text.trim();
        let bad = || {
            KubeError::Amount(format!(
                "`{text}` is not an amount: write a replica count (3) or a change (+2, -1)"
            ))
        };
        let number = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<i64>().ok())
                .flatten()
        };
        if t.is_empty() {
            Ok(Amount::By(0))
        } else if let Some(n) = t.strip_prefix('+') {
            number(n).map(Amount::By).ok_or_else(bad)
        } else if let Some(n) = t.strip_prefix('-') {
            number(n).map(|n| Amount::By(-n)).ok_or_else(bad)
        } else {
            number(t).map(Amount::To).ok_or_else(bad)
        }
    }

    /// The new count from `current`, refused below zero.
    pub fn apply(self, current: i64, what: &str) -> Result<i64, KubeError> {
        let new = match self {
            Amount::To(n) => n,
            Amount::By(d) => current.saturating_add(d),
        };
        if new < 0 {
            let sum = match self {
                Amount::By(d) => format!("{current} - {} = {new}", d.unsigned_abs()),
                Amount::To(n) => format!("asked for {n}"),
            };
            return Err(KubeError::Amount(format!(
                "{what} has {current} replicas; {sum}: replicas cannot go below zero"
            )));
        }
        Ok(new)
    }
}

/// Scale the Deployment `namespace/name` by `amount` (see [`Amount::parse`]). Returns the
/// replica count before and after; no write when they are equal.
pub async fn scale_deployment(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    amount: &str,
) -> Result<(i64, i64), KubeError> {
    let amount = Amount::parse(amount)?;
    let what = format!("Deployment {namespace}/{name}");
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), namespace);
    let scale = api::call("read the scale of", &what, || deployments.get_scale(name)).await?;
    let before = scale
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .map_or(0, i64::from);
    let after = amount.apply(before, &what)?;
    if after != before {
        let patch = Patch::Merge(json!({"spec": {"replicas": after}}));
        let params = PatchParams::default();
        api::call("scale", &what, || {
            deployments.patch_scale(name, &params, &patch)
        })
        .await?;
    }
    Ok((before, after))
}

/// What [`scale_node`] did.
#[derive(Debug, Clone)]
pub struct Scaled {
    pub name: String,
    pub namespace: String,
    pub before: i64,
    pub after: i64,
    /// The Deployment as the API returned it after the change.
    pub object: Json,
}

/// Scale the Deployment of the operation's node instance by `amount`, and record it in the
/// runtime property `kubernetes`. Errors are masked and classified for the engine.
pub async fn scale_node(ctx: &OperationContext, amount: &str) -> Result<Scaled, OpError> {
    let conn = config::connect(ctx)
        .await
        .map_err(KubeError::into_op_error)?;
    scale_with(ctx, &conn, amount)
        .await
        .map_err(|e| super::resource::mask(e.into_op_error(), &conn.secrets))
}

fn is_deployment(o: &Json) -> bool {
    o.get("kind").and_then(Json::as_str) == Some("Deployment")
}

async fn scale_with(
    ctx: &OperationContext,
    conn: &config::Connection,
    amount: &str,
) -> Result<Scaled, KubeError> {
    let objects = recorded(ctx);
    let definition = ctx
        .node_properties
        .get("definition")
        .filter(|d| is_deployment(d));
    let deployment = objects
        .as_ref()
        .and_then(|all| all.iter().find(|o| is_deployment(o)))
        .or(definition)
        .ok_or_else(|| KubeError::Object {
            what: ctx.node_id.clone(),
            message: "the node describes no Deployment to scale".to_string(),
        })?;
    let namespace = default_namespace(&ctx.node_properties);
    let target = api::target(&conn.client, deployment, &namespace, &ctx.node_id).await?;
    let ns = target.namespace.clone().unwrap_or(namespace);
    let (before, after) = scale_deployment(&conn.client, &ns, &target.name, amount).await?;
    let object = target
        .get(&conn.client)
        .await?
        .map(kept)
        .ok_or_else(|| KubeError::Object {
            what: target.describe(),
            message: "it is gone after it was scaled".to_string(),
        })?;
    // The property keeps its shape: the object, or the list with this one replaced.
    let was_list = matches!(
        ctx.instances
            .runtime_properties(&ctx.instance_id)
            .get("kubernetes"),
        Some(Json::Array(_))
    );
    let mut all = objects.unwrap_or_default();
    match all.iter_mut().find(|o| {
        is_deployment(o) && o.pointer("/metadata/name") == object.pointer("/metadata/name")
    }) {
        Some(slot) => *slot = object.clone(),
        None => all = vec![object.clone()],
    }
    record(ctx, &all, was_list)?;
    Ok(Scaled {
        name: target.name,
        namespace: ns,
        before,
        after,
        object,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        assert_eq!(Amount::parse("3").unwrap(), Amount::To(3));
        assert_eq!(Amount::parse("+2").unwrap(), Amount::By(2));
        assert_eq!(Amount::parse("-1").unwrap(), Amount::By(-1));
        assert_eq!(Amount::parse("").unwrap(), Amount::By(0));
        assert_eq!(Amount::parse("+0").unwrap(), Amount::By(0));
        for bad in ["x", "+", "1.5", "+-1", "- 1"] {
            assert!(Amount::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn below_zero_is_refused() {
        assert_eq!(Amount::By(1).apply(2, "d").unwrap(), 3);
        assert_eq!(Amount::To(0).apply(2, "d").unwrap(), 0);
        assert_eq!(Amount::By(-2).apply(2, "d").unwrap(), 0);
        let e = Amount::By(-5)
            .apply(2, "Deployment default/web")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Deployment default/web has 2 replicas; 2 - 5 = -3: replicas cannot go below zero"
        );
    }
}
