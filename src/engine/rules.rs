//! Autoscaling rules as the CLI (`windlass rules`) and the API (`/api/v1/rules`) change them:
//! the one place a rule is checked before it is stored, so both refuse the same rules with
//! the same reasons. A rule is checked alone (name, metric, numbers: `policy::Rule::check`),
//! then against its deployment, which must exist and have the target as a node or scaling
//! group (`policy::Rule::resolve`). The manager's runtime picks stored rules up on its next
//! refresh; nothing here talks to it.

use super::EngineError;
use crate::policy::Rule;
use crate::store::{RuleRecord, Store};

/// Check `rule` against its deployment: `RuleError` for the rule itself, `NoDeployment` when
/// its deployment does not exist.
pub async fn check(store: &Store, rule: &Rule) -> Result<(), EngineError> {
    rule.check()?;
    let dep = store.deployment_frame(&rule.deployment).await?;
    rule.resolve(&dep.compiled, &dep.plan.tree)?;
    Ok(())
}

/// Check and store a new rule.
pub async fn create(store: &Store, rule: &Rule) -> Result<RuleRecord, EngineError> {
    check(store, rule).await?;
    Ok(store.insert_rule(rule).await?)
}

/// Check and store new settings for an existing rule.
pub async fn update(store: &Store, rule: &Rule) -> Result<RuleRecord, EngineError> {
    check(store, rule).await?;
    Ok(store.update_rule(rule).await?)
}
