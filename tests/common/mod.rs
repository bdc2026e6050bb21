//! A scratch directory with its own state file, and the windlass binary run in it: shared by the
//! integration tests that drive real deployments.
#![allow(dead_code)] // each test file uses a different part

pub mod http;
pub mod manager;
pub mod procs;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

pub struct Sandbox {
    pub dir: PathBuf,
}

impl Sandbox {
    pub fn new(name: &str) -> Sandbox {
        let dir = std::env::temp_dir().join(format!("windlass-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("scripts")).unwrap();
        Sandbox { dir }
    }

    /// Write a file; scripts (`scripts/…`) are made executable.
    pub fn file(&self, rel: &str, text: &str) {
        let path = self.dir.join(rel);
        std::fs::write(&path, text).unwrap();
        if rel.starts_with("scripts/") || rel.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    /// A bash script that works in the sandbox directory (scripts run in the deployment's
    /// snapshot, not here).
    pub fn script(&self, rel: &str, body: &str) {
        self.file(
            rel,
            &format!("#!/bin/bash\ncd '{}'\n{body}", self.dir.display()),
        );
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_windlass"));
        c.args(args)
            .current_dir(&self.dir)
            .env("WINDLASS_STATE", self.dir.join("state.db"))
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Run; it must succeed. Returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run; it must fail. Returns stderr.
    pub fn err(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} should fail");
        stderr(&out)
    }

    /// Run; it must be refused as a usage error (exit 2). Returns stderr.
    pub fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} should be refused: {}",
            stderr(&out)
        );
        stderr(&out)
    }

    pub fn json(&self, args: &[&str]) -> Json {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    /// The ids of `list --json`, in its order.
    pub fn deployment_ids(&self) -> Vec<String> {
        strings_at(&self.json(&["list", "--json"]), "id")
    }

    /// `instances ID --json` as a list.
    pub fn instances(&self, id: &str) -> Vec<Json> {
        self.json(&["instances", id, "--json"])
            .as_array()
            .unwrap()
            .clone()
    }

    /// Lines of `ops.log` in the sandbox.
    pub fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("ops.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn clear_log(&self) {
        let _ = std::fs::remove_file(self.dir.join("ops.log"));
    }

    pub fn wait_for(&self, what: impl Fn() -> bool) {
        let start = Instant::now();
        while !what() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "timed out waiting"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The string `key` of every item of a JSON list (the ids of `list --json`, the names of
/// `secrets list --json`, …), in order.
pub fn strings_at(list: &Json, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| item[key].as_str().unwrap().to_string())
        .collect()
}

/// Run `command` with `input` on its standard input (closed after it), capturing its output:
/// how a secret reaches windlass without showing on a command line.
pub fn output_with_stdin(mut command: Command, input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}
