//! Settings of the control plane, filled by the binary (`paved up`, `paved control-plane`).

use std::path::PathBuf;
use std::time::Duration;

use paved_model::compile::CompileOptions;

use crate::auth::Role;

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
    /// its client `oidc.ui_client_id`, with the issuer `public_url`, or through
    /// `oidc.external` when it is set.
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
    /// People sign in to the UI through this external OpenID provider instead of the
    /// built-in one (docs/identity.md). `None`: the built-in provider.
    pub external: Option<ExternalOidcSettings>,
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
            external: None,
        }
    }
}

/// An external OpenID provider people sign in to the UI with (`[oidc.external]`; flags
/// `--oidc-external-*` of `paved control-plane`).
#[derive(Clone, PartialEq, Eq)]
pub struct ExternalOidcSettings {
    /// The provider's issuer URL, exactly as its tokens and discovery document say it
    /// (`https://`, or `http://` on a loopback host for tests).
    pub issuer: String,
    /// The UI's client id at the provider (the `aud` of its ID tokens).
    pub client_id: String,
    /// The client's secret (sent with HTTP Basic, `client_secret_basic`); `None`: a public
    /// client, protected by PKCE alone.
    pub client_secret: Option<String>,
    /// Scopes asked for; `openid` is added when missing.
    pub scopes: Vec<String>,
    /// The claim listing the person's groups (a top-level claim, or a dotted path such as
    /// `realm_access.roles`).
    pub groups_claim: String,
    /// Provider groups → Paved role and team.
    pub group_mappings: Vec<GroupMapping>,
    /// Create an account at the first sign-in of a person no mapping covers, with the least
    /// privilege (app owner of no team). `false`: such a person is refused unless already
    /// known.
    pub create_users: bool,
    /// Clock difference tolerated on `exp`, `nbf` and `iat` (at most five minutes).
    pub clock_skew: Duration,
    /// Upper bound of each request to the provider (discovery, JWKS, token, userinfo).
    pub http_timeout: Duration,
}

impl std::fmt::Debug for ExternalOidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalOidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("scopes", &self.scopes)
            .field("groups_claim", &self.groups_claim)
            .field("group_mappings", &self.group_mappings)
            .field("create_users", &self.create_users)
            .finish_non_exhaustive()
    }
}

/// One provider group and what its members are in Paved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMapping {
    /// The group, as the provider writes it in the groups claim.
    pub group: String,
    /// The role its members get.
    pub role: Role,
    /// The team its members join, if any.
    pub team: Option<String>,
}

impl std::str::FromStr for GroupMapping {
    type Err = ConfigError;
    /// `group=role` or `group=role:team` (the flag's form).
    fn from_str(s: &str) -> Result<GroupMapping, ConfigError> {
        let bad = |why: &str| ConfigError {
            field: "oidc.external.group_mappings",
            message: format!("`{s}`: {why} (expected `group=role` or `group=role:team`)"),
        };
        let (group, rest) = s.split_once('=').ok_or_else(|| bad("no `=`"))?;
        let (role, team) = match rest.split_once(':') {
            Some((role, team)) => (role, Some(team.trim().to_string())),
            None => (rest, None),
        };
        let role = role
            .trim()
            .parse::<Role>()
            .map_err(|e| bad(&e.to_string()))?;
        Ok(GroupMapping {
            group: group.trim().to_string(),
            role,
            team,
        })
    }
}

/// A setting that cannot work, named by its path in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting `{field}`: {message}")]
pub struct ConfigError {
    /// The setting, such as `oidc.external.issuer`.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// Longest group name or team name accepted in a mapping.
const MAX_MAPPING_NAME: usize = 256;

impl ExternalOidcSettings {
    /// Settings for `issuer` and `client_id` with the defaults: scopes `openid profile email
    /// groups`, groups in `groups`, no mapping, unknown people created with the least
    /// privilege, 60 s of clock skew, 10 s per request.
    pub fn new(issuer: impl Into<String>, client_id: impl Into<String>) -> Self {
        ExternalOidcSettings {
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret: None,
            scopes: ["openid", "profile", "email", "groups"]
                .map(String::from)
                .to_vec(),
            groups_claim: "groups".into(),
            group_mappings: Vec::new(),
            create_users: true,
            clock_skew: Duration::from_secs(60),
            http_timeout: Duration::from_secs(10),
        }
    }

    /// Checks every field; the error names the first wrong one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field: &'static str, message: String| Err(ConfigError { field, message });
        match url::Url::parse(&self.issuer) {
            Err(e) => {
                return err(
                    "oidc.external.issuer",
                    format!("`{}` is not a URL: {e}", self.issuer),
                );
            }
            Ok(u) => {
                let loopback = match u.host() {
                    Some(url::Host::Domain(d)) => d == "localhost",
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    None => false,
                };
                // Tokens and the discovery document travel over this URL: plain HTTP only
                // where nothing in between can read or change them.
                if !(u.scheme() == "https" || (u.scheme() == "http" && loopback)) {
                    return err(
                        "oidc.external.issuer",
                        format!(
                            "`{}` must be an https:// URL (http:// only on a loopback host)",
                            self.issuer
                        ),
                    );
                }
                if u.query().is_some() || u.fragment().is_some() {
                    return err(
                        "oidc.external.issuer",
                        "an issuer has no query or fragment".into(),
                    );
                }
            }
        }
        if self.client_id.trim().is_empty() || self.client_id.len() > 255 {
            return err(
                "oidc.external.client_id",
                "must be 1 to 255 characters".into(),
            );
        }
        if let Some(secret) = &self.client_secret
            && (secret.is_empty() || secret.len() > 1024)
        {
            return err(
                "oidc.external.client_secret",
                "must be 1 to 1024 characters when set".into(),
            );
        }
        if let Some(bad) = self.scopes.iter().find(|s| {
            s.is_empty()
                || s.len() > 128
                || !s
                    .chars()
                    .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
        }) {
            return err(
                "oidc.external.scopes",
                format!("`{bad}` is not a scope (printable ASCII, no space)"),
            );
        }
        if self.groups_claim.trim().is_empty() || self.groups_claim.len() > 256 {
            return err(
                "oidc.external.groups_claim",
                "must be 1 to 256 characters".into(),
            );
        }
        for m in &self.group_mappings {
            if m.group.is_empty() || m.group.len() > MAX_MAPPING_NAME {
                return err(
                    "oidc.external.group_mappings",
                    format!(
                        "group `{}` must be 1 to {MAX_MAPPING_NAME} characters",
                        m.group
                    ),
                );
            }
            if let Some(team) = &m.team
                && (team.is_empty() || team.len() > MAX_MAPPING_NAME)
            {
                return err(
                    "oidc.external.group_mappings",
                    format!(
                        "the team of group `{}` must be 1 to {MAX_MAPPING_NAME} characters",
                        m.group
                    ),
                );
            }
        }
        if self.clock_skew > Duration::from_secs(300) {
            return err(
                "oidc.external.clock_skew",
                "at most 300 seconds (an expired token would stay usable)".into(),
            );
        }
        if self.http_timeout.is_zero() || self.http_timeout > Duration::from_secs(120) {
            return err(
                "oidc.external.http_timeout",
                "must be between 1 ms and 120 s".into(),
            );
        }
        Ok(())
    }

    /// The scopes as sent: the configured ones, with `openid` first when missing.
    pub fn scope(&self) -> String {
        let mut scopes = self.scopes.clone();
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".into());
        }
        scopes.join(" ")
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
    /// Who signs them: the internal CA (default) or an ACME directory.
    pub issuer: IssuerSettings,
}

impl Default for CertificateSettings {
    fn default() -> Self {
        CertificateSettings {
            enabled: true,
            validity: Duration::from_secs(90 * 86_400),
            renew_before: Duration::from_secs(30 * 86_400),
            issuer: IssuerSettings::default(),
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

// ---- TLS: certificate issuer and DNS provider (docs/control-plane.md, "TLS") ----

/// Which [`crate::tls::CertificateIssuer`] signs the certificates of app domains.
#[derive(Debug, Clone, Default)]
pub enum IssuerSettings {
    /// The internal CA (rcgen; its root kept in the database, served at `/v1/ca.pem`).
    #[default]
    InternalCa,
    /// An ACME (RFC 8555) directory, with `dns-01` challenges.
    Acme(Box<AcmeSettings>),
}

/// An ACME directory and how its `dns-01` challenges are published.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// The directory URL, such as `https://acme-v02.api.letsencrypt.org/directory`.
    pub directory_url: String,
    /// Contact address given to the ACME account (`mailto:` is added).
    pub contact_email: Option<String>,
    /// PEM file of the root certificates that the directory's HTTPS is checked against
    /// (every certificate in the file is trusted; a test CA such as Pebble's). `None`: the
    /// platform's trust store.
    pub ca_bundle: Option<PathBuf>,
    /// Where the `_acme-challenge` TXT records go.
    pub dns: DnsProviderSettings,
    /// Upper bound of one issuance, from the order to the downloaded chain (the TXT record is
    /// removed afterwards in any case).
    pub timeout: Duration,
    /// Upper bound of one HTTP request to the directory.
    pub request_timeout: Duration,
}

impl AcmeSettings {
    /// Settings with the default timeouts (5 minutes per issuance, 30 s per request).
    pub fn new(directory_url: impl Into<String>, dns: DnsProviderSettings) -> Self {
        AcmeSettings {
            directory_url: directory_url.into(),
            contact_email: None,
            ca_bundle: None,
            dns,
            timeout: Duration::from_secs(300),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Which [`crate::tls::DnsProvider`] publishes records.
#[derive(Debug, Clone)]
pub enum DnsProviderSettings {
    /// RFC 2136 dynamic updates signed with TSIG.
    Rfc2136(Rfc2136Settings),
}

/// An authoritative DNS server that accepts TSIG-signed RFC 2136 updates for one zone.
#[derive(Debug, Clone)]
pub struct Rfc2136Settings {
    /// The server's address (UDP), such as `192.0.2.53:53`.
    pub server: std::net::SocketAddr,
    /// The zone updated, such as `paved.example.com` (every record name must be inside it).
    pub zone: String,
    /// Name of the TSIG key, as the server knows it.
    pub tsig_key_name: String,
    /// The TSIG key (hmac-sha256), base64 as `tsig-keygen`/`keymgr` print it.
    pub tsig_secret: TsigSecret,
    /// Upper bound of one update exchange.
    pub timeout: Duration,
}

impl Rfc2136Settings {
    /// Settings with a 5 s timeout.
    pub fn new(
        server: std::net::SocketAddr,
        zone: impl Into<String>,
        tsig_key_name: impl Into<String>,
        tsig_secret: TsigSecret,
    ) -> Self {
        Rfc2136Settings {
            server,
            zone: zone.into(),
            tsig_key_name: tsig_key_name.into(),
            tsig_secret,
            timeout: Duration::from_secs(5),
        }
    }
}

/// A TSIG secret (base64). Its `Debug` never shows it, so settings can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigSecret(String);

impl TsigSecret {
    /// Wraps a base64 secret.
    pub fn new(base64: impl Into<String>) -> Self {
        TsigSecret(base64.into())
    }

    /// The base64 text (for the signer only).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for TsigSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TsigSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(settings: &ExternalOidcSettings) -> Option<&'static str> {
        settings.validate().err().map(|e| e.field)
    }

    #[test]
    fn external_provider_settings_name_the_wrong_field() {
        let good = ExternalOidcSettings::new("https://idp.example.com/realms/a", "paved-ui");
        assert_eq!(field_of(&good), None);
        assert_eq!(
            field_of(&ExternalOidcSettings::new("http://127.0.0.1:9000", "ui")),
            None,
            "plain HTTP on loopback (tests)"
        );
        for issuer in [
            "idp.example.com",
            "http://idp.example.com",
            "https://idp/?x=1",
        ] {
            assert_eq!(
                field_of(&ExternalOidcSettings::new(issuer, "ui")),
                Some("oidc.external.issuer"),
                "{issuer}"
            );
        }
        let mut s = good.clone();
        s.client_id = " ".into();
        assert_eq!(field_of(&s), Some("oidc.external.client_id"));
        let mut s = good.clone();
        s.client_secret = Some(String::new());
        assert_eq!(field_of(&s), Some("oidc.external.client_secret"));
        let mut s = good.clone();
        s.scopes.push("two words".into());
        assert_eq!(field_of(&s), Some("oidc.external.scopes"));
        let mut s = good.clone();
        s.groups_claim = String::new();
        assert_eq!(field_of(&s), Some("oidc.external.groups_claim"));
        let mut s = good.clone();
        s.clock_skew = Duration::from_secs(301);
        assert_eq!(field_of(&s), Some("oidc.external.clock_skew"));
        let e = s.validate().expect_err("refused");
        assert!(e.to_string().contains("oidc.external.clock_skew"), "{e}");
    }

    #[test]
    fn group_mappings_parse_from_the_flag_form() {
        assert_eq!(
            "platform-admins=admin".parse::<GroupMapping>(),
            Ok(GroupMapping {
                group: "platform-admins".into(),
                role: Role::Admin,
                team: None
            })
        );
        assert_eq!(
            "payments-devs=app-owner:payments".parse::<GroupMapping>(),
            Ok(GroupMapping {
                group: "payments-devs".into(),
                role: Role::AppOwner,
                team: Some("payments".into())
            })
        );
        for bad in ["no-equals", "g=superuser", "g=admin:"] {
            let parsed = bad.parse::<GroupMapping>();
            if bad == "g=admin:" {
                // An empty team is caught by `validate`.
                let mut s = ExternalOidcSettings::new("https://idp.example.com", "ui");
                s.group_mappings.push(parsed.expect("parses"));
                assert_eq!(field_of(&s), Some("oidc.external.group_mappings"));
            } else {
                assert_eq!(
                    parsed.map_err(|e| e.field),
                    Err("oidc.external.group_mappings"),
                    "{bad}"
                );
            }
        }
    }

    #[test]
    fn openid_is_always_among_the_scopes() {
        let mut s = ExternalOidcSettings::new("https://idp.example.com", "ui");
        assert_eq!(s.scope(), "openid profile email groups");
        s.scopes = vec!["email".into()];
        assert_eq!(s.scope(), "openid email");
    }
}
