//! Shared test harness: a control plane on a fresh SQLite file or a fresh PostgreSQL schema
//! (dropped when the test ends), users, intents, and an HTTP server on 127.0.0.1:0.
#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;

use paved_control_plane::services::{NewToken, NewUser};
use paved_control_plane::{ControlPlane, ControlPlaneConfig, Principal, Role, Scope};
use sea_orm::{ConnectionTrait, Database};

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the tests use (trust authentication).
pub fn postgres_url() -> String {
    std::env::var("PAVED_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A database that disappears with the test.
pub struct TestDb {
    _dir: Option<tempfile::TempDir>,
    pg_schema: Option<String>,
    pub url: String,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(schema) = self.pg_schema.take() else {
            return;
        };
        // Drop runs outside async code (and during panics): use a runtime of our own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(db) = Database::connect(postgres_url()).await {
                    let _ = db
                        .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                        .await;
                    let _ = db.close().await;
                }
            });
        })
        .join();
    }
}

/// A control plane with its database; the database is dropped after the control plane.
pub struct TestEnv {
    pub cp: ControlPlane,
    pub admin: Principal,
    pub config: ControlPlaneConfig,
    pub db: TestDb,
}

pub async fn test_db(backend: Backend) -> (TestDb, Option<String>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("paved.db").display()
            );
            (
                TestDb {
                    _dir: Some(dir),
                    pg_schema: None,
                    url,
                },
                None,
            )
        }
        Backend::Postgres => {
            let url = postgres_url();
            let db = Database::connect(url.clone()).await.unwrap_or_else(|e| {
                panic!("PostgreSQL is required at {url} (set PAVED_TEST_POSTGRES_URL): {e}")
            });
            let schema = format!("paved_test_{}", paved_control_plane::secrets::random_hex(8));
            db.execute_unprepared(&format!("CREATE SCHEMA \"{schema}\""))
                .await
                .expect("create schema");
            db.close().await.expect("close");
            (
                TestDb {
                    _dir: None,
                    pg_schema: Some(schema.clone()),
                    url,
                },
                Some(schema),
            )
        }
    }
}

pub fn base_config(url: &str, schema: Option<String>) -> ControlPlaneConfig {
    let mut config = ControlPlaneConfig::new(url, "http://127.0.0.1:8081");
    config.database_schema = schema;
    config
}

pub async fn env(backend: Backend) -> TestEnv {
    env_with(backend, |_| {}).await
}

pub async fn env_with(backend: Backend, f: impl FnOnce(&mut ControlPlaneConfig)) -> TestEnv {
    let (db, schema) = test_db(backend).await;
    let mut config = base_config(&db.url, schema);
    f(&mut config);
    let cp = ControlPlane::start(config.clone())
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    TestEnv {
        cp,
        admin: Principal::system(),
        config,
        db,
    }
}

/// Creates a user and returns their principal.
pub async fn person(cp: &ControlPlane, username: &str, role: Role, teams: &[&str]) -> Principal {
    let u = cp
        .create_user(
            &Principal::system(),
            NewUser {
                username: username.into(),
                password: "correct horse battery".into(),
                email: Some(format!("{username}@example.com")),
                display_name: None,
                role,
                teams: teams.iter().map(|s| s.to_string()).collect(),
                groups: vec!["staff".into()],
            },
        )
        .await
        .unwrap_or_else(|e| panic!("create user: {e}"));
    cp.principal_for_user(&u).expect("principal")
}

/// Creates a token and returns its secret.
pub async fn token(cp: &ControlPlane, scopes: &[Scope], apps: &[&str], teams: &[&str]) -> String {
    cp.create_token(
        &Principal::system(),
        NewToken {
            name: "test".into(),
            scopes: scopes.to_vec(),
            apps: apps.iter().map(|s| s.to_string()).collect(),
            teams: teams.iter().map(|s| s.to_string()).collect(),
            expires_at: None,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("create token: {e}"))
    .secret
}

/// A minimal intent.
pub fn intent(name: &str, team: &str, domain: &str) -> String {
    format!(
        "apiVersion: paved.dev/v1\nname: {name}\nowners: [owner@example.com]\nteam: {team}\ndomains: [{domain}]\nupstream: 127.0.0.1:9000\n"
    )
}

/// Serves the control plane's router on 127.0.0.1:0; returns its base URL.
pub async fn serve(cp: &ControlPlane) -> String {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = cp.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// Runs the named async test functions (taking a [`Backend`]) on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            }
        )*
    };
}

/// An HTTP client that does not follow redirects: tests look at every hop of a sign-in.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The value of the cookie `name` that a response sets.
pub fn cookie_value(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The value of the hidden form field `name` of an HTML page.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    Some(html[start..].split('"').next()?.replace("&amp;", "&"))
}

/// The hidden fields of the built-in provider's login form (the authorization request and its
/// `csrf` token), to post back with a username and password as a browser does.
pub fn login_form_fields(html: &str) -> Vec<(String, String)> {
    [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "csrf",
    ]
    .iter()
    .map(|k| (k.to_string(), hidden(html, k).unwrap_or_default()))
    .collect()
}

/// The query parameter `key` of an absolute URL.
pub fn query_param(url: &str, key: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}
