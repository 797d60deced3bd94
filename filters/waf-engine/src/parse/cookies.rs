//! The `Cookie` request header.

/// The `name=value` pairs of one `Cookie` header value, names and values trimmed.
pub fn pairs(header: &[u8]) -> Vec<(String, Vec<u8>)> {
    header
        .split(|&b| b == b';')
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty())
        .map(|cookie| match cookie.iter().position(|&b| b == b'=') {
            Some(at) => (
                String::from_utf8_lossy(cookie[..at].trim_ascii()).into_owned(),
                cookie[at + 1..].trim_ascii().to_vec(),
            ),
            None => (String::new(), cookie.to_vec()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_split_on_semicolons() {
        let got = pairs(b"sid=abc==; theme = dark ;flag");
        assert_eq!(
            got,
            vec![
                ("sid".to_string(), b"abc==".to_vec()),
                ("theme".to_string(), b"dark".to_vec()),
                (String::new(), b"flag".to_vec())
            ]
        );
    }
}
