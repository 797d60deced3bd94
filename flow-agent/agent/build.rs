//! Builds the BPF programs in `../ebpf` and leaves the object in `OUT_DIR` for
//! `include_bytes_aligned!`.
//!
//! The host toolchain (rustup stable) has no `bpfel-unknown-none` target, so the
//! object is built with Debian's rustc/cargo 1.96 and `-Z build-std=core`, linked by
//! `bpf-linker` (docs: flow-agent/README.md, shared TOOLCHAIN recipe). The child cargo
//! gets an environment scrubbed of everything the outer cargo sets for build scripts,
//! which would otherwise redirect it (e.g. `RUSTC_WORKSPACE_WRAPPER=clippy-driver` under
//! `cargo clippy`, or the outer `CARGO_TARGET_DIR`).

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

/// Debian's toolchain, which has `core` sources and the BPF target.
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const BPF_TARGET: &str = "bpfel-unknown-none";
/// The binary name in flow-agent/ebpf/Cargo.toml.
const BPF_BINARY: &str = "paved-flow-ebpf";

const HELP: &str = "the flow agent's BPF programs are built with Debian's rustc/cargo \
(packages rustc-web cargo-web libstd-rust-web-dev-bpf llvm-22-dev libpolly-22-dev) and \
bpf-linker (cargo install bpf-linker --no-default-features --features llvm-22); \
run scripts/bootstrap.sh to install them";

fn main() {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env_var("OUT_DIR"));
    let ebpf_dir = manifest_dir.join("../ebpf");
    let common_dir = manifest_dir.join("../common");

    for path in [
        ebpf_dir.join("src"),
        ebpf_dir.join("Cargo.toml"),
        ebpf_dir.join("Cargo.lock"),
        common_dir.join("src"),
        common_dir.join("Cargo.toml"),
    ] {
        println!("cargo:rerun-if-changed={}", path.display());
    }

    check_tools();

    // OUT_DIR is <target>/<profile>/build/paved-flow-agent-<hash>/out: four levels up is
    // the target directory. The BPF object is always a release build, so one directory
    // serves every host profile and `cargo build`, `test` and `clippy` alike: it stays
    // warm across them and across changes of the build script's hash.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .unwrap_or(&out_dir)
        .join("guest-bpf");

    let mut cargo = Command::new(DEBIAN_CARGO);
    cargo
        .current_dir(&ebpf_dir)
        .args(["build", "--release", "--locked", "--target", BPF_TARGET])
        .args(["-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(&target_dir);
    scrub_env(&mut cargo);
    cargo
        .env("RUSTC", DEBIAN_RUSTC)
        // Debian's stable cargo needs this for `-Z build-std`.
        .env("RUSTC_BOOTSTRAP", "1");

    let status = cargo
        .status()
        .unwrap_or_else(|err| panic!("cannot run {DEBIAN_CARGO}: {err}; {HELP}"));
    if !status.success() {
        panic!(
            "building the BPF programs in {} failed ({status}); see the cargo output above. {HELP}",
            ebpf_dir.display()
        );
    }

    let built = target_dir.join(BPF_TARGET).join("release").join(BPF_BINARY);
    let object = out_dir.join("paved-flow-ebpf.o");
    std::fs::copy(&built, &object).unwrap_or_else(|err| {
        panic!(
            "the BPF build succeeded but {} cannot be copied to {}: {err}",
            built.display(),
            object.display()
        )
    });
}

fn env_var(name: &str) -> String {
    env::var(name).unwrap_or_else(|_| panic!("cargo did not set {name}"))
}

/// Fails early, naming the missing tool, rather than deep inside the child build.
fn check_tools() {
    for tool in [DEBIAN_CARGO, DEBIAN_RUSTC] {
        if !Path::new(tool).exists() {
            panic!("{tool} not found: {HELP}");
        }
    }
    let on_path = env::var_os("PATH")
        .map(|paths| env::split_paths(&paths).any(|dir| dir.join("bpf-linker").is_file()))
        .unwrap_or(false);
    if !on_path {
        panic!("bpf-linker not found on PATH: {HELP}");
    }
}

/// Removes what the outer cargo (or clippy, or a build script context) puts in the
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
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let inherited = EXACT.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p));
        if inherited && key != "CARGO_HOME" {
            cmd.env_remove(key);
        }
    }
}
