//! External plugins: operations of a plugin whose type file was found on the plugin path
//! (`DIR/NAME/plugin.yaml`), run by the executable `windlass-plugin` in that directory.
//!
//! # Protocol
//! - argv: `windlass-plugin MODULE.FUNCTION` (the operation's mapping without the plugin name).
//! - stdin: the operation's inputs, runtime functions resolved, as one JSON object, then EOF.
//! - working directory, `ctx`, environment: as for scripts — the deployment's copy of the
//!   blueprint files, `ctx` first on PATH, `WINDLASS_CTX_SOCKET` — plus
//!   `WINDLASS_PLUGIN_DIR` (the deployment's copy of the plugin's directory) and
//!   `WINDLASS_PLUGIN_PROPERTIES` (the plugin's properties as a JSON object).
//! - exit 0 is success. The return value is what `ctx returns` set, else the last non-empty
//!   line of standard output when it is JSON. Any other exit fails the operation with the last
//!   lines of standard error, retried up to `max_retries`; `ctx operation retry MSG` always
//!   retries and `ctx abort-operation MSG` never does.
//!
//! The process runs through [`super::script::run_guarded`]: same guard, lifeline, recorded
//! process group, timeout and cancellation as a script, so it never outlives the engine.
//!
//! # Where the plugin is
//! A deployment keeps a copy of each runnable external plugin's directory in its snapshot, under
//! [`PLUGINS_DIR`]`/NAME` (a dot-directory, which a blueprint's own files never use: the
//! snapshot leaves dot-directories out), so `resume` in another process, or after the plugin
//! directory changed, runs the same plugin. Nothing here reads the plugin path.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use super::script::run_guarded;
use super::{OpError, OpFuture, OperationContext, Plugin, guard};
use crate::dsl::compiled::ExternalPlugin;

/// The executable in a plugin's directory.
pub use crate::load::PLUGIN_RUNNER as EXECUTABLE;

/// Where a deployment's snapshot keeps the external plugins' directories, relative to its
/// blueprint files.
pub const PLUGINS_DIR: &str = ".windlass-plugins";

/// One external plugin, as a deployment's compiled blueprint describes it.
pub struct ExternalRunner {
    pub name: String,
    pub spec: ExternalPlugin,
}

impl ExternalRunner {
    /// The plugin's directory in a deployment's materialised files.
    pub fn dir(&self, resources: &Path) -> PathBuf {
        resources.join(PLUGINS_DIR).join(&self.spec.dir_name)
    }
}

impl Plugin for ExternalRunner {
    fn run(&self, ctx: OperationContext) -> OpFuture<'_> {
        Box::pin(run(self, ctx))
    }

    /// Any `module.function`: only the plugin knows its functions, and says so when run.
    fn has_function(&self, function: &str) -> bool {
        !function.is_empty()
    }
}

async fn run(plugin: &ExternalRunner, ctx: OperationContext) -> Result<Option<Json>, OpError> {
    let dir = plugin.dir(&ctx.resources);
    let program = dir.join(EXECUTABLE);
    let label = format!("plugin `{}` ({})", plugin.name, ctx.function);
    if !program.is_file() {
        return Err(OpError::NonRecoverable(format!(
            "{label}: the deployment's copy of the plugin has no `{EXECUTABLE}` ({})",
            program.display()
        )));
    }
    let Some(exe) = guard::windlass_exe() else {
        return Err(OpError::NonRecoverable(
            "cannot find the windlass binary to run the plugin under".to_string(),
        ));
    };
    let lifeline = guard::Lifeline::new()
        .map_err(|e| OpError::Failed(format!("cannot make the plugin's lifeline: {e}")))?;
    let mut command = lifeline.command(&exe, program.as_os_str());
    command
        .arg(OsStr::new(&ctx.function))
        .env("WINDLASS_PLUGIN_DIR", &dir)
        .env(
            "WINDLASS_PLUGIN_PROPERTIES",
            Json::Object(plugin.spec.properties.clone()).to_string(),
        );
    let stdin = Json::Object(ctx.inputs.clone()).to_string().into_bytes();
    let finished = run_guarded(ctx, &label, lifeline, command, Some(stdin)).await?;
    Ok(finished.returns.or_else(|| {
        finished
            .last_stdout
            .and_then(|line| serde_json::from_str(line.trim()).ok())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_lives_under_the_snapshot_plugins_dir() {
        let runner = ExternalRunner {
            name: "mine".to_string(),
            spec: ExternalPlugin {
                dir_name: "my-plugin".to_string(),
                source: PathBuf::from("/elsewhere/my-plugin"),
                runnable: true,
                properties: serde_json::Map::new(),
            },
        };
        assert_eq!(
            runner.dir(Path::new("/w/resources")),
            Path::new("/w/resources/.windlass-plugins/my-plugin")
        );
        assert!(runner.has_function("tasks.create"));
        assert!(!runner.has_function(""));
    }
}
