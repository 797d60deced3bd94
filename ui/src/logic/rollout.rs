//! Where a change stands on each gateway: serving it, refused it, or not there yet. A change
//! is carried by one snapshot version; a gateway serves it once it serves that version or a
//! later one (the same reading as the API's `Rollout`).

use crate::queries::Gateway;

/// A gateway's state for one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayProgress {
    /// It serves the change.
    Serving,
    /// It refused the change (or a later version) and serves an older snapshot.
    Failed(String),
    /// It has not reported on the change yet.
    Pending,
}

impl GatewayProgress {
    /// A word for the status column.
    pub fn label(&self) -> &'static str {
        match self {
            GatewayProgress::Serving => "serving",
            GatewayProgress::Failed(_) => "refused",
            GatewayProgress::Pending => "pending",
        }
    }

    /// The CSS class of its badge.
    pub fn class(&self) -> &'static str {
        match self {
            GatewayProgress::Serving => "badge ok",
            GatewayProgress::Failed(_) => "badge bad",
            GatewayProgress::Pending => "badge warn",
        }
    }
}

/// How `gateway` stands with the change carried by snapshot `version` (`None`: the change is
/// in no snapshot yet, so every gateway is pending).
pub fn progress(gateway: &Gateway, version: Option<i64>) -> GatewayProgress {
    let Some(version) = version else {
        return GatewayProgress::Pending;
    };
    if gateway.version_served.is_some_and(|v| v >= version) {
        return GatewayProgress::Serving;
    }
    let refused =
        gateway.state == "NACK" && gateway.last_reported_version.is_some_and(|v| v >= version);
    if refused {
        return GatewayProgress::Failed(
            gateway
                .error
                .clone()
                .unwrap_or_else(|| "the gateway refused the configuration".into()),
        );
    }
    GatewayProgress::Pending
}

/// Counts of serving, failed and pending gateways.
pub fn summary(gateways: &[Gateway], version: Option<i64>) -> (usize, usize, usize) {
    gateways
        .iter()
        .fold((0, 0, 0), |(s, f, p), g| match progress(g, version) {
            GatewayProgress::Serving => (s + 1, f, p),
            GatewayProgress::Failed(_) => (s, f + 1, p),
            GatewayProgress::Pending => (s, f, p + 1),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw(state: &str, served: Option<i64>, reported: Option<i64>) -> Gateway {
        Gateway {
            id: "gw".into(),
            state: state.into(),
            version_served: served,
            version_delivered: None,
            last_reported_version: reported,
            error: (state == "NACK").then(|| "bad wasm".to_string()),
            up_to_date: false,
            last_seen: None,
        }
    }

    #[test]
    fn a_gateway_serving_the_version_or_later_serves_the_change() {
        assert_eq!(
            progress(&gw("ACK", Some(5), Some(5)), Some(5)),
            GatewayProgress::Serving
        );
        assert_eq!(
            progress(&gw("ACK", Some(6), Some(6)), Some(5)),
            GatewayProgress::Serving
        );
    }

    #[test]
    fn a_nack_of_the_version_or_later_is_a_failure_with_its_error() {
        assert_eq!(
            progress(&gw("NACK", Some(4), Some(5)), Some(5)),
            GatewayProgress::Failed("bad wasm".into())
        );
        assert_eq!(
            progress(&gw("NACK", Some(3), Some(4)), Some(5)),
            GatewayProgress::Pending,
            "an older refusal says nothing about this change"
        );
    }

    #[test]
    fn without_a_snapshot_or_a_report_the_gateway_is_pending() {
        assert_eq!(
            progress(&gw("ACK", Some(9), Some(9)), None),
            GatewayProgress::Pending
        );
        assert_eq!(
            progress(&gw("PENDING", None, None), Some(1)),
            GatewayProgress::Pending
        );
        let all = [
            gw("ACK", Some(5), Some(5)),
            gw("NACK", Some(4), Some(5)),
            gw("PENDING", None, None),
        ];
        assert_eq!(summary(&all, Some(5)), (1, 1, 1));
    }
}
