//! Reads from `struct sock_common` at offsets found in BTF: a socket's endpoints (for
//! the interim sweep, which runs outside the tracepoints whose records carry them) and
//! its cookie (for the release program).

use paved_flow_common::{
    FlowRecord, SockOffsets, address_bytes,
    kernel::{AF_INET, AF_INET6},
    v4_mapped_words,
};

use crate::field::KernelMemory;

/// Reads the socket's cookie (`skc_cookie`) at `offset`: 0 when no one has asked for it,
/// or when the offset is unknown.
#[inline(always)]
pub fn cookie(sk: impl KernelMemory, offset: u32) -> u64 {
    sk.read::<u64>(offset).unwrap_or(0)
}

/// Fills family, ports and addresses of `record` from the socket at `sk`, the same way
/// `sock:inet_sock_set_state` reports them (v4-mapped for IPv4, v6 fields for an
/// `AF_INET6` socket). Returns `false` when the endpoints could not be read.
#[inline(always)]
pub fn fill_endpoints(
    sk: impl KernelMemory,
    offsets: &SockOffsets,
    record: &mut FlowRecord,
) -> bool {
    let Some(family) = sk.read::<u16>(offsets.family) else {
        return false;
    };
    let (Some(num), Some(dport)) = (sk.read::<u16>(offsets.num), sk.read::<u16>(offsets.dport))
    else {
        return false;
    };
    record.family = family;
    record.sport = num;
    // `skc_dport` is in network order, `skc_num` in host order.
    record.dport = u16::from_be(dport);
    if family == AF_INET {
        let (Some(saddr), Some(daddr)) = (
            sk.read::<u32>(offsets.rcv_saddr),
            sk.read::<u32>(offsets.daddr),
        ) else {
            return false;
        };
        record.saddr = address_bytes(v4_mapped_words(saddr));
        record.daddr = address_bytes(v4_mapped_words(daddr));
        true
    } else if family == AF_INET6 {
        let (Some(saddr), Some(daddr)) = (
            sk.read::<[u64; 2]>(offsets.v6_rcv_saddr),
            sk.read::<[u64; 2]>(offsets.v6_daddr),
        ) else {
            return false;
        };
        record.saddr = address_bytes(saddr);
        record.daddr = address_bytes(daddr);
        true
    } else {
        false
    }
}
