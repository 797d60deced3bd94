//! The ACME issuer and the RFC 2136 DNS provider against real servers: Knot DNS (Debian's
//! `knot`) serving `paved.test.` with TSIG-signed updates allowed, and Pebble (Debian's
//! `pebble`, Let's Encrypt's test ACME server) validating `dns-01` challenges by querying that
//! Knot. Each test starts its own servers on free 127.0.0.1 ports in a temporary directory and
//! kills them when it ends. Pebble's validation is real (no `PEBBLE_VA_ALWAYS_VALID`).

mod common;
#[path = "common/knot.rs"]
mod knot;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use hickory_net::proto::op::ResponseCode;
use hickory_net::proto::rr::{RData, RecordType};
use knot::{Knot, Process, free_port, query, soa_serial};
use paved_control_plane::config::{AcmeSettings, DnsProviderSettings, IssuerSettings};
use paved_control_plane::storage::Store;
use paved_control_plane::tls::{
    AcmeIssuer, AcmeStep, CertificateIssuer, DnsProvider, InternalCa, Rfc2136Dns, TlsError,
};
use paved_model::snapshot::{ListenerTls, Snapshot};

/// The TXT values at `name`, as Knot serves them now.
async fn txt(server: SocketAddr, name: &str) -> Vec<String> {
    let (code, answers) = query(server, name, RecordType::TXT)
        .await
        .unwrap_or_else(|| panic!("no answer for {name}"));
    assert!(
        matches!(code, ResponseCode::NoError | ResponseCode::NXDomain),
        "{name}: {code:?}"
    );
    answers
        .iter()
        .filter_map(|d| match d {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect()
}

/// Pebble, its HTTPS certificate signed by a CA made here (`ca_bundle`), validating `dns-01`
/// challenges against `dns`.
struct Pebble {
    _process: Process,
    directory_url: String,
    management_url: String,
    ca_bundle: PathBuf,
    _dir: tempfile::TempDir,
}

impl Pebble {
    async fn start(dns: SocketAddr) -> Pebble {
        let dir = tempfile::tempdir().expect("tempdir");
        // Pebble's own HTTPS certificate: from an internal CA, trusted through `ca_bundle`
        // only (the custom-root path of the issuer).
        let ca = InternalCa::generate().expect("ca");
        let leaf = ca
            .issue("127.0.0.1", Duration::from_secs(86_400))
            .await
            .expect("pebble cert");
        let ca_bundle = dir.path().join("ca.pem");
        std::fs::write(&ca_bundle, ca.cert_pem()).expect("ca.pem");
        std::fs::write(dir.path().join("cert.pem"), &leaf.cert_pem).expect("cert.pem");
        std::fs::write(dir.path().join("key.pem"), &leaf.key_pem).expect("key.pem");
        let (acme, management) = (free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{acme}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            "httpPort": free_port(),
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(dir.path().join("pebble.json"), config.to_string()).expect("config");
        let log = std::fs::File::create(dir.path().join("pebble.log")).expect("log");
        let child = Command::new("pebble")
            .arg("-config")
            .arg(dir.path().join("pebble.json"))
            .arg("-dnsserver")
            .arg(dns.to_string())
            // No random sleeps, no rejected nonces, no reused authorizations: every order
            // is validated, deterministically.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("pebble (apt-get install pebble; scripts/bootstrap.sh does)");
        let pebble = Pebble {
            _process: Process(child),
            directory_url: format!("https://127.0.0.1:{acme}/dir"),
            management_url: format!("https://127.0.0.1:{management}"),
            ca_bundle,
            _dir: dir,
        };
        let client = pebble.client();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = client.get(&pebble.directory_url).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "pebble did not start: {}",
                pebble.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        pebble
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// An HTTPS client trusting Pebble's listener.
    fn client(&self) -> reqwest::Client {
        let pem = std::fs::read(&self.ca_bundle).expect("ca.pem");
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("pem")])
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client")
    }

    /// Pebble's issuing intermediate (PEM).
    async fn intermediate(&self) -> String {
        self.client()
            .get(format!("{}/intermediates/0", self.management_url))
            .send()
            .await
            .expect("intermediate")
            .text()
            .await
            .expect("intermediate text")
    }

    fn settings(&self, knot: &Knot) -> AcmeSettings {
        let mut settings = AcmeSettings::new(
            self.directory_url.clone(),
            DnsProviderSettings::Rfc2136(knot.settings(&knot.secret)),
        );
        settings.contact_email = Some("ops@paved.test".into());
        settings.ca_bundle = Some(self.ca_bundle.clone());
        settings.timeout = Duration::from_secs(60);
        settings
    }
}

async fn store(dir: &Path) -> Store {
    Store::connect(
        &format!("sqlite://{}?mode=rwc", dir.join("paved.db").display()),
        None,
    )
    .await
    .expect("store")
}

fn pem_ders(pem: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .map(|p| p.expect("pem").contents)
        .collect()
}

/// Asserts that `chain` starts with a leaf naming `domain`, signed by `intermediate`, and
/// that its key is `key_pem`'s.
fn assert_chain(chain: &str, domain: &str, intermediate: &str) {
    use x509_parser::certificate::X509Certificate;
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::FromDer;
    let ders = pem_ders(chain);
    assert!(ders.len() >= 2, "leaf and intermediate: {chain}");
    let (_, leaf) = X509Certificate::from_der(&ders[0]).expect("leaf");
    let inter_der = pem_ders(intermediate).remove(0);
    let (_, inter) = X509Certificate::from_der(&inter_der).expect("intermediate");
    let san = leaf
        .subject_alternative_name()
        .expect("san")
        .expect("a SAN");
    let names: Vec<String> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(names, [domain]);
    assert_eq!(
        leaf.issuer(),
        inter.subject(),
        "issued by Pebble's intermediate"
    );
    leaf.verify_signature(Some(inter.public_key()))
        .expect("the leaf's signature verifies with the intermediate's key");
    assert_eq!(ders[1], inter_der, "the chain carries the intermediate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc2136_sets_and_removes_txt_records_and_refuses_a_wrong_tsig_secret() {
    let knot = Knot::start().await;
    let dns = knot.provider();
    let name = "_acme-challenge.app.paved.test";
    assert!(txt(knot.addr, name).await.is_empty());

    dns.set_txt(name, "first-value", Duration::from_secs(60))
        .await
        .expect("set");
    dns.set_txt(name, "second-value", Duration::from_secs(60))
        .await
        .expect("set a second value");
    let mut values = txt(knot.addr, name).await;
    values.sort();
    assert_eq!(values, ["first-value", "second-value"]);

    dns.remove_txt(name, "first-value").await.expect("remove");
    assert_eq!(txt(knot.addr, name).await, ["second-value"]);
    dns.remove_txt(name, "second-value").await.expect("remove");
    assert!(txt(knot.addr, name).await.is_empty());
    dns.remove_txt(name, "second-value")
        .await
        .expect("removing an absent record is a no-op");

    // A wrong secret: refused, and nothing written.
    let serial = soa_serial(knot.addr).await;
    let wrong = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let intruder = Rfc2136Dns::new(&knot.settings(&wrong)).expect("provider");
    let err = intruder
        .set_txt(name, "forged", Duration::from_secs(60))
        .await
        .expect_err("a wrong TSIG secret must be refused");
    let text = err.to_string();
    assert!(
        text.contains(name) && text.contains("set TXT"),
        "the error names the record and the operation: {text}"
    );
    assert!(
        matches!(err, TlsError::DnsRejected { ref rcode, .. } if rcode.starts_with("NOTAUTH"))
            || text.contains("TSIG"),
        "the error says why: {text}"
    );
    assert!(!text.contains(&wrong), "the secret is not in the error");
    assert!(txt(knot.addr, name).await.is_empty());
    assert_eq!(soa_serial(knot.addr).await, serial, "the zone is unchanged");

    // Outside the zone: refused here, before anything is sent.
    let err = dns
        .set_txt(
            "_acme-challenge.elsewhere.test",
            "v",
            Duration::from_secs(60),
        )
        .await
        .expect_err("outside the zone");
    assert!(err.to_string().contains("outside the zone"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc2136_points_a_name_at_gateway_addresses_or_a_host() {
    let knot = Knot::start().await;
    let dns = knot.provider();
    dns.point_at_gateways(
        "app.paved.test",
        &["192.0.2.10".into(), "2001:db8::10".into()],
    )
    .await
    .expect("A and AAAA");
    let (_, a) = query(knot.addr, "app.paved.test.", RecordType::A)
        .await
        .expect("A");
    assert_eq!(a.len(), 1);
    assert!(matches!(&a[0], RData::A(ip) if ip.0.to_string() == "192.0.2.10"));
    let (_, aaaa) = query(knot.addr, "app.paved.test.", RecordType::AAAA)
        .await
        .expect("AAAA");
    assert_eq!(aaaa.len(), 1);
    // Moving to a host name replaces the addresses with a CNAME.
    dns.point_at_gateways("app.paved.test", &["gw.paved.test".into()])
        .await
        .expect("CNAME");
    let (_, cname) = query(knot.addr, "app.paved.test.", RecordType::CNAME)
        .await
        .expect("CNAME");
    assert!(
        matches!(&cname[..], [RData::CNAME(c)] if c.0.to_ascii() == "gw.paved.test."),
        "{cname:?}"
    );
    let (_, a) = query(knot.addr, "app.paved.test.", RecordType::A)
        .await
        .expect("A");
    assert!(
        !a.iter().any(|d| matches!(d, RData::A(_))),
        "no A left: {a:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_issues_a_certificate_validated_through_dns_01_and_cleans_up() {
    let knot = Knot::start().await;
    let pebble = Pebble::start(knot.addr).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(dir.path()).await;
    let settings = pebble.settings(&knot);
    let issuer = AcmeIssuer::load_or_create(store.db(), &settings, Arc::new(knot.provider()))
        .await
        .expect("account");

    let cert = issuer
        .issue("app.paved.test", Duration::from_secs(86_400))
        .await
        .unwrap_or_else(|e| panic!("issue: {e}\n{}", pebble.log()));
    assert_eq!(cert.domain, "app.paved.test");
    assert_chain(
        &cert.cert_pem,
        "app.paved.test",
        &pebble.intermediate().await,
    );
    assert!(cert.key_pem.contains("PRIVATE KEY"));
    assert!(cert.not_before < chrono::Utc::now() && cert.not_after > chrono::Utc::now());
    assert!(
        txt(knot.addr, "_acme-challenge.app.paved.test")
            .await
            .is_empty(),
        "the challenge record is removed"
    );

    // A restart reuses the stored account.
    let again = AcmeIssuer::load_or_create(store.db(), &settings, Arc::new(knot.provider()))
        .await
        .expect("account again");
    assert_eq!(again.account_id(), issuer.account_id());
}

/// A provider that publishes a wrong challenge value: Pebble must find it wrong.
struct WrongValue(Rfc2136Dns);

#[async_trait::async_trait]
impl DnsProvider for WrongValue {
    async fn set_txt(&self, name: &str, _value: &str, ttl: Duration) -> Result<(), TlsError> {
        self.0.set_txt(name, "not-the-key-authorization", ttl).await
    }
    async fn remove_txt(&self, name: &str, _value: &str) -> Result<(), TlsError> {
        self.0.remove_txt(name, "not-the-key-authorization").await
    }
    async fn point_at_gateways(&self, name: &str, targets: &[String]) -> Result<(), TlsError> {
        self.0.point_at_gateways(name, targets).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_fails_naming_the_domain_and_step_and_leaves_no_record() {
    let knot = Knot::start().await;
    let pebble = Pebble::start(knot.addr).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(dir.path()).await;
    let settings = pebble.settings(&knot);
    let serial = soa_serial(knot.addr).await;

    // A domain outside the provider's zone: the challenge cannot be published.
    let issuer = AcmeIssuer::load_or_create(store.db(), &settings, Arc::new(knot.provider()))
        .await
        .expect("account");
    let err = issuer
        .issue("app.elsewhere.test", Duration::from_secs(86_400))
        .await
        .expect_err("outside the zone");
    assert!(
        matches!(&err, TlsError::Acme { domain, step: AcmeStep::PublishChallenge, .. } if domain == "app.elsewhere.test"),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("app.elsewhere.test") && text.contains("publish dns-01 TXT record"),
        "{text}"
    );
    assert_eq!(soa_serial(knot.addr).await, serial, "nothing was written");

    // A wrong challenge value: Pebble queries Knot, finds it wrong, the order fails at
    // validation, and the record written is removed.
    let issuer =
        AcmeIssuer::load_or_create(store.db(), &settings, Arc::new(WrongValue(knot.provider())))
            .await
            .expect("account");
    let err = issuer
        .issue("wrong.paved.test", Duration::from_secs(86_400))
        .await
        .expect_err("a wrong TXT value fails validation");
    assert!(
        matches!(&err, TlsError::Acme { domain, step: AcmeStep::Validation, .. } if domain == "wrong.paved.test"),
        "{err}\n{}",
        pebble.log()
    );
    assert!(
        txt(knot.addr, "_acme-challenge.wrong.paved.test")
            .await
            .is_empty(),
        "the challenge record is removed after the failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_configured_for_acme_puts_the_acme_certificate_in_the_snapshot() {
    let knot = Knot::start().await;
    let pebble = Pebble::start(knot.addr).await;
    let settings = pebble.settings(&knot);
    let t = common::env_with(common::Backend::Sqlite, |c| {
        c.compile.listeners[0].tls = Some(ListenerTls {
            certificates: vec![],
        });
        c.certificates.issuer = IssuerSettings::Acme(Box::new(settings));
    })
    .await;
    assert!(
        t.cp.ca_certificate_pem().is_none(),
        "no internal CA is advertised with ACME"
    );
    t.cp.apply_intent(
        &t.admin,
        &common::intent("app", "a", "app.paved.test"),
        "paved.yaml",
    )
    .await
    .unwrap_or_else(|e| panic!("apply: {e}\n{}", pebble.log()));
    let snapshot = t.cp.latest_snapshot().expect("snapshot");
    let snapshot = Snapshot::from_json_slice(snapshot.json.as_bytes(), "push").expect("valid");
    let cert = snapshot
        .listeners
        .iter()
        .filter_map(|l| l.tls.as_ref())
        .flat_map(|t| t.certificates.iter())
        .find(|c| c.domains == ["app.paved.test"])
        .expect("a certificate for app.paved.test");
    assert_chain(
        cert.cert_pem.as_deref().expect("pem"),
        "app.paved.test",
        &pebble.intermediate().await,
    );
}
