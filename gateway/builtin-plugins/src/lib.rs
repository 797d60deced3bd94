//! The paved filters, compiled from `plugins/` for `wasm32-wasip1` by this crate's build
//! script and embedded in the binary, so a gateway config can name them (`builtin: waf`)
//! without shipping `.wasm` files next to it.

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

/// The module bytes of the built-in plugin called `name`, if there is one.
pub fn get(name: &str) -> Option<&'static [u8]> {
    PLUGINS
        .iter()
        .find(|(plugin, _)| *plugin == name)
        .map(|(_, bytes)| *bytes)
}

/// The path of the module built from the `plugins/` crate `name` (embedded or not), for
/// tests and for configurations that name a file.
pub fn artifact_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(ARTIFACT_DIR).join(format!("{}.wasm", name.replace('-', "_")))
}

/// The names of every built-in plugin.
pub fn names() -> impl Iterator<Item = &'static str> {
    PLUGINS.iter().map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_plugin_is_a_wasm_module() {
        assert!(names().count() > 0);
        for (name, bytes) in PLUGINS {
            assert_eq!(&bytes[..4], b"\0asm", "{name} is not a wasm module");
        }
    }

    #[test]
    fn unknown_plugin_names_are_not_found() {
        assert!(get("no-such-plugin").is_none());
        assert!(get("noop").is_some());
    }

    #[test]
    fn test_plugins_are_built_next_to_the_embedded_ones() {
        for name in ["noop", "conformance", "faulty"] {
            assert!(artifact_path(name).exists(), "{name} was not built");
        }
    }
}
