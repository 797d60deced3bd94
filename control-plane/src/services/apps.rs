//! Apps and their intents: plan, apply, roll back, delete, list, versions, diff.

use chrono::Utc;
use paved_model::Intent;
use paved_model::compile;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::Serialize;
use serde_json::Value;

use super::{ControlPlane, Event, Page, PublishedSnapshot, audit, current_intents, page_size};
use crate::auth::{AppRef, Principal};
use crate::secrets::sha256_hex;
use crate::storage::entities::{app, intent_version};
use crate::storage::{json_strings, strings_json};
use crate::{Error, Result};

/// Largest intent text accepted.
pub const MAX_INTENT_BYTES: usize = 256 * 1024;

/// One difference between two intents, at a field path such as `routes[1].upstream`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// Field path (names as written in `paved.yaml`).
    pub path: String,
    /// Value before (`None`: the field was added).
    pub before: Option<Value>,
    /// Value after (`None`: the field was removed).
    pub after: Option<Value>,
}

/// Kind of a [`FieldChange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// The field is new.
    Added,
    /// The field is gone.
    Removed,
    /// The field's value changed.
    Changed,
}

impl FieldChange {
    /// Added, removed or changed.
    pub fn kind(&self) -> ChangeKind {
        match (&self.before, &self.after) {
            (None, _) => ChangeKind::Added,
            (_, None) => ChangeKind::Removed,
            _ => ChangeKind::Changed,
        }
    }
}

/// What applying an intent would do (nothing is changed by planning).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The app's name.
    pub app: String,
    /// Whether the app does not exist yet (or was deleted).
    pub new_app: bool,
    /// Whether applying would create a new version.
    pub changed: bool,
    /// The current version, if any.
    pub current_version: Option<i32>,
    /// Content hash of the planned intent.
    pub content_hash: String,
    /// Field-level changes from the current intent.
    pub changes: Vec<FieldChange>,
    /// Unified diff of the intent texts.
    pub text_diff: String,
}

/// The result of an apply or a rollback.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The app after the change.
    pub app: app::Model,
    /// Its current version (new, or the unchanged current one).
    pub version: intent_version::Model,
    /// Whether a new version was created (`false`: same content as the current version).
    pub created: bool,
    /// The snapshot published for the change (`None` when nothing changed).
    pub snapshot_version: Option<i64>,
}

/// The result of a delete.
#[derive(Debug, Clone, PartialEq)]
pub struct Deleted {
    /// The app.
    pub app: String,
    /// The snapshot published without it.
    pub snapshot_version: i64,
}

/// Differences between two versions of an app's intent.
#[derive(Debug, Clone, PartialEq)]
pub struct IntentDiff {
    /// The app.
    pub app: String,
    /// The older side.
    pub from: i32,
    /// The newer side.
    pub to: i32,
    /// Field-level changes.
    pub changes: Vec<FieldChange>,
    /// Unified diff of the texts.
    pub text_diff: String,
}

/// Filters of [`ControlPlane::list_apps`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppFilter {
    /// Apps of this team.
    pub team: Option<String>,
    /// Apps whose name contains this (case-insensitive).
    pub name_contains: Option<String>,
    /// Apps serving this domain.
    pub domain: Option<String>,
    /// Include deleted apps.
    pub include_deleted: bool,
}

/// A decoded intent with its canonical JSON and content hash.
struct Parsed {
    intent: Intent,
    json: Value,
    hash: String,
}

fn parse(text: &str, source: &str) -> Result<Parsed> {
    if text.len() > MAX_INTENT_BYTES {
        return Err(Error::BadRequest(format!(
            "the intent is {} bytes, more than the {MAX_INTENT_BYTES} accepted",
            text.len()
        )));
    }
    if source.is_empty() || source.len() > 255 || source.contains(['\n', '\r']) {
        return Err(Error::BadRequest(
            "the source name must be 1 to 255 characters on one line".into(),
        ));
    }
    let intent = Intent::from_yaml_str(text, source).map_err(Error::InvalidIntent)?;
    let json = serde_json::to_value(&intent)
        .map_err(|e| Error::Internal(format!("encoding an intent: {e}")))?;
    // The hash covers the parsed intent, not the text: re-applying the same intent with other
    // comments or formatting is the same content and makes no new version.
    let canonical = serde_json::to_vec(&json)
        .map_err(|e| Error::Internal(format!("encoding an intent: {e}")))?;
    Ok(Parsed {
        hash: sha256_hex(&canonical),
        intent,
        json,
    })
}

/// Whether `who` may change the stored app `a`.
fn may_write_stored(who: &Principal, a: &app::Model) -> bool {
    let owners = a.owner_list();
    who.can_write_app(AppRef {
        name: &a.name,
        team: a.team.as_deref(),
        owners: &owners,
    })
}

/// Whether `who` may read the stored app `a`.
pub(crate) fn may_read_stored(who: &Principal, a: &app::Model) -> bool {
    let owners = a.owner_list();
    who.can_read_app(AppRef {
        name: &a.name,
        team: a.team.as_deref(),
        owners: &owners,
    })
}

fn may_write_intent(who: &Principal, intent: &Intent) -> bool {
    who.can_write_app(AppRef {
        name: &intent.name,
        team: intent.team.as_deref(),
        owners: &intent.owners,
    })
}

/// Field-level differences between two JSON documents, in document order.
pub fn json_diff(before: &Value, after: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    diff_into(&mut out, String::new(), Some(before), Some(after));
    out
}

fn diff_into(out: &mut Vec<FieldChange>, path: String, a: Option<&Value>, b: Option<&Value>) {
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff_into(out, p, x.get(k), y.get(k));
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            for i in 0..x.len().max(y.len()) {
                diff_into(out, format!("{path}[{i}]"), x.get(i), y.get(i));
            }
        }
        // A new (or removed) mapping is listed field by field.
        (None | Some(Value::Null), Some(Value::Object(_))) => {
            diff_into(out, path, Some(&Value::Object(Default::default())), b);
        }
        (Some(Value::Object(_)), None | Some(Value::Null)) => {
            diff_into(out, path, a, Some(&Value::Object(Default::default())));
        }
        (Some(x), Some(y)) if x == y => {}
        (Some(Value::Null), None) | (None, Some(Value::Null)) | (None, None) => {}
        (x, y) => out.push(FieldChange {
            path,
            before: x.filter(|v| !v.is_null()).cloned(),
            after: y.filter(|v| !v.is_null()).cloned(),
        }),
    }
}

fn text_diff(before: &str, after: &str, from: &str, to: &str) -> String {
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(from, to)
        .to_string()
}

impl ControlPlane {
    /// Validates an intent and compares it with the app's current one. Changes nothing.
    /// Requires permission to change the app.
    pub async fn plan_intent(&self, who: &Principal, text: &str, source: &str) -> Result<Plan> {
        let parsed = parse(text, source)?;
        let db = self.store().db();
        let existing = find_app(db, &parsed.intent.name).await?;
        check_write(who, existing.as_ref(), &parsed.intent)?;
        let current = match existing.as_ref().and_then(|a| a.current_version_id) {
            Some(id) => intent_version::Entity::find_by_id(id).one(db).await?,
            None => None,
        };
        // Compile with every other current intent to report conflicts (a host and path claimed
        // by two apps) before anything is applied.
        let mut intents: Vec<Intent> = current_intents(db)
            .await?
            .into_iter()
            .filter(|i| i.name != parsed.intent.name)
            .collect();
        intents.push(parsed.intent.clone());
        let options = self.options_for(db, &intents, 0, false).await?;
        compile::compile(&intents, &options)?;
        let (before_json, before_text) = match &current {
            Some(v) => (v.intent.clone(), v.text.clone()),
            None => (Value::Null, String::new()),
        };
        let changed = current
            .as_ref()
            .is_none_or(|v| v.content_hash != parsed.hash);
        let from = current.as_ref().map_or_else(
            || "(none)".to_string(),
            |v| format!("version {}", v.version),
        );
        Ok(Plan {
            app: parsed.intent.name.clone(),
            new_app: current.is_none(),
            changed,
            current_version: current.as_ref().map(|v| v.version),
            content_hash: parsed.hash,
            changes: if changed {
                json_diff(&before_json, &parsed.json)
            } else {
                Vec::new()
            },
            text_diff: if changed {
                text_diff(&before_text, text, &from, source)
            } else {
                String::new()
            },
        })
    }

    /// Validates and stores an intent as the app's new version, recompiles and publishes the
    /// snapshot. Idempotent: an intent with the content of the current version changes nothing.
    pub async fn apply_intent(&self, who: &Principal, text: &str, source: &str) -> Result<Applied> {
        let parsed = parse(text, source)?;
        self.store_version(
            who,
            &parsed.intent.name.clone(),
            Change::Apply {
                parsed: Box::new(parsed),
                text,
            },
        )
        .await
    }

    /// Makes the content of an earlier version current again, as a new version (history is
    /// never rewritten). Rolling back to the content of the current version changes nothing.
    pub async fn rollback_app(&self, who: &Principal, name: &str, version: i32) -> Result<Applied> {
        self.store_version(who, name, Change::Rollback { version })
            .await
    }

    async fn store_version(
        &self,
        who: &Principal,
        name: &str,
        change: Change<'_>,
    ) -> Result<Applied> {
        let _guard = self.write_guard().await;
        let tx = self.store().begin_write().await?;
        let existing = find_app(&tx, name).await?;
        let (intent, json, hash, text, action, rolled_back_from) = match change {
            Change::Apply { parsed, text } => {
                let parsed = *parsed;
                check_write(who, existing.as_ref(), &parsed.intent)?;
                (
                    parsed.intent,
                    parsed.json,
                    parsed.hash,
                    text.to_string(),
                    "apply",
                    None,
                )
            }
            Change::Rollback { version } => {
                let Some(a) = existing.as_ref().filter(|a| a.deleted_at.is_none()) else {
                    return Err(Error::NotFound(format!("app `{name}`")));
                };
                if !may_read_stored(who, a) {
                    return Err(Error::NotFound(format!("app `{name}`")));
                }
                if !may_write_stored(who, a) {
                    return Err(Error::Forbidden(format!("you may not change app `{name}`")));
                }
                let target = intent_version::Entity::find()
                    .filter(intent_version::Column::AppId.eq(a.id))
                    .filter(intent_version::Column::Version.eq(version))
                    .one(&tx)
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("version {version} of app `{name}`")))?;
                let intent: Intent =
                    serde_json::from_value(target.intent.clone()).map_err(|e| {
                        Error::Internal(format!(
                            "stored intent version {} does not decode: {e}",
                            target.id
                        ))
                    })?;
                // The old version's team must be one the caller may write too.
                check_write(who, Some(a), &intent)?;
                (
                    intent,
                    target.intent,
                    target.content_hash,
                    target.text,
                    "rollback",
                    Some(version),
                )
            }
        };
        let current = match existing
            .as_ref()
            .filter(|a| a.deleted_at.is_none())
            .and_then(|a| a.current_version_id)
        {
            Some(id) => intent_version::Entity::find_by_id(id).one(&tx).await?,
            None => None,
        };
        if let (Some(a), Some(v)) = (&existing, &current)
            && v.content_hash == hash
        {
            // Same content as the current version: nothing to do, nothing to audit.
            tracing::debug!(app = %name, version = v.version, "intent unchanged");
            return Ok(Applied {
                app: a.clone(),
                version: v.clone(),
                created: false,
                snapshot_version: None,
            });
        }
        let now = Utc::now();
        let app_row = match existing.clone() {
            Some(a) => a,
            None => {
                app::ActiveModel {
                    name: Set(intent.name.clone()),
                    team: Set(intent.team.clone()),
                    owners: Set(strings_json(&intent.owners)),
                    domains: Set(strings_json(&intent.domains)),
                    current_version: Set(None),
                    current_version_id: Set(None),
                    snapshot_version: Set(None),
                    created_at: Set(now),
                    updated_at: Set(now),
                    deleted_at: Set(None),
                    ..Default::default()
                }
                .insert(&tx)
                .await?
            }
        };
        let last = intent_version::Entity::find()
            .filter(intent_version::Column::AppId.eq(app_row.id))
            .order_by_desc(intent_version::Column::Version)
            .limit(1)
            .one(&tx)
            .await?
            .map_or(0, |v| v.version);
        let version = intent_version::ActiveModel {
            app_id: Set(app_row.id),
            version: Set(last + 1),
            text: Set(text),
            intent: Set(json.clone()),
            content_hash: Set(hash),
            author: Set(who.name.clone()),
            actor_kind: Set(who.kind.as_str().to_string()),
            action: Set(action.to_string()),
            rolled_back_from: Set(rolled_back_from),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(&tx)
        .await?;
        let mut am = app_row.into_active_model();
        am.team = Set(intent.team.clone());
        am.owners = Set(strings_json(&intent.owners));
        am.domains = Set(strings_json(&intent.domains));
        am.current_version = Set(Some(version.version));
        am.current_version_id = Set(Some(version.id));
        am.updated_at = Set(now);
        am.deleted_at = Set(None);
        let app_row = am.update(&tx).await?;
        let audit_action = format!("app.{action}");
        let (snapshot_version, snapshot_json) = self
            .compile_and_store(&tx, &format!("{audit_action} {}", intent.name))
            .await?;
        let mut am = app_row.into_active_model();
        am.snapshot_version = Set(Some(snapshot_version));
        let app_row = am.update(&tx).await?;
        let mut after = serde_json::json!({
            "version": version.version,
            "contentHash": version.content_hash,
            "snapshotVersion": snapshot_version,
            "intent": json,
        });
        if let Some(from) = rolled_back_from {
            after["rolledBackFrom"] = Value::from(from);
        }
        let before = current.as_ref().map(|v| {
            serde_json::json!({
                "version": v.version,
                "contentHash": v.content_hash,
                "intent": v.intent,
            })
        });
        audit(
            &tx,
            who,
            &audit_action,
            "app",
            &intent.name,
            Some(&intent.name),
            before,
            Some(after),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(app = %intent.name, version = version.version, snapshot_version, actor = %who.name, action = %audit_action, "intent stored");
        self.publish(PublishedSnapshot {
            version: snapshot_version,
            json: snapshot_json.into(),
        });
        self.emit(Event::AppChanged {
            app: intent.name.clone(),
            action: audit_action,
            version: Some(version.version),
            snapshot_version,
        });
        Ok(Applied {
            app: app_row,
            version,
            created: true,
            snapshot_version: Some(snapshot_version),
        })
    }

    /// Deletes an app: it leaves the snapshot; its history and audit trail stay.
    pub async fn delete_app(&self, who: &Principal, name: &str) -> Result<Deleted> {
        let _guard = self.write_guard().await;
        let tx = self.store().begin_write().await?;
        let Some(a) = find_app(&tx, name)
            .await?
            .filter(|a| a.deleted_at.is_none())
        else {
            return Err(Error::NotFound(format!("app `{name}`")));
        };
        if !may_read_stored(who, &a) {
            return Err(Error::NotFound(format!("app `{name}`")));
        }
        if !may_write_stored(who, &a) {
            return Err(Error::Forbidden(format!("you may not delete app `{name}`")));
        }
        let current = match a.current_version_id {
            Some(id) => intent_version::Entity::find_by_id(id).one(&tx).await?,
            None => None,
        };
        let mut am = a.clone().into_active_model();
        am.current_version = Set(None);
        am.current_version_id = Set(None);
        am.deleted_at = Set(Some(Utc::now()));
        am.updated_at = Set(Utc::now());
        let a = am.update(&tx).await?;
        let (snapshot_version, json) = self
            .compile_and_store(&tx, &format!("app.delete {name}"))
            .await?;
        let mut am = a.into_active_model();
        am.snapshot_version = Set(Some(snapshot_version));
        am.update(&tx).await?;
        audit(
            &tx,
            who,
            "app.delete",
            "app",
            name,
            Some(name),
            current.map(|v| {
                serde_json::json!({
                    "version": v.version,
                    "contentHash": v.content_hash,
                    "intent": v.intent,
                })
            }),
            Some(serde_json::json!({ "deleted": true, "snapshotVersion": snapshot_version })),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(app = %name, snapshot_version, actor = %who.name, "app deleted");
        self.publish(PublishedSnapshot {
            version: snapshot_version,
            json: json.into(),
        });
        self.emit(Event::AppChanged {
            app: name.to_string(),
            action: "app.delete".into(),
            version: None,
            snapshot_version,
        });
        Ok(Deleted {
            app: name.to_string(),
            snapshot_version,
        })
    }

    /// Apps the caller may read, filtered, by name, `first` at a time after the cursor `after`
    /// (an app name).
    pub async fn list_apps(
        &self,
        who: &Principal,
        filter: &AppFilter,
        first: Option<i64>,
        after: Option<&str>,
    ) -> Result<Page<app::Model>> {
        require_reader(who)?;
        let first = page_size(first)?;
        let mut query = app::Entity::find().order_by_asc(app::Column::Name);
        if !filter.include_deleted {
            query = query.filter(app::Column::DeletedAt.is_null());
        }
        if let Some(team) = &filter.team {
            query = query.filter(app::Column::Team.eq(team.as_str()));
        }
        let needle = filter.name_contains.as_ref().map(|s| s.to_lowercase());
        let domain = filter.domain.as_ref().map(|s| s.to_ascii_lowercase());
        // Visibility depends on JSON lists (owners), so it is decided here rather than in SQL.
        let matching: Vec<app::Model> = query
            .all(self.store().db())
            .await?
            .into_iter()
            .filter(|a| {
                needle
                    .as_ref()
                    .is_none_or(|n| a.name.to_lowercase().contains(n))
            })
            .filter(|a| {
                domain.as_ref().is_none_or(|d| {
                    json_strings(&a.domains)
                        .iter()
                        .any(|x| x.eq_ignore_ascii_case(d))
                })
            })
            .filter(|a| may_read_stored(who, a))
            .collect();
        let total = matching.len();
        let rest: Vec<app::Model> = matching
            .into_iter()
            .filter(|a| after.is_none_or(|c| a.name.as_str() > c))
            .collect();
        let has_next = rest.len() > first;
        let items: Vec<app::Model> = rest.into_iter().take(first).collect();
        Ok(Page {
            end_cursor: items.last().map(|a| a.name.clone()),
            items,
            total,
            has_next,
        })
    }

    /// One app the caller may read (deleted apps are not found).
    pub async fn get_app(&self, who: &Principal, name: &str) -> Result<app::Model> {
        require_reader(who)?;
        match find_app(self.store().db(), name).await? {
            Some(a) if a.deleted_at.is_none() && may_read_stored(who, &a) => Ok(a),
            _ => Err(Error::NotFound(format!("app `{name}`"))),
        }
    }

    /// Versions of an app, newest first, `first` at a time, older than version `before`.
    pub async fn intent_versions(
        &self,
        who: &Principal,
        name: &str,
        first: Option<i64>,
        before: Option<i32>,
    ) -> Result<Vec<intent_version::Model>> {
        let a = self.get_app(who, name).await?;
        let first = page_size(first)?;
        let mut q = intent_version::Entity::find()
            .filter(intent_version::Column::AppId.eq(a.id))
            .order_by_desc(intent_version::Column::Version)
            .limit(first as u64);
        if let Some(b) = before {
            q = q.filter(intent_version::Column::Version.lt(b));
        }
        Ok(q.all(self.store().db()).await?)
    }

    /// One version of an app.
    pub async fn intent_version(
        &self,
        who: &Principal,
        name: &str,
        version: i32,
    ) -> Result<intent_version::Model> {
        let a = self.get_app(who, name).await?;
        intent_version::Entity::find()
            .filter(intent_version::Column::AppId.eq(a.id))
            .filter(intent_version::Column::Version.eq(version))
            .one(self.store().db())
            .await?
            .ok_or_else(|| Error::NotFound(format!("version {version} of app `{name}`")))
    }

    /// Differences between two versions of an app.
    pub async fn diff_versions(
        &self,
        who: &Principal,
        name: &str,
        from: i32,
        to: i32,
    ) -> Result<IntentDiff> {
        let a = self.intent_version(who, name, from).await?;
        let b = self.intent_version(who, name, to).await?;
        Ok(IntentDiff {
            app: name.to_string(),
            from,
            to,
            changes: json_diff(&a.intent, &b.intent),
            text_diff: text_diff(
                &a.text,
                &b.text,
                &format!("version {from}"),
                &format!("version {to}"),
            ),
        })
    }

    /// Intent versions by row id, for data loaders (no permission check: callers check the
    /// app first).
    pub async fn intent_versions_by_id(
        &self,
        ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, intent_version::Model>> {
        Ok(intent_version::Entity::find()
            .filter(intent_version::Column::Id.is_in(ids.to_vec()))
            .all(self.store().db())
            .await?
            .into_iter()
            .map(|v| (v.id, v))
            .collect())
    }

    /// Number of versions per app id, for data loaders.
    pub async fn version_counts(
        &self,
        app_ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, i64>> {
        let rows: Vec<(i64, i64)> = intent_version::Entity::find()
            .select_only()
            .column(intent_version::Column::AppId)
            .column_as(intent_version::Column::Id.count(), "count")
            .filter(intent_version::Column::AppId.is_in(app_ids.to_vec()))
            .group_by(intent_version::Column::AppId)
            .into_tuple()
            .all(self.store().db())
            .await?;
        Ok(rows.into_iter().collect())
    }
}

enum Change<'a> {
    Apply { parsed: Box<Parsed>, text: &'a str },
    Rollback { version: i32 },
}

pub(crate) fn require_reader(who: &Principal) -> Result<()> {
    if who.can_read_apps() {
        Ok(())
    } else {
        Err(Error::Forbidden("this token may not read apps".into()))
    }
}

/// Permission to write `intent` over the stored app `existing` (if any): the caller must be
/// allowed on both, so an app cannot be moved to a team the caller is not in, nor taken over.
fn check_write(who: &Principal, existing: Option<&app::Model>, intent: &Intent) -> Result<()> {
    if let Some(a) = existing
        && !may_write_stored(who, a)
    {
        return Err(Error::Forbidden(format!(
            "you may not change app `{}` (team {})",
            a.name,
            a.team.as_deref().unwrap_or("none")
        )));
    }
    if !may_write_intent(who, intent) {
        return Err(Error::Forbidden(format!(
            "you may not write an app of team {}",
            intent.team.as_deref().unwrap_or("none")
        )));
    }
    Ok(())
}

pub(crate) async fn find_app<C: ConnectionTrait>(db: &C, name: &str) -> Result<Option<app::Model>> {
    Ok(app::Entity::find()
        .filter(app::Column::Name.eq(name))
        .one(db)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_diff_reports_paths() {
        let a =
            serde_json::json!({"name": "x", "routes": [{"path": "/"}], "waf": {"mode": "block"}});
        let b = serde_json::json!({"name": "x", "routes": [{"path": "/"}, {"path": "/api"}], "waf": {"mode": "detect"}});
        let d = json_diff(&a, &b);
        let paths: Vec<&str> = d.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["routes[1].path", "waf.mode"]);
        assert_eq!(d[0].kind(), ChangeKind::Added);
        assert_eq!(d[1].kind(), ChangeKind::Changed);
    }
}
