fn main() -> std::process::ExitCode {
    bac_runtime::run_main(
        bac_runtime::ServiceKind::GoogleWorkspace,
        bac_google_workspace::run,
    )
}
