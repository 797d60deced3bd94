//! The server half: renders every page for the control plane's axum router.
//!
//! The host (the control plane) authenticates each request from its session cookie and puts a
//! [`Backend`] into the request's extensions; pages then query GraphQL through it as that
//! person. A request without a `Backend` renders as signed out. The host may also put a
//! [`UiSettings`] there (where apps are reached through the gateway); without one the UI
//! assumes `paved up`'s gateway (`http://<domain>:8080/`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use axum::Router;
use leptos::prelude::*;
use leptos_axum::{AxumRouteListing, LeptosRoutes, generate_route_list};

use crate::api::GraphqlRequest;
use crate::app::{App, shell};
pub use crate::settings::UiSettings;

/// The future of one GraphQL execution: the JSON response (`{"data", "errors"}`).
pub type GraphqlFuture = Pin<Box<dyn Future<Output = serde_json::Value> + Send>>;

/// What the host gives the UI for one request: GraphQL executed as the request's caller.
#[derive(Clone)]
pub struct Backend {
    /// Executes one request against the control plane's schema, as the caller.
    pub execute: Arc<dyn Fn(GraphqlRequest) -> GraphqlFuture + Send + Sync>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").finish_non_exhaustive()
    }
}

/// The Leptos options the pages are rendered with: the browser module is `/pkg/paved_ui.js`
/// and `/pkg/paved_ui_bg.wasm` (served by the host from `paved-ui-assets`).
pub fn leptos_options() -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("paved_ui")
        .site_pkg_dir("pkg")
        .build()
}

/// The pages' routes, listed once per process: listing them renders the app in a special
/// mode, and doing that while pages render on other threads made those renders hang now and
/// then (seen with Leptos 0.8.14 when tests built routers in parallel).
static ROUTES: LazyLock<Vec<AxumRouteListing>> = LazyLock::new(|| generate_route_list(App));

/// Every page's route, server-rendered. The host adds a [`Backend`] to each request's
/// extensions before it reaches these routes.
pub fn router() -> Router {
    let options = leptos_options();
    let routes = ROUTES.clone();
    Router::new()
        .leptos_routes_with_context(&options, routes, provide_backend, {
            let options = options.clone();
            move || shell(options.clone())
        })
        .with_state(options)
}

/// Makes the request's [`Backend`] and [`UiSettings`] (if the host attached them) available to
/// the pages.
fn provide_backend() {
    let Some(parts) = use_context::<http::request::Parts>() else {
        return;
    };
    if let Some(backend) = parts.extensions.get::<Backend>().cloned() {
        provide_context(backend);
    }
    if let Some(settings) = parts.extensions.get::<UiSettings>().cloned() {
        provide_context(settings);
    }
}
