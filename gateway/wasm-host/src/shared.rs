//! Shared data (a key-value store with compare-and-swap) and shared queues: process-wide,
//! shared by every instance of the plugins with the same VM ID.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use tokio::sync::mpsc::UnboundedSender;

use crate::abi::{HostResult, Status};

/// Bounds on what plugins may keep in shared state, so one plugin cannot exhaust memory.
#[derive(Debug, Clone, Copy)]
pub struct SharedLimits {
    /// The total size of keys and values in shared data, per VM ID.
    pub max_data_bytes: usize,
    /// The number of items one queue may hold.
    pub max_queue_items: usize,
    /// The size of one value or queue item.
    pub max_value_bytes: usize,
}

impl Default for SharedLimits {
    fn default() -> Self {
        Self {
            max_data_bytes: 64 << 20,
            max_queue_items: 65_536,
            max_value_bytes: 1 << 20,
        }
    }
}

/// The process-wide shared state of every VM ID.
#[derive(Debug, Default)]
pub struct SharedState {
    limits: SharedLimits,
    data: Mutex<HashMap<String, DataSpace>>,
    queues: Mutex<Queues>,
}

#[derive(Debug, Default)]
struct DataSpace {
    entries: HashMap<Vec<u8>, (Vec<u8>, u32)>,
    bytes: usize,
}

#[derive(Debug, Default)]
struct Queues {
    by_name: HashMap<(String, String), u32>,
    by_id: HashMap<u32, Queue>,
    next_id: u32,
}

#[derive(Debug)]
struct Queue {
    items: VecDeque<Vec<u8>>,
    /// Items ever accepted: a consumer that counts what it took knows when it has taken
    /// everything enqueued up to a point (the access log's durability barrier).
    accepted: u64,
    /// Told the queue's ID when an item arrives: the registering instance's driver.
    owner: QueueOwner,
}

/// Who is told when an item arrives in a queue: the root context that registered it.
#[derive(Debug, Clone)]
pub struct QueueOwner {
    /// The root context that registered the queue.
    pub root_context_id: u32,
    /// The driver of the instance that registered it.
    pub notify: UnboundedSender<QueueReady>,
}

/// An item arrived in a queue owned by `root_context_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueReady {
    /// The root context to call `proxy_on_queue_ready` on.
    pub root_context_id: u32,
    /// The queue.
    pub queue_id: u32,
}

impl SharedState {
    /// Shared state with the given bounds.
    pub fn with_limits(limits: SharedLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// The value of `key` and its CAS token.
    pub fn get(&self, vm_id: &str, key: &[u8]) -> HostResult<(Vec<u8>, u32)> {
        let data = self.data.lock().map_err(|_| Status::InternalFailure)?;
        data.get(vm_id)
            .and_then(|space| space.entries.get(key))
            .cloned()
            .ok_or(Status::NotFound)
    }

    /// Sets `key`; a non-zero `cas` must equal the current token or the set fails with
    /// `CasMismatch` (the spec's optimistic concurrency). A new key starts at token 1.
    pub fn set(&self, vm_id: &str, key: &[u8], value: &[u8], cas: u32) -> HostResult {
        if value.len() > self.limits.max_value_bytes {
            return Err(Status::BadArgument);
        }
        let mut data = self.data.lock().map_err(|_| Status::InternalFailure)?;
        let space = data.entry(vm_id.to_owned()).or_default();
        let (old_size, token) = match space.entries.get(key) {
            Some((old, token)) => {
                if cas != 0 && cas != *token {
                    return Err(Status::CasMismatch);
                }
                (key.len() + old.len(), token.wrapping_add(1).max(1))
            }
            // As on Envoy: a CAS on a key that does not exist yet is ignored.
            None => (0, 1),
        };
        let new_bytes = space.bytes - old_size + key.len() + value.len();
        if new_bytes > self.limits.max_data_bytes {
            return Err(Status::InternalFailure);
        }
        space.bytes = new_bytes;
        space.entries.insert(key.to_vec(), (value.to_vec(), token));
        Ok(())
    }

    /// Registers (or re-registers, taking ownership of) the queue `name` of `vm_id`.
    pub fn register_queue(&self, vm_id: &str, name: &str, owner: QueueOwner) -> HostResult<u32> {
        let mut queues = self.queues.lock().map_err(|_| Status::InternalFailure)?;
        let key = (vm_id.to_owned(), name.to_owned());
        if let Some(&id) = queues.by_name.get(&key) {
            if let Some(queue) = queues.by_id.get_mut(&id) {
                queue.owner = owner;
            }
            return Ok(id);
        }
        queues.next_id += 1;
        let id = queues.next_id;
        queues.by_name.insert(key, id);
        queues.by_id.insert(
            id,
            Queue {
                items: VecDeque::new(),
                accepted: 0,
                owner,
            },
        );
        Ok(id)
    }

    /// The ID of the queue `name` registered by `vm_id`.
    pub fn resolve_queue(&self, vm_id: &str, name: &str) -> HostResult<u32> {
        let queues = self.queues.lock().map_err(|_| Status::InternalFailure)?;
        queues
            .by_name
            .get(&(vm_id.to_owned(), name.to_owned()))
            .copied()
            .ok_or(Status::NotFound)
    }

    /// Appends an item and tells the queue's owner.
    pub fn enqueue(&self, queue_id: u32, item: &[u8]) -> HostResult {
        if item.len() > self.limits.max_value_bytes {
            return Err(Status::BadArgument);
        }
        let owner = {
            let mut queues = self.queues.lock().map_err(|_| Status::InternalFailure)?;
            let queue = queues.by_id.get_mut(&queue_id).ok_or(Status::NotFound)?;
            if queue.items.len() >= self.limits.max_queue_items {
                // Full: the producer sees an error it can handle (the SDK returns it as Err).
                return Err(Status::NotFound);
            }
            queue.items.push_back(item.to_vec());
            queue.accepted += 1;
            queue.owner.clone()
        };
        // The owner may be gone (its instance failed); the item stays for the next owner.
        let _ = owner.notify.send(QueueReady {
            root_context_id: owner.root_context_id,
            queue_id,
        });
        Ok(())
    }

    /// How many items the queue has accepted since it was registered (items taken included).
    pub fn accepted(&self, queue_id: u32) -> HostResult<u64> {
        let queues = self.queues.lock().map_err(|_| Status::InternalFailure)?;
        let queue = queues.by_id.get(&queue_id).ok_or(Status::NotFound)?;
        Ok(queue.accepted)
    }

    /// Takes the oldest item; `Empty` when there is none.
    pub fn dequeue(&self, queue_id: u32) -> HostResult<Vec<u8>> {
        let mut queues = self.queues.lock().map_err(|_| Status::InternalFailure)?;
        let queue = queues.by_id.get_mut(&queue_id).ok_or(Status::NotFound)?;
        queue.items.pop_front().ok_or(Status::Empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_tokens_detect_concurrent_writes() {
        let shared = SharedState::default();
        assert_eq!(shared.get("vm", b"k"), Err(Status::NotFound));
        shared.set("vm", b"k", b"1", 0).expect("first set");
        let (_, token) = shared.get("vm", b"k").expect("present");
        shared
            .set("vm", b"k", b"2", token)
            .expect("set with the current token");
        assert_eq!(
            shared.set("vm", b"k", b"3", token),
            Err(Status::CasMismatch)
        );
        assert_eq!(shared.get("vm", b"k").expect("present").0, b"2");
        assert_eq!(shared.get("other-vm", b"k"), Err(Status::NotFound));
        shared
            .set("vm", b"new", b"x", 42)
            .expect("a CAS on a missing key is ignored");
    }

    #[test]
    fn shared_data_is_bounded() {
        let shared = SharedState::with_limits(SharedLimits {
            max_data_bytes: 10,
            max_queue_items: 1,
            max_value_bytes: 8,
        });
        assert_eq!(
            shared.set("vm", b"k", b"123456789", 0),
            Err(Status::BadArgument)
        );
        shared.set("vm", b"k", b"12345678", 0).expect("fits");
        assert_eq!(
            shared.set("vm", b"k2", b"1", 0),
            Err(Status::InternalFailure)
        );
    }

    #[test]
    fn queues_notify_their_owner_and_stay_bounded() {
        let shared = SharedState::with_limits(SharedLimits {
            max_queue_items: 2,
            ..SharedLimits::default()
        });
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let owner = QueueOwner {
            root_context_id: 7,
            notify: tx,
        };
        let id = shared.register_queue("vm", "q", owner).expect("registered");
        assert_eq!(shared.resolve_queue("vm", "q"), Ok(id));
        assert_eq!(shared.resolve_queue("vm", "other"), Err(Status::NotFound));
        assert_eq!(shared.dequeue(id), Err(Status::Empty));
        shared.enqueue(id, b"a").expect("room");
        shared.enqueue(id, b"b").expect("room");
        assert_eq!(shared.enqueue(id, b"c"), Err(Status::NotFound));
        assert_eq!(
            rx.try_recv().expect("notified"),
            QueueReady {
                root_context_id: 7,
                queue_id: id
            }
        );
        assert_eq!(shared.dequeue(id), Ok(b"a".to_vec()));
        assert_eq!(shared.dequeue(id + 100), Err(Status::NotFound));
    }

    #[test]
    fn queues_count_accepted_items_but_not_refused_ones() {
        let shared = SharedState::with_limits(SharedLimits {
            max_queue_items: 2,
            ..SharedLimits::default()
        });
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let owner = QueueOwner {
            root_context_id: 1,
            notify: tx,
        };
        let id = shared.register_queue("vm", "q", owner).expect("registered");
        assert_eq!(shared.accepted(id), Ok(0));
        shared.enqueue(id, b"a").expect("room");
        shared.enqueue(id, b"b").expect("room");
        assert!(shared.enqueue(id, b"c").is_err(), "full");
        assert_eq!(shared.accepted(id), Ok(2));
        shared.dequeue(id).expect("an item");
        shared.enqueue(id, b"d").expect("room again");
        assert_eq!(
            shared.accepted(id),
            Ok(3),
            "taking items does not lower the count"
        );
        assert_eq!(shared.accepted(id + 1), Err(Status::NotFound));
    }
}
