//! `paved gateway --config FILE`: a standalone gateway from a YAML snapshot.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use paved_gateway::{Gateway, GatewayOptions, ShutdownHandle};
use paved_model::snapshot::Snapshot;

/// Arguments of `paved gateway`.
#[derive(clap::Args)]
pub struct GatewayArgs {
    /// The configuration (see docs/gateway-config.md).
    #[arg(long, short)]
    config: PathBuf,
    /// Where compiled plugins are cached across restarts.
    #[arg(long, env = "PAVED_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Worker threads per listener (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn load(path: &Path) -> anyhow::Result<Snapshot> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Snapshot::from_yaml_str(&text, &path.display().to_string())?)
}

/// Runs the gateway until SIGTERM or SIGINT; SIGHUP reloads the file.
pub fn run(args: GatewayArgs) -> anyhow::Result<()> {
    let snapshot = load(&args.config)?;
    let base_dir = args
        .config
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let options = GatewayOptions {
        base_dir,
        cache_dir: args.cache_dir,
        threads: args.threads,
    };
    let gateway = Arc::new(Gateway::new(snapshot, options).context("loading the configuration")?);
    tracing::info!(config = %args.config.display(), version = %gateway.version(), "gateway configured");

    let reloader = gateway.clone();
    let path = args.config.clone();
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
