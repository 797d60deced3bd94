//! The Paved web UI: the onboarding wizard, the app catalog and the security dashboard, in
//! Leptos.
//!
//! The crate builds twice from the same sources:
//! - with `ssr` for the host: [`server::router`] renders every page on the server (the
//!   control plane mounts it at `/`), so read-only pages work without JavaScript;
//! - with `hydrate` for `wasm32-unknown-unknown` (built by `ui/assets`): [`hydrate`] takes
//!   over the server-rendered page in the browser.
//!
//! Every piece of data comes from the control plane's GraphQL API through [`api::Api`] — the
//! same schema tools use, executed in-process on the server and over `/ui/graphql` in the
//! browser — so the UI never re-implements a business rule.

// The views are deeply nested types; building them for the browser needs more room.
#![recursion_limit = "256"]

pub mod api;
pub mod app;
pub mod components;
pub mod live;
pub mod logic;
pub mod pages;
pub mod queries;
#[cfg(test)]
mod schema_tests;
#[cfg(feature = "ssr")]
pub mod server;
pub mod settings;
#[cfg(all(test, feature = "ssr"))]
mod ssr_tests;

pub use app::{App, shell};

/// Entry point of the browser module: hydrates the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}
