//! Settings of the platform the UI needs and the API does not carry: where apps are reached
//! through the gateway.
//!
//! The host (the control plane) knows its gateway listeners from its compile options and may
//! put a [`UiSettings`] into each page request's extensions; without one the UI assumes what
//! `paved up` runs (plain HTTP on port 8080). The server writes the setting into the page
//! (`<meta name="paved-gateway-url">`) so the browser uses the same one.

use serde::{Deserialize, Serialize};

/// The `<meta>` name carrying [`UiSettings::gateway_url`] to the browser.
pub const GATEWAY_URL_META: &str = "paved-gateway-url";

/// The template `paved up` serves apps at.
pub const DEFAULT_GATEWAY_URL: &str = "http://{domain}:8080/";

/// Settings of the platform, for links to apps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UiSettings {
    /// Where an app is reached, with `{domain}` standing for its domain, such as
    /// `https://{domain}/` or `http://{domain}:8080/`.
    pub gateway_url: String,
}

impl Default for UiSettings {
    fn default() -> Self {
        UiSettings {
            gateway_url: DEFAULT_GATEWAY_URL.into(),
        }
    }
}

impl UiSettings {
    /// The settings for a gateway listening on `port`, with TLS or not (the scheme's default
    /// port is left out of the URL).
    pub fn for_listener(tls: bool, port: u16) -> UiSettings {
        let gateway_url = match (tls, port) {
            (true, 443) => "https://{domain}/".to_string(),
            (false, 80) => "http://{domain}/".to_string(),
            (true, p) => format!("https://{{domain}}:{p}/"),
            (false, p) => format!("http://{{domain}}:{p}/"),
        };
        UiSettings { gateway_url }
    }

    /// The URL of an app served on `domains` (the first exact domain; a wildcard domain gets
    /// `www` for its `*`).
    pub fn live_url(&self, domains: &[String]) -> Option<String> {
        let domain = domains
            .iter()
            .find(|d| !d.starts_with('*'))
            .cloned()
            .or_else(|| domains.first().map(|d| d.replacen('*', "www", 1)))?;
        Some(
            self.gateway_url
                .replace("{domain}", &domain.to_ascii_lowercase()),
        )
    }

    /// The settings in force: on the server those the host attached to the request (else the
    /// default); in the browser those the server wrote into the page.
    pub fn current() -> UiSettings {
        #[cfg(feature = "ssr")]
        {
            leptos::prelude::use_context::<UiSettings>().unwrap_or_default()
        }
        #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
        {
            crate::live::meta_content(GATEWAY_URL_META)
                .map(|gateway_url| UiSettings { gateway_url })
                .unwrap_or_default()
        }
        #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
        {
            UiSettings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_what_paved_up_serves() {
        let s = UiSettings::default();
        assert_eq!(
            s.live_url(&["orders.localhost".into()]).as_deref(),
            Some("http://orders.localhost:8080/")
        );
    }

    #[test]
    fn listener_settings_leave_out_default_ports() {
        assert_eq!(
            UiSettings::for_listener(true, 443).gateway_url,
            "https://{domain}/"
        );
        assert_eq!(
            UiSettings::for_listener(false, 80).gateway_url,
            "http://{domain}/"
        );
        assert_eq!(
            UiSettings::for_listener(true, 8443).gateway_url,
            "https://{domain}:8443/"
        );
    }

    #[test]
    fn live_url_prefers_an_exact_domain() {
        let s = UiSettings::for_listener(true, 443);
        assert_eq!(
            s.live_url(&["*.preview.example.com".into(), "App.example.com".into()])
                .as_deref(),
            Some("https://app.example.com/")
        );
        assert_eq!(
            s.live_url(&["*.preview.example.com".into()]).as_deref(),
            Some("https://www.preview.example.com/")
        );
        assert_eq!(s.live_url(&[]), None);
    }
}
