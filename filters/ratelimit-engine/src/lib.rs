//! Rate limiting for the paved `ratelimit` plugin: pure logic, unit-tested natively and built
//! for `wasm32-wasip1` unchanged.
//!
//! - [`gcra`]: the generic cell rate algorithm, rate per second plus burst, its state one
//!   8-byte theoretical arrival time;
//! - [`table`]: bounded tables of per-key state in shared data, updated with
//!   compare-and-swap, over the [`store::Store`] trait;
//! - [`concurrency`]: the per-IP in-flight request cap (flood guard);
//! - [`headers`]: `RateLimit-*` and `Retry-After` values;
//! - [`key`]: client addresses and key building;
//! - [`cluster`]: the protocol of the gateway's cluster-wide rate-limit service.

pub mod cluster;
pub mod concurrency;
pub mod gcra;
pub mod headers;
pub mod key;
pub mod store;
pub mod table;

pub use gcra::{Limit, LimitError, Outcome};
pub use headers::Quota;
pub use store::{Store, WriteError};
pub use table::{Table, TableError};

use table::{Decision, Updated};

/// Checks one request of `key` against `limit`, keeping the state in `table`.
pub fn check(
    store: &dyn Store,
    table: &Table,
    limit: &Limit,
    key: &str,
    now_ns: u64,
) -> Result<Updated<Outcome>, TableError> {
    table.update(
        store,
        key,
        now_ns,
        // A state whose TAT has passed is a fresh client: its slot may be reused.
        |payload| gcra::decode(Some(payload)).is_none_or(|tat| tat <= now_ns),
        |payload| {
            let outcome = limit.check(payload, now_ns, 1);
            match outcome.new_state {
                Some(state) => Decision::Write(state.to_vec(), outcome),
                None => Decision::Keep(outcome),
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::MemoryStore;

    #[test]
    fn concurrent_clients_get_exactly_the_burst() {
        let store = std::sync::Arc::new(MemoryStore::default());
        let table = Table::new("rl", 1024);
        table.prepare(store.as_ref());
        let limit = Limit::new(1.0, 50).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (store, table) = (store.clone(), table.clone());
                std::thread::spawn(move || {
                    (0..40)
                        .filter(|_| {
                            check(store.as_ref(), &table, &limit, "client", 0)
                                .unwrap()
                                .value
                                .allowed
                        })
                        .count()
                })
            })
            .collect();
        let allowed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(allowed, 50, "320 requests at one instant, burst 50");
    }

    #[test]
    fn separate_keys_have_separate_limits() {
        let store = MemoryStore::default();
        let table = Table::new("rl", 1024);
        let limit = Limit::new(1.0, 1).unwrap();
        assert!(check(&store, &table, &limit, "a", 0).unwrap().value.allowed);
        assert!(!check(&store, &table, &limit, "a", 0).unwrap().value.allowed);
        assert!(check(&store, &table, &limit, "b", 0).unwrap().value.allowed);
    }
}
