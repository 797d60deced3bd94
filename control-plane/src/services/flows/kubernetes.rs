//! Leases of Kubernetes pods' addresses ([`LeaseSource::KubernetesPod`]), when configured
//! ([`FlowSettings::kubernetes`]).
//!
//! A background pass, every [`KubernetesPods::poll_every`], lists the pods carrying the app
//! label (`GET /api/v1/pods?labelSelector=<label>`, or the namespace's pods, page by page)
//! outside any transaction, then syncs the `kubernetes_pod` leases in one write transaction:
//! every address of a `Running` pod (`status.podIPs`, `status.podIP`; a `/32` or `/128` of
//! every port) is leased to the app its label names. Pods on the host's network (their
//! address is the node's), pods not running and label values that are no app id are left
//! out. A failed poll (the token file, the network, a status other than 2xx, an answer that
//! is not a pod list or too large) changes nothing.
//!
//! The bearer token is read from a file at every poll (the service-account token rotates);
//! it is never logged.
//!
//! [`FlowSettings::kubernetes`]: super::FlowSettings::kubernetes

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use paved_flow_collector::{AppId, IpPrefix, LeaseSource};
use serde::Deserialize;

use super::leases::{HOST_APP_PREFIX, LeaseKey, sync_source_rows};
use super::now_ms;
use crate::services::ControlPlane;

/// The pod label naming a pod's app, unless configured otherwise.
pub const DEFAULT_APP_LABEL: &str = "paved.dev/app";

/// The service-account token of a pod (in-cluster).
pub const IN_CLUSTER_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// The cluster's CA bundle, as mounted in a pod (in-cluster).
pub const IN_CLUSTER_CA_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

/// The largest answer read for one page of the pod list.
pub const MAX_POD_LIST_BYTES: usize = 32 * 1024 * 1024;

/// Pods asked for per page (`limit`); the pages are followed with `continue`.
const PAGE_SIZE: usize = 500;

/// At most this many pages per poll (`PAGE_SIZE` pods each); more fails the poll.
const MAX_PAGES: usize = 1_000;

/// How often the periodic task looks at the settings again while Kubernetes is off.
const DISABLED_RECHECK: Duration = Duration::from_secs(10);

/// Where pods are listed from and how their app is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesPods {
    /// The API server (`https://10.96.0.1:443`); no trailing path.
    pub api_url: String,
    /// A file holding the bearer token, read at every poll; `None`: no `Authorization`
    /// header (a `kubectl proxy` on loopback).
    pub token_file: Option<PathBuf>,
    /// PEM roots the API server's certificate is checked against (only those); `None`:
    /// the platform's trust store.
    pub ca_file: Option<PathBuf>,
    /// The pod label whose value is the app id ([`DEFAULT_APP_LABEL`]).
    pub app_label: String,
    /// Only this namespace's pods; `None`: every namespace (a cluster-wide `list`).
    pub namespace: Option<String>,
    /// How often pods are listed (30 s; at least 1 s).
    pub poll_every: Duration,
    /// How long one request may take, connection included (10 s).
    pub timeout: Duration,
}

impl KubernetesPods {
    /// Pods of every namespace from `api_url`, without a token, with the defaults.
    pub fn new(api_url: impl Into<String>) -> KubernetesPods {
        KubernetesPods {
            api_url: api_url.into(),
            token_file: None,
            ca_file: None,
            app_label: DEFAULT_APP_LABEL.to_string(),
            namespace: None,
            poll_every: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }

    /// The API server of the cluster this process runs in (`KUBERNETES_SERVICE_HOST` and
    /// `KUBERNETES_SERVICE_PORT`), with the pod's service-account token and CA bundle;
    /// `None` outside a cluster.
    pub fn in_cluster() -> Option<KubernetesPods> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST").ok()?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT").ok()?;
        let (host, port) = (host.trim(), port.trim());
        if host.is_empty() || port.is_empty() {
            return None;
        }
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let mut pods = KubernetesPods::new(format!("https://{host}:{port}"));
        pods.token_file = Some(PathBuf::from(IN_CLUSTER_TOKEN_FILE));
        pods.ca_file = Some(PathBuf::from(IN_CLUSTER_CA_FILE));
        Some(pods)
    }
}

/// Why listing pods failed (nothing was changed).
#[derive(Debug, thiserror::Error)]
pub enum KubernetesError {
    /// `FlowSettings::kubernetes` is not set.
    #[error("Kubernetes pod leases are not configured")]
    NotConfigured,
    /// The API server URL, namespace or label do not make a URL.
    #[error("bad Kubernetes API URL: {0}")]
    BadUrl(String),
    /// The token file could not be read, or is empty.
    #[error("reading the token file {path}: {reason}")]
    Token {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The CA bundle could not be read or holds no certificate.
    #[error("reading the CA bundle {path}: {reason}")]
    CaBundle {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The request failed (connection, TLS, timeout).
    #[error("the request failed: {0}")]
    Request(String),
    /// The API server answered with a status other than 2xx.
    #[error("the API server answered HTTP {0}")]
    Status(u16),
    /// The answer was larger than [`MAX_POD_LIST_BYTES`].
    #[error("the answer is larger than {MAX_POD_LIST_BYTES} bytes")]
    TooLarge,
    /// More than `MAX_PAGES` pages.
    #[error("the pod list has more than {MAX_PAGES} pages")]
    TooManyPages,
    /// The answer is not a `PodList`.
    #[error("the answer is not a pod list: {0}")]
    NotAPodList(String),
    /// Storing the leases failed.
    #[error(transparent)]
    Store(#[from] crate::Error),
}

impl From<sea_orm::DbErr> for KubernetesError {
    fn from(e: sea_orm::DbErr) -> Self {
        KubernetesError::Store(e.into())
    }
}

/// A page of `GET /api/v1/pods`: only what the leases need.
#[derive(Debug, Deserialize)]
pub(crate) struct PodList {
    /// Must be `PodList`: a `{}` from something else must not end every lease.
    kind: String,
    #[serde(default)]
    metadata: ListMeta,
    /// Required (the API server always sends it) for the same reason.
    items: Vec<Pod>,
}

#[derive(Debug, Default, Deserialize)]
struct ListMeta {
    #[serde(rename = "continue", default)]
    continue_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Pod {
    metadata: PodMeta,
    spec: PodSpec,
    status: PodStatus,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PodMeta {
    name: Option<String>,
    namespace: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PodSpec {
    #[serde(rename = "hostNetwork")]
    host_network: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PodStatus {
    phase: Option<String>,
    #[serde(rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pod_ips: Option<Vec<PodIp>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PodIp {
    ip: Option<String>,
}

/// Parses one page of the pod list.
pub(crate) fn parse_pod_list(body: &[u8]) -> Result<PodList, KubernetesError> {
    let list: PodList =
        serde_json::from_slice(body).map_err(|e| KubernetesError::NotAPodList(e.to_string()))?;
    if list.kind != "PodList" {
        return Err(KubernetesError::NotAPodList(format!(
            "kind is {:?}",
            list.kind
        )));
    }
    Ok(list)
}

/// Whether a pod address can be leased (not unspecified, loopback or multicast).
fn leasable(addr: IpAddr) -> bool {
    !(addr.is_unspecified() || addr.is_loopback() || addr.is_multicast())
}

/// The leases `pods` make: every address of each `Running` pod, not on the host's network,
/// whose `label` is an app id (not a reserved `host:` one), to that app on every port.
pub(crate) fn pod_leases<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    label: &str,
) -> BTreeSet<LeaseKey> {
    let mut wanted = BTreeSet::new();
    for pod in pods {
        let name = pod.metadata.name.as_deref().unwrap_or("");
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
        if pod.status.phase.as_deref() != Some("Running") || pod.spec.host_network == Some(true) {
            continue;
        }
        let Some(value) = pod.metadata.labels.as_ref().and_then(|l| l.get(label)) else {
            continue;
        };
        if value.starts_with(HOST_APP_PREFIX) {
            tracing::debug!(pod = name, namespace, label, value = %value, "a pod's app label names a host (reserved); not leased");
            continue;
        }
        let app = match AppId::new(value.as_str()) {
            Ok(app) => app,
            Err(e) => {
                tracing::debug!(pod = name, namespace, label, value = %value, error = %e, "a pod's app label is not an app id; not leased");
                continue;
            }
        };
        let listed = pod
            .status
            .pod_ips
            .iter()
            .flatten()
            .filter_map(|p| p.ip.as_deref());
        for text in listed.chain(pod.status.pod_ip.as_deref()) {
            match text.trim().parse::<IpAddr>() {
                Ok(addr) if leasable(addr) => {
                    wanted.insert((IpPrefix::host(addr), None, app.clone()));
                }
                _ => {
                    tracing::debug!(
                        pod = name,
                        namespace,
                        address = text,
                        "a pod address that cannot be leased"
                    );
                }
            }
        }
    }
    wanted
}

/// The URL of the first page of the pod list.
fn list_url(settings: &KubernetesPods) -> Result<url::Url, KubernetesError> {
    let mut url = url::Url::parse(settings.api_url.trim())
        .map_err(|e| KubernetesError::BadUrl(format!("{}: {e}", settings.api_url)))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(KubernetesError::BadUrl(format!(
            "{}: not an http(s) URL",
            settings.api_url
        )));
    }
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|()| KubernetesError::BadUrl(settings.api_url.clone()))?;
        segments.pop_if_empty().extend(["api", "v1"]);
        if let Some(ns) = &settings.namespace {
            segments.extend(["namespaces", ns.as_str()]);
        }
        segments.push("pods");
    }
    url.query_pairs_mut()
        .clear()
        .append_pair("labelSelector", &settings.app_label)
        .append_pair("limit", &PAGE_SIZE.to_string());
    Ok(url)
}

/// The token in `path`, whitespace trimmed.
fn read_token(path: &PathBuf) -> Result<String, KubernetesError> {
    let failed = |reason: String| KubernetesError::Token {
        path: path.clone(),
        reason,
    };
    let token = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
    let token = token.trim();
    if token.is_empty() {
        return Err(failed("empty".to_string()));
    }
    Ok(token.to_string())
}

/// The HTTP client of one poll (the CA bundle read again, as the token is).
fn client(settings: &KubernetesPods) -> Result<reqwest::Client, KubernetesError> {
    let mut builder = reqwest::Client::builder()
        // A redirect would carry the token elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout);
    if let Some(path) = &settings.ca_file {
        let failed = |reason: String| KubernetesError::CaBundle {
            path: path.clone(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| failed(e.to_string()))?;
        if certs.is_empty() {
            return Err(failed("no certificate".to_string()));
        }
        builder = builder.tls_certs_only(certs);
    }
    builder
        .build()
        .map_err(|e| KubernetesError::Request(e.to_string()))
}

/// GETs `url` and reads at most [`MAX_POD_LIST_BYTES`] of a 2xx answer.
async fn get_page(
    http: &reqwest::Client,
    url: url::Url,
    token: Option<&str>,
) -> Result<Vec<u8>, KubernetesError> {
    let mut request = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    // reqwest's messages name the URL, never a header.
    let mut response = request
        .send()
        .await
        .map_err(|e| KubernetesError::Request(e.without_url().to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(KubernetesError::Status(status.as_u16()));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_POD_LIST_BYTES as u64)
    {
        return Err(KubernetesError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| KubernetesError::Request(e.without_url().to_string()))?
    {
        if body.len() + chunk.len() > MAX_POD_LIST_BYTES {
            return Err(KubernetesError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Lists the labelled pods, every page, and returns the leases they make.
pub(crate) async fn fetch_wanted(
    settings: &KubernetesPods,
) -> Result<(usize, BTreeSet<LeaseKey>), KubernetesError> {
    let first = list_url(settings)?;
    let token = settings.token_file.as_ref().map(read_token).transpose()?;
    let http = client(settings)?;
    let mut pods = Vec::new();
    let mut url = first.clone();
    for _ in 0..MAX_PAGES {
        let body = get_page(&http, url.clone(), token.as_deref()).await?;
        let page = parse_pod_list(&body)?;
        pods.extend(page.items);
        match page.metadata.continue_token.filter(|c| !c.is_empty()) {
            None => {
                let wanted = pod_leases(&pods, &settings.app_label);
                return Ok((pods.len(), wanted));
            }
            Some(token) => {
                url = first.clone();
                url.query_pairs_mut().append_pair("continue", &token);
            }
        }
    }
    Err(KubernetesError::TooManyPages)
}

impl ControlPlane {
    /// Lists the pods now ([`FlowSettings::kubernetes`](super::FlowSettings::kubernetes))
    /// and syncs the [`LeaseSource::KubernetesPod`] leases in one write transaction; returns
    /// (started, ended). The pods are listed outside any transaction; a failed list changes
    /// nothing. The periodic task runs this every `poll_every`.
    pub async fn sync_kubernetes_pods_now(&self) -> Result<(usize, usize), KubernetesError> {
        let settings = self
            .flow_settings()
            .kubernetes
            .ok_or(KubernetesError::NotConfigured)?;
        self.sync_kubernetes_pods_with(&settings).await
    }

    /// Like [`ControlPlane::sync_kubernetes_pods_now`], with `settings` rather than the
    /// flow settings'.
    pub(crate) async fn sync_kubernetes_pods_with(
        &self,
        settings: &KubernetesPods,
    ) -> Result<(usize, usize), KubernetesError> {
        let (pods, wanted) = fetch_wanted(settings).await?;
        let _guard = self.write_guard().await;
        let tx = self.store().begin_write().await?;
        let changed = sync_source_rows(&tx, LeaseSource::KubernetesPod, &wanted, now_ms()).await?;
        tx.commit().await?;
        tracing::debug!(
            pods,
            leases = wanted.len(),
            started = changed.0,
            ended = changed.1,
            "Kubernetes pods listed"
        );
        Ok(changed)
    }

    /// Syncs the pod leases every `KubernetesPods::poll_every`, the first time after
    /// `first`, for as long as the control plane exists (no strong reference is held
    /// between passes); see [`ControlPlane::kubernetes_pod_pass`].
    pub(crate) fn spawn_kubernetes_pod_sync(&self, first: Duration) -> tokio::task::JoinHandle<()> {
        self.spawn_periodic(first, |cp| async move { cp.kubernetes_pod_pass().await })
    }

    /// One pass of the pod sync; returns the pause before the next. With leasing on it
    /// lists the pods (a failure keeps the leases). With it off
    /// (`FlowSettings::kubernetes` is `None`) it ends the pod leases an earlier
    /// configuration or run left open: nothing says where those pods are any more, and
    /// an address no lease names stays unknown rather than guessed. The setting is
    /// looked at again every [`DISABLED_RECHECK`].
    pub(crate) async fn kubernetes_pod_pass(&self) -> Duration {
        let Some(settings) = self.flow_settings().kubernetes else {
            if let Err(e) = self.end_kubernetes_pod_leases().await {
                tracing::warn!(error = %e, "ending the Kubernetes pod leases (leasing is off) failed; retrying later");
            }
            return DISABLED_RECHECK;
        };
        if let Err(e) = self.sync_kubernetes_pods_with(&settings).await {
            tracing::warn!(
                api_url = %settings.api_url,
                namespace = settings.namespace.as_deref().unwrap_or("*"),
                label = %settings.app_label,
                error = %e,
                "listing Kubernetes pods failed; their leases are kept; retrying later"
            );
        }
        settings.poll_every
    }

    /// Ends every open pod lease now; returns how many ended. Looks before it writes, so
    /// a pass with leasing off and nothing open takes no write lock.
    pub(crate) async fn end_kubernetes_pod_leases(&self) -> Result<usize, KubernetesError> {
        if super::leases::open_leases(self.store().db(), LeaseSource::KubernetesPod)
            .await?
            .is_empty()
        {
            return Ok(0);
        }
        let _guard = self.write_guard().await;
        let tx = self.store().begin_write().await?;
        let none = BTreeSet::new();
        let (_, ended) = sync_source_rows(&tx, LeaseSource::KubernetesPod, &none, now_ms()).await?;
        tx.commit().await?;
        tracing::info!(
            ended,
            "Kubernetes pod leasing is off: the pod leases left open ended"
        );
        Ok(ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app(name: &str) -> AppId {
        AppId::new(name).expect("app id")
    }

    fn lease(addr: &str, name: &str) -> LeaseKey {
        (
            IpPrefix::host(addr.parse().expect("address")),
            None,
            app(name),
        )
    }

    fn pod(name: &str, labels: serde_json::Value, phase: &str, ips: &[&str]) -> serde_json::Value {
        json!({
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"containers": [{"name": "c"}]},
            "status": {
                "phase": phase,
                "podIP": ips.first(),
                "podIPs": ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(),
            },
        })
    }

    fn list(items: Vec<serde_json::Value>, next: Option<&str>) -> serde_json::Value {
        let mut meta = json!({"resourceVersion": "42"});
        if let Some(next) = next {
            meta["continue"] = json!(next);
        }
        json!({"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": items})
    }

    fn leases_of(body: &serde_json::Value, label: &str) -> BTreeSet<LeaseKey> {
        let list = parse_pod_list(body.to_string().as_bytes()).expect("a pod list");
        pod_leases(&list.items, label)
    }

    #[test]
    fn running_pods_lease_every_address_to_the_app_their_label_names() {
        let mut host_net = pod(
            "node-exporter",
            json!({"paved.dev/app": "mon"}),
            "Running",
            &["192.168.1.10"],
        );
        host_net["spec"]["hostNetwork"] = json!(true);
        let mut old_api = pod("old", json!({"paved.dev/app": "web"}), "Running", &[]);
        old_api["status"]["podIP"] = json!("10.1.0.9");
        let body = list(
            vec![
                pod(
                    "web-1",
                    json!({"paved.dev/app": "web", "tier": "f"}),
                    "Running",
                    &["10.1.0.5", "fd00::5"],
                ),
                pod(
                    "web-2",
                    json!({"paved.dev/app": "web"}),
                    "Pending",
                    &["10.1.0.6"],
                ),
                pod(
                    "done",
                    json!({"paved.dev/app": "web"}),
                    "Succeeded",
                    &["10.1.0.7"],
                ),
                pod(
                    "db-0",
                    json!({"paved.dev/app": "db"}),
                    "Running",
                    &["10.1.0.8"],
                ),
                host_net,
                pod("nolabel", json!({"app": "web"}), "Running", &["10.1.0.11"]),
                pod(
                    "nolabels",
                    serde_json::Value::Null,
                    "Running",
                    &["10.1.0.12"],
                ),
                pod(
                    "bad-id",
                    json!({"paved.dev/app": "host:evil"}),
                    "Running",
                    &["10.1.0.13"],
                ),
                pod(
                    "bad-id-2",
                    json!({"paved.dev/app": ""}),
                    "Running",
                    &["10.1.0.14"],
                ),
                pod(
                    "bad-ip",
                    json!({"paved.dev/app": "web"}),
                    "Running",
                    &["not-an-ip", "0.0.0.0"],
                ),
                old_api,
            ],
            None,
        );
        assert_eq!(
            leases_of(&body, DEFAULT_APP_LABEL),
            [
                lease("10.1.0.5", "web"),
                lease("fd00::5", "web"),
                lease("10.1.0.8", "db"),
                lease("10.1.0.9", "web"),
            ]
            .into_iter()
            .collect::<BTreeSet<_>>(),
            "only Running pods off the host network, with a valid app label; IPv4 and IPv6"
        );
        assert_eq!(
            leases_of(&body, "app"),
            [lease("10.1.0.11", "web")]
                .into_iter()
                .collect::<BTreeSet<_>>(),
            "the configured label is the one read"
        );
    }

    #[test]
    fn an_answer_that_is_not_a_pod_list_is_refused_rather_than_read_as_no_pods() {
        for body in [
            "{}",
            r#"{"items": []}"#,
            r#"{"kind": "Status", "items": []}"#,
            r#"{"kind": "PodList"}"#,
            r#"{"kind": "PodList", "items": "x"}"#,
            "<html>proxy error</html>",
            "",
        ] {
            assert!(
                matches!(
                    parse_pod_list(body.as_bytes()),
                    Err(KubernetesError::NotAPodList(_))
                ),
                "{body}"
            );
        }
        let empty = parse_pod_list(br#"{"kind": "PodList", "metadata": {}, "items": []}"#)
            .expect("an empty list");
        assert!(empty.items.is_empty());
    }

    #[test]
    fn the_list_url_selects_the_label_and_the_namespace() {
        let mut settings = KubernetesPods::new("https://10.96.0.1:443/");
        assert_eq!(
            list_url(&settings).expect("url").as_str(),
            "https://10.96.0.1/api/v1/pods?labelSelector=paved.dev%2Fapp&limit=500"
        );
        settings.namespace = Some("shop".to_string());
        settings.app_label = "app.kubernetes.io/name".to_string();
        assert_eq!(
            list_url(&settings).expect("url").as_str(),
            "https://10.96.0.1/api/v1/namespaces/shop/pods?labelSelector=app.kubernetes.io%2Fname&limit=500"
        );
        settings.api_url = "unix:/run/k8s.sock".to_string();
        assert!(matches!(
            list_url(&settings),
            Err(KubernetesError::BadUrl(_))
        ));
    }

    /// A stand-in API server: answers each request with the next of `answers` and records
    /// (path and query, Authorization header).
    mod server {
        use std::sync::{Arc, Mutex};

        use axum::http::{HeaderMap, StatusCode, Uri};

        /// The requests seen: (path and query, Authorization).
        pub type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

        pub async fn start(answers: Vec<(u16, String)>) -> (String, Seen) {
            let seen: Seen = Arc::default();
            let answers = Arc::new(Mutex::new(answers.into_iter()));
            let recorded = seen.clone();
            let handler = move |uri: Uri, headers: HeaderMap| {
                let recorded = recorded.clone();
                let answers = answers.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let path = uri
                        .path_and_query()
                        .map(|p| p.to_string())
                        .unwrap_or_default();
                    recorded.lock().expect("lock").push((path, auth));
                    let (status, body) = answers
                        .lock()
                        .expect("lock")
                        .next()
                        .unwrap_or((500, "no more answers".to_string()));
                    (
                        StatusCode::from_u16(status).expect("status"),
                        [("content-type", "application/json")],
                        body,
                    )
                }
            };
            let app = axum::Router::new().fallback(handler);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("address");
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            (format!("http://{addr}"), seen)
        }
    }

    fn settings_for(url: &str, token_file: &std::path::Path) -> KubernetesPods {
        let mut s = KubernetesPods::new(url);
        s.token_file = Some(token_file.to_path_buf());
        s.timeout = Duration::from_secs(5);
        s
    }

    async fn control_plane() -> (ControlPlane, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("cp.db").display());
        let config = crate::ControlPlaneConfig::new(url, "http://127.0.0.1:1".to_string());
        let cp = ControlPlane::start(config).await.expect("control plane");
        (cp, dir)
    }

    async fn open_pod_leases(cp: &ControlPlane) -> BTreeSet<LeaseKey> {
        super::super::leases::open_leases(cp.store().db(), LeaseSource::KubernetesPod)
            .await
            .expect("leases")
    }

    #[tokio::test]
    async fn pages_are_listed_with_the_bearer_token_and_label_and_leased() {
        let page1 = list(
            vec![pod(
                "web-1",
                json!({"paved.dev/app": "web"}),
                "Running",
                &["10.1.0.5", "fd00::5"],
            )],
            Some("next page/1"),
        );
        let page2 = list(
            vec![pod(
                "db-0",
                json!({"paved.dev/app": "db"}),
                "Running",
                &["10.1.0.8"],
            )],
            None,
        );
        let (url, seen) =
            server::start(vec![(200, page1.to_string()), (200, page2.to_string())]).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "s3cret-token\n").expect("token");
        let mut settings = settings_for(&url, &token_file);
        settings.namespace = Some("shop".to_string());

        let (pods, wanted) = fetch_wanted(&settings).await.expect("listed");
        assert_eq!(pods, 2);
        assert_eq!(
            wanted,
            [
                lease("10.1.0.5", "web"),
                lease("fd00::5", "web"),
                lease("10.1.0.8", "db")
            ]
            .into_iter()
            .collect::<BTreeSet<_>>()
        );
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(
            seen,
            vec![
                (
                    "/api/v1/namespaces/shop/pods?labelSelector=paved.dev%2Fapp&limit=500".to_string(),
                    Some("Bearer s3cret-token".to_string())
                ),
                (
                    "/api/v1/namespaces/shop/pods?labelSelector=paved.dev%2Fapp&limit=500&continue=next+page%2F1"
                        .to_string(),
                    Some("Bearer s3cret-token".to_string())
                ),
            ],
            "the path, the label selector, the continue token and the token (trimmed)"
        );
    }

    #[tokio::test]
    async fn the_token_file_is_read_again_at_every_poll() {
        let empty = list(vec![], None).to_string();
        let (url, seen) = server::start(vec![(200, empty.clone()), (200, empty)]).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "first").expect("token");
        let settings = settings_for(&url, &token_file);
        fetch_wanted(&settings).await.expect("first poll");
        std::fs::write(&token_file, "rotated").expect("token");
        fetch_wanted(&settings).await.expect("second poll");
        let auth: Vec<Option<String>> = seen
            .lock()
            .expect("lock")
            .iter()
            .map(|s| s.1.clone())
            .collect();
        assert_eq!(
            auth,
            vec![
                Some("Bearer first".to_string()),
                Some("Bearer rotated".to_string())
            ]
        );

        std::fs::write(&token_file, "  \n").expect("token");
        let e = fetch_wanted(&settings).await.expect_err("empty token");
        assert!(matches!(e, KubernetesError::Token { .. }), "{e}");
        assert!(!e.to_string().contains("rotated"));
    }

    #[tokio::test]
    async fn a_failed_poll_changes_no_lease_and_a_good_one_follows_the_pods() {
        let web = |ips: &[&str]| pod("web-1", json!({"paved.dev/app": "web"}), "Running", ips);
        let garbage_page2 = list(vec![web(&["10.1.0.99"])], Some("p2"));
        let (url, seen) = server::start(vec![
            (200, list(vec![web(&["10.1.0.5"])], None).to_string()),
            (401, r#"{"kind":"Status","code":401}"#.to_string()),
            (500, "oops".to_string()),
            (200, "not json".to_string()),
            (200, "{}".to_string()),
            (200, garbage_page2.to_string()),
            (200, "{\"kind\":\"PodList\",\"items\":[".to_string()),
            (200, list(vec![web(&["10.1.0.6"])], None).to_string()),
        ])
        .await;
        let dir = tempfile::tempdir().expect("temp dir");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "tok").expect("token");
        let (cp, _db) = control_plane().await;

        assert!(matches!(
            cp.sync_kubernetes_pods_now().await,
            Err(KubernetesError::NotConfigured)
        ));
        // Leasing on, at an address nobody answers: a periodic pass during the test fails
        // and keeps the leases (with leasing off it would end them), and does not take
        // this test's answers.
        let nobody = settings_for("http://127.0.0.1:1", &token_file);
        cp.configure_flows(super::super::FlowSettings {
            kubernetes: Some(nobody),
            ..cp.flow_settings()
        })
        .await;
        let settings = settings_for(&url, &token_file);
        let sync = || cp.sync_kubernetes_pods_with(&settings);

        assert_eq!(sync().await.expect("first poll"), (1, 0));
        let first: BTreeSet<LeaseKey> = [lease("10.1.0.5", "web")].into_iter().collect();
        assert_eq!(open_pod_leases(&cp).await, first);

        for expected in [
            "401",
            "500",
            "not a pod list",
            "not a pod list",
            "not a pod list",
        ] {
            let e = sync().await.expect_err("a failed poll");
            assert!(e.to_string().contains(expected), "{e}");
            assert!(!e.to_string().contains("tok"), "{e}");
            assert_eq!(
                open_pod_leases(&cp).await,
                first,
                "after {e}: nothing changed"
            );
        }

        assert_eq!(sync().await.expect("a good poll"), (1, 1));
        assert_eq!(
            open_pod_leases(&cp).await,
            [lease("10.1.0.6", "web")]
                .into_iter()
                .collect::<BTreeSet<_>>(),
            "the pod's old address ended, its new one started"
        );
        assert_eq!(seen.lock().expect("lock").len(), 8);
    }

    #[test]
    fn a_ca_bundle_must_hold_a_certificate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = dir.path().join("ca.crt");
        let cert = rcgen::generate_simple_self_signed(vec!["kubernetes.default".to_string()])
            .expect("certificate");
        std::fs::write(&ca, cert.cert.pem()).expect("ca");
        let mut settings = KubernetesPods::new("https://10.96.0.1");
        settings.ca_file = Some(ca.clone());
        client(&settings).expect("a client trusting the bundle");

        std::fs::write(&ca, "not a certificate").expect("ca");
        assert!(matches!(
            client(&settings),
            Err(KubernetesError::CaBundle { .. })
        ));
        settings.ca_file = Some(dir.path().join("missing.crt"));
        assert!(matches!(
            client(&settings),
            Err(KubernetesError::CaBundle { .. })
        ));
    }

    #[tokio::test]
    async fn an_answer_over_the_size_bound_fails_the_poll() {
        let big = format!(
            "{{\"kind\":\"PodList\",\"items\":[],\"pad\":\"{}\"}}",
            "x".repeat(MAX_POD_LIST_BYTES)
        );
        let (url, _) = server::start(vec![(200, big)]).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "tok").expect("token");
        let e = fetch_wanted(&settings_for(&url, &token_file))
            .await
            .expect_err("too large");
        assert!(matches!(e, KubernetesError::TooLarge), "{e}");
    }

    #[tokio::test]
    async fn turning_pod_leasing_off_ends_the_pod_leases_left_open() {
        let web = pod(
            "web-1",
            json!({"paved.dev/app": "web"}),
            "Running",
            &["10.1.0.5"],
        );
        let (url, _seen) = server::start(vec![(200, list(vec![web], None).to_string())]).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "tok").expect("token");
        let (cp, _db) = control_plane().await;
        let settings = settings_for(&url, &token_file);
        assert_eq!(
            cp.sync_kubernetes_pods_with(&settings)
                .await
                .expect("listed"),
            (1, 0)
        );
        assert_eq!(open_pod_leases(&cp).await.len(), 1);

        // The flow settings say leasing is off (the default): a pass ends the lease.
        assert!(cp.flow_settings().kubernetes.is_none());
        assert_eq!(cp.kubernetes_pod_pass().await, DISABLED_RECHECK);
        assert!(open_pod_leases(&cp).await.is_empty());
        // Ended, not deleted: it still attributes the flows of the time it held.
        use sea_orm::EntityTrait;
        let rows = crate::storage::entities::address_lease::Entity::find()
            .all(cp.store().db())
            .await
            .expect("lease rows");
        let pods: Vec<_> = rows
            .iter()
            .filter(|r| {
                r.source == super::super::leases::lease_source_name(LeaseSource::KubernetesPod)
            })
            .collect();
        assert_eq!(pods.len(), 1);
        assert!(pods[0].valid_to_ms.is_some(), "{pods:?}");
        assert_eq!(
            cp.end_kubernetes_pod_leases().await.expect("nothing open"),
            0
        );
    }
}
