//! Golden-file tests of the compiler: one intent per feature in `tests/golden/<feature>/`,
//! compiled with the default options and compared with `snapshot.json` next to it.
//! `PAVED_BLESS=1 cargo test -p paved-model` rewrites the expected files.

use std::path::{Path, PathBuf};

use paved_model::compile::{CompileOptions, compile_one};
use paved_model::{Intent, Snapshot};

fn features() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("reading {}: {e}", root.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.join("paved.yaml").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn golden_snapshots() {
    let bless = std::env::var_os("PAVED_BLESS").is_some();
    let dirs = features();
    assert!(
        dirs.len() >= 10,
        "expected the golden features, found {}",
        dirs.len()
    );
    let mut stale = Vec::new();
    for dir in dirs {
        let intent_path = dir.join("paved.yaml");
        let text = std::fs::read_to_string(&intent_path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", intent_path.display()));
        let intent = Intent::from_yaml_str(&text, &intent_path.display().to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        // The intent survives a round trip through its own serialization.
        let reloaded = serde_json::to_string(&intent)
            .map_err(|e| e.to_string())
            .and_then(|json| Intent::from_yaml_str(&json, "json").map_err(|e| e.to_string()));
        assert_eq!(
            reloaded.as_ref().ok(),
            Some(&intent),
            "{}: {reloaded:?}",
            dir.display()
        );
        let snapshot = compile_one(&intent, &CompileOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut json = snapshot.to_json_pretty();
        json.push('\n');
        // What is pushed to gateways must load back as the same snapshot.
        let back = Snapshot::from_json_slice(json.as_bytes(), "golden")
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert_eq!(back, snapshot, "{}: JSON round trip", dir.display());
        // Compiling is deterministic.
        let again = compile_one(&intent, &CompileOptions::default()).map(|s| s.to_json_pretty());
        assert_eq!(
            again.as_deref().ok(),
            Some(json.trim_end()),
            "{}",
            dir.display()
        );

        let expected_path = dir.join("snapshot.json");
        if bless {
            std::fs::write(&expected_path, &json)
                .unwrap_or_else(|e| panic!("writing {}: {e}", expected_path.display()));
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != json {
            stale.push(dir.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "compiled snapshots differ from the golden files in {stale:?}; \
         if the change is intended, run `PAVED_BLESS=1 cargo test -p paved-model` and review the diff"
    );
}
