//! The `swarm` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    client::main()
}
