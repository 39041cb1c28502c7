fn main() -> std::process::ExitCode {
    bac_runtime::run_main(bac_runtime::ServiceKind::Tally, bac_tally::run)
}
