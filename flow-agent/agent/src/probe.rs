//! [`FlowProbe`]: loads the BPF object, attaches its programs and yields flow records.
//!
//! Records are delivered asynchronously: the ring buffer's file descriptor is registered
//! with tokio ([`AsyncFd`]), so [`FlowProbe::recv`] sleeps until the kernel signals data.
//! [`FlowProbe::start`] must therefore run inside a tokio runtime.

use std::{
    borrow::Cow,
    collections::{HashSet, VecDeque},
    os::fd::OwnedFd,
    path::Path,
    time::Duration,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf},
    programs::{
        CgroupAttachMode, CgroupSock, ProgramError, RawTracePoint, RawTracePointRunOptions,
        TestRun, TracePoint,
    },
};
use paved_flow_common::{
    FlowRecord, KernelOffsets, OpenFlow, ProbeConfig, counter,
    kernel::{inet_sock_set_state, tcp_retransmit_skb},
    kfunc as kfunc_placeholder, names, report_mode, sweep,
};
use tokio::io::{Interest, unix::AsyncFd};

use crate::{
    aggregates::{AggregateMaps, KernelAggregate},
    btf::{self, ResolvedOffsets},
    error::ProbeError,
    kfunc::{self, KernelKfuncs},
    record,
    server_ports::ServerPorts,
    sock_diag::SockDiag,
    socket_sweep::SocketSweep,
    tracefs,
};

/// The BPF object built by `build.rs` from `flow-agent/ebpf`.
pub(crate) fn object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/paved-flow-ebpf.o"))
}

/// How often [`FlowProbe::recv`] looks at the ring buffer when the kernel has not woken
/// it: the programs wake user space only when the ring is a quarter full (see
/// `ebpf/src/emit.rs`), so between bursts records wait at most this long.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The poll interval in aggregate mode, where the ring only carries the closes that
/// could not be summed (a socket with a cookie, a full table) and needs no hurry.
pub const AGGREGATE_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Entries of the open-flow map in aggregate mode, which does not use it (the map is
/// allocated at load either way).
const UNUSED_MAP_ENTRIES: u32 = 256;

/// Upper bound on keys visited by one interim sweep. A key deleted while the sweep
/// stands on it makes the kernel restart the walk from the first bucket, so the walk is
/// bounded (twice the map's capacity) rather than trusted to end.
const MAX_SWEEP_VISITS: usize = 2 * 65_536;

/// How the probe watches connections; chosen when it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportMode {
    /// The default, and the cheap one: `cgroup/sock_release` sums each connection when
    /// its owner closes it, per (direction, local address, remote address, service
    /// port, process, cgroup), and [`FlowProbe::drain_aggregates`] reads the sums once
    /// per interval. Interim records of open connections come from `sock_diag`. The
    /// open is not seen: records carry no start time and interim records no process.
    Aggregate,
    /// `tcplife`-style: `sock:inet_sock_set_state` follows every state change, and each
    /// closing socket gives one [`FlowRecord`] through [`FlowProbe::recv`] with its
    /// start time, its full 4-tuple and the process that opened it (or, inbound, closed
    /// it). Several times the kernel cost of [`ReportMode::Aggregate`].
    PerConnection,
}

/// How the release program reads the socket fields its context does not expose (the
/// local end, the counters, the cookie).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SocketReads {
    /// Plain loads through `bpf_rdonly_cast` where the kernel allows it (its BTF has
    /// `BPF_FEAT_RDONLY_CAST_TO_VOID`), else [`SocketReads::ProbeRead`]. The default.
    #[default]
    Fastest,
    /// A `bpf_probe_read_kernel` call per field, on any kernel (about two fifths of the
    /// release program's run time went to these calls).
    ProbeRead,
}

/// What [`FlowProbe::start_with_options`] loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeOptions {
    /// How closes are reported.
    pub mode: ReportMode,
    /// How the release program reads sockets (aggregate mode).
    pub socket_reads: SocketReads,
}

impl From<ReportMode> for ProbeOptions {
    fn from(mode: ReportMode) -> Self {
        Self {
            mode,
            socket_reads: SocketReads::default(),
        }
    }
}

/// The programs' counters since the probe started (sums over CPUs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelCounters {
    /// Records lost because the ring buffer was full.
    pub ring_dropped: u64,
    /// Closes that found their aggregate map full and were written to the ring instead.
    pub aggregate_full: u64,
    /// Sockets left out by sampling.
    pub sampled_out: u64,
}

/// A running flow probe: its programs stay attached until it is dropped.
pub struct FlowProbe {
    mode: ReportMode,
    /// How the loaded release program reads sockets (aggregate mode).
    socket_reads: SocketReads,
    ring: AsyncFd<RingBuf<MapData>>,
    /// Interim records read through `sock_diag` (aggregate mode), handed out before
    /// the ring's records.
    pending: VecDeque<FlowRecord>,
    /// Aggregate mode's interim sweep and server-port upkeep (`None`: no `sock_diag`
    /// socket, so no interim records).
    socket_sweep: Option<SocketSweep>,
    counters: PerCpuArray<MapData, u64>,
    config_map: Array<MapData, ProbeConfig>,
    config: ProbeConfig,
    aggregates: AggregateMaps,
    open_flows: HashMap<MapData, u64, OpenFlow>,
    /// Whether `flow_sweep` loaded (interim records are available).
    sweep_loaded: bool,
    poll_interval: Duration,
    offsets: ResolvedOffsets,
    hooks: Vec<String>,
    // Owns the programs and their links; declared last so it is dropped last.
    ebpf: Ebpf,
}

/// What one interim sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Distinct open sockets handed to the kernel.
    pub sockets: usize,
    /// `BPF_PROG_TEST_RUN` calls made (eleven sockets each).
    pub runs: usize,
    /// Whether the walk stopped at its bound before the end of the map.
    pub truncated: bool,
}

/// Run time counters of one of the probe's programs (kept by the kernel while BPF
/// statistics are on: `kernel.bpf_stats_enabled=1` or [`enable_bpf_stats`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramStats {
    /// The program's name (`paved_flow_common::names`).
    pub name: &'static str,
    /// The kernel's id of the loaded program.
    pub id: u32,
    /// Total nanoseconds spent in the program.
    pub run_time_ns: u64,
    /// Number of runs.
    pub run_count: u64,
}

/// Turns on the kernel's BPF run time statistics for as long as the returned descriptor
/// is open (`BPF_ENABLE_STATS`, the scoped form of `kernel.bpf_stats_enabled=1`).
pub fn enable_bpf_stats() -> Result<OwnedFd, ProbeError> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(ProbeError::Stats)
}

impl FlowProbe {
    /// Loads the programs and attaches them, in [`ReportMode::Aggregate`].
    pub fn start() -> Result<Self, ProbeError> {
        Self::start_with(ReportMode::Aggregate)
    }

    /// Loads the programs `mode` needs and attaches them.
    ///
    /// Aggregate mode attaches to the root of the cgroup v2 hierarchy. Per-connection
    /// mode requires `sock:inet_sock_set_state`; its retransmit counter
    /// (`tcp:tcp_retransmit_skb`) is optional: when that hook is unavailable the probe
    /// logs a warning and runs without it (see [`FlowProbe::hooks`]).
    pub fn start_with(mode: ReportMode) -> Result<Self, ProbeError> {
        Self::start_with_options(mode.into())
    }

    /// Like [`FlowProbe::start_with`], with the way sockets are read chosen too.
    pub fn start_with_options(options: ProbeOptions) -> Result<Self, ProbeError> {
        let mode = options.mode;
        // The BTF and its parse (megabytes) stay alive until the programs are loaded:
        // freed before aya's load, they would raise glibc's mmap threshold, aya's own
        // large allocations would come from the heap instead, and the agent would keep
        // about 13 MiB more resident for good (measured: 23.6 MiB against 10.7).
        let kernel_btf = read_kernel_btf();
        let parsed_btf = kernel_btf.as_deref().and_then(parse_kernel_btf);
        let kernel = inspect_kernel(parsed_btf.as_ref());
        // Only the release program reads sockets with the cast.
        let (object, socket_reads) = match (mode, options.socket_reads, kernel.kfuncs.rdonly_cast) {
            (ReportMode::Aggregate, SocketReads::Fastest, Some(rdonly_cast)) => (
                Cow::Owned(kfunc::link(
                    object(),
                    kfunc_placeholder::RDONLY_CAST,
                    rdonly_cast,
                )?),
                SocketReads::Fastest,
            ),
            _ => (Cow::Borrowed(object()), SocketReads::ProbeRead),
        };
        let mut loader = EbpfLoader::new();
        // The other mode's big maps, shrunk to nothing (they are allocated at load).
        match mode {
            ReportMode::Aggregate => {
                loader.map_max_entries(names::OPEN_FLOWS_MAP, UNUSED_MAP_ENTRIES);
            }
            ReportMode::PerConnection => {
                for map in names::AGGREGATE_MAPS {
                    loader.map_max_entries(map, 1);
                }
            }
        }
        let mut ebpf = loader.load(&object).map_err(ProbeError::Object)?;
        drop(parsed_btf);
        drop(kernel_btf);
        let offsets = kernel.offsets;
        write_offsets(&mut ebpf, offsets.offsets)?;

        let (hooks, sweep_loaded) = match mode {
            ReportMode::Aggregate => (attach_release(&mut ebpf, socket_reads)?, false),
            ReportMode::PerConnection => attach_set_state(&mut ebpf, &offsets)?,
        };
        let ring: RingBuf<MapData> = typed_map(&mut ebpf, names::RECORDS_MAP)?;
        // SAFETY: the descriptor is the ring buffer map's own fd, owned by `ring` (via its
        // `MapData`), so it stays open and unchanged for as long as the `AsyncFd` holds
        // `ring`; the probe never swaps the inner value through `get_mut`.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|err| ProbeError::Poll(err.into_parts().1))?;
        let counters = typed_map(&mut ebpf, names::COUNTERS_MAP)?;
        let mut config_map: Array<MapData, ProbeConfig> = typed_map(&mut ebpf, names::CONFIG_MAP)?;
        let config = ProbeConfig {
            mode: match mode {
                ReportMode::Aggregate => report_mode::AGGREGATE,
                ReportMode::PerConnection => report_mode::PER_CONNECTION,
            },
            ..ProbeConfig::DEFAULT
        };
        config_map
            .set(0, config, 0)
            .map_err(|source| ProbeError::Map {
                map: names::CONFIG_MAP,
                source,
            })?;
        let [first, second] = names::AGGREGATE_MAPS;
        let [first_used, second_used] = names::SLOTS_USED_MAPS;
        let aggregates = AggregateMaps::new(
            [typed_map(&mut ebpf, first)?, typed_map(&mut ebpf, second)?],
            [
                typed_map(&mut ebpf, first_used)?,
                typed_map(&mut ebpf, second_used)?,
            ],
        )?;

        let open_flows = typed_map(&mut ebpf, names::OPEN_FLOWS_MAP)?;
        let server_ports = typed_map(&mut ebpf, names::SERVER_PORTS_MAP)?;

        let (socket_sweep, poll_interval) = match mode {
            ReportMode::Aggregate => match SockDiag::open() {
                Ok(diag) => (
                    Some(SocketSweep::new(diag, ServerPorts::new(server_ports))),
                    AGGREGATE_POLL_INTERVAL,
                ),
                Err(err) => {
                    tracing::warn!(error = %error_chain(&err), "no sock_diag socket: no interim records (long-lived connections are reported at close) and only bound ports count as server ports");
                    (None, AGGREGATE_POLL_INTERVAL)
                }
            },
            ReportMode::PerConnection => (None, DEFAULT_POLL_INTERVAL),
        };
        let interim = sweep_loaded || socket_sweep.is_some();
        tracing::info!(mode = ?mode, socket_reads = ?socket_reads, hooks = ?hooks, missing_offsets = ?offsets.missing, interim, "flow probe started");
        let mut probe = Self {
            mode,
            socket_reads,
            ring,
            pending: VecDeque::new(),
            socket_sweep,
            counters,
            config_map,
            config,
            aggregates,
            open_flows,
            sweep_loaded,
            poll_interval,
            offsets,
            hooks,
            ebpf,
        };
        if let Some(sweep) = probe.socket_sweep.as_mut() {
            // Listeners older than the probe: their ports were bound before it started.
            if let Err(err) = sweep.refresh_server_ports() {
                tracing::warn!(error = %error_chain(&err), "reading the listening ports failed; connections to listeners older than the agent count as outbound until the next sweep");
            }
        }
        Ok(probe)
    }

    /// The mode the probe was started in.
    pub fn mode(&self) -> ReportMode {
        self.mode
    }

    /// How the release program reads sockets: [`SocketReads::Fastest`] when it uses
    /// plain loads, [`SocketReads::ProbeRead`] otherwise (and in per-connection mode).
    pub fn socket_reads(&self) -> SocketReads {
        self.socket_reads
    }

    /// Waits for the next record.
    pub async fn recv(&mut self) -> Result<FlowRecord, ProbeError> {
        loop {
            if let Some(record) = self.try_recv() {
                return Ok(record);
            }
            self.wait().await?;
        }
    }

    /// Waits until at least one record is there, then appends up to `max` records to
    /// `out` without waiting further; returns how many were appended (at least one).
    pub async fn recv_many(
        &mut self,
        out: &mut Vec<FlowRecord>,
        max: usize,
    ) -> Result<usize, ProbeError> {
        let max = max.max(1);
        loop {
            let mut appended = 0;
            while appended < max {
                let Some(record) = self.try_recv() else {
                    break;
                };
                out.push(record);
                appended += 1;
            }
            if appended > 0 {
                return Ok(appended);
            }
            self.wait().await?;
        }
    }

    /// Sleeps until the kernel wakes the ring buffer's descriptor or the poll interval
    /// passes, whichever comes first.
    async fn wait(&mut self) -> Result<(), ProbeError> {
        let poll_interval = self.poll_interval;
        tokio::select! {
            ready = self.ring.readable_mut() => {
                let mut guard = ready.map_err(ProbeError::Poll)?;
                // Clear readiness before draining again, never after: a wakeup cleared
                // after the drain could be one for a record that arrived in between.
                guard.clear_ready();
            }
            () = tokio::time::sleep(poll_interval) => {}
        }
        Ok(())
    }

    /// Sets how often the ring buffer is looked at between the kernel's wakeups
    /// (default [`DEFAULT_POLL_INTERVAL`]): shorter means fresher records and more
    /// wakeups.
    pub fn set_poll_interval(&mut self, interval: Duration) {
        self.poll_interval = interval.max(Duration::from_millis(1));
    }

    /// Whether the probe can emit interim records ([`FlowProbe::sweep_interim`]).
    pub fn interim_supported(&self) -> bool {
        match self.mode {
            ReportMode::Aggregate => self.socket_sweep.is_some(),
            ReportMode::PerConnection => self.sweep_loaded,
        }
    }

    /// Emits interim records of open connections, once per interval.
    ///
    /// Aggregate mode reads every connected TCP socket of the host through `sock_diag`
    /// (and ignores `min_age`); see `sweep_sock_diag`. Per-connection mode asks the
    /// kernel for an interim record of every tracked connection whose last record (or
    /// open) is at least `min_age` old. The records arrive through
    /// [`FlowProbe::recv`] like the others, with kind `Interim` and counters cumulative
    /// since the open.
    ///
    /// This walks the keys of the open-flow map (one `bpf()` call per key) and runs the
    /// sweep program once per eleven sockets, so it takes a few milliseconds per
    /// thousand open connections; call it once per reporting interval. Connections the
    /// probe did not see open (older than the probe) are not tracked, so they get no
    /// interim record; their close is reported as usual.
    pub fn sweep_interim(&mut self, min_age: Duration) -> Result<SweepReport, ProbeError> {
        match self.mode {
            ReportMode::Aggregate => self.sweep_sock_diag(),
            ReportMode::PerConnection => self.sweep_open_flows(min_age),
        }
    }

    /// Aggregate mode's sweep (see `socket_sweep`).
    fn sweep_sock_diag(&mut self) -> Result<SweepReport, ProbeError> {
        let threshold = self.config.sample_threshold;
        match self.socket_sweep.as_mut() {
            Some(sweep) => sweep.sweep(threshold, &mut self.pending),
            None => Ok(SweepReport::default()),
        }
    }

    /// Per-connection mode's sweep (see [`FlowProbe::sweep_interim`]).
    fn sweep_open_flows(&mut self, min_age: Duration) -> Result<SweepReport, ProbeError> {
        let mut report = SweepReport::default();
        if !self.sweep_loaded {
            return Ok(report);
        }
        let program: &RawTracePoint = self
            .ebpf
            .program(names::SWEEP_PROGRAM)
            .ok_or(ProbeError::MissingProgram {
                program: names::SWEEP_PROGRAM,
            })?
            .try_into()
            .map_err(ProbeError::Sweep)?;
        let min_age_ns = u64::try_from(min_age.as_nanos()).unwrap_or(u64::MAX);
        let mut args = [0u64; sweep::ARGS];
        args[sweep::ARG_MIN_AGE_NS] = min_age_ns;
        let mut filled = 0;
        let mut seen = HashSet::new();
        let mut visits = 0;
        let run = |args: &[u64; sweep::ARGS]| -> Result<(), ProbeError> {
            let mut options = RawTracePointRunOptions::new();
            options.args = *args;
            program.test_run(options).map_err(ProbeError::Sweep)?;
            Ok(())
        };
        for key in self.open_flows.keys() {
            visits += 1;
            if visits > MAX_SWEEP_VISITS {
                report.truncated = true;
                break;
            }
            let sk = key.map_err(|source| ProbeError::Map {
                map: names::OPEN_FLOWS_MAP,
                source,
            })?;
            if !seen.insert(sk) {
                continue;
            }
            filled += 1;
            args[filled] = sk;
            if filled == sweep::SOCKETS_PER_RUN {
                run(&args)?;
                report.runs += 1;
                filled = 0;
                args[1..].fill(0);
            }
        }
        if filled > 0 {
            run(&args)?;
            report.runs += 1;
        }
        report.sockets = seen.len();
        Ok(report)
    }

    /// Number of connections tracked in the kernel now (walks the map's keys).
    pub fn open_flow_count(&self) -> usize {
        self.open_flows
            .keys()
            .take(MAX_SWEEP_VISITS)
            .filter(Result::is_ok)
            .count()
    }

    /// Run time and run count of each loaded program, as kept by the kernel while BPF
    /// statistics are enabled (zeros otherwise).
    pub fn program_stats(&self) -> Result<Vec<ProgramStats>, ProbeError> {
        let mut stats = Vec::new();
        for name in [
            names::SET_STATE_PROGRAM,
            names::RELEASE_PROGRAM,
            names::BIND4_PROGRAM,
            names::BIND6_PROGRAM,
            names::RETRANSMIT_PROGRAM,
            names::SWEEP_PROGRAM,
        ] {
            let Some(program) = self.ebpf.program(name) else {
                continue;
            };
            // A program that is not loaded (an optional hook) has no statistics.
            let Ok(info) = program.info() else {
                continue;
            };
            stats.push(ProgramStats {
                name,
                id: info.id(),
                run_time_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
                run_count: info.run_count(),
            });
        }
        Ok(stats)
    }

    /// Returns a record if one is waiting, without blocking.
    pub fn try_recv(&mut self) -> Option<FlowRecord> {
        if let Some(record) = self.pending.pop_front() {
            return Some(record);
        }
        loop {
            let item = self.ring.get_mut().next()?;
            match record::decode(&item) {
                Some(record) => return Some(record),
                None => tracing::warn!(len = item.len(), "skipping a malformed flow record"),
            }
        }
    }

    /// Records the kernel could not queue because the ring buffer was full.
    pub fn dropped_records(&self) -> Result<u64, ProbeError> {
        Ok(self.counters()?.ring_dropped)
    }

    /// The programs' counters since the probe started.
    pub fn counters(&self) -> Result<KernelCounters, ProbeError> {
        let read = |index: u32| -> Result<u64, ProbeError> {
            let per_cpu = self
                .counters
                .get(&index, 0)
                .map_err(|source| ProbeError::Map {
                    map: names::COUNTERS_MAP,
                    source,
                })?;
            Ok(per_cpu.iter().copied().fold(0u64, u64::saturating_add))
        };
        Ok(KernelCounters {
            ring_dropped: read(counter::RING_DROPPED)?,
            aggregate_full: read(counter::AGGREGATE_FULL)?,
            sampled_out: read(counter::SAMPLED_OUT)?,
        })
    }

    /// Keeps about `rate` (in (0, 1]) of the sockets: decided per socket by a hash (of
    /// its endpoints in aggregate mode, of its address in per-connection mode), the
    /// same for its interim records and its close.
    pub fn set_sampling_rate(&mut self, rate: f64) -> Result<(), ProbeError> {
        let rate = rate.clamp(0.0, 1.0);
        let sample_threshold = if rate >= 1.0 {
            u32::MAX
        } else {
            // Truncation is the intent: a threshold, not a count.
            (rate * f64::from(u32::MAX)) as u32
        };
        self.write_config(ProbeConfig {
            sample_threshold,
            ..self.config
        })
    }

    /// Reads and resets the kernel's aggregates: the programs move to the other map,
    /// the probe waits until none still writes the old one, then empties it into `out`.
    /// Returns how many aggregates were appended. Blocks for an RCU grace period (a few
    /// milliseconds); call it once per interval.
    pub fn drain_aggregates(
        &mut self,
        out: &mut Vec<KernelAggregate>,
    ) -> Result<usize, ProbeError> {
        if self.mode != ReportMode::Aggregate {
            return Ok(0);
        }
        let old = self.config.active_aggregates as usize & 1;
        self.write_config(ProbeConfig {
            active_aggregates: (old ^ 1) as u32,
            ..self.config
        })?;
        self.aggregates.wait_for_programs()?;
        self.aggregates.drain(old, out)
    }

    fn write_config(&mut self, config: ProbeConfig) -> Result<(), ProbeError> {
        self.config_map
            .set(0, config, 0)
            .map_err(|source| ProbeError::Map {
                map: names::CONFIG_MAP,
                source,
            })?;
        self.config = config;
        Ok(())
    }

    /// The kernel offsets in use, and the fields that were not found.
    pub fn offsets(&self) -> &ResolvedOffsets {
        &self.offsets
    }

    /// The hooks attached, e.g. `tracepoint sock/inet_sock_set_state`.
    pub fn hooks(&self) -> &[String] {
        &self.hooks
    }
}

/// Reads the kernel structure offsets from BTF; without BTF every counter is 0 and
/// inbound flows keep their open-time credit.
/// What the loader needs to know of the running kernel, from its BTF.
struct KernelFacts {
    offsets: ResolvedOffsets,
    kfuncs: KernelKfuncs,
}

/// Reads the kernel's BTF (several megabytes), `None` (logged) when it cannot be read.
fn read_kernel_btf() -> Option<Vec<u8>> {
    std::fs::read(btf::VMLINUX_BTF)
        .inspect_err(|err| no_btf(err))
        .ok()
}

/// Parses the kernel's BTF, `None` (logged) when it is not BTF.
fn parse_kernel_btf(raw: &[u8]) -> Option<btf::Btf<'_>> {
    btf::Btf::parse(raw).inspect_err(|err| no_btf(err)).ok()
}

fn no_btf(why: &dyn std::fmt::Display) {
    tracing::warn!(path = btf::VMLINUX_BTF, error = %why, "no kernel BTF: flow counters will be 0");
}

/// The field offsets and the kfuncs, from the kernel's BTF. Without BTF every offset is
/// unknown (the reads that need one are skipped) and no kfunc is used.
fn inspect_kernel(btf: Option<&btf::Btf<'_>>) -> KernelFacts {
    let Some(btf) = btf else {
        return KernelFacts {
            offsets: ResolvedOffsets {
                offsets: KernelOffsets::UNKNOWN,
                missing: vec!["(all)"],
            },
            kfuncs: KernelKfuncs::default(),
        };
    };
    let offsets = btf::kernel_offsets(btf);
    if !offsets.missing.is_empty() {
        tracing::warn!(missing = ?offsets.missing, "kernel fields not found in BTF: the reads that need them are skipped");
    }
    KernelFacts {
        offsets,
        kfuncs: KernelKfuncs::find(btf),
    }
}

/// The statistics of programs known by id (from [`FlowProbe::program_stats`] taken
/// earlier), read from the kernel's list of loaded programs: for callers that handed the
/// probe to a pipeline and can no longer ask it. Programs no longer loaded are absent.
pub fn program_stats_by_id(programs: &[ProgramStats]) -> Vec<ProgramStats> {
    let mut found = Vec::new();
    for info in aya::programs::loaded_programs().flatten() {
        if let Some(known) = programs.iter().find(|p| p.id == info.id()) {
            found.push(ProgramStats {
                name: known.name,
                id: known.id,
                run_time_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
                run_count: info.run_count(),
            });
        }
    }
    found
}

/// Loads (never attaches) the interim sweep program.
fn load_sweep(ebpf: &mut Ebpf) -> Result<(), ProbeError> {
    let program = names::SWEEP_PROGRAM;
    let sweep: &mut RawTracePoint = typed_program(ebpf, program)?;
    sweep
        .load()
        .map_err(|source| ProbeError::Load { program, source })
}

/// Whether the socket endpoint offsets interim records need are missing.
fn has_unknown_sock_offsets(offsets: &KernelOffsets) -> bool {
    let sock = offsets.sock;
    [
        sock.family,
        sock.num,
        sock.dport,
        sock.daddr,
        sock.rcv_saddr,
    ]
    .contains(&paved_flow_common::OFFSET_UNKNOWN)
}

fn write_offsets(ebpf: &mut Ebpf, offsets: KernelOffsets) -> Result<(), ProbeError> {
    let map = ebpf
        .map_mut(names::OFFSETS_MAP)
        .ok_or(ProbeError::MissingMap {
            map: names::OFFSETS_MAP,
        })?;
    let mut array: Array<_, KernelOffsets> =
        Array::try_from(map).map_err(|source| ProbeError::Map {
            map: names::OFFSETS_MAP,
            source,
        })?;
    array.set(0, offsets, 0).map_err(|source| ProbeError::Map {
        map: names::OFFSETS_MAP,
        source,
    })
}

/// Takes map `map` out of the object as the map type `M`.
fn typed_map<M>(ebpf: &mut Ebpf, map: &'static str) -> Result<M, ProbeError>
where
    M: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let taken = ebpf.take_map(map).ok_or(ProbeError::MissingMap { map })?;
    M::try_from(taken).map_err(|source| ProbeError::Map { map, source })
}

/// Finds program `program` in the object as the program type `P`.
fn typed_program<'a, P>(ebpf: &'a mut Ebpf, program: &'static str) -> Result<&'a mut P, ProbeError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    ebpf.program_mut(program)
        .ok_or(ProbeError::MissingProgram { program })?
        .try_into()
        .map_err(|source| ProbeError::Load { program, source })
}

/// The error of attaching `program` to `hook`, for `map_err`.
fn attach_failed(program: &'static str, hook: &str) -> impl FnOnce(ProgramError) -> ProbeError {
    let hook = hook.to_string();
    move |source| ProbeError::Attach {
        program,
        hook,
        source,
    }
}

/// Loads `program` and attaches it to each of `category/names`; returns the hooks.
fn attach_tracepoint(
    ebpf: &mut Ebpf,
    program: &'static str,
    category: &str,
    names: &[&str],
) -> Result<Vec<String>, ProbeError> {
    let tracepoint: &mut TracePoint = typed_program(ebpf, program)?;
    tracepoint
        .load()
        .map_err(|source| ProbeError::Load { program, source })?;
    let mut hooks = Vec::with_capacity(names.len());
    for name in names {
        let hook = format!("tracepoint {category}/{name}");
        tracepoint
            .attach(category, name)
            .map_err(attach_failed(program, &hook))?;
        hooks.push(hook);
    }
    Ok(hooks)
}

/// Per-connection mode's hooks: checks the tracepoint layouts, attaches the state-change
/// program and (when its hook exists) the retransmit counter, and loads the interim
/// sweep. Returns the hooks and whether interim records are available (the sweep
/// loaded and the socket offsets it reads are known).
fn attach_set_state(
    ebpf: &mut Ebpf,
    offsets: &ResolvedOffsets,
) -> Result<(Vec<String>, bool), ProbeError> {
    let tracefs_root = tracefs::ensure_mounted()?;
    tracefs::check_layout(
        &tracefs_root,
        inet_sock_set_state::CATEGORY,
        inet_sock_set_state::NAME,
        &inet_sock_set_state::FIELDS,
    )?;
    let mut hooks = attach_tracepoint(
        ebpf,
        names::SET_STATE_PROGRAM,
        inet_sock_set_state::CATEGORY,
        &[inet_sock_set_state::NAME],
    )?;
    match attach_optional(
        ebpf,
        &tracefs_root,
        names::RETRANSMIT_PROGRAM,
        tcp_retransmit_skb::CATEGORY,
        &[tcp_retransmit_skb::NAME],
        &tcp_retransmit_skb::FIELDS,
    ) {
        Ok(attached) => hooks.extend(attached),
        Err(err) => tracing::warn!(
            error = %error_chain(&err),
            "retransmit counting disabled: records keep only tcp_sock.total_retrans"
        ),
    }
    let sweep_loaded = match load_sweep(ebpf) {
        Ok(()) => true,
        Err(err) => {
            tracing::warn!(
                error = %error_chain(&err),
                "interim records disabled: long-lived connections are reported only at close"
            );
            false
        }
    };
    if sweep_loaded && has_unknown_sock_offsets(&offsets.offsets) {
        tracing::warn!("socket endpoint offsets missing from BTF: interim records disabled");
        return Ok((hooks, false));
    }
    Ok((hooks, sweep_loaded))
}

/// Attaches the release program that reads sockets as `reads` says, and the bind
/// programs, to the root of the cgroup v2 hierarchy, so they run for every socket on
/// the host.
fn attach_release(ebpf: &mut Ebpf, reads: SocketReads) -> Result<Vec<String>, ProbeError> {
    let root = crate::cgroup::root().map_err(|source| ProbeError::Cgroup { source })?;
    let cgroup = std::fs::File::open(&root).map_err(|source| ProbeError::Cgroup { source })?;
    let release = match reads {
        SocketReads::Fastest => names::RELEASE_PROGRAM,
        SocketReads::ProbeRead => names::RELEASE_PROBE_READ_PROGRAM,
    };
    let mut hooks = Vec::new();
    for (program, hook) in [
        (release, "cgroup/sock_release"),
        (names::BIND4_PROGRAM, "cgroup/post_bind4"),
        (names::BIND6_PROGRAM, "cgroup/post_bind6"),
    ] {
        let sock: &mut CgroupSock = typed_program(ebpf, program)?;
        sock.load()
            .map_err(|source| ProbeError::Load { program, source })?;
        let hook = format!("{hook} {}", root.display());
        // A link (the kernel picks it from 5.7 on) never displaces other programs on
        // the cgroup: links always run alongside them.
        sock.attach(&cgroup, CgroupAttachMode::Single)
            .map_err(attach_failed(program, &hook))?;
        hooks.push(hook);
    }
    Ok(hooks)
}

/// Like [`attach_tracepoint`], after checking the record layout of every tracepoint.
fn attach_optional(
    ebpf: &mut Ebpf,
    tracefs_root: &Path,
    program: &'static str,
    category: &str,
    names: &[&str],
    fields: &[paved_flow_common::kernel::TracepointField],
) -> Result<Vec<String>, ProbeError> {
    for name in names {
        tracefs::check_layout(tracefs_root, category, name, fields)?;
    }
    attach_tracepoint(ebpf, program, category, names)
}

/// An error and its sources on one line, for logs.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
