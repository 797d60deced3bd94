//! Schema migrations (sea-orm-migration), written with sea-query so that the same code creates
//! the schema on SQLite and PostgreSQL. A migration, once released, is never edited: later
//! changes are new migrations.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

/// The control plane's migrator.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Initial),
            Box::new(M0002Traffic),
            Box::new(M0003Flows),
            Box::new(M0004ExternalIdentities),
        ]
    }
}

/// The first schema: apps, intent versions, snapshots, gateways, users, API tokens, the audit
/// log, the OpenID provider's clients, codes, sessions and keys, and certificates.
struct M0001Initial;

impl MigrationName for M0001Initial {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

fn id() -> ColumnDef {
    ColumnDef::new("id")
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

fn text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().not_null().to_owned()
}

fn text_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().null().to_owned()
}

fn string(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string_len(255).not_null().to_owned()
}

fn json(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).json_binary().not_null().to_owned()
}

fn json_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).json_binary().null().to_owned()
}

fn time(name: &'static str) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn time_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

fn bigint_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Initial {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("apps")
                .col(id())
                .col(
                    ColumnDef::new("name")
                        .string_len(63)
                        .not_null()
                        .unique_key(),
                )
                .col(ColumnDef::new("team").string_len(255).null())
                .col(json("owners"))
                .col(json("domains"))
                .col(ColumnDef::new("current_version").integer().null())
                .col(bigint_null("current_version_id"))
                .col(bigint_null("snapshot_version"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .col(time_null("deleted_at"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("intent_versions")
                .col(id())
                .col(ColumnDef::new("app_id").big_integer().not_null())
                .col(ColumnDef::new("version").integer().not_null())
                .col(text("text"))
                .col(json("intent"))
                .col(ColumnDef::new("content_hash").string_len(64).not_null())
                .col(string("author"))
                .col(ColumnDef::new("actor_kind").string_len(16).not_null())
                .col(ColumnDef::new("action").string_len(32).not_null())
                .col(ColumnDef::new("rolled_back_from").integer().null())
                .col(time("created_at"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_intent_versions_app")
                        .from("intent_versions", "app_id")
                        .to("apps", "id"),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_intent_versions_app_version")
                .table("intent_versions")
                .col("app_id")
                .col("version")
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("snapshots")
                .col(
                    ColumnDef::new("version")
                        .big_integer()
                        .not_null()
                        .primary_key(),
                )
                .col(text("snapshot"))
                .col(text("reason"))
                .col(time("created_at"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("gateways")
                .col(
                    ColumnDef::new("id")
                        .string_len(128)
                        .not_null()
                        .primary_key(),
                )
                .col(time("first_seen"))
                .col(time("last_seen"))
                .col(bigint_null("version_delivered"))
                .col(bigint_null("version_served"))
                .col(bigint_null("last_reported_version"))
                .col(ColumnDef::new("state").string_len(16).not_null())
                .col(text_null("error"))
                .col(time_null("reported_at"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("users")
                .col(id())
                .col(
                    ColumnDef::new("username")
                        .string_len(255)
                        .not_null()
                        .unique_key(),
                )
                .col(ColumnDef::new("email").string_len(255).null())
                .col(ColumnDef::new("display_name").string_len(255).null())
                .col(text("password_hash"))
                .col(ColumnDef::new("role").string_len(32).not_null())
                .col(json("teams"))
                .col(json("groups"))
                .col(ColumnDef::new("disabled").boolean().not_null())
                .col(time("created_at"))
                .col(time("updated_at"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("api_tokens")
                .col(id())
                .col(string("name"))
                .col(
                    ColumnDef::new("prefix")
                        .string_len(32)
                        .not_null()
                        .unique_key(),
                )
                .col(ColumnDef::new("secret_hash").string_len(64).not_null())
                .col(json("scopes"))
                .col(json("apps"))
                .col(json("teams"))
                .col(string("created_by"))
                .col(ColumnDef::new("created_by_kind").string_len(16).not_null())
                .col(time("created_at"))
                .col(time_null("expires_at"))
                .col(time_null("revoked_at"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("audit_log")
                .col(id())
                .col(time("at"))
                .col(string("actor"))
                .col(ColumnDef::new("actor_kind").string_len(16).not_null())
                .col(ColumnDef::new("action").string_len(64).not_null())
                .col(ColumnDef::new("target_kind").string_len(32).not_null())
                .col(string("target"))
                .col(ColumnDef::new("app").string_len(63).null())
                .col(json_null("before"))
                .col(json_null("after"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_audit_log_app")
                .table("audit_log")
                .col("app")
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("oauth_clients")
                .col(
                    ColumnDef::new("client_id")
                        .string_len(255)
                        .not_null()
                        .primary_key(),
                )
                .col(string("name"))
                .col(ColumnDef::new("secret_hash").string_len(64).null())
                .col(json("redirect_uris"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("oidc_codes")
                .col(
                    ColumnDef::new("code_hash")
                        .string_len(64)
                        .not_null()
                        .primary_key(),
                )
                .col(string("client_id"))
                .col(text("redirect_uri"))
                .col(ColumnDef::new("user_id").big_integer().not_null())
                .col(text("scope"))
                .col(text_null("nonce"))
                .col(ColumnDef::new("code_challenge").string_len(128).not_null())
                .col(time("auth_time"))
                .col(time("expires_at"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("op_sessions")
                .col(
                    ColumnDef::new("id_hash")
                        .string_len(64)
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new("user_id").big_integer().not_null())
                .col(time("auth_time"))
                .col(time("expires_at"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("signing_keys")
                .col(
                    ColumnDef::new("kid")
                        .string_len(64)
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new("algorithm").string_len(16).not_null())
                .col(text("private_key_pem"))
                .col(ColumnDef::new("active").boolean().not_null())
                .col(time("created_at"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("certificates")
                .col(id())
                .col(ColumnDef::new("kind").string_len(16).not_null())
                .col(string("domain"))
                .col(ColumnDef::new("issuer").string_len(64).not_null())
                .col(text("cert_pem"))
                .col(text("key_pem"))
                .col(time("not_before"))
                .col(time("not_after"))
                .col(time("created_at"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_certificates_domain")
                .table("certificates")
                .col("kind")
                .col("domain")
                .to_owned(),
        )
        .await?;
        // The audit log is append-only in the database itself, not only in the code: a bug
        // or a hand-written query cannot rewrite history.
        let db = m.get_connection();
        match m.get_database_backend() {
            DbBackend::Sqlite => {
                for (name, event) in [
                    ("audit_log_no_update", "UPDATE"),
                    ("audit_log_no_delete", "DELETE"),
                ] {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {name} BEFORE {event} ON audit_log \
                         BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
                    ))
                    .await?;
                }
            }
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE FUNCTION paved_audit_log_append_only() RETURNS trigger \
                     LANGUAGE plpgsql AS $$ BEGIN \
                     RAISE EXCEPTION 'the audit log is append-only'; END $$",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log \
                     FOR EACH ROW EXECUTE FUNCTION paved_audit_log_append_only()",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log \
                     FOR EACH STATEMENT EXECUTE FUNCTION paved_audit_log_append_only()",
                )
                .await?;
            }
            other => {
                return Err(DbErr::Custom(format!(
                    "unsupported database backend {other:?}: use SQLite or PostgreSQL"
                )));
            }
        }
        Ok(())
    }
}

/// Traffic records shipped by gateways: the access log of every request, for the dashboards
/// (`traffic_records`, pruned after the retention window).
struct M0002Traffic;

impl MigrationName for M0002Traffic {
    fn name(&self) -> &str {
        "m0002_traffic"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002Traffic {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("traffic_records")
                .col(id())
                .col(time("time"))
                .col(ColumnDef::new("gateway").string_len(128).not_null())
                .col(ColumnDef::new("app").string_len(63).not_null())
                .col(text("route"))
                .col(ColumnDef::new("method").string_len(32).not_null())
                .col(text("path"))
                .col(ColumnDef::new("status").integer().not_null())
                .col(ColumnDef::new("latency_ms").double().not_null())
                .col(ColumnDef::new("client_ip").string_len(64).not_null())
                .col(text_null("subject"))
                .col(ColumnDef::new("denied_by").string_len(64).null())
                .col(json_null("waf_rules"))
                .col(ColumnDef::new("request_id").string_len(128).not_null())
                .to_owned(),
        )
        .await?;
        // Per-app summaries and the latest requests of an app read a time range of one app.
        m.create_index(
            Index::create()
                .name("ix_traffic_records_app_time")
                .table("traffic_records")
                .col("app")
                .col("time")
                .to_owned(),
        )
        .await?;
        // Pruning and the cross-app lists (latest denials, WAF hits) read by time alone.
        m.create_index(
            Index::create()
                .name("ix_traffic_records_time")
                .table("traffic_records")
                .col("time")
                .to_owned(),
        )
        .await?;
        // A batch retried after a lost answer must not count its requests twice.
        m.create_index(
            Index::create()
                .name("ux_traffic_records_gateway_request")
                .table("traffic_records")
                .col("gateway")
                .col("request_id")
                .unique()
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

/// Flow telemetry: raw flows from the agents (`flow_records`, pruned after the retention
/// window) and the batches they came in (`flow_batches`, so a redelivered batch is stored
/// once), app-to-app edges per hour (`flow_edges`), and address leases (`address_leases`).
struct M0003Flows;

impl MigrationName for M0003Flows {
    fn name(&self) -> &str {
        "m0003_flows"
    }
}

fn bigint(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for M0003Flows {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("flow_batches")
                .col(id())
                .col(ColumnDef::new("agent_id").string_len(64).not_null())
                .col(bigint("epoch_ms"))
                .col(bigint("sequence"))
                .col(text("host"))
                .col(bigint("interval_start_ms"))
                .col(bigint("interval_end_ms"))
                .col(ColumnDef::new("sampling_rate").double().not_null())
                .col(ColumnDef::new("flows").integer().not_null())
                .col(json("stats"))
                .col(bigint("received_ms"))
                .to_owned(),
        )
        .await?;
        // The batch id: a batch delivered twice is stored once.
        m.create_index(
            Index::create()
                .name("ux_flow_batches_id")
                .table("flow_batches")
                .col("agent_id")
                .col("epoch_ms")
                .col("sequence")
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_flow_batches_interval_end")
                .table("flow_batches")
                .col("interval_end_ms")
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("flow_records")
                .col(id())
                .col(ColumnDef::new("agent_id").string_len(64).not_null())
                .col(text("host"))
                .col(bigint("epoch_ms"))
                .col(bigint("sequence"))
                .col(bigint("at_ms"))
                .col(bigint("last_seen_ms"))
                .col(ColumnDef::new("direction").string_len(16).not_null())
                .col(ColumnDef::new("local_addr").string_len(64).not_null())
                .col(ColumnDef::new("local_port").integer().null())
                .col(ColumnDef::new("remote_addr").string_len(64).not_null())
                .col(ColumnDef::new("remote_port").integer().null())
                .col(ColumnDef::new("service_port").integer().not_null())
                .col(bigint("pid"))
                .col(text("comm"))
                .col(text_null("exe"))
                .col(bigint("cgroup_id"))
                .col(text_null("container_id"))
                .col(text_null("pod_uid"))
                .col(bigint("connections"))
                .col(bigint("closed"))
                .col(bigint("bytes_sent"))
                .col(bigint("bytes_received"))
                .col(bigint("segments_sent"))
                .col(bigint("segments_received"))
                .col(bigint("retransmits"))
                .col(json("rtt"))
                .col(bigint_null("rtt_p50_us"))
                .col(ColumnDef::new("local_app").string_len(128).null())
                .col(ColumnDef::new("remote_app").string_len(128).null())
                .col(ColumnDef::new("remote_scope").string_len(16).not_null())
                .to_owned(),
        )
        .await?;
        // Pruning and time-range reads.
        m.create_index(
            Index::create()
                .name("ix_flow_records_at")
                .table("flow_records")
                .col("at_ms")
                .to_owned(),
        )
        .await?;
        // One app's flows over a time range, from either end.
        for (name, col) in [
            ("ix_flow_records_local_app_at", "local_app"),
            ("ix_flow_records_remote_app_at", "remote_app"),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table("flow_records")
                    .col(col)
                    .col("at_ms")
                    .to_owned(),
            )
            .await?;
        }
        m.create_table(
            Table::create()
                .table("flow_edges")
                .col(id())
                .col(bigint("hour_ms"))
                .col(ColumnDef::new("client_kind").string_len(16).not_null())
                .col(ColumnDef::new("client").string_len(128).not_null())
                .col(ColumnDef::new("server_kind").string_len(16).not_null())
                .col(ColumnDef::new("server").string_len(128).not_null())
                .col(bigint("connections"))
                .col(bigint("bytes_to_server"))
                .col(bigint("bytes_to_client"))
                .col(bigint("retransmits"))
                .col(bigint("flows"))
                .col(json("rtt"))
                .col(bigint_null("rtt_p50_us"))
                .col(bigint_null("rtt_p99_us"))
                .col(json("service_ports"))
                .col(bigint("first_seen_ms"))
                .col(bigint("last_seen_ms"))
                .to_owned(),
        )
        .await?;
        // The edge's key: contributions of later batches sum into its row.
        m.create_index(
            Index::create()
                .name("ux_flow_edges_key")
                .table("flow_edges")
                .col("hour_ms")
                .col("client_kind")
                .col("client")
                .col("server_kind")
                .col("server")
                .unique()
                .to_owned(),
        )
        .await?;
        // An app's outbound and inbound dependencies over a time range.
        for (name, kind, end) in [
            ("ix_flow_edges_client", "client_kind", "client"),
            ("ix_flow_edges_server", "server_kind", "server"),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table("flow_edges")
                    .col(kind)
                    .col(end)
                    .col("hour_ms")
                    .to_owned(),
            )
            .await?;
        }
        m.create_table(
            Table::create()
                .table("address_leases")
                .col(id())
                .col(ColumnDef::new("source").string_len(32).not_null())
                .col(ColumnDef::new("prefix").string_len(64).not_null())
                .col(ColumnDef::new("port").integer().null())
                .col(ColumnDef::new("app").string_len(128).not_null())
                .col(bigint("valid_from_ms"))
                .col(bigint_null("valid_to_ms"))
                .col(bigint("revision"))
                .to_owned(),
        )
        .await?;
        // A source's open leases (what a sync compares with).
        m.create_index(
            Index::create()
                .name("ix_address_leases_source_open")
                .table("address_leases")
                .col("source")
                .col("valid_to_ms")
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_address_leases_revision")
                .table("address_leases")
                .col("revision")
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

/// People who sign in through an external OpenID provider: which `users` row each (issuer,
/// subject) is, so that two providers' `alice` stay two people.
struct M0004ExternalIdentities;

impl MigrationName for M0004ExternalIdentities {
    fn name(&self) -> &str {
        "m0004_external_identities"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0004ExternalIdentities {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("external_identities")
                .col(id())
                .col(text("issuer"))
                .col(text("subject"))
                .col(bigint("user_id"))
                .col(time("created_at"))
                .col(time("last_sign_in_at"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_external_identities_issuer_subject")
                .table("external_identities")
                .col("issuer")
                .col("subject")
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_external_identities_user")
                .table("external_identities")
                .col("user_id")
                .unique()
                .to_owned(),
        )
        .await
    }
}
