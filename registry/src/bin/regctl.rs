//! regctl: the Tenantry operator CLI. See `regctl --help`.

fn main() -> std::process::ExitCode {
    registry::cli::main()
}
