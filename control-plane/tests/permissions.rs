//! Roles and token scopes: owners change only their team's apps, reviewers read, read tokens
//! cannot write, write tokens are limited to their apps, on SQLite and PostgreSQL.

mod common;

use common::{Backend, env, intent, person, serve, token};
use paved_control_plane::services::{AppFilter, NewToken};
use paved_control_plane::{Role, Scope};
use serde_json::{Value, json};

async fn owner_of_team_a_cannot_change_team_b_apps(backend: Backend) {
    let t = env(backend).await;
    let cp = &t.cp;
    let ann = person(cp, "ann", Role::AppOwner, &["team-a"]).await;
    let bob = person(cp, "bob", Role::AppOwner, &["team-b"]).await;
    cp.apply_intent(
        &bob,
        &intent("bravo", "team-b", "bravo.example.com"),
        "paved.yaml",
    )
    .await
    .expect("bob applies his team's app");
    cp.apply_intent(
        &ann,
        &intent("alpha", "team-a", "alpha.example.com"),
        "paved.yaml",
    )
    .await
    .expect("ann applies her team's app");

    // Changing bravo's intent, moving bravo into team A, or creating an app for team B.
    let changed = format!(
        "{}waf: {{mode: detect}}\n",
        intent("bravo", "team-b", "bravo.example.com")
    );
    for (text, what) in [
        (changed.as_str(), "change"),
        (
            &*intent("bravo", "team-a", "bravo.example.com"),
            "take over",
        ),
        (
            &*intent("charlie", "team-b", "charlie.example.com"),
            "create for team B",
        ),
    ] {
        let e = cp
            .apply_intent(&ann, text, "paved.yaml")
            .await
            .expect_err(what);
        assert_eq!(e.code(), "FORBIDDEN", "{what}: {e}");
        let e = cp
            .plan_intent(&ann, text, "paved.yaml")
            .await
            .expect_err(what);
        assert_eq!(e.code(), "FORBIDDEN", "plan {what}: {e}");
    }
    assert!(matches!(
        cp.delete_app(&ann, "bravo")
            .await
            .expect_err("delete")
            .code(),
        "NOT_FOUND" | "FORBIDDEN"
    ));
    assert!(matches!(
        cp.rollback_app(&ann, "bravo", 1)
            .await
            .expect_err("rollback")
            .code(),
        "NOT_FOUND" | "FORBIDDEN"
    ));
    // Bob's app is unchanged and invisible to Ann.
    assert_eq!(
        cp.get_app(&bob, "bravo")
            .await
            .expect("bravo")
            .current_version,
        Some(1)
    );
    assert_eq!(
        cp.get_app(&ann, "bravo").await.expect_err("hidden").code(),
        "NOT_FOUND"
    );
    let names: Vec<String> = cp
        .list_apps(&ann, &AppFilter::default(), None, None)
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["alpha"]);

    // A security reviewer reads everything and changes nothing.
    let rita = person(cp, "rita", Role::SecurityReviewer, &[]).await;
    assert_eq!(
        cp.list_apps(&rita, &AppFilter::default(), None, None)
            .await
            .expect("list")
            .total,
        2
    );
    let e = cp
        .apply_intent(&rita, &changed, "paved.yaml")
        .await
        .expect_err("reviewer writes");
    assert_eq!(e.code(), "FORBIDDEN");

    // Tokens never exceed their creator's rights.
    let over = |scopes: Vec<Scope>, teams: Vec<String>| NewToken {
        name: "mine".into(),
        scopes,
        apps: vec![],
        teams,
        expires_at: None,
    };
    assert_eq!(
        cp.create_token(&ann, over(vec![Scope::Admin], vec![]))
            .await
            .expect_err("admin")
            .code(),
        "FORBIDDEN"
    );
    assert_eq!(
        cp.create_token(&ann, over(vec![Scope::AppsWrite], vec!["team-b".into()]))
            .await
            .expect_err("team b")
            .code(),
        "FORBIDDEN"
    );
    assert_eq!(
        cp.create_token(&rita, over(vec![Scope::AppsWrite], vec!["team-a".into()]))
            .await
            .expect_err("reviewer write")
            .code(),
        "FORBIDDEN"
    );
    assert!(
        cp.create_token(&ann, over(vec![Scope::AppsWrite], vec!["team-a".into()]))
            .await
            .is_ok()
    );
}

async fn gql(base: &str, bearer: Option<&str>, query: &str) -> Value {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .json(&json!({"query": query}));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.expect("send");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

fn code(v: &Value) -> &str {
    v["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

async fn read_tokens_cannot_write(backend: Backend) {
    let t = env(backend).await;
    let cp = &t.cp;
    cp.apply_intent(
        &t.admin,
        &intent("alpha", "team-a", "alpha.example.com"),
        "paved.yaml",
    )
    .await
    .expect("apply");
    let base = serve(cp).await;
    let read = token(cp, &[Scope::AppsRead], &[], &[]).await;
    let apply = format!(
        "mutation {{ applyIntent(yaml: {}) {{ created }} }}",
        serde_json::to_string(&format!(
            "{}waf: {{mode: detect}}\n",
            intent("alpha", "team-a", "alpha.example.com")
        ))
        .expect("json")
    );

    let v = gql(
        &base,
        Some(&read),
        "{ apps { nodes { name current { version } } } me { kind scopes } }",
    )
    .await;
    assert!(v.get("errors").is_none(), "{v}");
    assert_eq!(v["data"]["apps"]["nodes"][0]["name"], "alpha");
    assert_eq!(
        v["data"]["me"],
        json!({"kind": "TOOL", "scopes": ["APPS_READ"]})
    );
    let v = gql(&base, Some(&read), &apply).await;
    assert_eq!(code(&v), "FORBIDDEN", "{v}");
    let v = gql(
        &base,
        Some(&read),
        "mutation { deleteApp(name: \"alpha\") { app } }",
    )
    .await;
    assert_eq!(code(&v), "FORBIDDEN", "{v}");
    assert_eq!(
        cp.get_app(&t.admin, "alpha")
            .await
            .expect("alpha")
            .current_version,
        Some(1)
    );

    // No token, a made-up token, a revoked token.
    assert_eq!(
        code(&gql(&base, None, "{ apps { totalCount } }").await),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        code(
            &gql(
                &base,
                Some("pvd_0123456789ab_nope"),
                "{ apps { totalCount } }"
            )
            .await
        ),
        "UNAUTHENTICATED"
    );
    let tokens = cp.list_tokens(&t.admin).await.expect("tokens");
    cp.revoke_token(&t.admin, tokens[0].id)
        .await
        .expect("revoke");
    assert_eq!(
        code(&gql(&base, Some(&read), "{ apps { totalCount } }").await),
        "UNAUTHENTICATED"
    );

    // A write token limited to one app writes that app only.
    let write = token(cp, &[Scope::AppsWrite], &["alpha"], &[]).await;
    let v = gql(&base, Some(&write), &apply).await;
    assert!(v.get("errors").is_none(), "{v}");
    assert_eq!(v["data"]["applyIntent"]["created"], true);
    let beta = format!(
        "mutation {{ applyIntent(yaml: {}) {{ created }} }}",
        serde_json::to_string(&intent("beta", "team-a", "beta.example.com")).expect("json")
    );
    assert_eq!(code(&gql(&base, Some(&write), &beta).await), "FORBIDDEN");
    // An unrestricted write token cannot be made.
    let v = gql(
        &base,
        Some(&write),
        "mutation { createToken(input: {name: \"x\", scopes: [APPS_WRITE]}) { secret } }",
    )
    .await;
    assert_eq!(code(&v), "BAD_REQUEST", "{v}");
    // A gateway token reads no apps.
    let gw = token(cp, &[Scope::Gateway], &[], &[]).await;
    assert_eq!(
        code(&gql(&base, Some(&gw), "{ apps { totalCount } }").await),
        "FORBIDDEN"
    );
}

on_both_backends!(
    owner_of_team_a_cannot_change_team_b_apps,
    read_tokens_cannot_write
);
