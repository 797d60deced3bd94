//! Decoding ring buffer items into [`FlowRecord`]s.

use paved_flow_common::FlowRecord;

/// Copies a record out of a ring buffer item; `None` if the item is too short (an
/// object from another build), so a bad item is skipped rather than misread.
pub fn decode(bytes: &[u8]) -> Option<FlowRecord> {
    if bytes.len() < size_of::<FlowRecord>() {
        return None;
    }
    // SAFETY: the slice holds at least `size_of::<FlowRecord>()` bytes, the read is
    // unaligned-tolerant, and every bit pattern is a valid `FlowRecord` (integers and
    // byte arrays only).
    Some(unsafe { bytes.as_ptr().cast::<FlowRecord>().read_unaligned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_the_byte_round_trip() {
        let mut record = FlowRecord::zeroed();
        record.sport = 4242;
        record.bytes_acked = 1 << 40;
        record.comm[..4].copy_from_slice(b"curl");
        // SAFETY: FlowRecord is plain old data without padding (asserted in the common crate).
        let bytes = unsafe {
            std::slice::from_raw_parts((&raw const record).cast::<u8>(), size_of::<FlowRecord>())
        };
        // An offset of one byte proves the read does not rely on alignment.
        let mut shifted = vec![0u8; 1];
        shifted.extend_from_slice(bytes);
        assert_eq!(decode(&shifted[1..]), Some(record));
        assert_eq!(
            decode(&shifted[1..]).map(|r| r.comm_bytes().to_vec()),
            Some(b"curl".to_vec())
        );
    }

    #[test]
    fn a_short_item_is_rejected() {
        assert_eq!(decode(&[0u8; 16]), None);
        assert_eq!(decode(&[]), None);
    }
}
