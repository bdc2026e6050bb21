#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    windlass::tuning::apply();
    // Behave like other Unix tools when stdout closes early (`windlass events ID | head`):
    // end quietly on SIGPIPE instead of panicking on the failed write.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let code = windlass::cli::main();
    windlass::tuning::before_exit();
    code
}
