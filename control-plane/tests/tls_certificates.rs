//! The internal CA issues a certificate per app domain into the snapshot's TLS listeners, keeps
//! it across changes and restarts, and renews it before expiry.

mod common;

use std::time::Duration;

use common::{Backend, env_with, intent};
use paved_control_plane::ControlPlane;
use paved_model::snapshot::{ListenerTls, Snapshot};

fn tls_certs(s: &str) -> Vec<(Vec<String>, String)> {
    let snap = Snapshot::from_json_slice(s.as_bytes(), "push").expect("valid snapshot");
    snap.listeners
        .iter()
        .filter_map(|l| l.tls.as_ref())
        .flat_map(|t| t.certificates.iter())
        .map(|c| (c.domains.clone(), c.cert_pem.clone().unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_for_every_domain_are_put_in_the_snapshot() {
    let t = env_with(Backend::Sqlite, |c| {
        c.compile.listeners[0].tls = Some(ListenerTls {
            certificates: vec![],
        });
    })
    .await;
    let cp = &t.cp;
    let certs = tls_certs(&cp.latest_snapshot().expect("s").json);
    assert_eq!(
        certs.len(),
        1,
        "before any app, a localhost certificate keeps the listener valid"
    );
    assert_eq!(certs[0].0, ["localhost"]);

    cp.apply_intent(
        &t.admin,
        &intent("alpha", "a", "alpha.example.com"),
        "paved.yaml",
    )
    .await
    .expect("alpha");
    cp.apply_intent(
        &t.admin,
        &intent("beta", "b", "'*.beta.example.com'"),
        "paved.yaml",
    )
    .await
    .expect("beta");
    let certs = tls_certs(&cp.latest_snapshot().expect("s").json);
    let domains: Vec<&str> = certs.iter().map(|(d, _)| d[0].as_str()).collect();
    assert_eq!(domains, ["*.beta.example.com", "alpha.example.com"]);
    let ca = cp.ca_certificate_pem().expect("ca");
    for (_, pem) in &certs {
        assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2, "leaf and CA");
        assert!(pem.ends_with(ca));
    }
    let alpha_pem = certs[1].1.clone();
    // Another change keeps the issued certificates.
    cp.apply_intent(
        &t.admin,
        &format!(
            "{}waf: {{mode: detect}}\n",
            intent("alpha", "a", "alpha.example.com")
        ),
        "paved.yaml",
    )
    .await
    .expect("alpha v2");
    let certs = tls_certs(&cp.latest_snapshot().expect("s").json);
    assert_eq!(certs[1].1, alpha_pem);
    // A restart keeps them too, and publishes no new snapshot.
    let version = cp.latest_snapshot().expect("s").version;
    let again = ControlPlane::start(t.config.clone())
        .await
        .expect("restart");
    assert_eq!(again.latest_snapshot().expect("s").version, version);
    assert_eq!(
        again.renew_certificates().await.expect("renew"),
        None,
        "nothing is due"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_close_to_expiry_are_renewed() {
    let t = env_with(Backend::Sqlite, |c| {
        c.compile.listeners[0].tls = Some(ListenerTls {
            certificates: vec![],
        });
        // Every certificate is due at once: validity shorter than the renewal margin.
        c.certificates.validity = Duration::from_secs(10 * 86_400);
        c.certificates.renew_before = Duration::from_secs(20 * 86_400);
    })
    .await;
    let cp = &t.cp;
    cp.apply_intent(
        &t.admin,
        &intent("alpha", "a", "alpha.example.com"),
        "paved.yaml",
    )
    .await
    .expect("alpha");
    let before = cp.latest_snapshot().expect("s");
    let old = tls_certs(&before.json);
    let renewed = cp
        .renew_certificates()
        .await
        .expect("renew")
        .expect("a new snapshot");
    assert_eq!(renewed, before.version + 1);
    let new = tls_certs(&cp.latest_snapshot().expect("s").json);
    assert_eq!(new.len(), old.len());
    assert_ne!(new, old, "new certificates were issued");
}
