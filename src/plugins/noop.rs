//! The `noop` plugin: every function succeeds at once. For dry runs, tests and benchmarks.

use super::{OpFuture, OperationContext, Plugin};

pub struct NoopPlugin;

impl Plugin for NoopPlugin {
    fn run(&self, _ctx: OperationContext) -> OpFuture<'_> {
        Box::pin(async { Ok(None) })
    }

    fn has_function(&self, _function: &str) -> bool {
        true
    }

    fn side_effect_free(&self) -> bool {
        true
    }
}
