//! Services the gateway itself answers for plugins' `proxy_http_call`s, without a network hop:
//! the cluster-wide rate limiter (`paved-ratelimit`), which counts in Redis so that every
//! gateway of a cluster shares one budget per key. Other clusters go to their endpoints.
//!
//! When Redis is away the call fails quickly and the ratelimit plugin falls back to its local
//! limit (counting the fallback in a metric): rate limiting degrades, requests still flow.

use std::sync::Arc;
use std::time::Duration;

use paved_wasm_host::http_call::{
    DispatchFuture, HttpCallDispatcher, HttpCallError, HttpCallRequest, HttpCallResponse,
};
use paved_wasm_host::{ClusterDispatcher, HeaderMap};
use serde_json::json;

/// The cluster name plugins use for the cluster-wide rate limiter.
pub const RATELIMIT_CLUSTER: &str = "paved-ratelimit";

/// GCRA in one atomic step, on Redis' clock so that gateways agree on "now". The stored value
/// is the theoretical arrival time (ms); it expires when it no longer matters.
/// ARGV: emission interval (ms per request), burst tolerance (ms), cost.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, 0, math.ceil(allow_at - now), math.ceil(tat - now)}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return {1, math.floor((now + tolerance - new_tat) / interval), 0, math.ceil(new_tat - now)}
";

/// A rate-limit decision request, as the plugin sends it.
#[derive(Debug, serde::Deserialize)]
struct Ask {
    key: String,
    rate_per_second: f64,
    burst: u32,
    #[serde(default = "one")]
    cost: u32,
}

fn one() -> u32 {
    1
}

/// How long after a failed connection attempt the next one may be made: while Redis is away,
/// calls fail at once instead of each waiting for a connection timeout.
const RECONNECT_INTERVAL: Duration = Duration::from_secs(1);

/// The cluster-wide limiter over Redis.
#[derive(Clone)]
pub struct RedisRateLimiter {
    inner: Arc<Limiter>,
}

struct Limiter {
    client: redis::Client,
    /// The connection, once made; it reconnects by itself after that.
    manager: arc_swap::ArcSwapOption<redis::aio::ConnectionManager>,
    /// When the last attempt to make the first connection failed.
    failed_at: tokio::sync::Mutex<Option<std::time::Instant>>,
    script: redis::Script,
}

fn manager_config() -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(200)))
        .set_response_timeout(Some(Duration::from_millis(200)))
        .set_number_of_retries(1)
}

impl RedisRateLimiter {
    /// Connects (and keeps reconnecting in the background) to `url`, e.g. `redis://127.0.0.1:6379`.
    pub async fn connect(url: &str) -> Result<Self, redis::RedisError> {
        let limiter = Self::lazy(url)?;
        let manager = redis::aio::ConnectionManager::new_with_config(
            limiter.inner.client.clone(),
            manager_config(),
        )
        .await?;
        limiter.inner.manager.store(Some(Arc::new(manager)));
        Ok(limiter)
    }

    /// A limiter that connects on first use (and again at most every [`RECONNECT_INTERVAL`]
    /// until it succeeds): for a gateway started while Redis is away, which must count in
    /// Redis once it comes. Until then every check fails and the plugins count locally.
    pub fn lazy(url: &str) -> Result<Self, redis::RedisError> {
        Ok(Self {
            inner: Arc::new(Limiter {
                client: redis::Client::open(url)?,
                manager: arc_swap::ArcSwapOption::empty(),
                failed_at: tokio::sync::Mutex::new(None),
                script: redis::Script::new(GCRA),
            }),
        })
    }

    /// The connection, making the first one if it is time to try.
    async fn manager(&self) -> Result<redis::aio::ConnectionManager, String> {
        if let Some(manager) = self.inner.manager.load_full() {
            return Ok((*manager).clone());
        }
        let mut failed_at = self.inner.failed_at.lock().await;
        // Another call may have connected while this one waited for the lock.
        if let Some(manager) = self.inner.manager.load_full() {
            return Ok((*manager).clone());
        }
        if failed_at.is_some_and(|at| at.elapsed() < RECONNECT_INTERVAL) {
            return Err("Redis unreachable (next connection attempt soon)".into());
        }
        match redis::aio::ConnectionManager::new_with_config(
            self.inner.client.clone(),
            manager_config(),
        )
        .await
        {
            Ok(manager) => {
                tracing::info!("connected to Redis; cluster-wide rate limits on");
                self.inner.manager.store(Some(Arc::new(manager.clone())));
                *failed_at = None;
                Ok(manager)
            }
            Err(error) => {
                *failed_at = Some(std::time::Instant::now());
                Err(error.to_string())
            }
        }
    }

    /// Decides one request: `(allowed, remaining, retry_after_ms, reset_ms)`.
    pub async fn check(
        &self,
        key: &str,
        rate_per_second: f64,
        burst: u32,
        cost: u32,
    ) -> Result<[i64; 4], String> {
        if !(rate_per_second.is_finite() && rate_per_second > 0.0)
            || key.is_empty()
            || key.len() > 512
        {
            return Err("invalid rate-limit request".into());
        }
        let interval_ms = 1000.0 / rate_per_second;
        let tolerance_ms = interval_ms * f64::from(burst.max(1));
        let mut connection = self.manager().await?;
        let reply: Vec<i64> = self
            .inner
            .script
            .key(format!("paved:rl:{key}"))
            .arg(interval_ms)
            .arg(tolerance_ms)
            .arg(cost.max(1))
            .invoke_async(&mut connection)
            .await
            .map_err(|e| e.to_string())?;
        reply
            .try_into()
            .map_err(|r: Vec<i64>| format!("unexpected reply of {} values", r.len()))
    }
}

/// The dispatcher plugins get: internal services first, then the configuration's clusters.
pub struct GatewayDispatcher {
    /// The configuration's clusters.
    pub clusters: Arc<ClusterDispatcher>,
    /// The cluster-wide rate limiter, when Redis is configured.
    pub ratelimit: Option<RedisRateLimiter>,
}

impl HttpCallDispatcher for GatewayDispatcher {
    fn has_cluster(&self, name: &str) -> bool {
        (name == RATELIMIT_CLUSTER && self.ratelimit.is_some()) || self.clusters.has_cluster(name)
    }

    fn dispatch(&self, request: HttpCallRequest) -> DispatchFuture {
        match (&self.ratelimit, request.cluster.as_str()) {
            (Some(limiter), RATELIMIT_CLUSTER) => {
                let limiter = limiter.clone();
                Box::pin(async move {
                    let timeout = request.timeout;
                    tokio::time::timeout(timeout, answer(limiter, request))
                        .await
                        .map_err(|_| HttpCallError::Timeout(timeout))?
                })
            }
            _ => self.clusters.dispatch(request),
        }
    }
}

async fn answer(
    limiter: RedisRateLimiter,
    request: HttpCallRequest,
) -> Result<HttpCallResponse, HttpCallError> {
    let respond = |status: u16, body: serde_json::Value| {
        let mut headers = HeaderMap::new();
        headers.add(":status", status.to_string());
        headers.add("content-type", "application/json");
        HttpCallResponse {
            headers,
            body: body.to_string().into_bytes(),
            trailers: HeaderMap::new(),
        }
    };
    if request.headers.get_str(":path") != Some("/v1/ratelimit")
        || request.headers.get_str(":method") != Some("POST")
    {
        return Ok(respond(
            404,
            json!({"error": "POST /v1/ratelimit is the only endpoint"}),
        ));
    }
    let ask: Ask = match serde_json::from_slice(&request.body) {
        Ok(ask) => ask,
        Err(error) => return Ok(respond(400, json!({"error": error.to_string()}))),
    };
    // Redis errors fail the call: the plugin then degrades to its local limit.
    let [allowed, remaining, retry_after_ms, reset_ms] = limiter
        .check(&ask.key, ask.rate_per_second, ask.burst, ask.cost)
        .await
        .map_err(HttpCallError::Exchange)?;
    Ok(respond(
        200,
        json!({
            "allowed": allowed == 1,
            "remaining": remaining.max(0),
            "retry_after_ms": retry_after_ms.max(0),
            "reset_ms": reset_ms.max(0),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REDIS: &str = "redis://127.0.0.1:6379";

    fn call(body: serde_json::Value) -> HttpCallRequest {
        let mut headers = HeaderMap::new();
        headers.add(":method", "POST");
        headers.add(":path", "/v1/ratelimit");
        headers.add(":authority", RATELIMIT_CLUSTER);
        HttpCallRequest {
            cluster: RATELIMIT_CLUSTER.into(),
            headers,
            body: body.to_string().into_bytes(),
            trailers: HeaderMap::new(),
            timeout: Duration::from_millis(500),
        }
    }

    async fn decide(dispatcher: &GatewayDispatcher, key: &str) -> serde_json::Value {
        let reply = dispatcher
            .dispatch(call(
                json!({"key": key, "rate_per_second": 1.0, "burst": 3}),
            ))
            .await
            .expect("redis answers");
        serde_json::from_slice(&reply.body).expect("json")
    }

    #[tokio::test]
    async fn a_burst_is_allowed_then_requests_are_limited_across_gateways() {
        let limiter = RedisRateLimiter::connect(REDIS)
            .await
            .expect("redis on 127.0.0.1:6379");
        let clusters = Arc::new(ClusterDispatcher::new(Default::default(), 1 << 20));
        // Two gateways share the budget through Redis.
        let one = GatewayDispatcher {
            clusters: clusters.clone(),
            ratelimit: Some(limiter.clone()),
        };
        let two = GatewayDispatcher {
            clusters,
            ratelimit: Some(limiter),
        };
        let key = format!(
            "test-{}-{:?}",
            std::process::id(),
            std::time::Instant::now()
        );
        let mut allowed = 0;
        for i in 0..6 {
            let gateway = if i % 2 == 0 { &one } else { &two };
            let decision = decide(gateway, &key).await;
            if decision["allowed"] == true {
                allowed += 1;
            } else {
                assert!(
                    decision["retry_after_ms"].as_i64().expect("number") > 0,
                    "{decision}"
                );
            }
        }
        assert_eq!(
            allowed, 3,
            "exactly the burst passes within the same second"
        );
    }

    #[tokio::test]
    async fn a_missing_redis_fails_the_call_so_plugins_fall_back_quickly() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        // Nothing listens there: connecting fails at once.
        let result = RedisRateLimiter::connect(&format!("redis://127.0.0.1:{port}")).await;
        assert!(result.is_err());
    }

    #[tokio::test]
    async fn malformed_asks_get_a_400_not_a_redis_round_trip() {
        let limiter = RedisRateLimiter::connect(REDIS)
            .await
            .expect("redis on 127.0.0.1:6379");
        let dispatcher = GatewayDispatcher {
            clusters: Arc::new(ClusterDispatcher::new(Default::default(), 1 << 20)),
            ratelimit: Some(limiter),
        };
        let mut request = call(json!({}));
        request.body = b"{not json".to_vec();
        let reply = dispatcher.dispatch(request).await.expect("answered");
        assert_eq!(reply.headers.get_str(":status"), Some("400"));
        assert!(dispatcher.has_cluster(RATELIMIT_CLUSTER));
        assert!(!dispatcher.has_cluster("other"));
    }
}
