//! `paved flow-agent`: loads the eBPF flow probe, runs the agent (aggregation per interval,
//! process and container enrichment, a backlog while the destination is away) and exports
//! its batches to NATS JetStream (`--nats-url`) or straight to a control plane
//! (`--control-plane`, `POST /v1/flows`). Also the in-process agent of `paved up`
//! ([`start_in_process`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::StatusCode;
use paved_control_plane::ControlPlane;
use paved_control_plane::services::flows::{FlowSettings, ProcessRule};
use paved_flow_agent::transport::channel::channel;
use paved_flow_agent::transport::nats::{NatsSink, StreamSettings};
use paved_flow_agent::transport::{BoxError, SinkFuture};
use paved_flow_agent::{
    AgentHandle, AgentIdentity, AgentSettings, BacklogSettings, FlowAgent, FlowConfig, FlowSink,
    PortFilter, PortRange, SinkError, SpoolSettings,
};
use paved_flow_collector::{AppId, ProcessMatch};
use paved_flow_proto::{AgentId, FlowBatch, encode_batch};

/// Arguments of `paved flow-agent`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("destination").required(true).args(["nats_url", "control_plane"])))]
pub struct FlowAgentArgs {
    /// NATS server to publish batches to (JetStream stream `PAVED_FLOWS`, subject
    /// `paved.flows.<agent id>`), e.g. `nats://127.0.0.1:4222`.
    #[arg(long, env = "PAVED_NATS_URL")]
    nats_url: Option<String>,
    /// Control plane to post batches to (`http://host:port`), with `--token`.
    #[arg(long, env = "PAVED_CONTROL_PLANE")]
    control_plane: Option<String>,
    /// API token with the `gateway` scope, for `--control-plane`.
    #[arg(long, env = "PAVED_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The agent's id (`[A-Za-z0-9_-]`, at most 64); default: from the host name.
    #[arg(long)]
    agent_id: Option<String>,
    /// Aggregation and export interval, in seconds (1 to 3600).
    #[arg(long, default_value_t = 10)]
    interval: u64,
    /// Fraction of connections reported, in (0, 1].
    #[arg(long, default_value_t = 1.0)]
    sampling_rate: f64,
    /// Report only these service ports (`443`, `8000-8999`; comma-separated).
    #[arg(long, value_delimiter = ',')]
    include_ports: Vec<PortRange>,
    /// Never report these service ports.
    #[arg(long, value_delimiter = ',')]
    exclude_ports: Vec<PortRange>,
    /// Keep undelivered batches in this directory (survives restarts); default: in memory.
    #[arg(long)]
    spool_dir: Option<PathBuf>,
}

/// Delivers batches to a control plane's `POST /v1/flows`: `Ok` once it answered that the
/// batch is stored. Plain HTTP only (run it on a trusted network, or export through NATS).
pub struct ControlPlaneSink {
    authority: String,
    path: String,
    token: String,
    timeout: Duration,
}

const SINK: &str = "control-plane";

impl ControlPlaneSink {
    /// A sink posting to `base_url` (`http://host:port[/prefix]`) with `token`.
    pub fn new(base_url: &str, token: &str) -> anyhow::Result<Self> {
        let Some(rest) = base_url.strip_prefix("http://") else {
            bail!(
                "--control-plane must be an http:// URL (found `{base_url}`); for TLS export through NATS"
            );
        };
        let (authority, prefix) = match rest.split_once('/') {
            Some((authority, prefix)) => (authority, prefix.trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            bail!("--control-plane `{base_url}` has no host");
        }
        let authority = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let path = if prefix.is_empty() {
            "/v1/flows".to_string()
        } else {
            format!("/{prefix}/v1/flows")
        };
        Ok(ControlPlaneSink {
            authority,
            path,
            token: token.to_string(),
            timeout: Duration::from_secs(30),
        })
    }

    async fn post(&self, body: Vec<u8>) -> Result<(StatusCode, Bytes), BoxError> {
        let stream = tokio::net::TcpStream::connect(&self.authority).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        let driver = tokio::spawn(connection);
        let request = hyper::Request::post(&self.path)
            .header(hyper::header::HOST, &self.authority)
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        driver.abort();
        Ok((status, body))
    }
}

impl FlowSink for ControlPlaneSink {
    fn name(&self) -> &'static str {
        SINK
    }

    fn send<'a>(&'a self, batch: &'a FlowBatch) -> SinkFuture<'a> {
        Box::pin(async move {
            let body = encode_batch(batch).map_err(SinkError::Encode)?;
            let (status, answer) = tokio::time::timeout(self.timeout, self.post(body))
                .await
                .map_err(|_| SinkError::unavailable(SINK, "no answer within 30 s"))?
                .map_err(|e| SinkError::unavailable(SINK, e))?;
            let answer = String::from_utf8_lossy(&answer).into_owned();
            match status {
                StatusCode::OK => Ok(()),
                // The batch breaks the format or the collector's policy: resending would
                // fail the same way.
                StatusCode::BAD_REQUEST => Err(SinkError::Rejected {
                    sink: SINK,
                    reason: answer,
                }),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    // Kept, not dropped: a fixed token delivers the backlog.
                    tracing::error!(%status, answer = %answer, "the control plane refused the agent's token (it needs the `gateway` scope)");
                    Err(SinkError::unavailable(SINK, format!("{status}: {answer}")))
                }
                _ => Err(SinkError::unavailable(SINK, format!("{status}: {answer}"))),
            }
        })
    }
}

fn flow_config(args: &FlowAgentArgs) -> anyhow::Result<FlowConfig> {
    let config = FlowConfig {
        interval: Duration::from_secs(args.interval),
        sampling_rate: args.sampling_rate,
        ports: PortFilter {
            include: args.include_ports.clone(),
            exclude: args.exclude_ports.clone(),
        },
        ..FlowConfig::default()
    };
    config.validate().context("invalid flow agent settings")?;
    Ok(config)
}

/// Runs the agent until Ctrl-C or SIGTERM, then exports the interval in progress.
pub fn run(args: FlowAgentArgs) -> anyhow::Result<()> {
    let config = flow_config(&args)?;
    let agent_id = args
        .agent_id
        .as_deref()
        .map(AgentId::new)
        .transpose()
        .context("--agent-id")?;
    let identity = AgentIdentity::detect(agent_id);
    let mut settings = AgentSettings::new(identity.clone());
    if let Some(dir) = &args.spool_dir {
        settings.export.backlog = BacklogSettings::Disk(SpoolSettings::new(dir));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let sink: Arc<dyn FlowSink> = match (&args.nats_url, &args.control_plane) {
            (Some(url), _) => Arc::new(
                NatsSink::connect(url, StreamSettings::default(), &identity.agent_id)
                    .await
                    .with_context(|| format!("connecting to NATS at {url}"))?,
            ),
            (None, Some(url)) => {
                let token = args
                    .token
                    .as_deref()
                    .context("--control-plane needs --token (or PAVED_TOKEN) with the `gateway` scope")?;
                Arc::new(ControlPlaneSink::new(url, token)?)
            }
            (None, None) => bail!("give --nats-url or --control-plane"),
        };
        let destination = sink.name();
        let (_config_tx, config_rx) = tokio::sync::watch::channel(config);
        let agent = FlowAgent::start(settings, sink, config_rx).map_err(|e| {
            anyhow::Error::new(e).context(
                "starting the flow agent (loading eBPF needs root, or CAP_BPF and CAP_PERFMON)",
            )
        })?;
        tracing::info!(agent = %identity.agent_id, host = %identity.host, destination, "flow agent running");
        crate::control_plane_cmd::shutdown_signal().await;
        tracing::info!("flow agent stopping");
        let metrics = agent.metrics();
        agent.shutdown().await.context("stopping the flow agent")?;
        tracing::info!(
            batches_exported = metrics.batches_exported,
            batches_buffered = metrics.batches_buffered,
            "flow agent stopped (the interval in progress was exported or left in the backlog)"
        );
        Ok(())
    })
}

/// Whether an error comes from a refused privilege (`EPERM`/`EACCES` anywhere in its chain:
/// a `bpf()` call, or mounting tracefs).
fn lacks_privilege(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::PermissionDenied
        {
            return true;
        }
        if let Some(probe) = err.downcast_ref::<paved_flow_agent::ProbeError>()
            && probe.is_permission_denied()
        {
            return true;
        }
        source = err.source();
    }
    false
}

/// The flow agent of `paved up`, exporting through an in-process channel to the control
/// plane of the same process.
pub struct InProcessAgent {
    agent: AgentHandle,
}

impl InProcessAgent {
    /// Stops the agent (its last interval is stored) and, with its sink gone, the channel.
    pub async fn stop(self) {
        if let Err(e) = self.agent.shutdown().await {
            tracing::warn!(error = %e, "the flow agent stopped with an error");
        }
    }

    /// The agent's counters.
    pub fn metrics(&self) -> paved_flow_agent::MetricsSnapshot {
        self.agent.metrics()
    }
}

/// Starts the eBPF agent in this process with the control plane `cp` as its destination,
/// and tells the control plane that this process's own flows are `paved`'s (the gateway,
/// the control plane and the demo app share it and its addresses; the demo app's port is
/// told apart by its upstream lease). `Err` with the reason when eBPF cannot be loaded (no
/// privilege, a kernel without the hooks): the caller goes on without flows. Must be
/// called inside a tokio runtime.
pub async fn start_in_process(
    cp: &ControlPlane,
    interval: Duration,
) -> anyhow::Result<InProcessAgent> {
    if let Ok(exe) = std::env::current_exe() {
        let mut settings: FlowSettings = cp.flow_settings();
        settings.process_rules.push(ProcessRule {
            host: None,
            matcher: ProcessMatch::Exe(exe.display().to_string()),
            app: AppId::new("paved").context("app id")?,
        });
        cp.configure_flows(settings).await;
    }
    let (sink, receiver) = channel(16);
    let config = FlowConfig {
        interval,
        ..FlowConfig::default()
    };
    let (_config_tx, config_rx) = tokio::sync::watch::channel(config);
    let settings = AgentSettings::new(AgentIdentity::detect(None));
    // The probe first: when it fails, nothing else was started.
    let agent = FlowAgent::start(settings, Arc::new(sink), config_rx).map_err(|e| {
        let hint = if lacks_privilege(&e) {
            "run as root, or give the binary CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (cgroup socket hooks)"
        } else {
            "the kernel may lack cgroup v2, its socket hooks or the BTF the probe needs"
        };
        anyhow::Error::new(e).context(format!("loading the eBPF flow probe failed ({hint})"))
    })?;
    cp.spawn_flow_channel(receiver);
    Ok(InProcessAgent { agent })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_plane_urls_give_the_address_and_the_flows_path() {
        let sink = ControlPlaneSink::new("http://cp.internal:8081", "t").expect("valid");
        assert_eq!(
            (sink.authority.as_str(), sink.path.as_str()),
            ("cp.internal:8081", "/v1/flows")
        );
        let sink = ControlPlaneSink::new("http://cp/paved/", "t").expect("valid");
        assert_eq!(
            (sink.authority.as_str(), sink.path.as_str()),
            ("cp:80", "/paved/v1/flows")
        );
        assert!(ControlPlaneSink::new("https://cp:8443", "t").is_err());
        assert!(ControlPlaneSink::new("http:///x", "t").is_err());
    }

    #[test]
    fn a_refused_privilege_anywhere_in_the_chain_is_recognised() {
        let err = paved_flow_agent::ProbeError::Tracefs {
            path: "/sys/kernel/tracing".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert!(lacks_privilege(&err));
        let err = paved_flow_agent::ProbeError::MissingMap { map: "m" };
        assert!(!lacks_privilege(&err));
    }
}
