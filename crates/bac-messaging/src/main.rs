fn main() -> std::process::ExitCode {
    bac_runtime::run_main(bac_runtime::ServiceKind::Messaging, bac_messaging::run)
}
