//! The flow agent's cost under load (issue 6, benchmark a).
//!
//! ```text
//! sudo cargo run --release -p paved-flow-agent --example flow_bench -- \
//!     [--rates 1000,5000,20000] [--seconds 10] [--no-baseline] [--per-connection]
//! ```
//!
//! For each rate, a load generator (a child process: this binary with `--loadgen`)
//! opens and closes that many loopback TCP connections per second for `--seconds`
//! (client threads connect, send 64 bytes and half-close; server threads read, answer
//! 64 bytes and close), while the full agent runs in this process: the BPF probe, the
//! pipeline (filter, enrichment, aggregation every 10 s, interim sweep) and the export
//! of batches to an in-process channel sink whose receiver acknowledges them.
//!
//! Measured per rate:
//! * the agent's user-space CPU: `getrusage(RUSAGE_SELF)` of this process (user +
//!   system time of all its threads; the load generator is another process);
//! * the BPF programs' kernel run time: `run_time_ns` / `run_cnt` of each program, with
//!   the kernel's BPF statistics on (`BPF_ENABLE_STATS`, the scoped form of
//!   `kernel.bpf_stats_enabled=1`) — this time is spent inside the load generator's
//!   system calls and soft interrupts, so it is also part of the generator's CPU;
//! * memory: this process's RSS (and peak), and the BPF maps' locked kernel memory;
//! * records lost: the kernel's ring-buffer drop counter, and records seen versus the
//!   two expected per connection;
//! * the load generator's own CPU (user + system of the child), and, unless
//!   `--no-baseline`, the same load's CPU with no agent loaded.
//!
//! `--per-connection` runs the probe in `ReportMode::PerConnection` (a ring-buffer
//! record per closing socket, summed in user space) instead of the default in-kernel
//! aggregation, to compare the two.
//!
//! Each cost is given as a share of one core over the run's wall time, and as a ratio
//! to the load generator's CPU. Needs root (or CAP_BPF + CAP_PERFMON).

use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use paved_flow_agent::{
    AgentIdentity, AgentSettings, BacklogSettings, FlowAgent, FlowConfig, FlowProbe, ProbeSource,
    ProgramStats, ReportMode, enable_bpf_stats, program_stats_by_id,
};
use paved_flow_proto::AgentId;
use paved_flow_transport::channel::channel;
use tokio::sync::watch;

/// Listening ports (and client threads) of the load generator.
const LANES: usize = 2;
/// Bytes each side sends per connection.
const PAYLOAD: usize = 64;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--loadgen") {
        let rate = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1_000);
        let seconds = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10.0);
        loadgen(rate, seconds);
        return;
    }
    let mut rates = vec![1_000u64, 5_000, 20_000];
    let mut seconds = 10.0f64;
    let mut baseline = true;
    let mut per_connection = false;
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--rates" => {
                rates = args
                    .get(i + 1)
                    .map(|s| s.split(',').filter_map(|r| r.trim().parse().ok()).collect())
                    .unwrap_or(rates);
                i += 1;
            }
            "--seconds" => {
                seconds = args
                    .get(i + 1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(seconds);
                i += 1;
            }
            "--no-baseline" => baseline = false,
            "--per-connection" => per_connection = true,
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
        i += 1;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench(rates, seconds, baseline, per_connection));
}

/// What the load generator reports.
#[derive(Debug, Clone, Copy)]
struct LoadReport {
    connections: u64,
    wall_s: f64,
    cpu_s: f64,
}

/// Runs the load generator child at `rate` for `seconds`.
fn run_loadgen(rate: u64, seconds: f64) -> LoadReport {
    let exe = std::env::current_exe().expect("own executable");
    let output = Command::new(exe)
        .args(["--loadgen", &rate.to_string(), &seconds.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .expect("load generator runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut fields = text
        .split_whitespace()
        .map(|f| f.parse::<f64>().unwrap_or(0.0));
    LoadReport {
        connections: fields.next().unwrap_or(0.0) as u64,
        wall_s: fields.next().unwrap_or(0.0),
        cpu_s: fields.next().unwrap_or(0.0),
    }
}

async fn bench(rates: Vec<u64>, seconds: f64, baseline: bool, per_connection: bool) {
    let mut baselines = Vec::new();
    if baseline {
        for &rate in &rates {
            let report = tokio::task::spawn_blocking(move || run_loadgen(rate, seconds))
                .await
                .expect("load generator");
            eprintln!("baseline {rate}/s: {report:?}");
            baselines.push(Some(report));
        }
    } else {
        baselines.resize(rates.len(), None);
    }

    let _stats = enable_bpf_stats().expect("enabling BPF statistics (needs root)");
    let mode = if per_connection {
        ReportMode::PerConnection
    } else {
        ReportMode::Aggregate
    };
    let probe = FlowProbe::start_with(mode).expect("flow probe starts (needs root)");
    let programs = probe.program_stats().expect("program statistics");
    let (sink, receiver) = channel(64);
    tokio::spawn(async move {
        let stored = |_batch| async { Ok::<(), paved_flow_transport::StoreError>(()) };
        receiver.serve(&stored).await;
    });
    let (_config_tx, config_rx) = watch::channel(FlowConfig::default());
    let identity = AgentIdentity::detect(Some(AgentId::new("bench").expect("id")));
    let mut settings = AgentSettings::new(identity);
    settings.export.backlog = BacklogSettings::Memory { max_batches: 64 };
    let agent = FlowAgent::spawn(settings, ProbeSource::new(probe), Arc::new(sink), config_rx)
        .expect("agent starts");
    // Let the agent settle (first allocations, first interval).
    tokio::time::sleep(Duration::from_secs(1)).await;

    println!(
        "| target conn/s | achieved conn/s | agent user space (% core) | BPF programs (% core) | agent total (% core) | load generator CPU (% core) | agent / load generator | BPF ns per connection | records lost | agent RSS (MiB) | BPF maps (MiB) | baseline load generator CPU (% core) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (&rate, baseline) in rates.iter().zip(baselines) {
        // Count from an interval boundary: closes are summed in the kernel until then.
        agent.flush_now().await;
        let before_cpu = self_cpu_seconds();
        let before_bpf = bpf_totals(&programs);
        let before = agent.metrics();
        let load = tokio::task::spawn_blocking(move || run_loadgen(rate, seconds))
            .await
            .expect("load generator");
        // Let the last records drain (poll interval 100 ms), then end the interval so
        // the kernel's sums are read, before reading counters.
        tokio::time::sleep(Duration::from_millis(500)).await;
        agent.flush_now().await;
        let after_cpu = self_cpu_seconds();
        let after_bpf = bpf_totals(&programs);
        let after = agent.metrics();
        // The settle time after the load is idle for the agent but counts in its CPU:
        // divide by the load's wall time, a slight overestimate of the agent's share.
        let wall = load.wall_s.max(1e-9);
        let agent_cpu = after_cpu - before_cpu;
        let bpf_ns = after_bpf.0.saturating_sub(before_bpf.0);
        let bpf_runs = after_bpf.1.saturating_sub(before_bpf.1);
        let bpf_cpu = bpf_ns as f64 / 1e9;
        let total = agent_cpu + bpf_cpu;
        let seen = after.records_seen - before.records_seen;
        let dropped = after.records_dropped_kernel - before.records_dropped_kernel;
        let expected = 2 * load.connections;
        let missing = expected.saturating_sub(seen);
        let (rss, _peak) = rss_mib();
        println!(
            "| {rate} | {:.0} | {:.3} | {:.3} | {:.3} | {:.1} | {:.4} | {:.0} | {dropped} dropped, {missing} missing of {expected} | {rss:.1} | {:.1} | {} |",
            load.connections as f64 / wall,
            100.0 * agent_cpu / wall,
            100.0 * bpf_cpu / wall,
            100.0 * total / wall,
            100.0 * load.cpu_s / wall,
            total / load.cpu_s.max(1e-9),
            bpf_ns as f64 / load.connections.max(1) as f64,
            bpf_maps_mib(),
            baseline
                .map(|b| format!("{:.1}", 100.0 * b.cpu_s / b.wall_s.max(1e-9)))
                .unwrap_or_else(|| "-".into()),
        );
        eprintln!(
            "rate {rate}: load {load:?}, agent cpu {agent_cpu:.4} s, bpf {bpf_ns} ns over {bpf_runs} runs, records seen {seen}, per program {:?}",
            per_program(&programs)
        );
    }
    let final_metrics = agent.metrics();
    eprintln!("agent metrics: {final_metrics:?}");
}

/// Sum of run time (ns) and run count of the probe's programs.
fn bpf_totals(programs: &[ProgramStats]) -> (u64, u64) {
    program_stats_by_id(programs)
        .iter()
        .fold((0, 0), |(t, c), p| (t + p.run_time_ns, c + p.run_count))
}

fn per_program(programs: &[ProgramStats]) -> Vec<(&'static str, u64, u64)> {
    program_stats_by_id(programs)
        .iter()
        .map(|p| (p.name, p.run_time_ns, p.run_count))
        .collect()
}

/// User + system CPU seconds of this process (all threads).
fn self_cpu_seconds() -> f64 {
    rusage_seconds(libc::RUSAGE_SELF)
}

fn rusage_seconds(who: libc::c_int) -> f64 {
    // SAFETY: `usage` is a valid, writable rusage; getrusage only writes it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `who` is RUSAGE_SELF or RUSAGE_CHILDREN.
    unsafe { libc::getrusage(who, &mut usage) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// (VmRSS, VmHWM) of this process in MiB.
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Locked kernel memory of the BPF maps this process holds, in MiB (from fdinfo).
fn bpf_maps_mib() -> f64 {
    let Ok(fds) = std::fs::read_dir("/proc/self/fdinfo") else {
        return 0.0;
    };
    let mut bytes = 0u64;
    for fd in fds.flatten() {
        let info = std::fs::read_to_string(fd.path()).unwrap_or_default();
        if !info.contains("map_type:") {
            continue;
        }
        bytes += info
            .lines()
            .find_map(|l| l.strip_prefix("memlock:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    bytes as f64 / (1024.0 * 1024.0)
}

/// The load generator: prints "<connections> <wall seconds> <cpu seconds>".
fn loadgen(rate: u64, seconds: f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut addrs = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..LANES {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        addrs.push(listener.local_addr().expect("address"));
        servers.push(thread::spawn(move || serve(listener)));
    }
    let started = Instant::now();
    let per_lane = rate as f64 / LANES as f64;
    let clients: Vec<_> = addrs
        .iter()
        .map(|&addr| {
            let stop = Arc::clone(&stop);
            let done = Arc::clone(&done);
            thread::spawn(move || client(addr, per_lane, seconds, &stop, &done))
        })
        .collect();
    for client in clients {
        let _ = client.join();
    }
    let wall = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    // Wake the servers so they see `stop`.
    for addr in &addrs {
        let _ = TcpStream::connect(addr);
    }
    for server in servers {
        let _ = server.join();
    }
    println!(
        "{} {wall} {}",
        done.load(Ordering::SeqCst),
        rusage_seconds(libc::RUSAGE_SELF)
    );
    let _ = stop;
}

fn serve(listener: TcpListener) {
    let mut buf = [0u8; 256];
    let answer = [b's'; PAYLOAD];
    loop {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let mut got = 0;
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        if got == 0 {
            // The wake-up connection at the end (or a failed client).
            return;
        }
        let _ = stream.write_all(&answer);
    }
}

fn client(addr: SocketAddr, rate: f64, seconds: f64, stop: &AtomicBool, done: &AtomicU64) {
    let request = [b'c'; PAYLOAD];
    let mut buf = [0u8; 256];
    let started = Instant::now();
    let total = (rate * seconds) as u64;
    for i in 0..total {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        // Open loop: connection i is due at i / rate.
        let due = Duration::from_secs_f64(i as f64 / rate);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            thread::sleep(wait);
        }
        let Ok(mut stream) = TcpStream::connect(addr) else {
            continue;
        };
        if stream.write_all(&request).is_err() || stream.shutdown(Shutdown::Write).is_err() {
            continue;
        }
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
}
