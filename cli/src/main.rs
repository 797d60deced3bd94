//! `paved`: the entry point of every part of the platform.

mod gateway_cmd;

use clap::{Parser, Subcommand};

/// Paved: strong authentication and the internet-facing checklist as a property of the
/// architecture.
#[derive(Parser)]
#[command(name = "paved", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway from a configuration file (reloaded on SIGHUP).
    Gateway(gateway_cmd::GatewayArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PAVED_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Gateway(args) => gateway_cmd::run(args),
    }
}
