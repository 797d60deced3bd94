//! Builds the browser half of the UI: `paved-ui` with its `hydrate` feature for
//! `wasm32-unknown-unknown` (Debian's toolchain, see docs/DEVELOPING.md), then `wasm-bindgen`
//! for the JS glue, and generates the table of embedded files that `src/lib.rs` includes.

use std::path::PathBuf;
use std::process::Command;

use paved_guest_build::GuestBuild;

/// The module name the server-rendered page imports (`/pkg/paved_ui.js`).
const OUTPUT_NAME: &str = "paved_ui";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let ui_dir = manifest_dir.join("..");
    let artifacts = GuestBuild::new(&ui_dir, "wasm32-unknown-unknown")
        .package("paved-ui")
        .features("hydrate")
        .cdylib()
        .require_on_path("wasm-bindgen")
        // No debug info in what browsers download.
        .rustflag("-Cdebuginfo=0")
        .run();
    let wasm = artifacts.join("paved_ui.wasm");
    assert!(wasm.exists(), "{} was not built", wasm.display());

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let pkg = out_dir.join("pkg");
    let status = Command::new("wasm-bindgen")
        .args([
            "--target",
            "web",
            "--no-typescript",
            "--out-name",
            OUTPUT_NAME,
            "--out-dir",
        ])
        .arg(&pkg)
        .arg(&wasm)
        .status()
        .unwrap_or_else(|e| panic!("cannot run wasm-bindgen: {e}; run scripts/bootstrap.sh"));
    assert!(
        status.success(),
        "wasm-bindgen failed ({status}); its version must equal the `wasm-bindgen` crate's \
         (ui/Cargo.toml); scripts/bootstrap.sh installs the right one"
    );
    println!("cargo:rerun-if-changed={}", wasm.display());
}
