//! The chaos test: rounds of deploy → scale out → scale in → undeploy on one deployment, each
//! command SIGKILLed at a random moment (its pid alone, or its whole process group) and resumed
//! at once, possibly killed again while resuming. After every command and its resumes, the
//! deployment holds exactly the expected instances, all `started`, and the world the scripts
//! manage holds exactly their resources; after the last undeploy, nothing is left.
//!
//! The blueprint: a scalable Compute `vm` (2 by default) containing an `app`, and an `lb`
//! `connected_to` every `app` (all_to_all) with `establish` / `unlink` scripts, so scaling adds
//! and removes links too. Every operation runs an idempotent script on a resource directory
//! (`res/ID` for an instance, `res/LB~APP` for a link): create checks whether the resource
//! exists, sleeps a random short time (to widen races), and appends `+ID` to the ledger only when
//! it did not exist, then creates it; delete appends `-ID` only when it existed, then removes it.
//! The ledger line comes first and counts as the resource's existence, so a script killed between
//! the two is finished by the next attempt without a second line. Sequential attempts of one operation (a killed one, then the resumed one) therefore leave one
//! `+ID`; two live attempts at once can leave two, which the ledger check catches. Each script
//! also writes `start OP:ID PID PREV` / `end OP:ID PID` to a second log, where PREV is the pid of
//! an earlier attempt of the same operation that is still running (else `-`): an overlap seen
//! directly.
//!
//! Seeded: `CHAOS_SEED` replays a run (the seed is printed, and named in every failure);
//! `CHAOS_ROUNDS` sets the number of rounds (default 6, well under a minute in debug).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

mod common;

use common::{Sandbox, stderr};

/// Environment marker on every process of the test's runs (windlass, guards, scripts), so that
/// a failing test can kill what it leaves.
const MARK: &str = "WINDLASS_CHAOS_MARK";

/// A tiny xorshift64* generator: the whole run follows from its seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// The script of one operation. `key` is the shell expression naming the resource; `create`
/// says whether the operation makes it or removes it.
fn script(dir: &str, op: &str, key: &str, create: bool) -> String {
    // The ledger is the resource's journal: its line is written before the resource changes,
    // so a kill between the two leaves a journal that says what the next attempt must finish
    // (without a line of its own). Two live attempts both find the journal unchanged, and both
    // write: the line twice.
    let act = if create {
        "if [ ! -e \"$R\" ] && [ \"$LAST\" != \"+$KEY\" ]; then\n  sleep \"$NAP\"\n  echo \"+$KEY\" >> \"$D/ledger\"\nelse\n  sleep \"$NAP\"\nfi\nmkdir -p \"$R\"\n"
    } else {
        "if [ \"$LAST\" = \"+$KEY\" ]; then\n  sleep \"$NAP\"\n  echo \"-$KEY\" >> \"$D/ledger\"\nelse\n  sleep \"$NAP\"\nfi\nrm -rf \"$R\"\n"
    };
    format!(
        r#"#!/bin/bash
set -e
D='{dir}'
KEY="{key}"
CK="{op}:$KEY"
PF="$D/crit/$CK"
R="$D/res/$KEY"
NAP="0.$((RANDOM % 25))"
LAST=$(grep -x -e "+$KEY" -e "-$KEY" "$D/ledger" 2>/dev/null | tail -n 1 || true)
# An earlier attempt of this operation still running (its pid file names a live {op}.sh)?
PREV=-
if [ -f "$PF" ]; then
  p=$(cat "$PF")
  if [ -n "$p" ] && [ -r "/proc/$p/cmdline" ] && tr '\0' ' ' < "/proc/$p/cmdline" | grep -q "{op}.sh" \
     && ! sed 's/.*) //' "/proc/$p/stat" | grep -q '^Z'; then
    PREV=$p
  fi
fi
echo "start $CK $$ $PREV" >> "$D/crit.log"
echo $$ > "$PF"
{act}rm -f "$PF"
echo "end $CK $$" >> "$D/crit.log"
"#
    )
}

const BLUEPRINT: &str = r#"tosca_definitions_version: cloudify_dsl_1_3
imports: [cloudify/types/types.yaml]
node_templates:
  vm:
    type: cloudify.nodes.Compute
    capabilities: { scalable: { properties: { default_instances: 2 } } }
    interfaces:
      cloudify.interfaces.lifecycle: { create: scripts/create.sh, delete: scripts/delete.sh }
  app:
    type: cloudify.nodes.Root
    interfaces:
      cloudify.interfaces.lifecycle: { create: scripts/create.sh, delete: scripts/delete.sh }
    relationships:
      - { type: cloudify.relationships.contained_in, target: vm }
  lb:
    type: cloudify.nodes.Root
    interfaces:
      cloudify.interfaces.lifecycle: { create: scripts/create.sh, delete: scripts/delete.sh }
    relationships:
      - type: cloudify.relationships.connected_to
        target: app
        source_interfaces:
          cloudify.interfaces.relationship_lifecycle:
            establish: scripts/establish.sh
            unlink: scripts/unlink.sh
"#;

/// The sandbox: the blueprint in `bp/` (its snapshot must not take in the ledger or the
/// resources), the ledger, logs and resources beside it.
fn sandbox(name: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    for d in ["bp/scripts", "res", "crit"] {
        std::fs::create_dir_all(sb.dir.join(d)).unwrap();
    }
    let dir = sb.dir.display().to_string();
    let link = "$(ctx source instance id)~$(ctx target instance id)";
    for (op, key, create) in [
        ("create", "$(ctx instance id)", true),
        ("delete", "$(ctx instance id)", false),
        ("establish", link, true),
        ("unlink", link, false),
    ] {
        sb.file(
            &format!("bp/scripts/{op}.sh"),
            &script(&dir, op, key, create),
        );
    }
    sb.file("bp/blueprint.yaml", BLUEPRINT);
    sb
}

/// What the deployment should be after a step.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Installed with this many `vm` (and as many `app`) instances.
    Vms(usize),
    /// Deleted.
    Gone,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Step {
    Deploy,
    Scale,
    Undeploy,
}

/// How a spawned command ended.
enum Ended {
    Killed,
    Exited(std::process::Output),
}

#[derive(Default)]
struct Tally {
    commands: usize,
    kills: usize,
    group_kills: usize,
    resumes: usize,
    /// Kills of a `resume`.
    resumes_killed: usize,
    reissued: usize,
    finished_before_kill: usize,
}

struct Chaos {
    sb: Sandbox,
    rng: Rng,
    seed: u64,
    mark: String,
    tally: Tally,
    /// Where we are, for failure messages.
    at: String,
}

impl Chaos {
    /// Fail, naming the seed (to replay), where and what the logs hold.
    fn fail(&self, what: &str) -> ! {
        let read = |f: &str| std::fs::read_to_string(self.sb.dir.join(f)).unwrap_or_default();
        let tail = |text: String| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        panic!(
            "CHAOS_SEED={} at {}: {what}\n--- ledger (last 40) ---\n{}\n--- crit.log (last 40) ---\n{}\n--- executions ---\n{}",
            self.seed,
            self.at,
            tail(read("ledger")),
            tail(read("crit.log")),
            String::from_utf8_lossy(&self.sb.run(&["executions", "d"]).stdout),
        );
    }

    /// Run `windlass ARGS`; with `kill`, SIGKILL it after 0–1.5 s (its pid or its process
    /// group, half each) unless it ended first.
    fn attempt(&mut self, args: &[&str], kill: bool) -> Ended {
        self.tally.commands += 1;
        // Quiet: only errors, so an unread pipe never fills.
        let mut command = self.sb.command(&[&["-q"], args].concat());
        command
            .env(MARK, &self.mark)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn().unwrap();
        if kill {
            let delay = Duration::from_millis(self.rng.range(0, 1500));
            let group = self.rng.chance(50);
            let start = Instant::now();
            while start.elapsed() < delay {
                if child.try_wait().unwrap().is_some() {
                    self.tally.finished_before_kill += 1;
                    return Ended::Exited(child.wait_with_output().unwrap());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let pid = child.id() as libc::pid_t;
            let target = if group { -pid } else { pid };
            // SAFETY: sends a signal to the child or to the group it leads.
            unsafe {
                libc::kill(target, libc::SIGKILL);
            }
            let status = wait(&mut child);
            if status.code().is_some() {
                // It had exited on its own just before the signal.
                self.tally.finished_before_kill += 1;
                return Ended::Exited(child.wait_with_output().unwrap());
            }
            self.tally.kills += 1;
            if group {
                self.tally.group_kills += 1;
            }
            return Ended::Killed;
        }
        Ended::Exited(child.wait_with_output().unwrap())
    }

    /// The number of executions of `d` (0 when it does not exist).
    fn executions(&self) -> Vec<Json> {
        let out = self.sb.run(&["executions", "d", "--json"]);
        if !out.status.success() {
            return Vec::new();
        }
        serde_json::from_slice::<Json>(&out.stdout)
            .ok()
            .and_then(|j| j.as_array().cloned())
            .unwrap_or_default()
    }

    /// Run one step's command, killed at random and resumed at once (resumes killed at random
    /// too, a bounded number of times), until it has taken effect.
    fn step(&mut self, step: Step, args: &[&str]) {
        let before = self.executions().len();
        let mut issued = 0;
        'command: loop {
            issued += 1;
            if issued > 1 {
                self.tally.reissued += 1;
            }
            let kill = issued <= 3 && self.rng.chance(50);
            match self.attempt(args, kill) {
                Ended::Exited(out) if out.status.success() => return,
                Ended::Exited(out) => self.fail(&format!("{args:?} failed: {}", stderr(&out))),
                Ended::Killed => {}
            }
            let mut resumes = 0;
            loop {
                resumes += 1;
                self.tally.resumes += 1;
                let kill = resumes <= 3 && self.rng.chance(30);
                let out = match self.attempt(&["resume", "d"], kill) {
                    Ended::Killed => {
                        self.tally.resumes_killed += 1;
                        continue;
                    }
                    Ended::Exited(out) => out,
                };
                if out.status.success() {
                    return;
                }
                let err = stderr(&out);
                if err.contains("deployment `d` does not exist") {
                    match step {
                        // Killed before the deployment was stored: deploy again.
                        Step::Deploy => continue 'command,
                        // The undeploy (or a resume of it) got as far as deleting it.
                        Step::Undeploy => return,
                        Step::Scale => self.fail(&format!("the deployment went away: {err}")),
                    }
                }
                if err.contains("nothing to resume") || err.contains("no execution to resume") {
                    let after = self.executions();
                    if after.len() > before {
                        // The command's execution exists and is over: it finished before the
                        // kill took it.
                        let last = &after[after.len() - 1];
                        if last["status"] != "terminated" {
                            self.fail(&format!("nothing to resume, yet: {last}"));
                        }
                        return;
                    }
                    if step == Step::Deploy {
                        self.fail(&format!(
                            "a deployment that neither resume nor deploy finishes: killed after the deployment was stored and before its install execution was; resume says: {err}; deploy says: {}",
                            stderr(&self.sb.run(&["deploy", "bp/blueprint.yaml", "-d", "d"]))
                        ));
                    }
                    // Killed before its execution was recorded: it never ran; issue it again.
                    continue 'command;
                }
                self.fail(&format!("resume failed: {err}"));
            }
        }
    }

    /// The deployment, the resources and the ledger agree with `expect`.
    fn check(&self, expect: Expect) {
        let mut live: BTreeSet<String> = BTreeSet::new();
        match expect {
            Expect::Gone => {
                let list = self.sb.json(&["list", "--json"]);
                if list.as_array().is_none_or(|l| !l.is_empty()) {
                    self.fail(&format!("deployments left: {list}"));
                }
            }
            Expect::Vms(n) => {
                let out = self.sb.run(&["instances", "d", "--json"]);
                if !out.status.success() {
                    self.fail(&format!("instances: {}", stderr(&out)));
                }
                let instances: Vec<Json> = serde_json::from_slice(&out.stdout).unwrap();
                let mut by_node: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for i in &instances {
                    let id = i["id"].as_str().unwrap().to_string();
                    if i["state"] != "started" {
                        self.fail(&format!("{id} is {}, not started", i["state"]));
                    }
                    by_node
                        .entry(i["node_id"].as_str().unwrap().to_string())
                        .or_default()
                        .push(id.clone());
                    live.insert(id);
                }
                let count = |node: &str| by_node.get(node).map_or(0, Vec::len);
                if count("vm") != n || count("app") != n || count("lb") != 1 {
                    self.fail(&format!(
                        "expected {n} vm, {n} app, 1 lb; the deployment has {by_node:?}"
                    ));
                }
                let lb = &by_node["lb"][0];
                for app in &by_node["app"] {
                    live.insert(format!("{lb}~{app}"));
                }
            }
        }
        let resources: BTreeSet<String> = std::fs::read_dir(self.sb.dir.join("res"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        if resources != live {
            self.fail(&format!(
                "resources differ from the deployment: missing {:?}, extra {:?}",
                live.difference(&resources).collect::<Vec<_>>(),
                resources.difference(&live).collect::<Vec<_>>()
            ));
        }
        let held = self.ledger();
        if held != live {
            self.fail(&format!(
                "the ledger nets to {held:?}, the deployment holds {live:?}"
            ));
        }
        self.no_overlap();
    }

    /// What the ledger nets to; fails on a resource created twice without a delete between
    /// (or deleted twice without a create between).
    fn ledger(&self) -> BTreeSet<String> {
        let text = std::fs::read_to_string(self.sb.dir.join("ledger")).unwrap_or_default();
        let mut held = BTreeSet::new();
        for (n, line) in text.lines().enumerate() {
            let ok = match line.split_at_checked(1) {
                Some(("+", id)) => held.insert(id.to_string()),
                Some(("-", id)) => held.remove(id),
                _ => false,
            };
            if !ok {
                self.fail(&format!(
                    "ledger line {}: `{line}`: created twice (or deleted twice) without the opposite between",
                    n + 1
                ));
            }
        }
        held
    }

    /// No operation started while an earlier attempt of it was still running.
    fn no_overlap(&self) {
        let text = std::fs::read_to_string(self.sb.dir.join("crit.log")).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.starts_with("start ") && !l.ends_with(" -"))
        {
            self.fail(&format!(
                "two live attempts of one operation at once: `{line}`"
            ));
        }
    }
}

/// Wait (bounded) for a killed child.
fn wait(child: &mut Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "a killed windlass did not exit"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Live processes carrying the marker (only used to clean up after a failure).
fn marked(mark: &str) -> Vec<libc::pid_t> {
    let needle = format!("{MARK}={mark}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
        })
        .collect()
}

/// Kills whatever the run left, so a failed test leaves nothing running.
struct Reaper(String);

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in marked(&self.0) {
            // SAFETY: sends a signal to a process of this test's run.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn killed_and_resumed_commands_leave_exactly_the_expected_deployment() {
    let seed = env_number("CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let rounds = env_number("CHAOS_ROUNDS").unwrap_or(6);
    println!("CHAOS_SEED={seed} CHAOS_ROUNDS={rounds}");
    let mark = format!("chaos-{}", std::process::id());
    let _reaper = Reaper(mark.clone());
    let mut chaos = Chaos {
        sb: sandbox("chaos"),
        rng: Rng::new(seed),
        seed,
        mark,
        tally: Tally::default(),
        at: String::new(),
    };
    for round in 1..=rounds {
        let mut vms = 2usize;
        chaos.at = format!("round {round}, deploy");
        chaos.step(Step::Deploy, &["deploy", "bp/blueprint.yaml", "-d", "d"]);
        chaos.check(Expect::Vms(vms));

        let k = chaos.rng.range(1, 3) as usize;
        chaos.at = format!("round {round}, scale vm +{k}");
        chaos.step(Step::Scale, &["scale", "d", "vm", &format!("+{k}")]);
        vms += k;
        chaos.check(Expect::Vms(vms));

        let j = chaos.rng.range(1, (vms as u64 - 1).min(3)) as usize;
        chaos.at = format!("round {round}, scale vm -{j}");
        chaos.step(Step::Scale, &["scale", "d", "vm", &format!("-{j}")]);
        vms -= j;
        chaos.check(Expect::Vms(vms));

        chaos.at = format!("round {round}, undeploy");
        chaos.step(Step::Undeploy, &["undeploy", "d"]);
        chaos.check(Expect::Gone);
    }
    let t = &chaos.tally;
    println!(
        "chaos: {rounds} rounds, {} commands, {} kills ({} of the process group, {} of a resume), {} resumes, {} commands issued again, {} finished before their kill",
        t.commands,
        t.kills,
        t.group_kills,
        t.resumes_killed,
        t.resumes,
        t.reissued,
        t.finished_before_kill
    );
    // Some kills landed: the test exercised what it is about (with 4 × rounds commands each
    // killed with probability 1/2, none at all is a 1-in-2^24 event at the default rounds).
    assert!(rounds < 3 || t.kills > 0, "no command was killed");
}

/// The state a SIGKILL leaves between the end of a deploy's install and the mark that the
/// deployment is installed (found by killing `deploy` the moment its execution read
/// `terminated`): `resume` finishes it, and the deployment scales.
#[tokio::test]
async fn resume_finishes_an_install_killed_before_it_was_marked_installed() {
    let sb = sandbox("chaos-marked");
    sb.ok(&["-q", "deploy", "bp/blueprint.yaml", "-d", "d"]);
    let store = windlass::store::Store::open(sb.dir.join("state.db").to_str().unwrap())
        .await
        .unwrap();
    store.set_installed("d", false).await.unwrap();
    store.close().await;
    let out = sb.run(&["resume", "d"]);
    assert!(out.status.success(), "{}", stderr(&out));
    sb.ok(&["-q", "scale", "d", "vm", "+1"]);
    assert_eq!(sb.instances("d").len(), 3 * 2 + 1);
}

/// The state a SIGKILL leaves between storing a deployment and starting its install: `resume`
/// installs it (deploy refuses the id, which exists), and the deployment scales.
#[tokio::test]
async fn resume_installs_a_deployment_killed_before_its_install_started() {
    let sb = sandbox("chaos-stored");
    let store = windlass::store::Store::open(sb.dir.join("state.db").to_str().unwrap())
        .await
        .unwrap();
    let given = windlass::dsl::inputs::parse_args::<&str>(&[]).unwrap();
    windlass::engine::create_deployment(&store, &sb.dir.join("bp/blueprint.yaml"), "d", &given)
        .await
        .unwrap();
    store.close().await;
    let out = sb.run(&["resume", "d"]);
    assert!(out.status.success(), "{}", stderr(&out));
    sb.ok(&["-q", "scale", "d", "vm", "+1"]);
    assert_eq!(sb.instances("d").len(), 3 * 2 + 1);
}
