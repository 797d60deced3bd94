//! The web UI, hosted by the control plane (docs/ui-hosting.md): the pages of `paved-ui`
//! rendered on the server as the signed-in person, the browser module under `/pkg/`, people's
//! sign-in through the control plane's OpenID provider, and the cookie-authenticated GraphQL
//! endpoints the browser uses.
//!
//! | route | what |
//! | --- | --- |
//! | pages (`/`, `/apps`, ...) | `paved_ui::server::router()`, behind a valid session (else a redirect to `/ui/login?next=`) |
//! | `GET /ui/login`, `GET /ui/callback`, `POST /ui/logout` | the sign-in ([`login`]) |
//! | `POST /ui/graphql`, `GET /ui/graphql/ws` | GraphQL for the browser ([`api`]) |
//! | `GET /pkg/{file}` | the embedded browser module ([`assets`]) |

pub mod api;
pub mod assets;
pub mod csp;
pub mod external;
pub mod login;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::graphql::{MAX_REQUEST_BYTES, PavedSchema, build_schema};
use crate::services::ControlPlane;
use crate::{Error, Result};
use login::LoginProvider;
use session::{Cookies, StateKey};

/// What the UI's handlers share. Cheap to clone.
#[derive(Clone)]
pub struct UiState {
    inner: Arc<Inner>,
}

/// The shared parts of [`UiState`].
pub struct Inner {
    /// The control plane.
    pub cp: ControlPlane,
    /// The GraphQL schema pages and the browser run against.
    pub schema: Arc<PavedSchema>,
    /// Where people sign in (the built-in provider).
    pub provider: LoginProvider,
    /// The external provider people sign in with instead, when `oidc.external` is set.
    pub external: Option<Arc<external::ExternalProvider>>,
    /// The public origin (`scheme://host[:port]`), the only `Origin` accepted.
    pub origin: String,
    /// The same origin for WebSockets (`ws://` or `wss://`).
    pub ws_origin: String,
    /// Where apps are reached (the gateways' listener), for live URLs and curl examples.
    pub settings: paved_ui::server::UiSettings,
    /// How cookies are written.
    pub cookies: Cookies,
    /// Key of the login-state cookie.
    pub state_key: StateKey,
}

impl std::ops::Deref for UiState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl std::fmt::Debug for UiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiState")
            .field("origin", &self.origin)
            .field("provider", &self.provider)
            .field("external", &self.external)
            .finish_non_exhaustive()
    }
}

impl UiState {
    /// The state of `cp`'s UI.
    pub fn new(cp: ControlPlane) -> Result<UiState> {
        let config = cp.config();
        let public = url::Url::parse(&config.public_url).map_err(|e| {
            Error::BadRequest(format!(
                "the public URL `{}` is not a URL: {e}",
                config.public_url
            ))
        })?;
        let origin = public.origin().ascii_serialization();
        let ws_origin = origin
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        let cookies = Cookies {
            secure: public.scheme() == "https",
        };
        let state_key = StateKey::derive(&cp.keys().to_pem()?)?;
        let settings = gateway_settings(&config.compile.listeners);
        let external = match &config.oidc.external {
            Some(e) => Some(Arc::new(external::ExternalProvider::new(
                e.clone(),
                config.ui_callback_url(),
            )?)),
            None => None,
        };
        Ok(UiState {
            inner: Arc::new(Inner {
                schema: Arc::new(build_schema(config.graphql)),
                provider: LoginProvider::built_in(config),
                external,
                origin,
                ws_origin,
                settings,
                cookies,
                state_key,
                cp,
            }),
        })
    }
}

/// The UI's routes: pages, sign-in, browser GraphQL and assets. Empty when the UI is off, or
/// when people would sign in through the built-in OpenID provider and it is off.
pub fn router(cp: ControlPlane) -> Router {
    let config = cp.config();
    if !config.ui.enabled {
        return Router::new();
    }
    if !config.oidc.enabled && config.oidc.external.is_none() {
        tracing::warn!(
            "the UI is not served: people sign in through the built-in OpenID provider, which is disabled"
        );
        return Router::new();
    }
    let ui = match UiState::new(cp) {
        Ok(ui) => ui,
        Err(e) => {
            tracing::error!(error = %e, "the UI is not served");
            return Router::new();
        }
    };
    let pages = paved_ui::server::router()
        .route_layer(middleware::from_fn_with_state(ui.clone(), page_guard));
    Router::new()
        .route("/ui/login", get(login::start))
        .route("/ui/callback", get(login::callback))
        .route("/ui/logout", post(login::logout))
        .route("/ui/graphql", post(api::post))
        .route("/ui/graphql/ws", get(api::ws))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(middleware::map_response(common_headers))
        .route("/pkg/{file}", get(assets::serve))
        .with_state(ui)
        .merge(pages)
}

/// The UI's view of where apps live: the gateways' first TLS listener, else their first one
/// (the UI's own default when the compiler knows no listener).
fn gateway_settings(listeners: &[paved_model::snapshot::Listener]) -> paved_ui::server::UiSettings {
    listeners
        .iter()
        .find(|l| l.tls.is_some())
        .or_else(|| listeners.first())
        .map(|l| paved_ui::server::UiSettings::for_listener(l.tls.is_some(), l.address.port()))
        .unwrap_or_default()
}

async fn common_headers(mut response: Response) -> Response {
    csp::add_common_headers(response.headers_mut());
    response
}

/// In front of every page: a signed-in person gets the page rendered as them (a
/// [`Backend`](paved_ui::server::Backend) in the request) with the page's security headers;
/// anyone else is sent to sign in and brought back.
async fn page_guard(State(ui): State<UiState>, mut request: Request, next: Next) -> Response {
    match session::session(&ui.cp, ui.cookies, request.headers()).await {
        Ok(Some(s)) => {
            let extensions = request.extensions_mut();
            extensions.insert(api::backend(&ui, s.principal));
            extensions.insert(ui.settings.clone());
            csp::secure_page(next.run(request).await, &ui.ws_origin).await
        }
        Ok(None) => {
            let had_cookie =
                session::cookie(request.headers(), ui.cookies.session_name()).is_some();
            let target = request
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let next: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
            let mut r = StatusCode::SEE_OTHER.into_response();
            let h = r.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&format!("/ui/login?next={next}")) {
                h.insert(header::LOCATION, v);
            }
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if had_cookie {
                // Expired or revoked: drop it rather than send it with every request.
                h.append(header::SET_COOKIE, ui.cookies.clear_session());
            }
            csp::add_common_headers(h);
            r
        }
        Err(e) => {
            e.log_if_internal();
            let mut r = (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
            csp::add_common_headers(r.headers_mut());
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paved_model::snapshot::{Listener, ListenerTls};

    fn listener(address: &str, tls: bool) -> Listener {
        Listener {
            address: address.parse().expect("address"),
            tls: tls.then(|| ListenerTls {
                certificates: Vec::new(),
            }),
            http2: false,
        }
    }

    #[test]
    fn live_urls_use_the_gateways_tls_listener_first_then_their_first_listener() {
        let domains = ["shop.example.com".to_string()];
        let plain_and_tls = [
            listener("0.0.0.0:8080", false),
            listener("0.0.0.0:8443", true),
        ];
        assert_eq!(
            gateway_settings(&plain_and_tls)
                .live_url(&domains)
                .as_deref(),
            Some("https://shop.example.com:8443/")
        );
        let plain = [listener("127.0.0.1:18080", false)];
        assert_eq!(
            gateway_settings(&plain).live_url(&domains).as_deref(),
            Some("http://shop.example.com:18080/")
        );
        assert_eq!(
            gateway_settings(&[]).live_url(&domains),
            paved_ui::server::UiSettings::default().live_url(&domains)
        );
    }
}
