fn main() -> std::process::ExitCode {
    dynolake::cli::main()
}
