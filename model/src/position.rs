//! Maps field paths (`routes[2].plugins[0].wasm`) back to line and column in YAML text, so that
//! semantic validation errors found after decoding can point into the file.
//!
//! The text is parsed a second time into an event stream with positions (`saphyr-parser`); every
//! node's path gets the position where its value starts.

use std::collections::HashMap;

#[cfg(feature = "yaml")]
use saphyr_parser::{Event, Parser, Span};

use crate::error::Location;
#[cfg(feature = "yaml")]
use crate::error::{field, index};

/// Positions of every node of a YAML document, keyed by field path.
#[derive(Debug, Default, Clone)]
pub struct PositionMap {
    values: HashMap<String, Location>,
    /// Keys that appear twice in one mapping: path, position of the repeat, of the first.
    duplicates: Vec<(String, Location, Location)>,
}

impl PositionMap {
    #[cfg(feature = "yaml")]
    /// Builds the map from YAML text; text the parser rejects yields a partial (maybe empty) map.
    pub fn from_yaml(text: &str) -> Self {
        let mut builder = Builder {
            parser: Parser::new_from_str(text),
            map: PositionMap::default(),
            failed: false,
        };
        builder.document();
        builder.map
    }

    /// Keys repeated within one mapping, in document order: the path, the position of the
    /// repeated key, and the position of the first.
    pub fn duplicate_keys(&self) -> &[(String, Location, Location)] {
        &self.duplicates
    }

    /// Position of the node at exactly `path`, if the text has one.
    pub fn locate_exact(&self, path: &str) -> Option<Location> {
        self.values.get(path).copied()
    }

    /// Position of the node at `path`, or of its closest ancestor that exists in the text
    /// (a missing field is reported where its parent mapping starts).
    pub fn locate(&self, path: &str) -> Option<Location> {
        let mut current = path;
        loop {
            if let Some(loc) = self.values.get(current) {
                return Some(*loc);
            }
            if current.is_empty() {
                return None;
            }
            current = parent(current);
        }
    }
}

/// The parent of a field path: `a.b[2]` → `a.b`, `a.b` → `a`, `a` → ``.
pub(crate) fn parent(path: &str) -> &str {
    match path.rfind(['.', '[']) {
        Some(i) => &path[..i],
        None => "",
    }
}

#[cfg(feature = "yaml")]
struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    map: PositionMap,
    failed: bool,
}

#[cfg(feature = "yaml")]
fn location(span: &Span) -> Location {
    Location {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

#[cfg(feature = "yaml")]
impl<'a> Builder<'a> {
    fn next(&mut self) -> Option<(Event<'a>, Span)> {
        if self.failed {
            return None;
        }
        match self.parser.next_event() {
            Some(Ok(ev)) => Some(ev),
            _ => {
                self.failed = true;
                None
            }
        }
    }

    fn document(&mut self) {
        // Only the first document is mapped (loaders reject streams of several documents).
        while let Some((event, span)) = self.next() {
            match event {
                Event::StreamEnd => return,
                Event::StreamStart | Event::DocumentStart(_) | Event::Nothing => {}
                Event::DocumentEnd => return,
                other => {
                    self.node(other, span, String::new());
                    return;
                }
            }
        }
    }

    /// Records the node that starts with `event` at `path`, consuming its children.
    fn node(&mut self, event: Event<'a>, span: Span, path: String) {
        self.map
            .values
            .entry(path.clone())
            .or_insert(location(&span));
        match event {
            Event::MappingStart(..) => self.mapping(&path),
            Event::SequenceStart(..) => self.sequence(&path),
            _ => {}
        }
    }

    fn mapping(&mut self, path: &str) {
        let mut keys: HashMap<String, Location> = HashMap::new();
        loop {
            let Some((key, key_span)) = self.next() else {
                return;
            };
            let key_name = match key {
                Event::MappingEnd => return,
                Event::Scalar(ref value, ..) => value.to_string(),
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    // A complex key: skip it, and map its value under `?`.
                    self.skip(key);
                    "?".to_string()
                }
                _ => "?".to_string(),
            };
            if key_name != "?" {
                let here = location(&key_span);
                if let Some(first) = keys.insert(key_name.clone(), here) {
                    self.map
                        .duplicates
                        .push((field(path, &key_name), here, first));
                }
            }
            let Some((value, value_span)) = self.next() else {
                return;
            };
            self.node(value, value_span, field(path, &key_name));
        }
    }

    fn sequence(&mut self, path: &str) {
        let mut i = 0;
        loop {
            let Some((event, span)) = self.next() else {
                return;
            };
            if matches!(event, Event::SequenceEnd) {
                return;
            }
            self.node(event, span, index(path, i));
            i += 1;
        }
    }

    /// Consumes the rest of a collection whose start event was already read.
    fn skip(&mut self, start: Event<'a>) {
        if !matches!(start, Event::MappingStart(..) | Event::SequenceStart(..)) {
            return;
        }
        let mut depth = 1usize;
        while depth > 0 {
            let Some((event, _)) = self.next() else {
                return;
            };
            match event {
                Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
                Event::MappingEnd | Event::SequenceEnd => depth -= 1,
                _ => {}
            }
        }
    }
}

#[cfg(all(test, feature = "yaml"))]
mod tests {
    use super::*;

    const TEXT: &str = "\
listeners: [{address: \"127.0.0.1:8080\"}]
routes:
  - host: \"*\"
    plugins:
      - name: a
        wasm: ./a.wasm
      - name: b
        config: {x: [1, 2]}
";

    fn at(map: &PositionMap, path: &str) -> Option<(usize, usize)> {
        map.locate(path).map(|l| (l.line, l.column))
    }

    #[test]
    fn maps_paths_to_value_positions() {
        let map = PositionMap::from_yaml(TEXT);
        assert_eq!(at(&map, "listeners[0].address"), Some((1, 23)));
        assert_eq!(at(&map, "routes[0].host"), Some((3, 11)));
        assert_eq!(at(&map, "routes[0].plugins[0].wasm"), Some((6, 15)));
        assert_eq!(at(&map, "routes[0].plugins[1]"), Some((7, 9)));
        assert_eq!(at(&map, "routes[0].plugins[1].config.x[1]"), Some((8, 25)));
    }

    #[test]
    fn missing_paths_fall_back_to_the_closest_ancestor() {
        let map = PositionMap::from_yaml(TEXT);
        assert_eq!(at(&map, "routes[0].plugins[1].wasm"), Some((7, 9)));
        assert_eq!(at(&map, "routes[0].cluster"), Some((3, 5)));
        assert_eq!(at(&map, "nothing"), Some((1, 1)));
    }

    #[test]
    fn broken_text_gives_a_partial_map() {
        let map = PositionMap::from_yaml("a: 1\nb: [\n");
        assert_eq!(at(&map, "a"), Some((1, 4)));
        assert_eq!(parent("a.b[2]"), "a.b");
        assert_eq!(parent("a"), "");
    }
}
