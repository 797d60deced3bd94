//! The access log's durable sink: the `accesslog` filter enqueues one JSON record per request
//! into the shared queue `paved.accesslog` (VM ID `paved`), and this task appends them to a
//! file as JSON lines, syncing each batch to disk and rotating by size.
//!
//! Back-pressure: the queue is bounded in memory (see the wasm host's limits); when it is full
//! the filter's enqueue fails and the filter counts a drop. A write error (disk full) is
//! counted and the batch retried on the next round, never silently discarded.
//!
//! Durability: a response is not sent before its record is on disk. The `accesslog` filter
//! makes its record when the response's headers pass it (or in `on_log` for a response it
//! never saw, which the gateway runs before sending a local response); the proxy then waits
//! on [`Durability`] until the sink has synced every record accepted so far, so a client that
//! has its answer has a record, even if the gateway is killed the next instant. Waiting
//! requests share one sync (group commit); a wait longer than [`DURABLE_WAIT`] (a failing
//! disk) lets the response go and is counted.
//!
//! Each record drained is also offered to the [`TrafficBacklog`], which takes it when the
//! gateway ships traffic to a control plane ([`crate::traffic_shipper`]); the file is written
//! either way.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use paved_wasm_host::Runtime;
use paved_wasm_host::shared::QueueReady;
use prometheus::IntCounter;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;

use crate::traffic_shipper::TrafficBacklog;

/// The queue's VM ID and name, as the `accesslog` filter resolves them.
pub const QUEUE_VM_ID: &str = "paved";
/// The queue's name.
pub const QUEUE_NAME: &str = "paved.accesslog";

/// Where and how the access log is written.
#[derive(Debug, Clone)]
pub struct AccessLogOptions {
    /// The file (rotated to `<file>.1`, `<file>.2`, ...).
    pub path: PathBuf,
    /// Rotate when the file grows past this size.
    pub max_bytes: u64,
    /// Rotated files kept.
    pub keep: u32,
}

/// Counters of the sink.
#[derive(Clone)]
pub struct AccessLogMetrics {
    /// Records written and synced.
    pub written: IntCounter,
    /// Failed write attempts (records are kept and retried).
    pub write_errors: IntCounter,
    /// Responses sent before their record was synced (the sink stalled past [`DURABLE_WAIT`]).
    pub unsynced_responses: IntCounter,
}

/// The longest a response waits for its record to reach the disk.
pub const DURABLE_WAIT: Duration = Duration::from_secs(1);

/// A registered access-log queue: its ID, and the sink's wake-ups.
pub struct RegisteredQueue {
    id: u32,
    ready: UnboundedReceiver<QueueReady>,
    synced: watch::Sender<u64>,
}

/// What a response waits on so that its record is on disk before the client has it.
#[derive(Clone)]
pub struct Durability {
    runtime: Runtime,
    queue: u32,
    /// Records taken from the queue and synced to the file (or discarded as malformed).
    synced: watch::Receiver<u64>,
    unsynced: IntCounter,
}

impl Durability {
    /// Records the queue has accepted so far: a mark to wait for.
    pub fn mark(&self) -> u64 {
        self.runtime.queue_accepted(self.queue)
    }

    /// Waits until every record accepted up to `mark` is synced, for at most
    /// [`DURABLE_WAIT`]; false (and counted) when it was not.
    pub async fn synced_through(&self, mark: u64) -> bool {
        let mut synced = self.synced.clone();
        if *synced.borrow() >= mark {
            return true;
        }
        let done = tokio::time::timeout(DURABLE_WAIT, synced.wait_for(|&n| n >= mark))
            .await
            .is_ok_and(|r| r.is_ok());
        if !done {
            self.unsynced.inc();
            tracing::warn!(
                mark,
                "access log not synced in time; responding without a durable record"
            );
        }
        done
    }
}

/// Registers the queue the `accesslog` filter resolves: before any plugin loads, so that
/// the filters find the gateway's queue rather than registering one of their own.
pub fn register(runtime: &Runtime) -> Option<RegisteredQueue> {
    match runtime.register_host_queue(QUEUE_VM_ID, QUEUE_NAME) {
        Ok((id, ready)) => Some(RegisteredQueue {
            id,
            ready,
            synced: watch::Sender::new(0),
        }),
        Err(status) => {
            tracing::error!(
                ?status,
                "cannot register the access log queue; access logging is off"
            );
            None
        }
    }
}

impl RegisteredQueue {
    /// The handle responses wait on; `unsynced` counts waits that timed out.
    pub fn durability(&self, runtime: &Runtime, unsynced: IntCounter) -> Durability {
        Durability {
            runtime: runtime.clone(),
            queue: self.id,
            synced: self.synced.subscribe(),
            unsynced,
        }
    }
}

/// Runs the sink over a registered queue, until `stop` fires (or the runtime goes away);
/// every record also goes to `traffic` (which keeps it only while shipping is on). On `stop`
/// it writes every record still queued, then returns: a gateway that stops after its requests
/// finished loses none of their records.
pub async fn run(
    runtime: Runtime,
    registered: RegisteredQueue,
    options: AccessLogOptions,
    metrics: AccessLogMetrics,
    traffic: std::sync::Arc<TrafficBacklog>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    // A gateway killed during an append may have left a partial last line: end it first, so
    // that the next record starts on a line of its own (the fragment stays, unparseable).
    let mut pending: Vec<u8> = if ends_mid_line(&options.path) {
        tracing::warn!(path = %options.path.display(), "access log ends with a partial record (gateway killed while writing); starting a new line");
        vec![b'\n']
    } else {
        Vec::new()
    };
    let RegisteredQueue {
        id: queue,
        mut ready,
        synced,
    } = registered;
    let options = std::sync::Arc::new(options);
    let mut pending_records = 0u64;
    // Records taken from the queue; once `pending` is synced, all of them are done.
    let mut taken = 0u64;
    let mut stopping = false;
    // Wait for wake-ups only when the queue was emptied, or a write failed (retry in 1 s).
    let mut wait = true;
    loop {
        if !stopping && wait {
            // Wake on new items, and at least every second to retry a failed write. No pause
            // to gather a batch: responses wait for this sync, and the records that arrive
            // while it runs make the next batch (group commit).
            tokio::select! {
                _ = tokio::time::timeout(Duration::from_secs(1), ready.recv()) => {}
                // Fired, or its sender dropped with the gateway: either way, finish up.
                _ = &mut stop => stopping = true,
            }
            // One wake-up per item was sent; one drain below takes them all.
            while ready.try_recv().is_ok() {}
        }
        let mut drained = false;
        while pending.len() < (4 << 20) {
            let Some(record) = runtime.dequeue(queue) else {
                drained = true;
                break;
            };
            taken += 1;
            // One record per line: a record containing a newline would break the format.
            if record.contains(&b'\n') {
                continue;
            }
            // Offered once, when drained: a failed file write retries `pending`, not this.
            traffic.offer(&record);
            pending.extend_from_slice(&record);
            pending.push(b'\n');
            pending_records += 1;
        }
        if !pending.is_empty() {
            // The sync blocks: off the runtime's worker, which also runs plugins' calls. A copy
            // goes, so that a failed write (or a failed task) keeps `pending` for the retry.
            let (batch, opts) = (pending.clone(), options.clone());
            let result = tokio::task::spawn_blocking(move || append(&opts, &batch))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
            match result {
                Ok(()) => {
                    metrics.written.inc_by(pending_records);
                    pending.clear();
                    pending_records = 0;
                }
                Err(error) => {
                    metrics.write_errors.inc();
                    if stopping {
                        tracing::error!(error = %error, path = %options.path.display(), records = pending_records, "access log write failed while stopping; records lost");
                        return;
                    }
                    tracing::error!(error = %error, path = %options.path.display(), records = pending_records, "access log write failed; will retry");
                }
            }
        }
        // Keep draining while the queue has more; after a failed write, retry in a second.
        wait = drained || !pending.is_empty();
        if pending.is_empty() {
            synced.send_replace(taken);
        }
        if stopping && drained && pending.is_empty() {
            return;
        }
    }
}

/// Whether the file exists and its last byte is not a newline.
fn ends_mid_line(path: &std::path::Path) -> bool {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let mut last = [0u8; 1];
    file.seek(SeekFrom::End(-1))
        .and_then(|_| file.read_exact(&mut last))
        .is_ok_and(|()| last[0] != b'\n')
}

fn append(options: &AccessLogOptions, batch: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = options.path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let size = std::fs::metadata(&options.path)
        .map(|m| m.len())
        .unwrap_or(0);
    if size > 0 && size + batch.len() as u64 > options.max_bytes {
        rotate(options)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&options.path)?;
    file.write_all(batch)?;
    file.sync_data()
}

fn rotate(options: &AccessLogOptions) -> std::io::Result<()> {
    let numbered = |n: u32| PathBuf::from(format!("{}.{n}", options.path.display()));
    for n in (1..options.keep.max(1)).rev() {
        if numbered(n).exists() {
            std::fs::rename(numbered(n), numbered(n + 1))?;
        }
    }
    std::fs::rename(&options.path, numbered(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_rotate_by_size_and_keep_a_bounded_history() {
        let dir = std::env::temp_dir().join(format!("paved-accesslog-{}", std::process::id()));
        let options = AccessLogOptions {
            path: dir.join("access.log"),
            max_bytes: 10,
            keep: 2,
        };
        for i in 0..5 {
            append(&options, format!("record{i}\n").as_bytes()).expect("append");
        }
        let read = |p: PathBuf| std::fs::read_to_string(p).expect("file");
        assert_eq!(read(options.path.clone()), "record4\n");
        assert_eq!(read(dir.join("access.log.1")), "record3\n");
        assert_eq!(read(dir.join("access.log.2")), "record2\n");
        assert!(!dir.join("access.log.3").exists());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_partial_last_record_is_recognised_so_the_next_starts_a_new_line() {
        let dir = std::env::temp_dir().join(format!("paved-accesslog-torn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("access.log");
        assert!(!ends_mid_line(&path), "no file: nothing to end");
        std::fs::write(&path, b"{\"a\":1}\n").expect("write");
        assert!(!ends_mid_line(&path));
        std::fs::write(&path, b"{\"a\":1}\n{\"b\":").expect("write");
        assert!(ends_mid_line(&path));
        std::fs::write(&path, b"").expect("write");
        assert!(!ends_mid_line(&path), "an empty file has no partial line");
        std::fs::remove_dir_all(dir).ok();
    }
}
