fn main() -> std::process::ExitCode {
    windlass::cli::main()
}
