//! Base64 as JOSE and cookies use it: URL-safe, unpadded.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// Encodes bytes as unpadded base64url (RFC 7515 §2).
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url; padding, `+`, `/` and whitespace are refused, so one value has
/// exactly one encoding (a tampered token cannot hide behind an equivalent spelling).
pub fn decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Decodes a key from configuration: standard or URL-safe alphabet, padded or not, surrounding
/// whitespace ignored (operators paste keys from many tools).
pub fn decode_lenient(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    let unpadded = text.trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(unpadded)
        .ok()
        .or_else(|| STANDARD.decode(text).ok())
}

/// Standard base64 with padding, for HTTP Basic authentication.
pub fn encode_standard(bytes: impl AsRef<[u8]>) -> String {
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_without_padding() {
        let text = encode([0xfb, 0xff, 0x01]);
        assert_eq!(text, "-_8B");
        assert_eq!(decode(&text), Some(vec![0xfb, 0xff, 0x01]));
    }

    #[test]
    fn strict_decoding_refuses_other_spellings() {
        assert_eq!(decode("-_8B="), None);
        assert_eq!(decode("+/8B"), None);
        assert_eq!(decode("-_8 B"), None);
    }

    #[test]
    fn lenient_decoding_accepts_both_alphabets_and_padding() {
        assert_eq!(decode_lenient(" +/8B \n"), Some(vec![0xfb, 0xff, 0x01]));
        assert_eq!(decode_lenient("-_8B"), Some(vec![0xfb, 0xff, 0x01]));
        assert_eq!(decode_lenient("AQ=="), Some(vec![1]));
    }
}
