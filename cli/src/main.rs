//! `paved`: the entry point of every part of the platform.

use paved::{apply_cmd, control_plane_cmd, flow_agent_cmd, gateway_cmd, up};

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
    /// The whole platform on this machine: control plane, gateway, demo app.
    Up(up::UpArgs),
    /// Run the gateway from a configuration file (reloaded on SIGHUP) or a control plane.
    Gateway(gateway_cmd::GatewayArgs),
    /// Run the control plane alone.
    ControlPlane(Box<control_plane_cmd::ControlPlaneArgs>),
    /// Plan or apply a paved.yaml through the control plane's API.
    Apply(apply_cmd::ApplyArgs),
    /// Run the eBPF flow agent: who talks to whom, exported to NATS or a control plane.
    FlowAgent(flow_agent_cmd::FlowAgentArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PAVED_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Up(args) => up::run(args),
        Command::Gateway(args) => gateway_cmd::run(args),
        Command::ControlPlane(args) => control_plane_cmd::run(*args),
        Command::Apply(args) => apply_cmd::run(args),
        Command::FlowAgent(args) => flow_agent_cmd::run(args),
    }
}
