fn main() -> std::process::ExitCode {
    bac_gateway::cli_main()
}
