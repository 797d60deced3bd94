//! Errors of loading and reloading the gateway's configuration.

/// Why a configuration could not be applied; the previous one keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The snapshot text or file is invalid (what and where is in the message).
    #[error(transparent)]
    Invalid(#[from] paved_model::ModelError),
    /// The configuration file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// A plugin could not be loaded.
    #[error("routes[{route}].plugins[{index}] ({name}): {message}")]
    Plugin {
        /// Index of the route.
        route: usize,
        /// Index of the plugin in the route's chain.
        index: usize,
        /// The plugin's name.
        name: String,
        /// Why.
        message: String,
    },
    /// A cluster endpoint's name did not resolve.
    #[error("clusters[{cluster}] endpoint {endpoint}: {message}")]
    Endpoint {
        /// The cluster's name.
        cluster: String,
        /// The endpoint.
        endpoint: String,
        /// Why.
        message: String,
    },
    /// A TLS certificate or key could not be loaded.
    #[error("listener {listener} TLS: {message}")]
    Tls {
        /// The listener's address.
        listener: String,
        /// Why.
        message: String,
    },
    /// The wasm engine could not be set up.
    #[error("wasm runtime: {0}")]
    Runtime(String),
}
