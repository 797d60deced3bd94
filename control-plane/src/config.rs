//! Settings of the control plane, filled by the binary (`paved up`, `paved control-plane`).

use std::path::PathBuf;
use std::time::Duration;

use paved_model::compile::CompileOptions;

/// The default database: a SQLite file in the working directory, created when missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://paved.db?mode=rwc";

/// Everything the control plane needs to start.
#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    /// `sqlite://path?mode=rwc` (the default) or `postgres://...` (production).
    pub database_url: String,
    /// PostgreSQL schema to use (put first on the `search_path`); `None`: the server's default.
    pub database_schema: Option<String>,
    /// The control plane's external base URL, such as `http://127.0.0.1:8081`: the OpenID
    /// issuer and the base of every endpoint it advertises.
    pub public_url: String,
    /// Development mode: GraphiQL at `GET /graphql`.
    pub development: bool,
    /// Platform settings of every compiled snapshot (admin address, listeners, identity
    /// provider as seen by the gateway, rate-limit backend). Its `version` is replaced by the
    /// snapshot's version. Listeners whose `tls` is `Some` get the managed certificates of every
    /// app domain appended to their certificate list.
    pub compile: CompileOptions,
    /// The built-in OpenID provider.
    pub oidc: OidcSettings,
    /// Upper bound of the `wait` of a snapshot long poll.
    pub max_long_poll: Duration,
    /// Certificates of the internal CA.
    pub certificates: CertificateSettings,
    /// GraphQL query limits.
    pub graphql: GraphqlLimits,
    /// The web UI and people's sign-in to it (docs/ui-hosting.md).
    pub ui: UiSettings,
}

impl ControlPlaneConfig {
    /// A configuration with defaults for everything but the database and the public URL.
    pub fn new(database_url: impl Into<String>, public_url: impl Into<String>) -> Self {
        let public_url = public_url.into();
        let mut compile = CompileOptions::default();
        compile.identity.issuer = public_url.trim_end_matches('/').to_string();
        ControlPlaneConfig {
            database_url: database_url.into(),
            database_schema: None,
            public_url,
            development: false,
            compile,
            oidc: OidcSettings::default(),
            max_long_poll: Duration::from_secs(30),
            certificates: CertificateSettings::default(),
            graphql: GraphqlLimits::default(),
            ui: UiSettings::default(),
        }
    }

    /// The database URL from `DATABASE_URL`, or the default SQLite file.
    pub fn database_url_from_env() -> String {
        std::env::var("DATABASE_URL")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string())
    }

    /// The issuer URL: the public URL without a trailing slash.
    pub fn issuer(&self) -> String {
        self.public_url.trim_end_matches('/').to_string()
    }

    /// Where the OpenID provider sends people back to the UI: `{public_url}/ui/callback`.
    pub fn ui_callback_url(&self) -> String {
        format!("{}/ui/callback", self.issuer())
    }

    /// The UI client's redirect URIs: [`OidcSettings::ui_redirect_uris`], plus
    /// [`ControlPlaneConfig::ui_callback_url`] when the UI is served (so that sign-in works
    /// with no setting).
    pub fn ui_redirect_uris(&self) -> Vec<String> {
        let mut uris = self.oidc.ui_redirect_uris.clone();
        let callback = self.ui_callback_url();
        if self.ui.enabled && !uris.contains(&callback) {
            uris.push(callback);
        }
        uris
    }
}

/// Settings of the web UI the control plane serves (pages, `/ui/...`, `/pkg/...`).
#[derive(Debug, Clone)]
pub struct UiSettings {
    /// Serve the UI. People sign in through the built-in OpenID provider (`oidc.enabled`), as
    /// its client `oidc.ui_client_id`, with the issuer `public_url`.
    pub enabled: bool,
}

impl Default for UiSettings {
    fn default() -> Self {
        UiSettings { enabled: true }
    }
}

/// Settings of the built-in OpenID provider (small-install mode).
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// Serve the provider's endpoints (discovery, JWKS, authorize, token, userinfo).
    pub enabled: bool,
    /// Where the ES256 signing key lives: a PKCS#8 PEM file (created when missing), or the
    /// database when `None`.
    pub key_file: Option<PathBuf>,
    /// Client id of the control plane's own UI; access tokens issued to it authenticate people
    /// on the API.
    pub ui_client_id: String,
    /// Extra redirect URIs of the UI client (registered at start); `{public_url}/ui/callback`
    /// is added when the UI is served (see [`ControlPlaneConfig::ui_redirect_uris`]).
    pub ui_redirect_uris: Vec<String>,
    /// Register the gateway's client (`compile.identity.client_id`, with
    /// `compile.identity.client_secret`) and keep its redirect URIs equal to the callback of
    /// every app domain.
    pub manage_gateway_client: bool,
    /// Lifetime of access tokens.
    pub access_token_ttl: Duration,
    /// Lifetime of ID tokens.
    pub id_token_ttl: Duration,
    /// Lifetime of authorization codes.
    pub code_ttl: Duration,
    /// Lifetime of the provider's own sign-in session (single sign-on across apps).
    pub session_ttl: Duration,
}

impl Default for OidcSettings {
    fn default() -> Self {
        OidcSettings {
            enabled: true,
            key_file: None,
            ui_client_id: "paved-ui".into(),
            ui_redirect_uris: Vec::new(),
            manage_gateway_client: true,
            access_token_ttl: Duration::from_secs(3600),
            id_token_ttl: Duration::from_secs(3600),
            code_ttl: Duration::from_secs(60),
            session_ttl: Duration::from_secs(8 * 3600),
        }
    }
}

/// Validity and renewal of the certificates issued for app domains.
#[derive(Debug, Clone)]
pub struct CertificateSettings {
    /// Issue certificates at all (only useful when a listener has TLS).
    pub enabled: bool,
    /// Validity of a leaf certificate.
    pub validity: Duration,
    /// Renew a certificate when less than this is left.
    pub renew_before: Duration,
}

impl Default for CertificateSettings {
    fn default() -> Self {
        CertificateSettings {
            enabled: true,
            validity: Duration::from_secs(90 * 86_400),
            renew_before: Duration::from_secs(30 * 86_400),
        }
    }
}

/// Limits applied to every GraphQL operation.
#[derive(Debug, Clone, Copy)]
pub struct GraphqlLimits {
    /// Maximum nesting depth of a query.
    pub max_depth: usize,
    /// Maximum complexity (fields weighted by list sizes).
    pub max_complexity: usize,
}

impl Default for GraphqlLimits {
    fn default() -> Self {
        GraphqlLimits {
            max_depth: 15,
            max_complexity: 2_000,
        }
    }
}
