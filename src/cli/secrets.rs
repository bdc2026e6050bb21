//! `windlass secrets set|get|list|delete`: values kept encrypted in the state store
//! (`crate::secrets`). `get` prints a value — that is its job; `list` shows names and dates
//! only. The key file is made by the first `set` (`WINDLASS_SECRETS_KEY`, else
//! `$XDG_CONFIG_HOME/windlass/secrets.key`).

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Value as Json, json};

use super::Global;
use crate::engine::EngineError;
use crate::secrets;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct SecretsArgs {
    #[command(subcommand)]
    command: SecretsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SecretsCommand {
    /// Create or replace a secret: the value as an argument, from a file (`--file F`, as is),
    /// or from standard input (`-`, one trailing newline removed).
    Set {
        /// Letters, digits, `_`, `.` or `-`.
        name: String,
        /// The value, or `-` to read it from standard input.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        value: Option<String>,
        /// Read the value from this file.
        #[arg(long, value_name = "F")]
        file: Option<PathBuf>,
    },
    /// Print a secret's value (with a newline only on a terminal).
    Get { name: String },
    /// The secrets: name, when created, when last set (never their values).
    List {
        /// Print JSON: `[{"name","created_at","updated_at"}]`.
        #[arg(long)]
        json: bool,
    },
    /// Delete a secret (one that does not exist is an error).
    Delete { name: String },
}

pub async fn run(
    store: &Store,
    global: &Global,
    args: SecretsArgs,
) -> Result<ExitCode, EngineError> {
    match args.command {
        SecretsCommand::Set { name, value, file } => {
            // The name first: a bad one is refused before standard input is read.
            secrets::check_name(&name)?;
            let bytes = match (value, file) {
                (_, Some(f)) => std::fs::read(&f)
                    .map_err(|e| EngineError::Io(format!("cannot read {}: {e}", f.display())))?,
                (Some(v), None) if v == "-" => {
                    let mut buf = Vec::new();
                    std::io::stdin()
                        .read_to_end(&mut buf)
                        .map_err(|e| EngineError::Io(format!("cannot read standard input: {e}")))?;
                    if buf.ends_with(b"\n") {
                        buf.pop();
                        if buf.ends_with(b"\r") {
                            buf.pop();
                        }
                    }
                    buf
                }
                (Some(v), None) => v.into_bytes(),
                (None, None) => {
                    return Err(EngineError::Workflow(
                        "give the value, `-` to read it from standard input, or `--file F`"
                            .to_string(),
                    ));
                }
            };
            let new = secrets::set(store, &name, &bytes).await?;
            if !global.quiet {
                eprintln!(
                    "secret `{name}` {}",
                    if new { "created" } else { "updated" }
                );
            }
        }
        SecretsCommand::Get { name } => {
            let value = secrets::get(store, &name).await?;
            let mut out = std::io::stdout().lock();
            let newline = if out.is_terminal() { "\n" } else { "" };
            write!(out, "{value}{newline}")
                .and_then(|_| out.flush())
                .map_err(|e| EngineError::Io(format!("cannot write standard output: {e}")))?;
        }
        SecretsCommand::List { json } => {
            let list = secrets::list(store).await?;
            if json {
                let rows: Vec<Json> = list
                    .iter()
                    .map(|s| json!({"name": s.name, "created_at": s.created_at, "updated_at": s.updated_at}))
                    .collect();
                println!("{}", Json::Array(rows));
            } else {
                for s in list {
                    println!("{}\t{}\t{}", s.name, s.created_at, s.updated_at);
                }
            }
        }
        SecretsCommand::Delete { name } => {
            secrets::delete(store, &name).await?;
            if !global.quiet {
                eprintln!("secret `{name}` deleted");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
