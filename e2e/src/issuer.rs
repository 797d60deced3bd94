//! A static OpenID issuer for benchmarks and tests: it serves a discovery document and a JWKS
//! over plain HTTP on 127.0.0.1 and signs tokens with a P-256 key it generates at start
//! (ES256, through `paved-identity`, the code the authn plugin itself verifies with).
//!
//! It is what the `authn` filter needs to verify bearer tokens (the API and automation path):
//! `{issuer}/.well-known/openid-configuration` naming `{issuer}/jwks.json`. It has no users,
//! no sign-in and no token endpoint that works (`/authorize` and `/token` answer 404): tokens
//! are minted in-process with [`StaticIssuer::sign`] or [`StaticIssuer::client_token`]. For
//! the browser flows against a real provider, see [`crate::oidc_provider`].
//!
//! Stopped when dropped. Only loopback ever reaches it; each connection still gets bounded
//! header sizes and a header read timeout.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use paved_identity::assertion::generate_key;
use paved_identity::jwk::{public_jwk_json, thumbprint};
use paved_identity::jwt::{SigningKey, sign};
use serde_json::{Value, json};

/// Path of the discovery document under the issuer (OpenID Connect Discovery 1.0 §4).
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// Path of the JWKS under the issuer.
pub const JWKS_PATH: &str = "/jwks.json";

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Read buffer per connection, and so the largest request head accepted.
const MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;

/// A running static issuer; stopped when dropped.
pub struct StaticIssuer {
    /// The issuer URL, `http://127.0.0.1:<port>`: what authn's `issuer` must say, byte for byte.
    pub issuer: String,
    /// Where it listens: the endpoint of authn's `idp_cluster`.
    pub addr: SocketAddr,
    key: SigningKey,
    kid: String,
    jwks_fetches: Arc<AtomicU64>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for StaticIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The signing key stays out of debug output (`SigningKey` redacts itself too).
        f.debug_struct("StaticIssuer")
            .field("issuer", &self.issuer)
            .field("addr", &self.addr)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Drop for StaticIssuer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl StaticIssuer {
    /// Generates a key and starts serving on a free port of 127.0.0.1, on a thread of its own.
    pub fn start() -> std::io::Result<StaticIssuer> {
        let listener = StdListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let issuer = format!("http://{addr}");
        let key = generate_key(&mut paved_identity::OsRng);
        let kid = thumbprint(&key.public_key());
        let discovery = Bytes::from(discovery_document(&issuer).to_string());
        let jwks =
            Bytes::from(json!({ "keys": [public_jwk_json(&key.public_key(), &kid)] }).to_string());
        let jwks_fetches = Arc::new(AtomicU64::new(0));
        let (shutdown, stopped) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let counter = jwks_fetches.clone();
        let thread = std::thread::Builder::new()
            .name("static-issuer".into())
            .spawn(move || {
                runtime.block_on(serve(listener, discovery, jwks, counter, stopped));
            })?;
        Ok(StaticIssuer {
            issuer,
            addr,
            key,
            kid,
            jwks_fetches,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The `kid` of its key, as published in the JWKS.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// How many times the JWKS was served: whether a verifier really fetched the keys.
    pub fn jwks_fetches(&self) -> u64 {
        self.jwks_fetches.load(Ordering::Relaxed)
    }

    /// Signs `claims` (a JSON object, taken as is: add `iss`, `aud`, `exp` yourself) as an
    /// ES256 compact JWS with this issuer's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        sign(&self.key, &self.kid, claims)
    }

    /// A service's access token, as a client-credentials grant would give it: the claims of
    /// [`StaticIssuer::client_claims`], signed.
    pub fn client_token(&self, client_id: &str, audience: &str, ttl: Duration) -> String {
        self.sign(&self.client_claims(client_id, audience, ttl))
    }

    /// The claims of a service's access token from this issuer: `sub` and `client_id` both
    /// `client_id`, `aud` the given audience, issued now, valid for `ttl`, a random `jti`.
    pub fn client_claims(&self, client_id: &str, audience: &str, ttl: Duration) -> Value {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let jti = paved_identity::random::token(&mut paved_identity::OsRng, 16);
        json!({
            "iss": self.issuer,
            "sub": client_id,
            "client_id": client_id,
            "aud": audience,
            "iat": now,
            "exp": now.saturating_add(ttl.as_secs()),
            "jti": jti,
        })
    }
}

/// The discovery document: the endpoints authn requires, all under the issuer. Only the
/// JWKS answers; a sign-in attempt gets a 404 from `/authorize`.
fn discovery_document(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
    })
}

async fn serve(
    listener: StdListener,
    discovery: Bytes,
    jwks: Bytes,
    jwks_fetches: Arc<AtomicU64>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let (discovery, jwks, jwks_fetches) =
            (discovery.clone(), jwks.clone(), jwks_fetches.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let answer = match (req.method(), req.uri().path()) {
                    (&hyper::Method::GET, DISCOVERY_PATH) => Some(discovery.clone()),
                    (&hyper::Method::GET, JWKS_PATH) => {
                        jwks_fetches.fetch_add(1, Ordering::Relaxed);
                        Some(jwks.clone())
                    }
                    _ => None,
                };
                async move {
                    let response = match answer {
                        Some(body) => hyper::Response::builder()
                            .status(200)
                            .header("content-type", "application/json")
                            .body(Full::new(body)),
                        None => hyper::Response::builder()
                            .status(404)
                            .body(Full::new(Bytes::from_static(b"not found"))),
                    };
                    response.map_err(|e| e.to_string())
                }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_REQUEST_HEAD_BYTES)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::get;
    use paved_identity::KeySet;
    use paved_identity::discovery::ProviderMetadata;

    #[tokio::test]
    async fn tokens_it_signs_verify_against_the_keys_its_discovery_names() {
        let issuer = StaticIssuer::start().expect("issuer starts");
        let reply = get(issuer.addr, DISCOVERY_PATH).await;
        assert_eq!(reply.status, 200);
        let meta = ProviderMetadata::parse(&reply.body, &issuer.issuer).expect("valid discovery");
        let jwks_path = meta
            .jwks_uri
            .strip_prefix(&issuer.issuer)
            .expect("JWKS under the issuer");
        let reply = get(issuer.addr, jwks_path).await;
        assert_eq!(reply.status, 200);
        assert_eq!(issuer.jwks_fetches(), 1);
        let keys = KeySet::parse(&reply.body).expect("valid JWKS").keys;

        let token = issuer.client_token("robot", "api", Duration::from_secs(60));
        let claims = paved_identity::jwt::decode(&token)
            .expect("well-formed")
            .verify(&keys)
            .expect("signed by the published key");
        assert_eq!(claims.iss.as_deref(), Some(issuer.issuer.as_str()));
        assert_eq!(claims.sub.as_deref(), Some("robot"));
        assert_eq!(claims.all["client_id"], "robot");
        assert_eq!(claims.aud, ["api"]);
        let (iat, exp) = (claims.iat.expect("iat"), claims.exp.expect("exp"));
        assert_eq!(exp - iat, 60);

        // Another issuer's key under this kid must not verify: the keys really are its own.
        let other = StaticIssuer::start().expect("second issuer starts");
        let forged = sign(&other.key, issuer.kid(), &json!({"iss": issuer.issuer}));
        let forged = paved_identity::jwt::decode(&forged).expect("well-formed");
        assert!(forged.verify(&keys).is_err());

        assert_eq!(get(issuer.addr, "/token").await.status, 404);
    }
}
