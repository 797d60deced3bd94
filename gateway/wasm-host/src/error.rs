//! The host's errors: loading a plugin, and a plugin failing while it handles a request.

use std::time::Duration;

/// Why a plugin could not be loaded; the configuration that named it is rejected.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a valid wasm module, or it failed to compile.
    #[error("plugin {plugin}: compiling the module failed: {message}")]
    Compile {
        /// The plugin's name.
        plugin: String,
        /// What the compiler said.
        message: String,
    },
    /// The module does not export a supported `proxy_abi_version_*` marker.
    #[error(
        "plugin {plugin}: not a Proxy-Wasm ABI v0.2.x module (no proxy_abi_version_0_2_1 or _0_2_0 export)"
    )]
    AbiVersion {
        /// The plugin's name.
        plugin: String,
    },
    /// Instantiating the module (imports, start function, initialisation) failed.
    #[error("plugin {plugin}: instantiating failed: {message}")]
    Instantiate {
        /// The plugin's name.
        plugin: String,
        /// What failed.
        message: String,
    },
    /// `proxy_on_vm_start` returned false.
    #[error("plugin {plugin}: proxy_on_vm_start rejected the VM configuration")]
    VmStartRejected {
        /// The plugin's name.
        plugin: String,
    },
    /// `proxy_on_configure` returned false.
    #[error("plugin {plugin}: proxy_on_configure rejected its configuration")]
    ConfigureRejected {
        /// The plugin's name.
        plugin: String,
    },
    /// The plugin failed while starting.
    #[error("plugin {plugin}: failed while starting: {failure}")]
    Failed {
        /// The plugin's name.
        plugin: String,
        /// How it failed.
        failure: PluginFailure,
    },
    /// The engine could not be set up.
    #[error("wasm engine: {0}")]
    Engine(String),
}

/// How a plugin failed while handling a request. The request is denied (fail closed) unless
/// the plugin is marked fail-open; the instance is replaced, other requests are unaffected.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PluginFailure {
    /// The plugin trapped (a panic, an unreachable, an out-of-bounds access of its own).
    #[error("plugin {plugin} trapped in {function}: {message}")]
    Trap {
        /// The plugin's name.
        plugin: String,
        /// The exported function that was running.
        function: &'static str,
        /// The trap.
        message: String,
    },
    /// A call ran past its time limit and was interrupted.
    #[error("plugin {plugin} exceeded its {limit:?} time limit in {function}")]
    Timeout {
        /// The plugin's name.
        plugin: String,
        /// The exported function that was running.
        function: &'static str,
        /// The limit.
        limit: Duration,
    },
    /// The plugin tried to grow its memory past its limit.
    #[error("plugin {plugin} exceeded its memory limit of {limit} bytes in {function}")]
    MemoryLimit {
        /// The plugin's name.
        plugin: String,
        /// The exported function that was running.
        function: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The plugin returned a value the ABI does not define.
    #[error("plugin {plugin} returned {value} from {function}, which is not a valid action")]
    BadReturn {
        /// The plugin's name.
        plugin: String,
        /// The exported function.
        function: &'static str,
        /// What it returned.
        value: i32,
    },
    /// A paused stream was not resumed in time.
    #[error("plugin {plugin} did not resume the stream within {limit:?}")]
    PauseTimeout {
        /// The plugin's name.
        plugin: String,
        /// The limit.
        limit: Duration,
    },
    /// The instance this stream lived in failed (for another stream) or was replaced.
    #[error("plugin {plugin} is unavailable: {reason}")]
    Unavailable {
        /// The plugin's name.
        plugin: String,
        /// Why.
        reason: String,
    },
}
