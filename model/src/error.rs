//! Typed errors shared by every loader: a [`Diagnostic`] says where (source, field path, line
//! and column) and what was expected; a [`ModelError`] carries one or more of them.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::position::PositionMap;

/// A 1-based line and column in a source document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Location {
    /// Line, starting at 1.
    pub line: usize,
    /// Column, starting at 1.
    pub column: usize,
}

/// One problem found in an input: where it is and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Name of the input (a file name, `<graphql>`, ...).
    pub source: String,
    /// Field path such as `routes[2].plugins[0].wasm`; empty for the document itself.
    pub field: String,
    /// Line and column in the source text, when known.
    pub location: Option<Location>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)?;
        if let Some(loc) = self.location {
            write!(f, ":{}:{}", loc.line, loc.column)?;
        }
        f.write_str(": ")?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Error of loading or validating a snapshot or an intent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The text is not well-formed YAML/JSON, or does not have the expected shape (wrong type,
    /// unknown or missing field).
    #[error("{0}")]
    Decode(Diagnostic),
    /// The document decoded but breaks one or more semantic rules; every problem is listed.
    #[error("{}", DiagnosticList(.0))]
    Invalid(Vec<Diagnostic>),
}

impl ModelError {
    /// Every diagnostic carried by this error, in document order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ModelError::Decode(d) => std::slice::from_ref(d),
            ModelError::Invalid(list) => list,
        }
    }
}

struct DiagnosticList<'a>(&'a [Diagnostic]);

impl fmt::Display for DiagnosticList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Semantic problems collected during validation: field path and message, before the source
/// name and positions are attached.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    items: Vec<(String, String)>,
}

impl Problems {
    /// Records a problem at `field`.
    pub(crate) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.items.push((field.into(), message.into()));
    }

    /// Turns the problems into an error, or `Ok` when there are none.
    pub(crate) fn finish(
        self,
        source: &str,
        positions: Option<&PositionMap>,
    ) -> Result<(), ModelError> {
        if self.items.is_empty() {
            return Ok(());
        }
        let mut list: Vec<Diagnostic> = self
            .items
            .into_iter()
            .map(|(field, message)| Diagnostic {
                source: source.to_string(),
                location: positions.and_then(|p| p.locate(&field)),
                field,
                message,
            })
            .collect();
        // Document order when positions are known; otherwise the order of the checks (stable).
        list.sort_by_key(|d| d.location);
        Err(ModelError::Invalid(list))
    }
}

/// Joins a parent field path and a key: `routes[0]` + `host` = `routes[0].host`.
pub(crate) fn field(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Joins a parent field path and a sequence index: `routes` + 2 = `routes[2]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

#[cfg(feature = "yaml")]
/// Decodes YAML text into `T`, reporting the field path, line and column of the first problem.
/// Also returns the positions of the text's nodes, for the semantic checks that follow.
pub(crate) fn decode_yaml<T: DeserializeOwned>(
    text: &str,
    source: &str,
) -> Result<(T, PositionMap), ModelError> {
    let diagnostic = |field: String, location: Option<Location>, message: String| {
        ModelError::Decode(Diagnostic {
            source: source.to_string(),
            field,
            location,
            message,
        })
    };
    let blank = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---");
    if blank {
        return Err(diagnostic(
            String::new(),
            None,
            "expected a YAML mapping, found an empty document".into(),
        ));
    }
    let positions = PositionMap::from_yaml(text);
    let duplicate = |positions: &PositionMap| {
        positions
            .duplicate_keys()
            .first()
            .map(|(path, loc, first)| {
                let key = path.rsplit('.').next().unwrap_or(path);
                diagnostic(
                    path.clone(),
                    Some(*loc),
                    format!("duplicate key `{key}` (first at line {})", first.line),
                )
            })
    };
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(de).map_err(|err| {
        // Text that is not well-formed YAML: report the syntax error, with no field.
        if let Err(syntax) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
            if let Some(dup) = duplicate(&positions) {
                return dup;
            }
            let location = syntax.location().map(|l| Location {
                line: l.line(),
                column: l.column(),
            });
            return decode_diagnostic(source, "", &syntax.to_string(), location);
        }
        let path = path_string(err.path());
        let inner = err.into_inner();
        let location = inner.location().map(|l| Location {
            line: l.line(),
            column: l.column(),
        });
        let mut diagnostic = decode_diagnostic(source, &path, &inner.to_string(), location);
        // Errors raised by custom deserializers are reported by serde_yaml_ng at the enclosing
        // mapping: point at the value itself when the path names one.
        if let ModelError::Decode(d) = &mut diagnostic
            && !d.message.starts_with("unknown field")
            && !d.message.starts_with("missing field")
            && !d.field.is_empty()
            && d.location.is_some()
            && d.location == positions.locate_exact(crate::position::parent(&d.field))
            && let Some(loc) = positions.locate_exact(&d.field)
        {
            d.location = Some(loc);
        }
        diagnostic
    })?;
    // Serde keeps the last of two equal keys of a map: refuse them instead.
    if let Some(dup) = duplicate(&positions) {
        return Err(dup);
    }
    Ok((value, positions))
}

/// Decodes JSON bytes into `T`, reporting the field path, line and column of the first problem.
pub(crate) fn decode_json<T: DeserializeOwned>(
    bytes: &[u8],
    source: &str,
) -> Result<T, ModelError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = path_string(err.path());
        let inner = err.into_inner();
        let location = (inner.line() > 0).then(|| Location {
            line: inner.line(),
            column: inner.column(),
        });
        decode_diagnostic(source, &path, &inner.to_string(), location)
    })?;
    de.end().map_err(|inner| {
        let location = Some(Location {
            line: inner.line(),
            column: inner.column(),
        });
        decode_diagnostic(source, "", &inner.to_string(), location)
    })?;
    Ok(value)
}

fn path_string(path: &serde_path_to_error::Path) -> String {
    let s = path.to_string();
    if s == "." { String::new() } else { s }
}

/// Builds a decoding diagnostic from a serde error message, removing the location and path that
/// the format crates embed in their messages (they are reported as separate fields).
fn decode_diagnostic(
    source: &str,
    path: &str,
    raw: &str,
    location: Option<Location>,
) -> ModelError {
    let mut message = raw.to_string();
    if let Some(loc) = location {
        for pattern in [
            format!(" at line {} column {}", loc.line, loc.column),
            format!(
                " at line {} column {}",
                loc.line,
                loc.column.saturating_sub(1)
            ),
        ] {
            if let Some(pos) = message.find(&pattern) {
                message.replace_range(pos..pos + pattern.len(), "");
                break;
            }
        }
    }
    // serde_yaml_ng prefixes messages with its own path (`routes[1]: ...`).
    if let Some((prefix, rest)) = message.split_once(": ")
        && !prefix.is_empty()
        && path.starts_with(prefix)
        && prefix
            .chars()
            .all(|c| !c.is_whitespace() && c != '`' && c != '"')
    {
        message = rest.to_string();
    }
    let mut field = path.to_string();
    // A missing field is reported at its parent mapping: name the field itself.
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some(name) = rest.split('`').next()
        && !field.ends_with(name)
    {
        field = self::field(&field, name);
    }
    ModelError::Decode(Diagnostic {
        source: source.to_string(),
        field,
        location,
        message,
    })
}

#[cfg(all(test, feature = "yaml"))]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        name: String,
        count: u32,
    }

    fn yaml_err(text: &str) -> String {
        match decode_yaml::<Doc>(text, "t.yaml") {
            Ok(_) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn yaml_unknown_field_names_the_field_and_position() {
        assert_eq!(
            yaml_err("items:\n  - name: a\n    count: 1\n    colour: red\n"),
            "t.yaml:4:5: items[0].colour: unknown field `colour`, expected `name` or `count`"
        );
    }

    #[test]
    fn yaml_missing_field_is_named() {
        assert_eq!(
            yaml_err("items:\n  - name: a\n"),
            "t.yaml:2:5: items[0].count: missing field `count`"
        );
    }

    #[test]
    fn yaml_wrong_type() {
        assert_eq!(
            yaml_err("items:\n  - name: a\n    count: many\n"),
            "t.yaml:3:12: items[0].count: invalid type: string \"many\", expected u32"
        );
    }

    #[test]
    fn yaml_syntax_errors_have_no_field() {
        assert_eq!(
            yaml_err("items:\n  - name: a\n   count: 1\n"),
            "t.yaml:3:4: did not find expected '-' indicator, while parsing a block collection at line 2 column 3"
        );
        assert_eq!(
            yaml_err("items: [\n"),
            "t.yaml:2:1: did not find expected node content, while parsing a flow node"
        );
        assert_eq!(
            yaml_err("# nothing\n"),
            "t.yaml: expected a YAML mapping, found an empty document"
        );
    }

    #[test]
    fn yaml_duplicate_keys_are_refused() {
        assert_eq!(
            yaml_err("items:\n  - name: a\n    count: 1\n    name: b\n"),
            "t.yaml:4:5: items[0].name: duplicate key `name` (first at line 2)"
        );
    }

    #[test]
    fn json_errors_have_positions() {
        let e = decode_json::<Doc>(br#"{"items": [{"name": "a", "count": -1}]}"#, "push")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("push:1:36: items[0].count: invalid value: integer `-1`, expected u32")
        );
        let e = decode_json::<Doc>(br#"{"items": []} x"#, "push")
            .err()
            .map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("push:1:15: trailing characters"));
    }

    #[test]
    fn invalid_lists_every_problem() {
        let mut p = Problems::default();
        p.push("a", "first");
        p.push("", "second");
        let e = p.finish("f", None).err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("f: a: first\nf: second"));
    }
}
