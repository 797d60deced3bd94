//! Syntax highlighting of YAML for display: each line split into classified pieces whose texts
//! put together give the line back unchanged. It is a display aid for the intents the UI shows
//! (block mappings, sequences, flow lists and mappings, quoted strings, comments), not a
//! parser.

/// What a piece of a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Whitespace or anything unclassified.
    Text,
    /// A mapping key.
    Key,
    /// `:`, `-`, `[`, `]`, `{`, `}`, `,`.
    Punct,
    /// A quoted string.
    String,
    /// A number.
    Number,
    /// `true`, `false`, `null`, `~`.
    Keyword,
    /// An unquoted scalar.
    Plain,
    /// A `#` comment.
    Comment,
}

impl Kind {
    /// The CSS class the piece is drawn with (`None` for plain text).
    pub fn class(self) -> Option<&'static str> {
        match self {
            Kind::Text => None,
            Kind::Key => Some("y-key"),
            Kind::Punct => Some("y-punct"),
            Kind::String => Some("y-str"),
            Kind::Number => Some("y-num"),
            Kind::Keyword => Some("y-kw"),
            Kind::Plain => Some("y-plain"),
            Kind::Comment => Some("y-comment"),
        }
    }
}

/// A classified piece of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// What it is.
    pub kind: Kind,
    /// Its text.
    pub text: String,
}

/// Splits `text` into lines of classified pieces.
pub fn highlight(text: &str) -> Vec<Vec<Piece>> {
    text.lines().map(highlight_line).collect()
}

struct Out(Vec<Piece>);

impl Out {
    fn push(&mut self, kind: Kind, text: &str) {
        if text.is_empty() {
            return;
        }
        match self.0.last_mut() {
            Some(last) if last.kind == kind && kind == Kind::Text => last.text.push_str(text),
            _ => self.0.push(Piece {
                kind,
                text: text.to_string(),
            }),
        }
    }
}

/// One line.
pub fn highlight_line(line: &str) -> Vec<Piece> {
    let mut out = Out(Vec::new());
    let mut rest = line;
    // Indentation and sequence dashes.
    loop {
        let trimmed = rest.trim_start();
        out.push(Kind::Text, &rest[..rest.len() - trimmed.len()]);
        rest = trimmed;
        if rest == "-" || rest.starts_with("- ") {
            out.push(Kind::Punct, "-");
            rest = &rest[1..];
            continue;
        }
        break;
    }
    if rest.starts_with('#') {
        out.push(Kind::Comment, rest);
        return out.0;
    }
    // `key:` followed by a space or the end of the line.
    if let Some(key_len) = block_key_len(rest) {
        out.push(Kind::Key, &rest[..key_len]);
        out.push(Kind::Punct, ":");
        rest = &rest[key_len + 1..];
    }
    value(&mut out, rest);
    out.0
}

/// The length of the key at the start of `text` when it is `key:` followed by a space or the
/// end (not `:` inside a plain scalar such as `127.0.0.1:9000`).
fn block_key_len(text: &str) -> Option<usize> {
    let first = text.chars().next()?;
    if first == '"' || first == '\'' {
        let end = quoted_len(text);
        let after = &text[end..];
        return (after.starts_with(": ") || after == ":").then_some(end);
    }
    if matches!(first, '[' | '{' | '#' | '&' | '*' | '!' | '|' | '>') {
        return None;
    }
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            ':' => match chars.peek() {
                None | Some((_, ' ')) => return Some(i),
                _ => {}
            },
            '#' if text[..i].ends_with(' ') => return None,
            _ => {}
        }
    }
    None
}

/// The length of the quoted string at the start of `text` (to its end when unterminated).
fn quoted_len(text: &str) -> usize {
    let mut chars = text.char_indices();
    let Some((_, quote)) = chars.next() else {
        return 0;
    };
    let mut escaped = false;
    for (i, c) in chars {
        if quote == '"' && !escaped && c == '\\' {
            escaped = true;
            continue;
        }
        if c == quote && !escaped {
            return i + c.len_utf8();
        }
        escaped = false;
    }
    text.len()
}

/// A value: flow collections, scalars, a trailing comment.
fn value(out: &mut Out, text: &str) {
    let mut rest = text;
    let mut depth = 0usize;
    while !rest.is_empty() {
        let c = rest.chars().next().unwrap_or(' ');
        if c == ' ' || c == '\t' {
            let trimmed = rest.trim_start();
            out.push(Kind::Text, &rest[..rest.len() - trimmed.len()]);
            rest = trimmed;
            continue;
        }
        if c == '#' {
            out.push(Kind::Comment, rest);
            return;
        }
        if matches!(c, '[' | '{') {
            depth += 1;
            out.push(Kind::Punct, &rest[..1]);
            rest = &rest[1..];
            continue;
        }
        if matches!(c, ']' | '}') {
            depth = depth.saturating_sub(1);
            out.push(Kind::Punct, &rest[..1]);
            rest = &rest[1..];
            continue;
        }
        if c == ',' && depth > 0 {
            out.push(Kind::Punct, ",");
            rest = &rest[1..];
            continue;
        }
        if c == '"' || c == '\'' {
            let end = quoted_len(rest);
            out.push(Kind::String, &rest[..end]);
            rest = &rest[end..];
            if depth > 0 && rest.starts_with(':') {
                out.push(Kind::Punct, ":");
                rest = &rest[1..];
            }
            continue;
        }
        // A plain scalar runs to a flow indicator (inside a flow collection), ` #`, or the end.
        let end = plain_len(rest, depth > 0);
        let scalar = &rest[..end];
        rest = &rest[end..];
        if depth > 0 && rest.starts_with(':') {
            out.push(Kind::Key, scalar.trim_end());
            out.push(Kind::Text, &scalar[scalar.trim_end().len()..]);
            out.push(Kind::Punct, ":");
            rest = &rest[1..];
            continue;
        }
        let trimmed = scalar.trim_end();
        out.push(classify(trimmed), trimmed);
        out.push(Kind::Text, &scalar[trimmed.len()..]);
    }
}

fn plain_len(text: &str, in_flow: bool) -> usize {
    let bytes = text.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'#' if i > 0 && bytes[i - 1] == b' ' => return i,
            b',' | b']' | b'}' if in_flow => return i,
            b':' if in_flow && bytes.get(i + 1).is_none_or(|n| *n == b' ') => return i,
            _ => {}
        }
    }
    text.len()
}

fn classify(scalar: &str) -> Kind {
    match scalar {
        "true" | "false" | "True" | "False" | "TRUE" | "FALSE" | "null" | "Null" | "NULL" | "~" => {
            Kind::Keyword
        }
        s if s.parse::<f64>().is_ok() && s.bytes().any(|b| b.is_ascii_digit()) => Kind::Number,
        _ => Kind::Plain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(line: &str) -> Vec<(Kind, String)> {
        highlight_line(line)
            .into_iter()
            .map(|p| (p.kind, p.text))
            .collect()
    }

    fn k(kind: Kind, text: &str) -> (Kind, String) {
        (kind, text.to_string())
    }

    #[test]
    fn pieces_put_together_give_the_text_back() {
        let text = "# comment\napiVersion: paved.dev/v1\nname: orders\nowners: [demo, \"a b\"]\n\
                    upstream: 127.0.0.1:9000  # local\nroutes:\n  - path: /\n    public: true\n\
                    waf: {mode: detect, paranoia: 2}\ndescription: \"x: y # z\"\n- \n";
        for (line, pieces) in text.lines().zip(highlight(text)) {
            let joined: String = pieces.iter().map(|p| p.text.as_str()).collect();
            assert_eq!(joined, line);
        }
    }

    #[test]
    fn keys_values_and_comments_are_classified() {
        assert_eq!(
            kinds("name: orders"),
            vec![
                k(Kind::Key, "name"),
                k(Kind::Punct, ":"),
                k(Kind::Text, " "),
                k(Kind::Plain, "orders")
            ]
        );
        assert_eq!(
            kinds("upstream: 127.0.0.1:9000 # here"),
            vec![
                k(Kind::Key, "upstream"),
                k(Kind::Punct, ":"),
                k(Kind::Text, " "),
                k(Kind::Plain, "127.0.0.1:9000"),
                k(Kind::Text, " "),
                k(Kind::Comment, "# here")
            ]
        );
        assert_eq!(
            kinds("# all comment"),
            vec![k(Kind::Comment, "# all comment")]
        );
    }

    #[test]
    fn sequences_flow_lists_and_scalars_get_their_kinds() {
        assert_eq!(
            kinds("  - path: /"),
            vec![
                k(Kind::Text, "  "),
                k(Kind::Punct, "-"),
                k(Kind::Text, " "),
                k(Kind::Key, "path"),
                k(Kind::Punct, ":"),
                k(Kind::Text, " "),
                k(Kind::Plain, "/")
            ]
        );
        assert_eq!(
            kinds("x: [a, \"b\", 3]"),
            vec![
                k(Kind::Key, "x"),
                k(Kind::Punct, ":"),
                k(Kind::Text, " "),
                k(Kind::Punct, "["),
                k(Kind::Plain, "a"),
                k(Kind::Punct, ","),
                k(Kind::Text, " "),
                k(Kind::String, "\"b\""),
                k(Kind::Punct, ","),
                k(Kind::Text, " "),
                k(Kind::Number, "3"),
                k(Kind::Punct, "]")
            ]
        );
        let flow_map = kinds("waf: {mode: block, on: true}");
        assert!(flow_map.contains(&k(Kind::Key, "mode")));
        assert!(flow_map.contains(&k(Kind::Keyword, "true")));
        assert!(kinds("n: 1.5").contains(&k(Kind::Number, "1.5")));
        assert!(kinds("t: ~").contains(&k(Kind::Keyword, "~")));
    }

    #[test]
    fn quoted_strings_keep_colons_hashes_and_escapes() {
        assert_eq!(
            kinds("d: \"a: \\\"b\\\" # c\""),
            vec![
                k(Kind::Key, "d"),
                k(Kind::Punct, ":"),
                k(Kind::Text, " "),
                k(Kind::String, "\"a: \\\"b\\\" # c\"")
            ]
        );
        assert_eq!(kinds("'unterminated")[0], k(Kind::String, "'unterminated"));
    }
}
