//! The gateway benchmark: one upstream, and side by side in one run the gateway with no
//! filter, with one no-op SDK plugin, and with the full chain of built-in filters (when they
//! are built in), plus nginx (from Debian) proxying the same upstream as an outside reference.
//! Reports requests/s, p50 and p99, and ratios to the no-filter run, as a Markdown table.
//!
//! Run it with `scripts/bench.sh gateway` (installs wrk and nginx, builds in release mode).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::Context as _;
use paved_e2e::harness::{free_port, start_gateway_with_threads, start_static_upstream};
use paved_e2e::loadgen::{LoadResult, LoadShape, run_wrk};

const CONFIG: &str = r#"
listeners: [{address: "{listen}"}]
admin: {address: "{admin}"}
clusters: [{name: app, endpoints: ["{upstream}"]}]
routes:
  - {host: "*", path_prefix: /none, cluster: app}
  - host: "*"
    path_prefix: /noop
    cluster: app
    plugins: [{name: noop, builtin: noop}]
{chain}
"#;

/// The filters of the default chain that run without an identity provider, in chain order.
/// The rate limit is high enough never to deny: the benchmark measures its cost, not its effect.
const CHAIN: &[(&str, &str)] = &[
    ("waf", r#"{"mode": "block", "paranoia": 1}"#),
    (
        "ratelimit",
        r#"{"app": "bench", "rules": [{"name": "per-ip", "key": "ip", "limit": 1000000, "window_secs": 1, "burst": 1000000}]}"#,
    ),
    ("headers", "{}"),
    ("accesslog", "{}"),
];

fn chain_route() -> (String, Vec<&'static str>) {
    let available: Vec<_> = CHAIN
        .iter()
        .filter(|(name, _)| paved_builtin_plugins::get(name).is_some())
        .collect();
    if available.is_empty() {
        return (String::new(), Vec::new());
    }
    let mut route =
        String::from("  - host: \"*\"\n    path_prefix: /chain\n    cluster: app\n    plugins:\n");
    for (name, config) in &available {
        let _ = writeln!(
            route,
            "      - {{name: {name}, builtin: {name}, config: '{config}'}}"
        );
    }
    (route, available.iter().map(|(name, _)| *name).collect())
}

fn start_nginx(upstream: SocketAddr, dir: &Path) -> anyhow::Result<(Child, u16)> {
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
    std::thread::sleep(Duration::from_millis(500));
    Ok((child, port))
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
    let (chain, chain_names) = chain_route();
    let config = CONFIG.replace("{chain}", &chain);
    // One worker thread: the machine has two cores, and wrk needs the other.
    let gateway = start_gateway_with_threads(&config, upstream, 1);
    let mut targets = vec![
        (
            "(a) gateway, no filter".to_owned(),
            format!("http://{}/none", gateway.addr),
        ),
        (
            "(b) gateway, no-op SDK plugin".to_owned(),
            format!("http://{}/noop", gateway.addr),
        ),
    ];
    if !chain_names.is_empty() {
        targets.push((
            format!("(c) gateway, chain: {}", chain_names.join(" → ")),
            format!("http://{}/chain", gateway.addr),
        ));
    }
    let dir = std::env::temp_dir().join(format!("paved-bench-nginx-{}", std::process::id()));
    let nginx = match start_nginx(upstream, &dir) {
        Ok((nginx, port)) => {
            targets.push((
                "nginx, 1 worker (reference)".to_owned(),
                format!("http://127.0.0.1:{port}/"),
            ));
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
        for (i, (label, url)) in targets.iter().enumerate() {
            run_wrk(url, warmup)?;
            let result = run_wrk(url, shape)?;
            eprintln!(
                "bench: round {round}/{rounds} {label}: {:.0} req/s, p50 {:?}, p99 {:?}",
                result.requests_per_second, result.p50, result.p99
            );
            results[i].push(result);
        }
    }
    if let Some(mut nginx) = nginx {
        let _ = nginx.kill();
        let _ = nginx.wait();
    }
    drop(gateway);

    let medians: Vec<LoadResult> = results.into_iter().map(median).collect();
    let baseline = medians[0];
    let mut table = String::from(
        "| run | requests/s | p50 | p99 | throughput vs (a) | p99 vs (a) | errors |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for ((label, _), result) in targets.iter().zip(&medians) {
        let _ = writeln!(
            table,
            "| {label} | {:.0} | {:.2} ms | {:.2} ms | {:.1}% | {:.2}x | {} |",
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
        "{rounds} alternating rounds of {seconds} s per target after a 1 s warm-up, 32 connections, wrk with 1 thread, gateway with 1 worker thread; medians by throughput."
    );
    Ok(())
}
