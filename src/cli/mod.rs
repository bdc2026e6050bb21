//! The command line: argument parsing, one file per command, and the only place where errors
//! are rendered for people (miette, with source snippets) and exit codes chosen.
//!
//! Exit codes: 0 success, 1 blueprint invalid, 2 usage or I/O error. Data goes to stdout,
//! errors to stderr.

mod plan;
mod validate;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use miette::{GraphicalReportHandler, GraphicalTheme};

use crate::blueprint::{self, Blueprint, Error};
use crate::dsl::inputs;

#[derive(Debug, Parser)]
#[command(
    name = "windlass",
    version,
    about = "Plan and run Cloudify-DSL blueprints"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse and validate a blueprint; exit 0 when valid, 1 when not.
    Validate(validate::Args),
    /// Show the node-instance plan of a blueprint; touches nothing.
    Plan(plan::Args),
}

/// Inputs as Cloudify takes them; shared by commands that compile a blueprint.
#[derive(Debug, clap::Args)]
struct BlueprintArgs {
    /// The blueprint file.
    blueprint: PathBuf,
    /// Inputs: key=value, 'k1=v1;k2=v2', a YAML/JSON file, or a JSON object. Repeatable.
    #[arg(short = 'i', long = "inputs", value_name = "INPUTS")]
    inputs: Vec<String>,
}

impl BlueprintArgs {
    fn open(&self) -> Result<Blueprint, Error> {
        let given = inputs::parse_args(&self.inputs)?;
        blueprint::open(&self.blueprint, &given)
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Plan(args) => plan::run(args),
    }
}

/// Print an error for people; returns the exit code it calls for.
fn report(err: &Error) -> ExitCode {
    match err {
        Error::Invalid(report) => {
            let theme = if std::io::stderr().is_terminal() {
                GraphicalTheme::unicode()
            } else {
                GraphicalTheme::unicode_nocolor()
            };
            let handler = GraphicalReportHandler::new_themed(theme);
            for r in report.rendered() {
                let mut out = String::new();
                if handler.render_report(&mut out, r.as_ref()).is_err() {
                    out = format!("{r}\n");
                }
                eprint!("{out}");
            }
            eprintln!("error: {err}");
            ExitCode::from(1)
        }
        Error::Load(_) | Error::Inputs(_) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}
