//! Process lifetime, through the real binary and real SIGKILLs: when windlass dies, the
//! operations it started die with it (the script's whole process tree), and `resume` stops what
//! an interrupted attempt left running before it runs the operation again.
//!
//! Every process of a run carries an environment marker (set on windlass, inherited by the
//! guards, scripts and their children), so the tests find them all in /proc.

use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::Duration;

mod common;

use common::procs::{MARK, Reaper, marked, running, sigkill, wait_until_none_left};
use common::{Sandbox, stderr};

fn ledger(sb: &Sandbox) -> Vec<String> {
    std::fs::read_to_string(sb.dir.join("ledger"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A deployment of `count` instances whose create runs `scripts/work.sh`.
fn blueprint(sb: &Sandbox, count: usize) {
    sb.file(
        "blueprint.yaml",
        &format!(
            "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  w:\n    type: cloudify.nodes.Root\n    instances: {{ deploy: {count} }}\n    interfaces:\n      cloudify.interfaces.lifecycle:\n        create: scripts/work.sh\n"
        ),
    );
}

/// `windlass deploy`, marked, optionally the leader of its own process group.
fn deploy(sb: &Sandbox, mark: &str, own_group: bool) -> Child {
    let mut command = sb.command(&["deploy", "blueprint.yaml", "-d", "d", "--parallelism", "4"]);
    command
        .env(MARK, mark)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if own_group {
        command.process_group(0);
    }
    command.spawn().unwrap()
}

/// Kill windlass while four scripts run (each with a background grandchild that writes later,
/// one that would run for a minute, and each going to call `ctx` after a sleep): nothing of
/// the run may remain or write.
fn a_killed_run_leaves_nothing_running(name: &str, kill_group: bool) {
    let sb = Sandbox::new(name);
    let mark = format!("{name}-{}", std::process::id());
    let _reaper = Reaper(mark.clone());
    sb.script(
        "scripts/work.sh",
        "id=$(ctx instance id)\necho \"begin $id $$\" >> ledger\n(sleep 3; echo \"late $id\" >> late.log) &\nsleep 60 &\nsleep 2\necho \"after $(ctx instance id)\" >> ledger\n",
    );
    blueprint(&sb, 4);
    let mut windlass = deploy(&sb, &mark, kill_group);
    sb.wait_for(|| ledger(&sb).len() == 4);
    assert!(
        marked(&mark).len() > 4,
        "the scripts and their children run: {:#?}",
        marked(&mark)
    );
    if kill_group {
        sigkill(-i64::from(windlass.id()));
    } else {
        sigkill(i64::from(windlass.id()));
    }
    windlass.wait().unwrap();
    wait_until_none_left(&mark);
    let at_kill = ledger(&sb);
    // Past every sleep of the scripts: had anything survived, it would have written by now.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(ledger(&sb), at_kill, "a script went on after windlass died");
    assert!(
        !sb.dir.join("late.log").exists(),
        "a script's child wrote after windlass died: {:?}",
        std::fs::read_to_string(sb.dir.join("late.log"))
    );
}

#[test]
fn sigkill_of_windlass_kills_every_running_script_and_its_children() {
    a_killed_run_leaves_nothing_running("life-pid", false);
}

#[test]
fn sigkill_of_windlass_process_group_kills_every_running_script_and_its_children() {
    a_killed_run_leaves_nothing_running("life-pgid", true);
}

/// An install interrupted with a survivor: its guard killed (so the script goes on unguarded)
/// while windlass was frozen and could not react, then windlass killed. Returns the instance
/// and the surviving script's pid.
fn interrupted_with_a_survivor(sb: &Sandbox, mark: &str) -> (String, i64) {
    sb.script(
        "scripts/work.sh",
        "id=$(ctx instance id)\necho \"begin $id $$\" >> ledger\nsleep 4\necho \"end $id $$\" >> ledger\n",
    );
    blueprint(sb, 1);
    let mut windlass = deploy(sb, mark, false);
    sb.wait_for(|| ledger(sb).len() == 1);
    let first: Vec<String> = ledger(sb)[0].split(' ').map(str::to_string).collect();
    let (instance, survivor) = (first[1].clone(), first[2].parse::<i64>().unwrap());
    let guards: Vec<i64> = marked(mark)
        .into_iter()
        .filter(|(_, cmd)| cmd.split(' ').nth(1) == Some("__guard"))
        .map(|(pid, _)| pid)
        .collect();
    assert_eq!(guards.len(), 1, "{:#?}", marked(mark));
    // SAFETY: sends a signal to the windlass child.
    unsafe {
        libc::kill(windlass.id() as libc::pid_t, libc::SIGSTOP);
    }
    sigkill(guards[0]);
    sigkill(i64::from(windlass.id()));
    windlass.wait().unwrap();
    assert!(running(survivor), "the script survives its guard");
    (instance, survivor)
}

/// `windlass events d --json` as a list.
fn events(sb: &Sandbox) -> Vec<serde_json::Value> {
    sb.ok(&["events", "d", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn resume_stops_a_surviving_attempt_before_running_the_operation_again() {
    let sb = Sandbox::new("life-orphan");
    let mark = format!("life-orphan-{}", std::process::id());
    let _reaper = Reaper(mark.clone());
    let (instance, survivor) = interrupted_with_a_survivor(&sb, &mark);

    let out = sb.run(&["resume", "d"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!running(survivor), "resume stopped the surviving attempt");
    wait_until_none_left(&mark);

    // The survivor never got to its end, and the second attempt ran alone.
    let lines = ledger(&sb);
    let by_survivor: Vec<&String> = lines
        .iter()
        .filter(|l| l.ends_with(&format!(" {survivor}")))
        .collect();
    assert_eq!(by_survivor.len(), 1, "{lines:#?}");
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[1].starts_with(&format!("begin {instance} ")) && lines[2].starts_with("end "),
        "{lines:#?}"
    );

    // The event names the instance and operation, and comes before the operation ran again.
    let events = events(&sb);
    let position = |kind: &str| -> Vec<usize> {
        events
            .iter()
            .enumerate()
            .filter(|(_, e)| e["event_type"] == kind && e["node_instance_id"] == instance.as_str())
            .map(|(i, _)| i)
            .collect()
    };
    let stopped = position("orphans_stopped");
    assert_eq!(stopped.len(), 1, "{events:#?}");
    assert_eq!(
        events[stopped[0]]["operation"],
        "cloudify.interfaces.lifecycle.create"
    );
    let started = position("task_started");
    assert_eq!(started.len(), 2, "{events:#?}");
    assert!(
        started[0] < stopped[0] && stopped[0] < started[1],
        "{events:#?}"
    );
}

#[test]
fn cancel_of_an_interrupted_execution_stops_its_survivors() {
    let sb = Sandbox::new("life-cancel");
    let mark = format!("life-cancel-{}", std::process::id());
    let _reaper = Reaper(mark.clone());
    let (instance, survivor) = interrupted_with_a_survivor(&sb, &mark);
    let out = sb.run(&["cancel", "d"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Stopped by the time cancel returns, well before the script's own end.
    assert!(!running(survivor), "cancel stopped the surviving attempt");
    wait_until_none_left(&mark);
    let stopped: Vec<serde_json::Value> = events(&sb)
        .into_iter()
        .filter(|e| e["event_type"] == "orphans_stopped")
        .collect();
    assert_eq!(stopped.len(), 1, "{stopped:#?}");
    assert_eq!(stopped[0]["node_instance_id"], instance.as_str());
    // The deployment is usable again: tear it down.
    let out = sb.run(&["undeploy", "d"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_killed_guard_takes_its_script_along_while_windlass_runs() {
    let sb = Sandbox::new("life-guard");
    let mark = format!("life-guard-{}", std::process::id());
    let _reaper = Reaper(mark.clone());
    sb.script(
        "scripts/work.sh",
        "echo \"begin $$\" >> ledger\nsleep 4\necho \"end $$\" >> ledger\n",
    );
    blueprint(&sb, 1);
    let mut windlass = deploy(&sb, &mark, false);
    sb.wait_for(|| ledger(&sb).len() == 1);
    let guard = marked(&mark)
        .into_iter()
        .find(|(_, cmd)| cmd.split(' ').nth(1) == Some("__guard"))
        .map(|(pid, _)| pid)
        .unwrap();
    sigkill(guard);
    // The operation fails at once: the engine killed the rest of the group, it did not wait
    // for the script.
    assert_eq!(windlass.wait().unwrap().code(), Some(1));
    wait_until_none_left(&mark);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(ledger(&sb).len(), 1, "{:#?}", ledger(&sb));
}

#[test]
fn a_script_that_cannot_be_run_fails_without_retries() {
    let sb = Sandbox::new("life-noexec");
    // Neither .sh nor .py, and not executable: the guard could not run it.
    sb.file("job", "#!/bin/bash\ntrue\n");
    sb.file(
        "blueprint.yaml",
        "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\nnode_templates:\n  w:\n    type: cloudify.nodes.Root\n    interfaces:\n      cloudify.interfaces.lifecycle:\n        create: job\n",
    );
    let err = sb.err(&[
        "deploy",
        "blueprint.yaml",
        "-d",
        "d",
        "--task-retries",
        "3",
        "--retry-interval",
        "0",
    ]);
    assert!(
        err.contains("cannot run `job`: it is not executable"),
        "{err}"
    );
    let failed = events(&sb)
        .into_iter()
        .filter(|e| e["event_type"] == "task_failed")
        .count();
    assert_eq!(failed, 1, "not retried");
}
