//! Gateways: which snapshot version each was sent, serves (last ACK), and its last NACK.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, QueryOrder, Set};
use serde::Deserialize;

use super::apps::require_reader;
use super::{ControlPlane, Event};
use crate::auth::Principal;
use crate::storage::entities::{gateway, snapshot};
use crate::{Error, Result};

/// Longest NACK error kept; longer ones are cut (a report is never refused for its length).
pub const MAX_ERROR_CHARS: usize = 4096;

/// A gateway's report on one snapshot version: `{"version": N, "ok": true}` or
/// `{"version": N, "ok": false, "error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayReport {
    /// The snapshot version reported on.
    pub version: i64,
    /// ACK (`true`: applied and serving) or NACK (`false`: refused, still serving the
    /// previous version).
    pub ok: bool,
    /// Why it was refused.
    #[serde(default)]
    pub error: Option<String>,
}

/// The state of a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayState {
    /// It has not reported yet.
    Pending,
    /// Its last report was an ACK.
    Ack,
    /// Its last report was a NACK.
    Nack,
}

impl GatewayState {
    /// Parses the stored form.
    pub fn parse(s: &str) -> GatewayState {
        match s {
            "ack" => GatewayState::Ack,
            "nack" => GatewayState::Nack,
            _ => GatewayState::Pending,
        }
    }
}

/// Checks a gateway id: 1 to 128 of letters, digits, `.`, `-`, `_`.
pub fn check_gateway_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest(
            "a gateway id is 1 to 128 letters, digits, `.`, `-` or `_`".into(),
        ))
    }
}

impl ControlPlane {
    /// Records that a gateway polled (and, when `delivered` is set, which version it was sent).
    pub async fn gateway_polled(&self, id: &str, delivered: Option<i64>) -> Result<()> {
        check_gateway_id(id)?;
        let db = self.store().db();
        let now = Utc::now();
        match gateway::Entity::find_by_id(id.to_string()).one(db).await? {
            Some(g) => {
                let mut am = g.into_active_model();
                am.last_seen = Set(now);
                if delivered.is_some() {
                    am.version_delivered = Set(delivered);
                }
                am.update(db).await?;
            }
            None => {
                let inserted = gateway::ActiveModel {
                    id: Set(id.to_string()),
                    first_seen: Set(now),
                    last_seen: Set(now),
                    version_delivered: Set(delivered),
                    version_served: Set(None),
                    last_reported_version: Set(None),
                    state: Set("pending".into()),
                    error: Set(None),
                    reported_at: Set(None),
                }
                .insert(db)
                .await;
                match inserted {
                    Ok(_) => tracing::info!(gateway = %id, "new gateway"),
                    // Two first polls at once: the other one inserted it.
                    Err(e) => tracing::debug!(gateway = %id, error = %e, "gateway insert raced"),
                }
            }
        }
        Ok(())
    }

    /// Records a gateway's ACK or NACK of a version.
    pub async fn record_gateway_report(
        &self,
        who: &Principal,
        id: &str,
        report: GatewayReport,
    ) -> Result<gateway::Model> {
        check_gateway_id(id)?;
        if !who.can_act_as_gateway() {
            return Err(Error::Forbidden("a `gateway` token is required".into()));
        }
        let db = self.store().db();
        let latest = snapshot::Entity::find()
            .order_by_desc(snapshot::Column::Version)
            .one(db)
            .await?
            .map_or(0, |s| s.version);
        if report.version < 1 || report.version > latest {
            return Err(Error::BadRequest(format!(
                "version {} does not exist (latest is {latest})",
                report.version
            )));
        }
        let error = if report.ok {
            None
        } else {
            let e = report
                .error
                .clone()
                .filter(|e| !e.trim().is_empty())
                .unwrap_or_else(|| "(no error given)".into());
            Some(e.chars().take(MAX_ERROR_CHARS).collect::<String>())
        };
        self.gateway_polled(id, None).await?;
        let g = gateway::Entity::find_by_id(id.to_string())
            .one(db)
            .await?
            .ok_or_else(|| Error::Internal(format!("gateway {id} vanished")))?;
        let mut am = g.into_active_model();
        am.last_reported_version = Set(Some(report.version));
        am.reported_at = Set(Some(Utc::now()));
        if report.ok {
            am.state = Set("ack".into());
            am.version_served = Set(Some(report.version));
            am.error = Set(None);
            tracing::info!(gateway = %id, version = report.version, "gateway ACK");
        } else {
            am.state = Set("nack".into());
            am.error = Set(error.clone());
            tracing::warn!(gateway = %id, version = report.version, error = error.as_deref().unwrap_or(""), "gateway NACK");
        }
        let g = am.update(db).await?;
        self.emit(Event::GatewayReported {
            gateway_id: id.to_string(),
            version: report.version,
            ok: report.ok,
            error,
        });
        Ok(g)
    }

    /// Every gateway, by id.
    pub async fn list_gateways(&self, who: &Principal) -> Result<Vec<gateway::Model>> {
        require_reader(who)?;
        Ok(gateway::Entity::find()
            .order_by_asc(gateway::Column::Id)
            .all(self.store().db())
            .await?)
    }
}
