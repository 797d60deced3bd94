//! Builds the plugins workspace (`plugins/`) for `wasm32-wasip1` and generates the table of
//! embedded modules that `src/lib.rs` includes.

use std::fmt::Write as _;
use std::path::PathBuf;

use paved_guest_build::GuestBuild;

/// Every plugin crate of `plugins/Cargo.toml`, by the name the gateway config uses.
const PLUGINS: &[&str] = &["noop"];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let plugins_dir = manifest_dir.join("../../plugins");
    let artifacts = GuestBuild::new(&plugins_dir, "wasm32-wasip1")
        // Debian's wasi-libc keeps libc.a here.
        .rustflag("-L")
        .rustflag("/usr/lib/wasm32-wasi")
        .run();

    let mut table = String::from("/// Every built-in plugin: its name and its module's bytes.\n");
    table.push_str("pub static PLUGINS: &[(&str, &[u8])] = &[\n");
    for name in PLUGINS {
        let wasm = artifacts.join(format!("{}.wasm", name.replace('-', "_")));
        assert!(wasm.exists(), "plugin {name}: {} was not built", wasm.display());
        writeln!(table, "    ({name:?}, include_bytes!({:?})),", wasm.display().to_string())
            .expect("writing to a String cannot fail");
    }
    table.push_str("];\n");
    // Test plugins (conformance, faulty) are not embedded; tests load them from here.
    writeln!(
        table,
        "/// Where every plugin of `plugins/` was built, embedded or not.\npub const ARTIFACT_DIR: &str = {:?};",
        artifacts.display().to_string()
    )
    .expect("writing to a String cannot fail");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("plugins.rs");
    std::fs::write(&out, table).expect("write plugins.rs to OUT_DIR");
}
