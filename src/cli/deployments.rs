//! `deploy`, `undeploy`, `run`, `resume`, `cancel`: commands that start or stop executions.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Map, Value as Json};

use super::Global;
use crate::dsl::inputs;
use crate::engine::events::Display;
use crate::engine::{self, EngineError, Options};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct RunOptions {
    /// Operations run at once, at most.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    parallelism: u32,
    /// Retries of a failing operation that sets no max_retries (-1: unlimited).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    task_retries: i64,
    /// Seconds between retries of an operation that sets no retry_interval.
    #[arg(long, default_value_t = 1.0)]
    retry_interval: f64,
}

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The blueprint file.
    blueprint: PathBuf,
    /// Deployment id [default: the blueprint's directory name].
    #[arg(short = 'd', long = "deployment-id")]
    id: Option<String>,
    /// Inputs: key=value, 'k1=v1;k2=v2', a YAML/JSON file, or a JSON object. Repeatable.
    #[arg(short = 'i', long = "inputs", value_name = "INPUTS")]
    inputs: Vec<String>,
    #[command(flatten)]
    run: RunOptions,
}

#[derive(Debug, clap::Args)]
pub struct UndeployArgs {
    id: String,
    /// Go on when an operation fails, and delete the deployment all the same.
    #[arg(long)]
    ignore_failure: bool,
    #[command(flatten)]
    run: RunOptions,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    id: String,
    workflow: String,
    /// Parameters, in the same forms as inputs. Repeatable.
    #[arg(short = 'p', long = "parameters", value_name = "PARAMS")]
    parameters: Vec<String>,
    /// Accept parameters the workflow does not declare.
    #[arg(long)]
    allow_custom_parameters: bool,
    #[command(flatten)]
    run: RunOptions,
}

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    id: String,
    /// A node or a scaling group (a node inside a scaling group scales its group).
    target: String,
    /// +N adds, -N removes, N sets the count (per instance of what contains the target).
    #[arg(allow_hyphen_values = true)]
    amount: String,
    /// Scale-in: remove these instances first (repeatable).
    #[arg(long = "include", value_name = "INSTANCE")]
    include: Vec<String>,
    /// Scale-in: never remove these instances (repeatable).
    #[arg(long = "exclude", value_name = "INSTANCE")]
    exclude: Vec<String>,
    /// Scale-in: go on when an operation fails.
    #[arg(long)]
    ignore_failure: bool,
    /// Scale-out: keep what was added when it fails, instead of rolling it back.
    #[arg(long)]
    no_rollback: bool,
    #[command(flatten)]
    run: RunOptions,
}

#[derive(Debug, clap::Args)]
pub struct HealArgs {
    id: String,
    /// The failing node instance.
    instance: String,
    #[command(flatten)]
    run: RunOptions,
}

#[derive(Debug, clap::Args)]
pub struct IdArgs {
    id: String,
    #[command(flatten)]
    run: RunOptions,
}

pub(super) fn options(global: &Global, run: &RunOptions) -> Options {
    let display = if global.quiet {
        Display::Quiet
    } else if std::io::stdout().is_terminal() && !global.verbose {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} instances  {wide_msg}",
        ) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        Display::Progress(bar)
    } else {
        Display::Lines
    };
    Options {
        parallelism: run.parallelism as usize,
        task_retries: run.task_retries,
        retry_interval: Duration::from_secs_f64(run.retry_interval.max(0.0)),
        display,
    }
}

fn done(global: &Global, what: String) -> ExitCode {
    if !global.quiet {
        eprintln!("{what}");
    }
    ExitCode::SUCCESS
}

pub async fn deploy(
    store: &Store,
    global: &Global,
    args: DeployArgs,
    opening: Opening,
) -> Result<ExitCode, EngineError> {
    // Meanwhile, what needs nothing of the blueprint, its errors reported after the
    // blueprint's own: the snapshot of its directory, on a thread of its own (a blueprint that
    // cannot be opened is reported without waiting for it), and the store's log. A store that
    // cannot be written to says so when the deployment is stored.
    let skip = engine::snapshot_skip(store);
    let snapshot = Snapshotting::start(&args.blueprint, &skip);
    let _ = store.prime_log().await;
    let bp = opening.wait()?;
    let files = snapshot.wait();
    let id = match args.id {
        Some(id) => id,
        None => default_id(&args.blueprint),
    };
    let label = args.blueprint.display().to_string();
    let (snapshot, created) = engine::create_opened(store, &label, &id, bp, files, &skip).await?;
    if snapshot.is_large() && !global.quiet {
        eprintln!("{}", snapshot_note(&snapshot));
    }
    let execution = engine::install(store, created, &options(global, &args.run)).await?;
    Ok(done(
        global,
        format!("deployment `{id}` installed (execution {execution})"),
    ))
}

/// The snapshot of a deploy's blueprint directory (`engine::snapshot_dir`) being taken on a
/// thread of its own, or taken already when no thread could be had.
enum Snapshotting {
    Thread(std::thread::JoinHandle<Taken>),
    Taken(Taken),
}

type Taken = Result<engine::snapshot::Snapshot, EngineError>;

impl Snapshotting {
    fn start(blueprint: &Path, skip: &[PathBuf]) -> Snapshotting {
        let (path, theirs) = (blueprint.to_path_buf(), skip.to_vec());
        match std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || engine::snapshot_dir(&path, &theirs))
        {
            Ok(thread) => Snapshotting::Thread(thread),
            Err(_) => Snapshotting::Taken(engine::snapshot_dir(blueprint, skip)),
        }
    }

    /// The snapshot (a blocking wait, as for the blueprint).
    fn wait(self) -> Taken {
        match self {
            Snapshotting::Thread(thread) => thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Snapshotting::Taken(taken) => taken,
        }
    }
}

/// A deploy's blueprint (inputs read, YAML parsed, compiled, planned) being opened on a
/// thread of its own while the runtime and the state store start, which touch neither. The
/// thread sends the result as soon as it has it and frees the parsed YAML after.
pub struct Opening {
    result: mpsc::Receiver<Opened>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type Opened = Result<crate::blueprint::Blueprint, EngineError>;

impl Opening {
    pub fn start(args: &DeployArgs) -> Opening {
        let (send, result) = mpsc::sync_channel(1);
        let (path, given) = (args.blueprint.clone(), args.inputs.clone());
        let opener = move || open(&path, &given, |r| drop(send.send(r)));
        match std::thread::Builder::new()
            .name("blueprint".into())
            .spawn(opener)
        {
            Ok(thread) => Opening {
                result,
                thread: Some(thread),
            },
            // A thread that cannot be had is reported as any other lack of resources.
            Err(e) => {
                let (send, result) = mpsc::sync_channel(1);
                let _ = send.send(Err(EngineError::Io(format!(
                    "cannot start a thread to open the blueprint: {e}"
                ))));
                Opening {
                    result,
                    thread: None,
                }
            }
        }
    }

    /// The result (a blocking wait: called where nothing else is to be done meanwhile).
    fn wait(self) -> Opened {
        match self.result.recv() {
            Ok(r) => r,
            // No result: the thread panicked, and so does this.
            Err(_) => match self.thread.map(std::thread::JoinHandle::join) {
                Some(Err(panic)) => std::panic::resume_unwind(panic),
                _ => Err(EngineError::Io("the blueprint was not opened".into())),
            },
        }
    }
}

fn open(path: &std::path::Path, given: &[String], ready: impl FnOnce(Opened)) {
    match inputs::parse_args(given) {
        Ok(given) => crate::blueprint::open_then(path, &given, |r| ready(r.map_err(Into::into))),
        Err(e) => ready(Err(EngineError::Blueprint(e.into()))),
    }
}

/// One line on what a large snapshot holds and how to make it smaller (sizes and paths only,
/// never contents).
fn snapshot_note(report: &engine::snapshot::Report) -> String {
    use engine::snapshot::{IGNORE_FILE, describe_largest, human_size};
    let new = if report.new_files == 0 {
        "nothing new: earlier deployments stored the same contents".to_string()
    } else {
        format!(
            "{} of it new in the state store",
            human_size(report.new_bytes)
        )
    };
    format!(
        "note: the deployment keeps {} files of {} from {} ({new}); the largest: {}. Exclude what deployments do not need in {} (gitignore syntax)",
        report.files,
        human_size(report.bytes),
        report.root.display(),
        describe_largest(report),
        report.root.join(IGNORE_FILE).display()
    )
}

/// The blueprint's directory name (`blueprints/hello/blueprint.yaml` → `hello`), else its stem.
fn default_id(path: &std::path::Path) -> String {
    let dir = std::fs::canonicalize(path).ok().and_then(|p| {
        p.parent()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned())
    });
    dir.or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "deployment".to_string())
}

pub async fn undeploy(
    store: &Store,
    global: &Global,
    args: UndeployArgs,
) -> Result<ExitCode, EngineError> {
    let execution = engine::undeploy(
        store,
        &args.id,
        args.ignore_failure,
        &options(global, &args.run),
    )
    .await?;
    Ok(done(
        global,
        format!(
            "deployment `{}` uninstalled and deleted (execution {execution})",
            args.id
        ),
    ))
}

pub async fn run(store: &Store, global: &Global, args: RunArgs) -> Result<ExitCode, EngineError> {
    let given = inputs::parse_args(&args.parameters)
        .map_err(|e| EngineError::Workflow(format!("parameters: {e}")))?;
    let params: Map<String, Json> = given.into_iter().map(|(k, g)| (k, g.value)).collect();
    let execution = engine::run(
        store,
        &args.id,
        &args.workflow,
        params,
        args.allow_custom_parameters,
        &options(global, &args.run),
    )
    .await?;
    Ok(done(
        global,
        format!(
            "workflow `{}` of `{}` finished (execution {execution})",
            args.workflow, args.id
        ),
    ))
}

pub async fn scale(
    store: &Store,
    global: &Global,
    args: ScaleArgs,
) -> Result<ExitCode, EngineError> {
    let amount: engine::scale::Amount = args.amount.parse().map_err(EngineError::Workflow)?;
    let mut extra = Map::new();
    extra.insert(
        "include_instances".to_string(),
        Json::from(args.include.clone()),
    );
    extra.insert(
        "exclude_instances".to_string(),
        Json::from(args.exclude.clone()),
    );
    extra.insert(
        "ignore_failure".to_string(),
        Json::Bool(args.ignore_failure),
    );
    extra.insert(
        "rollback_if_failed".to_string(),
        Json::Bool(!args.no_rollback),
    );
    let execution = engine::scale(
        store,
        &args.id,
        &args.target,
        amount,
        extra,
        &options(global, &args.run),
    )
    .await?;
    Ok(done(
        global,
        format!(
            "scaled `{}` of `{}` (execution {execution})",
            args.target, args.id
        ),
    ))
}

pub async fn heal(store: &Store, global: &Global, args: HealArgs) -> Result<ExitCode, EngineError> {
    let mut params = Map::new();
    params.insert(
        "node_instance_id".to_string(),
        Json::String(args.instance.clone()),
    );
    let execution = engine::run(
        store,
        &args.id,
        "heal",
        params,
        false,
        &options(global, &args.run),
    )
    .await?;
    Ok(done(
        global,
        format!(
            "healed `{}` of `{}` (execution {execution})",
            args.instance, args.id
        ),
    ))
}

pub async fn resume(store: &Store, global: &Global, args: IdArgs) -> Result<ExitCode, EngineError> {
    let execution = engine::resume(store, &args.id, &options(global, &args.run)).await?;
    Ok(done(
        global,
        format!("execution {execution} of `{}` finished", args.id),
    ))
}

pub async fn cancel(store: &Store, args: IdArgs) -> Result<ExitCode, EngineError> {
    let execution = engine::cancel(store, &args.id).await?;
    eprintln!("execution {execution} of `{}` is being cancelled", args.id);
    Ok(ExitCode::SUCCESS)
}
