fn main() -> std::process::ExitCode {
    stacdb::cli::main()
}
