//! Upstream clusters at run time: endpoints with their health and load, load balancing,
//! and the active health checks that move endpoints in and out of rotation.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use paved_model::snapshot::{Cluster, HealthCheck, LoadBalancing};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::ConfigError;

/// One endpoint of a cluster.
#[derive(Debug)]
pub struct Endpoint {
    /// Its address.
    pub addr: SocketAddr,
    /// The host name it was configured with (for `Host`/SNI), or the IP.
    pub host: String,
    healthy: AtomicBool,
    in_flight: AtomicUsize,
    successes: AtomicU32,
    failures: AtomicU32,
}

impl Endpoint {
    /// Whether health checks currently pass (always, without health checks).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Requests in flight to this endpoint.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request to this endpoint until the guard is dropped (least-connections).
    pub fn track(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn observe(&self, ok: bool, check: &HealthCheck) {
        if ok {
            self.failures.store(0, Ordering::Relaxed);
            let successes = self.successes.fetch_add(1, Ordering::Relaxed) + 1;
            if successes >= check.healthy_threshold && !self.healthy.swap(true, Ordering::Relaxed) {
                tracing::info!(endpoint = %self.addr, "endpoint healthy again");
            }
        } else {
            self.successes.store(0, Ordering::Relaxed);
            let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if failures >= check.unhealthy_threshold && self.healthy.swap(false, Ordering::Relaxed)
            {
                tracing::warn!(endpoint = %self.addr, "endpoint unhealthy; out of rotation");
            }
        }
    }
}

/// Keeps an endpoint's in-flight count up while a request uses it.
#[derive(Debug)]
pub struct InFlight(Arc<Endpoint>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A cluster at run time.
#[derive(Debug)]
pub struct ClusterRuntime {
    /// Its configuration.
    pub config: Cluster,
    /// Its endpoints, in configuration order.
    pub endpoints: Vec<Arc<Endpoint>>,
    next: AtomicUsize,
    health_task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for ClusterRuntime {
    fn drop(&mut self) {
        if let Some(task) = self.health_task.take() {
            task.abort();
        }
    }
}

impl ClusterRuntime {
    /// Resolves the endpoints and, when the cluster has health checks, starts them on `rt`.
    pub fn new(config: Cluster, rt: &tokio::runtime::Handle) -> Result<Self, ConfigError> {
        let mut endpoints = Vec::with_capacity(config.endpoints.len());
        for endpoint in &config.endpoints {
            let resolve_error = |message: String| ConfigError::Endpoint {
                cluster: config.name.clone(),
                endpoint: endpoint.0.clone(),
                message,
            };
            let (host, _) = endpoint
                .host_port()
                .ok_or_else(|| resolve_error("not host:port".into()))?;
            let addr = match endpoint.socket_addr() {
                Some(addr) => addr,
                None => endpoint
                    .0
                    .to_socket_addrs()
                    .map_err(|e| resolve_error(e.to_string()))?
                    .next()
                    .ok_or_else(|| resolve_error("resolved to no address".into()))?,
            };
            endpoints.push(Arc::new(Endpoint {
                addr,
                host: host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
                healthy: AtomicBool::new(true),
                in_flight: AtomicUsize::new(0),
                successes: AtomicU32::new(0),
                failures: AtomicU32::new(0),
            }));
        }
        let health_task = config.health_check.clone().map(|check| {
            let endpoints = endpoints.clone();
            rt.spawn(run_health_checks(endpoints, check))
        });
        Ok(Self {
            config,
            endpoints,
            next: AtomicUsize::new(0),
            health_task,
        })
    }

    /// Picks an endpoint by the cluster's policy among healthy ones, skipping `exclude`
    /// (endpoints that already failed to connect for this request). When none is healthy,
    /// all are candidates: better to try than to fail without trying.
    pub fn pick(&self, exclude: &[SocketAddr]) -> Option<Arc<Endpoint>> {
        let usable: Vec<&Arc<Endpoint>> = self
            .endpoints
            .iter()
            .filter(|e| !exclude.contains(&e.addr))
            .collect();
        let healthy: Vec<&Arc<Endpoint>> =
            usable.iter().copied().filter(|e| e.is_healthy()).collect();
        let candidates = if healthy.is_empty() { usable } else { healthy };
        if candidates.is_empty() {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let chosen = match self.config.load_balancing {
            LoadBalancing::RoundRobin => candidates[start % candidates.len()],
            LoadBalancing::LeastConnections => {
                // Ties are broken round-robin so equal endpoints share the load.
                let n = candidates.len();
                (0..n)
                    .map(|i| candidates[(start + i) % n])
                    .min_by_key(|e| e.in_flight())
                    .unwrap_or(candidates[0])
            }
        };
        Some(chosen.clone())
    }
}

async fn run_health_checks(endpoints: Vec<Arc<Endpoint>>, check: HealthCheck) {
    let mut interval = tokio::time::interval(Duration::from_millis(check.interval_ms.max(10)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        for endpoint in &endpoints {
            let timeout = Duration::from_millis(check.timeout_ms.max(1));
            let ok = tokio::time::timeout(timeout, probe(endpoint, check.path.as_deref()))
                .await
                .unwrap_or(false);
            endpoint.observe(ok, &check);
        }
    }
}

/// A TCP connect, or an HTTP/1.1 `GET path` answered with 2xx.
async fn probe(endpoint: &Endpoint, path: Option<&str>) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(endpoint.addr).await else {
        return false;
    };
    let Some(path) = path else {
        return true;
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: paved-health-check\r\nConnection: close\r\n\r\n",
        endpoint.host
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 16];
    let mut read = 0;
    while read < 12 {
        match stream.read(&mut head[read..]).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => read += n,
        }
    }
    // "HTTP/1.1 2xx"
    head.starts_with(b"HTTP/1.") && head[9] == b'2'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(lb: LoadBalancing, endpoints: &[&str]) -> ClusterRuntime {
        let config: Cluster = serde_json::from_value(serde_json::json!({
            "name": "c", "endpoints": endpoints, "load_balancing": lb,
        }))
        .expect("valid cluster");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        ClusterRuntime::new(config, rt.handle()).expect("cluster")
    }

    #[test]
    fn round_robin_spreads_requests_over_endpoints() {
        let c = cluster(LoadBalancing::RoundRobin, &["127.0.0.1:1", "127.0.0.1:2"]);
        let picks: Vec<u16> = (0..4)
            .map(|_| c.pick(&[]).expect("endpoint").addr.port())
            .collect();
        assert_eq!(picks, vec![1, 2, 1, 2]);
    }

    #[test]
    fn least_connections_prefers_the_idle_endpoint() {
        let c = cluster(
            LoadBalancing::LeastConnections,
            &["127.0.0.1:1", "127.0.0.1:2"],
        );
        let busy = c.endpoints[0].track();
        for _ in 0..3 {
            assert_eq!(c.pick(&[]).expect("endpoint").addr.port(), 2);
        }
        drop(busy);
        assert_eq!(c.endpoints[0].in_flight(), 0);
    }

    #[test]
    fn unhealthy_and_excluded_endpoints_are_skipped() {
        let c = cluster(LoadBalancing::RoundRobin, &["127.0.0.1:1", "127.0.0.1:2"]);
        let check = HealthCheck {
            unhealthy_threshold: 1,
            ..HealthCheck::default()
        };
        c.endpoints[0].observe(false, &check);
        for _ in 0..3 {
            assert_eq!(c.pick(&[]).expect("endpoint").addr.port(), 2);
        }
        let second: SocketAddr = "127.0.0.1:2".parse().expect("addr");
        // Only the unhealthy one is left: it is tried rather than failing outright.
        assert_eq!(c.pick(&[second]).expect("endpoint").addr.port(), 1);
        let first: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        assert!(c.pick(&[first, second]).is_none());
    }
}
