//! Reading the kernel's per-interval aggregates.
//!
//! The release path sums connections into one of two per-CPU tables, the one
//! `ProbeConfig::active_aggregates` names. To read a consistent interval the agent
//!
//! 1. points the programs at the other map (one array write),
//! 2. waits until every program that might still be writing the old map has finished
//!    ([`ProgramBarrier`]: an RCU grace period, since BPF programs run inside RCU
//!    read-side critical sections), then
//! 3. reads the old table's slots, sums each key over slots and CPUs, and empties the
//!    slots it found in use.
//!
//! Nothing writes the old table during step 3, so no increment is lost between reading
//! a slot and emptying it.

use std::{
    collections::HashMap,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use aya::maps::{MapData, MapError, PerCpuArray, PerCpuValues};
use paved_flow_common::{
    AggregateKey, AggregateSlot, AggregateValue, RTT_BUCKETS, SLOT_WORDS, SlotBits, names,
};

use crate::ProbeError;

/// One aggregate read from the kernel: its key and its sums over every CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelAggregate {
    /// What the connections were summed under.
    pub key: AggregateKey,
    /// The sums; `first_ns`, `pid` and `comm` are those of the earliest CPU.
    pub value: AggregateValue,
    /// The latest a connection of it can have closed (`CLOCK_MONOTONIC` ns): when the
    /// table was read, since the kernel keeps no time per close.
    pub last_ns: u64,
}

impl KernelAggregate {
    /// Sums the per-CPU values of `key`, read at `read_ns`; `None` when no CPU summed
    /// anything.
    pub fn sum(
        key: AggregateKey,
        per_cpu: impl IntoIterator<Item = AggregateValue>,
        read_ns: u64,
    ) -> Option<Self> {
        let mut total: Option<AggregateValue> = None;
        for v in per_cpu {
            if v.first_ns == 0 {
                continue;
            }
            let Some(t) = total.as_mut() else {
                total = Some(v);
                continue;
            };
            if v.first_ns < t.first_ns {
                t.first_ns = v.first_ns;
                t.pid = v.pid;
                t.comm = v.comm;
            }
            t.bytes_acked = t.bytes_acked.saturating_add(v.bytes_acked);
            t.bytes_received = t.bytes_received.saturating_add(v.bytes_received);
            t.segs_in = t.segs_in.saturating_add(v.segs_in);
            t.segs_out = t.segs_out.saturating_add(v.segs_out);
            t.connections = t.connections.saturating_add(v.connections);
            t.closed = t.closed.saturating_add(v.closed);
            t.total_retrans = t.total_retrans.saturating_add(v.total_retrans);
            for (sum, add) in t.rtt.iter_mut().zip(v.rtt.iter()) {
                *sum = sum.saturating_add(*add);
            }
        }
        total.map(|value| Self {
            key,
            value,
            last_ns: read_ns,
        })
    }

    /// `(bucket, count)` of the RTT histogram's non-empty buckets.
    pub fn rtt_buckets(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        (0..RTT_BUCKETS)
            .map(|b| (b, self.value.rtt[b]))
            .filter(|&(_, count)| count > 0)
    }
}

/// The two aggregate tables, their slot-use bitmaps, and the means to switch between
/// the tables safely.
pub struct AggregateMaps {
    maps: [PerCpuArray<MapData, AggregateSlot>; 2],
    used: [PerCpuArray<MapData, SlotBits>; 2],
    barrier: ProgramBarrier,
}

impl AggregateMaps {
    /// Wraps the object's tables (`names::AGGREGATE_MAPS`) and bitmaps
    /// (`names::SLOTS_USED_MAPS`).
    pub fn new(
        maps: [PerCpuArray<MapData, AggregateSlot>; 2],
        used: [PerCpuArray<MapData, SlotBits>; 2],
    ) -> Result<Self, ProbeError> {
        Ok(Self {
            maps,
            used,
            barrier: ProgramBarrier::new().map_err(ProbeError::Barrier)?,
        })
    }

    /// Waits for the programs running now to finish (after the active table changed).
    pub fn wait_for_programs(&self) -> Result<(), ProbeError> {
        self.barrier.wait().map_err(ProbeError::Barrier)
    }

    /// Reads and empties table `index`, which no program may be writing any more: only
    /// the slots its bitmap marks (a handful, usually, of 1,024). A key can sit in
    /// different slots on different CPUs (each CPU probes its own copy), so slots are
    /// merged by key before the CPUs are summed.
    pub fn drain(
        &mut self,
        index: usize,
        out: &mut Vec<KernelAggregate>,
    ) -> Result<usize, ProbeError> {
        let index = index & 1;
        let used_error = |source| ProbeError::Map {
            map: names::SLOTS_USED_MAPS[index],
            source,
        };
        let map_error = |source| ProbeError::Map {
            map: names::AGGREGATE_MAPS[index],
            source,
        };
        // The table is no longer written: every close summed in it happened before now.
        let read_ns = crate::clock::monotonic_ns();
        let used_per_cpu = self.used[index].get(&0, 0).map_err(used_error)?;
        let cpus = used_per_cpu.len();
        let mut used: SlotBits = [0; SLOT_WORDS];
        for bits in used_per_cpu.iter() {
            for (all, cpu) in used.iter_mut().zip(bits) {
                *all |= cpu;
            }
        }
        let map = &mut self.maps[index];
        let mut by_key: HashMap<AggregateKey, Vec<AggregateValue>> = HashMap::new();
        for slot in used_slots(&used) {
            let per_cpu = map.get(&slot, 0).map_err(map_error)?;
            for cpu_slot in per_cpu.iter().filter(|s| s.value.closed > 0) {
                by_key.entry(cpu_slot.key).or_default().push(cpu_slot.value);
            }
            // aya's per-CPU values cannot be cloned: one set of empty slots per write.
            let empty = per_cpu_copies(AggregateSlot::EMPTY, cpus).map_err(map_error)?;
            map.set(slot, empty, 0).map_err(map_error)?;
        }
        let no_slots = per_cpu_copies([0u64; SLOT_WORDS], cpus).map_err(used_error)?;
        self.used[index].set(0, no_slots, 0).map_err(used_error)?;
        let before = out.len();
        for (key, values) in by_key {
            if let Some(aggregate) = KernelAggregate::sum(key, values, read_ns) {
                out.push(aggregate);
            }
        }
        Ok(out.len() - before)
    }
}

/// The slot indices whose bit is set in `used`.
fn used_slots(used: &SlotBits) -> impl Iterator<Item = u32> + '_ {
    used.iter().enumerate().flat_map(|(word, &bits)| {
        (0..64u32)
            .filter(move |bit| bits & (1 << bit) != 0)
            .map(move |bit| word as u32 * 64 + bit)
    })
}

/// `value` once per CPU, as a per-CPU map write takes it.
fn per_cpu_copies<T: aya::Pod>(value: T, cpus: usize) -> Result<PerCpuValues<T>, MapError> {
    PerCpuValues::try_from(vec![value; cpus]).map_err(MapError::IoError)
}

/// Waits for an RCU grace period, so that every BPF program that was running when
/// [`ProgramBarrier::wait`] was called has returned.
///
/// There is no system call for that on its own. Updating a slot of a map-of-maps
/// makes the kernel call `synchronize_rcu()` before returning (`maybe_wait_bpf_programs`
/// in `kernel/bpf/syscall.c`, so that user space knows no program still uses the old
/// inner map); the kernel's own selftests use the same trick. The barrier keeps a
/// one-slot `ARRAY_OF_MAPS` and a tiny inner array for it.
pub struct ProgramBarrier {
    outer: OwnedFd,
    inner: OwnedFd,
}

/// `BPF_MAP_CREATE`.
const BPF_MAP_CREATE: libc::c_long = 0;
/// `BPF_MAP_UPDATE_ELEM`.
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
/// `BPF_MAP_TYPE_ARRAY`.
const BPF_MAP_TYPE_ARRAY: u32 = 2;
/// `BPF_MAP_TYPE_ARRAY_OF_MAPS`.
const BPF_MAP_TYPE_ARRAY_OF_MAPS: u32 = 12;

/// The leading fields of `union bpf_attr` for `BPF_MAP_CREATE`; the rest stays zero.
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    /// Zero padding up to the size the kernel accepts for this command's fields.
    rest: [u64; 12],
}

/// `union bpf_attr` for `BPF_MAP_UPDATE_ELEM`.
#[repr(C)]
struct MapUpdateAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// Calls `bpf(cmd, attr, size_of(attr))`.
///
/// # Safety
/// `attr` must be a valid `union bpf_attr` prefix for `cmd`, and every pointer in it
/// must be valid for the duration of the call.
unsafe fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: forwarded to the caller; the size passed is the size of `attr`, so the
    // kernel reads no byte beyond it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

impl ProgramBarrier {
    /// Creates the two small maps.
    pub fn new() -> io::Result<Self> {
        let create = |map_type, inner_map_fd| -> io::Result<OwnedFd> {
            let mut attr = MapCreateAttr {
                map_type,
                key_size: 4,
                value_size: 4,
                max_entries: 1,
                inner_map_fd,
                ..MapCreateAttr::default()
            };
            // SAFETY: a zero-padded `BPF_MAP_CREATE` attribute without pointers.
            let fd = unsafe { bpf(BPF_MAP_CREATE, &mut attr) }?;
            let fd = i32::try_from(fd).map_err(|_| io::Error::other("descriptor out of range"))?;
            // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        };
        let inner = create(BPF_MAP_TYPE_ARRAY, 0)?;
        let inner_fd = u32::try_from(inner.as_raw_fd())
            .map_err(|_| io::Error::other("negative descriptor"))?;
        let outer = create(BPF_MAP_TYPE_ARRAY_OF_MAPS, inner_fd)?;
        Ok(Self { outer, inner })
    }

    /// Returns after an RCU grace period (typically a few milliseconds).
    pub fn wait(&self) -> io::Result<()> {
        let key: u32 = 0;
        let value: u32 = u32::try_from(self.inner.as_raw_fd())
            .map_err(|_| io::Error::other("negative descriptor"))?;
        let mut attr = MapUpdateAttr {
            map_fd: u32::try_from(self.outer.as_raw_fd())
                .map_err(|_| io::Error::other("negative descriptor"))?,
            pad: 0,
            key: &key as *const u32 as u64,
            value: &value as *const u32 as u64,
            flags: 0,
        };
        // SAFETY: `key` and `value` live until the call returns; sizes match the map's.
        unsafe { bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use paved_flow_common::COMM_LEN;

    use super::*;

    fn value(first_ns: u64, closed: u32, bytes: u64, pid: u32) -> AggregateValue {
        let mut rtt = [0; RTT_BUCKETS];
        rtt[20] = closed;
        AggregateValue {
            first_ns,
            bytes_acked: bytes,
            bytes_received: bytes * 2,
            segs_in: 3,
            segs_out: 4,
            connections: closed,
            closed,
            total_retrans: 1,
            pid,
            comm: [b'x'; COMM_LEN],
            rtt,
        }
    }

    fn key() -> AggregateKey {
        AggregateKey {
            local_addr: [1; 2],
            remote_addr: [2; 2],
            cgroup_id: 7,
            tgid: 9,
            service_port: 443,
            direction: 1,
            pad: 0,
        }
    }

    #[test]
    fn per_cpu_values_are_summed_and_the_earliest_cpu_names_the_task() {
        let empty = AggregateValue {
            first_ns: 0,
            ..value(0, 0, 0, 0)
        };
        let sum = KernelAggregate::sum(
            key(),
            [value(500, 2, 100, 11), empty, value(200, 3, 10, 12)],
            900,
        )
        .expect("two CPUs summed something");
        assert_eq!(sum.value.first_ns, 200);
        assert_eq!(sum.last_ns, 900, "the read time");
        assert_eq!(sum.value.pid, 12);
        assert_eq!(sum.value.closed, 5);
        assert_eq!(sum.value.bytes_acked, 110);
        assert_eq!(sum.value.bytes_received, 220);
        assert_eq!(sum.value.segs_in, 6);
        assert_eq!(sum.rtt_buckets().collect::<Vec<_>>(), vec![(20, 5)]);
    }

    #[test]
    fn used_slots_lists_the_set_bits_in_order() {
        let mut used = [0u64; SLOT_WORDS];
        for slot in [0u32, 5, 63, 64, 1_023] {
            let (word, bit) = paved_flow_common::slot_bit(slot);
            used[word] |= bit;
        }
        assert_eq!(used_slots(&used).collect::<Vec<_>>(), [0, 5, 63, 64, 1_023]);
    }

    #[test]
    fn a_key_no_cpu_summed_into_is_no_aggregate() {
        let empty = value(0, 0, 0, 0);
        assert_eq!(KernelAggregate::sum(key(), [empty, empty], 900), None);
    }
}
