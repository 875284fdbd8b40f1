//! `apiary`: the server and its admin commands.
//!
//! # Layout
//! - [`cli`]: the command-line tree.
//! - [`settings`]: layered configuration (defaults, TOML, environment, flags).
//! - [`cmd`]: one module per command (`server`, `ident`, `config`, `migrate`).
#![forbid(unsafe_code)]

mod cli;
mod cmd;
mod settings;

use clap::Parser;

/// mimalloc with its `override` feature: the bundled SQLite's allocations go to it too.
/// glibc malloc's free-list upkeep (consolidation, chunk unlinking) was about a tenth of
/// the ingest path's CPU, most of it SQLite's per-statement and page allocations.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    init_tracing();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(cmd::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("APIARY_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
