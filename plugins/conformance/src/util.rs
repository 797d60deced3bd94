//! Helpers shared by the scenarios: rendering values into headers, and counters in shared data.

use std::fmt::Write as _;

use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;

/// Renders bytes as a header value that survives HTTP unchanged: printable ASCII as it is,
/// anything else (control bytes, non-ASCII, leading or trailing spaces that parsers trim) as
/// `hex:` followed by lowercase hex.
pub fn header_safe(bytes: &[u8]) -> String {
    let printable = bytes.iter().all(|b| (0x20..=0x7e).contains(b));
    let padded = bytes.first() == Some(&b' ') || bytes.last() == Some(&b' ');
    if printable && !padded {
        bytes.iter().map(|&b| char::from(b)).collect()
    } else {
        let mut out = String::with_capacity(4 + bytes.len() * 2);
        out.push_str("hex:");
        for b in bytes {
            write!(out, "{b:02x}").expect("writing to a String cannot fail");
        }
        out
    }
}

/// Renders an optional value: `<absent>` when the host had none.
pub fn header_safe_or_absent(bytes: Option<&[u8]>) -> String {
    bytes.map_or_else(|| ABSENT.to_string(), header_safe)
}

/// What a report header says when the host had no value.
pub const ABSENT: &str = "<absent>";

/// A status as reported in headers: the spec's name in kebab case.
pub fn status_name(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::NotFound => "not-found",
        Status::BadArgument => "bad-argument",
        Status::SerializationFailure => "serialization-failure",
        Status::ParseFailure => "parse-failure",
        Status::Empty => "empty",
        Status::CasMismatch => "cas-mismatch",
        Status::InternalFailure => "internal-failure",
        _ => "other",
    }
}

/// Counters in shared data are decimal ASCII; anything else (absent, empty) counts as 0.
fn parse_counter(value: Option<&[u8]>) -> u64 {
    value
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Reads a counter from shared data.
pub fn read_counter(key: &str) -> u64 {
    let (value, _cas) = hostcalls::get_shared_data(key).expect("get_shared_data");
    parse_counter(value.as_deref())
}

/// Creates a counter at 0 if it does not exist yet. Done from `on_configure`, so that every
/// later increment finds the key and updates it under CAS: a first write has no CAS to check,
/// and two first writes racing would lose one increment.
pub fn init_counter(key: &str) {
    let (value, _cas) = hostcalls::get_shared_data(key).expect("get_shared_data");
    if value.is_none() {
        hostcalls::set_shared_data(key, Some(b"0"), None).expect("first write has no CAS");
    }
}

/// How many CAS mismatches in a row mean the host's CAS is broken rather than contended.
const MAX_CAS_RETRIES: u32 = 10_000;

/// Adds `delta` to a counter with a compare-and-swap retry loop, as a plugin must when several
/// instances update the same key. Returns the new value and how many CAS mismatches it took.
pub fn add_to_counter(key: &str, delta: u64) -> (u64, u32) {
    let mut mismatches = 0;
    loop {
        let (value, cas) = hostcalls::get_shared_data(key).expect("get_shared_data");
        let next = parse_counter(value.as_deref()) + delta;
        // The SDK returns only Ok or CasMismatch here (it panics on any other status).
        match hostcalls::set_shared_data(key, Some(next.to_string().as_bytes()), cas) {
            Ok(()) => return (next, mismatches),
            Err(_) => mismatches += 1,
        }
        assert!(
            mismatches < MAX_CAS_RETRIES,
            "shared data {key}: CAS never succeeds"
        );
    }
}

/// Splits a dotted property path (`request.path`) into the segments the ABI expects.
pub fn property_path(dotted: &str) -> Vec<&str> {
    dotted.split('.').collect()
}
