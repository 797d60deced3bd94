//! Helpers shared by the agent's integration tests.
#![allow(dead_code)]

use std::{
    net::Ipv4Addr,
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use paved_flow_agent::{
    AgentIdentity, AgentSettings, BacklogSettings, Direction, ExportSettings, FlowProbe,
    FlowRecord, ProbeError, ProbeOptions, RecordKind, ReportMode, RetryPolicy, SpoolSettings,
    clock::monotonic_ns,
};
use paved_flow_proto::AgentId;

/// Distinct open timestamps, so every synthetic record is its own connection.
static NEXT_START: AtomicU64 = AtomicU64::new(1);

/// A closed outbound connection to 10.0.0.2:`port` that sent `sent` bytes.
pub fn closed_record(port: u16, sent: u64) -> FlowRecord {
    let mut r = FlowRecord::zeroed();
    r.kind = RecordKind::Closed as u8;
    r.start_ns = NEXT_START.fetch_add(1, Ordering::Relaxed);
    r.end_ns = monotonic_ns();
    r.bytes_acked = sent;
    r.bytes_received = 1;
    r.segs_in = 1;
    r.segs_out = 1;
    r.srtt_us = 100;
    r.direction = Direction::Outbound as u8;
    r.family = 2;
    r.saddr = Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped().octets();
    r.daddr = Ipv4Addr::new(10, 0, 0, 2).to_ipv6_mapped().octets();
    r.sport = 40_000;
    r.dport = port;
    r.tgid = 4242;
    r.pid = 4242;
    r.comm[..4].copy_from_slice(b"test");
    r
}

/// Agent settings for tests: a fixed id, fast retries, and the given backlog.
pub fn settings(agent: &str, backlog: BacklogSettings) -> AgentSettings {
    let mut identity = AgentIdentity::detect(Some(AgentId::new(agent).expect("valid agent id")));
    identity.host = "test-host".into();
    let mut settings = AgentSettings::new(identity);
    settings.export = ExportSettings {
        retry: RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(400),
        },
        backlog,
        drain_on_shutdown: Duration::from_secs(2),
    };
    settings
}

/// A fresh spool directory under the system temp dir.
pub fn spool_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "paved-flow-test-{name}-{}-{}",
        std::process::id(),
        monotonic_ns()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A disk backlog in `dir`.
pub fn disk(dir: &std::path::Path) -> BacklogSettings {
    BacklogSettings::Disk(SpoolSettings::new(dir))
}

/// Polls `check` every 20 ms until it holds or `timeout` passes.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

/// Starts the real probe in `mode`, or `None` (saying why) when the kernel refuses BPF
/// for lack of privilege; any other failure, a verifier rejection included, panics with
/// the whole error chain.
pub fn start_probe(mode: ReportMode) -> Option<FlowProbe> {
    start_probe_with(mode.into())
}

/// Like [`start_probe`], with every option chosen.
pub fn start_probe_with(options: ProbeOptions) -> Option<FlowProbe> {
    // The probe logs why an optional hook is off; show it with the test's output.
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    match FlowProbe::start_with_options(options) {
        Ok(probe) => Some(probe),
        Err(err) if err.is_permission_denied() => {
            eprintln!("skipping: the kernel refused BPF: {}", chain(&err));
            None
        }
        Err(err) => panic!("the flow probe did not start: {}", chain(&err)),
    }
}

/// An error and its sources on one line.
pub fn chain(err: &ProbeError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
