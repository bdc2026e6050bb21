//! The command line: argument parsing, one file per command, and the only place where errors
//! are rendered for people (miette, with source snippets) and exit codes chosen.
//!
//! Exit codes: 0 success, 1 blueprint invalid, 2 usage or I/O error. Data goes to stdout,
//! errors to stderr.

mod deployments;
mod inspect;
mod plan;
mod rules;
mod secrets;
mod serve;
mod tokens;
mod validate;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use miette::{GraphicalReportHandler, GraphicalTheme};

use crate::blueprint::{self, Blueprint, Error};
use crate::dsl::inputs;
use crate::engine::EngineError;
use crate::store::{Connections, Store};

#[derive(Debug, Parser)]
#[command(
    name = "windlass",
    version,
    about = "Plan and run Cloudify-DSL blueprints"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: Global,
}

/// Options every command takes.
#[derive(Debug, Clone, clap::Args)]
struct Global {
    /// State store: a SQLite file path [default: $XDG_DATA_HOME/windlass/state.db].
    #[arg(long, global = true, env = "WINDLASS_STATE", value_name = "PATH")]
    state: Option<String>,
    /// Show nothing but errors and requested data.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Show every event, also on a terminal (no progress bar).
    #[arg(short, long, global = true)]
    verbose: bool,
    /// The address `%{management_ip}` stands for in Kubernetes descriptor overrides
    /// [default: $WINDLASS_MANAGEMENT_IP, else this machine's default-route address].
    #[arg(long, global = true, value_name = "IP")]
    management_ip: Option<std::net::IpAddr>,
    /// A plugin directory (`DIR/NAME/plugin.yaml`, searched before the shipped plugins);
    /// repeatable, in search order [env: WINDLASS_PLUGINS, colon-separated].
    #[arg(
        long = "plugins",
        global = true,
        env = crate::load::PLUGINS_ENV,
        value_name = "DIR",
        value_delimiter = ':',
        hide_env = true
    )]
    plugins: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse and validate a blueprint; exit 0 when valid, 1 when not.
    Validate(validate::Args),
    /// Show the node-instance plan of a blueprint; touches nothing.
    Plan(plan::Args),
    /// Create a deployment from a blueprint and run `install`.
    Deploy(deployments::DeployArgs),
    /// Run `uninstall`, then delete the deployment.
    Undeploy(deployments::UndeployArgs),
    /// Run a workflow (built-in or declared in the blueprint) on a deployment.
    Run(deployments::RunArgs),
    /// Add or remove instances of a node or scaling group: AMOUNT is +N, -N or an absolute N.
    Scale(deployments::ScaleArgs),
    /// Reinstall a failing node instance's host subtree (or run its heal operations).
    Heal(deployments::HealArgs),
    /// The workflows a deployment can run, with their parameters.
    Workflows(inspect::IdJsonArgs),
    /// Continue the deployment's interrupted, failed or cancelled execution.
    Resume(deployments::IdArgs),
    /// Stop the deployment's running execution.
    Cancel(deployments::IdArgs),
    /// List deployments.
    List(inspect::ListArgs),
    /// A deployment's instances by state and its executions' outcome.
    Status(inspect::IdJsonArgs),
    /// A deployment's node instances.
    Instances(inspect::IdJsonArgs),
    /// A deployment's outputs, with runtime attributes resolved.
    Outputs(inspect::IdJsonArgs),
    /// A deployment's events.
    Events(inspect::EventsArgs),
    /// A deployment's executions.
    Executions(inspect::IdJsonArgs),
    /// Run the manager: REST API, metrics intake (HTTP, Graphite, AMQP) and policies.
    Serve(serve::ServeArgs),
    /// A deployment's policies: live state and last decisions, as `windlass serve` saved them.
    Policies(inspect::IdJsonArgs),
    /// Bearer tokens of the REST API: create (prints the token), list, revoke.
    Tokens(tokens::TokensArgs),
    /// Autoscaling rules (scale on a metric without editing the blueprint): create, list, delete.
    Rules(rules::RulesArgs),
    /// Secrets for `get_secret`, encrypted in the state store: set, get, list, delete.
    Secrets(secrets::SecretsArgs),
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
        let bp = blueprint::open(&self.blueprint, &given)?;
        for w in &bp.warnings {
            eprintln!("warning: {w}");
        }
        Ok(bp)
    }
}

pub fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let argv0 = args.next().map(PathBuf::from).unwrap_or_default();
    if argv0.file_name().is_some_and(|n| n == "ctx") {
        return crate::plugins::ctx::client_main(
            args.map(|a| a.to_string_lossy().into_owned()).collect(),
        );
    }
    if let Some(first) = args.next() {
        // The guard the engine runs each script under (`plugins::guard`); not a command.
        if first == crate::plugins::guard::GUARD_ARG {
            return crate::plugins::guard::main(args.collect());
        }
    }
    // `deploy`, `validate` and `plan` load a blueprint, which nearly always imports the
    // built-in types: their parse starts now, while the arguments are parsed (0.5 ms) and the
    // store opens, and so does the parse of the file the arguments seem to name, which the load
    // takes if clap agrees. (A guess that is wrong only costs a parse nobody takes.)
    let raw: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let Some(at) = raw
        .iter()
        .position(|a| a == "deploy" || a == "validate" || a == "plan")
    {
        crate::load::prefetch_builtin_types();
        if let Some(path) = first_positional(&raw[at + 1..]) {
            crate::load::EarlyMain::start(path);
        }
    }
    let cli = Cli::parse();
    let global = cli.global;
    if let Some(ip) = global.management_ip {
        // What `template::resolve_management_ip` reads, for the operations of this process.
        // SAFETY: the other threads that may exist yet parse text compiled into the binary
        // (`load::prefetch_builtin_types`) and read and parse one file (`load::EarlyMain`),
        // and the runtime is built per command, below: nothing reads the environment while it
        // changes.
        unsafe { std::env::set_var(crate::template::MANAGEMENT_IP_ENV, ip.to_string()) };
    }
    // Absolute, so that the path means the same wherever a later step runs.
    let cwd = std::env::current_dir().unwrap_or_default();
    crate::load::PluginPath::install(crate::load::PluginPath {
        dirs: global
            .plugins
            .iter()
            .filter(|d| !d.as_os_str().is_empty())
            .map(|d| cwd.join(d))
            .collect(),
    });
    match cli.command {
        Command::Validate(args) => validate::run(args, global.verbose),
        Command::Plan(args) => plan::run(args),
        Command::Deploy(args) => {
            let opening = deployments::Opening::start(&args);
            with_store(&global, |store, g| {
                Box::pin(deployments::deploy(store, g, args, opening))
            })
        }
        Command::Undeploy(args) => with_store(&global, |store, g| {
            Box::pin(deployments::undeploy(store, g, args))
        }),
        Command::Run(args) => with_store(&global, |store, g| {
            Box::pin(deployments::run(store, g, args))
        }),
        Command::Scale(args) => with_store(&global, |store, g| {
            Box::pin(deployments::scale(store, g, args))
        }),
        Command::Heal(args) => with_store(&global, |store, g| {
            Box::pin(deployments::heal(store, g, args))
        }),
        Command::Workflows(args) => with_store(&global, |store, _| {
            Box::pin(inspect::workflows(store, args))
        }),
        Command::Resume(args) => with_store(&global, |store, g| {
            Box::pin(deployments::resume(store, g, args))
        }),
        Command::Cancel(args) => with_store(&global, |store, _| {
            Box::pin(deployments::cancel(store, args))
        }),
        Command::List(args) => with_store(&global, |store, _| Box::pin(inspect::list(store, args))),
        Command::Status(args) => {
            with_store(&global, |store, _| Box::pin(inspect::status(store, args)))
        }
        Command::Instances(args) => with_store(&global, |store, _| {
            Box::pin(inspect::instances(store, args))
        }),
        Command::Outputs(args) => {
            with_store(&global, |store, _| Box::pin(inspect::outputs(store, args)))
        }
        Command::Events(args) => {
            with_store(&global, |store, _| Box::pin(inspect::events(store, args)))
        }
        Command::Executions(args) => with_store(&global, |store, _| {
            Box::pin(inspect::executions(store, args))
        }),
        Command::Serve(args) => with_store_connections(&global, Connections::Shared, |store, g| {
            Box::pin(serve::serve(store, g, args))
        }),
        Command::Policies(args) => {
            with_store(&global, |store, _| Box::pin(serve::policies(store, args)))
        }
        Command::Tokens(args) => with_store(&global, |store, _| Box::pin(tokens::run(store, args))),
        Command::Rules(args) => {
            with_store(&global, |store, g| Box::pin(rules::run(store, g, args)))
        }
        Command::Secrets(args) => {
            with_store(&global, |store, g| Box::pin(secrets::run(store, g, args)))
        }
    }
}

type CommandFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<ExitCode, EngineError>> + 'a>>;

/// Open the store on a small runtime and run one command; errors are rendered here.
fn with_store(
    global: &Global,
    command: impl for<'a> FnOnce(&'a Store, &'a Global) -> CommandFuture<'a>,
) -> ExitCode {
    with_store_connections(global, Connections::Single, command)
}

/// [`with_store`] with the store's connections chosen (the manager shares several).
fn with_store_connections(
    global: &Global,
    connections: Connections,
    command: impl for<'a> FnOnce(&'a Store, &'a Global) -> CommandFuture<'a>,
) -> ExitCode {
    let runtime = match connections {
        // One command: its tasks wait on operations, the store and the network, and one thread
        // runs them all without handing work between threads (a deploy of 1,000 instances
        // switched threads 215 times on two workers, 85 times on one).
        Connections::Single => tokio::runtime::Builder::new_current_thread(),
        // The manager serves requests and runs workflows at once.
        Connections::Shared => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
    }
    .enable_all()
    .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(async {
        let location = global
            .state
            .clone()
            .unwrap_or_else(crate::store::default_location);
        let store = match Store::open_with(&location, connections).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        match command(&store, global).await {
            Ok(code) => code,
            Err(e) => report_engine(&e),
        }
    });
    match connections {
        // The command is done: what is left of its runtime (an idle thread that serialized
        // something for it) goes with the process, without being waited for.
        Connections::Single => runtime.shutdown_background(),
        Connections::Shared => drop(runtime),
    }
    code
}

/// The first positional argument of a subcommand's arguments `args`, skipping options and the
/// value of each option that takes one as a separate argument: what clap will most likely take
/// for the blueprint. Only a guess, checked against clap's parse before it is used.
fn first_positional(args: &[std::ffi::OsString]) -> Option<PathBuf> {
    const VALUED: &[&str] = &[
        "--state",
        "--management-ip",
        "--plugins",
        "-d",
        "--deployment-id",
        "-i",
        "--inputs",
        "--parallelism",
        "--task-retries",
        "--retry-interval",
        "--format",
    ];
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--") => return args.next().map(PathBuf::from),
            Some(option) if option.starts_with('-') && option.len() > 1 => {
                if VALUED.contains(&option) {
                    args.next();
                }
            }
            _ => return Some(PathBuf::from(arg)),
        }
    }
    None
}

/// Print an engine error; returns the exit code it calls for.
fn report_engine(err: &EngineError) -> ExitCode {
    match err {
        EngineError::Blueprint(e) => report(e),
        EngineError::Failed { .. } | EngineError::Cancelled { .. } | EngineError::Plugins(_) => {
            eprintln!("error: {err}");
            if let EngineError::Failed { deployment, .. } = err {
                eprintln!(
                    "hint: fix the cause, then `windlass resume {deployment}`; or `windlass undeploy {deployment}` to tear down what was created"
                );
            }
            ExitCode::from(1)
        }
        _ => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn guess(args: &str) -> Option<PathBuf> {
        let args: Vec<std::ffi::OsString> = args.split(' ').map(Into::into).collect();
        first_positional(&args)
    }

    #[test]
    fn the_guessed_blueprint_is_the_first_positional_argument() {
        let bp = Some(PathBuf::from("bp.yaml"));
        assert_eq!(guess("bp.yaml -d d"), bp);
        assert_eq!(guess("-d d bp.yaml"), bp);
        assert_eq!(
            guess("-q --state s.db -i a=1 --inputs b=2 --parallelism 4 bp.yaml"),
            bp
        );
        assert_eq!(guess("--inputs=a=1 -v bp.yaml --task-retries 2"), bp);
        assert_eq!(guess("-- -odd.yaml"), Some(PathBuf::from("-odd.yaml")));
        assert_eq!(guess("-d d"), None);
    }
}
