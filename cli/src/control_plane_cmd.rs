//! `paved control-plane`: the control plane alone (GraphQL, OpenID provider, distribution).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use paved_control_plane::config::{
    AcmeSettings, DnsProviderSettings, ExternalOidcSettings, GroupMapping, IssuerSettings,
    Rfc2136Settings, TsigSecret,
};
use paved_control_plane::services::flows::{DEFAULT_APP_LABEL, KubernetesPods};
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
    /// Resolve upstream endpoints given by DNS names (for flow attribution) by asking this
    /// nameserver (`ip:port`) directly instead of the system resolver.
    #[arg(long, env = "PAVED_FLOWS_NAMESERVER")]
    flows_nameserver: Option<SocketAddr>,
    /// Kubernetes pods' addresses leased to their apps (flow attribution).
    #[command(flatten)]
    kube: KubeArgs,
    /// People sign in to the UI through an external OpenID provider.
    #[command(flatten)]
    external_oidc: ExternalOidcArgs,
    /// App certificates from an ACME directory instead of the internal CA.
    #[command(flatten)]
    acme: AcmeArgs,
}

/// `--acme-*` and `--dns-*`: app certificates from an ACME (RFC 8555) directory, with
/// `dns-01` challenges published by RFC 2136 updates (docs/control-plane.md, "TLS").
#[derive(clap::Args, Debug, Default, Clone)]
pub struct AcmeArgs {
    /// The ACME directory URL (e.g. Let's Encrypt's); without it the internal CA signs.
    #[arg(long, env = "PAVED_ACME_DIRECTORY")]
    pub acme_directory: Option<String>,
    /// Contact e-mail of the ACME account.
    #[arg(long, env = "PAVED_ACME_CONTACT")]
    pub acme_contact: Option<String>,
    /// PEM roots to check the directory's HTTPS against (a private or test CA).
    #[arg(long, env = "PAVED_ACME_CA_BUNDLE")]
    pub acme_ca_bundle: Option<PathBuf>,
    /// The authoritative DNS server that takes the TSIG-signed updates (`ip:port`).
    #[arg(long, env = "PAVED_DNS_SERVER")]
    pub dns_server: Option<SocketAddr>,
    /// The zone updated there (every app domain must be inside it).
    #[arg(long, env = "PAVED_DNS_ZONE")]
    pub dns_zone: Option<String>,
    /// The TSIG key's name, as the DNS server knows it.
    #[arg(long, env = "PAVED_DNS_TSIG_KEY_NAME")]
    pub dns_tsig_key_name: Option<String>,
    /// The TSIG key (hmac-sha256, base64); prefer the environment variable.
    #[arg(long, env = "PAVED_DNS_TSIG_SECRET", hide_env_values = true)]
    pub dns_tsig_secret: Option<String>,
}

impl AcmeArgs {
    /// The issuer these flags describe: the internal CA without `--acme-directory`; an error
    /// naming the missing flag when they are incomplete.
    pub fn issuer(&self) -> anyhow::Result<IssuerSettings> {
        let Some(directory) = &self.acme_directory else {
            let set = self.acme_contact.is_some()
                || self.acme_ca_bundle.is_some()
                || self.dns_server.is_some()
                || self.dns_zone.is_some()
                || self.dns_tsig_key_name.is_some()
                || self.dns_tsig_secret.is_some();
            if set {
                anyhow::bail!(
                    "--acme-directory is required by the other --acme-* and --dns-* options"
                );
            }
            return Ok(IssuerSettings::InternalCa);
        };
        let missing = |flag: &str| anyhow::anyhow!("{flag} is required with --acme-directory");
        let server = self.dns_server.ok_or_else(|| missing("--dns-server"))?;
        let zone = self.dns_zone.clone().ok_or_else(|| missing("--dns-zone"))?;
        let key_name = self
            .dns_tsig_key_name
            .clone()
            .ok_or_else(|| missing("--dns-tsig-key-name"))?;
        let secret = self
            .dns_tsig_secret
            .clone()
            .ok_or_else(|| missing("--dns-tsig-secret (or PAVED_DNS_TSIG_SECRET)"))?;
        let dns = DnsProviderSettings::Rfc2136(Rfc2136Settings::new(
            server,
            zone,
            key_name,
            TsigSecret::new(secret),
        ));
        let mut acme = AcmeSettings::new(directory.clone(), dns);
        acme.contact_email = self.acme_contact.clone();
        acme.ca_bundle = self.acme_ca_bundle.clone();
        Ok(IssuerSettings::Acme(Box::new(acme)))
    }
}

/// `--kube-*`: the addresses of running Kubernetes pods are leased to the app their label
/// names, listed from the API server every 30 s (docs/flow-telemetry.md, "Leases").
#[derive(clap::Args, Debug, Default, Clone)]
pub struct KubeArgs {
    /// The Kubernetes API server to list pods from (`https://10.96.0.1:443`).
    #[arg(long, env = "PAVED_KUBE_API_URL")]
    pub kube_api_url: Option<String>,
    /// A file holding the bearer token, read at every poll.
    #[arg(long, env = "PAVED_KUBE_TOKEN_FILE")]
    pub kube_token_file: Option<PathBuf>,
    /// PEM roots the API server's certificate is checked against.
    #[arg(long, env = "PAVED_KUBE_CA_FILE")]
    pub kube_ca_file: Option<PathBuf>,
    /// The pod label naming the app (default: paved.dev/app).
    #[arg(long, env = "PAVED_KUBE_APP_LABEL")]
    pub kube_app_label: Option<String>,
    /// Only this namespace's pods (default: every namespace).
    #[arg(long, env = "PAVED_KUBE_NAMESPACE")]
    pub kube_namespace: Option<String>,
    /// The API server of the cluster this runs in (KUBERNETES_SERVICE_HOST and _PORT), with
    /// the pod's service-account token and CA bundle; the other --kube-* flags override.
    #[arg(long, env = "PAVED_KUBE_IN_CLUSTER")]
    pub kube_in_cluster: bool,
}

impl KubeArgs {
    /// The settings these flags describe: `None` without `--kube-api-url` or
    /// `--kube-in-cluster`; an error when they cannot work.
    pub fn settings(&self) -> anyhow::Result<Option<KubernetesPods>> {
        self.settings_with(KubernetesPods::in_cluster)
    }

    /// Like [`KubeArgs::settings`], with `in_cluster` giving the in-cluster defaults.
    fn settings_with(
        &self,
        in_cluster: impl FnOnce() -> Option<KubernetesPods>,
    ) -> anyhow::Result<Option<KubernetesPods>> {
        let mut pods = if self.kube_in_cluster {
            let mut pods = in_cluster().ok_or_else(|| {
                anyhow::anyhow!(
                    "--kube-in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (not in a pod)"
                )
            })?;
            if let Some(url) = &self.kube_api_url {
                pods.api_url = url.clone();
            }
            pods
        } else if let Some(url) = &self.kube_api_url {
            KubernetesPods::new(url.clone())
        } else {
            let set = self.kube_token_file.is_some()
                || self.kube_ca_file.is_some()
                || self.kube_app_label.is_some()
                || self.kube_namespace.is_some();
            if set {
                anyhow::bail!(
                    "--kube-api-url or --kube-in-cluster is required by the other --kube-* options"
                );
            }
            return Ok(None);
        };
        if let Some(file) = &self.kube_token_file {
            pods.token_file = Some(file.clone());
        }
        if let Some(file) = &self.kube_ca_file {
            pods.ca_file = Some(file.clone());
        }
        pods.app_label = self
            .kube_app_label
            .clone()
            .unwrap_or_else(|| DEFAULT_APP_LABEL.to_string());
        if pods.app_label.trim().is_empty() {
            anyhow::bail!("--kube-app-label: empty");
        }
        pods.namespace = self.kube_namespace.clone().filter(|n| !n.trim().is_empty());
        if !(pods.api_url.starts_with("https://") || pods.api_url.starts_with("http://")) {
            anyhow::bail!("--kube-api-url: {} is not an http(s) URL", pods.api_url);
        }
        Ok(Some(pods))
    }
}

/// `--oidc-external-*`: people sign in to the UI through this external OpenID provider
/// instead of the built-in one (docs/identity.md).
#[derive(clap::Args, Debug, Default, Clone)]
pub struct ExternalOidcArgs {
    /// The external provider's issuer URL (its tokens' `iss`, byte for byte).
    #[arg(long, env = "PAVED_OIDC_EXTERNAL_ISSUER")]
    pub oidc_external_issuer: Option<String>,
    /// The UI's client id at the external provider.
    #[arg(long, env = "PAVED_OIDC_EXTERNAL_CLIENT_ID")]
    pub oidc_external_client_id: Option<String>,
    /// The client's secret (prefer the environment variable); none: a public client (PKCE).
    #[arg(
        long,
        env = "PAVED_OIDC_EXTERNAL_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub oidc_external_client_secret: Option<String>,
    /// Scopes to ask for, comma-separated (default: openid,profile,email,groups).
    #[arg(long, env = "PAVED_OIDC_EXTERNAL_SCOPES", value_delimiter = ',')]
    pub oidc_external_scopes: Vec<String>,
    /// The claim (or dotted path) listing the person's groups (default: groups).
    #[arg(long, env = "PAVED_OIDC_EXTERNAL_GROUPS_CLAIM")]
    pub oidc_external_groups_claim: Option<String>,
    /// A provider group's Paved role and team: `group=role` or `group=role:team` (roles:
    /// app-owner, security-reviewer, admin). Repeat it, or separate with commas.
    #[arg(long, env = "PAVED_OIDC_EXTERNAL_GROUP_MAP", value_delimiter = ',')]
    pub oidc_external_group_map: Vec<String>,
    /// Refuse people no group mapping covers instead of creating their account (app owner
    /// of no team) at their first sign-in.
    #[arg(long, env = "PAVED_OIDC_EXTERNAL_NO_CREATE_USERS")]
    pub oidc_external_no_create_users: bool,
}

impl ExternalOidcArgs {
    /// The settings these flags describe: `None` without an issuer; an error naming the
    /// setting when they cannot work.
    pub fn settings(&self) -> anyhow::Result<Option<ExternalOidcSettings>> {
        let Some(issuer) = &self.oidc_external_issuer else {
            let set = self.oidc_external_client_id.is_some()
                || self.oidc_external_client_secret.is_some()
                || !self.oidc_external_scopes.is_empty()
                || self.oidc_external_groups_claim.is_some()
                || !self.oidc_external_group_map.is_empty()
                || self.oidc_external_no_create_users;
            if set {
                anyhow::bail!(
                    "invalid setting `oidc.external.issuer` (--oidc-external-issuer): required by the other --oidc-external-* options"
                );
            }
            return Ok(None);
        };
        let client_id = self.oidc_external_client_id.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "invalid setting `oidc.external.client_id` (--oidc-external-client-id): required with --oidc-external-issuer"
            )
        })?;
        let mut s = ExternalOidcSettings::new(issuer.clone(), client_id);
        s.client_secret = self.oidc_external_client_secret.clone();
        if !self.oidc_external_scopes.is_empty() {
            s.scopes = self
                .oidc_external_scopes
                .iter()
                .map(|x| x.trim().to_string())
                .collect();
        }
        if let Some(claim) = &self.oidc_external_groups_claim {
            s.groups_claim = claim.clone();
        }
        s.group_mappings = self
            .oidc_external_group_map
            .iter()
            .map(|m| m.parse::<GroupMapping>())
            .collect::<Result<_, _>>()?;
        s.create_users = !self.oidc_external_no_create_users;
        s.validate()?;
        Ok(Some(s))
    }
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
    config.oidc.external = args.external_oidc.settings()?;
    config.certificates.issuer = args.acme.issuer()?;
    let kubernetes = args.kube.settings()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let cp = ControlPlane::start(config)
            .await
            .context("starting the control plane")?;
        if let Some(nameserver) = args.flows_nameserver {
            // Before the resolver's first pass (5 s after the start).
            let mut settings = cp.flow_settings();
            settings.upstream_nameserver = Some(nameserver);
            cp.configure_flows(settings).await;
        }
        if let Some(pods) = kubernetes {
            // Before the pod sync's first pass (5 s after the start).
            tracing::info!(api_url = %pods.api_url, namespace = ?pods.namespace, label = %pods.app_label, "Kubernetes pod leases on");
            let mut settings = cp.flow_settings();
            settings.kubernetes = Some(pods);
            cp.configure_flows(settings).await;
        }
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
    let router = cp.router();
    let stopping = Arc::new(tokio::sync::Notify::new());
    let graceful = {
        let stopping = stopping.clone();
        async move {
            shutdown.await;
            // Long polls answer now; requests in flight get `SHUTDOWN_GRACE` to finish.
            cp.begin_shutdown();
            stopping.notify_one();
        }
    };
    let serving = axum::serve(listener, router)
        .with_graceful_shutdown(graceful)
        .into_future();
    tokio::select! {
        served = serving => served?,
        () = async {
            stopping.notified().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the grace period (WebSockets, slow clients); closing them"),
    }
    Ok(())
}

/// How long a stopping control plane waits for requests in flight.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        external: ExternalOidcArgs,
    }

    fn settings(args: &[&str]) -> anyhow::Result<Option<ExternalOidcSettings>> {
        Cli::try_parse_from(std::iter::once("paved").chain(args.iter().copied()))?
            .external
            .settings()
    }

    #[test]
    fn external_provider_flags_make_the_settings_or_name_the_wrong_one() {
        assert_eq!(settings(&[]).expect("none"), None);
        let s = settings(&[
            "--oidc-external-issuer",
            "https://sso.example.com/realms/acme",
            "--oidc-external-client-id",
            "paved-ui",
            "--oidc-external-group-map",
            "platform=admin,payments-devs=app-owner:payments",
            "--oidc-external-no-create-users",
        ])
        .expect("valid")
        .expect("set");
        assert_eq!(s.issuer, "https://sso.example.com/realms/acme");
        assert_eq!(s.group_mappings.len(), 2);
        assert_eq!(s.group_mappings[1].team.as_deref(), Some("payments"));
        assert!(!s.create_users);
        assert_eq!(s.client_secret, None, "a public client");

        let missing_id = settings(&["--oidc-external-issuer", "https://sso.example.com"]);
        let e = missing_id.expect_err("refused").to_string();
        assert!(e.contains("oidc.external.client_id"), "{e}");
        let no_issuer = settings(&["--oidc-external-client-id", "paved-ui"]);
        let e = no_issuer.expect_err("refused").to_string();
        assert!(e.contains("oidc.external.issuer"), "{e}");
        let bad_role = settings(&[
            "--oidc-external-issuer",
            "https://sso.example.com",
            "--oidc-external-client-id",
            "ui",
            "--oidc-external-group-map",
            "ops=root",
        ]);
        let e = bad_role.expect_err("refused").to_string();
        assert!(e.contains("oidc.external.group_mappings"), "{e}");
    }
}

#[cfg(test)]
mod flows_args_tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: ControlPlaneArgs,
    }

    #[test]
    fn the_flows_nameserver_flag_takes_an_address_and_defaults_to_the_system_resolver() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("paved").chain(args.iter().copied()))
                .map(|c| c.args.flows_nameserver)
        };
        assert_eq!(parse(&[]).expect("no flag"), None);
        assert_eq!(
            parse(&["--flows-nameserver", "10.0.0.53:53"]).expect("an address"),
            Some(SocketAddr::from(([10, 0, 0, 53], 53)))
        );
        assert!(parse(&["--flows-nameserver", "dns.internal"]).is_err());
    }
}

#[cfg(test)]
mod kube_args_tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        kube: KubeArgs,
    }

    fn settings(args: &[&str]) -> anyhow::Result<Option<KubernetesPods>> {
        let in_cluster = || {
            let mut pods = KubernetesPods::new("https://10.96.0.1:443");
            pods.token_file = Some(PathBuf::from("/sa/token"));
            pods.ca_file = Some(PathBuf::from("/sa/ca.crt"));
            Some(pods)
        };
        Cli::try_parse_from(std::iter::once("paved").chain(args.iter().copied()))?
            .kube
            .settings_with(in_cluster)
    }

    #[test]
    fn without_kube_flags_no_pods_are_listed() {
        assert_eq!(settings(&[]).expect("no flags"), None);
    }

    #[test]
    fn kube_flags_describe_the_api_server_token_ca_label_and_namespace() {
        let pods = settings(&[
            "--kube-api-url",
            "https://k8s.example:6443",
            "--kube-token-file",
            "/t",
            "--kube-ca-file",
            "/ca.pem",
            "--kube-app-label",
            "app",
            "--kube-namespace",
            "shop",
        ])
        .expect("valid")
        .expect("on");
        assert_eq!(pods.api_url, "https://k8s.example:6443");
        assert_eq!(pods.token_file, Some(PathBuf::from("/t")));
        assert_eq!(pods.ca_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(pods.app_label, "app");
        assert_eq!(pods.namespace.as_deref(), Some("shop"));

        let defaults = settings(&["--kube-api-url", "http://127.0.0.1:8001"])
            .expect("valid")
            .expect("on");
        assert_eq!(defaults.app_label, "paved.dev/app");
        assert_eq!(defaults.namespace, None, "every namespace");
        assert_eq!(defaults.token_file, None);
    }

    #[test]
    fn in_cluster_takes_the_service_account_and_other_flags_override() {
        let pods = settings(&["--kube-in-cluster", "--kube-namespace", "paved"])
            .expect("valid")
            .expect("on");
        assert_eq!(pods.api_url, "https://10.96.0.1:443");
        assert_eq!(pods.token_file, Some(PathBuf::from("/sa/token")));
        assert_eq!(pods.ca_file, Some(PathBuf::from("/sa/ca.crt")));
        assert_eq!(pods.namespace.as_deref(), Some("paved"));

        let outside = Cli::try_parse_from(["paved", "--kube-in-cluster"])
            .expect("parsed")
            .kube
            .settings_with(|| None);
        let e = outside.expect_err("not in a pod").to_string();
        assert!(e.contains("KUBERNETES_SERVICE_HOST"), "{e}");
    }

    #[test]
    fn kube_options_without_an_api_server_are_refused() {
        let e = settings(&["--kube-namespace", "shop"])
            .expect_err("refused")
            .to_string();
        assert!(e.contains("--kube-api-url"), "{e}");
        assert!(settings(&["--kube-api-url", "not a url"]).is_err());
    }
}

#[cfg(test)]
mod acme_tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        acme: AcmeArgs,
    }

    fn issuer(args: &[&str]) -> anyhow::Result<IssuerSettings> {
        Cli::try_parse_from(std::iter::once("paved").chain(args.iter().copied()))?
            .acme
            .issuer()
    }

    #[test]
    fn without_acme_flags_the_internal_ca_signs() {
        assert!(matches!(
            issuer(&[]).expect("no flags"),
            IssuerSettings::InternalCa
        ));
    }

    #[test]
    fn acme_flags_select_acme_with_rfc2136_and_incomplete_ones_name_what_is_missing() {
        let full = [
            "--acme-directory",
            "https://acme.example/dir",
            "--acme-contact",
            "ops@example.com",
            "--dns-server",
            "192.0.2.53:53",
            "--dns-zone",
            "paved.example.com",
            "--dns-tsig-key-name",
            "paved-acme",
            "--dns-tsig-secret",
            "c2VjcmV0",
        ];
        let IssuerSettings::Acme(acme) = issuer(&full).expect("complete") else {
            panic!("expected ACME");
        };
        assert_eq!(acme.directory_url, "https://acme.example/dir");
        assert_eq!(acme.contact_email.as_deref(), Some("ops@example.com"));
        let DnsProviderSettings::Rfc2136(dns) = &acme.dns;
        assert_eq!(dns.zone, "paved.example.com");
        assert_eq!(dns.tsig_secret.expose(), "c2VjcmV0");
        assert!(
            !format!("{acme:?}").contains("c2VjcmV0"),
            "the secret never shows in debug output"
        );

        let error = issuer(&full[..full.len() - 2]).expect_err("no secret");
        assert!(error.to_string().contains("--dns-tsig-secret"), "{error}");
        let error = issuer(&["--dns-zone", "paved.example.com"]).expect_err("no directory");
        assert!(error.to_string().contains("--acme-directory"), "{error}");
    }
}
