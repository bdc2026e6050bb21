//! The guard: what stands between the engine and each script, so that no operation outlives
//! the engine that started it.
//!
//! # Process tree
//! ```text
//! windlass (engine) ──lifeline pipe (write end, CLOEXEC: only the engine holds it)──┐
//!   └─ windlass __guard PROGRAM ARGS…   leader of a new process group, lifeline on fd 3
//!        └─ PROGRAM (the script) and everything it starts, in the guard's group
//! ```
//! The engine makes a [`Lifeline`] per operation and runs the windlass binary itself in guard
//! mode ([`main`], dispatched by `cli::main` on `argv[1] == "__guard"`, before clap and not in
//! `--help`). Once the engine has recorded the guard's group it writes one byte to the lifeline
//! ([`Lifeline::go`]); only then does the guard run the script, with inherited stdio and
//! environment, and it exits with the script's status (its code, or 128 + the signal that
//! ended it). A thread of the guard then blocks on the lifeline: nothing more is written to it,
//! so the read ends only when every write end is closed, i.e. when the engine is gone, however
//! it died (SIGKILL included, and also between spawning the guard and recording it; an EOF
//! before `go` means the script never starts). Then the guard SIGKILLs its whole process group,
//! itself included. `PR_SET_PDEATHSIG` would not do: it fires when the forking *thread* exits
//! (a tokio worker) and reaches only the direct child.
//!
//! Timeout and cancel kill the group from the engine (`killpg` of the guard's pid). What a dead
//! engine's groups left behind anyway (a guard killed on its own, a frozen one) is found by
//! `engine::orphans` through the groups the engine recorded, with the `/proc` readings here: a
//! process's start time ([`start_time`]) tells a recorded pid from a reused one.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// `argv[1]` that runs the windlass binary as a guard.
pub const GUARD_ARG: &str = "__guard";

/// The descriptor on which a guard finds the read end of its lifeline.
pub const LIFELINE_FD: RawFd = 3;

/// The windlass binary scripts get as `ctx` and run under as a guard: `WINDLASS_CTX_BIN` when
/// set (a harness whose own executable is not windlass), else this executable.
pub fn windlass_exe() -> Option<PathBuf> {
    std::env::var_os("WINDLASS_CTX_BIN")
        .map(PathBuf::from)
        .or_else(|| std::env::current_exe().ok())
}

/// The guard mode: run `args` (program and arguments) and die with the engine.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let Some((program, rest)) = args.split_first() else {
        eprintln!("windlass {GUARD_ARG}: missing the program to run");
        return ExitCode::from(2);
    };
    // SAFETY: getpgrp and getpid have no preconditions.
    if unsafe { libc::getpgrp() != libc::getpid() } {
        // Killing "its group" would otherwise kill whoever started it.
        eprintln!("windlass {GUARD_ARG}: must lead its own process group");
        return ExitCode::from(2);
    }
    // SAFETY: fcntl on a descriptor number; it fails (-1) when the descriptor is not open.
    if unsafe { libc::fcntl(LIFELINE_FD, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        eprintln!("windlass {GUARD_ARG}: no lifeline on descriptor {LIFELINE_FD}");
        return ExitCode::from(2);
    }
    // The engine says go once it has recorded this group, so that a script never runs
    // unrecorded; EOF instead means the engine died first.
    if !matches!(read_lifeline(), Some(n) if n > 0) {
        return ExitCode::from(2);
    }
    std::thread::spawn(watch_lifeline);
    let status = match std::process::Command::new(program).args(rest).status() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot run `{}`: {e}", program.to_string_lossy());
            return ExitCode::from(127);
        }
    };
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// One read from the lifeline: `Some(bytes read)` (0 at EOF), `None` on an error.
fn read_lifeline() -> Option<usize> {
    let mut buf = [0u8; 16];
    loop {
        // SAFETY: reads into a buffer of the given length from the lifeline descriptor.
        let n = unsafe { libc::read(LIFELINE_FD, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return usize::try_from(n).ok();
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return None;
        }
    }
}

/// Block until the engine is gone, then kill the whole group (this guard included).
fn watch_lifeline() {
    while matches!(read_lifeline(), Some(n) if n > 0) {}
    // SAFETY: killpg(0, …) signals this process's own group, which this guard leads.
    unsafe {
        libc::killpg(0, libc::SIGKILL);
    }
}

/// One operation's lifeline: a pipe whose write end only the engine holds. The guard waits for
/// [`Lifeline::go`] before it starts the script, then for the end of the pipe.
pub struct Lifeline {
    read: Option<OwnedFd>,
    write: OwnedFd,
}

impl Lifeline {
    pub fn new() -> std::io::Result<Lifeline> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 fills two descriptors; O_CLOEXEC makes both close in any other child
        // this process starts, atomically with their creation.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned by nothing else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Lifeline {
            read: Some(read),
            write,
        })
    }

    /// A command that runs `program` under a guard (`exe __guard program`) holding this
    /// lifeline, as the leader of a new process group. Add the program's arguments to it.
    pub fn command(&self, exe: &Path, program: &OsStr) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(exe);
        command.arg(GUARD_ARG).arg(program).process_group(0);
        if let Some(read) = &self.read {
            let fd = read.as_raw_fd();
            // SAFETY: between fork and exec only async-signal-safe calls (dup2, fcntl) run.
            unsafe {
                command.pre_exec(move || {
                    if fd == LIFELINE_FD {
                        // dup2 onto itself keeps CLOEXEC: clear it instead.
                        if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                            return Err(std::io::Error::last_os_error());
                        }
                    } else if libc::dup2(fd, LIFELINE_FD) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        command
    }

    /// Let the guard start the script (once its group is recorded). A guard already gone makes
    /// this fail, which changes nothing: its exit status tells the rest.
    pub fn go(&self) {
        // SAFETY: writes one byte from a valid buffer to the pipe's write end.
        unsafe {
            libc::write(self.write.as_raw_fd(), b"g".as_ptr().cast(), 1);
        }
    }

    /// The guard has its copy of the read end: close ours. The write end stays open as long
    /// as this value lives (or the engine does).
    pub fn spawned(&mut self) {
        self.read = None;
    }
}

pub use crate::procs::{ProcStat, group_members, is_running, own_start_time, start_time, stat};

/// What became of a recorded process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupFate {
    /// Processes of the group were still running: this many were killed.
    Stopped(usize),
    /// Nothing of the group runs any more.
    Gone,
    /// The pid now names another process (another start time): nothing was touched.
    Reused,
}

/// How long [`stop_group`] waits for a killed group to disappear.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Stop what remains of the group `pgid` whose leader started at `started`, and wait (bounded)
/// until it is gone.
///
/// If the leader (pid == pgid) exists with that start time, the group is ours; if no process has
/// that pid, processes still in group `pgid` are the group's survivors (a pgid cannot be reused
/// while the group has members); if the pid names a process with another start time, it was
/// reused and our group is gone: nothing is touched.
pub async fn stop_group(pgid: i64, started: i64) -> GroupFate {
    if pgid <= 1 {
        return GroupFate::Gone;
    }
    if let Some(leader) = stat(pgid)
        && leader.started != started
    {
        return GroupFate::Reused;
    }
    let members = group_members(pgid);
    if members.is_empty() {
        return GroupFate::Gone;
    }
    // SAFETY: killpg only sends a signal, to a group established above as the recorded one.
    unsafe {
        libc::killpg(pgid as libc::pid_t, libc::SIGKILL);
    }
    let deadline = tokio::time::Instant::now() + STOP_WAIT;
    while !group_members(pgid).is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    GroupFate::Stopped(members.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper() -> std::process::Child {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap()
    }

    #[tokio::test]
    async fn a_reused_pid_is_never_killed() {
        let mut child = sleeper();
        let pid = i64::from(child.id());
        let started = start_time(pid).unwrap();
        // Recorded with another start time: the pid is taken to be reused.
        assert_eq!(stop_group(pid, started + 1).await, GroupFate::Reused);
        assert!(is_running(pid, started), "a reused pid was killed");
        // The true start time: the group is stopped.
        assert_eq!(stop_group(pid, started).await, GroupFate::Stopped(1));
        assert!(!is_running(pid, started));
        let _ = child.wait();
        assert_eq!(stop_group(pid, started).await, GroupFate::Gone);
    }

    #[tokio::test]
    async fn survivors_of_a_dead_leader_are_stopped() {
        use std::io::Read;
        use std::os::unix::process::CommandExt;
        // A group whose leader exited but whose member still runs.
        let mut leader = std::process::Command::new("bash")
            .args(["-c", "sleep 30 >/dev/null & echo $!"])
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut out = String::new();
        leader
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let pgid = i64::from(leader.id());
        let started = start_time(pgid).unwrap();
        leader.wait().unwrap();
        let survivor: i64 = out.trim().parse().unwrap();
        assert_eq!(stat(survivor).unwrap().pgrp, pgid);
        assert_eq!(stop_group(pgid, started).await, GroupFate::Stopped(1));
        assert!(group_members(pgid).is_empty());
    }
}
