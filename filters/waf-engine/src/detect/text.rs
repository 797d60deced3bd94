//! Small text matching helpers shared by the detectors.

/// Whether a byte belongs to a word (letters, digits, `_`).
pub fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Where `needle` occurs in `haystack` at or after `from`.
///
/// The detectors test hundreds of short patterns against mostly short values; `str::find`
/// builds a two-way searcher for every call, which costs more than the search itself here.
/// A scan for the first byte, then a comparison, is several times faster for such inputs.
pub fn find_from(haystack: &str, needle: &str, from: usize) -> Option<usize> {
    if haystack.len() > 512 {
        // Long values: the two-way searcher's setup pays for itself.
        return haystack.get(from..)?.find(needle).map(|at| at + from);
    }
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    if from > h.len() {
        return None;
    }
    let Some(&first) = n.first() else {
        return Some(from);
    };
    let last_start = h.len().checked_sub(n.len())?;
    let mut i = from;
    while i <= last_start {
        i += h[i..=last_start].iter().position(|&b| b == first)?;
        if &h[i..i + n.len()] == n {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Whether `haystack` contains `needle` (see [`find_from`]).
pub fn has(haystack: &str, needle: &str) -> bool {
    find_from(haystack, needle, 0).is_some()
}

/// Non-overlapping occurrences of `needle`, like `str::match_indices` (see [`find_from`]).
pub fn match_indices<'a>(
    haystack: &'a str,
    needle: &'a str,
) -> impl Iterator<Item = (usize, &'a str)> + 'a {
    let mut from = 0;
    std::iter::from_fn(move || {
        let at = find_from(haystack, needle, from)?;
        from = at + needle.len().max(1);
        Some((at, &haystack[at..at + needle.len()]))
    })
}

/// Whether `haystack` contains any of `needles`.
pub fn contains_any(haystack: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| has(haystack, n))
}

/// Byte offsets where `word` occurs with no word character right before or after it.
pub fn word_positions(haystack: &str, word: &str) -> Vec<usize> {
    let bytes = haystack.as_bytes();
    match_indices(haystack, word)
        .map(|(at, _)| at)
        .filter(|&at| {
            let before = at.checked_sub(1).and_then(|i| bytes.get(i));
            let after = bytes.get(at + word.len());
            !before.is_some_and(|&b| is_word_byte(b)) && !after.is_some_and(|&b| is_word_byte(b))
        })
        .collect()
}

/// Whether `word` occurs as a whole word.
pub fn contains_word(haystack: &str, word: &str) -> bool {
    !word_positions(haystack, word).is_empty()
}

/// `haystack` without any whitespace or control character: how browsers read
/// `java\tscript:` and how `s e l e c t`-style spacing tricks collapse.
pub fn without_spaces(haystack: &str) -> String {
    haystack
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect()
}

/// Whether `name(` occurs as a call: the word, optional spaces, then `(`.
pub fn calls(haystack: &str, name: &str) -> bool {
    word_positions(haystack, name)
        .into_iter()
        .any(|at| haystack[at + name.len()..].trim_start().starts_with('('))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_search_agrees_with_the_standard_one() {
        for (h, n) in [
            ("abcabc", "bc"),
            ("aaa", "aa"),
            ("", "a"),
            ("a", ""),
            ("xyz", "xyzw"),
            ("élan", "lan"),
        ] {
            assert_eq!(find_from(h, n, 0), h.find(n), "{h} {n}");
            let ours: Vec<usize> = match_indices(h, n).map(|(i, _)| i).collect();
            let std: Vec<usize> = h.match_indices(n).map(|(i, _)| i).collect();
            assert_eq!(ours, std, "{h} {n}");
        }
    }

    #[test]
    fn words_need_boundaries() {
        assert!(contains_word("a select b", "select"));
        assert!(!contains_word("selection", "select"));
        assert!(contains_word("x;id", "id"));
        assert!(!contains_word("ideal", "id"));
    }

    #[test]
    fn calls_allow_spaces_before_the_parenthesis() {
        assert!(calls("x=sleep (5)", "sleep"));
        assert!(!calls("asleep(5)", "sleep"));
        assert!(!calls("sleep well", "sleep"));
    }
}
