//! `application/x-www-form-urlencoded`: query strings and form bodies.

/// One `name=value` pair, both still encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair<'a> {
    /// The name, still encoded.
    pub name: &'a [u8],
    /// The value, still encoded (empty when there was no `=`).
    pub value: &'a [u8],
}

/// The pairs of a query string or form body, in order; empty segments (`a=1&&b=2`) skipped.
pub fn pairs(input: &[u8]) -> Vec<Pair<'_>> {
    input
        .split(|&b| b == b'&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| match segment.iter().position(|&b| b == b'=') {
            Some(at) => Pair {
                name: &segment[..at],
                value: &segment[at + 1..],
            },
            None => Pair {
                name: segment,
                value: &[],
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_keep_order_and_encoding() {
        let got = pairs(b"q=a%20b&&flag&x=1=2");
        let as_text: Vec<(&[u8], &[u8])> = got.iter().map(|p| (p.name, p.value)).collect();
        assert_eq!(
            as_text,
            vec![
                (&b"q"[..], &b"a%20b"[..]),
                (&b"flag"[..], &b""[..]),
                (&b"x"[..], &b"1=2"[..])
            ]
        );
    }
}
