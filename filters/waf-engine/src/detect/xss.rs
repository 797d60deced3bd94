//! Cross-site scripting.
//!
//! The core rule (941100) parses the markup in a value the way a browser would start to:
//! tags with their attributes. A tag is an attack when it is an element that runs or loads
//! code, carries an event handler, or points an attribute at a script URI. Harmless
//! formatting (`<b>`, `<a href="https://...">`) is allowed at paranoia 1 and reported at
//! higher levels. Pattern rules catch what needs no tag: attribute injection (`" onfocus=`),
//! script URIs, DOM sinks, CSS expressions, UTF-7 and template injection.

use super::text::{contains_any, has, is_word_byte, match_indices, without_spaces};
use super::{Hits, Value};
use crate::normalize::html_entity_decode;
use crate::rule;

/// Elements that run or load code, or change how the page resolves URLs.
const DANGEROUS_TAGS: &[&str] = &[
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "base",
    "meta",
    "link",
    "svg",
    "math",
    "form",
    "isindex",
    "xml",
    "xss",
    "style",
    "portal",
    "image",
    "bgsound",
    "layer",
    "ilayer",
    "import",
    "template",
    "noscript",
    "textarea",
    "xmp",
    "plaintext",
    "listing",
    "animate",
    "set",
    "handler",
    "vmlframe",
];

/// Formatting elements that rich text legitimately contains.
const FORMATTING_TAGS: &[&str] = &[
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "caption",
    "center",
    "cite",
    "code",
    "col",
    "colgroup",
    "dd",
    "del",
    "details",
    "dfn",
    "div",
    "dl",
    "dt",
    "em",
    "figcaption",
    "figure",
    "font",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "ins",
    "kbd",
    "li",
    "mark",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "samp",
    "small",
    "span",
    "strike",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "time",
    "tr",
    "tt",
    "u",
    "ul",
    "var",
    "wbr",
];

/// Attributes whose value is a URL the browser loads or navigates to.
const URL_ATTRIBUTES: &[&str] = &[
    "href",
    "src",
    "action",
    "formaction",
    "data",
    "xlink:href",
    "background",
    "dynsrc",
    "lowsrc",
    "poster",
    "code",
    "codebase",
    "content",
    "to",
    "from",
    "values",
    "by",
    "ping",
    "cite",
    "longdesc",
    "usemap",
    "manifest",
    "srcset",
    "icon",
];

/// Event handler attribute names, for injections into an existing tag (no `<` needed).
const EVENT_HANDLERS: &[&str] = &[
    "onload",
    "onerror",
    "onclick",
    "ondblclick",
    "onmouseover",
    "onmouseout",
    "onmouseenter",
    "onmouseleave",
    "onmousemove",
    "onmousedown",
    "onmouseup",
    "onfocus",
    "onfocusin",
    "onfocusout",
    "onblur",
    "onchange",
    "oninput",
    "onsubmit",
    "onreset",
    "onselect",
    "onkeydown",
    "onkeyup",
    "onkeypress",
    "onabort",
    "onanimationstart",
    "onanimationend",
    "onanimationiteration",
    "ontransitionend",
    "ontransitionstart",
    "onbeforeunload",
    "onunload",
    "onresize",
    "onscroll",
    "ondrag",
    "ondragstart",
    "ondragend",
    "ondragover",
    "ondragenter",
    "ondragleave",
    "ondrop",
    "onpaste",
    "oncopy",
    "oncut",
    "onwheel",
    "onpointerover",
    "onpointerdown",
    "onpointerup",
    "onpointermove",
    "onpointerenter",
    "ontoggle",
    "onstart",
    "onfinish",
    "onbegin",
    "onend",
    "onrepeat",
    "onhashchange",
    "onmessage",
    "onpageshow",
    "onpagehide",
    "onpopstate",
    "onsearch",
    "oncontextmenu",
    "onauxclick",
    "oninvalid",
    "onshow",
    "onloadstart",
    "onloadend",
    "onprogress",
    "oncanplay",
    "onplay",
    "onplaying",
    "onpause",
    "ontimeupdate",
    "onvolumechange",
    "onwaiting",
    "onended",
    "onafterprint",
    "onbeforeprint",
    "onstorage",
    "ononline",
    "onoffline",
    "onreadystatechange",
    "onbounce",
    "onactivate",
    "onbeforeactivate",
    "onfocusin",
    "onselectstart",
    "onselectionchange",
    "onbeforeinput",
    "onformdata",
];

const SCRIPT_SCHEMES: &[&str] = &["javascript:", "vbscript:", "livescript:", "mocha:"];
const DATA_SCRIPT_TYPES: &[&str] = &[
    "data:text/html",
    "data:image/svg+xml",
    "data:application/xhtml",
    "data:application/x-",
    "data:text/xml",
    "data:application/javascript",
    "data:text/javascript",
];
const DOM_SINKS: &[&str] = &[
    "document.cookie",
    "document.write",
    "document.domain",
    "document.location",
    "window.location",
    "top.location",
    "location.href",
    "location.replace(",
    "location.assign(",
    ".innerhtml",
    ".outerhtml",
    ".insertadjacenthtml",
    "fromcharcode",
    "window.name",
    "document.body.appendchild",
    "document.createelement(",
    "localstorage.getitem",
    "navigator.sendbeacon",
];
const DIALOG_CALLS: &[&str] = &["alert", "prompt", "confirm", "eval", "print"];

/// Runs every XSS rule on one value.
pub fn detect(value: &Value<'_>, hits: &mut Hits) {
    let lower = &value.norm.lower;
    let compact = without_spaces(lower);
    if value.norm.markup.contains('<') {
        tags(&value.norm.markup, hits);
    }
    // Pre-checks below skip pattern lists a value cannot match (no `=`, `:`, `(`...).
    if lower.contains('=') && event_handler_assignment(lower) {
        hits.push(rule::XSS_EVENT_HANDLER);
    }
    if compact.contains(':') && script_uri(&compact) {
        hits.push(rule::XSS_SCRIPT_URI);
    }
    let css = compact.contains("expression(")
        || has(&compact, "-moz-binding")
        || compact.contains("behavior:url(")
        || compact.contains("url(javascript:")
        || has(&compact, "@import'")
        || has(&compact, "@import\"")
        || compact.contains("@importurl(");
    if css {
        hits.push(rule::XSS_CSS);
    }
    if (lower.contains('.') || has(lower, "fromcharcode"))
        && DOM_SINKS
            .iter()
            .any(|sink| sink_in_code(&compact, lower, sink))
    {
        hits.push(rule::XSS_DOM_SINK);
    }
    let call_possible = compact.contains(['(', '`']);
    if call_possible && js_context_breakout(&compact) {
        hits.push(rule::XSS_TOKENIZER);
    }
    let dialog = |f: &&str| {
        match_indices(&compact, f)
            .any(|(at, _)| matches!(compact.as_bytes().get(at + f.len()), Some(b'(' | b'`')))
    };
    if call_possible && DIALOG_CALLS.iter().any(dialog) {
        hits.push(rule::XSS_JS_CALL);
    }
    let raw = value.norm.raw.to_lowercase();
    let utf7 = |s: &str| has(s, "+adw-") || has(s, "+ad4-");
    if utf7(&raw) || utf7(lower) {
        hits.push(rule::XSS_UTF7);
    }
    if has(&compact, "{{")
        && contains_any(
            &compact,
            &["constructor", "$eval", "$on.", "tostring", "alert("],
        )
    {
        hits.push(rule::XSS_ANGULAR);
    }
}

/// A tag as far as it was read: its name and attributes (lowercase).
#[derive(Debug, Default, PartialEq, Eq)]
struct Tag {
    name: String,
    attributes: Vec<(String, String)>,
}

/// Parses the tags of `lower` and reports the dangerous ones.
fn tags(lower: &str, hits: &mut Hits) {
    for tag in parse_tags(lower) {
        if tag.name == "script" {
            hits.push(rule::XSS_SCRIPT_TAG);
            hits.push(rule::XSS_TOKENIZER);
        }
        if DANGEROUS_TAGS.contains(&tag.name.as_str()) {
            hits.push(rule::XSS_DANGEROUS_TAG);
        }
        let dangerous_attribute = tag.attributes.iter().any(|(name, value)| {
            // Browsers decode entities in attribute values: `href="jav&#x09;ascript:..."`.
            let value = &html_entity_decode(value).to_lowercase();
            is_event_attribute(name)
                || name == "srcdoc"
                || (URL_ATTRIBUTES.contains(&name.as_str()) && script_uri(&without_spaces(value)))
                || (name == "style" && (value.contains("expression(") || has(value, "javascript:")))
        });
        if dangerous_attribute || DANGEROUS_TAGS.contains(&tag.name.as_str()) {
            hits.push(rule::XSS_TOKENIZER);
        }
        if !FORMATTING_TAGS.contains(&tag.name.as_str()) {
            hits.push(rule::XSS_HTML_TAG);
        }
        hits.push(rule::XSS_ANY_TAG);
    }
}

fn is_event_attribute(name: &str) -> bool {
    name.len() > 4 && name.starts_with("on") && name.bytes().all(|b| b.is_ascii_lowercase())
}

/// The tags of `text`: `<` followed by a letter (or `/` and a letter) starts one; its
/// attributes run to `>` or the end of the value (browsers do not need the `>`).
fn parse_tags(text: &str) -> Vec<Tag> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(offset) = bytes
        .get(i..)
        .and_then(|b| b.iter().position(|&c| c == b'<'))
    {
        i += offset + 1;
        let mut j = i;
        if bytes.get(j) == Some(&b'/') {
            j += 1;
        }
        if !bytes.get(j).is_some_and(u8::is_ascii_alphabetic) {
            continue;
        }
        let name_end = scan(bytes, j, |b| {
            b.is_ascii_alphanumeric() || b == b':' || b == b'-'
        });
        let mut tag = Tag {
            name: text[j..name_end].to_string(),
            attributes: Vec::new(),
        };
        i = read_attributes(text, name_end, &mut tag.attributes);
        out.push(tag);
    }
    out
}

fn scan(bytes: &[u8], from: usize, pred: impl Fn(u8) -> bool) -> usize {
    bytes[from.min(bytes.len())..]
        .iter()
        .position(|&b| !pred(b))
        .map_or(bytes.len(), |p| from + p)
}

/// Reads attributes from `i` up to `>` (or a new `<`); returns where the tag ended.
fn read_attributes(text: &str, mut i: usize, out: &mut Vec<(String, String)>) -> usize {
    let bytes = text.as_bytes();
    loop {
        // Browsers treat `/` between attributes as whitespace: `<svg/onload=...>`.
        i = scan(bytes, i, |b| {
            b.is_ascii_whitespace() || b == b'/' || b == b'"' || b == b'\''
        });
        match bytes.get(i) {
            None => return i,
            Some(b'>') => return i + 1,
            Some(b'<') => return i,
            _ => {}
        }
        let name_end = scan(bytes, i, |b| {
            !(b.is_ascii_whitespace() || matches!(b, b'=' | b'>' | b'/' | b'<'))
        });
        let name = text[i..name_end].to_string();
        i = scan(bytes, name_end, |b| b.is_ascii_whitespace());
        let mut value = String::new();
        if bytes.get(i) == Some(&b'=') {
            i = scan(bytes, i + 1, |b| b.is_ascii_whitespace());
            match bytes.get(i) {
                Some(&q @ (b'"' | b'\'' | b'`')) => {
                    let end = scan(bytes, i + 1, |b| b != q);
                    value = text[i + 1..end].to_string();
                    i = (end + 1).min(bytes.len());
                }
                _ => {
                    let end = scan(bytes, i, |b| !(b.is_ascii_whitespace() || b == b'>'));
                    value = text[i..end].to_string();
                    i = end;
                }
            }
        }
        if name.is_empty() {
            i += 1;
        } else {
            out.push((name, value));
        }
    }
}

/// `onerror=` and the like outside a parsed tag: a value that closes an attribute and adds a
/// handler (`" autofocus onfocus="...`). One pass over the value: every word starting with
/// `on` is looked up.
fn event_handler_assignment(lower: &str) -> bool {
    let bytes = lower.as_bytes();
    match_indices(lower, "on").any(|(at, _)| {
        if at > 0 && is_word_byte(bytes[at - 1]) {
            return false;
        }
        let end = bytes[at..]
            .iter()
            .position(|b| !b.is_ascii_lowercase())
            .map_or(bytes.len(), |p| at + p);
        let rest = lower[end..].trim_start();
        EVENT_HANDLERS.contains(&&lower[at..end])
            && rest.starts_with('=')
            && !rest.starts_with("==")
    })
}

/// A DOM sink used in code: next to an operator, quote or bracket (`alert(document.cookie)`,
/// `'+document.cookie`), not named in prose (`window.location vs document.location`).
fn sink_in_code(compact: &str, lower: &str, sink: &str) -> bool {
    if sink.ends_with('(') {
        return has(compact, sink);
    }
    let code = |b: u8| {
        matches!(
            b,
            b'(' | b')'
                | b'='
                | b'+'
                | b','
                | b';'
                | b'\''
                | b'"'
                | b'`'
                | b'['
                | b']'
                | b'{'
                | b'}'
                | b'.'
        )
    };
    match_indices(lower, sink).any(|(at, _)| {
        let bytes = lower.as_bytes();
        let before = at.checked_sub(1).and_then(|i| bytes.get(i)).copied();
        let after = bytes.get(at + sink.len()).copied();
        before.is_some_and(code) || after.is_some_and(code)
    })
}

/// A script URI followed by something code-like: `javascript:alert(1)`, not the book title
/// `JavaScript: The Good Parts`; data URIs of HTML or SVG documents.
fn script_uri(compact: &str) -> bool {
    let scheme = SCRIPT_SCHEMES.iter().any(|scheme| {
        match_indices(compact, scheme).any(|(at, _)| {
            compact[at + scheme.len()..].chars().any(|c| {
                matches!(
                    c,
                    '(' | '=' | '.' | '[' | '\\' | '`' | '/' | '\'' | '"' | ';' | '%' | '{'
                )
            })
        })
    });
    scheme || contains_any(compact, DATA_SCRIPT_TYPES)
}

/// Closing a JavaScript string and calling a dialog or eval: `';alert(1)//`, `"-prompt(1)-"`.
fn js_context_breakout(compact: &str) -> bool {
    let bytes = compact.as_bytes();
    DIALOG_CALLS.iter().any(|f| {
        match_indices(compact, f).any(|(at, _)| {
            let called = matches!(bytes.get(at + f.len()), Some(b'(' | b'`'));
            let before = &bytes[..at];
            let glue = before.last().is_some_and(|b| {
                matches!(
                    b,
                    b';' | b'+' | b'-' | b'*' | b'/' | b',' | b'|' | b'&' | b'('
                )
            });
            let quote_before = before
                .iter()
                .rev()
                .take(3)
                .any(|b| matches!(b, b'\'' | b'"' | b'`'));
            called && glue && quote_before
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{Encoding, Normalized};
    use crate::request::Location;

    fn rules(input: &str) -> Hits {
        let norm = Normalized::new(input.as_bytes(), Encoding::Form);
        let mut hits = Hits::new();
        detect(
            &Value {
                location: Location::Arg,
                name: "q",
                norm: &norm,
            },
            &mut hits,
        );
        hits
    }

    fn flagged_at_paranoia_one(input: &str) -> bool {
        rules(input)
            .iter()
            .any(|id| crate::rule::rule(*id).is_some_and(|r| r.paranoia == 1))
    }

    #[test]
    fn script_tags_handlers_and_uris_are_attacks() {
        for attack in [
            "<script>alert(1)</script>",
            "<svg/onload=alert(1)>",
            "<img src=x onerror=alert(1)>",
            "\" autofocus onfocus=\"alert(1)",
            "<a href=\"jav&#x09;ascript:alert(1)\">x</a>",
            "javascript:alert(document.cookie)",
            "%3Ciframe%20src%3D%22//evil%22%3E",
            "<div style=\"width:expression(alert(1))\">",
            "';alert(String.fromCharCode(88))//",
            "+ADw-script+AD4-alert(1)+ADw-/script+AD4-",
            "{{constructor.constructor('alert(1)')()}}",
            "<details open ontoggle=alert(1)>",
        ] {
            assert!(flagged_at_paranoia_one(attack), "{attack}");
        }
    }

    #[test]
    fn formatting_markup_and_prose_are_not() {
        for benign in [
            "<b>bold</b> and <i>italic</i>",
            "<a href=\"https://example.com/docs\">docs</a>",
            "<img src=\"https://cdn.example.com/a.png\" alt=\"logo\">",
            "5 < 6 and 7 > 3",
            "JavaScript: The Good Parts",
            "Vec<String> is fine",
            "turn the lights on = save power? no",
            "I <3 this",
        ] {
            assert!(
                !flagged_at_paranoia_one(benign),
                "{benign}: {:?}",
                rules(benign)
            );
        }
    }

    #[test]
    fn tags_are_parsed_with_their_attributes() {
        let got = parse_tags("<img src='a b' onerror=x><b>");
        assert_eq!(got[0].name, "img");
        assert_eq!(
            got[0].attributes,
            vec![
                ("src".to_string(), "a b".to_string()),
                ("onerror".to_string(), "x".to_string())
            ]
        );
        assert_eq!(got[1].name, "b");
    }
}
