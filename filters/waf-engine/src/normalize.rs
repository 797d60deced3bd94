//! Normalisation: the views of a value that detectors look at.
//!
//! Attackers hide payloads in encodings the application undoes (URL encoding, repeated or
//! IIS `%u` encoding, overlong UTF-8, HTML entities, JavaScript escapes, null bytes, odd
//! whitespace). Every value is decoded the way a permissive application stack might decode
//! it, and detectors match on the result; what the decoding met on the way (invalid or
//! multiple encodings) is reported as protocol findings.

/// How a value arrived, which decides how it is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// URL-encoded with `+` for space: query strings and form bodies.
    Form,
    /// URL-encoded without the `+` rule: the path.
    Path,
    /// Not URL-encoded on the wire (JSON strings, multipart fields, headers); percent escapes
    /// are still decoded leniently, since applications often decode them again.
    Plain,
}

/// What decoding met, for the protocol rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncodingFlags {
    /// A `%` not followed by two hex digits (only reported for URL-encoded sources).
    pub invalid: bool,
    /// Still percent-encoded after one round of decoding (double encoding).
    pub multiple: bool,
    /// IIS `%uXXXX` escapes or overlong UTF-8 sequences.
    pub iis_or_overlong: bool,
    /// A null byte, raw or decoded.
    pub null_byte: bool,
    /// Another C0 control character (not tab, CR, LF), raw or decoded.
    pub control: bool,
}

/// The views of one value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Normalized {
    /// The value as received, as text (invalid UTF-8 replaced).
    pub raw: String,
    /// Fully decoded: URL (repeatedly), `%u`, overlong UTF-8, HTML entities, JavaScript
    /// escapes; null bytes removed. Case and spacing kept.
    pub decoded: String,
    /// `decoded` in lowercase with every run of whitespace made one space.
    pub lower: String,
    /// Lowercase, decoded like `decoded` but without HTML entities: what a browser parses as
    /// markup (`&lt;script&gt;` is text, not a tag).
    pub markup: String,
    /// What decoding met.
    pub flags: EncodingFlags,
}

/// Most rounds of URL decoding: enough for double and triple encoding, bounded for cost.
const MAX_DECODE_ROUNDS: usize = 3;

impl Normalized {
    /// Decodes `raw` as it arrived with `encoding`.
    pub fn new(raw: &[u8], encoding: Encoding) -> Normalized {
        let mut flags = EncodingFlags::default();
        let mut bytes = raw.to_vec();
        for round in 0..MAX_DECODE_ROUNDS {
            // A form's first round also turns `+` into spaces, `%` or not.
            if !(bytes.contains(&b'%') || round == 0 && encoding == Encoding::Form) {
                break;
            }
            let decoded = url_decode(&bytes, round == 0 && encoding == Encoding::Form);
            if round == 0 && encoding != Encoding::Plain {
                flags.invalid |= decoded.invalid;
            }
            flags.iis_or_overlong |= decoded.iis;
            if decoded.bytes == bytes {
                break;
            }
            if round == 1 {
                flags.multiple = true;
            }
            bytes = decoded.bytes;
        }
        flags.iis_or_overlong |= has_overlong_utf8(&bytes);
        let bytes = fold_overlong_utf8(&bytes);
        flags.null_byte = raw.contains(&0) || bytes.contains(&0);
        flags.control = bytes
            .iter()
            .chain(raw.iter())
            .any(|&b| b < 0x20 && !matches!(b, 0 | b'\t' | b'\r' | b'\n'));
        let text: String = String::from_utf8_lossy(&bytes)
            .chars()
            .filter(|&c| c != '\0')
            .collect();
        let markup = unescape_js(&text).to_lowercase();
        let decoded = unescape_js(&html_entity_decode(&text));
        let lower = compress_whitespace(&decoded.to_lowercase());
        Normalized {
            raw: String::from_utf8_lossy(raw).into_owned(),
            decoded,
            lower,
            markup,
            flags,
        }
    }
}

struct UrlDecoded {
    bytes: Vec<u8>,
    invalid: bool,
    iis: bool,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn hex_value(digits: &[u8]) -> Option<u32> {
    digits
        .iter()
        .try_fold(0u32, |acc, &d| hex(d).map(|v| acc * 16 + u32::from(v)))
}

/// One round of percent decoding, lenient like most servers: invalid escapes stay as they are.
fn url_decode(input: &[u8], plus_is_space: bool) -> UrlDecoded {
    let mut out = Vec::with_capacity(input.len());
    let (mut invalid, mut iis) = (false, false);
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match b {
            b'%' => {
                if let Some(v) = input.get(i + 1..i + 3).and_then(hex_value) {
                    out.push(v as u8);
                    i += 3;
                    continue;
                }
                let is_u = matches!(input.get(i + 1), Some(b'u' | b'U'));
                if let Some(cp) = input.get(i + 2..i + 6).filter(|_| is_u).and_then(hex_value) {
                    iis = true;
                    push_code_point(&mut out, fold_fullwidth(cp));
                    i += 6;
                    continue;
                }
                invalid = true;
                out.push(b);
            }
            b'+' if plus_is_space => out.push(b' '),
            _ => out.push(b),
        }
        i += 1;
    }
    UrlDecoded {
        bytes: out,
        invalid,
        iis,
    }
}

/// IIS maps fullwidth forms (U+FF01–U+FF5E) to ASCII: `%uff1c` is `<`.
fn fold_fullwidth(cp: u32) -> u32 {
    if (0xff01..=0xff5e).contains(&cp) {
        cp - 0xff01 + 0x21
    } else {
        cp
    }
}

fn push_code_point(out: &mut Vec<u8>, cp: u32) {
    let c = char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER);
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// Two-byte sequences starting with 0xC0 or 0xC1 encode ASCII in too many bytes (`%c0%ae`
/// is `.`): invalid UTF-8 that some decoders accept.
fn has_overlong_utf8(bytes: &[u8]) -> bool {
    bytes
        .windows(2)
        .any(|w| matches!(w[0], 0xc0 | 0xc1) && (0x80..0xc0).contains(&w[1]))
        || bytes
            .windows(3)
            .any(|w| w[0] == 0xe0 && (0x80..0xa0).contains(&w[1]) && (0x80..0xc0).contains(&w[2]))
}

/// Replaces overlong encodings of ASCII by the ASCII byte, as a lenient decoder would.
fn fold_overlong_utf8(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match (b, bytes.get(i + 1), bytes.get(i + 2)) {
            (0xc0 | 0xc1, Some(&c), _) if (0x80..0xc0).contains(&c) => {
                out.push(((b & 0x1f) << 6) | (c & 0x3f));
                i += 2;
            }
            (0xe0, Some(&c), Some(&d))
                if (0x80..0xa0).contains(&c) && (0x80..0xc0).contains(&d) =>
            {
                out.push(((c & 0x3f) << 6) | (d & 0x3f));
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Named entities that matter for markup and script; numeric entities are all decoded.
const NAMED_ENTITIES: &[(&str, char)] = &[
    ("lt", '<'),
    ("gt", '>'),
    ("amp", '&'),
    ("quot", '"'),
    ("apos", '\''),
    ("nbsp", ' '),
    ("colon", ':'),
    ("semi", ';'),
    ("tab", '\t'),
    ("newline", '\n'),
    ("lpar", '('),
    ("rpar", ')'),
    ("sol", '/'),
    ("bsol", '\\'),
    ("period", '.'),
    ("comma", ','),
    ("excl", '!'),
    ("num", '#'),
    ("equals", '='),
    ("grave", '`'),
    ("lsqb", '['),
    ("rsqb", ']'),
    ("lcub", '{'),
    ("rcub", '}'),
];

/// Decodes HTML character references: `&#60;`, `&#x3c;` (the `;` optional, as browsers
/// accept), and the named ones above.
pub fn html_entity_decode(input: &str) -> String {
    if !input.contains('&') {
        return input.to_string();
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match decode_entity(after) {
            Some((c, used)) => {
                out.push(c);
                rest = &after[used..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The character of the entity at the start of `s` (after `&`) and the bytes it used.
fn decode_entity(s: &str) -> Option<(char, usize)> {
    let bytes = s.as_bytes();
    let semicolon = |end: usize| usize::from(bytes.get(end) == Some(&b';'));
    if let Some(num) = s.strip_prefix('#') {
        let (digits_start, radix) = match num.as_bytes().first() {
            Some(b'x' | b'X') => (2, 16),
            _ => (1, 10),
        };
        let digits: String = s[digits_start..]
            .chars()
            .take_while(|c| c.is_digit(radix))
            .take(8)
            .collect();
        if digits.is_empty() {
            return None;
        }
        let cp = u32::from_str_radix(&digits, radix).ok()?;
        let end = digits_start + digits.len();
        return Some((
            char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER),
            end + semicolon(end),
        ));
    }
    NAMED_ENTITIES.iter().find_map(|(name, c)| {
        let candidate = s.get(..name.len())?;
        if !candidate.eq_ignore_ascii_case(name) {
            return None;
        }
        let end = name.len();
        // Without `;` only when no letter follows, so `&ltd` is not `<d`.
        let next_is_alnum = bytes.get(end).is_some_and(u8::is_ascii_alphanumeric);
        (semicolon(end) == 1 || !next_is_alnum).then(|| (*c, end + semicolon(end)))
    })
}

/// Decodes JavaScript and C-style escapes: `\u003c`, `\u{3c}`, `\x3c`.
pub fn unescape_js(input: &str) -> String {
    if !input.contains('\\') {
        return input.to_string();
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let escape = match after.as_bytes().first() {
            Some(b'u') if after.as_bytes().get(1) == Some(&b'{') => after
                .find('}')
                .filter(|&end| end <= 8)
                .and_then(|end| hex_value(&after.as_bytes()[2..end]).map(|v| (v, end + 1))),
            Some(b'u') => after
                .get(1..5)
                .and_then(|d| hex_value(d.as_bytes()))
                .map(|v| (v, 5)),
            Some(b'x') => after
                .get(1..3)
                .and_then(|d| hex_value(d.as_bytes()))
                .map(|v| (v, 3)),
            _ => None,
        };
        match escape {
            Some((cp, used)) => {
                out.push(char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER));
                rest = &after[used..];
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Makes every run of whitespace (including vertical tab, form feed and no-break space) one
/// space.
pub fn compress_whitespace(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut in_space = false;
    for c in input.chars() {
        if c.is_whitespace() || c == '\u{0b}' || c == '\u{0c}' {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

/// Replaces SQL comments by a space, keeping the content of MySQL executable comments
/// (`/*!50000union*/` is `union`): what a MySQL parser sees.
pub fn strip_sql_comments(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find("/*") {
        out.push_str(&rest[..at]);
        let body = &rest[at + 2..];
        let Some(end) = body.find("*/") else {
            // Unterminated: the rest is a comment, which the SQL tokenizer must still see.
            out.push_str(&rest[at..]);
            return out;
        };
        let (inner, after) = (&body[..end], &body[end + 2..]);
        if let Some(exec) = inner.strip_prefix('!') {
            out.push(' ');
            out.push_str(exec.trim_start_matches(|c: char| c.is_ascii_digit()));
        }
        out.push(' ');
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(raw: &str, encoding: Encoding) -> String {
        Normalized::new(raw.as_bytes(), encoding).lower
    }

    #[test]
    fn url_decoding_is_repeated_and_reports_double_encoding() {
        let n = Normalized::new(b"%252e%252e%252fetc", Encoding::Form);
        assert_eq!(n.decoded, "../etc");
        assert!(n.flags.multiple);
        assert!(!n.flags.invalid);
        assert!(!Normalized::new(b"%2e%2e", Encoding::Form).flags.multiple);
    }

    #[test]
    fn plus_is_a_space_only_in_forms() {
        assert_eq!(lower("a+b", Encoding::Form), "a b");
        assert_eq!(lower("a+b", Encoding::Path), "a+b");
        assert_eq!(lower("1%2b1", Encoding::Form), "1+1");
    }

    #[test]
    fn invalid_escapes_stay_and_are_flagged_for_url_encoded_sources_only() {
        let n = Normalized::new(b"50%zz", Encoding::Form);
        assert_eq!(n.decoded, "50%zz");
        assert!(n.flags.invalid);
        assert!(!Normalized::new(b"50% off", Encoding::Plain).flags.invalid);
    }

    #[test]
    fn iis_unicode_and_overlong_utf8_decode_to_ascii() {
        let n = Normalized::new(b"%u003cscript%uff1e", Encoding::Form);
        assert_eq!(n.decoded, "<script>");
        assert!(n.flags.iis_or_overlong);
        let n = Normalized::new(b"%c0%ae%c0%ae/", Encoding::Path);
        assert_eq!(n.decoded, "../");
        assert!(n.flags.iis_or_overlong);
    }

    #[test]
    fn html_entities_and_js_escapes_decode() {
        assert_eq!(html_entity_decode("&lt;b&gt; &#60;&#x3C &amp;"), "<b> << &");
        assert_eq!(
            html_entity_decode("java&#x09;script&colon;"),
            "java\tscript:"
        );
        assert_eq!(html_entity_decode("AT&T &ltd"), "AT&T &ltd");
        assert_eq!(unescape_js(r"\u003cscript\x3e\u{41}"), "<script>A");
        assert_eq!(unescape_js(r"C:\users\new"), r"C:\users\new");
    }

    #[test]
    fn nulls_are_removed_and_flagged_and_whitespace_compressed() {
        let n = Normalized::new(b"a%00b\t\n\x0b c", Encoding::Form);
        assert_eq!(n.lower, "ab c");
        assert!(n.flags.null_byte);
        assert!(n.flags.control);
        assert_eq!(lower("SeLeCt\u{a0}X", Encoding::Plain), "select x");
    }

    #[test]
    fn sql_comments_become_spaces_and_mysql_executable_comments_keep_their_content() {
        assert_eq!(strip_sql_comments("1/**/or/**/1"), "1 or 1");
        assert_eq!(
            strip_sql_comments("/*!50000union*/ select"),
            " union  select"
        );
        assert_eq!(strip_sql_comments("a /* open"), "a /* open");
    }
}
