//! Small text matching helpers shared by the detectors.

/// Whether a byte belongs to a word (letters, digits, `_`).
pub fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether `haystack` contains any of `needles`.
pub fn contains_any(haystack: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| haystack.contains(n))
}

/// Byte offsets where `word` occurs with no word character right before or after it.
pub fn word_positions(haystack: &str, word: &str) -> Vec<usize> {
    let bytes = haystack.as_bytes();
    haystack
        .match_indices(word)
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
