//! The apply-to-enforce benchmark: how long from sending `applyIntent` to the control plane's
//! GraphQL API until a running gateway's responses show the change. It starts what `paved up`
//! starts (control plane on SQLite in a temporary directory, the demo upstream, a gateway
//! watching the control plane) in this process, onboards an app `bench` with a public route,
//! then changes one response header of that app (`headers.set.X-Bench-Revision`) in each of N
//! applies, polling the gateway every 2 ms until the new value is served.
//!
//! Run it with `scripts/bench.sh apply [applies] [pause-ms]` (default: 100 applies back to
//! back). Reports p50/p90/p99/max of the time to enforcement and of the mutation's own round
//! trip, how many applies were enforced within one second, and how many mutations failed (each
//! is printed with its error), as Markdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use paved::up::{UpArgs, gateway_options, start_platform};
use paved_e2e::harness::{free_port, send};
use paved_gateway::{Gateway, ShutdownHandle, distribution};

/// How often the gateway is asked whether the change is in force.
const POLL: Duration = Duration::from_millis(2);
/// An apply not enforced within this long is counted as failed (and the run goes on).
const GIVE_UP: Duration = Duration::from_secs(10);
/// The bar of the issue: enforced within one second.
const BAR: Duration = Duration::from_secs(1);

/// The benchmark app: public (no sign-in) so that a plain request shows the headers, and no
/// rate limit so that polling every 2 ms is never answered 429.
fn intent(upstream: SocketAddr, revision: usize) -> String {
    format!(
        "apiVersion: paved.dev/v1\n\
         name: bench\n\
         owners: [demo@paved.localhost]\n\
         team: platform\n\
         domains: [bench.localhost]\n\
         upstream: {upstream}\n\
         routes:\n  - path: /\n    public: true\n\
         rateLimits: []\n\
         headers:\n  set: {{X-Bench-Revision: \"{revision}\"}}\n"
    )
}

/// One apply: the time until the gateway served the change (`None`: not within [`GIVE_UP`],
/// or the mutation failed), the mutation's round trip, and the mutation's errors if it failed.
struct Sample {
    enforced: Option<Duration>,
    mutation: Duration,
    failed: Option<String>,
}

async fn apply_and_wait(
    control_plane: &str,
    token: &str,
    listen: SocketAddr,
    upstream: SocketAddr,
    revision: usize,
) -> anyhow::Result<Sample> {
    let host = format!("bench.localhost:{}", listen.port());
    let expected = revision.to_string();
    let body = serde_json::json!({
        "query": "mutation($yaml: String!) { applyIntent(yaml: $yaml) { created snapshotVersion } }",
        "variables": { "yaml": intent(upstream, revision) },
    });
    let sent = Instant::now();
    let reply = paved::apply_cmd::post_graphql(control_plane, token, body).await?;
    let mutation = sent.elapsed();
    if reply["data"]["applyIntent"]["created"] != true {
        // Reported and counted, not fatal: the run shows how often applies fail.
        return Ok(Sample {
            enforced: None,
            mutation,
            failed: Some(reply["errors"].to_string()),
        });
    }
    loop {
        let response = send(listen, "GET", "/", &[("host", host.as_str())], b"").await;
        if response.header("x-bench-revision") == Some(expected.as_str()) {
            return Ok(Sample {
                enforced: Some(sent.elapsed()),
                mutation,
                failed: None,
            });
        }
        if sent.elapsed() > GIVE_UP {
            return Ok(Sample {
                enforced: None,
                mutation,
                failed: None,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let applies: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().context("the argument is the number of applies")?,
        None => 100,
    };
    // Applies go back to back by default; a pause lets the gateway's report and next poll
    // land before the next apply.
    let pause = match std::env::args().nth(2) {
        Some(ms) => {
            Duration::from_millis(ms.parse().context("the second argument is a pause in ms")?)
        }
        None => Duration::ZERO,
    };
    let data_dir = std::env::temp_dir().join(format!("paved-bench-apply-{}", std::process::id()));
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let addr = || SocketAddr::from(([127, 0, 0, 1], free_port()));
    let args = UpArgs {
        data_dir: data_dir.clone(),
        listen: addr(),
        control_plane: addr(),
        admin: addr(),
        demo_upstream: addr(),
    };
    let mut platform = start_platform(&args, &data_dir).await?;
    let snapshot = tokio::time::timeout(
        Duration::from_secs(30),
        distribution::initial_snapshot(&platform.gateway_client),
    )
    .await
    .context("the gateway got no snapshot within 30 s")?;
    let gateway = Arc::new(Gateway::new(snapshot, gateway_options(&data_dir))?);
    gateway.background().spawn(distribution::watch(
        gateway.clone(),
        platform.gateway_client.clone(),
    ));
    let shutdown = ShutdownHandle::new();
    let (runner, stopper) = (gateway.clone(), shutdown.clone());
    let thread = std::thread::spawn(move || runner.run(stopper.watch()));
    let started = Instant::now();
    while tokio::net::TcpStream::connect(args.listen).await.is_err() {
        if started.elapsed() > Duration::from_secs(10) {
            bail!("the gateway does not listen on {}", args.listen);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let control_plane = args.control_plane.to_string();
    let token = platform.credentials.api_token.clone();
    let run = |revision| {
        apply_and_wait(
            &control_plane,
            &token,
            args.listen,
            args.demo_upstream,
            revision,
        )
    };
    // Revision 0 onboards the app (new route, clusters and plugin instances); not counted.
    let first = run(0).await?;
    let first = first
        .enforced
        .context("the gateway never served the benchmark app")?;
    eprintln!("bench: onboarding the app took {}", ms(first));

    let mut samples = Vec::with_capacity(applies);
    for revision in 1..=applies {
        tokio::time::sleep(pause).await;
        let sample = run(revision).await?;
        match (&sample.enforced, &sample.failed) {
            (_, Some(errors)) => eprintln!(
                "bench: apply {revision}/{applies}: the mutation FAILED after {}: {errors}",
                ms(sample.mutation)
            ),
            (Some(enforced), None) => eprintln!(
                "bench: apply {revision}/{applies}: enforced after {} (mutation {})",
                ms(*enforced),
                ms(sample.mutation)
            ),
            (None, None) => eprintln!(
                "bench: apply {revision}/{applies}: NOT enforced within {GIVE_UP:?} (mutation {})",
                ms(sample.mutation)
            ),
        }
        samples.push(sample);
    }
    let served_version = gateway.version().to_string();

    shutdown.shutdown();
    match thread.join() {
        Ok(result) => result?,
        Err(_) => bail!("the gateway thread panicked"),
    }
    platform.stop().await;
    std::fs::remove_dir_all(&data_dir).ok();

    let mut enforced: Vec<Duration> = samples.iter().filter_map(|s| s.enforced).collect();
    enforced.sort();
    let mut mutations: Vec<Duration> = samples.iter().map(|s| s.mutation).collect();
    mutations.sort();
    let under_bar = enforced.iter().filter(|d| **d < BAR).count();
    let failed = samples.iter().filter(|s| s.failed.is_some()).count();
    let row = |label: &str, values: &[Duration]| {
        format!(
            "| {label} | {} | {} | {} | {} | {} |",
            ms(percentile(values, 50.0)),
            ms(percentile(values, 90.0)),
            ms(percentile(values, 99.0)),
            ms(values.last().copied().unwrap_or_default()),
            values.len()
        )
    };
    println!("| measured from sending `applyIntent` | p50 | p90 | p99 | max | applies |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!("{}", row("until the gateway serves the change", &enforced));
    println!("{}", row("until the mutation answers", &mutations));
    println!();
    println!(
        "{under_bar} of {applies} applies enforced within 1 s; {failed} mutations failed; {} \
         not enforced within {GIVE_UP:?}; the gateway ended at snapshot version \
         {served_version}; polled every {POLL:?}; {pause:?} between applies.",
        applies - enforced.len() - failed
    );
    Ok(())
}
