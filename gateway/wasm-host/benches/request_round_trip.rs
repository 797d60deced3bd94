//! Micro benchmark: the host's per-request cost of a no-op plugin built with the official SDK
//! (`plugins/noop`), measured as the gateway drives it for a typical proxied `GET` (request
//! headers ending the stream, response headers, one response body chunk, end of the context).
//!
//! The baseline is the same request without a plugin: the request and response data the
//! gateway holds anyway (header maps, the buffered body). The added cost is reported in
//! nanoseconds and as the throughput a gateway would keep if its no-filter cost per request
//! were `PAVED_BENCH_BASELINE_US` microseconds (default: 54.8 µs, i.e. the 18.2k req/s of
//! docs/benchmarks.md on one worker thread): `baseline / (baseline + added)`.
//!
//! `cargo bench -p paved-wasm-host --bench request_round_trip` (no criterion: a fixed number
//! of alternating rounds, medians reported, so that it runs in seconds on a shared machine).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use paved_wasm_host::{
    BodyVerdict, ClusterDispatcher, HeaderMap, HttpStream, PluginSpec, Runtime, RuntimeOptions,
    StreamInfo, Verdict,
};

/// Requests per round.
const REQUESTS: u32 = 20_000;
/// Rounds per variant; the median is reported.
const ROUNDS: usize = 7;

/// The request a load generator sends (wrk: a request line and `Host`).
fn request_stream() -> HttpStream {
    let headers = HeaderMap::from_pairs([
        (":method", "GET"),
        (":path", "/noop"),
        (":authority", "127.0.0.1:8080"),
        (":scheme", "http"),
        ("user-agent", "wrk"),
    ]);
    HttpStream::new(headers, Arc::new(StreamInfo::default()))
}

/// The upstream's response headers.
fn response_headers() -> HeaderMap {
    HeaderMap::from_pairs([
        (":status", "200"),
        ("content-length", "2"),
        ("content-type", "text/plain"),
        ("x-request-id", "0123456789abcdef0123456789abcdef"),
    ])
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// Runs `ROUNDS` rounds of `REQUESTS` calls of each variant, alternating between them so that
/// noise from the rest of the machine falls on both alike; returns each variant's median time
/// per request.
fn measure(variants: &mut [&mut dyn FnMut()]) -> Vec<Duration> {
    for one in variants.iter_mut() {
        for _ in 0..REQUESTS / 10 {
            one();
        }
    }
    let mut rounds = vec![Vec::new(); variants.len()];
    for _ in 0..ROUNDS {
        for (one, times) in variants.iter_mut().zip(&mut rounds) {
            let started = Instant::now();
            for _ in 0..REQUESTS {
                one();
            }
            times.push(started.elapsed() / REQUESTS);
        }
    }
    rounds.into_iter().map(median).collect()
}

fn main() {
    let wasm = paved_builtin_plugins::get("noop").expect("noop is built in");
    let runtime = Runtime::new(RuntimeOptions::default()).expect("engine");
    let http = Arc::new(ClusterDispatcher::new(HashMap::new(), 1 << 20));
    let mut spec = PluginSpec::new("noop", wasm, Vec::new());
    spec.instances = 1;
    let plugin = runtime.load(spec, http).expect("noop loads");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // Without a plugin: the data the gateway holds for the request either way.
    let mut baseline = || {
        let mut stream = request_stream();
        stream.response_headers = response_headers();
        stream.response_body.extend_from_slice(b"ok");
        black_box(&mut stream);
    };

    let mut noop = || {
        rt.block_on(async {
            let mut stream = request_stream();
            let mut context = plugin.new_http_context().expect("context");
            let verdict = context.on_request_headers(&mut stream, true).await;
            assert_eq!(verdict, Ok(Verdict::Continue));
            stream.response_headers = response_headers();
            let verdict = context.on_response_headers(&mut stream, false).await;
            assert_eq!(verdict, Ok(Verdict::Continue));
            stream.response_body.extend_from_slice(b"ok");
            let verdict = context.on_response_body(&mut stream, true);
            assert_eq!(verdict, Ok(BodyVerdict::Continue));
            context.finish(&mut stream);
            black_box(&mut stream);
        });
    };
    let medians = measure(&mut [&mut baseline, &mut noop]);
    let (baseline, noop) = (medians[0], medians[1]);

    let budget_us: f64 = std::env::var("PAVED_BENCH_BASELINE_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(54.8);
    let added = noop.saturating_sub(baseline);
    let kept = budget_us / (budget_us + added.as_secs_f64() * 1e6);
    println!("| variant | per request |");
    println!("|---|---:|");
    println!(
        "| without a plugin (baseline) | {} ns |",
        baseline.as_nanos()
    );
    println!("| no-op SDK plugin | {} ns |", noop.as_nanos());
    println!(
        "| added by the plugin | {} ns ({:.1}x the baseline) |",
        added.as_nanos(),
        noop.as_secs_f64() / baseline.as_secs_f64().max(1e-12)
    );
    println!(
        "\nthroughput kept at {budget_us} µs of no-filter cost per request: {:.1}% ({} requests x {} rounds, medians)",
        kept * 100.0,
        REQUESTS,
        ROUNDS
    );
}
