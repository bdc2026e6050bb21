//! `windlass plan BLUEPRINT [-i …] [--format text|json|dot]`.

use std::io::Write;
use std::process::ExitCode;

use super::BlueprintArgs;
use crate::plan::render;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
    Dot,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    blueprint: BlueprintArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    json: bool,
}

pub fn run(args: Args) -> ExitCode {
    let bp = match args.blueprint.open() {
        Ok(bp) => bp,
        Err(e) => return super::report(&e),
    };
    let format = if args.json { Format::Json } else { args.format };
    match format {
        Format::Json => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            if render::write_json(&bp.compiled, &bp.plan, &mut out).is_err()
                || writeln!(out).is_err()
            {
                // stdout closed (e.g. piped into `head`): nothing more to say.
                return ExitCode::SUCCESS;
            }
        }
        Format::Text => print!("{}", render::text(&bp.compiled, &bp.plan)),
        Format::Dot => print!("{}", render::dot(&bp.compiled, &bp.plan)),
    }
    ExitCode::SUCCESS
}
