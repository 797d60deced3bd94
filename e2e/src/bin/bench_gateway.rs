//! The gateway benchmark: one upstream, and side by side in one run the gateway with no
//! filter, with one no-op SDK plugin, and with the full default chain of built-in filters
//! (authn → authz → waf → ratelimit → headers → accesslog; requests carry a bearer JWT from
//! an in-process OpenID issuer, [`paved_e2e::issuer`]), plus nginx (from Debian) proxying the
//! same upstream as an outside reference. Reports requests/s, p50 and p99, and ratios to the
//! no-filter run, as a Markdown table.
//!
//! Run it with `scripts/bench.sh gateway` (installs wrk and nginx, builds in release mode).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use paved_e2e::harness::{
    Reply, free_port, send, start_gateway_with_options, start_static_upstream,
};
use paved_e2e::issuer::StaticIssuer;
use paved_e2e::loadgen::{LoadResult, LoadShape, run_wrk_with_headers};
use paved_gateway::GatewayOptions;
use paved_gateway::accesslog::AccessLogOptions;
use paved_model::plugin_config::{
    ACCESSLOG, AUTHN, AUTHZ, AuthnConfig, AuthzConfig, DEFAULT_CHAIN, HEADERS, RATELIMIT, WAF,
};

const CONFIG: &str = r#"
listeners: [{address: "{listen}"}]
admin: {address: "{admin}"}
clusters:
  - {name: app, endpoints: ["{upstream}"]}
  - {name: {idp_cluster}, endpoints: ["{idp}"]}
routes:
  - {host: "*", path_prefix: /none, cluster: app}
  - host: "*"
    path_prefix: /noop
    cluster: app
    plugins: [{name: noop, builtin: noop}]
{chain}
"#;

/// The cluster authn reaches the issuer through (the name the compiler gives it).
const IDP_CLUSTER: &str = "paved-idp";
/// The gateway's OAuth client id in authn's configuration: the `aud` of the bench's token.
const GATEWAY_CLIENT: &str = "paved-gateway";
/// The service the benchmark's requests come from: the token's client id, which authz admits.
const BENCH_CLIENT: &str = "bench-automation";

/// The default chain (`DEFAULT_CHAIN`, in its order) with the configurations (c) runs it with:
/// authn verifies bearer tokens from `issuer`, authz admits the service [`BENCH_CLIENT`], and
/// the rate limit is high enough never to deny (the benchmark measures its cost, not its
/// effect).
fn chain_filters(issuer: &StaticIssuer) -> anyhow::Result<Vec<(&'static str, String)>> {
    let authn = AuthnConfig {
        app: "bench".into(),
        issuer: issuer.issuer.clone(),
        idp_cluster: IDP_CLUSTER.into(),
        client_id: GATEWAY_CLIENT.into(),
        ..AuthnConfig::default()
    };
    let authz = AuthzConfig {
        app: "bench".into(),
        clients: vec![BENCH_CLIENT.into()],
        ..AuthzConfig::default()
    };
    let filters = vec![
        (AUTHN, serde_json::to_string(&authn)?),
        (AUTHZ, serde_json::to_string(&authz)?),
        (WAF, r#"{"mode": "block", "paranoia": 1}"#.to_owned()),
        (
            RATELIMIT,
            r#"{"app": "bench", "rules": [{"name": "per-ip", "key": "ip", "limit": 1000000, "window_secs": 1, "burst": 1000000}]}"#
                .to_owned(),
        ),
        (HEADERS, "{}".to_owned()),
        (ACCESSLOG, "{}".to_owned()),
    ];
    let names: Vec<&str> = filters.iter().map(|(name, _)| *name).collect();
    ensure!(
        names == DEFAULT_CHAIN,
        "the benchmark's chain {names:?} is not the default chain {DEFAULT_CHAIN:?}"
    );
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| paved_builtin_plugins::get(name).is_none())
        .collect();
    ensure!(
        missing.is_empty(),
        "(c) needs the whole default chain built in; missing: {missing:?}"
    );
    Ok(filters)
}

/// A route under `path` with these filters, each configured as YAML single-quoted JSON.
fn chain_route(path: &str, filters: &[(&str, String)]) -> String {
    let mut route =
        format!("  - host: \"*\"\n    path_prefix: {path}\n    cluster: app\n    plugins:\n");
    for (name, config) in filters {
        let config = config.replace('\'', "''");
        let _ = writeln!(
            route,
            "      - {{name: {name}, builtin: {name}, config: '{config}'}}"
        );
    }
    route
}

/// The chain without its `accesslog` filter.
fn without_accesslog(filters: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    filters
        .iter()
        .filter(|(name, _)| *name != "accesslog")
        .cloned()
        .collect()
}

/// Before (c) is measured: it must answer 200 (the upstream's `ok`) to `token`, and 401 to
/// no token and to a token signed by another key under the issuer's `kid`, so that the numbers
/// are those of a chain that verifies and admits, never of one that denies.
async fn check_chain(addr: SocketAddr, token: &str, forged: &str) -> anyhow::Result<()> {
    let summary = |reply: &Reply| {
        let body = String::from_utf8_lossy(&reply.body);
        format!(
            "{} {}",
            reply.status,
            body.chars().take(300).collect::<String>()
        )
    };
    let bearer = format!("Bearer {token}");
    // The first bearer request waits for authn to fetch discovery and JWKS (a 503 after
    // `max_wait_ms` if that takes too long); a slow start is given a few more tries.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = send(addr, "GET", "/chain", &[("authorization", &bearer)], b"").await;
        match reply.status {
            200 if reply.body == b"ok" => break,
            503 if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            _ => bail!(
                "(c) refused the benchmark's valid token (answered {}); not measuring a chain that denies",
                summary(&reply)
            ),
        }
    }
    let reply = send(addr, "GET", "/chain", &[], b"").await;
    ensure!(
        reply.status == 401,
        "(c) without a token answered {}, not 401: authn is not enforcing",
        summary(&reply)
    );
    let forged = format!("Bearer {forged}");
    let reply = send(addr, "GET", "/chain", &[("authorization", &forged)], b"").await;
    ensure!(
        reply.status == 401,
        "(c) with a token signed by another key answered {}, not 401: authn is not verifying",
        summary(&reply)
    );
    Ok(())
}

/// One thing measured: its label, URL and the headers of every request.
struct Target {
    label: String,
    url: String,
    headers: Vec<(&'static str, String)>,
}

/// The nginx master process, stopped with its workers when dropped (on every exit path,
/// errors included).
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not `Child::kill` (SIGKILL): killing the master alone leaves its worker
        // running, holding the port and every descriptor it inherited (such as the lock of a
        // `flock` the benchmark was started under) until someone kills it by hand.
        let stopped = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .is_ok_and(|status| status.success());
        if stopped {
            for _ in 0..50 {
                if matches!(self.0.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_nginx(upstream: SocketAddr, dir: &Path) -> anyhow::Result<(Nginx, u16)> {
    let port = free_port();
    std::fs::create_dir_all(dir.join("logs"))?;
    let conf = format!(
        "worker_processes 1;\ndaemon off;\nerror_log {dir}/logs/error.log;\npid {dir}/nginx.pid;\nevents {{ worker_connections 1024; }}\nhttp {{\n  access_log off;\n  upstream app {{ server {upstream}; keepalive 64; }}\n  server {{\n    listen 127.0.0.1:{port};\n    location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n  }}\n}}\n",
        dir = dir.display()
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf)?;
    let child = Command::new("nginx")
        .args([
            "-p",
            &dir.display().to_string(),
            "-c",
            &path.display().to_string(),
        ])
        .spawn()
        .context("starting nginx (apt-get install nginx-light; scripts/bench.sh installs it)")?;
    let nginx = Nginx(child);
    std::thread::sleep(Duration::from_millis(500));
    Ok((nginx, port))
}

fn median(mut values: Vec<LoadResult>) -> LoadResult {
    values.sort_by(|a, b| a.requests_per_second.total_cmp(&b.requests_per_second));
    values[values.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let rounds: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let shape = LoadShape {
        connections: 32,
        threads: 1,
        duration: Duration::from_secs(seconds),
    };
    let warmup = LoadShape {
        duration: Duration::from_secs(1),
        ..shape
    };
    let upstream = start_static_upstream("ok");
    let issuer = StaticIssuer::start().context("starting the static OpenID issuer")?;
    let filters = chain_filters(&issuer)?;
    let config = CONFIG
        .replace(
            "{chain}",
            &(chain_route("/chain", &filters)
                + &chain_route("/unlogged", &without_accesslog(&filters))),
        )
        .replace("{idp_cluster}", IDP_CLUSTER)
        .replace("{idp}", &issuer.addr.to_string());
    // One token for the whole run, as an API client reuses its access token: authn verifies it
    // once and then finds it in its cache of verified tokens. It outlives the longest run these
    // arguments make (5 targets, warm-up included) by an hour.
    let planned = Duration::from_secs((seconds + 2) * 5 * rounds as u64);
    let ttl = planned + Duration::from_secs(3600);
    let token = issuer.client_token(BENCH_CLIENT, GATEWAY_CLIENT, ttl);
    // The same claims under the issuer's `kid`, signed by a key the issuer never published.
    let forged = paved_identity::jwt::sign(
        &paved_identity::assertion::generate_key(&mut paved_identity::OsRng),
        issuer.kid(),
        &issuer.client_claims(BENCH_CLIENT, GATEWAY_CLIENT, ttl),
    );
    // One worker thread: the machine has two cores, and wrk needs the other. The access log
    // is written to a file, synced before each response as in production (the chain's
    // `accesslog` pays for its durability here; routes without it do not wait).
    let log_dir = std::env::temp_dir().join(format!("paved-bench-log-{}", std::process::id()));
    let options = GatewayOptions {
        threads: 1,
        access_log: Some(AccessLogOptions {
            path: log_dir.join("access.log"),
            max_bytes: 64 << 20,
            keep: 1,
        }),
        ..GatewayOptions::default()
    };
    let gateway = start_gateway_with_options(&config, upstream, options);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(check_chain(gateway.addr, &token, &forged))?;
    eprintln!(
        "bench: (c) admits the benchmark's token, refuses none and a forged one; JWKS fetched {} time(s)",
        issuer.jwks_fetches()
    );
    let names: Vec<&str> = filters.iter().map(|(name, _)| *name).collect();
    let mut targets = vec![
        Target {
            label: "(a) gateway, no filter".to_owned(),
            url: format!("http://{}/none", gateway.addr),
            headers: Vec::new(),
        },
        Target {
            label: "(b) gateway, no-op SDK plugin".to_owned(),
            url: format!("http://{}/noop", gateway.addr),
            headers: Vec::new(),
        },
        Target {
            label: format!("(c) gateway, chain: {}", names.join(" → ")),
            url: format!("http://{}/chain", gateway.addr),
            headers: vec![("authorization", format!("Bearer {token}"))],
        },
        // What the access log's durability costs: the same chain without `accesslog`.
        Target {
            label: "(c′) the same chain without accesslog".to_owned(),
            url: format!("http://{}/unlogged", gateway.addr),
            headers: vec![("authorization", format!("Bearer {token}"))],
        },
    ];
    let dir = std::env::temp_dir().join(format!("paved-bench-nginx-{}", std::process::id()));
    let nginx = match start_nginx(upstream, &dir) {
        Ok((nginx, port)) => {
            targets.push(Target {
                label: "nginx, 1 worker (reference)".to_owned(),
                url: format!("http://127.0.0.1:{port}/"),
                headers: Vec::new(),
            });
            Some(nginx)
        }
        Err(error) => {
            eprintln!("bench: nginx reference skipped: {error:#}");
            None
        }
    };
    // Rounds alternate between the targets so that noise from the rest of the machine falls
    // on all of them alike; the median round of each is reported.
    let mut results: Vec<Vec<LoadResult>> = vec![Vec::new(); targets.len()];
    for round in 1..=rounds {
        for (i, target) in targets.iter().enumerate() {
            let headers: Vec<(&str, &str)> = target
                .headers
                .iter()
                .map(|(name, value)| (*name, value.as_str()))
                .collect();
            run_wrk_with_headers(&target.url, warmup, &headers)?;
            let result = run_wrk_with_headers(&target.url, shape, &headers)?;
            let label = &target.label;
            eprintln!(
                "bench: round {round}/{rounds} {label}: {:.0} req/s, p50 {:?}, p99 {:?}",
                result.requests_per_second, result.p50, result.p99
            );
            // A target that answers refusals is not measuring the path its label names
            // (for (c): a token that stopped being accepted); fail rather than report it.
            ensure!(
                result.non_2xx == 0,
                "{label} answered {} responses other than 2xx/3xx in round {round}; not reporting it",
                result.non_2xx
            );
            results[i].push(result);
        }
    }
    drop(nginx);
    drop(gateway);
    drop(issuer);
    std::fs::remove_dir_all(&log_dir).ok();

    let medians: Vec<LoadResult> = results.into_iter().map(median).collect();
    let baseline = medians[0];
    let mut table = String::from(
        "| run | requests/s | p50 | p99 | throughput vs (a) | p99 vs (a) | errors |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (target, result) in targets.iter().zip(&medians) {
        let _ = writeln!(
            table,
            "| {} | {:.0} | {:.2} ms | {:.2} ms | {:.1}% | {:.2}x | {} |",
            target.label,
            result.requests_per_second,
            result.p50.as_secs_f64() * 1e3,
            result.p99.as_secs_f64() * 1e3,
            100.0 * result.requests_per_second / baseline.requests_per_second,
            result.p99.as_secs_f64() / baseline.p99.as_secs_f64(),
            result.errors
        );
    }
    println!("{table}");
    println!(
        "{rounds} alternating rounds of {seconds} s per target after a 1 s warm-up, 32 connections, wrk with 1 thread, gateway with 1 worker thread; medians by throughput. (c) sends one ES256 bearer token of a service client, issued by an in-process OpenID issuer (verified once, then from authn's cache)."
    );
    Ok(())
}
