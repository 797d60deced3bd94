//! Builds the plugins workspace (`plugins/`) for `wasm32-wasip1` and generates the table of
//! embedded modules that `src/lib.rs` includes.

use std::fmt::Write as _;
use std::path::PathBuf;

use paved_guest_build::GuestBuild;

/// The plugins embedded in the binary, by the name a configuration uses (`builtin: NAME`).
const PLUGINS: &[&str] = &[
    "noop",
    "authn",
    "authz",
    "waf",
    "ratelimit",
    "headers",
    "accesslog",
];
/// Plugins built for tests only (loaded from `ARTIFACT_DIR`).
const TEST_PLUGINS: &[&str] = &["conformance", "faulty"];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let plugins_dir = manifest_dir.join("../../plugins");
    // Only the listed crates: a plugin being written elsewhere in the workspace does not
    // break the host build.
    let build = PLUGINS.iter().chain(TEST_PLUGINS).fold(
        GuestBuild::new(&plugins_dir, "wasm32-wasip1"),
        |build, name| build.package(name),
    );
    let artifacts = build
        // Debian's wasi-libc keeps libc.a here.
        .rustflag("-L")
        .rustflag("/usr/lib/wasm32-wasi")
        .run();

    let mut table = String::from("/// Every built-in plugin: its name and its module's bytes.\n");
    table.push_str("pub static PLUGINS: &[(&str, &[u8])] = &[\n");
    for name in PLUGINS {
        let wasm = artifacts.join(format!("{}.wasm", name.replace('-', "_")));
        assert!(
            wasm.exists(),
            "plugin {name}: {} was not built",
            wasm.display()
        );
        writeln!(
            table,
            "    ({name:?}, include_bytes!({:?})),",
            wasm.display().to_string()
        )
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
