//! The collector's side: what to do with a received batch.

use std::{future::Future, pin::Pin};

use paved_flow_proto::FlowBatch;

use crate::sink::BoxError;

/// What [`BatchStore::store`] returns.
pub type StoreFuture<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// Persists received batches. A batch is acknowledged to its sender only after `store`
/// returned `Ok`, so a crash in between redelivers it: `store` must be idempotent by
/// [`FlowBatch::id`] (a unique key on the id is enough).
///
/// Any `Fn(FlowBatch) -> impl Future<Output = Result<(), StoreError>>` closure is a
/// store.
pub trait BatchStore: Send + Sync {
    /// Stores one validated batch.
    fn store(&self, batch: FlowBatch) -> StoreFuture<'_>;
}

impl<F, Fut> BatchStore for F
where
    F: Fn(FlowBatch) -> Fut + Send + Sync,
    Fut: Future<Output = Result<(), StoreError>> + Send + 'static,
{
    fn store(&self, batch: FlowBatch) -> StoreFuture<'_> {
        Box::pin(self(batch))
    }
}

/// Why a store did not take a batch.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A transient failure (database away): the batch is redelivered later.
    #[error("storing the batch failed; it will be redelivered")]
    Retry(#[source] BoxError),
    /// The batch is unacceptable to the store (say, from an unknown agent): it is
    /// dropped for good, logged and counted as rejected.
    #[error("the store rejected the batch")]
    Reject(#[source] BoxError),
}
