//! Processes of a test run, found in /proc by an environment marker: every process of a run
//! carries `MARK=mark` (set on windlass, inherited by the guards, operations and their
//! children), so tests can tell what of a run is still alive and kill it.

use std::time::{Duration, Instant};

pub const MARK: &str = "WINDLASS_LIFETIME_MARK";

/// Live (non-zombie) processes whose environment holds `MARK=mark`, with their command lines.
pub fn marked(mark: &str) -> Vec<(i64, String)> {
    let needle = format!("{MARK}={mark}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i64>().ok())
        else {
            continue;
        };
        if !running(pid) {
            continue;
        }
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push((pid, cmdline));
        }
    }
    found
}

/// True while `pid` exists and is not a zombie.
pub fn running(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            != Some("Z")
    })
}

/// Kills whatever a test run left (only when the test fails), so nothing outlives the test.
pub struct Reaper(pub String);

impl Drop for Reaper {
    fn drop(&mut self) {
        for (pid, _) in marked(&self.0) {
            // SAFETY: sends a signal to a process of this test's run.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

/// Wait (bounded) until no process of the run is left; fail naming the survivors.
pub fn wait_until_none_left(mark: &str) {
    let start = Instant::now();
    loop {
        let left = marked(mark);
        if left.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "processes of the killed run still running: {left:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn sigkill(pid: i64) {
    // SAFETY: sends a signal; a negative pid names a process group.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
}
