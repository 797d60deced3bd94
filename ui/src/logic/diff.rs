//! Helpers to show differences: the control plane's unified text diff split into classified
//! lines with their line numbers, and field-level changes written compactly.

/// What a line of a unified diff is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// `--- a` / `+++ b`.
    Header,
    /// `@@ -1,3 +1,4 @@`.
    Hunk,
    /// An added line.
    Added,
    /// A removed line.
    Removed,
    /// An unchanged line around the changes.
    Context,
    /// `\ No newline at end of file` and anything else.
    Note,
}

impl LineKind {
    /// The CSS class the line is drawn with.
    pub fn class(self) -> &'static str {
        match self {
            LineKind::Header => "d-header",
            LineKind::Hunk => "d-hunk",
            LineKind::Added => "d-add",
            LineKind::Removed => "d-del",
            LineKind::Context => "d-ctx",
            LineKind::Note => "d-note",
        }
    }

    /// A word for screen readers and for people who cannot tell the colours apart.
    pub fn label(self) -> &'static str {
        match self {
            LineKind::Added => "added",
            LineKind::Removed => "removed",
            _ => "",
        }
    }
}

/// One line of a unified diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffLine {
    /// What it is.
    pub kind: LineKind,
    /// Line number in the old text (removed and context lines).
    pub old: Option<u32>,
    /// Line number in the new text (added and context lines).
    pub new: Option<u32>,
    /// The text without its `+`/`-`/` ` marker (headers and hunks as they are).
    pub text: String,
}

/// Splits a unified diff into classified, numbered lines.
pub fn parse_unified(diff: &str) -> Vec<DiffLine> {
    let (mut old, mut new) = (0u32, 0u32);
    let mut out = Vec::new();
    for line in diff.lines() {
        let (kind, text, o, n) = if line.starts_with("--- ") || line.starts_with("+++ ") {
            (LineKind::Header, line, None, None)
        } else if line.starts_with("@@") {
            if let Some((o, n)) = hunk_starts(line) {
                old = o;
                new = n;
            }
            (LineKind::Hunk, line, None, None)
        } else if let Some(t) = line.strip_prefix('+') {
            new += 1;
            (LineKind::Added, t, None, Some(new))
        } else if let Some(t) = line.strip_prefix('-') {
            old += 1;
            (LineKind::Removed, t, Some(old), None)
        } else if let Some(t) = line.strip_prefix(' ') {
            old += 1;
            new += 1;
            (LineKind::Context, t, Some(old), Some(new))
        } else if line.is_empty() {
            // Some producers drop the space of an empty context line.
            old += 1;
            new += 1;
            (LineKind::Context, line, Some(old), Some(new))
        } else {
            (LineKind::Note, line, None, None)
        };
        out.push(DiffLine {
            kind,
            old: o,
            new: n,
            text: text.to_string(),
        });
    }
    out
}

/// The old and new start lines of a hunk header, minus one (the number before the first line).
fn hunk_starts(line: &str) -> Option<(u32, u32)> {
    let inner = line.strip_prefix("@@ ")?.split(" @@").next()?;
    let mut parts = inner.split_whitespace();
    let old = parts.next()?.strip_prefix('-')?;
    let new = parts.next()?.strip_prefix('+')?;
    let start = |range: &str| -> Option<u32> {
        let n: u32 = range.split(',').next()?.parse().ok()?;
        Some(n.saturating_sub(1))
    };
    Some((start(old)?, start(new)?))
}

/// How many lines were added and removed.
pub fn stats(lines: &[DiffLine]) -> (usize, usize) {
    let added = lines.iter().filter(|l| l.kind == LineKind::Added).count();
    let removed = lines.iter().filter(|l| l.kind == LineKind::Removed).count();
    (added, removed)
}

/// A JSON value written short for a table cell: strings bare, `—` for none, other values as
/// compact JSON cut at `max` characters.
pub fn short_value(value: Option<&serde_json::Value>, max: usize) -> String {
    let text = match value {
        None | Some(serde_json::Value::Null) => return "—".to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    if text.chars().count() > max {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DIFF: &str = "--- version 1\n+++ version 2\n@@ -1,4 +1,4 @@\n apiVersion: paved.dev/v1\n name: orders\n-description: first\n+description: second\n owners: [demo]\n\\ No newline at end of file\n";

    #[test]
    fn unified_diff_lines_are_classified_and_numbered() {
        let lines = parse_unified(DIFF);
        let kinds: Vec<LineKind> = lines.iter().map(|l| l.kind).collect();
        assert_eq!(
            kinds,
            vec![
                LineKind::Header,
                LineKind::Header,
                LineKind::Hunk,
                LineKind::Context,
                LineKind::Context,
                LineKind::Removed,
                LineKind::Added,
                LineKind::Context,
                LineKind::Note,
            ]
        );
        assert_eq!((lines[3].old, lines[3].new), (Some(1), Some(1)));
        assert_eq!((lines[5].old, lines[5].new), (Some(3), None));
        assert_eq!(lines[5].text, "description: first");
        assert_eq!((lines[6].old, lines[6].new), (None, Some(3)));
        assert_eq!((lines[7].old, lines[7].new), (Some(4), Some(4)));
        assert_eq!(stats(&lines), (1, 1));
    }

    #[test]
    fn later_hunks_restart_numbering_from_their_header() {
        let lines = parse_unified("@@ -10,2 +12,3 @@ routes:\n a\n+b\n c\n");
        assert_eq!((lines[1].old, lines[1].new), (Some(10), Some(12)));
        assert_eq!(lines[2].new, Some(13));
        assert_eq!((lines[3].old, lines[3].new), (Some(11), Some(14)));
    }

    #[test]
    fn a_new_file_diff_is_all_additions() {
        let lines = parse_unified("--- \n+++ version 1\n@@ -0,0 +1,2 @@\n+a: 1\n+b: 2\n");
        assert_eq!(stats(&lines), (2, 0));
        assert_eq!(lines[4].new, Some(2));
        assert!(parse_unified("").is_empty());
    }

    #[test]
    fn short_values_are_bare_strings_or_compact_json() {
        assert_eq!(short_value(None, 10), "—");
        assert_eq!(short_value(Some(&json!(null)), 10), "—");
        assert_eq!(short_value(Some(&json!("detect")), 10), "detect");
        assert_eq!(short_value(Some(&json!(["a", "b"])), 20), "[\"a\",\"b\"]");
        assert_eq!(short_value(Some(&json!("abcdefghij")), 5), "abcd…");
    }
}
