//! `tcp:tcp_retransmit_skb`: counts retransmissions of tracked sockets.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use paved_flow_common::kernel::tcp_retransmit_skb as tp;

use crate::{context::load, maps::OPEN_FLOWS};

/// Entry point; the name is `names::RETRANSMIT_PROGRAM`.
#[tracepoint(category = "tcp", name = "tcp_retransmit_skb")]
pub fn tcp_retransmit_skb(ctx: TracePointContext) -> u32 {
    // SAFETY: `skaddr` is an aligned 8-byte pointer field.
    let sk = unsafe { load::<u64>(&ctx, tp::SKADDR) };
    if let Some(open) = OPEN_FLOWS.get_ptr_mut(sk) {
        // The kernel retransmits with the socket locked, so two CPUs do not bump the
        // same counter at once; a plain increment is enough (and the BPF target has no
        // atomic fetch-add in Rust: it lacks `atomic-cas`).
        // SAFETY: the pointer is a live map value from a successful lookup.
        unsafe { (*open).retransmits += 1 };
    }
    0
}
