//! The gateway benchmark: one upstream, and side by side in one run the gateway with no
//! filter, with one no-op SDK plugin, and with the full chain of built-in filters (when they
//! are built in), plus nginx (from Debian) proxying the same upstream as an outside reference.
//! Reports requests/s, p50 and p99, and ratios to the no-filter run, as a Markdown table.
//!
//! Run it with `scripts/bench.sh gateway` (installs wrk and nginx, builds in release mode).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
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
const CHAIN: &[(&str, &str)] = &[
    ("waf", r#"{"mode": "block", "paranoia": 1}"#),
    (
        "ratelimit",
        r#"{"rules": [{"key": "ip", "rate_per_second": 1000000, "burst": 1000000}]}"#,
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

fn start_nginx(upstream: SocketAddr, dir: &PathBuf) -> anyhow::Result<(Child, u16)> {
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

fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let shape = LoadShape {
        connections: 32,
        threads: 1,
        duration: Duration::from_secs(seconds),
    };
    let warmup = LoadShape {
        duration: Duration::from_secs(2),
        ..shape
    };
    let upstream = start_static_upstream("ok");
    let (chain, chain_names) = chain_route();
    let config = CONFIG.replace("{chain}", &chain);
    // One worker thread: the machine has two cores, and wrk needs the other.
    let gateway = start_gateway_with_threads(&config, upstream, 1);
    let mut runs: Vec<(String, LoadResult)> = Vec::new();
    let mut measure = |label: &str, url: String| -> anyhow::Result<()> {
        eprintln!(
            "bench: {label}: warming up, then {seconds} s at {} connections",
            shape.connections
        );
        run_wrk(&url, warmup)?;
        let result = run_wrk(&url, shape)?;
        eprintln!(
            "bench: {label}: {:.0} req/s, p50 {:?}, p99 {:?}",
            result.requests_per_second, result.p50, result.p99
        );
        runs.push((label.to_owned(), result));
        Ok(())
    };
    measure(
        "(a) gateway, no filter",
        format!("http://{}/none", gateway.addr),
    )?;
    measure(
        "(b) gateway, no-op SDK plugin",
        format!("http://{}/noop", gateway.addr),
    )?;
    if !chain_names.is_empty() {
        measure(
            &format!("(c) gateway, chain: {}", chain_names.join(" → ")),
            format!("http://{}/chain", gateway.addr),
        )?;
    }
    drop(gateway);
    let dir = std::env::temp_dir().join(format!("paved-bench-nginx-{}", std::process::id()));
    match start_nginx(upstream, &dir) {
        Ok((mut nginx, port)) => {
            let result = measure(
                "nginx 1 worker (reference)",
                format!("http://127.0.0.1:{port}/"),
            );
            let _ = nginx.kill();
            let _ = nginx.wait();
            result?;
        }
        Err(error) => eprintln!("bench: nginx reference skipped: {error:#}"),
    }

    let baseline = runs[0].1;
    let mut table = String::from(
        "| run | requests/s | p50 | p99 | vs (a) throughput | errors |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for (label, result) in &runs {
        let _ = writeln!(
            table,
            "| {label} | {:.0} | {:.2} ms | {:.2} ms | {:.1}% | {} |",
            result.requests_per_second,
            result.p50.as_secs_f64() * 1e3,
            result.p99.as_secs_f64() * 1e3,
            100.0 * result.requests_per_second / baseline.requests_per_second,
            result.errors
        );
    }
    println!("{table}");
    Ok(())
}
