//! The plugin path and external plugins, through the real binary: where `plugin:NAME` and
//! relative imports resolve (`--plugins`, `WINDLASS_PLUGINS`, `validate -v`), and operations run
//! by a plugin's `windlass-plugin` (inputs on stdin, `ctx`, return value, failures, retries,
//! refusal without the executable, and no process left when windlass is killed).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value as Json, json};

mod common;

use common::procs::{MARK, Reaper, marked, sigkill, wait_until_none_left};
use common::{Sandbox, stderr};

/// Write `rel` under the sandbox, creating directories; `executable` sets mode 755.
fn write(sb: &Sandbox, rel: &str, text: &str, executable: bool) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = sb.dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    if executable {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path
}

/// A plugin `DIR/NAME/plugin.yaml` declaring plugin `plugin` with node type `TYPE` whose
/// create and configure map to `plugin.tasks.create` / `plugin.tasks.configure`.
fn plugin_yaml(plugin: &str, node_type: &str) -> String {
    format!(
        "plugins:\n  {plugin}:\n    executor: central_deployment_agent\n    properties:\n      greeting: {{ type: string, value: Hello }}\n      tries: {{ type: integer, value: 1 }}\nnode_types:\n  {node_type}:\n    derived_from: cloudify.nodes.Root\n    properties:\n      who: {{ default: nobody }}\n    interfaces:\n      cloudify.interfaces.lifecycle:\n        create:\n          implementation: {plugin}.tasks.create\n          inputs:\n            who: {{ default: {{ get_property: [SELF, who] }} }}\n            n: {{ default: 7 }}\n        configure: {plugin}.tasks.configure\n"
    )
}

fn blueprint(version: &str, imports: &str, nodes: &str) -> String {
    format!(
        "tosca_definitions_version: cloudify_dsl_{version}\nimports:\n  - cloudify/types/types.yaml\n{imports}node_templates:\n{nodes}"
    )
}

/// `validate -v blueprint.yaml ARGS`, which must find the blueprint `valid` or not; its stdout
/// (the imports it followed) and stderr.
fn validate_v(sb: &Sandbox, args: &[&str], valid: bool) -> (String, String) {
    let mut all = vec!["validate", "-v", "blueprint.yaml"];
    all.extend_from_slice(args);
    let out = sb.run(&all);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr(&out),
    );
    assert_eq!(
        out.status.success(),
        valid,
        "validate {args:?}:\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

fn dir_arg(sb: &Sandbox, rel: &str) -> String {
    sb.dir.join(rel).display().to_string()
}

#[test]
fn a_plugin_directory_comes_before_the_shipped_plugins() {
    let sb = Sandbox::new("pp-order");
    // A `noop` plugin of our own: its type file replaces the shipped one.
    write(
        &sb,
        "plugs/noop/plugin.yaml",
        "plugins:\n  noop:\n    executor: central_deployment_agent\nnode_types:\n  mine.Marker:\n    derived_from: cloudify.nodes.Root\n    interfaces:\n      cloudify.interfaces.lifecycle:\n        create: noop.anything\n",
        false,
    );
    sb.file(
        "blueprint.yaml",
        &blueprint("1_3", "  - plugin:noop\n", "  m:\n    type: mine.Marker\n"),
    );
    let plugs = dir_arg(&sb, "plugs");
    let (out, _) = validate_v(&sb, &["--plugins", &plugs], true);
    assert!(
        out.contains("blueprint.yaml:4:5: import `plugin:noop` -> plugs/noop/plugin.yaml"),
        "{out}"
    );
    // Without a `windlass-plugin` of its own, a plugin windlass ships keeps running as shipped.
    sb.ok(&["--plugins", &plugs, "deploy", "blueprint.yaml", "-d", "d"]);
    assert_eq!(sb.instances("d")[0]["state"], json!("started"));
    // Without the plugin path, the shipped file is read, which has no `mine.Marker`.
    let (out, err) = validate_v(&sb, &[], false);
    assert!(
        out.contains("import `plugin:noop` -> <builtin>/plugins/noop/plugin.yaml"),
        "{out}"
    );
    assert!(err.contains("unknown type `mine.Marker`"), "{err}");
}

#[test]
fn the_first_directory_that_has_the_plugin_wins_and_the_environment_sets_the_path() {
    let sb = Sandbox::new("pp-env");
    write(&sb, "a/p/plugin.yaml", &plugin_yaml("p", "a.Type"), false);
    write(&sb, "b/p/plugin.yaml", &plugin_yaml("p", "b.Type"), false);
    sb.file(
        "blueprint.yaml",
        &blueprint("1_3", "  - plugin:p\n", "  n:\n    type: b.Type\n"),
    );
    let path = format!("{}:{}", dir_arg(&sb, "missing"), dir_arg(&sb, "b"));
    let out = sb
        .command(&["validate", "-v", "blueprint.yaml"])
        .env("WINDLASS_PLUGINS", &path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("-> b/p/plugin.yaml"));
    // `--plugins` (repeatable, in order) takes the place of the environment's list.
    let out = sb
        .command(&["validate", "-v", "blueprint.yaml", "--plugins"])
        .arg(dir_arg(&sb, "a"))
        .args(["--plugins", &dir_arg(&sb, "b")])
        .env("WINDLASS_PLUGINS", &path)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a/p comes first and has no b.Type");
    assert!(String::from_utf8_lossy(&out.stdout).contains("-> a/p/plugin.yaml"));
}

#[test]
fn version_suffixes_and_the_dict_form_with_properties() {
    let sb = Sandbox::new("pp-forms");
    write(
        &sb,
        "plugs/p/plugin.yaml",
        &plugin_yaml("p", "p.Type"),
        false,
    );
    write(
        &sb,
        "plugs/q/plugin.yaml",
        &plugin_yaml("q", "q.Type"),
        false,
    );
    let plugs = dir_arg(&sb, "plugs");
    let nodes = "  n:\n    type: p.Type\n  m:\n    type: q.Type\n";
    sb.file(
        "blueprint.yaml",
        &blueprint(
            "1_5",
            "  - plugin:p?version= >=1.0\n  - plugin:q?version=2.0:\n      greeting: Hi\n      tries: 3\n",
            nodes,
        ),
    );
    let (out, _) = validate_v(&sb, &["--plugins", &plugs], true);
    assert!(out.contains("import `plugin:p?version= >=1.0` -> plugs/p/plugin.yaml"));
    assert!(out.contains("import `plugin:q?version=2.0` -> plugs/q/plugin.yaml"));

    // As Cloudify: properties on an import are 1_5's, must be declared, and of their type.
    sb.file(
        "blueprint.yaml",
        &blueprint(
            "1_4",
            "  - plugin:p\n  - plugin:q:\n      greeting: Hi\n",
            nodes,
        ),
    );
    let (_, err) = validate_v(&sb, &["--plugins", &plugs], false);
    assert!(
        err.contains("properties on an import are not supported in cloudify_dsl_1_4"),
        "{err}"
    );
    sb.file(
        "blueprint.yaml",
        &blueprint(
            "1_5",
            "  - plugin:p\n  - plugin:q:\n      greting: Hi\n      tries: [1]\n",
            nodes,
        ),
    );
    let (_, err) = validate_v(&sb, &["--plugins", &plugs], false);
    assert!(
        err.contains("plugin `q` has no property `greting`"),
        "{err}"
    );
    assert!(err.contains("did you mean `greeting`"), "{err}");
    assert!(
        err.contains("property `tries` of plugin `q` must be of type integer, found a list"),
        "{err}"
    );
}

#[test]
fn a_relative_import_not_beside_its_file_is_looked_up_in_the_plugin_directories() {
    let sb = Sandbox::new("pp-relative");
    write(
        &sb,
        "plugs/shared/types.yaml",
        "node_types:\n  shared.Type:\n    derived_from: cloudify.nodes.Root\n",
        false,
    );
    // Cloudify's resources root tries `name_<version>.yaml` first.
    write(
        &sb,
        "plugs/shared/more_1_4.yaml",
        "node_types:\n  more.Type:\n    derived_from: cloudify.nodes.Root\n",
        false,
    );
    sb.file(
        "blueprint.yaml",
        &blueprint(
            "1_4",
            "  - shared/types.yaml\n  - shared/more.yaml\n",
            "  s:\n    type: shared.Type\n  t:\n    type: more.Type\n",
        ),
    );
    let plugs = dir_arg(&sb, "plugs");
    let (out, _) = validate_v(&sb, &["--plugins", &plugs], true);
    assert!(
        out.contains("import `shared/types.yaml` -> plugs/shared/types.yaml"),
        "{out}"
    );
    assert!(
        out.contains("import `shared/more.yaml` -> plugs/shared/more_1_4.yaml"),
        "{out}"
    );
    // A file beside the importing one wins over the plugin directories.
    write(
        &sb,
        "shared/types.yaml",
        "node_types:\n  shared.Type:\n    derived_from: cloudify.nodes.Root\n",
        false,
    );
    let (out, _) = validate_v(&sb, &["--plugins", &plugs], true);
    assert!(
        out.contains("import `shared/types.yaml` -> shared/types.yaml"),
        "{out}"
    );
}

#[test]
fn a_missing_plugin_names_every_directory_searched() {
    let sb = Sandbox::new("pp-missing");
    std::fs::create_dir_all(sb.dir.join("one")).unwrap();
    std::fs::create_dir_all(sb.dir.join("two")).unwrap();
    sb.file(
        "blueprint.yaml",
        &blueprint(
            "1_3",
            "  - plugin:nowhere?version=1.0\n  - lost/types.yaml\n",
            "  n:\n    type: cloudify.nodes.Root\n",
        ),
    );
    let (one, two) = (dir_arg(&sb, "one"), dir_arg(&sb, "two"));
    let (_, err) = validate_v(&sb, &["--plugins", &one, "--plugins", &two], false);
    assert!(
        err.contains("plugin `nowhere` is neither on the plugin path nor shipped with windlass"),
        "{err}"
    );
    for dir in [&one, &two] {
        assert!(err.contains(&format!("{dir}/nowhere/plugin.yaml")), "{err}");
        assert!(err.contains(&format!("{dir}/lost/types.yaml")), "{err}");
    }
    assert!(err.contains("shipped plugins: script"), "{err}");
    let (_, err) = validate_v(&sb, &[], false);
    assert!(
        err.contains("no plugin directories are set (`--plugins DIR` or WINDLASS_PLUGINS)"),
        "{err}"
    );
}

/// The example of `examples/external-plugin`, deployed as its README says.
#[test]
fn the_example_plugin_deploys_with_ctx_runtime_properties_retries_and_a_return_value() {
    let sb = Sandbox::new("pp-example");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/external-plugin");
    let plugins = example.join("plugins").display().to_string();
    let bp = example.join("blueprint.yaml").display().to_string();
    sb.ok(&[
        "--plugins",
        &plugins,
        "deploy",
        &bp,
        "-d",
        "greet",
        "--retry-interval",
        "0",
    ]);
    let instances = sb.instances("greet");
    assert_eq!(instances.len(), 1);
    assert_eq!(
        instances[0]["runtime_properties"],
        json!({"greeting": "Hi, world!", "configure_tries": 2, "configured": true})
    );
    assert_eq!(
        sb.json(&["outputs", "greet", "--json"]),
        json!({"greeting": "Hi, world!"})
    );
    let events = sb.ok(&["events", "greet"]);
    assert!(events.contains("info: greeting world"), "{events}");
    assert!(
        events.contains("succeeded, returned {\"greeted\":\"world\"}"),
        "{events}"
    );
    assert!(
        events.contains("retry requested (the greeting is not ready yet)"),
        "{events}"
    );
    // The deployment keeps its copy of the plugin: no plugin path is needed any more.
    sb.ok(&["undeploy", "greet"]);
    assert!(!sb.ok(&["list"]).contains("greet"));
}

/// A shell `windlass-plugin` in `plugs/NAME/`, with the type file of [`plugin_yaml`].
fn shell_plugin(sb: &Sandbox, name: &str, body: &str) {
    write(
        sb,
        &format!("plugs/{name}/plugin.yaml"),
        &plugin_yaml(name, &format!("{name}.Type")),
        false,
    );
    write(
        sb,
        &format!("plugs/{name}/windlass-plugin"),
        &format!("#!/bin/bash\ncd '{}'\n{body}", sb.dir.display()),
        true,
    );
}

fn deploy_args<'a>(sb: &Sandbox, plugs: &'a str, id: &'a str) -> Vec<&'a str> {
    let _ = sb;
    vec![
        "--plugins",
        plugs,
        "deploy",
        "blueprint.yaml",
        "-d",
        id,
        "--retry-interval",
        "0",
    ]
}

#[test]
fn inputs_arrive_on_stdin_with_the_plugin_properties_and_argv_names_the_function() {
    let sb = Sandbox::new("pp-stdin");
    shell_plugin(
        &sb,
        "shp",
        "echo \"$1\" >> calls\nif [ \"$1\" = tasks.create ]; then\n  ctx -j instance runtime-properties inputs \"$(cat)\"\n  ctx -j instance runtime-properties props \"$WINDLASS_PLUGIN_PROPERTIES\"\n  ctx instance runtime-properties dir \"$(basename \"$WINDLASS_PLUGIN_DIR\")\"\n  echo 'not json'\nelse\n  echo '{\"last\": true}'\nfi\n",
    );
    sb.file(
        "blueprint.yaml",
        &blueprint(
            "1_5",
            "  - plugin:shp:\n      greeting: Hi\n",
            "  n:\n    type: shp.Type\n    properties:\n      who: you\n",
        ),
    );
    let plugs = dir_arg(&sb, "plugs");
    sb.ok(&deploy_args(&sb, &plugs, "d"));
    let props = &sb.instances("d")[0]["runtime_properties"];
    assert_eq!(props["inputs"], json!({"who": "you", "n": 7}));
    assert_eq!(props["props"], json!({"greeting": "Hi", "tries": 1}));
    assert_eq!(props["dir"], json!("shp"));
    let calls = std::fs::read_to_string(sb.dir.join("calls")).unwrap();
    assert_eq!(calls, "tasks.create\ntasks.configure\n");
    // A last line that is not JSON returns nothing; one that is, is the return value.
    let succeeded: Vec<(String, String)> = sb
        .ok(&["events", "d", "--json"])
        .lines()
        .map(|l| serde_json::from_str::<Json>(l).unwrap())
        .filter(|e| e["event_type"] == "task_succeeded")
        .map(|e| {
            (
                e["operation"].as_str().unwrap_or_default().to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        succeeded,
        vec![
            (
                "cloudify.interfaces.lifecycle.create".to_string(),
                "succeeded".to_string()
            ),
            (
                "cloudify.interfaces.lifecycle.configure".to_string(),
                "succeeded, returned {\"last\":true}".to_string()
            ),
        ]
    );
}

#[test]
fn a_failing_plugin_fails_its_operation_with_the_end_of_stderr_after_its_retries() {
    let sb = Sandbox::new("pp-fail");
    shell_plugin(
        &sb,
        "bad",
        "echo attempt >> attempts\necho 'first line' >&2\necho 'quota exceeded' >&2\nexit 3\n",
    );
    sb.file(
        "blueprint.yaml",
        &blueprint(
            "1_3",
            "  - plugin:bad\n",
            "  n:\n    type: bad.Type\n    interfaces:\n      cloudify.interfaces.lifecycle:\n        create:\n          implementation: bad.tasks.create\n          max_retries: 1\n",
        ),
    );
    let plugs = dir_arg(&sb, "plugs");
    let out = sb.run(&deploy_args(&sb, &plugs, "d"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("plugin `bad` (tasks.create) exited with code 3: first line | quota exceeded"),
        "{err}"
    );
    let attempts = std::fs::read_to_string(sb.dir.join("attempts")).unwrap();
    assert_eq!(attempts.lines().count(), 2, "one try and one retry");
}

#[test]
fn ctx_retry_and_abort_decide_as_for_scripts() {
    let sb = Sandbox::new("pp-retry");
    shell_plugin(
        &sb,
        "rt",
        "if [ \"$1\" = tasks.configure ]; then ctx abort-operation 'cannot configure'; exit 0; fi\nn=$(ctx instance runtime-properties n)\nctx -j instance runtime-properties n $(( ${n:-0} + 1 ))\nif [ -z \"$n\" ]; then ctx operation retry 'once more'; fi\n",
    );
    sb.file(
        "blueprint.yaml",
        &blueprint("1_3", "  - plugin:rt\n", "  n:\n    type: rt.Type\n"),
    );
    let plugs = dir_arg(&sb, "plugs");
    let out = sb.run(&deploy_args(&sb, &plugs, "d"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot configure"),
        "{}",
        stderr(&out)
    );
    // Retried although max_retries is 0 (`ctx operation retry` always retries); aborted once.
    assert_eq!(sb.instances("d")[0]["runtime_properties"]["n"], json!(2));
    let events = sb.ok(&["events", "d"]);
    assert!(events.contains("retry requested (once more)"), "{events}");
    assert!(events.contains("cannot configure"), "{events}");
}

#[test]
fn a_plugin_without_its_executable_validates_but_deploy_refuses_it_naming_every_operation() {
    let sb = Sandbox::new("pp-noexe");
    write(
        &sb,
        "plugs/lazy/plugin.yaml",
        &plugin_yaml("lazy", "lazy.Type"),
        false,
    );
    // Not executable: the same as absent.
    write(
        &sb,
        "plugs/lazy/windlass-plugin",
        "#!/bin/sh\ntouch ran\n",
        false,
    );
    sb.file(
        "blueprint.yaml",
        &blueprint(
            "1_3",
            "  - plugin:lazy\n",
            "  a:\n    type: lazy.Type\n  b:\n    type: lazy.Type\n",
        ),
    );
    let plugs = dir_arg(&sb, "plugs");
    validate_v(&sb, &["--plugins", &plugs], true);
    sb.ok(&["--plugins", &plugs, "plan", "blueprint.yaml"]);
    let out = sb.run(&deploy_args(&sb, &plugs, "d"));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for node in ["a", "b"] {
        for op in ["create", "configure"] {
            assert!(
                err.contains(&format!(
                    "node `{node}`: operation `cloudify.interfaces.lifecycle.{op}` uses the plugin `lazy` from"
                )),
                "{err}"
            );
        }
    }
    assert!(
        err.contains("which has no executable `windlass-plugin`"),
        "{err}"
    );
    assert_ne!(
        sb.run(&["status", "d"]).status.code(),
        Some(0),
        "nothing was stored"
    );
    assert!(!sb.dir.join("ran").exists());
}

#[test]
fn a_workflow_of_an_external_plugin_is_refused_clearly() {
    let sb = Sandbox::new("pp-workflow");
    shell_plugin(&sb, "wf", "exit 0\n");
    sb.file(
        "blueprint.yaml",
        &format!(
            "{}workflows:\n  custom: wf.workflows.custom\n",
            blueprint("1_3", "  - plugin:wf\n", "  n:\n    type: wf.Type\n")
        ),
    );
    let plugs = dir_arg(&sb, "plugs");
    sb.ok(&deploy_args(&sb, &plugs, "d"));
    let err = sb.refused(&["run", "d", "custom"]);
    assert!(
        err.contains("a workflow of the external plugin `wf`: windlass runs external plugins' operations, not their workflows"),
        "{err}"
    );
}

/// SIGKILL of windlass while plugin processes run (each with a background child): nothing of
/// the run survives or writes afterwards.
#[test]
fn sigkill_of_windlass_kills_every_plugin_process_and_its_children() {
    let sb = Sandbox::new("pp-kill");
    let mark = format!("pp-kill-{}", std::process::id());
    let _reaper = Reaper(mark.clone());
    shell_plugin(
        &sb,
        "slow",
        "[ -e resumed ] && exit 0\nid=$(ctx instance id)\necho \"begin $id\" >> ledger\n(sleep 3; echo \"late $id\" >> late.log) >/dev/null 2>&1 &\nsleep 60 >/dev/null 2>&1 &\nsleep 2\necho \"after $id\" >> ledger\n",
    );
    sb.file(
        "blueprint.yaml",
        &blueprint(
            "1_3",
            "  - plugin:slow\n",
            "  n:\n    type: slow.Type\n    instances: { deploy: 3 }\n",
        ),
    );
    let plugs = dir_arg(&sb, "plugs");
    let mut windlass = sb
        .command(&deploy_args(&sb, &plugs, "d"))
        .env(MARK, &mark)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ledger = || {
        std::fs::read_to_string(sb.dir.join("ledger"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    sb.wait_for(|| ledger().len() == 3);
    let running = marked(&mark);
    assert!(
        running
            .iter()
            .any(|(_, cmd)| cmd.contains("windlass-plugin tasks.create")),
        "the plugin runs: {running:#?}"
    );
    sigkill(i64::from(windlass.id()));
    windlass.wait().unwrap();
    wait_until_none_left(&mark);
    let at_kill = ledger();
    // Past every sleep of the plugin: had anything survived, it would have written by now.
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert_eq!(
        ledger(),
        at_kill,
        "a plugin process went on after windlass died"
    );
    assert!(!sb.dir.join("late.log").exists());
    // And `resume` in a new process, without the plugin path, finishes the install from the
    // deployment's copy of the plugin (the one on the path now fails).
    std::fs::write(
        sb.dir.join("plugs/slow/windlass-plugin"),
        "#!/bin/sh\nexit 9\n",
    )
    .unwrap();
    std::fs::write(sb.dir.join("resumed"), "").unwrap();
    sb.ok(&["resume", "d"]);
    let states: Vec<Json> = sb
        .instances("d")
        .iter()
        .map(|i| i["state"].clone())
        .collect();
    assert_eq!(states, vec![json!("started"); 3]);
}
