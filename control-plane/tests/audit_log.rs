//! Every mutation writes one audit row in its transaction, with the actor, whether a person or
//! a tool, and the state before and after; the log is append-only; on SQLite and PostgreSQL.

mod common;

use common::{Backend, env, intent, person};
use paved_control_plane::services::{AuditFilter, NewToken, NewUser};
use paved_control_plane::storage::entities::audit_log;
use paved_control_plane::{ActorKind, Role, Scope};
use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder};

async fn every_mutation_writes_an_audit_row(backend: Backend) {
    let t = env(backend).await;
    let cp = &t.cp;
    let ann = person(cp, "ann", Role::AppOwner, &["team-a"]).await;
    let tool_secret = common::token(cp, &[Scope::AppsWrite], &[], &["team-a"]).await;
    let tool = cp.authenticate_token(&tool_secret).await.expect("token");
    let db = cp.store().db();
    // The system's own `client.sync` rows (the gateway's redirect URIs follow the app
    // domains) are left out: this test is about the callers' mutations.
    let mine = |rows: Vec<audit_log::Model>| -> Vec<audit_log::Model> {
        rows.into_iter()
            .filter(|r| r.action != "client.sync")
            .collect()
    };
    let count = || async { mine(audit_log::Entity::find().all(db).await.expect("audit")).len() };
    let base = count().await;

    let v1 = intent("alpha", "team-a", "alpha.example.com");
    cp.apply_intent(&ann, &v1, "paved.yaml")
        .await
        .expect("apply by a person");
    let v2 = format!("{v1}waf: {{mode: detect}}\n");
    cp.apply_intent(&tool, &v2, "paved.yaml")
        .await
        .expect("apply by a tool");
    cp.apply_intent(&tool, &v2, "paved.yaml")
        .await
        .expect("no-op apply");
    cp.rollback_app(&ann, "alpha", 1).await.expect("rollback");
    let e = cp
        .apply_intent(
            &ann,
            &intent("bravo", "team-b", "b.example.com"),
            "paved.yaml",
        )
        .await;
    assert!(e.is_err(), "a refused mutation is not audited");
    cp.delete_app(&tool, "alpha").await.expect("delete");
    let created = cp
        .create_token(
            &ann,
            NewToken {
                name: "ci".into(),
                scopes: vec![Scope::AppsRead],
                apps: vec![],
                teams: vec!["team-a".into()],
                expires_at: None,
            },
        )
        .await
        .expect("token");
    cp.revoke_token(&ann, created.token.id)
        .await
        .expect("revoke");
    cp.create_user(
        &t.admin,
        NewUser {
            username: "zed".into(),
            password: "a long password".into(),
            email: None,
            display_name: None,
            role: Role::SecurityReviewer,
            teams: vec![],
            groups: vec![],
        },
    )
    .await
    .expect("user");
    assert_eq!(count().await, base + 7);

    let rows = mine(
        audit_log::Entity::find()
            .order_by_asc(audit_log::Column::Id)
            .all(db)
            .await
            .expect("rows"),
    );
    let rows = &rows[base..];
    let summary: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r.action.as_str(), r.actor.as_str(), r.actor_kind.as_str()))
        .collect();
    let tool_name = tool.name.as_str();
    assert_eq!(
        summary,
        [
            ("app.apply", "ann", "person"),
            ("app.apply", tool_name, "tool"),
            ("app.rollback", "ann", "person"),
            ("app.delete", tool_name, "tool"),
            ("token.create", "ann", "person"),
            ("token.revoke", "ann", "person"),
            ("user.create", "system", "tool"),
        ]
    );
    assert!(rows[0].before.is_none());
    assert_eq!(rows[0].after.as_ref().expect("after")["version"], 1);
    assert_eq!(
        rows[1].before.as_ref().expect("before")["intent"]["waf"]["mode"],
        "block"
    );
    assert_eq!(
        rows[1].after.as_ref().expect("after")["intent"]["waf"]["mode"],
        "detect"
    );
    assert_eq!(rows[2].after.as_ref().expect("after")["rolledBackFrom"], 1);
    assert_eq!(rows[3].after.as_ref().expect("after")["deleted"], true);
    assert!(
        rows[4]
            .after
            .as_ref()
            .expect("after")
            .get("secret_hash")
            .is_none()
    );
    assert!(
        !rows[4]
            .after
            .as_ref()
            .expect("after")
            .to_string()
            .contains(&created.secret)
    );
    assert!(rows[5].after.as_ref().expect("after")["revokedAt"].is_string());
    assert!(
        !rows[6]
            .after
            .as_ref()
            .expect("after")
            .to_string()
            .contains("argon2")
    );
    assert!(
        rows.iter()
            .all(|r| r.app.as_deref() == Some("alpha") || r.target_kind != "app")
    );

    // Queries: by app, by kind of actor, paged; an owner sees only the rows of their apps.
    let admin = &t.admin;
    let by_tools = cp
        .audit_log(
            admin,
            &AuditFilter {
                actor_kind: Some(ActorKind::Tool),
                app: Some("alpha".into()),
                ..Default::default()
            },
            None,
            None,
        )
        .await
        .expect("query");
    assert_eq!(
        by_tools
            .items
            .iter()
            .map(|r| r.action.as_str())
            .collect::<Vec<_>>(),
        ["app.delete", "app.apply"]
    );
    let page = cp
        .audit_log(admin, &AuditFilter::default(), Some(2), None)
        .await
        .expect("page");
    assert!(page.has_next && page.items.len() == 2);
    let next = cp
        .audit_log(
            admin,
            &AuditFilter::default(),
            Some(2),
            page.end_cursor.as_deref(),
        )
        .await
        .expect("next");
    assert!(next.items[0].id < page.items[1].id);
    let bob = person(cp, "bob", Role::AppOwner, &["team-b"]).await;
    let seen = cp
        .audit_log(&bob, &AuditFilter::default(), None, None)
        .await
        .expect("bob");
    assert_eq!(seen.total, 0, "bob owns no app of these rows");
}

async fn the_audit_log_is_append_only(backend: Backend) {
    let t = env(backend).await;
    let cp = &t.cp;
    cp.apply_intent(
        &t.admin,
        &intent("alpha", "a", "alpha.example.com"),
        "paved.yaml",
    )
    .await
    .expect("apply");
    let db = cp.store().db();
    assert!(
        db.execute_unprepared("UPDATE audit_log SET actor = 'mallory'")
            .await
            .is_err()
    );
    assert!(
        db.execute_unprepared("DELETE FROM audit_log")
            .await
            .is_err()
    );
    let rows = audit_log::Entity::find().all(db).await.expect("rows");
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r.actor != "mallory"));
}

on_both_backends!(
    every_mutation_writes_an_audit_row,
    the_audit_log_is_append_only
);
