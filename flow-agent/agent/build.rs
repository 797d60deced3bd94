//! Builds the BPF programs in `../ebpf` for `bpfel-unknown-none` with Debian's toolchain
//! (see `tools/guest-build` and flow-agent/README.md) and leaves the object in `OUT_DIR`
//! for `include_bytes_aligned!`.

use std::path::PathBuf;

use paved_guest_build::GuestBuild;

/// The binary name in flow-agent/ebpf/Cargo.toml.
const BPF_BINARY: &str = "paved-flow-ebpf";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let artifacts = GuestBuild::new(manifest_dir.join("../ebpf"), "bpfel-unknown-none")
        .build_std("core")
        .require_on_path("bpf-linker")
        .input(manifest_dir.join("../common"))
        .run();
    let built = artifacts.join(BPF_BINARY);
    let object = out_dir.join("paved-flow-ebpf.o");
    std::fs::copy(&built, &object).unwrap_or_else(|err| {
        panic!(
            "the BPF build succeeded but {} cannot be copied to {}: {err}",
            built.display(),
            object.display()
        )
    });
}
