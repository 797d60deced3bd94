//! The shared queue records go to.
//!
//! The gateway registers `paved.accesslog` under VM ID `paved` and drains it. The plugin
//! resolves that queue; if the gateway has not registered it (yet), the plugin registers
//! `paved.accesslog` under its own VM ID instead, so records are kept until a reader
//! resolves it (run the plugin with VM ID `paved` and both are the same queue).

use std::cell::Cell;

use log::{info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::Context;

/// The VM ID the gateway registers the queue under.
pub const VM_ID: &str = "paved";
/// The queue's name.
pub const NAME: &str = "paved.accesslog";

/// A lazily resolved queue ID.
#[derive(Default)]
pub struct Queue {
    id: Cell<Option<u32>>,
    /// Whether the queue in use is the plugin's own (the gateway's was not found).
    own: Cell<bool>,
}

impl Queue {
    /// Resolves the gateway's queue, or registers the plugin's own.
    pub fn resolve(&self, ctx: &dyn Context) -> Option<u32> {
        if let Some(id) = self.id.get().filter(|_| !self.own.get()) {
            return Some(id);
        }
        if let Some(id) = ctx.resolve_shared_queue(VM_ID, NAME) {
            if self.own.get() {
                info!("accesslog: the gateway's queue {VM_ID}/{NAME} appeared; using it");
            }
            self.id.set(Some(id));
            self.own.set(false);
            return Some(id);
        }
        if self.id.get().is_none() {
            warn!(
                "accesslog: queue {VM_ID}/{NAME} not registered by the gateway; registering {NAME} in this plugin's VM"
            );
            self.id.set(hostcalls::register_shared_queue(NAME).ok());
            self.own.set(true);
        }
        self.id.get()
    }

    /// Enqueues a record; false when it was dropped (no queue, or the queue is full).
    pub fn push(&self, ctx: &dyn Context, record: &[u8]) -> bool {
        let Some(id) = self.resolve(ctx) else {
            return false;
        };
        ctx.enqueue_shared_queue(id, Some(record)).is_ok()
    }
}
