//! Functions whose types ship but which this version cannot run yet (today the `kubernetes`
//! plugin's `microservice.*` and `kube_scale`, which the plugin hands here).
//!
//! A blueprint that uses them validates, plans and deploys: `deploy`'s check that every
//! operation names a function the plugin offers still catches a misspelt one. Running one fails
//! — a reported operation error, never retried, naming the function — so an install stops there
//! instead of pretending that the resource exists.

use super::{OpError, OpFuture, OperationContext, Plugin};

/// A plugin that knows its functions and runs none of them.
pub struct Unimplemented {
    pub name: &'static str,
    pub functions: &'static [&'static str],
}

impl Plugin for Unimplemented {
    fn run(&self, ctx: OperationContext) -> OpFuture<'_> {
        let message = format!(
            "`{}.{}` ({}) is not implemented in this version of windlass",
            self.name, ctx.function, ctx.operation
        );
        Box::pin(async move { Err(OpError::NonRecoverable(message)) })
    }

    fn has_function(&self, function: &str) -> bool {
        self.functions.contains(&function)
    }
}
