//! `traffic_records`: access-log records shipped by gateways (`POST /v1/gateways/{id}/traffic`),
//! kept for the retention window (7 days by default) and then pruned.

use sea_orm::entity::prelude::*;

/// One request seen by a gateway.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "traffic_records")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// When the request started (UTC, milliseconds).
    pub time: DateTimeUtc,
    /// The gateway that served it (`/v1/gateways/{id}/...`).
    pub gateway: String,
    /// The app of the route (a name, not a row id: records outlive deleted apps).
    pub app: String,
    /// The route's path prefix.
    pub route: String,
    /// The HTTP method.
    pub method: String,
    /// The path, with secret-looking query values redacted by the gateway.
    pub path: String,
    /// The response status (0: no response).
    pub status: i32,
    /// From the request's start to the log call, in milliseconds.
    pub latency_ms: f64,
    /// The client's address, without port.
    pub client_ip: String,
    /// The identity subject `authn` established, if any.
    pub subject: Option<String>,
    /// The filter that denied the request (its decision was `deny` or `deny:<reason>`).
    pub denied_by: Option<String>,
    /// Ids of the WAF rules that fired (JSON array of strings); null when none did.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub waf_rules: Option<Json>,
    /// The gateway's request id (unique per gateway: a batch sent twice is stored once).
    pub request_id: String,
}

/// No relations are declared: records name their app, they do not reference its row.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The WAF rules that fired, as strings.
    pub fn waf_rule_list(&self) -> Vec<String> {
        self.waf_rules
            .as_ref()
            .map(super::super::json_strings)
            .unwrap_or_default()
    }
}
