//! The access log when the gateway is killed: a `paved gateway` process with the real
//! `accesslog` plugin serves concurrent clients and is SIGKILLed under load; the file it
//! leaves is then checked against what the clients saw.
//!
//! What holds (docs/plugins/accesslog.md, "Durability"): a response leaves the gateway only
//! once its record is synced to the file, so a kill loses no record of an acknowledged request
//! (answered by the upstream, or denied by the WAF before it), never invents or repeats one,
//! and leaves at most a partial last line, which a restarted gateway ends before writing on. A
//! gateway stopped gracefully (SIGTERM) under load writes the record of every request it
//! acknowledged.
//!
//! The gateway runs as a separate process so that it can really be killed: this test binary
//! runs itself again, and in that child `paved gateway` is parsed and run exactly as the
//! `paved` binary does (`paved::gateway_cmd`).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use paved_e2e::harness::{free_port, send, start_echo_upstream};
use tokio::task::JoinSet;

/// Set in the child: the `paved gateway` arguments, one per line.
const CHILD_ARGS: &str = "PAVED_TEST_GATEWAY_ARGS";

const CONFIG: &str = r#"
listeners: [{address: "{listen}"}]
admin: {address: "{admin}"}
clusters: [{name: app, endpoints: ["{upstream}"]}]
routes:
  - host: "*"
    path_prefix: /
    cluster: app
    app: durability
    plugins:
      - {name: waf, builtin: waf, config: {}, fail_open: false, security: true}
      - {name: accesslog, builtin: accesslog, config: {app: durability, route: /}, fail_open: true, security: false}
"#;

/// Not a test of its own: the body of the child process the tests start (it does nothing
/// unless started as that child).
#[test]
fn child_gateway_process() {
    let Ok(lines) = std::env::var(CHILD_ARGS) else {
        return;
    };
    use clap::{Args as _, FromArgMatches as _};
    let command = paved::gateway_cmd::GatewayArgs::augment_args(clap::Command::new("gateway"));
    let matches = command
        .try_get_matches_from(std::iter::once("gateway").chain(lines.lines()))
        .unwrap_or_else(|e| panic!("paved gateway arguments: {e}"));
    let args = paved::gateway_cmd::GatewayArgs::from_arg_matches(&matches)
        .unwrap_or_else(|e| panic!("paved gateway arguments: {e}"));
    if let Err(error) = paved::gateway_cmd::run(args) {
        panic!("paved gateway failed: {error:#}");
    }
}

/// A `paved gateway` process, SIGKILLed when dropped (if the test did not kill it before).
struct GatewayProcess {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
}

impl GatewayProcess {
    /// Starts `paved gateway` on free ports, writing its access log to `log`.
    fn start(dir: &Path, log: &Path, upstream: SocketAddr) -> GatewayProcess {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = dir.join(format!("gateway-{}.yaml", addr.port()));
        let text = CONFIG
            .replace("{listen}", &addr.to_string())
            .replace("{admin}", &admin.to_string())
            .replace("{upstream}", &upstream.to_string());
        std::fs::write(&config, text).expect("write the configuration");
        let args = [
            "--config".to_owned(),
            config.display().to_string(),
            "--access-log".to_owned(),
            log.display().to_string(),
            "--state-dir".to_owned(),
            dir.join("state").display().to_string(),
            "--threads".to_owned(),
            "2".to_owned(),
        ];
        let output = std::fs::File::create(dir.join(format!("gateway-{}.out", addr.port())))
            .expect("output file");
        let child = Command::new(std::env::current_exe().expect("this test binary"))
            .args([
                "child_gateway_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ARGS, args.join("\n"))
            .stdout(Stdio::from(output.try_clone().expect("output file")))
            .stderr(Stdio::from(output))
            .spawn()
            .expect("start the gateway process");
        let mut process = GatewayProcess { child, addr, admin };
        for port in [addr, admin] {
            let mut tries = 0;
            while std::net::TcpStream::connect_timeout(&port, Duration::from_millis(50)).is_err() {
                if let Ok(Some(status)) = process.child.try_wait() {
                    panic!(
                        "the gateway process exited ({status}); see {}",
                        dir.display()
                    );
                }
                tries += 1;
                assert!(tries < 2400, "the gateway process never listened on {port}");
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        process
    }

    /// SIGTERM, and waits for the process to exit: the gateway stops gracefully.
    fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        for _ in 0..1200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the gateway did not stop after SIGTERM");
    }

    /// SIGKILL: no chance to flush anything.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `Referer` the WAF blocks (SQL injection): such requests are denied with 403 by the
/// filter before `accesslog`, a response the gateway sends itself.
const ATTACK: &str = "https://shop.test/?id=1' UNION SELECT password FROM users--";

/// One GET on a new connection; `Some(status)` once the whole response arrived (the request
/// was acknowledged), `None` on any transport failure (the gateway is gone).
async fn try_get(addr: SocketAddr, path: &str) -> Option<u16> {
    try_get_with(addr, path, None).await
}

/// [`try_get`], with a `referer` header when `search` is given.
async fn try_get_with(addr: SocketAddr, path: &str, search: Option<&str>) -> Option<u16> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .uri(path)
            .header("host", "app.test");
        if let Some(search) = search {
            request = request.header("referer", search);
        }
        let request = request.body(Full::new(Bytes::new())).ok()?;
        let response = sender.send_request(request).await.ok()?;
        let status = response.status().as_u16();
        response.into_body().collect().await.ok()?;
        Some(status)
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .ok()
        .flatten()
}

/// The log as complete records (path → count) and whether a partial last line follows them.
struct LogFile {
    records: HashMap<String, usize>,
    complete_lines: usize,
    partial_tail: bool,
    unparseable: Vec<String>,
}

fn read_log(path: &Path) -> LogFile {
    let bytes = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.split('\n').collect();
    // After the last newline: empty, or a record cut short.
    let tail = lines.pop().unwrap_or_default();
    let mut log = LogFile {
        records: HashMap::new(),
        complete_lines: 0,
        partial_tail: !tail.is_empty(),
        unparseable: Vec::new(),
    };
    for line in lines {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(record) => {
                let path = record["path"].as_str().unwrap_or_default().to_owned();
                *log.records.entry(path).or_default() += 1;
                log.complete_lines += 1;
            }
            Err(_) => log.unparseable.push(line.to_owned()),
        }
    }
    log
}

/// Waits until every path of `paths` has a record (the sink writes in batches).
async fn until_logged(log: &Path, paths: &[String]) -> LogFile {
    for _ in 0..600 {
        let file = read_log(log);
        if paths.iter().all(|p| file.records.contains_key(p)) {
            return file;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let file = read_log(log);
    let missing: Vec<&String> = paths
        .iter()
        .filter(|p| !file.records.contains_key(*p))
        .collect();
    panic!("never logged: {missing:?}");
}

async fn records_written(admin: SocketAddr) -> u64 {
    let reply = send(admin, "GET", "/metrics", &[], b"").await;
    String::from_utf8_lossy(&reply.body)
        .lines()
        .find_map(|l| l.strip_prefix("paved_gateway_access_log_records_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Clients sending requests with unique paths, one after the other each, until the gateway
/// is gone.
struct Load {
    acked: Arc<Mutex<HashSet<String>>>,
    sent: Arc<Mutex<HashSet<String>>>,
    clients: JoinSet<()>,
}

impl Load {
    /// Starts `clients` clients against `addr` and returns once `acked` requests were
    /// acknowledged.
    async fn until_acked(addr: SocketAddr, clients: usize, acked: usize) -> Load {
        let mut load = Load {
            acked: Arc::new(Mutex::new(HashSet::new())),
            sent: Arc::new(Mutex::new(HashSet::new())),
            clients: JoinSet::new(),
        };
        let count = Arc::new(AtomicUsize::new(0));
        for client in 0..clients {
            let (acked, sent, count) = (load.acked.clone(), load.sent.clone(), count.clone());
            load.clients.spawn(async move {
                for seq in 0.. {
                    // One request in four is an attack the WAF denies.
                    let attack = seq % 4 == 3;
                    let path = format!("/load/{client}/{seq}");
                    sent.lock().expect("lock").insert(path.clone());
                    let expected = if attack { 403 } else { 200 };
                    match try_get_with(addr, &path, attack.then_some(ATTACK)).await {
                        Some(status) if status == expected => {
                            acked.lock().expect("lock").insert(path);
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(status) => panic!("{path}: status {status}, expected {expected}"),
                        // The gateway is gone.
                        None => break,
                    }
                }
            });
        }
        let mut waited = 0;
        while count.load(Ordering::Relaxed) < acked {
            waited += 1;
            assert!(
                waited < 24_000,
                "only {} requests acknowledged",
                count.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        load
    }

    /// Waits for every client to see the gateway gone; (acknowledged, sent) paths.
    async fn finish(mut self) -> (HashSet<String>, HashSet<String>) {
        while let Some(result) = self.clients.join_next().await {
            result.expect("client");
        }
        let acked = self.acked.lock().expect("lock").clone();
        let sent = self.sent.lock().expect("lock").clone();
        (acked, sent)
    }
}

fn scratch_dir(label: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("paved-{label}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_gateway_has_logged_every_request_it_acknowledged() {
    let upstream = start_echo_upstream();
    let dir = scratch_dir("accesslog-kill");
    let log = dir.join("access.log");
    let mut gateway =
        tokio::task::block_in_place(|| GatewayProcess::start(&dir, &log, upstream.addr));

    // Before the kill: every acknowledged request reaches the file.
    let mut settled = Vec::new();
    for i in 0..40 {
        let path = format!("/settled/{i}");
        assert_eq!(try_get(gateway.addr, &path).await, Some(200));
        settled.push(path);
    }
    until_logged(&log, &settled).await;

    // Under load: 16 clients until 300 more requests were acknowledged, then SIGKILL.
    let load = Load::until_acked(gateway.addr, 16, 300).await;
    let written_before_kill = records_written(gateway.admin).await;
    tokio::task::block_in_place(|| gateway.kill());
    let (acked, sent) = load.finish().await;

    let file = read_log(&log);
    assert!(
        file.unparseable.is_empty(),
        "only the last line may be cut short: {:?}",
        file.unparseable
    );
    assert!(
        file.complete_lines as u64 >= written_before_kill,
        "{} records in the file, {written_before_kill} reported written before the kill",
        file.complete_lines
    );
    for path in &settled {
        assert_eq!(
            file.records.get(path),
            Some(&1),
            "{path} was logged before the kill"
        );
    }
    for (path, n) in &file.records {
        assert_eq!(*n, 1, "{path} logged {n} times");
        assert!(
            settled.contains(path) || sent.contains(path),
            "{path} was never requested"
        );
    }
    let lost: Vec<&String> = acked
        .iter()
        .filter(|p| !file.records.contains_key(*p))
        .collect();
    eprintln!(
        "acknowledged under load: {}, in the log: {}, partial last line: {}",
        acked.len(),
        acked.len() - lost.len(),
        file.partial_tail
    );
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged requests missing from the log after SIGKILL: {lost:?}",
        lost.len(),
        acked.len()
    );

    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_restarted_after_a_kill_mid_record_logs_on_a_new_line() {
    let upstream = start_echo_upstream();
    let dir = scratch_dir("accesslog-torn");
    let log = dir.join("access.log");
    let mut first =
        tokio::task::block_in_place(|| GatewayProcess::start(&dir, &log, upstream.addr));
    let before: Vec<String> = (0..5).map(|i| format!("/before/{i}")).collect();
    for path in &before {
        assert_eq!(try_get(first.addr, path).await, Some(200));
    }
    until_logged(&log, &before).await;
    tokio::task::block_in_place(|| first.kill());
    // What a kill in the middle of an append leaves: the start of a record, no newline.
    {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("the log");
        file.write_all(br#"{"time":"2026-01-01T00:00:00.000Z","request_id":"cut-sh"#)
            .expect("append");
    }
    assert!(read_log(&log).partial_tail);

    let second = tokio::task::block_in_place(|| GatewayProcess::start(&dir, &log, upstream.addr));
    let after: Vec<String> = (0..5).map(|i| format!("/after/{i}")).collect();
    for path in &after {
        assert_eq!(try_get(second.addr, path).await, Some(200));
    }
    let file = until_logged(&log, &after).await;
    for path in before.iter().chain(&after) {
        assert_eq!(file.records.get(path), Some(&1), "{path}");
    }
    assert_eq!(
        file.unparseable.len(),
        1,
        "the fragment stays on a line of its own: {:?}",
        file.unparseable
    );
    assert!(!file.partial_tail);
    drop(second);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_stopped_with_sigterm_under_load_logs_every_acknowledged_request() {
    let upstream = start_echo_upstream();
    let dir = scratch_dir("accesslog-term");
    let log = dir.join("access.log");
    let mut gateway =
        tokio::task::block_in_place(|| GatewayProcess::start(&dir, &log, upstream.addr));

    let load = Load::until_acked(gateway.addr, 16, 300).await;
    tokio::task::block_in_place(|| gateway.terminate());
    let (acked, sent) = load.finish().await;

    let file = read_log(&log);
    assert!(file.unparseable.is_empty(), "{:?}", file.unparseable);
    assert!(!file.partial_tail, "a graceful stop finishes its last line");
    let lost: Vec<&String> = acked
        .iter()
        .filter(|p| !file.records.contains_key(*p))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged requests missing from the log: {lost:?}",
        lost.len(),
        acked.len()
    );
    for (path, n) in &file.records {
        assert_eq!(*n, 1, "{path} logged {n} times");
        assert!(sent.contains(path), "{path} was never requested");
    }
    std::fs::remove_dir_all(&dir).ok();
}
