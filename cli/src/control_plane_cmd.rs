//! `paved control-plane`: the control plane alone (GraphQL, OpenID provider, distribution).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use paved_control_plane::{ControlPlane, ControlPlaneConfig};

/// Arguments of `paved control-plane`.
#[derive(clap::Args)]
pub struct ControlPlaneArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// The URL people and gateways reach it at (the OpenID issuer).
    #[arg(long)]
    public_url: Option<String>,
    /// `sqlite://file?mode=rwc` or `postgres://...`.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Where the OpenID signing key is kept (PKCS#8 PEM; created when missing).
    #[arg(long, default_value = ".paved/oidc-key.pem")]
    key_file: PathBuf,
    /// Serve GraphiQL at GET /graphql.
    #[arg(long)]
    development: bool,
    /// Consume flow batches from this NATS server (JetStream stream `PAVED_FLOWS`, durable
    /// consumer `paved-flow-collectors` shared by every replica).
    #[arg(long, env = "PAVED_NATS_URL")]
    flows_nats_url: Option<String>,
}

/// Runs the control plane until Ctrl-C.
pub fn run(args: ControlPlaneArgs) -> anyhow::Result<()> {
    let public_url = args
        .public_url
        .unwrap_or_else(|| format!("http://{}", args.listen));
    let mut config = ControlPlaneConfig::new(
        args.database_url
            .unwrap_or_else(ControlPlaneConfig::database_url_from_env),
        public_url,
    );
    config.development = args.development;
    config.oidc.key_file = Some(args.key_file);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let cp = ControlPlane::start(config)
            .await
            .context("starting the control plane")?;
        if let Some(url) = args.flows_nats_url {
            use paved_flow_agent::transport::nats::{ConsumerSettings, StreamSettings};
            cp.spawn_flow_consumer(
                url,
                StreamSettings::default(),
                ConsumerSettings::default(),
                shutdown_signal(),
            );
        }
        serve(cp, args.listen, shutdown_signal()).await
    })
}

/// Serves the control plane's router on `listen` until `shutdown` completes.
pub async fn serve(
    cp: ControlPlane,
    listen: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_on(cp, bind(listen).await?, shutdown).await
}

/// Binds the control plane's listener: once this returns, connections are accepted (they
/// wait in the backlog until [`serve_on`] runs), so callers may print the URL or connect.
pub async fn bind(listen: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("the control plane cannot listen on {listen}"))
}

/// Serves the control plane on a bound listener until `shutdown` completes.
pub async fn serve_on(
    cp: ControlPlane,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let _renewal = cp.spawn_certificate_renewal(std::time::Duration::from_secs(3600));
    let listen = listener
        .local_addr()
        .context("the control plane's listener")?;
    tracing::info!(%listen, "control plane serving");
    axum::serve(listener, cp.router())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
