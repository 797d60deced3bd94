//! Driving `wrk` (from Debian) against a URL and reading its report: the load generator of
//! the gateway benchmarks. Runs are bounded in time and only ever target loopback.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};

/// One load run's results.
#[derive(Debug, Clone, Copy)]
pub struct LoadResult {
    /// Completed requests per second.
    pub requests_per_second: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Responses that were not 2xx/3xx, plus socket errors.
    pub errors: u64,
    /// Responses that were not 2xx/3xx alone: a target that answers them (a filter denying)
    /// is not measuring the path it claims to.
    pub non_2xx: u64,
}

/// How to load a URL.
#[derive(Debug, Clone, Copy)]
pub struct LoadShape {
    /// Open connections.
    pub connections: u32,
    /// wrk threads.
    pub threads: u32,
    /// How long.
    pub duration: Duration,
}

/// Runs wrk against `url` (which must be on loopback) and parses its report.
pub fn run_wrk(url: &str, shape: LoadShape) -> anyhow::Result<LoadResult> {
    run_wrk_with_headers(url, shape, &[])
}

/// [`run_wrk`] with request headers sent on every request (wrk's `-H`), such as
/// `("authorization", "Bearer …")`. Header values are never printed: they may be credentials.
pub fn run_wrk_with_headers(
    url: &str,
    shape: LoadShape,
    headers: &[(&str, &str)],
) -> anyhow::Result<LoadResult> {
    if !(url.starts_with("http://127.0.0.1") || url.starts_with("http://localhost")) {
        bail!("load is only ever sent to loopback, not {url}");
    }
    let mut command = Command::new("wrk");
    for (name, value) in headers {
        check_header(name, value)?;
        command.args(["-H", &format!("{name}: {value}")]);
    }
    let output = command
        .args([
            "--latency",
            "-t",
            &shape.threads.to_string(),
            "-c",
            &shape.connections.to_string(),
            "-d",
            &format!("{}s", shape.duration.as_secs().max(1)),
            url,
        ])
        .output()
        .context("running wrk (apt-get install wrk; scripts/bench.sh installs it)")?;
    let report = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed: {report}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse_wrk(&report)
}

/// wrk writes `-H` verbatim into its requests: a name that is not an HTTP token or a value
/// with control characters would make every request malformed (or smuggle a second header).
fn check_header(name: &str, value: &str) -> anyhow::Result<()> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        bail!("not a header name: {name:?}");
    }
    if value.chars().any(|c| c.is_ascii_control() && c != '\t') {
        bail!("the value of header {name} has control characters");
    }
    Ok(())
}

/// Reads requests/s, the 50% and 99% latencies and errors from wrk's `--latency` report.
pub fn parse_wrk(report: &str) -> anyhow::Result<LoadResult> {
    let mut rps = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut errors = 0;
    let mut non_2xx = 0;
    for line in report.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("Requests/sec:") {
            rps = value.trim().parse::<f64>().ok();
        } else if let Some(value) = line.strip_prefix("50%") {
            p50 = parse_duration(value.trim());
        } else if let Some(value) = line.strip_prefix("99%") {
            p99 = parse_duration(value.trim());
        } else if let Some(value) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx += value.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(value) = line.strip_prefix("Socket errors:") {
            errors += value
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    match (rps, p50, p99) {
        (Some(requests_per_second), Some(p50), Some(p99)) => Ok(LoadResult {
            requests_per_second,
            p50,
            p99,
            errors: errors + non_2xx,
            non_2xx,
        }),
        _ => bail!("cannot read wrk's report:\n{report}"),
    }
}

/// wrk prints latencies as `812.00us`, `1.23ms` or `2.00s`.
fn parse_duration(text: &str) -> Option<Duration> {
    let (number, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic())?);
    let value: f64 = number.parse().ok()?;
    let seconds = match unit {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_reports_are_parsed() {
        let report = "Running 10s test @ http://127.0.0.1:8080/\n  1 threads and 32 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   1.10ms  200.00us   5.00ms   90.00%\n  Latency Distribution\n     50%  812.00us\n     75%    1.20ms\n     90%    1.50ms\n     99%    3.25ms\n  120000 requests in 10.00s, 10.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 4\nRequests/sec:  12000.50\nTransfer/sec:      1.00MB\n";
        let result = parse_wrk(report).expect("parses");
        assert!((result.requests_per_second - 12000.5).abs() < 1e-9);
        assert_eq!(result.p50, Duration::from_micros(812));
        assert_eq!(result.p99, Duration::from_micros(3250));
        assert_eq!(result.errors, 7);
        assert_eq!(result.non_2xx, 4);
        assert!(parse_wrk("garbage").is_err());
    }

    #[test]
    fn load_is_refused_for_anything_but_loopback() {
        let shape = LoadShape {
            connections: 1,
            threads: 1,
            duration: Duration::from_secs(1),
        };
        let error = run_wrk("http://10.0.0.1/", shape).expect_err("refused");
        assert!(error.to_string().contains("only ever sent to loopback"));
    }

    #[test]
    fn headers_that_would_break_requests_are_refused_without_echoing_the_value() {
        let shape = LoadShape {
            connections: 1,
            threads: 1,
            duration: Duration::from_secs(1),
        };
        let url = "http://127.0.0.1:9/";
        let error = run_wrk_with_headers(url, shape, &[("authorization", "Bearer secret\r\nx: y")])
            .expect_err("refused");
        assert!(error.to_string().contains("control characters"));
        assert!(!error.to_string().contains("secret"));
        let error = run_wrk_with_headers(url, shape, &[("bad name", "v")]).expect_err("refused");
        assert!(error.to_string().contains("not a header name"));
        assert!(check_header("authorization", "Bearer a.b-c_d").is_ok());
    }
}
