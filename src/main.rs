//! The `nomos-issuer` binary: parse the command line, run the library.

use std::process::ExitCode;

use nomos_issuer::cli::{Cli, InvalidInput, error_report, run};
use nomos_issuer::config::ConfigError;
use nomos_issuer::keys::kek::KekError;

/// mimalloc instead of glibc's allocator: the token endpoint makes many
/// short-lived allocations between long-lived cache entries, which glibc's
/// arenas fragment. With 100,000 principals cached mimalloc keeps the peak RSS
/// lower and minting costs less CPU (measured in `bench/notes.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes: 1 any error, 2 invalid usage, input or configuration, 3 key-encryption key problems.
fn exit_code(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.is::<KekError>()) {
        3
    } else if e
        .chain()
        .any(|c| c.is::<ConfigError>() || c.is::<InvalidInput>())
    {
        2
    } else {
        1
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse_args();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_report(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}
