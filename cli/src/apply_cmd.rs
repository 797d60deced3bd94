//! `paved apply -f paved.yaml`: plans or applies an intent through the control plane's
//! GraphQL API, the same API the UI and tools use.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// Arguments of `paved apply`.
#[derive(clap::Args)]
pub struct ApplyArgs {
    /// The intent file.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Show the plan (what would change) without applying.
    #[arg(long)]
    dry_run: bool,
    /// The control plane, `host:port`.
    #[arg(long, env = "PAVED_CONTROL_PLANE", default_value = "127.0.0.1:8081")]
    control_plane: String,
    /// An API token with `apps:write` (or `apps:read` for --dry-run).
    #[arg(long, env = "PAVED_TOKEN", hide_env_values = true)]
    token: String,
}

const PLAN: &str = "mutation($yaml: String!, $source: String) { planIntent(yaml: $yaml, source: $source) { app newApp changed currentVersion contentHash textDiff } }";
const APPLY: &str = "mutation($yaml: String!, $source: String) { applyIntent(yaml: $yaml, source: $source) { created snapshotVersion app { name } version { version } } }";

/// Sends the intent and prints the result; GraphQL errors (with positions) fail the command.
pub fn run(args: ApplyArgs) -> anyhow::Result<()> {
    let yaml = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let source = args.file.display().to_string();
    let query = if args.dry_run { PLAN } else { APPLY };
    let body = json!({ "query": query, "variables": { "yaml": yaml, "source": source } });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let reply = runtime.block_on(post_graphql(&args.control_plane, &args.token, body))?;
    if let Some(errors) = reply.get("errors").and_then(Value::as_array) {
        for error in errors {
            eprintln!(
                "error: {}",
                error.get("message").and_then(Value::as_str).unwrap_or("?")
            );
            if let Some(diagnostics) = error
                .pointer("/extensions/diagnostics")
                .and_then(Value::as_array)
            {
                for d in diagnostics {
                    eprintln!(
                        "  {}",
                        d.get("text").or_else(|| d.get("message")).unwrap_or(d)
                    );
                }
            }
        }
        bail!("the control plane refused the intent");
    }
    if args.dry_run {
        let plan = &reply["data"]["planIntent"];
        println!(
            "plan for {}: {}",
            plan["app"].as_str().unwrap_or("?"),
            if plan["newApp"] == true {
                "new app"
            } else if plan["changed"] == true {
                "changed"
            } else {
                "no change"
            }
        );
        if let Some(diff) = plan["textDiff"].as_str() {
            print!("{diff}");
        }
    } else {
        let applied = &reply["data"]["applyIntent"];
        println!(
            "{}: version {} ({}), snapshot {}",
            applied["app"]["name"].as_str().unwrap_or("?"),
            applied["version"]["version"],
            if applied["created"] == true {
                "new"
            } else {
                "unchanged"
            },
            applied["snapshotVersion"]
        );
    }
    Ok(())
}

/// POSTs a GraphQL request and returns the JSON reply (bounded in size and time).
pub async fn post_graphql(address: &str, token: &str, body: Value) -> anyhow::Result<Value> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .with_context(|| format!("connecting to the control plane at {address}"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let request = hyper::Request::builder()
            .method("POST")
            .uri("/graphql")
            .header("host", address)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::from(body.to_string())))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), 16 << 20)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the reply: {e}"))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("the control plane answered {status} with no JSON"))?;
        anyhow::Ok(value)
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), exchange)
        .await
        .context("the control plane did not answer within 30 s")?
}
