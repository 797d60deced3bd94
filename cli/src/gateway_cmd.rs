//! `paved gateway --config FILE`: a standalone gateway from a YAML snapshot.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use paved_gateway::distribution::{self, ControlPlane};
use paved_gateway::{Gateway, GatewayOptions, ShutdownHandle};
use paved_model::snapshot::Snapshot;

/// Arguments of `paved gateway`.
#[derive(clap::Args)]
pub struct GatewayArgs {
    /// The configuration (see docs/gateway-config.md); or use --control-plane.
    #[arg(
        long,
        short,
        required_unless_present = "control_plane",
        conflicts_with = "control_plane"
    )]
    config: Option<PathBuf>,
    /// Watch this control plane (`host:port`) for configuration instead of a file.
    #[arg(long, requires = "gateway_token")]
    control_plane: Option<String>,
    /// This gateway's ID at the control plane.
    #[arg(long, default_value = "gateway-1")]
    gateway_id: String,
    /// The gateway token issued by the control plane.
    #[arg(long, env = "PAVED_GATEWAY_TOKEN", hide_env_values = true)]
    gateway_token: Option<String>,
    /// Where the last good snapshot is kept (control-plane mode).
    #[arg(long, default_value = ".paved/gateway")]
    state_dir: PathBuf,
    /// Where compiled plugins are cached across restarts.
    #[arg(long, env = "PAVED_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// The access log file (JSON lines, rotated at 64 MiB).
    #[arg(long, default_value = ".paved/gateway/access.log")]
    access_log: PathBuf,
    /// Redis for cluster-wide rate limits (`redis://127.0.0.1:6379`).
    #[arg(long, env = "PAVED_REDIS_URL")]
    redis_url: Option<String>,
    /// Worker threads per listener (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn load(path: &Path) -> anyhow::Result<Snapshot> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Snapshot::from_yaml_str(&text, &path.display().to_string())?)
}

/// Runs the gateway until SIGTERM or SIGINT: from a file (SIGHUP reloads it) or from the
/// control plane (new versions are watched for).
pub fn run(args: GatewayArgs) -> anyhow::Result<()> {
    let options = GatewayOptions {
        base_dir: args
            .config
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
        cache_dir: args.cache_dir.clone(),
        threads: args.threads,
        redis_url: args.redis_url.clone(),
        access_log: Some(paved_gateway::accesslog::AccessLogOptions {
            path: args.access_log.clone(),
            max_bytes: 64 << 20,
            keep: 5,
        }),
    };
    match (&args.config, &args.control_plane, &args.gateway_token) {
        (Some(path), _, _) => run_from_file(path, options),
        (None, Some(address), Some(token)) => {
            let control_plane = ControlPlane {
                address: address.clone(),
                gateway_id: args.gateway_id.clone(),
                token: token.clone(),
                state_dir: args.state_dir.clone(),
            };
            run_from_control_plane(control_plane, options)
        }
        _ => anyhow::bail!("give --config FILE, or --control-plane ADDRESS with --gateway-token"),
    }
}

fn run_from_file(path: &Path, options: GatewayOptions) -> anyhow::Result<()> {
    let gateway =
        Arc::new(Gateway::new(load(path)?, options).context("loading the configuration")?);
    tracing::info!(config = %path.display(), version = %gateway.version(), "gateway configured");
    let reloader = gateway.clone();
    let path = path.to_path_buf();
    gateway.background().spawn(async move {
        let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reloads are off");
            return;
        };
        while hangups.recv().await.is_some() {
            tracing::info!(config = %path.display(), "SIGHUP: reloading");
            // A bad file is reported and the configuration in force keeps serving.
            match load(&path).map_err(|e| e.to_string()).and_then(|s| reloader.reload(s).map_err(|e| e.to_string())) {
                Ok(()) => tracing::info!(version = %reloader.version(), "reloaded"),
                Err(error) => tracing::error!(error = %error, "reload rejected; previous configuration still serving"),
            }
        }
    });
    gateway.run(ShutdownHandle::new().watch())?;
    Ok(())
}

/// Starts from the last good snapshot on disk (or waits for the first one), then watches.
pub fn run_from_control_plane(
    control_plane: ControlPlane,
    options: GatewayOptions,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let snapshot = runtime.block_on(distribution::initial_snapshot(&control_plane));
    drop(runtime);
    let gateway = Arc::new(Gateway::new(snapshot, options).context("loading the first snapshot")?);
    tracing::info!(control_plane = %control_plane.address, version = %gateway.version(), "gateway configured");
    gateway
        .background()
        .spawn(distribution::watch(gateway.clone(), control_plane));
    gateway.run(ShutdownHandle::new().watch())?;
    Ok(())
}
