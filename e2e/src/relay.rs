//! A TCP relay on loopback that a test can cut and restore on the same address: from the
//! client's side a cut relay is a server that went away (connections refused, open ones closed),
//! while the test still reaches the real server behind it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::harness::free_port;

/// A relay from [`Relay::addr`] to a target address.
pub struct Relay {
    /// Where clients connect.
    pub addr: SocketAddr,
    target: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Relay {
    /// A relay on a free port with nothing listening yet: the target is away until
    /// [`Relay::restore`].
    pub fn cut_from_the_start(target: SocketAddr) -> Relay {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        Relay {
            addr,
            target,
            task: None,
        }
    }

    /// A relay on a free port, relaying.
    pub async fn start(target: SocketAddr) -> Relay {
        Relay::start_on(SocketAddr::from(([127, 0, 0, 1], free_port())), target).await
    }

    /// A relay on `addr`, relaying.
    pub async fn start_on(addr: SocketAddr, target: SocketAddr) -> Relay {
        let mut relay = Relay {
            addr,
            target,
            task: None,
        };
        relay.restore().await;
        relay
    }

    /// Listens again (the address was just released: the bind is retried briefly).
    pub async fn restore(&mut self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) if tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("relay cannot listen on {}: {e}", self.addr),
            }
        };
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            // Dropping the set (when this task is aborted) closes every relayed connection.
            let mut connections = JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Closes the listener and every relayed connection: the target is unreachable.
    pub async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        // The relayed connections' tasks are cancelled by the runtime right after the set is
        // dropped; let that happen before the test relies on the target being away.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
