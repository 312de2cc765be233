fn main() -> std::process::ExitCode {
    dynolake::alloc::tune();
    dynolake::cli::main()
}
