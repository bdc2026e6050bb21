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

pub fn run(args: Args, verbose: bool) -> ExitCode {
    let result = args.blueprint.open();
    // `-v`: where each import resolved (read again: the compiled blueprint keeps no files).
    let imports = if verbose {
        crate::load::load_file(&args.blueprint.blueprint)
            .map(|(loaded, _)| {
                loaded
                    .imports
                    .iter()
                    .map(|r| {
                        let at = loaded.sources.describe(r.loc).to_string();
                        (r.import.clone(), at, r.file.clone())
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    if !args.json {
        for (import, at, file) in &imports {
            println!("{at}: import `{import}` -> {file}");
        }
    }
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
            let mut out = json!({"valid": result.is_ok(), "errors": errors});
            if verbose {
                out["imports"] = imports
                    .iter()
                    .map(|(import, at, file)| json!({"import": import, "at": at, "file": file}))
                    .collect();
            }
            println!("{out}");
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
