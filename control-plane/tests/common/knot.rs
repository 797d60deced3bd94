//! Knot DNS (Debian's `knot`) for tests: serving `paved.test.` on a free 127.0.0.1 port in a
//! temporary directory, TSIG-signed RFC 2136 updates allowed with the key `paved-key`;
//! killed when dropped. Included with `#[path = "common/knot.rs"] mod knot;` by the tests
//! that need it (acme_dns, flows_dns).
#![allow(dead_code, missing_docs)]

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use hickory_net::client::{Client, ClientHandle};
use hickory_net::proto::op::ResponseCode;
use hickory_net::proto::rr::{DNSClass, Name, RData, RecordType};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;
use paved_control_plane::config::{Rfc2136Settings, TsigSecret};
use paved_control_plane::tls::Rfc2136Dns;

pub const ZONE: &str = "paved.test";
pub const KEY_NAME: &str = "paved-key";

/// Ports [`free_port`] has handed out in this process.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A port free for both UDP and TCP on 127.0.0.1 (Knot listens on both), never one this
/// process was given before (the kernel can hand the same free port to two binds in a
/// row, and the tests ask for several at once).
pub fn free_port() -> u16 {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        let port = tcp.local_addr().expect("addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() && handed_out.insert(port) {
            return port;
        }
    }
    panic!("no free port");
}

/// A child process killed (and reaped) on drop.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Knot DNS serving `paved.test.`, updates allowed with the TSIG key `paved-key`.
pub struct Knot {
    _process: Process,
    pub addr: SocketAddr,
    pub secret: String,
    dir: tempfile::TempDir,
}

impl Knot {
    pub async fn start() -> Knot {
        Knot::start_with_records("").await
    }

    /// Like [`Knot::start`], the zone file holding `records` too (zone-file lines, names
    /// relative to the zone).
    pub async fn start_with_records(records: &str) -> Knot {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let secret = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("knot.conf"),
            format!(
                "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n\
                 log:\n  - target: stderr\n    any: info\n\
                 database:\n    storage: \"{d}/db\"\n\
                 control:\n    listen: \"{d}/knot.sock\"\n\
                 key:\n  - id: {KEY_NAME}\n    algorithm: hmac-sha256\n    secret: {secret}\n\
                 acl:\n  - id: paved-update\n    key: {KEY_NAME}\n    action: update\n\
                 zone:\n  - domain: {ZONE}\n    storage: \"{d}\"\n    file: \"{ZONE}.zone\"\n\
                 \x20   acl: paved-update\n    zonefile-sync: -1\n    journal-content: none\n"
            ),
        )
        .expect("knot.conf");
        std::fs::write(
            dir.path().join(format!("{ZONE}.zone")),
            format!(
                "$ORIGIN {ZONE}.\n$TTL 60\n\
                 @ IN SOA ns.{ZONE}. hostmaster.{ZONE}. 1 60 60 3600 60\n\
                 @ IN NS ns.{ZONE}.\nns IN A 127.0.0.1\n{records}"
            ),
        )
        .expect("zone file");
        let log = std::fs::File::create(dir.path().join("knotd.log")).expect("log");
        let child = Command::new(knotd())
            .arg("-c")
            .arg(dir.path().join("knot.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("knotd (apt-get install knot; scripts/bootstrap.sh does)");
        let knot = Knot {
            _process: Process(child),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            secret,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while soa_serial(knot.addr).await.is_none() {
            assert!(
                Instant::now() < deadline,
                "knotd did not serve {ZONE}: {}",
                knot.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        knot
    }

    /// What knotd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("knotd.log")).unwrap_or_default()
    }

    /// RFC 2136 settings for this server's zone, with `secret` as the TSIG key.
    pub fn settings(&self, secret: &str) -> Rfc2136Settings {
        Rfc2136Settings::new(self.addr, ZONE, KEY_NAME, TsigSecret::new(secret))
    }

    /// The project's RFC 2136 provider, with the right key.
    pub fn provider(&self) -> Rfc2136Dns {
        Rfc2136Dns::new(&self.settings(&self.secret)).expect("provider")
    }
}

pub fn knotd() -> PathBuf {
    ["/usr/sbin/knotd", "/usr/bin/knotd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("knotd"))
}

/// One query to `server` over UDP: the response code and the answers, `None` without an
/// answer.
pub async fn query(
    server: SocketAddr,
    name: &str,
    kind: RecordType,
) -> Option<(ResponseCode, Vec<RData>)> {
    let stream = UdpClientStream::builder(server, TokioRuntimeProvider::default())
        .with_timeout(Some(Duration::from_secs(2)))
        .build();
    let (mut client, bg) = Client::<TokioRuntimeProvider>::from_sender(stream);
    let bg = tokio::spawn(bg);
    let name = Name::from_str(name).expect("name");
    let answer = tokio::time::timeout(
        Duration::from_secs(3),
        client.query(name, DNSClass::IN, kind),
    )
    .await;
    bg.abort();
    let response = answer.ok()?.ok()?;
    Some((
        response.response_code,
        response.answers.iter().map(|r| r.data.clone()).collect(),
    ))
}

/// The zone's SOA serial (it grows with every applied update), `None` while not served.
pub async fn soa_serial(server: SocketAddr) -> Option<u32> {
    let (_, answers) = query(server, &format!("{ZONE}."), RecordType::SOA).await?;
    answers.iter().find_map(|d| match d {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    })
}
