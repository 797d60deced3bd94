//! Reads of a socket's endpoints from `struct sock_common` at offsets found in BTF.
//!
//! Only the interim sweep needs this: it runs outside the tracepoints whose records
//! carry the endpoints (the state change and close paths read those instead).

use aya_ebpf::helpers::bpf_probe_read_kernel;
use paved_flow_common::{
    FlowRecord, OFFSET_UNKNOWN, SockOffsets,
    kernel::{AF_INET, AF_INET6},
};

use crate::set_state::{bytes16, v4_mapped};

/// Reads a `T` at `sk + offset`, or `None` when the offset is unknown or the read faults.
#[inline(always)]
pub fn read<T>(sk: u64, offset: u32) -> Option<T> {
    if offset == OFFSET_UNKNOWN {
        return None;
    }
    let addr = sk.wrapping_add(u64::from(offset)) as *const T;
    // SAFETY: bpf_probe_read_kernel copies through the kernel's fault-handling path, so
    // a wrong address yields an error, never a crash.
    unsafe { bpf_probe_read_kernel(addr) }.ok()
}

/// Fills family, ports and addresses of `record` from the socket at `sk`, the same way
/// `sock:inet_sock_set_state` reports them (v4-mapped for IPv4, v6 fields for an
/// `AF_INET6` socket). Returns `false` when the endpoints could not be read.
#[inline(always)]
pub fn fill_endpoints(sk: u64, offsets: &SockOffsets, record: &mut FlowRecord) -> bool {
    let Some(family) = read::<u16>(sk, offsets.family) else {
        return false;
    };
    let (Some(num), Some(dport)) = (read::<u16>(sk, offsets.num), read::<u16>(sk, offsets.dport))
    else {
        return false;
    };
    record.family = family;
    record.sport = num;
    // `skc_dport` is in network order, `skc_num` in host order.
    record.dport = u16::from_be(dport);
    if family == AF_INET {
        let (Some(saddr), Some(daddr)) = (
            read::<u32>(sk, offsets.rcv_saddr),
            read::<u32>(sk, offsets.daddr),
        ) else {
            return false;
        };
        record.saddr = v4_mapped(saddr);
        record.daddr = v4_mapped(daddr);
        true
    } else if family == AF_INET6 {
        let (Some(saddr), Some(daddr)) = (
            read::<[u64; 2]>(sk, offsets.v6_rcv_saddr),
            read::<[u64; 2]>(sk, offsets.v6_daddr),
        ) else {
            return false;
        };
        record.saddr = bytes16(saddr);
        record.daddr = bytes16(daddr);
        true
    } else {
        false
    }
}
