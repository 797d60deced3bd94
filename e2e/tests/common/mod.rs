//! `paved up`'s platform and a gateway watching it, started on free ports for one test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use paved::up::{Platform, UpArgs, gateway_options, start_platform};
use paved_e2e::harness::free_port;
use paved_gateway::{Gateway, ShutdownHandle, distribution};

/// The running platform, its gateway and their addresses.
pub struct RunningUp {
    /// The addresses and data directory.
    pub args: UpArgs,
    /// The control plane, demo upstream and credentials.
    pub platform: Platform,
    /// The gateway (for its version).
    #[allow(dead_code)] // each test file compiles this module; not every one reads the gateway
    pub gateway: Arc<Gateway>,
    shutdown: ShutdownHandle,
    thread: std::thread::JoinHandle<()>,
}

/// Starts everything `paved up` starts, under a fresh data directory named after `label`.
pub async fn start(label: &str) -> RunningUp {
    let data_dir = std::env::temp_dir().join(format!("paved-{label}-{}", std::process::id()));
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let addr = || SocketAddr::from(([127, 0, 0, 1], free_port()));
    let args = UpArgs {
        data_dir: data_dir.clone(),
        listen: addr(),
        control_plane: addr(),
        admin: addr(),
        demo_upstream: addr(),
    };
    let platform = start_platform(&args, &data_dir)
        .await
        .expect("platform starts");
    let snapshot = tokio::time::timeout(
        Duration::from_secs(30),
        distribution::initial_snapshot(&platform.gateway_client),
    )
    .await
    .expect("a snapshot within 30 s");
    let gateway = Arc::new(
        Gateway::new(snapshot, gateway_options(&data_dir)).expect("the compiled chain loads"),
    );
    gateway.background().spawn(distribution::watch(
        gateway.clone(),
        platform.gateway_client.clone(),
    ));
    let shutdown = ShutdownHandle::new();
    let (runner, stopper) = (gateway.clone(), shutdown.clone());
    let thread = std::thread::spawn(move || runner.run(stopper.watch()).expect("gateway runs"));
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(args.listen).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    RunningUp {
        args,
        platform,
        gateway,
        shutdown,
        thread,
    }
}

impl RunningUp {
    /// Stops the gateway (the control plane may already be stopped) and removes the data.
    pub fn stop_gateway(self) -> Platform {
        self.shutdown.shutdown();
        self.thread.join().expect("gateway stops");
        std::fs::remove_dir_all(&self.args.data_dir).ok();
        self.platform
    }
}
