//! `windlass validate BLUEPRINT [-i …] [--json]`.

use std::process::ExitCode;

use serde_json::json;

use super::BlueprintArgs;
use crate::blueprint::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    blueprint: BlueprintArgs,
    /// Print the result as JSON: {"valid", "errors": [{file, line, column, message, help}]}.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> ExitCode {
    let result = args.blueprint.open();
    if args.json {
        let errors = match &result {
            Err(Error::Invalid(report)) => report
                .diagnostics
                .iter()
                .map(|d| {
                    json!({
                        "file": report.sources.get(d.loc.file).name,
                        "line": d.loc.line,
                        "column": d.loc.col,
                        "message": d.message,
                        "help": d.help,
                    })
                })
                .collect(),
            _ => Vec::new(),
        };
        if matches!(result, Ok(_) | Err(Error::Invalid(_))) {
            println!("{}", json!({"valid": result.is_ok(), "errors": errors}));
        }
    }
    match result {
        Ok(bp) => {
            if !args.json {
                println!(
                    "{} is valid: {} nodes, {} node instances",
                    args.blueprint.blueprint.display(),
                    bp.compiled.nodes.len(),
                    bp.plan.instances.len()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => super::report(&e),
    }
}
