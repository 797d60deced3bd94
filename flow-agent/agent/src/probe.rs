//! [`FlowProbe`]: loads the BPF object, attaches its programs and yields flow records.
//!
//! Records are delivered asynchronously: the ring buffer's file descriptor is registered
//! with tokio ([`AsyncFd`]), so [`FlowProbe::recv`] sleeps until the kernel signals data.
//! [`FlowProbe::start`] must therefore run inside a tokio runtime.

use std::path::Path;

use aya::{
    Ebpf,
    maps::{Array, MapData, PerCpuArray, RingBuf},
    programs::TracePoint,
};
use paved_flow_common::{
    FlowRecord, KernelOffsets,
    kernel::{inet_sock_set_state, sys_exit_accept, tcp_retransmit_skb},
    names,
};
use tokio::io::{Interest, unix::AsyncFd};

use crate::{
    btf::{self, ResolvedOffsets},
    error::ProbeError,
    record, tracefs,
};

/// The BPF object built by `build.rs` from `flow-agent/ebpf`.
fn object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/paved-flow-ebpf.o"))
}

/// A running flow probe: its programs stay attached until it is dropped.
pub struct FlowProbe {
    ring: AsyncFd<RingBuf<MapData>>,
    dropped: PerCpuArray<MapData, u64>,
    offsets: ResolvedOffsets,
    hooks: Vec<String>,
    // Owns the programs and their links; declared last so it is dropped last.
    _ebpf: Ebpf,
}

impl FlowProbe {
    /// Loads the programs and attaches them.
    ///
    /// `sock:inet_sock_set_state` is required. The retransmit counter
    /// (`tcp:tcp_retransmit_skb`) and the accept attribution (`syscalls:sys_exit_accept`
    /// and `sys_exit_accept4`) are optional: when their hook is unavailable the probe
    /// logs a warning and runs without them (see [`FlowProbe::hooks`]).
    pub fn start() -> Result<Self, ProbeError> {
        let tracefs_root = tracefs::ensure_mounted()?;
        tracefs::check_layout(
            &tracefs_root,
            inet_sock_set_state::CATEGORY,
            inet_sock_set_state::NAME,
            &inet_sock_set_state::FIELDS,
        )?;

        let mut ebpf = Ebpf::load(object()).map_err(ProbeError::Object)?;
        let offsets = resolve_offsets();
        write_offsets(&mut ebpf, offsets.offsets)?;

        let mut hooks = Vec::new();
        hooks.extend(attach_tracepoint(
            &mut ebpf,
            names::SET_STATE_PROGRAM,
            inet_sock_set_state::CATEGORY,
            &[inet_sock_set_state::NAME],
        )?);
        match attach_optional(
            &mut ebpf,
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
        match attach_optional(
            &mut ebpf,
            &tracefs_root,
            names::ACCEPT_PROGRAM,
            sys_exit_accept::CATEGORY,
            &sys_exit_accept::NAMES,
            &sys_exit_accept::FIELDS,
        ) {
            Ok(attached) => hooks.extend(attached),
            Err(err) => tracing::warn!(
                error = %error_chain(&err),
                "accept attribution disabled: inbound flows are credited to the task current at the passive open"
            ),
        }

        let ring = take_map(&mut ebpf, names::RECORDS_MAP)?;
        let ring = RingBuf::try_from(ring).map_err(|source| ProbeError::Map {
            map: names::RECORDS_MAP,
            source,
        })?;
        // SAFETY: the descriptor is the ring buffer map's own fd, owned by `ring` (via its
        // `MapData`), so it stays open and unchanged for as long as the `AsyncFd` holds
        // `ring`; the probe never swaps the inner value through `get_mut`.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|err| ProbeError::Poll(err.into_parts().1))?;
        let dropped = take_map(&mut ebpf, names::DROPPED_MAP)?;
        let dropped = PerCpuArray::try_from(dropped).map_err(|source| ProbeError::Map {
            map: names::DROPPED_MAP,
            source,
        })?;

        tracing::info!(hooks = ?hooks, missing_offsets = ?offsets.missing, "flow probe started");
        Ok(Self {
            ring,
            dropped,
            offsets,
            hooks,
            _ebpf: ebpf,
        })
    }

    /// Waits for the next record.
    pub async fn recv(&mut self) -> Result<FlowRecord, ProbeError> {
        loop {
            if let Some(record) = self.try_recv() {
                return Ok(record);
            }
            let mut guard = self.ring.readable_mut().await.map_err(ProbeError::Poll)?;
            // Clear readiness before draining again, never after: the kernel only wakes
            // a consumer that has caught up, so a wakeup cleared after the drain could be
            // one for a record that arrived in between, and would be lost for good.
            guard.clear_ready();
        }
    }

    /// Returns a record if one is waiting, without blocking.
    pub fn try_recv(&mut self) -> Option<FlowRecord> {
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
        let per_cpu = self.dropped.get(&0, 0).map_err(|source| ProbeError::Map {
            map: names::DROPPED_MAP,
            source,
        })?;
        Ok(per_cpu.iter().copied().fold(0u64, u64::saturating_add))
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
fn resolve_offsets() -> ResolvedOffsets {
    let unknown = |why: &dyn std::fmt::Display| {
        tracing::warn!(path = btf::VMLINUX_BTF, error = %why, "no kernel BTF: flow counters will be 0");
        ResolvedOffsets {
            offsets: KernelOffsets::UNKNOWN,
            missing: vec!["(all)"],
        }
    };
    let raw = match std::fs::read(btf::VMLINUX_BTF) {
        Ok(raw) => raw,
        Err(err) => return unknown(&err),
    };
    match btf::Btf::parse(&raw) {
        Ok(parsed) => {
            let resolved = btf::kernel_offsets(&parsed);
            if !resolved.missing.is_empty() {
                tracing::warn!(missing = ?resolved.missing, "kernel fields not found in BTF: the reads that need them are skipped");
            }
            resolved
        }
        Err(err) => unknown(&err),
    }
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

fn take_map(ebpf: &mut Ebpf, map: &'static str) -> Result<aya::maps::Map, ProbeError> {
    ebpf.take_map(map).ok_or(ProbeError::MissingMap { map })
}

/// Loads `program` and attaches it to each of `category/names`; returns the hooks.
fn attach_tracepoint(
    ebpf: &mut Ebpf,
    program: &'static str,
    category: &str,
    names: &[&str],
) -> Result<Vec<String>, ProbeError> {
    let tracepoint: &mut TracePoint = ebpf
        .program_mut(program)
        .ok_or(ProbeError::MissingProgram { program })?
        .try_into()
        .map_err(|source| ProbeError::Load { program, source })?;
    tracepoint
        .load()
        .map_err(|source| ProbeError::Load { program, source })?;
    let mut hooks = Vec::with_capacity(names.len());
    for name in names {
        let hook = format!("tracepoint {category}/{name}");
        tracepoint
            .attach(category, name)
            .map_err(|source| ProbeError::Attach {
                program,
                hook: hook.clone(),
                source,
            })?;
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
