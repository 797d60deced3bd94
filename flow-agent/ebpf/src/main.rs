//! The flow agent's kernel side: TCP connection lifecycle in the manner of `tcplife`.
//!
//! * `inet_sock_set_state` remembers each open (`SYN_SENT` = outbound, `SYN_RECV` =
//!   inbound) in a bounded LRU hash keyed by the socket address, credits an inbound
//!   flow to the task that closes it (`FIN_WAIT1`/`LAST_ACK`, in the owner's system
//!   call), and at `TCP_CLOSE` reads the final counters from `struct tcp_sock`, adds
//!   them to a per-CPU aggregate map (or emits one [`FlowRecord`] into a ring buffer)
//!   and forgets the socket. Every other transition returns after two loads.
//! * `tcp_retransmit_skb` counts retransmissions of tracked sockets.
//! * `flow_sweep` is never attached: user space runs it with `BPF_PROG_TEST_RUN` once
//!   per interval, handing it the open sockets, and it emits an interim record for each
//!   one not reported for a while, so long connections are not seen only at close.
//!
//! [`FlowRecord`]: paved_flow_common::FlowRecord
#![no_std]
#![no_main]

mod aggregate;
mod context;
mod emit;
mod field;
mod maps;
mod record;
mod release;
mod retransmit;
mod set_state;
mod sock;
mod sweep;
mod task;
mod tcp_sock;

/// BPF programs cannot unwind; the verifier rejects any path that would reach here.
#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
