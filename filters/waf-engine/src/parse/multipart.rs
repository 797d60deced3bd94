//! `multipart/form-data` bodies.

/// One part of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// The `name` of its `Content-Disposition`.
    pub name: String,
    /// The `filename`, for file uploads.
    pub filename: Option<String>,
    /// Its content (possibly cut short when the body was truncated).
    pub content: &'a [u8],
}

/// The `boundary` parameter of a `Content-Type` header value.
pub fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty())
    })
}

/// The parts of `body`, at most `limit`.
pub fn parts<'a>(body: &'a [u8], boundary: &str, limit: usize) -> Vec<Part<'a>> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut out = Vec::new();
    let mut starts = find_all(body, delimiter).into_iter().peekable();
    while let Some(start) = starts.next() {
        if out.len() >= limit {
            break;
        }
        let after = start + delimiter.len();
        if body.get(after..after + 2) == Some(b"--") {
            break;
        }
        let end = starts.peek().copied().unwrap_or(body.len());
        let Some(raw) = body.get(after..end) else {
            break;
        };
        let raw = raw.strip_prefix(b"\r\n").unwrap_or(raw);
        let raw = raw.strip_suffix(b"\r\n").unwrap_or(raw);
        let (head, content) = match find(raw, b"\r\n\r\n") {
            Some(at) => (&raw[..at], &raw[at + 4..]),
            None => (raw, &raw[raw.len()..]),
        };
        let (name, filename) = disposition(head);
        out.push(Part {
            name,
            filename,
            content,
        });
    }
    out
}

/// The `name` and `filename` of a part's `Content-Disposition` header.
fn disposition(head: &[u8]) -> (String, Option<String>) {
    let head = String::from_utf8_lossy(head);
    let Some(line) = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
    else {
        return (String::new(), None);
    };
    let mut name = String::new();
    let mut filename = None;
    for param in line.split(';').skip(1) {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"').to_string();
        match key.trim().to_ascii_lowercase().as_str() {
            "name" => name = value,
            "filename" | "filename*" => filename = Some(value),
            _ => {}
        }
    }
    (name, filename)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = haystack.get(from..).and_then(|h| find(h, needle)) {
        out.push(from + at);
        from += at + needle.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_is_read_quoted_or_not() {
        assert_eq!(
            boundary("multipart/form-data; boundary=\"abc\"").as_deref(),
            Some("abc")
        );
        assert_eq!(
            boundary("multipart/form-data;boundary=x1").as_deref(),
            Some("x1")
        );
        assert_eq!(boundary("multipart/form-data"), None);
    }

    #[test]
    fn parts_give_names_file_names_and_content() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nHello\r\n--b\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a.php\"\r\nContent-Type: text/plain\r\n\r\n<?php ?>\r\n--b--\r\n";
        let got = parts(body, "b", 10);
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].name.as_str(), got[0].content),
            ("title", &b"Hello"[..])
        );
        assert_eq!(got[1].filename.as_deref(), Some("a.php"));
    }

    #[test]
    fn a_truncated_body_yields_the_parts_read_so_far() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\nunion sel";
        let got = parts(body, "b", 10);
        assert_eq!(got[0].content, b"union sel");
    }
}
