//! Builds guest code (Proxy-Wasm plugins for `wasm32-wasip1`, the flow agent's BPF object
//! for `bpfel-unknown-none`) from a host crate's `build.rs`.
//!
//! The host toolchain (rustup stable) has no guest targets and no `rust-src`; Debian's
//! `rustc-web` 1.96 has the standard library sources, so guests are built with
//! `-Z build-std` by `/usr/bin/cargo` (see `docs/DEVELOPING.md`). The child build must not
//! inherit the outer cargo's environment: `RUSTC_WORKSPACE_WRAPPER` (set by clippy),
//! `RUSTFLAGS` and the `CARGO_*` variables would point it at the host compiler and flags.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Debian toolchain the guests are built with; installed by `scripts/bootstrap.sh`.
pub const GUEST_CARGO: &str = "/usr/bin/cargo";
/// The Debian `rustc` that has the standard library sources for `-Z build-std`.
pub const GUEST_RUSTC: &str = "/usr/bin/rustc";

/// One guest build: a manifest, a target triple and the crates of the standard library to build.
#[derive(Debug, Clone)]
pub struct GuestBuild {
    manifest_dir: PathBuf,
    target: String,
    build_std: String,
    rustflags: Vec<String>,
    target_dir: PathBuf,
    required_tools: Vec<String>,
    extra_inputs: Vec<PathBuf>,
    packages: Vec<String>,
    features: Option<String>,
    cdylib: bool,
}

impl GuestBuild {
    /// A release build of the workspace at `manifest_dir` for `target`.
    ///
    /// The target directory is shared by every profile of the host build
    /// (`<host target dir>/guest`), so the guest's standard library is built once.
    pub fn new(manifest_dir: impl Into<PathBuf>, target: &str) -> Self {
        Self {
            manifest_dir: manifest_dir.into(),
            target: target.to_owned(),
            build_std: "std,panic_abort".to_owned(),
            rustflags: Vec::new(),
            target_dir: shared_guest_target_dir(),
            required_tools: Vec::new(),
            extra_inputs: Vec::new(),
            packages: Vec::new(),
            features: None,
            cdylib: false,
        }
    }

    /// Which standard library crates to build (`-Z build-std=...`).
    pub fn build_std(mut self, crates: &str) -> Self {
        crates.clone_into(&mut self.build_std);
        self
    }

    /// Adds one flag to the guest's `RUSTFLAGS`.
    pub fn rustflag(mut self, flag: &str) -> Self {
        self.rustflags.push(flag.to_owned());
        self
    }

    /// Fails the build early, naming `tool`, when it is not on `PATH` (e.g. `bpf-linker`).
    pub fn require_on_path(mut self, tool: &str) -> Self {
        self.required_tools.push(tool.to_owned());
        self
    }

    /// Builds only this package of the guest workspace (repeatable); none: the whole workspace.
    pub fn package(mut self, name: &str) -> Self {
        self.packages.push(name.to_owned());
        self
    }

    /// Builds with exactly these features (`--no-default-features --features ...`).
    pub fn features(mut self, features: &str) -> Self {
        self.features = Some(features.to_owned());
        self
    }

    /// Builds the (single) package's library as a `cdylib` (`cargo rustc --crate-type cdylib`),
    /// so a crate that is an `rlib` for the host can still be a browser module.
    pub fn cdylib(mut self) -> Self {
        self.cdylib = true;
        self
    }

    /// Also rebuilds when files below `path` change (a path dependency outside the manifest dir).
    pub fn input(mut self, path: impl Into<PathBuf>) -> Self {
        self.extra_inputs.push(path.into());
        self
    }

    /// Where the artifacts of `target` end up: `<target dir>/<target>/release`.
    pub fn artifact_dir(&self) -> PathBuf {
        self.target_dir.join(&self.target).join("release")
    }

    /// Runs the build, tells cargo to rerun when the guest sources change, and panics with
    /// a message naming the fix when the toolchain is missing or the build fails (a build
    /// script can only report failure by panicking).
    pub fn run(&self) -> PathBuf {
        rerun_if_changed_tree(&self.manifest_dir);
        if !Path::new(GUEST_CARGO).exists() || !Path::new(GUEST_RUSTC).exists() {
            panic!(
                "guest build for {}: {GUEST_CARGO} or {GUEST_RUSTC} is missing; \
                 run scripts/bootstrap.sh (installs Debian's rustc-web and cargo-web)",
                self.target
            );
        }
        for tool in &self.required_tools {
            let on_path = std::env::var_os("PATH").is_some_and(|paths| {
                std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file())
            });
            if !on_path {
                panic!(
                    "guest build for {}: {tool} not found on PATH; run scripts/bootstrap.sh",
                    self.target
                );
            }
        }
        for path in &self.extra_inputs {
            rerun_if_changed_tree(path);
        }
        let mut cmd = Command::new(GUEST_CARGO);
        scrub_env(&mut cmd);
        cmd.env("RUSTC", GUEST_RUSTC)
            .env("RUSTC_BOOTSTRAP", "1")
            .env("CARGO_TARGET_DIR", &self.target_dir)
            .env("CARGO_ENCODED_RUSTFLAGS", self.rustflags.join("\u{1f}"))
            .current_dir(&self.manifest_dir)
            .arg(if self.cdylib { "rustc" } else { "build" })
            .args(["--release", "--locked", "--target", &self.target])
            .arg(format!("-Zbuild-std={}", self.build_std));
        for package in &self.packages {
            cmd.args(["-p", package]);
        }
        if let Some(features) = &self.features {
            cmd.args(["--no-default-features", "--features", features]);
        }
        if self.cdylib {
            cmd.args(["--lib", "--crate-type", "cdylib"]);
        }
        let status = cmd.status().unwrap_or_else(|e| {
            panic!(
                "guest build for {}: cannot start {GUEST_CARGO}: {e}",
                self.target
            )
        });
        if !status.success() {
            panic!(
                "guest build for {} in {} failed ({status}); see the output above. \
                 If a tool is missing, run scripts/bootstrap.sh",
                self.target,
                self.manifest_dir.display()
            );
        }
        self.artifact_dir()
    }
}

/// Removes what the outer cargo (or clippy, or the build-script context) puts in the
/// environment, keeping `CARGO_HOME` so the registry cache is shared.
fn scrub_env(cmd: &mut Command) {
    const EXACT: &[&str] = &[
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "TARGET",
        "HOST",
        "OUT_DIR",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
        "RUSTUP_TOOLCHAIN",
        "MAKEFLAGS",
        "MFLAGS",
    ];
    const PREFIXES: &[&str] = &["CARGO", "__CARGO", "RUSTC", "RUSTDOC", "CLIPPY", "DEP_"];
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let inherited = EXACT.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p));
        if inherited && key != "CARGO_HOME" {
            cmd.env_remove(key);
        }
    }
}

/// `<host target dir>/guest`, found from `OUT_DIR` (`<target>/<profile>/build/<pkg>/out`).
fn shared_guest_target_dir() -> PathBuf {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    out_dir
        .ancestors()
        .nth(4)
        .map(|target| target.join("guest"))
        .unwrap_or_else(|| out_dir.join("guest"))
}

/// Emits `cargo:rerun-if-changed` for every source and manifest file below `dir`.
pub fn rerun_if_changed_tree(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            rerun_if_changed_tree(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
