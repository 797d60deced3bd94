//! Configuration from the control plane: the gateway watches for new snapshot versions
//! (long poll), applies each, reports ACK or NACK, and keeps the last good snapshot on disk so
//! it can start and keep serving while the control plane is away.
//!
//! Protocol (docs/config-distribution.md): `GET /v1/gateways/{id}/snapshot?after=N&wait=S`
//! answers 200 with a newer snapshot (JSON) or 304 after `S` seconds; `POST
//! /v1/gateways/{id}/status` takes `{"version": N, "ok": true}` or `{"version": N, "ok":
//! false, "error": "..."}`. Both carry `Authorization: Bearer <gateway token>`. While it
//! watches, the gateway also ships its access-log records to the control plane
//! ([`crate::traffic_shipper`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use paved_model::snapshot::{Snapshot, SnapshotVersion};

use crate::server::Gateway;

/// Where and as whom the gateway watches.
#[derive(Clone)]
pub struct ControlPlane {
    /// `host:port` of the control plane's HTTP listener.
    pub address: String,
    /// This gateway's ID.
    pub gateway_id: String,
    /// The gateway token (scope `gateway`).
    pub token: String,
    /// Where the last good snapshot is kept.
    pub state_dir: PathBuf,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("address", &self.address)
            .field("gateway_id", &self.gateway_id)
            .field("token", &"<redacted>")
            .field("state_dir", &self.state_dir)
            .finish()
    }
}

/// Why a watch round failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The control plane could not be reached or answered badly.
    #[error("control plane {address}: {message}")]
    Transport {
        /// The address tried.
        address: String,
        /// What failed.
        message: String,
    },
    /// The control plane refused the gateway's token.
    #[error("control plane refused the gateway token ({status})")]
    Unauthorized {
        /// The HTTP status.
        status: u16,
    },
}

/// A version the control plane published: parsed, or why it could not be.
#[derive(Debug)]
pub struct Update {
    /// Its version (from the snapshot, or the `x-paved-version` header when it is unreadable).
    pub version: SnapshotVersion,
    /// The snapshot, or why it is invalid (to be NACKed).
    pub snapshot: Result<Snapshot, String>,
    /// The bytes received, saved to disk once applied.
    pub json: Vec<u8>,
}

/// Snapshots larger than this are refused (they come from outside the process).
const MAX_SNAPSHOT_BYTES: usize = 16 << 20;
/// How long one long poll waits on the server.
const WAIT_SECONDS: u64 = 25;

impl ControlPlane {
    fn snapshot_path(&self) -> PathBuf {
        self.state_dir.join("last-good-snapshot.json")
    }

    /// The last snapshot this gateway applied successfully, if one was saved.
    pub fn last_good(&self) -> Option<Snapshot> {
        let bytes = std::fs::read(self.snapshot_path()).ok()?;
        match Snapshot::from_json_slice(&bytes, &self.snapshot_path().display().to_string()) {
            Ok(snapshot) => Some(snapshot),
            Err(error) => {
                tracing::warn!(error = %error, "the saved snapshot is unreadable; ignoring it");
                None
            }
        }
    }

    /// Saves a snapshot durably: written beside, synced, renamed over the old one.
    pub fn save_last_good(&self, json: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.state_dir)?;
        let path = self.snapshot_path();
        let tmp = path.with_extension("json.tmp");
        {
            use std::io::Write as _;
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(json)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        sync_dir(&self.state_dir)
    }

    /// Waits for a snapshot newer than `after`: `Ok(None)` when none came within the wait.
    pub async fn fetch(&self, after: &SnapshotVersion) -> Result<Option<Update>, WatchError> {
        let after = match after {
            SnapshotVersion::Number(n) => n.to_string(),
            SnapshotVersion::Id(id) => id.clone(),
        };
        let path = format!(
            "/v1/gateways/{}/snapshot?after={after}&wait={WAIT_SECONDS}",
            self.gateway_id
        );
        let (status, version, body) = self
            .exchange(
                "GET",
                &path,
                Bytes::new(),
                Duration::from_secs(WAIT_SECONDS + 10),
            )
            .await?;
        match status {
            200 => {
                let snapshot = Snapshot::from_json_slice(&body, "control plane snapshot")
                    .map_err(|e| e.to_string());
                let version = match (&snapshot, version) {
                    (Ok(snapshot), _) => snapshot.version.clone(),
                    (Err(_), Some(header)) => header
                        .parse::<u64>()
                        .map(SnapshotVersion::Number)
                        .unwrap_or(SnapshotVersion::Id(header)),
                    (Err(_), None) => SnapshotVersion::Id("unknown".into()),
                };
                Ok(Some(Update {
                    version,
                    snapshot,
                    json: body,
                }))
            }
            304 => Ok(None),
            401 | 403 => Err(WatchError::Unauthorized { status }),
            other => Err(WatchError::Transport {
                address: self.address.clone(),
                message: format!("unexpected status {other}"),
            }),
        }
    }

    /// Reports that `version` is served (`error: None`) or was rejected.
    pub async fn report(
        &self,
        version: &SnapshotVersion,
        error: Option<&str>,
    ) -> Result<(), WatchError> {
        let version = match version {
            SnapshotVersion::Number(n) => serde_json::json!(n),
            SnapshotVersion::Id(id) => serde_json::json!(id),
        };
        let body = match error {
            None => serde_json::json!({ "version": version, "ok": true }),
            Some(error) => serde_json::json!({ "version": version, "ok": false, "error": error }),
        };
        let path = format!("/v1/gateways/{}/status", self.gateway_id);
        let (status, _, _) = self
            .exchange(
                "POST",
                &path,
                Bytes::from(body.to_string()),
                Duration::from_secs(10),
            )
            .await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(WatchError::Transport {
                address: self.address.clone(),
                message: format!("status report answered {status}"),
            })
        }
    }

    /// One HTTP/1.1 request to the control plane with the gateway token: status, the
    /// `x-paved-version` header, body.
    pub(crate) async fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<(u16, Option<String>, Vec<u8>), WatchError> {
        let transport = |message: String| WatchError::Transport {
            address: self.address.clone(),
            message,
        };
        let exchange = async {
            let stream = tokio::net::TcpStream::connect(&self.address)
                .await
                .map_err(|e| transport(e.to_string()))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| transport(e.to_string()))?;
            let driver = tokio::spawn(connection);
            let request = http::Request::builder()
                .method(method)
                .uri(path)
                .header(http::header::HOST, &self.address)
                .header(
                    http::header::AUTHORIZATION,
                    format!("Bearer {}", self.token),
                )
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(body))
                .map_err(|e| transport(e.to_string()))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| transport(e.to_string()))?;
            let status = response.status().as_u16();
            let version = response
                .headers()
                .get("x-paved-version")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = Limited::new(response.into_body(), MAX_SNAPSHOT_BYTES)
                .collect()
                .await
                .map_err(|e| transport(format!("reading the body: {e}")))?
                .to_bytes()
                .to_vec();
            driver.abort();
            Ok((status, version, body))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| transport(format!("no answer within {timeout:?}")))?
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Waits for the first snapshot: the saved one if there is one (so a gateway starts while
/// the control plane is away), otherwise the control plane's, retrying with backoff.
pub async fn initial_snapshot(control_plane: &ControlPlane) -> Snapshot {
    if let Some(saved) = control_plane.last_good() {
        tracing::info!(version = %saved.version, "starting from the last good snapshot on disk");
        return saved;
    }
    let mut backoff = Backoff::default();
    loop {
        match control_plane.fetch(&SnapshotVersion::Number(0)).await {
            Ok(Some(Update {
                snapshot: Ok(snapshot),
                json,
                ..
            })) => {
                if let Err(error) = control_plane.save_last_good(&json) {
                    tracing::warn!(error = %error, "cannot save the snapshot to disk");
                }
                return snapshot;
            }
            Ok(Some(Update {
                version,
                snapshot: Err(error),
                ..
            })) => {
                tracing::error!(version = %version, error = %error, "first snapshot is invalid (NACK)");
                let _ = control_plane.report(&version, Some(&error)).await;
            }
            Ok(None) => tracing::info!("no snapshot yet; still waiting"),
            Err(error) => tracing::warn!(error = %error, "waiting for the control plane"),
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Applies every new version the control plane publishes, forever, and ships the access-log
/// records to it ([`crate::traffic_shipper::run`]). Serving goes on from the configuration in
/// force whatever happens here.
pub async fn watch(gateway: Arc<Gateway>, control_plane: ControlPlane) {
    tokio::spawn(crate::traffic_shipper::run(
        gateway.traffic(),
        control_plane.clone(),
    ));
    let mut backoff = Backoff::default();
    // Report the version started with, so the control plane knows what this gateway serves.
    let _ = control_plane.report(&gateway.version(), None).await;
    let mut after = gateway.version();
    loop {
        match control_plane.fetch(&after).await {
            Ok(Some(update)) => {
                backoff = Backoff::default();
                let version = update.version.clone();
                let error = match update.snapshot {
                    Ok(snapshot) => gateway.reload(snapshot).err().map(|e| e.to_string()),
                    Err(error) => Some(error),
                };
                match &error {
                    None => {
                        if let Err(e) = control_plane.save_last_good(&update.json) {
                            tracing::warn!(error = %e, "cannot save the snapshot to disk");
                        }
                    }
                    Some(error) => {
                        tracing::error!(version = %version, error = %error, "snapshot rejected (NACK)")
                    }
                }
                if let Err(e) = control_plane.report(&version, error.as_deref()).await {
                    tracing::warn!(error = %e, "cannot report the snapshot's status");
                }
                // Next time ask for something newer than this one, applied or not: a rejected
                // version is not fetched again, the old configuration keeps serving.
                after = version;
            }
            Ok(None) => backoff = Backoff::default(),
            Err(error) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %error, retry_in = ?delay, "control plane unreachable; serving the configuration in force");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Exponential backoff with jitter, from 200 ms to 30 s.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = 200u64.saturating_mul(1 << self.attempt.min(8)).min(30_000);
        self.attempt += 1;
        // Jitter spreads reconnecting gateways out; the clock's nanoseconds are random enough.
        let jitter = u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos()),
        ) % (base / 4 + 1);
        Duration::from_millis(base + jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut backoff = Backoff::default();
        let first = backoff.next_delay();
        assert!(first >= Duration::from_millis(200) && first <= Duration::from_millis(250));
        for _ in 0..20 {
            backoff.next_delay();
        }
        assert!(backoff.next_delay() <= Duration::from_millis(37_500));
    }

    #[test]
    fn the_last_good_snapshot_survives_on_disk() {
        let dir = std::env::temp_dir().join(format!("paved-dist-{}", std::process::id()));
        let control_plane = ControlPlane {
            address: "127.0.0.1:1".into(),
            gateway_id: "gw".into(),
            token: "t".into(),
            state_dir: dir.clone(),
        };
        assert!(control_plane.last_good().is_none());
        let json = br#"{"version": 7, "listeners": [{"address": "127.0.0.1:8080"}]}"#;
        control_plane.save_last_good(json).expect("saved");
        assert_eq!(
            control_plane.last_good().expect("read back").version,
            SnapshotVersion::Number(7)
        );
        std::fs::write(dir.join("last-good-snapshot.json"), b"{not json").expect("overwrite");
        assert!(
            control_plane.last_good().is_none(),
            "a corrupt file is ignored, not trusted"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
