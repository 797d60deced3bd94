//! Reads from `struct sock_common` at offsets found in BTF: a socket's endpoints (for
//! the interim sweep, which runs outside the tracepoints whose records carry them) and
//! its cookie (for the release program).

use paved_flow_common::{
    FlowRecord, SockOffsets,
    kernel::{AF_INET, AF_INET6},
};

use crate::{
    field::read,
    set_state::{bytes16, v4_mapped},
};

/// Reads the socket's cookie (`skc_cookie`) at `offset`: 0 when no one has asked for it,
/// or when the offset is unknown.
#[inline(always)]
pub fn cookie(sk: u64, offset: u32) -> u64 {
    read::<u64>(sk, offset).unwrap_or(0)
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
