//! `windlass serve` (the manager) and `windlass policies ID` (its policies' live state, as
//! the manager last saved it in the store).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use super::Global;
use super::deployments::{RunOptions, options};
use crate::engine::EngineError;
use crate::server::{self, Settings, intake::graphite::Template};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address of the REST API and HTTP metrics intake.
    #[arg(long, default_value = "127.0.0.1:8181")]
    listen: SocketAddr,
    /// Take Graphite plaintext metrics on this TCP address.
    #[arg(long, value_name = "ADDR")]
    graphite: Option<SocketAddr>,
    /// Which parts of a Graphite path are deployment, node instance and metric.
    #[arg(long, default_value = "deployment.node_instance.metric", value_parser = parse_template)]
    graphite_template: Template,
    /// Consume Diamond's Cloudify-handler metrics from this AMQP broker (amqp://…).
    #[arg(long, value_name = "URL", env = "WINDLASS_AMQP_URL")]
    amqp: Option<String>,
    /// Seconds without a metric from an instance before `host_failure` policies fire.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    host_failure_ttl: f64,
    #[command(flatten)]
    run: RunOptions,
}

fn parse_template(s: &str) -> Result<Template, String> {
    s.parse()
}

pub async fn serve(
    store: &Store,
    global: &Global,
    args: ServeArgs,
) -> Result<ExitCode, EngineError> {
    if !(args.host_failure_ttl.is_finite() && args.host_failure_ttl > 0.0) {
        return Err(EngineError::Workflow(
            "--host-failure-ttl must be a positive number of seconds".into(),
        ));
    }
    let mut global = global.clone();
    // Executions run in the background: their events go to the store, not to this terminal.
    global.quiet = true;
    let settings = Settings {
        listen: args.listen,
        graphite: args.graphite,
        graphite_template: args.graphite_template,
        amqp: args.amqp,
        host_failure_ttl: Duration::from_secs_f64(args.host_failure_ttl),
        options: options(&global, &args.run),
    };
    server::serve(store.clone(), settings)
        .await
        .map_err(|e| EngineError::Io(e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}

/// `windlass policies ID`: each policy, its live state and its last decisions.
pub async fn policies(
    store: &Store,
    args: super::inspect::IdJsonArgs,
) -> Result<ExitCode, EngineError> {
    let dep = store.deployment_frame(&args.id).await?;
    let saved = store.policy_state(&args.id).await?;
    if args.json {
        let out = match &saved {
            Some(s) => serde_json::json!({"updated_at": s.updated_at, "policies": s.snapshot}),
            None => serde_json::json!({"updated_at": null, "policies": []}),
        };
        println!("{out:#}");
        return Ok(ExitCode::SUCCESS);
    }
    let Some(saved) = saved else {
        if dep.compiled.policies.is_empty() {
            println!("deployment `{}` has no policies", args.id);
        } else {
            let names: Vec<&str> = dep.compiled.policies.keys().map(String::as_str).collect();
            println!(
                "deployment `{}` has policies ({}), but no manager has evaluated them yet: they run in `windlass serve`",
                args.id,
                names.join(", ")
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    println!("as of {} (saved by `windlass serve`)", saved.updated_at);
    for p in saved.snapshot.as_array().into_iter().flatten() {
        let text = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("");
        let dry = if p.get("dry_run").and_then(|v| v.as_bool()) == Some(true) {
            " (dry run)"
        } else {
            ""
        };
        println!("\n{} — {}{dry}", text("name"), text("type"));
        if let Some(triggers) = p.get("triggers").and_then(|t| t.as_array()) {
            for t in triggers {
                println!(
                    "  trigger {}: runs `{}`",
                    t["name"].as_str().unwrap_or(""),
                    t["workflow"].as_str().unwrap_or("")
                );
            }
        }
        println!("  state: {}", p.get("state").cloned().unwrap_or_default());
        let decisions = p.get("last_decisions").and_then(|d| d.as_array());
        match decisions {
            Some(d) if !d.is_empty() => {
                println!("  last decisions:");
                for d in d.iter().rev().take(10) {
                    let fired = if d["fired"].as_bool() == Some(true) {
                        "fired"
                    } else {
                        "held back"
                    };
                    println!(
                        "    {:.0} {fired}: {} {}",
                        d["at"].as_f64().unwrap_or(0.0),
                        d["reason"].as_str().unwrap_or(""),
                        d["numbers"]
                    );
                }
            }
            _ => println!("  no decisions yet"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
