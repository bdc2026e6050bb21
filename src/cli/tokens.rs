//! `windlass tokens create|list|revoke`: the bearer tokens of `windlass serve`'s REST API.
//! `create` prints the token alone on stdout — the only time it is shown; the store keeps its
//! SHA-256 only (`store::tokens`).

use std::process::ExitCode;

use serde_json::{Value as Json, json};

use crate::engine::EngineError;
use crate::store::{Store, is_plain_name};

#[derive(Debug, clap::Args)]
pub struct TokensArgs {
    #[command(subcommand)]
    command: TokensCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TokensCommand {
    /// Make a token and print it (alone, on stdout); a name is used once.
    Create {
        /// Who or what holds the token (letters, digits, `.`, `_`, `-`).
        name: String,
    },
    /// The tokens: name, when created, when last used (never their values).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a token: requests presenting it are refused from now on.
    Revoke { name: String },
}

pub async fn run(store: &Store, args: TokensArgs) -> Result<ExitCode, EngineError> {
    match args.command {
        TokensCommand::Create { name } => {
            check_name(&name)?;
            let made = store.create_token(&name).await?;
            println!("{}", made.token);
        }
        TokensCommand::List { json } => {
            let tokens = store.tokens().await?;
            if json {
                let rows: Vec<Json> = tokens
                    .iter()
                    .map(|t| json!({"name": t.name, "created_at": t.created_at, "last_used_at": t.last_used_at}))
                    .collect();
                println!("{}", Json::Array(rows));
            } else {
                for t in tokens {
                    println!(
                        "{}\t{}\t{}",
                        t.name,
                        t.created_at,
                        t.last_used_at.as_deref().unwrap_or("never used")
                    );
                }
            }
        }
        TokensCommand::Revoke { name } => store.revoke_token(&name).await?,
    }
    Ok(ExitCode::SUCCESS)
}

fn check_name(name: &str) -> Result<(), EngineError> {
    if is_plain_name(name, 64) {
        Ok(())
    } else {
        Err(EngineError::Workflow(format!(
            "a token name is 1 to 64 letters, digits, `.`, `_` or `-`; got {name:?}"
        )))
    }
}
