//! JSON bodies: every key and every string value, with the path of keys leading to it.
//!
//! A hand-written walker rather than a full parser, on purpose: it also reads truncated
//! bodies (inspection stops at a size limit) and invalid JSON that a lenient application
//! parser might still accept, and it reports text outside strings that is not a number or a
//! literal (`{"id": 1 or 1=1}`) so that it is inspected too.

/// A key or a string value of a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The nearest key (the array's key for array elements; empty at the top level).
    pub key: String,
    /// The dotted path of keys leading to the value, or to the key including itself
    /// (`user.tags`).
    pub path: String,
    /// The key itself, or the string value, unescaped.
    pub text: String,
    /// Whether `text` is a key.
    pub is_key: bool,
}

#[derive(Clone)]
enum Frame {
    Object { key: String, expect_key: bool },
    Array,
}

/// The keys and string values of `input`, in document order, at most `limit` of them.
pub fn fields(input: &[u8], limit: usize) -> Vec<Field> {
    let text = String::from_utf8_lossy(input);
    let mut chars = text.chars().peekable();
    let mut stack: Vec<Frame> = Vec::new();
    let mut out = Vec::new();
    let mut bare = String::new();
    while let Some(c) = chars.next() {
        if out.len() >= limit {
            break;
        }
        let structural = matches!(c, '{' | '}' | '[' | ']' | ':' | ',' | '"') || c.is_whitespace();
        if !structural {
            bare.push(c);
            continue;
        }
        flush_bare(&mut bare, &stack, &mut out);
        match c {
            '{' => stack.push(Frame::Object {
                key: String::new(),
                expect_key: true,
            }),
            '[' => stack.push(Frame::Array),
            '}' | ']' => {
                stack.pop();
            }
            ':' => {
                if let Some(Frame::Object { expect_key, .. }) = stack.last_mut() {
                    *expect_key = false;
                }
            }
            ',' => {
                if let Some(Frame::Object { expect_key, .. }) = stack.last_mut() {
                    *expect_key = true;
                }
            }
            '"' => {
                let s = read_string(&mut chars);
                match stack.last_mut() {
                    Some(Frame::Object { key, expect_key }) if *expect_key => {
                        key.clone_from(&s);
                        let (key_name, path) = position(&stack);
                        out.push(Field {
                            key: key_name,
                            path,
                            text: s,
                            is_key: true,
                        });
                    }
                    _ => {
                        let (key, path) = position(&stack);
                        out.push(Field {
                            key,
                            path,
                            text: s,
                            is_key: false,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    flush_bare(&mut bare, &stack, &mut out);
    out
}

/// Text outside strings that is not a number or literal is reported as a value.
fn flush_bare(bare: &mut String, stack: &[Frame], out: &mut Vec<Field>) {
    if bare.is_empty() {
        return;
    }
    let is_literal = matches!(bare.as_str(), "true" | "false" | "null")
        || bare
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'));
    if !is_literal {
        let (key, path) = position(stack);
        out.push(Field {
            key,
            path,
            text: bare.clone(),
            is_key: false,
        });
    }
    bare.clear();
}

/// The nearest key and the dotted path of keys for the current position.
fn position(stack: &[Frame]) -> (String, String) {
    let keys: Vec<&str> = stack
        .iter()
        .filter_map(|f| match f {
            Frame::Object { key, .. } if !key.is_empty() => Some(key.as_str()),
            _ => None,
        })
        .collect();
    (
        keys.last().map(|k| (*k).to_string()).unwrap_or_default(),
        keys.join("."),
    )
}

/// Reads a string after its opening quote, unescaping it; stops at the end of input.
fn read_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
    let mut s = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('n') => s.push('\n'),
                Some('t') => s.push('\t'),
                Some('r') => s.push('\r'),
                Some('b') => s.push('\u{8}'),
                Some('f') => s.push('\u{c}'),
                Some('u') => {
                    let hex: String = (0..4).filter_map(|_| chars.next()).collect();
                    let unit = u32::from_str_radix(&hex, 16).ok();
                    s.push(
                        unit.and_then(char::from_u32)
                            .unwrap_or(char::REPLACEMENT_CHARACTER),
                    );
                }
                Some(other) => s.push(other),
                None => break,
            },
            _ => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(input: &str) -> Vec<(String, String, bool)> {
        fields(input.as_bytes(), 100)
            .into_iter()
            .map(|f| (f.path, f.text, f.is_key))
            .collect()
    }

    #[test]
    fn keys_and_string_values_carry_their_path() {
        let got = texts(r#"{"user": {"name": "O'Brien", "tags": ["a", "b\"c"]}, "n": 1}"#);
        let want = [
            ("user", "user", true),
            ("user.name", "name", true),
            ("user.name", "O'Brien", false),
            ("user.tags", "tags", true),
            ("user.tags", "a", false),
            ("user.tags", "b\"c", false),
            ("n", "n", true),
        ];
        let want: Vec<(String, String, bool)> = want
            .iter()
            .map(|(p, t, k)| (p.to_string(), t.to_string(), *k))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn unicode_escapes_are_decoded() {
        assert_eq!(texts(r#"["\u003cscript\u003e"]"#)[0].1, "<script>");
    }

    #[test]
    fn truncated_and_invalid_documents_still_yield_their_text() {
        let got = texts(r#"{"id": 1 or 1=1, "q": "unterminated"#);
        assert!(
            got.iter().any(|(p, t, _)| p == "id" && t == "or"),
            "{got:?}"
        );
        assert!(got.iter().any(|(_, t, _)| t == "unterminated"), "{got:?}");
    }

    #[test]
    fn the_number_of_fields_is_bounded() {
        let doc = format!("[{}]", vec!["\"x\""; 50].join(","));
        assert_eq!(fields(doc.as_bytes(), 10).len(), 10);
    }
}
