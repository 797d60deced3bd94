//! Reads of the final counters from `struct tcp_sock` at offsets found in BTF by the loader.

use paved_flow_common::{FlowRecord, TcpSockOffsets};

use crate::{field::read, maps::KERNEL_OFFSETS};

/// Fills the counter fields of `record` from the socket at `sk`.
#[inline(always)]
pub fn fill_counters(sk: u64, record: &mut FlowRecord) {
    let offsets = match KERNEL_OFFSETS.get(0) {
        Some(offsets) => offsets.tcp_sock,
        None => TcpSockOffsets::UNKNOWN,
    };
    fill_counters_with(sk, &offsets, record);
}

/// Like [`fill_counters`], with the offsets already at hand.
#[inline(always)]
pub fn fill_counters_with(sk: u64, offsets: &TcpSockOffsets, record: &mut FlowRecord) {
    record.bytes_acked = read::<u64>(sk, offsets.bytes_acked).unwrap_or(0);
    record.bytes_received = read::<u64>(sk, offsets.bytes_received).unwrap_or(0);
    record.segs_in = read::<u32>(sk, offsets.segs_in).unwrap_or(0);
    record.segs_out = read::<u32>(sk, offsets.segs_out).unwrap_or(0);
    record.total_retrans = read::<u32>(sk, offsets.total_retrans).unwrap_or(0);
    // The kernel keeps the smoothed RTT scaled by 8.
    record.srtt_us = read::<u32>(sk, offsets.srtt_us).unwrap_or(0) >> 3;
}

/// Adds to `record.bytes_acked` what the application wrote that the peer has not
/// acknowledged yet (`write_seq - snd_una`): the owner's `close()` comes before the
/// last bytes are acknowledged (a server writes its answer and closes at once), and
/// those bytes are still sent after it. Sequence numbers wrap, hence the wrapping
/// difference.
#[inline(always)]
pub fn add_unacknowledged(sk: u64, offsets: &TcpSockOffsets, record: &mut FlowRecord) {
    if let (Some(write_seq), Some(snd_una)) = (
        read::<u32>(sk, offsets.write_seq),
        read::<u32>(sk, offsets.snd_una),
    ) {
        record.bytes_acked += u64::from(write_seq.wrapping_sub(snd_una));
    }
}
