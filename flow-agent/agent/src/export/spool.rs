//! The on-disk backlog: one JSON file per batch in a directory, oldest first.
//!
//! File names are `<epoch_ms>-<sequence>-<interval_end_ms>.json`, zero-padded, so the
//! directory listing is the delivery order and the export lag is known without reading
//! the files. A file is written to `*.tmp`, synced, then renamed, so a crash leaves
//! either a whole batch or a temporary file that the next start removes. Over its
//! bound (bytes or files) the spool drops its oldest batches and says how many.

use std::{
    collections::VecDeque,
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
};

use paved_flow_proto::{BatchError, FlowBatch, decode_batch, encode_batch};

/// Where and how much.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolSettings {
    /// The directory (created if missing; one agent per directory).
    pub dir: PathBuf,
    /// Most bytes kept.
    pub max_bytes: u64,
    /// Most batches kept (8,640 is a day of 10 s intervals).
    pub max_batches: usize,
}

impl SpoolSettings {
    /// A spool in `dir` with the default bounds (64 MiB, 8,640 batches).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            max_bytes: 64 << 20,
            max_batches: 8_640,
        }
    }
}

/// Why the spool failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file operation failed.
    #[error("spool {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A batch could not be encoded.
    #[error("encoding a batch for the spool failed")]
    Encode(#[source] serde_json::Error),
    /// A spooled file is not a valid batch (it is removed).
    #[error("spooled batch {path} is corrupt")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: BatchError,
    },
}

#[derive(Clone, Debug)]
struct Entry {
    path: PathBuf,
    bytes: u64,
    interval_end_ms: u64,
}

/// A directory of batch files.
#[derive(Debug)]
pub struct Spool {
    settings: SpoolSettings,
    entries: VecDeque<Entry>,
    bytes: u64,
}

impl Spool {
    /// Opens (or creates) the spool, picking up batches left by an earlier run and
    /// removing half-written files.
    pub fn open(settings: SpoolSettings) -> Result<Self, SpoolError> {
        let dir = settings.dir.clone();
        fs::create_dir_all(&dir).map_err(|source| SpoolError::Io {
            op: "creating",
            path: dir.clone(),
            source,
        })?;
        let listing = fs::read_dir(&dir).map_err(|source| SpoolError::Io {
            op: "listing",
            path: dir.clone(),
            source,
        })?;
        let mut entries = Vec::new();
        for item in listing.flatten() {
            let path = item.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(&path);
                continue;
            }
            let Some(interval_end_ms) = parse_name(name) else {
                continue;
            };
            let bytes = item.metadata().map(|m| m.len()).unwrap_or(0);
            entries.push((
                name.to_owned(),
                Entry {
                    path,
                    bytes,
                    interval_end_ms,
                },
            ));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let entries: VecDeque<Entry> = entries.into_iter().map(|(_, e)| e).collect();
        let bytes = entries.iter().map(|e| e.bytes).sum();
        if !entries.is_empty() {
            tracing::info!(dir = %dir.display(), batches = entries.len(), bytes, "found undelivered flow batches in the spool");
        }
        Ok(Self {
            settings,
            entries,
            bytes,
        })
    }

    /// Appends a batch; returns how many old batches were dropped to stay in bounds.
    pub fn push(&mut self, batch: &FlowBatch) -> Result<u64, SpoolError> {
        let json = encode_batch(batch).map_err(SpoolError::Encode)?;
        let name = format!(
            "{:013}-{:010}-{:013}.json",
            batch.epoch_ms, batch.sequence, batch.interval_end_ms
        );
        let path = self.settings.dir.join(&name);
        let tmp = self.settings.dir.join(format!("{name}.tmp"));
        write_synced(&tmp, &json)?;
        fs::rename(&tmp, &path).map_err(|source| SpoolError::Io {
            op: "renaming into",
            path: path.clone(),
            source,
        })?;
        let bytes = json.len() as u64;
        self.entries.push_back(Entry {
            path,
            bytes,
            interval_end_ms: batch.interval_end_ms,
        });
        self.bytes += bytes;
        let mut dropped = 0;
        while self.entries.len() > self.settings.max_batches
            || (self.bytes > self.settings.max_bytes && self.entries.len() > 1)
        {
            self.remove_front();
            dropped += 1;
        }
        Ok(dropped)
    }

    /// The oldest batch, read from disk. A corrupt file is removed and reported.
    pub fn front(&mut self) -> Option<Result<FlowBatch, SpoolError>> {
        let entry = self.entries.front()?.clone();
        let read = fs::read(&entry.path).map_err(|source| SpoolError::Io {
            op: "reading",
            path: entry.path.clone(),
            source,
        });
        Some(read.and_then(|bytes| {
            decode_batch(&bytes).map_err(|source| {
                self.remove_front();
                SpoolError::Corrupt {
                    path: entry.path.clone(),
                    source,
                }
            })
        }))
    }

    /// Removes the oldest batch (delivered, or dropped).
    pub fn pop_front(&mut self) {
        self.remove_front();
    }

    fn remove_front(&mut self) {
        if let Some(entry) = self.entries.pop_front() {
            self.bytes = self.bytes.saturating_sub(entry.bytes);
            if let Err(err) = fs::remove_file(&entry.path)
                && err.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %entry.path.display(), error = %err, "removing a spooled batch failed");
            }
        }
    }

    /// Batches in the spool.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the spool is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes in the spool.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Interval end of the oldest batch.
    pub fn oldest_interval_end_ms(&self) -> Option<u64> {
        self.entries.front().map(|e| e.interval_end_ms)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.settings.dir
    }
}

/// `<epoch>-<sequence>-<interval_end>.json` → interval end.
fn parse_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".json")?;
    let mut parts = stem.split('-');
    let (epoch, sequence, end) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    epoch.parse::<u64>().ok()?;
    sequence.parse::<u64>().ok()?;
    end.parse().ok()
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), SpoolError> {
    let io = |op, source| SpoolError::Io {
        op,
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::create(path).map_err(|e| io("creating", e))?;
    file.write_all(bytes).map_err(|e| io("writing", e))?;
    // A batch acknowledged to nobody must survive a crash of the host, not only of the
    // agent.
    file.sync_all().map_err(|e| io("syncing", e))
}

#[cfg(test)]
mod tests {
    use paved_flow_proto::{AgentId, BatchStats, SCHEMA_VERSION};

    use super::*;

    pub(crate) fn batch(sequence: u64) -> FlowBatch {
        FlowBatch {
            version: SCHEMA_VERSION,
            agent_id: AgentId::new("a").expect("id"),
            host: "h".into(),
            epoch_ms: 1_000,
            sequence,
            interval_start_ms: 10_000 * (sequence + 1),
            interval_end_ms: 10_000 * (sequence + 2),
            sampling_rate: 1.0,
            stats: BatchStats::default(),
            flows: vec![],
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("paved-spool-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn batches_come_back_in_order_and_survive_a_reopen() {
        let dir = temp_dir("order");
        let mut spool = Spool::open(SpoolSettings::new(&dir)).expect("open");
        for seq in [0, 1, 2] {
            assert_eq!(spool.push(&batch(seq)).expect("push"), 0);
        }
        fs::write(dir.join("junk.json.tmp"), b"half").expect("tmp file");
        drop(spool);
        let mut spool = Spool::open(SpoolSettings::new(&dir)).expect("reopen");
        assert_eq!(spool.len(), 3);
        assert!(!dir.join("junk.json.tmp").exists());
        assert_eq!(spool.oldest_interval_end_ms(), Some(20_000));
        for seq in [0, 1, 2] {
            let got = spool.front().expect("entry").expect("valid");
            assert_eq!(got.sequence, seq);
            spool.pop_front();
        }
        assert!(spool.is_empty() && spool.bytes() == 0);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn over_its_bound_the_spool_drops_the_oldest() {
        let dir = temp_dir("bound");
        let mut spool = Spool::open(SpoolSettings {
            max_batches: 2,
            ..SpoolSettings::new(&dir)
        })
        .expect("open");
        let dropped: u64 = (0..5).map(|s| spool.push(&batch(s)).expect("push")).sum();
        assert_eq!(dropped, 3);
        assert_eq!(spool.front().expect("entry").expect("valid").sequence, 3);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_file_is_reported_and_removed() {
        let dir = temp_dir("corrupt");
        let mut spool = Spool::open(SpoolSettings::new(&dir)).expect("open");
        spool.push(&batch(0)).expect("push");
        spool.push(&batch(1)).expect("push");
        let first = fs::read_dir(&dir)
            .expect("list")
            .flatten()
            .map(|e| e.path())
            .min()
            .expect("a file");
        fs::write(&first, b"{ not json").expect("corrupt it");
        assert!(matches!(
            spool.front(),
            Some(Err(SpoolError::Corrupt { .. }))
        ));
        assert_eq!(spool.front().expect("entry").expect("valid").sequence, 1);
        let _ = fs::remove_dir_all(&dir);
    }
}
