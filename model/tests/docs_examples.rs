//! The examples in `docs/intent.md` and `docs/gateway-config.md` are valid: every complete
//! intent (a YAML block starting with `apiVersion:`) and every complete snapshot (starting with
//! `listeners:` or `version:`) loads and validates, and the intents compile.

use paved_model::compile::{CompileOptions, compile_one};
use paved_model::{Intent, Snapshot};

fn yaml_blocks(doc: &str) -> Vec<String> {
    let path = format!("{}/../docs/{doc}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn intent_examples_are_valid() {
    let intents: Vec<String> = yaml_blocks("intent.md")
        .into_iter()
        .filter(|b| b.starts_with("apiVersion:"))
        .collect();
    assert!(
        intents.len() >= 2,
        "expected the minimal and the complete example"
    );
    for text in intents {
        let intent =
            Intent::from_yaml_str(&text, "docs/intent.md").unwrap_or_else(|e| panic!("{e}"));
        compile_one(&intent, &CompileOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn snapshot_examples_are_valid() {
    let snapshots: Vec<String> = yaml_blocks("gateway-config.md")
        .into_iter()
        .filter(|b| b.starts_with("listeners:") || b.starts_with("version:"))
        .collect();
    assert!(
        snapshots.len() >= 2,
        "expected the smallest and the complete example"
    );
    for text in snapshots {
        Snapshot::from_yaml_str(&text, "docs/gateway-config.md").unwrap_or_else(|e| panic!("{e}"));
    }
}
