//! Reads of the final counters from `struct tcp_sock` at offsets found in BTF by the loader.

use paved_flow_common::{FlowRecord, TcpSockOffsets};

use crate::{
    field::{KernelMemory, ProbeRead},
    maps::KERNEL_OFFSETS,
};

/// A socket's counters as read from `struct tcp_sock` (0 where a field's offset is
/// unknown).
#[derive(Clone, Copy)]
pub struct Counters {
    /// Payload bytes sent and acknowledged (plus, at close, those still in flight:
    /// [`Counters::add_unacknowledged`]).
    pub bytes_acked: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Segments received.
    pub segs_in: u32,
    /// Segments sent.
    pub segs_out: u32,
    /// Retransmitted segments.
    pub total_retrans: u32,
    /// Smoothed round-trip time in microseconds.
    pub srtt_us: u32,
}

impl Counters {
    /// Reads the counters of the socket `sk`.
    #[inline(always)]
    pub fn read(sk: impl KernelMemory, offsets: &TcpSockOffsets) -> Self {
        Self {
            bytes_acked: sk.read::<u64>(offsets.bytes_acked).unwrap_or(0),
            bytes_received: sk.read::<u64>(offsets.bytes_received).unwrap_or(0),
            segs_in: sk.read::<u32>(offsets.segs_in).unwrap_or(0),
            segs_out: sk.read::<u32>(offsets.segs_out).unwrap_or(0),
            total_retrans: sk.read::<u32>(offsets.total_retrans).unwrap_or(0),
            // The kernel keeps the smoothed RTT scaled by 8.
            srtt_us: sk.read::<u32>(offsets.srtt_us).unwrap_or(0) >> 3,
        }
    }

    /// Adds to `bytes_acked` what the application wrote that the peer has not
    /// acknowledged yet (`write_seq - snd_una`): the owner's `close()` comes before the
    /// last bytes are acknowledged (a server writes its answer and closes at once), and
    /// those bytes are still sent after it. Sequence numbers wrap, hence the wrapping
    /// difference.
    #[inline(always)]
    pub fn add_unacknowledged(&mut self, sk: impl KernelMemory, offsets: &TcpSockOffsets) {
        if let (Some(write_seq), Some(snd_una)) = (
            sk.read::<u32>(offsets.write_seq),
            sk.read::<u32>(offsets.snd_una),
        ) {
            self.bytes_acked += u64::from(write_seq.wrapping_sub(snd_una));
        }
    }

    /// Copies the counters into `record`.
    #[inline(always)]
    pub fn write_to(&self, record: &mut FlowRecord) {
        record.bytes_acked = self.bytes_acked;
        record.bytes_received = self.bytes_received;
        record.segs_in = self.segs_in;
        record.segs_out = self.segs_out;
        record.total_retrans = self.total_retrans;
        record.srtt_us = self.srtt_us;
    }
}

/// Fills the counter fields of `record` from the socket at `sk` (probe reads).
#[inline(always)]
pub fn fill_counters(sk: u64, record: &mut FlowRecord) {
    let offsets = match KERNEL_OFFSETS.get(0) {
        Some(offsets) => offsets.tcp_sock,
        None => TcpSockOffsets::UNKNOWN,
    };
    Counters::read(ProbeRead(sk), &offsets).write_to(record);
}
