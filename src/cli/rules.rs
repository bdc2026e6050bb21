//! `windlass rules create|list|delete`: autoscaling rules, on the store directly (a running
//! `windlass serve` picks changes up within a second). Checked by `engine::rules`, as the API's
//! `/api/v1/rules` are, so both refuse the same rules for the same reasons.

use std::process::ExitCode;

use serde_json::Value as Json;

use super::Global;
use crate::engine::{self, EngineError};
use crate::policy::Rule;
use crate::policy::rule::{DEFAULT_COOLDOWN, DEFAULT_STEP};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RulesCommand {
    /// Scale a node or scaling group on a metric, between min and max instances.
    Create(CreateArgs),
    /// The rules, by name.
    List {
        /// Only this deployment's.
        #[arg(long, short = 'd')]
        deployment: Option<String>,
        /// Print JSON, as `GET /api/v1/rules`.
        #[arg(long)]
        json: bool,
    },
    /// Delete a rule: its policies stop.
    Delete { name: String },
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// The rule's name (letters, digits, `.`, `_`, `-`); its policies are `rule:NAME/out` and
    /// `rule:NAME/in`.
    name: String,
    #[arg(long, short = 'd')]
    deployment: String,
    /// A node or scaling group of the deployment.
    #[arg(long)]
    target: String,
    /// The metric's name, matched exactly.
    #[arg(long)]
    metric: String,
    /// Scale out while the metric's mean over the window is above this.
    #[arg(long, allow_negative_numbers = true)]
    scale_out_above: f64,
    /// Scale in while it is below this (without it the rule only scales out).
    #[arg(long, allow_negative_numbers = true)]
    scale_in_below: Option<f64>,
    /// Seconds of samples each instance's mean is taken over.
    #[arg(long)]
    window: f64,
    /// Never scale in below this many instances.
    #[arg(long)]
    min: u64,
    /// Never scale out above this many instances.
    #[arg(long)]
    max: u64,
    /// Instances added or removed per decision.
    #[arg(long, default_value_t = DEFAULT_STEP)]
    step: u64,
    /// Seconds after a scale before the same direction scales again.
    #[arg(long, default_value_t = DEFAULT_COOLDOWN)]
    cooldown: f64,
}

pub async fn run(store: &Store, global: &Global, args: RulesArgs) -> Result<ExitCode, EngineError> {
    match args.command {
        RulesCommand::Create(a) => {
            let rule = Rule {
                name: a.name,
                deployment: a.deployment,
                target: a.target,
                metric: a.metric,
                scale_out_above: a.scale_out_above,
                scale_in_below: a.scale_in_below,
                window: a.window,
                min: a.min,
                max: a.max,
                step: a.step,
                cooldown: a.cooldown,
            };
            let stored = engine::rules::create(store, &rule).await?;
            if !global.quiet {
                eprintln!(
                    "rule `{}` created: policies {}",
                    stored.rule.name,
                    stored.rule.policy_names().join(", ")
                );
            }
        }
        RulesCommand::List { deployment, json } => {
            if let Some(d) = &deployment {
                store.deployment_frame(d).await?;
            }
            let rules = store.rules(deployment.as_deref()).await?;
            if json {
                let rows: Vec<Json> = rules.iter().map(|r| r.to_json()).collect();
                println!("{}", Json::Array(rows));
            } else {
                for r in rules {
                    let r = r.rule;
                    let scale_in = r
                        .scale_in_below
                        .map(|b| format!("in < {b}"))
                        .unwrap_or_else(|| "no scale in".into());
                    println!(
                        "{}\t{}\t{}\t{}: out > {}, {scale_in}, window {}s\t{}..{} by {}, cooldown {}s",
                        r.name,
                        r.deployment,
                        r.target,
                        r.metric,
                        r.scale_out_above,
                        r.window,
                        r.min,
                        r.max,
                        r.step,
                        r.cooldown
                    );
                }
            }
        }
        RulesCommand::Delete { name } => store.delete_rule(&name).await?,
    }
    Ok(ExitCode::SUCCESS)
}
