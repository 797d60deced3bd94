//! What a limit counts together: the key of a request for a rule.

use crate::table::fnv1a;

/// The client address of a `source.address` property (`ip:port`, `[v6]:port`), without the
/// port. IPv6 clients are keyed by their /64 network: one host usually owns a whole /64, and
/// keying single addresses would let it rotate through 2^64 of them.
pub fn client_ip(source_address: &str) -> String {
    let address = source_address.trim();
    if let Some(rest) = address.strip_prefix('[') {
        let ip = rest.split(']').next().unwrap_or(rest);
        return ipv6_network(ip);
    }
    match address.rsplit_once(':') {
        // One colon: `ip:port`. More: a bare IPv6 address.
        Some((ip, port)) if !ip.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            ip.to_string()
        }
        Some(_) => ipv6_network(address),
        None => address.to_string(),
    }
}

/// The first four groups of an IPv6 address, expanded (`2001:db8:0:0::/64`).
fn ipv6_network(ip: &str) -> String {
    let Ok(parsed) = ip.parse::<std::net::Ipv6Addr>() else {
        return ip.to_string();
    };
    if let Some(v4) = parsed.to_ipv4_mapped() {
        return v4.to_string();
    }
    let s = parsed.segments();
    format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
}

/// A secret (an API token) as it may appear in a key: hashed.
pub fn hashed(secret: &str) -> String {
    format!("h{:016x}", fnv1a(secret.as_bytes()))
}

/// A value used in a key, made safe: bounded, printable, hashed when long.
pub fn sanitized(value: &str) -> String {
    let printable = value
        .bytes()
        .all(|b| (0x21..0x7f).contains(&b) && b != b'|');
    if printable && value.len() <= 64 {
        value.to_string()
    } else {
        hashed(value)
    }
}

/// The full key of one counter: app, rule, and what the rule counts by.
pub fn counter_key(app: &str, rule: &str, kind: &str, value: &str) -> String {
    format!("{app}|{rule}|{kind}:{value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_dropped_and_ipv6_is_keyed_by_its_network() {
        assert_eq!(client_ip("10.1.2.3:5555"), "10.1.2.3");
        assert_eq!(client_ip("[2001:db8:1:2:3:4:5:6]:443"), "2001:db8:1:2::/64");
        assert_eq!(client_ip("2001:db8:1:2::9"), "2001:db8:1:2::/64");
        assert_eq!(client_ip("[::ffff:10.0.0.1]:80"), "10.0.0.1");
        assert_eq!(client_ip("10.1.2.3"), "10.1.2.3");
    }

    #[test]
    fn secrets_and_odd_values_are_hashed() {
        let token = "Bearer eyJhbGciOi.secret";
        assert!(!hashed(token).contains("secret"));
        assert_eq!(hashed(token), hashed(token));
        assert_eq!(sanitized("tenant-42"), "tenant-42");
        assert!(sanitized("has space").starts_with('h'));
        assert!(sanitized(&"x".repeat(65)).starts_with('h'));
    }
}
