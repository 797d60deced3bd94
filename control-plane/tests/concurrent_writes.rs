//! Writers outside the control plane's write mutex (gateways reporting their polls, traffic
//! batches) commit while `applyIntent` runs: on SQLite a transaction that read before such a
//! commit could not write any more and failed with "database is locked" at once. Every apply
//! must succeed however the writes interleave, on SQLite and PostgreSQL.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Backend, env};

const APPLIES: usize = 40;

async fn applies_succeed_while_a_gateway_keeps_reporting_polls(backend: Backend) {
    let env = env(backend).await;
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (cp, stop) = (env.cp.clone(), stop.clone());
        tokio::spawn(async move {
            let mut polls = 0u64;
            while !stop.load(Ordering::Relaxed) {
                cp.gateway_polled("gw-concurrent", None)
                    .await
                    .unwrap_or_else(|e| panic!("poll {polls}: {e}"));
                polls += 1;
            }
            polls
        })
    };
    for i in 0..APPLIES {
        let yaml = format!(
            "apiVersion: paved.dev/v1\nname: busy\ndescription: revision {i}\nowners: [owner@example.com]\nteam: platform\ndomains: [busy.example.com]\nupstream: 127.0.0.1:9000\n"
        );
        let applied = env.cp.apply_intent(&env.admin, &yaml, "test").await;
        assert!(
            applied.is_ok(),
            "apply {i} failed while a gateway reported polls: {:?}",
            applied.err()
        );
    }
    stop.store(true, Ordering::Relaxed);
    let polls = poller.await.expect("poller task");
    assert!(polls > 0, "the gateway's polls ran alongside the applies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_applies_succeed_while_a_gateway_keeps_reporting_polls() {
    applies_succeed_while_a_gateway_keeps_reporting_polls(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_applies_succeed_while_a_gateway_keeps_reporting_polls() {
    applies_succeed_while_a_gateway_keeps_reporting_polls(Backend::Postgres).await;
}
