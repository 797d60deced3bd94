//! Rate limiting through real gateways with the real `ratelimit` plugin: exact under
//! concurrency with local counters and with the cluster-wide counters in the real Redis
//! (127.0.0.1:6379); degraded to the local limit, with the metric counting it, while Redis
//! cannot be reached; back to Redis once it can.
//!
//! The gateways reach Redis through a relay this test can cut: from the gateway's side a cut
//! relay is a Redis that is down (connections closed, new ones refused), while the shared
//! Redis keeps serving everyone else. Every test counts under an app name of its own, so
//! parallel runs never share a counter.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use paved_e2e::harness::{Reply, free_port, render, send, start_echo_upstream};
use paved_e2e::relay::Relay;
use paved_gateway::{Gateway, GatewayOptions, ShutdownHandle};
use paved_model::snapshot::Snapshot;
use tokio::task::JoinSet;

const REDIS: &str = "127.0.0.1:6379";

fn redis_addr() -> SocketAddr {
    REDIS.parse().expect("the Redis address")
}

/// One route limited by one rule counting all clients together (`key: route`), in a window
/// long enough that nothing refills while a test runs: `limit + burst` requests pass, then
/// none.
const LIMITED: &str = r#"
listeners: [{address: "{listen}"}]
admin: {address: "{admin}"}
clusters: [{name: app, endpoints: ["{upstream}"]}]
routes:
  - host: "*"
    path_prefix: /
    cluster: app
    plugins:
      - name: ratelimit
        builtin: ratelimit
        config:
          app: "{app}"
          route: /
          backend: {backend}
          cluster_timeout_ms: 5000
          max_concurrent_per_ip: 0
          rules: [{name: all, key: route, limit: {limit}, window_secs: 3600, burst: {burst}}]
"#;

/// The exported name of the plugin's degradation counter (plugin metrics carry the
/// `paved_wasm_` prefix on the admin endpoint).
const DEGRADED: &str = "paved_wasm_paved_ratelimit_degraded_total";

/// An app name no other run uses: counters' keys start with it, in Redis too.
fn unique_app(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("rltest-{test}-{}-{nanos}", std::process::id())
}

fn config(app: &str, backend: &str, limit: u32, burst: u32) -> String {
    LIMITED
        .replace("{app}", app)
        .replace("{backend}", backend)
        .replace("{limit}", &limit.to_string())
        .replace("{burst}", &burst.to_string())
}

/// A gateway on its own thread, with a Redis URL (which the harness does not set).
struct Running {
    addr: SocketAddr,
    admin: SocketAddr,
    shutdown: ShutdownHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts a gateway serving `yaml` with `threads` workers, counting in Redis at `redis` when
/// given. Blocking: call it from `spawn_blocking` (it waits for its ports).
fn start(yaml: &str, upstream: SocketAddr, redis: Option<SocketAddr>, threads: usize) -> Running {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let text = render(yaml, addr, admin, upstream);
    let snapshot =
        Snapshot::from_yaml_str(&text, "test.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    let options = GatewayOptions {
        threads,
        redis_url: redis.map(|r| format!("redis://{r}")),
        ..GatewayOptions::default()
    };
    let gateway = Arc::new(Gateway::new(snapshot, options).expect("gateway loads"));
    let shutdown = ShutdownHandle::new();
    let stopper = shutdown.clone();
    let thread = std::thread::spawn(move || {
        gateway.run(stopper.watch()).expect("gateway runs");
    });
    for port in [addr, admin] {
        let mut tries = 0;
        while std::net::TcpStream::connect_timeout(&port, Duration::from_millis(50)).is_err() {
            tries += 1;
            assert!(tries < 400, "nothing listens on {port}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    Running {
        addr,
        admin,
        shutdown,
        thread: Some(thread),
    }
}

async fn start_async(
    yaml: String,
    upstream: SocketAddr,
    redis: Option<SocketAddr>,
    threads: usize,
) -> Running {
    tokio::task::spawn_blocking(move || start(&yaml, upstream, redis, threads))
        .await
        .expect("gateway starts")
}

/// A counter's value on a gateway's admin `/metrics` (0 before it is first defined).
async fn counter(gateway: &Running, name: &str) -> u64 {
    let reply = send(gateway.admin, "GET", "/metrics", &[], b"").await;
    assert_eq!(reply.status, 200);
    let text = String::from_utf8_lossy(&reply.body);
    text.lines()
        .filter_map(|line| line.strip_prefix(name))
        .filter_map(|rest| rest.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

fn is_allowed(reply: &Reply) -> bool {
    match reply.status {
        200 => true,
        429 => {
            let retry: u64 = reply
                .header("retry-after")
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("429 without a Retry-After: {:?}", reply.headers));
            assert!(retry >= 1, "Retry-After at least 1 s: {retry}");
            false
        }
        other => panic!(
            "unexpected status {other}: {}",
            String::from_utf8_lossy(&reply.body)
        ),
    }
}

/// Sends `n` requests one after the other, spread over `gateways` in turn; how many passed.
async fn allowed_in_turn(gateways: &[&Running], n: usize) -> usize {
    let mut allowed = 0;
    for i in 0..n {
        let gateway = gateways[i % gateways.len()];
        if is_allowed(&send(gateway.addr, "GET", &format!("/seq/{i}"), &[], b"").await) {
            allowed += 1;
        }
    }
    allowed
}

/// Sends `n` requests at once, spread over `gateways`, each on its own connection and all
/// released together; how many passed.
async fn allowed_at_once(gateways: &[&Running], n: usize) -> usize {
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let mut clients = JoinSet::new();
    for i in 0..n {
        let addr = gateways[i % gateways.len()].addr;
        let start = start.clone();
        clients.spawn(async move {
            start.wait().await;
            let reply = send(addr, "GET", &format!("/burst/{i}"), &[], b"").await;
            is_allowed(&reply)
        });
    }
    let mut allowed = 0;
    while let Some(result) = clients.join_next().await {
        if result.expect("client finished") {
            allowed += 1;
        }
    }
    allowed
}

/// Sends requests to `gateway` until one is answered from Redis (the degradation counter does
/// not move), so that a connection the relay's cut left broken has been replaced. Returns
/// the degradation counter then.
async fn until_counted_in_redis(gateway: &Running) -> u64 {
    for attempt in 0..100 {
        let before = counter(gateway, DEGRADED).await;
        send(gateway.addr, "GET", &format!("/warm/{attempt}"), &[], b"").await;
        let after = counter(gateway, DEGRADED).await;
        if after == before {
            return after;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the gateway never counted in Redis again");
}

/// Forgets a counter in Redis (directly, not through the relay).
async fn forget_in_redis(app: &str) {
    let client = redis::Client::open(format!("redis://{REDIS}")).expect("redis url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis on 127.0.0.1:6379");
    let key = format!("paved:rl:{app}|all|route:/");
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .expect("DEL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_counters_admit_exactly_limit_plus_burst_to_concurrent_clients() {
    let upstream = start_echo_upstream();
    let app = unique_app("local");
    // Two worker threads: the requests are spread over plugin instances on both.
    let gateway = start_async(config(&app, "local", 10, 5), upstream.addr, None, 2).await;

    let allowed = allowed_at_once(&[&gateway], 64).await;
    assert_eq!(allowed, 15, "64 simultaneous requests, limit 10 + burst 5");

    let later = allowed_at_once(&[&gateway], 16).await;
    assert_eq!(later, 0, "nothing refills within the window");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_counting_in_redis_admit_exactly_limit_plus_burst_together() {
    let upstream = start_echo_upstream();
    let app = unique_app("redis-concurrent");
    let redis: SocketAddr = REDIS.parse().expect("addr");
    let yaml = config(&app, "redis", 10, 5);
    let one = start_async(yaml.clone(), upstream.addr, Some(redis), 2).await;
    let two = start_async(yaml, upstream.addr, Some(redis), 2).await;

    let allowed = allowed_at_once(&[&one, &two], 64).await;
    assert_eq!(
        allowed, 15,
        "64 simultaneous requests over two gateways share limit 10 + burst 5"
    );
    assert_eq!(
        counter(&one, DEGRADED).await + counter(&two, DEGRADED).await,
        0,
        "every request was counted in Redis, none locally"
    );
    forget_in_redis(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_redis_each_gateway_falls_back_to_its_local_limit_and_recovers() {
    let upstream = start_echo_upstream();
    let app = unique_app("redis-outage");
    let mut relay = Relay::start(redis_addr()).await;
    let yaml = config(&app, "redis", 3, 1);
    let one = start_async(yaml.clone(), upstream.addr, Some(relay.addr), 1).await;
    let two = start_async(yaml, upstream.addr, Some(relay.addr), 1).await;

    // Redis reachable: the two gateways share one budget of 4.
    assert_eq!(allowed_in_turn(&[&one, &two], 10).await, 4);
    assert_eq!(counter(&one, DEGRADED).await, 0);

    // Redis away: gateway one decides with its own counters, which have not been used yet
    // (it counted in Redis so far): 4 more pass there although the shared budget is spent,
    // and every request is counted as degraded.
    relay.cut().await;
    let before = counter(&one, DEGRADED).await;
    assert_eq!(
        allowed_in_turn(&[&one], 8).await,
        4,
        "the local limit applies during the outage"
    );
    assert_eq!(
        counter(&one, DEGRADED).await - before,
        8,
        "each request decided locally is counted"
    );

    // Redis back: once the broken connections are replaced, counting is shared again.
    relay.restore().await;
    until_counted_in_redis(&one).await;
    until_counted_in_redis(&two).await;
    // Gateway two's own counters are still fresh: were it counting locally, 4 would pass.
    let degraded_two = counter(&two, DEGRADED).await;
    assert_eq!(
        allowed_in_turn(&[&two], 6).await,
        0,
        "the budget spent in Redis before the outage still holds"
    );
    assert_eq!(counter(&two, DEGRADED).await, degraded_two);

    // A fresh shared budget (the counter forgotten in Redis) is again shared by both.
    forget_in_redis(&app).await;
    let degraded = counter(&one, DEGRADED).await + counter(&two, DEGRADED).await;
    assert_eq!(allowed_in_turn(&[&one, &two], 10).await, 4);
    assert_eq!(
        counter(&one, DEGRADED).await + counter(&two, DEGRADED).await,
        degraded,
        "no request fell back to local counters after the recovery"
    );
    forget_in_redis(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_started_while_redis_is_away_counts_in_redis_once_it_comes() {
    let upstream = start_echo_upstream();
    let app = unique_app("redis-late");
    let mut relay = Relay::cut_from_the_start(redis_addr());
    let yaml = config(&app, "redis", 3, 1);
    let late = start_async(yaml.clone(), upstream.addr, Some(relay.addr), 1).await;

    // No Redis: the local limit, counted as degraded.
    assert_eq!(allowed_in_turn(&[&late], 6).await, 4);
    assert_eq!(counter(&late, DEGRADED).await, 6);

    relay.restore().await;
    until_counted_in_redis(&late).await;
    forget_in_redis(&app).await;
    // Shared with a gateway that reaches Redis directly: one budget of 4 for both.
    let direct = start_async(yaml, upstream.addr, Some(REDIS.parse().expect("addr")), 1).await;
    let degraded = counter(&late, DEGRADED).await;
    assert_eq!(allowed_in_turn(&[&late, &direct], 10).await, 4);
    assert_eq!(counter(&late, DEGRADED).await, degraded);
    assert_eq!(counter(&direct, DEGRADED).await, 0);
    forget_in_redis(&app).await;
}
