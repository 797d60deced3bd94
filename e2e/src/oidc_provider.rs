//! An OpenID provider Paved did not write, for tests: `e2e/oidc-provider/server.mjs` (panva's
//! certified `oidc-provider` on Node.js), started as a child process on a free port and killed
//! when dropped.
//!
//! Its options (client, redirect URIs, the one test user and their groups, shared keys, JWT
//! resources) are the script's command-line options, documented at the top of the script;
//! [`OidcProvider::start`] passes them through. `scripts/bootstrap.sh` installs Node.js and the
//! script's npm packages; tests call [`node_available`] first and skip, saying why, without
//! Node.js.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// How long a start may take before the provider is killed and started once more.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `e2e/oidc-provider/server.mjs`, killed when dropped.
#[derive(Debug)]
pub struct OidcProvider {
    child: Child,
    /// Its issuer URL (`http://127.0.0.1:<port>` unless `--issuer` said otherwise).
    pub issuer: String,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The folder of `server.mjs` and its `node_modules`.
pub fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc-provider")
}

/// Whether `node` can run; prints why `test` skips when not.
pub fn node_available(test: &str) -> bool {
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        _ => {
            eprintln!(
                "skipping {test}: `node` is not installed; the test OpenID provider \
                 (e2e/oidc-provider) runs on Node.js >= 20 (scripts/bootstrap.sh installs it)"
            );
            false
        }
    }
}

impl OidcProvider {
    /// Starts a provider on a free port of 127.0.0.1 with `args` (`server.mjs` options, such
    /// as `["--client-id", "x", "--redirect-uri", "http://..."]`; `--port` is set here).
    /// A provider that does not say it is ready within a minute is killed and started once
    /// more: on a loaded machine (the whole suite at once) a Node.js start was seen to stall.
    /// Panics when it does not start twice (a test helper).
    pub fn start<S: AsRef<str>>(args: &[S]) -> OidcProvider {
        match OidcProvider::try_start(args) {
            Ok(provider) => provider,
            Err(first) => {
                eprintln!("the OpenID provider did not start, starting it again:\n{first}");
                OidcProvider::try_start(args)
                    .unwrap_or_else(|second| panic!("the OpenID provider did not start:\n{second}"))
            }
        }
    }

    /// One attempt of [`OidcProvider::start`]; the error is the provider's stderr.
    pub fn try_start<S: AsRef<str>>(args: &[S]) -> Result<OidcProvider, String> {
        let dir = provider_dir();
        if !dir.join("node_modules/oidc-provider").is_dir() {
            return Err(format!(
                "{} has no node_modules: run scripts/bootstrap.sh (npm ci there)",
                dir.display()
            ));
        }
        let mut child = Command::new("node")
            .arg("server.mjs")
            .args(["--port", "0"])
            .args(args.iter().map(AsRef::as_ref))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning node e2e/oidc-provider/server.mjs: {e}"))?;

        // Drain both pipes for the provider's whole life, so it never blocks on a full pipe.
        let stderr_text = Arc::new(Mutex::new(String::new()));
        if let Some(mut stderr) = child.stderr.take() {
            let sink = stderr_text.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stderr.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut s) = sink.lock() {
                        s.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
            });
        }
        let (ready_tx, ready_rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.starts_with("oidc-provider ready ") {
                        let _ = ready_tx.send(line);
                    }
                }
            });
        }
        let stop = |mut child: Child, why: String| {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = stderr_text.lock().map(|s| s.clone()).unwrap_or_default();
            Err(format!("{why}\n{stderr}"))
        };
        let line = match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => line,
            Err(_) => return stop(child, "not ready within a minute".into()),
        };
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(str::to_owned)
        };
        let (Some(issuer), Some(port)) = (
            field("issuer="),
            field("port=").and_then(|p| p.parse::<u16>().ok()),
        ) else {
            return stop(child, format!("unexpected ready line {line:?}"));
        };
        Ok(OidcProvider {
            child,
            issuer,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }
}

/// The URL a page's (first) form posts to, HTML entities for `&` undone: how a test submits the
/// provider's login form.
pub fn form_action(page: &str) -> String {
    let start = page
        .find("action=\"")
        .unwrap_or_else(|| panic!("no form in {page}"))
        + "action=\"".len();
    let end = page[start..].find('"').expect("closing quote") + start;
    page[start..end].replace("&#38;", "&")
}

/// `s` percent-encoded for a form or query value (everything but RFC 3986's unreserved
/// characters).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An `Authorization: Basic` value for a client at the token endpoint.
pub fn basic_authorization(client_id: &str, secret: &str) -> String {
    use base64::Engine as _;
    let credentials = format!("{client_id}:{secret}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}
