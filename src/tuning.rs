//! Process-wide settings of the two allocators in a `windlass` process: [`apply`] first thing
//! in `main`, before any thread starts and before SQLite is first used; [`before_exit`] last.
//!
//! - SQLite allocates through the C library's `malloc`, whose per-thread arenas grow and shrink
//!   one `mprotect`/`madvise` at a time on each connection's thread. Given mimalloc instead
//!   (`SQLITE_CONFIG_MALLOC`), SQLite shares the Rust heap; its memory statistics, which take a
//!   global mutex on every allocation and which nothing here reads, are turned off.
//! - At exit mimalloc gives its whole heap back to the kernel range by range (an `madvise`,
//!   with a TLB flush on every core, per 64 KiB), which the kernel does anyway, at once, when
//!   the process ends. `before_exit` turns purging off for that last moment only: a long-running
//!   `windlass serve` still returns memory it stops using.
//!
//! Deploying a 1,000-instance chain took 1,585 system calls and 127 M instructions before, 1,220
//! and 117 M after. Both settings are speed only: if SQLite was already initialized (a library
//! user opened a database first), `sqlite3_config` refuses and SQLite keeps its own allocator.

use std::os::raw::{c_int, c_void};

use libsqlite3_sys as sqlite;

/// `mi_option_purge_delay`: its place in `mi_option_e` of mimalloc 3 (`mimalloc.h`), which
/// the Rust bindings do not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Call last in `main`: mimalloc's exit handler then skips giving the heap back to the kernel
/// page range by page range (hundreds of `madvise` calls, each a TLB flush on every core), which
/// the kernel does at once when the process ends.
pub fn before_exit() {
    // SAFETY: a plain value mimalloc reads when it next purges.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

/// Apply both settings. Call once, first thing in `main`.
pub fn apply() {
    // SAFETY: called before any other thread exists and before any SQLite call; the option
    // and the configuration are plain values read by the libraries on later calls.
    unsafe {
        sqlite::sqlite3_config(sqlite::SQLITE_CONFIG_MEMSTATUS, 0 as c_int);
        // SQLite copies the methods before `sqlite3_config` returns.
        let methods = sqlite::sqlite3_mem_methods {
            xMalloc: Some(malloc),
            xFree: Some(free),
            xRealloc: Some(realloc),
            xSize: Some(size),
            xRoundup: Some(roundup),
            xInit: Some(init),
            xShutdown: Some(shutdown),
            pAppData: std::ptr::null_mut(),
        };
        sqlite::sqlite3_config(sqlite::SQLITE_CONFIG_MALLOC, &methods as *const _);
    }
}

// SQLite's allocator interface over mimalloc.

// SQLite never passes a negative size; one would be a bug in SQLite, answered with no memory.
unsafe extern "C" fn malloc(n: c_int) -> *mut c_void {
    match usize::try_from(n) {
        // SAFETY: mimalloc's malloc takes any size.
        Ok(n) => unsafe { libmimalloc_sys::mi_malloc(n) },
        Err(_) => std::ptr::null_mut(),
    }
}

unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: `p` came from `malloc` or `realloc` above (or is null).
    unsafe { libmimalloc_sys::mi_free(p) }
}

unsafe extern "C" fn realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    match usize::try_from(n) {
        // SAFETY: `p` came from `malloc` or `realloc` above.
        Ok(n) => unsafe { libmimalloc_sys::mi_realloc(p, n) },
        Err(_) => std::ptr::null_mut(),
    }
}

unsafe extern "C" fn size(p: *mut c_void) -> c_int {
    // SAFETY: `p` came from `malloc` or `realloc` above (or is null, size 0).
    let n = unsafe { libmimalloc_sys::mi_usable_size(p) };
    c_int::try_from(n).unwrap_or(c_int::MAX)
}

unsafe extern "C" fn roundup(n: c_int) -> c_int {
    let Ok(n) = usize::try_from(n) else { return n };
    // SAFETY: a pure function of its argument.
    let good = unsafe { libmimalloc_sys::mi_good_size(n) };
    c_int::try_from(good).unwrap_or(c_int::MAX)
}

unsafe extern "C" fn init(_: *mut c_void) -> c_int {
    sqlite::SQLITE_OK
}

unsafe extern "C" fn shutdown(_: *mut c_void) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_set_at_exit_is_mimallocs_purge_delay() {
        // mimalloc 3 purges after 1,000 ms unless told otherwise; the options around it in
        // `mi_option_e` default to 0 or 1.
        let set = std::env::var_os("MIMALLOC_PURGE_DELAY").is_some();
        // SAFETY: reads an option.
        let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert!(
            set || delay == 1000,
            "option {MI_OPTION_PURGE_DELAY} is {delay}"
        );
    }

    #[test]
    fn the_sqlite_allocator_answers_sizes_it_can_hold() {
        // SAFETY: each pointer comes from the functions under test and is freed once.
        unsafe {
            let p = malloc(100);
            assert!(!p.is_null());
            assert!(size(p) >= 100);
            let q = realloc(p, 5000);
            assert!(size(q) >= 5000);
            free(q);
            assert!(roundup(100) >= 100);
            assert!(malloc(-1).is_null());
        }
    }
}
