//! `paved up`: the whole platform on this machine with no external service — the control
//! plane on SQLite (with its OpenID provider for local users), a gateway connected to it, a
//! demo upstream, and the demo app onboarded from `examples/demo/paved.yaml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use paved_control_plane::services::{NewToken, NewUser};
use paved_control_plane::{ControlPlane, ControlPlaneConfig, Principal, Role, Scope};
use paved_gateway::accesslog::AccessLogOptions;
use paved_gateway::distribution::{self, ControlPlane as ControlPlaneClient};
use paved_gateway::{Gateway, GatewayOptions, ShutdownHandle};
use paved_model::snapshot::Listener;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

/// The demo app's intent (its upstream is the demo upstream below).
const DEMO_INTENT: &str = include_str!("../../examples/demo/paved.yaml");

/// Arguments of `paved up`.
#[derive(clap::Args, Clone)]
pub struct UpArgs {
    /// Where state lives: the database, keys, credentials, the gateway's last good snapshot.
    #[arg(long, default_value = ".paved")]
    pub data_dir: PathBuf,
    /// The gateway's listener.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The control plane's listener (GraphQL, OpenID provider, distribution).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub control_plane: SocketAddr,
    /// The gateway's admin listener (health, metrics).
    #[arg(long, default_value = "127.0.0.1:9901")]
    pub admin: SocketAddr,
    /// The demo upstream (the intent's `upstream`).
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub demo_upstream: SocketAddr,
}

/// What `paved up` creates once and reuses on later runs (the file is readable by its owner only).
#[derive(Serialize, Deserialize)]
pub struct Credentials {
    /// The `admin` user's password.
    pub admin_password: String,
    /// The `demo` user's password.
    pub demo_password: String,
    /// An API token with the `admin` scope.
    pub api_token: String,
    /// The gateway's token (scope `gateway`).
    pub gateway_token: String,
}

fn random_secret() -> String {
    let mut rng = rand::thread_rng();
    (0..24)
        .map(|_| {
            let chars = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
            chars[rng.gen_range(0..chars.len())] as char
        })
        .collect()
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Creates the users and tokens on the first run; reads them back on later runs.
async fn bootstrap(cp: &ControlPlane, data_dir: &Path) -> anyhow::Result<Credentials> {
    let path = data_dir.join("credentials.json");
    if let Ok(bytes) = std::fs::read(&path) {
        let credentials: Credentials = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is damaged; remove {} to start afresh",
                path.display(),
                data_dir.display()
            )
        })?;
        cp.authenticate_token(&credentials.gateway_token)
            .await
            .with_context(|| {
                format!(
                    "the saved gateway token no longer works; remove {} to start afresh",
                    data_dir.display()
                )
            })?;
        return Ok(credentials);
    }
    let system = Principal::system();
    let credentials = Credentials {
        admin_password: random_secret(),
        demo_password: random_secret(),
        api_token: String::new(),
        gateway_token: String::new(),
    };
    let user = |username: &str, password: &str, role: Role, groups: &[&str]| NewUser {
        username: username.into(),
        password: password.into(),
        email: Some(format!("{username}@paved.localhost")),
        display_name: Some(username.into()),
        role,
        teams: vec!["platform".into()],
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    };
    cp.create_user(
        &system,
        user(
            "admin",
            &credentials.admin_password,
            Role::Admin,
            &["admins"],
        ),
    )
    .await
    .with_context(|| {
        format!(
            "creating the admin user (a database without {} exists: remove {})",
            path.display(),
            data_dir.display()
        )
    })?;
    cp.create_user(
        &system,
        user(
            "demo",
            &credentials.demo_password,
            Role::AppOwner,
            &["engineering"],
        ),
    )
    .await
    .context("creating the demo user")?;
    let token = |name: &str, scope: Scope| NewToken {
        name: name.into(),
        scopes: vec![scope],
        apps: Vec::new(),
        teams: Vec::new(),
        expires_at: None,
    };
    let api = cp
        .create_token(&system, token("paved up: admin API", Scope::Admin))
        .await?;
    let gateway = cp
        .create_token(&system, token("paved up: gateway", Scope::Gateway))
        .await?;
    let credentials = Credentials {
        api_token: api.secret,
        gateway_token: gateway.secret,
        ..credentials
    };
    write_private(&path, &serde_json::to_vec_pretty(&credentials)?)?;
    Ok(credentials)
}

/// The control plane, the demo upstream and the demo app, running; the gateway is started
/// from [`Platform::gateway_client`].
pub struct Platform {
    /// The users' passwords and the tokens.
    pub credentials: Credentials,
    /// How the gateway reaches the control plane.
    pub gateway_client: ControlPlaneClient,
    /// The demo app's intent version.
    pub demo_version: i32,
    /// The control plane's URL.
    pub public_url: String,
    /// The control plane (what the in-process flow agent stores its batches in).
    pub control_plane: ControlPlane,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Platform {
    /// Stops the control plane (the demo upstream lives as long as the process).
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            let _ = (&mut self.server).await;
        }
    }
}

/// Starts the control plane (and its users and tokens on the first run), the demo upstream,
/// and applies the demo intent. `data_dir` must exist.
pub async fn start_platform(args: &UpArgs, data_dir: &Path) -> anyhow::Result<Platform> {
    let public_url = format!("http://{}", args.control_plane);
    eprintln!(
        "paved up: starting the control plane (SQLite at {}/paved.db)",
        data_dir.display()
    );
    let mut config = ControlPlaneConfig::new(
        format!("sqlite://{}/paved.db?mode=rwc", data_dir.display()),
        public_url.clone(),
    );
    config.development = true;
    config.oidc.key_file = Some(data_dir.join("oidc-key.pem"));
    config.compile.listeners = vec![Listener {
        address: args.listen,
        tls: None,
        http2: false,
    }];
    config.compile.admin.address = args.admin;
    config.compile.identity.endpoints = vec![args.control_plane.to_string().as_str().into()];
    let cp = ControlPlane::start(config)
        .await
        .context("starting the control plane")?;
    let credentials = bootstrap(&cp, data_dir).await?;

    eprintln!(
        "paved up: starting the demo upstream on {}",
        args.demo_upstream
    );
    crate::demo::serve(args.demo_upstream).await?;
    eprintln!("paved up: onboarding the demo app (examples/demo/paved.yaml)");
    let intent = DEMO_INTENT.replace("127.0.0.1:8090", &args.demo_upstream.to_string());
    let applied = cp
        .apply_intent(&Principal::system(), &intent, "examples/demo/paved.yaml")
        .await
        .context("applying the demo intent")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let control_plane = cp.clone();
    // Bound before `start_platform` returns: callers connect right away.
    let listener = crate::control_plane_cmd::bind(args.control_plane).await?;
    let server = tokio::spawn(crate::control_plane_cmd::serve_on(cp, listener, async {
        let _ = stopped.await;
    }));
    let gateway_client = ControlPlaneClient {
        address: args.control_plane.to_string(),
        gateway_id: "paved-up".into(),
        token: credentials.gateway_token.clone(),
        state_dir: data_dir.join("gateway"),
    };
    Ok(Platform {
        credentials,
        gateway_client,
        demo_version: applied.version.version,
        public_url,
        control_plane,
        stop: Some(stop),
        server,
    })
}

/// The gateway's options under `paved up`.
pub fn gateway_options(data_dir: &Path) -> GatewayOptions {
    GatewayOptions {
        base_dir: data_dir.to_path_buf(),
        cache_dir: Some(data_dir.join("wasm-cache")),
        threads: 0,
        redis_url: None,
        access_log: Some(AccessLogOptions {
            path: data_dir.join("gateway/access.log"),
            max_bytes: 64 << 20,
            keep: 5,
        }),
    }
}

/// Brings everything up and serves until Ctrl-C.
pub fn run(args: UpArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut platform = runtime.block_on(start_platform(&args, &data_dir))?;
    // Who talks to whom on this machine (the gateway to the demo app among them), from the
    // eBPF agent through an in-process channel. Without eBPF, Paved runs without flows.
    let flows = match runtime.block_on(crate::flow_agent_cmd::start_in_process(
        &platform.control_plane,
        std::time::Duration::from_secs(10),
    )) {
        Ok(agent) => {
            eprintln!("paved up: flow agent running (eBPF, 10 s intervals)");
            Some(agent)
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "continuing without flow telemetry");
            eprintln!("paved up: warning: no flow telemetry: {e:#}");
            None
        }
    };
    let public_url = platform.public_url.clone();
    let credentials = &platform.credentials;

    eprintln!(
        "paved up: starting the gateway on {} (it fetches its configuration from the control plane)",
        args.listen
    );
    let client = platform.gateway_client.clone();
    let snapshot = runtime.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            distribution::initial_snapshot(&client),
        )
        .await
    });
    let Ok(snapshot) = snapshot else {
        bail!("the gateway got no configuration from the control plane within 30 s");
    };
    let gateway = Arc::new(
        Gateway::new(snapshot, gateway_options(&data_dir))
            .context("loading the gateway configuration")?,
    );
    gateway
        .background()
        .spawn(distribution::watch(gateway.clone(), client));
    let port = args.listen.port();
    println!(
        "\nPaved is up.\n\n\
         \x20 The Paved console (UI):     {public_url}/\n\
         \x20 The demo app (behind SSO):  http://demo.localhost:{port}/\n\
         \x20   log in to both as demo / {demo}   (admin / {admin} is an admin)\n\
         \x20 GraphQL (GraphiQL):         {public_url}/graphql\n\
         \x20   token: {token}\n\
         \x20   curl -s {public_url}/graphql -H 'authorization: Bearer {token}' \\\n\
         \x20        -H 'content-type: application/json' -d '{{\"query\":\"{{ apps {{ nodes {{ name }} }} }}\"}}'\n\
         \x20 Gateway health and metrics: http://{admin_addr}/healthz  http://{admin_addr}/metrics\n\
         \x20 Apply an intent:            PAVED_TOKEN={token} paved apply -f examples/demo/paved.yaml --dry-run\n\
         \x20 State:                      {data} (credentials in credentials.json)\n\
         \x20 Demo app version {version}, snapshot {snapshot}. Ctrl-C stops everything.\n",
        demo = credentials.demo_password,
        admin = credentials.admin_password,
        token = credentials.api_token,
        admin_addr = args.admin,
        data = data_dir.display(),
        version = platform.demo_version,
        snapshot = gateway.version(),
    );

    if flows.is_some() {
        println!(
            "  Flows (who talks to whom):  curl -s {public_url}/graphql -H 'authorization: Bearer {token}' \\\n\
             \x20       -H 'content-type: application/json' -d '{{\"query\":\"{{ appDependencies(app: \\\"demo\\\") {{ inbound {{ source bytes connections }} }} }}\"}}'\n",
            token = credentials.api_token,
        );
    }

    let result = gateway.run(ShutdownHandle::new().watch());
    eprintln!("paved up: stopping");
    if let Some(agent) = flows {
        runtime.block_on(agent.stop());
    }
    runtime.block_on(platform.stop());
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    result?;
    Ok(())
}
