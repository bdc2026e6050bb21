//! A deployment's life across commands and processes: many commands at once on one state
//! file, an undeploy killed and resumed, and workflows refused on a deployment that is not
//! installed. The real binary, a real SQLite file, real SIGKILL.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{Sandbox, stderr};

/// Every instance of `vm` (2) runs `bp/scripts/op.sh`, which appends `<instance> <operation>`
/// to ops.log, sleeping `SLEEP` seconds first when that file exists. The blueprint has a
/// directory of its own: its snapshot must not take in the log other deployments write.
fn sandbox(name: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    std::fs::create_dir_all(sb.dir.join("bp/scripts")).unwrap();
    sb.file(
        "bp/scripts/op.sh",
        &format!(
            "#!/bin/bash\nset -e\n[ -f '{dir}/SLEEP' ] && sleep \"$(cat '{dir}/SLEEP')\"\necho \"$(ctx instance id) $(ctx operation name)\" >> '{dir}/ops.log'\n",
            dir = sb.dir.display()
        ),
    );
    sb.file(
        "bp/blueprint.yaml",
        "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  vm:\n    type: cloudify.nodes.Compute\n    capabilities: { scalable: { properties: { default_instances: 2 } } }\n    interfaces:\n      cloudify.interfaces.lifecycle:\n        create: scripts/op.sh\n        delete: scripts/op.sh\n",
    );
    sb
}

fn vm_count(sb: &Sandbox, id: &str) -> usize {
    sb.instances(id).len()
}

/// Eight processes deploy, scale out, scale in and undeploy eight deployments of one state
/// file at once, three rounds: every command succeeds and nothing is lost.
#[test]
fn concurrent_commands_on_different_deployments_all_succeed() {
    let sb = sandbox("concurrent");
    for round in 0..3 {
        let workers: Vec<_> = (0..8)
            .map(|k| {
                let id = format!("d{k}");
                let steps: Vec<Vec<String>> = [
                    vec!["deploy", "bp/blueprint.yaml", "-d", &id],
                    vec!["scale", &id, "vm", "+2"],
                    vec!["scale", &id, "vm", "-1"],
                ]
                .iter()
                .map(|s| s.iter().map(|a| a.to_string()).collect())
                .collect();
                let commands: Vec<Command> = steps
                    .iter()
                    .map(|s| {
                        let args: Vec<&str> = s.iter().map(String::as_str).collect();
                        sb.command(&args)
                    })
                    .collect();
                std::thread::spawn(move || {
                    let mut failures = Vec::new();
                    for mut c in commands {
                        let out = c.output().unwrap();
                        if !out.status.success() {
                            failures.push(format!("{c:?}: {}", stderr(&out)));
                        }
                    }
                    failures
                })
            })
            .collect();
        let failures: Vec<String> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        assert!(failures.is_empty(), "round {round}: {failures:#?}");
        for k in 0..8 {
            assert_eq!(vm_count(&sb, &format!("d{k}")), 3, "round {round}, d{k}");
        }
        let undeploys: Vec<_> = (0..8)
            .map(|k| sb.spawn(&["undeploy", &format!("d{k}")]))
            .collect();
        for mut u in undeploys {
            assert!(
                u.wait().unwrap().success(),
                "round {round}: an undeploy failed"
            );
        }
        assert!(sb.deployment_ids().is_empty(), "round {round}");
    }
    // 3 rounds × 8 deployments × (2 + 2 created, 1 + 3 deleted).
    let log = sb.log();
    let count = |op: &str| log.iter().filter(|l| l.ends_with(op)).count();
    assert_eq!(count("lifecycle.create"), 3 * 8 * 4);
    assert_eq!(count("lifecycle.delete"), 3 * 8 * 4);
}

/// Kill `windlass ARGS` once ops.log has `lines` lines (its scripts sleeping meanwhile).
fn kill_after(sb: &Sandbox, args: &[&str], lines: usize) {
    let mut child = sb
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while sb.log().len() < lines {
        assert!(start.elapsed() < Duration::from_secs(30), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
fn a_resumed_undeploy_deletes_the_deployment() {
    let sb = sandbox("undeploy-resume");
    sb.ok(&["deploy", "bp/blueprint.yaml", "-d", "d"]);
    sb.file("SLEEP", "1");
    sb.clear_log();
    kill_after(&sb, &["undeploy", "d", "--parallelism", "1"], 1);
    // Killed mid-uninstall: the deployment is there, and says how to finish.
    assert_eq!(sb.deployment_ids(), ["d"]);
    let refused = sb.err(&["scale", "d", "vm", "+1"]);
    assert!(refused.contains("is not installed"), "{refused}");
    assert!(refused.contains("windlass resume d"), "{refused}");
    std::fs::remove_file(sb.dir.join("SLEEP")).unwrap();
    sb.ok(&["resume", "d"]);
    assert!(
        sb.deployment_ids().is_empty(),
        "resume finished the undeploy"
    );
    // Both instances deleted. The operation the kill interrupted may have finished its script
    // before the engine recorded it; resume then runs it again (at least once), but nothing
    // that was recorded done runs twice.
    let deletes: Vec<String> = sb
        .log()
        .into_iter()
        .filter(|l| l.ends_with("lifecycle.delete"))
        .collect();
    let mut deleted: Vec<&str> = deletes.iter().filter_map(|l| l.split(' ').next()).collect();
    deleted.sort();
    deleted.dedup();
    assert_eq!(deleted.len(), 2, "{deletes:?}");
    assert!(deletes.len() <= 3, "{deletes:?}");
    // The id is free again.
    sb.ok(&["deploy", "bp/blueprint.yaml", "-d", "d"]);
}

#[test]
fn workflows_other_than_install_refuse_a_deployment_that_is_not_installed() {
    let sb = sandbox("not-installed");
    sb.ok(&["deploy", "bp/blueprint.yaml", "-d", "d"]);
    sb.ok(&["run", "d", "uninstall"]);
    for args in [
        vec!["scale", "d", "vm", "+1"],
        vec![
            "run",
            "d",
            "scale",
            "-p",
            "scalable_entity_name=vm",
            "-p",
            "delta=1",
        ],
        vec![
            "run",
            "d",
            "execute_operation",
            "-p",
            "operation=cloudify.interfaces.lifecycle.create",
        ],
    ] {
        let e = sb.err(&args);
        assert!(
            e.contains("not installed")
                && e.contains("it was uninstalled")
                && e.contains("windlass run d install"),
            "{args:?}: {e}"
        );
    }
    // Nothing ran, nothing changed: both instances are deleted, none added.
    let states: Vec<String> = sb
        .instances("d")
        .iter()
        .map(|i| i["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(states, ["deleted", "deleted"]);
    // Installing again makes it scalable again.
    sb.ok(&["run", "d", "install"]);
    sb.ok(&["scale", "d", "vm", "+1"]);
    assert_eq!(vm_count(&sb, "d"), 3);
}

/// Deploy `d` and SIGKILL the deploy once its first operation ran: an install is left
/// interrupted, its scripts no longer sleeping.
fn interrupted_install(sb: &Sandbox) {
    sb.file("SLEEP", "1");
    let args = [
        "deploy",
        "bp/blueprint.yaml",
        "-d",
        "d",
        "--parallelism",
        "1",
    ];
    kill_after(sb, &args, 1);
    std::fs::remove_file(sb.dir.join("SLEEP")).unwrap();
}

#[test]
fn a_killed_install_must_be_resumed_before_anything_else_runs() {
    let sb = sandbox("install-killed");
    interrupted_install(&sb);
    // The interrupted install is reported first (the deployment is busy with it) …
    let e = sb.err(&["scale", "d", "vm", "+1"]);
    assert!(
        e.contains("install has not finished") || e.contains("interrupted"),
        "{e}"
    );
    sb.ok(&["resume", "d"]);
    // The killed attempt's working directory went with it.
    let executions = sb.json(&["executions", "d", "--json"]);
    let install = executions.as_array().unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let left: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("windlass-{install}-")))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // … and once it finished, the deployment scales.
    sb.ok(&["scale", "d", "vm", "+1"]);
    assert_eq!(vm_count(&sb, "d"), 3);
}

/// An interrupted execution whose pid now belongs to another process (pids are reused) is
/// interrupted, not busy: `resume` takes it over. The process is told by its start time.
#[test]
fn a_reused_pid_does_not_make_a_dead_execution_busy() {
    let sb = sandbox("reused-pid");
    interrupted_install(&sb);
    // The dead engine's pid, as if another process had been given it since.
    let mut other = Command::new("sleep").arg("30").spawn().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}", sb.dir.join("state.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query("UPDATE executions SET pid = ? WHERE status = 'started'")
            .bind(i64::from(other.id()))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
    let resumed = sb.run(&["resume", "d"]);
    other.kill().unwrap();
    other.wait().unwrap();
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_eq!(vm_count(&sb, "d"), 2);
}
