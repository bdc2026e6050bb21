//! What `/proc` says about processes: their state, process group and start time. A pid with
//! its start time names one process for good, so the store can tell a live engine or script
//! from a dead one whose pid was reused (`engine::orphans`, the store's busy check).
//! Linux only, like the rest of the process handling.

/// What `/proc/PID/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// `R`, `S`, `Z`, …
    pub state: char,
    pub pgrp: i64,
    /// Clock ticks after boot (field 22): with the pid, it names one process for good.
    pub started: i64,
}

/// The stat of a process, if it exists (zombies included).
pub fn stat(pid: i64) -> Option<ProcStat> {
    if pid <= 0 {
        return None;
    }
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Fields after the command name (which may hold spaces and parentheses): field 3 is the
/// state, 5 the process group, 22 the start time.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        started: fields.get(19)?.parse().ok()?,
    })
}

/// A process's start time, if it exists.
pub fn start_time(pid: i64) -> Option<i64> {
    stat(pid).map(|s| s.started)
}

/// This process's start time (for the records of the groups it spawns).
pub fn own_start_time() -> i64 {
    static OWN: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *OWN.get_or_init(|| start_time(i64::from(std::process::id())).unwrap_or(0))
}

/// True while the process `pid` started at `started` runs (not a zombie, not a reused pid).
pub fn is_running(pid: i64, started: i64) -> bool {
    stat(pid).is_some_and(|s| s.state != 'Z' && s.started == started)
}

/// The live (non-zombie) processes of a process group.
pub fn group_members(pgid: i64) -> Vec<i64> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i64>().ok())
        .filter(|&pid| stat(pid).is_some_and(|s| s.pgrp == pgid && s.state != 'Z'))
        .collect()
}

/// True while a process with this pid exists and is not a zombie. With `started`, it must also
/// have that start time (a reused pid is another process).
pub fn alive(pid: i64, started: Option<i64>) -> bool {
    stat(pid).is_some_and(|s| s.state != 'Z' && started.is_none_or(|t| t == s.started))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_the_command_name() {
        let line =
            "4242 (a (b) c) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                state: 'S',
                pgrp: 4240,
                started: 987654
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_with_its_start_time_and_not_with_another() {
        let pid = i64::from(std::process::id());
        assert!(alive(pid, None));
        assert!(alive(pid, Some(own_start_time())));
        assert!(!alive(pid, Some(own_start_time() + 1)));
        assert!(!alive(0, None));
    }
}
