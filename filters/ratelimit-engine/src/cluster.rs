//! The cluster-wide mode's protocol: the plugin asks the gateway's rate-limit service
//! (which counts in Redis) with `proxy_http_call`.
//!
//! `POST /v1/ratelimit` to the cluster named in the configuration (default
//! [`DEFAULT_CLUSTER`]), `content-type: application/json`, body [`CallRequest`]; the service
//! answers `200` with [`CallAnswer`]. Any other answer, or none within the timeout, and the
//! plugin decides with its local limit instead.

use serde::{Deserialize, Serialize};

/// The default name of the service's cluster.
pub const DEFAULT_CLUSTER: &str = "paved-ratelimit";
/// The path of the call.
pub const PATH: &str = "/v1/ratelimit";
/// The `:authority` of the call.
pub const AUTHORITY: &str = "paved-ratelimit";

/// The request body: count `cost` units against `key` under a GCRA of this rate and burst.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRequest {
    /// The counter's key (app, rule and client; tokens hashed).
    pub key: String,
    /// Steady rate, requests per second.
    pub rate_per_second: f64,
    /// Requests allowed at once.
    pub burst: u32,
    /// Units this request costs (1).
    pub cost: u32,
}

/// The answer body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallAnswer {
    /// Whether the request may pass.
    pub allowed: bool,
    /// Requests still allowed now.
    pub remaining: u32,
    /// When denied, milliseconds until a retry can pass (0 when allowed).
    pub retry_after_ms: u64,
    /// Milliseconds until the full burst is available again.
    pub reset_ms: u64,
}

impl CallRequest {
    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl CallAnswer {
    /// Reads an answer; `None` for anything that is not one (the caller falls back).
    pub fn from_json(body: &[u8]) -> Option<CallAnswer> {
        serde_json::from_slice(body).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_body_has_the_documented_fields() {
        let body = CallRequest {
            key: "app|r|ip:10.0.0.1".into(),
            rate_per_second: 2.5,
            burst: 10,
            cost: 1,
        }
        .to_json();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"key": "app|r|ip:10.0.0.1", "rate_per_second": 2.5, "burst": 10, "cost": 1})
        );
    }

    #[test]
    fn answers_parse_and_garbage_does_not() {
        let answer = CallAnswer::from_json(
            br#"{"allowed":false,"remaining":0,"retry_after_ms":250,"reset_ms":1000}"#,
        );
        assert_eq!(
            answer,
            Some(CallAnswer {
                allowed: false,
                remaining: 0,
                retry_after_ms: 250,
                reset_ms: 1000
            })
        );
        assert_eq!(CallAnswer::from_json(b"<html>502</html>"), None);
        assert_eq!(CallAnswer::from_json(br#"{"allowed":true}"#), None);
    }
}
