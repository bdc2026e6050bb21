//! `list`, `status`, `instances`, `outputs`, `events`, `executions`: read-only views of the store.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value as Json, json};

use crate::engine::events::format_event;
use crate::engine::{self, EngineError};
use crate::store::{ACTIVE, Store};

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct IdJsonArgs {
    pub(super) id: String,
    /// Print JSON.
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    id: String,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Keep printing new events until the running execution ends.
    #[arg(short, long)]
    follow: bool,
}

pub async fn list(store: &Store, args: ListArgs) -> Result<ExitCode, EngineError> {
    let deployments = store.deployments().await?;
    if args.json {
        let rows: Vec<Json> = deployments
            .iter()
            .map(|(id, bp, at)| json!({"id": id, "blueprint": bp, "created_at": at}))
            .collect();
        println!("{}", Json::Array(rows));
    } else {
        for (id, bp, at) in deployments {
            println!("{id}\t{at}\t{bp}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn status(store: &Store, args: IdJsonArgs) -> Result<ExitCode, EngineError> {
    let dep = store.deployment(&args.id).await?;
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    for i in store.instances(&args.id).await? {
        *states.entry(i.state).or_default() += 1;
    }
    let last = store.latest_execution(&args.id).await?;
    if args.json {
        println!(
            "{}",
            json!({
                "id": dep.id, "blueprint": dep.blueprint, "created_at": dep.created_at,
                "instances": states,
                "last_execution": last.map(|e| json!({"id": e.id, "workflow": e.workflow, "status": e.status, "error": e.error})),
            })
        );
    } else {
        println!(
            "deployment {} ({}), created {}",
            dep.id, dep.blueprint, dep.created_at
        );
        let states: Vec<String> = states.iter().map(|(s, n)| format!("{n} {s}")).collect();
        println!("instances: {}", states.join(", "));
        if let Some(e) = last {
            println!(
                "last execution: {} {} {}{}",
                e.id,
                e.workflow,
                e.status,
                e.error.map(|x| format!(": {x}")).unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn instances(store: &Store, args: IdJsonArgs) -> Result<ExitCode, EngineError> {
    let rows = crate::engine::instances_json(store, &args.id).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
    } else {
        for r in rows {
            println!(
                "{}\t{}\t{}\t{}",
                r["id"].as_str().unwrap_or(""),
                r["node_id"].as_str().unwrap_or(""),
                r["state"].as_str().unwrap_or(""),
                r["runtime_properties"]
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn outputs(store: &Store, args: IdJsonArgs) -> Result<ExitCode, EngineError> {
    let outputs = engine::outputs(store, &args.id).await?;
    if args.json {
        println!("{}", Json::Object(outputs));
    } else {
        for (k, v) in outputs {
            println!(
                "{k}: {}",
                match v {
                    Json::String(s) => s,
                    other => other.to_string(),
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn events(store: &Store, args: EventsArgs) -> Result<ExitCode, EngineError> {
    store.deployment(&args.id).await?;
    let mut after = 0;
    loop {
        for e in store.events(&args.id, after).await? {
            after = e.seq;
            if args.json {
                println!("{}", serde_json::to_string(&e).unwrap_or_default());
            } else {
                println!("{}", format_event(&e));
            }
        }
        if !args.follow
            || store
                .active_execution(&args.id)
                .await?
                .is_none_or(|e| !ACTIVE.contains(&e.status.as_str()) || !e.running())
        {
            // One more read catches what the execution wrote as it ended.
            if args.follow {
                for e in store.events(&args.id, after).await? {
                    println!(
                        "{}",
                        if args.json {
                            serde_json::to_string(&e).unwrap_or_default()
                        } else {
                            format_event(&e)
                        }
                    );
                }
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn executions(store: &Store, args: IdJsonArgs) -> Result<ExitCode, EngineError> {
    store.deployment(&args.id).await?;
    let list = store.executions(&args.id).await?;
    if args.json {
        let rows: Vec<Json> = list
            .iter()
            .map(|e| json!({"id": e.id, "workflow": e.workflow, "parameters": e.parameters, "status": e.status, "created_at": e.created_at, "ended_at": e.ended_at, "error": e.error}))
            .collect();
        println!("{}", Json::Array(rows));
    } else {
        for e in list {
            println!(
                "{}\t{}\t{}\t{}{}",
                e.id,
                e.workflow,
                e.status,
                e.created_at,
                e.error.map(|x| format!("\t{x}")).unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn workflows(store: &Store, args: IdJsonArgs) -> Result<ExitCode, EngineError> {
    let dep = store.deployment(&args.id).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&dep.compiled.workflows).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for (name, w) in &dep.compiled.workflows {
        println!("{name}\t{}.{}", w.plugin, w.operation);
        for (p, def) in &w.parameters {
            let ty = def.ty.as_deref().unwrap_or("any");
            let default = match (&def.default, def.required) {
                (Some(d), _) => format!(" = {d}"),
                (None, true) => " (required)".to_string(),
                (None, false) => String::new(),
            };
            let description = def
                .description
                .as_deref()
                .map(|d| format!("  {d}"))
                .unwrap_or_default();
            println!("    {p}: {ty}{default}{description}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
