//! TLS with certificates chosen by SNI (and replaced on reload), HTTP/2, static sites, and
//! upstream health checks and retries, driven by curl as a real client.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use paved_e2e::harness::{get, render, send, start_echo_upstream, start_gateway};

struct Cert {
    cert: PathBuf,
    key: PathBuf,
}

fn self_signed(dir: &Path, name: &str) -> Cert {
    let generated = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("certificate");
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, generated.cert.pem()).expect("write cert");
    std::fs::write(&key, generated.signing_key.serialize_pem()).expect("write key");
    Cert { cert, key }
}

fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("paved-{label}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// curl `url` resolving `host` to the gateway, trusting `ca`; returns (status, HTTP version),
/// or None when the TLS handshake or verification fails.
fn curl(
    addr: SocketAddr,
    host: &str,
    path: &str,
    ca: Option<&Path>,
    extra: &[&str],
) -> Option<(u16, String)> {
    let scheme = if ca.is_some() { "https" } else { "http" };
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{http_version}",
        "--max-time",
        "10",
    ])
    .args(["--resolve", &format!("{host}:{}:127.0.0.1", addr.port())])
    .args(extra);
    if let Some(ca) = ca {
        cmd.arg("--cacert").arg(ca);
    }
    cmd.arg(format!("{scheme}://{host}:{}{path}", addr.port()));
    let output = cmd
        .output()
        .expect("curl runs (scripts/bootstrap.sh installs it)");
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let (status, version) = text.split_once(' ')?;
    Some((status.parse().ok()?, version.to_owned()))
}

fn tls_config(a: &Cert, b: &Cert) -> String {
    format!(
        r#"
listeners:
  - address: "{{listen}}"
    http2: true
    tls:
      certificates:
        - {{domains: [a.test], cert_file: "{}", key_file: "{}"}}
        - {{domains: ["*.b.test", b.test], cert_file: "{}", key_file: "{}"}}
admin: {{address: "{{admin}}"}}
clusters: [{{name: app, endpoints: ["{{upstream}}"]}}]
routes: [{{host: "*", path_prefix: /, cluster: app}}]
"#,
        a.cert.display(),
        a.key.display(),
        b.cert.display(),
        b.key.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_certificates_are_chosen_by_sni_and_http2_is_negotiated() {
    let dir = temp_dir("tls");
    let a = self_signed(&dir, "a.test");
    let b = self_signed(&dir, "b.test");
    let upstream = start_echo_upstream();
    let gw = start_gateway(&tls_config(&a, &b), upstream.addr);
    let addr = gw.addr;
    let (a_cert, b_cert) = (a.cert.clone(), b.cert.clone());
    tokio::task::spawn_blocking(move || {
        assert_eq!(
            curl(addr, "a.test", "/x", Some(&a_cert), &[]),
            Some((200, "2".into())),
            "h2 over TLS with a.test's certificate"
        );
        assert_eq!(
            curl(addr, "b.test", "/x", Some(&b_cert), &["--http1.1"]),
            Some((200, "1.1".into()))
        );
        // b.test is served b's certificate: a client trusting only a's refuses it.
        assert_eq!(curl(addr, "b.test", "/x", Some(&a_cert), &[]), None);
        // An unknown name gets no certificate at all.
        assert_eq!(curl(addr, "c.test", "/x", Some(&a_cert), &[]), None);
    })
    .await
    .expect("curl checks");
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_replaced_on_reload_without_restarting_listeners() {
    let dir = temp_dir("tls-reload");
    let a = self_signed(&dir, "a.test");
    let b = self_signed(&dir, "b.test");
    let upstream = start_echo_upstream();
    let gw = start_gateway(&tls_config(&a, &b), upstream.addr);
    let renewed = self_signed(&temp_dir("tls-renewed"), "a.test");
    let text = render(
        &tls_config(&renewed, &b).replace("routes:", "version: 2\nroutes:"),
        gw.addr,
        gw.admin,
        upstream.addr,
    );
    let snapshot =
        paved_model::snapshot::Snapshot::from_yaml_str(&text, "renewed.yaml").expect("valid");
    gw.gateway.reload(snapshot).expect("reload");
    let (addr, old, new) = (gw.addr, a.cert.clone(), renewed.cert.clone());
    tokio::task::spawn_blocking(move || {
        assert_eq!(
            curl(addr, "a.test", "/", Some(&new), &[]).map(|r| r.0),
            Some(200),
            "the renewed certificate is served"
        );
        assert_eq!(
            curl(addr, "a.test", "/", Some(&old), &[]),
            None,
            "the old one is gone"
        );
    })
    .await
    .expect("curl checks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_listeners_speak_http2_with_prior_knowledge() {
    let upstream = start_echo_upstream();
    let config = r#"
listeners: [{address: "{listen}", http2: true}]
admin: {address: "{admin}"}
clusters: [{name: app, endpoints: ["{upstream}"]}]
routes: [{host: "*", path_prefix: /, cluster: app}]
"#;
    let gw = start_gateway(config, upstream.addr);
    let addr = gw.addr;
    let result = tokio::task::spawn_blocking(move || {
        curl(addr, "app.test", "/h2c", None, &["--http2-prior-knowledge"])
    })
    .await
    .expect("curl");
    assert_eq!(result, Some((200, "2".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_sites_serve_files_and_fall_back_to_the_index_for_client_routes() {
    let dir = temp_dir("site");
    std::fs::create_dir_all(dir.join("assets")).expect("dirs");
    std::fs::write(dir.join("index.html"), "<html>shell</html>").expect("index");
    std::fs::write(dir.join("assets/app.js"), "run()").expect("js");
    let upstream = start_echo_upstream();
    let config = format!(
        r#"
listeners: [{{address: "{{listen}}"}}]
admin: {{address: "{{admin}}"}}
clusters: [{{name: api, endpoints: ["{{upstream}}"]}}]
routes:
  - {{host: "*", path_prefix: /, static: {{root: "{}"}}}}
  - {{host: "*", path_prefix: /api, cluster: api}}
"#,
        dir.display()
    );
    let gw = start_gateway(&config, upstream.addr);
    let js = get(gw.addr, "/assets/app.js").await;
    assert_eq!((js.status, js.body.as_slice()), (200, &b"run()"[..]));
    assert!(
        js.header("content-type")
            .is_some_and(|t| t.contains("javascript"))
    );
    let route = send(
        gw.addr,
        "GET",
        "/settings/profile",
        &[("accept", "text/html")],
        b"",
    )
    .await;
    assert_eq!(
        (route.status, route.body.as_slice()),
        (200, &b"<html>shell</html>"[..])
    );
    assert_eq!(get(gw.addr, "/missing.png").await.status, 404);
    assert_eq!(
        get(gw.addr, "/api/x").await.json()["path"],
        "/api/x",
        "the API route still proxies"
    );
    assert_eq!(
        send(gw.addr, "POST", "/index.html", &[], b"x").await.status,
        405
    );
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_endpoints_are_retried_then_taken_out_by_health_checks() {
    let upstream = start_echo_upstream();
    let dead = format!("127.0.0.1:{}", paved_e2e::harness::free_port());
    let retrying = format!(
        r#"
listeners: [{{address: "{{listen}}"}}]
admin: {{address: "{{admin}}"}}
clusters:
  - {{name: app, endpoints: ["{dead}", "{{upstream}}"], retries: 1}}
  - name: checked
    endpoints: ["{dead}", "{{upstream}}"]
    retries: 0
    health_check: {{interval_ms: 50, timeout_ms: 50, unhealthy_threshold: 1, healthy_threshold: 1}}
routes:
  - {{host: "*", path_prefix: /, cluster: app}}
  - {{host: "*", path_prefix: /checked, cluster: checked}}
"#
    );
    let gw = start_gateway(&retrying, upstream.addr);
    for i in 0..6 {
        assert_eq!(
            get(gw.addr, &format!("/r/{i}")).await.status,
            200,
            "a connect failure is retried on the other endpoint"
        );
    }
    // Give the health checks a few rounds to mark the dead endpoint down.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    for i in 0..6 {
        assert_eq!(
            get(gw.addr, &format!("/checked/{i}")).await.status,
            200,
            "no retries needed: the dead endpoint is out"
        );
    }
}
