//! The headers a route's responses get: explicit ones, the secure defaults, and removals.

use paved_model::plugin_config::HeadersConfig;

use crate::cors::Cors;

/// The secure defaults, added when neither the configuration nor the upstream set them.
/// The same values as the intent's defaults (`paved_model::intent`).
pub const SECURE_DEFAULTS: [(&str, &str); 8] = [
    ("strict-transport-security", "max-age=31536000; includeSubDomains"),
    (
        "content-security-policy",
        "default-src 'self'; frame-ancestors 'none'; object-src 'none'; base-uri 'self'; form-action 'self'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("x-frame-options", "DENY"),
];

/// Banners removed by default: they tell attackers which software and version to target.
pub const DEFAULT_REMOVALS: [&str; 4] = [
    "server",
    "x-powered-by",
    "x-aspnet-version",
    "x-aspnetmvc-version",
];

/// The route's header policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Set on every response, replacing the upstream's.
    pub set: Vec<(String, String)>,
    /// Added only when the upstream did not send the header.
    pub defaults: Vec<(String, String)>,
    /// Removed from every response.
    pub remove: Vec<String>,
    /// CORS, when configured.
    pub cors: Option<Cors>,
}

impl Policy {
    /// The policy of an empty configuration.
    pub fn secure_defaults() -> Policy {
        Policy::from_config(&HeadersConfig::default()).unwrap_or(Policy {
            set: Vec::new(),
            defaults: Vec::new(),
            remove: Vec::new(),
            cors: None,
        })
    }

    /// Reads the configuration; absent or empty means the secure defaults.
    pub fn from_json(bytes: Option<&[u8]>) -> Result<Policy, String> {
        let config: HeadersConfig = match bytes.filter(|b| !b.iter().all(u8::is_ascii_whitespace)) {
            None => HeadersConfig::default(),
            Some(b) => serde_json::from_slice(b)
                .map_err(|e| format!("configuration is not valid JSON for headers: {e}"))?,
        };
        Policy::from_config(&config)
    }

    /// Compiles a configuration.
    pub fn from_config(config: &HeadersConfig) -> Result<Policy, String> {
        let mut set = Vec::new();
        for (i, entry) in config.set.iter().enumerate() {
            let name = entry.name.trim().to_ascii_lowercase();
            if !valid_name(&name)
                || entry
                    .value
                    .bytes()
                    .any(|b| b == b'\r' || b == b'\n' || b == 0)
            {
                return Err(format!("set[{i}]: invalid header {:?}", entry.name));
            }
            set.push((name, entry.value.clone()));
        }
        let mut remove: Vec<String> = config
            .remove
            .iter()
            .map(|r| r.trim().to_ascii_lowercase())
            .collect();
        let mut defaults = Vec::new();
        if config.secure_defaults {
            defaults = SECURE_DEFAULTS
                .iter()
                .filter(|(name, _)| {
                    !set.iter().any(|(n, _)| n == name) && !remove.iter().any(|r| r == name)
                })
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            remove.extend(DEFAULT_REMOVALS.iter().map(|r| r.to_string()));
        }
        remove.sort();
        remove.dedup();
        // A header both set and removed is set: the explicit value wins.
        remove.retain(|r| !set.iter().any(|(n, _)| n == r));
        let cors = config.cors.as_ref().map(Cors::new).transpose()?;
        Ok(Policy {
            set,
            defaults,
            remove,
            cors,
        })
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use paved_model::plugin_config::HeaderEntry;

    #[test]
    fn an_empty_configuration_gets_every_secure_default_and_removes_banners() {
        let p = Policy::from_json(None).unwrap();
        assert_eq!(p.defaults.len(), SECURE_DEFAULTS.len());
        assert!(
            p.remove.contains(&"server".to_string())
                && p.remove.contains(&"x-powered-by".to_string())
        );
    }

    #[test]
    fn explicit_headers_override_defaults() {
        let config = HeadersConfig {
            set: vec![HeaderEntry {
                name: "Content-Security-Policy".into(),
                value: "default-src 'none'".into(),
            }],
            ..HeadersConfig::default()
        };
        let p = Policy::from_config(&config).unwrap();
        assert_eq!(
            p.set,
            vec![(
                "content-security-policy".into(),
                "default-src 'none'".into()
            )]
        );
        assert!(!p
            .defaults
            .iter()
            .any(|(n, _)| n == "content-security-policy"));
    }

    #[test]
    fn compiled_configurations_without_defaults_are_taken_as_written() {
        let config = HeadersConfig {
            secure_defaults: false,
            remove: vec!["server".into()],
            ..HeadersConfig::default()
        };
        let p = Policy::from_config(&config).unwrap();
        assert!(p.defaults.is_empty());
        assert_eq!(p.remove, vec!["server".to_string()]);
    }

    #[test]
    fn header_injection_in_values_is_refused() {
        let config = HeadersConfig {
            set: vec![HeaderEntry {
                name: "x-a".into(),
                value: "1\r\nset-cookie: x".into(),
            }],
            ..HeadersConfig::default()
        };
        assert!(Policy::from_config(&config).is_err());
    }
}
