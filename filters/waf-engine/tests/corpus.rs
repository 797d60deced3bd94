//! The WAF against its corpus: attacks per family (`corpus/attack/<family>.txt`) and benign
//! traffic (`corpus/benign/*.txt`). Prints the detection rate of every family and the false
//! positive rate of the benign corpus at each paranoia level (the table in
//! `docs/plugins/waf.md`), and holds the engine to at least 90% detection and under 1% false
//! positives at paranoia 1, with the default threshold (5) in block mode.
//!
//! A corpus line is one request:
//! - `METHOD /target` — sent as written (the target is already URL-encoded, as on the wire);
//! - `{"method": ..., "uri": ..., "headers": [[name, value or null], ...], "body": ...}` —
//!   a full request; a header named like a default one replaces it (null removes it);
//!   `"repeat_headers": N` adds N filler headers;
//! - anything else — a value typed into a search box: URL-encoded into `GET /search?q=`.
//!
//! `<<TEXT*N>>` anywhere in a target, header value or body stands for TEXT repeated N times.
//! Lines starting with `#` and blank lines are skipped. Every request gets browser-like
//! `host`, `user-agent`, `accept` and `accept-language` headers unless it says otherwise,
//! and a `content-length` when it has a body and no framing header.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use paved_model::plugin_config::WafConfig;
use paved_waf_engine::{Action, Body, Findings, Request, Waf, inspect};

const DEFAULT_HEADERS: [(&str, &str); 4] = [
    ("host", "app.example.com"),
    (
        "user-agent",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    ),
    (
        "accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    ("accept-language", "en-US,en;q=0.9"),
];

/// One request of the corpus.
struct Case {
    origin: String,
    method: String,
    uri: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
}

impl Case {
    fn findings(&self) -> Findings {
        inspect(&Request {
            method: &self.method,
            uri: &self.uri,
            headers: &self.headers,
            body: self.body.as_deref().map(|bytes| Body {
                bytes,
                truncated: false,
            }),
        })
    }

    fn path(&self) -> String {
        let uri = String::from_utf8_lossy(&self.uri);
        uri.split('?').next().unwrap_or_default().to_string()
    }
}

/// Percent-encodes everything but unreserved characters, as a client encodes a form value.
fn encode_component(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Expands `<<TEXT*N>>`.
fn expand(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("<<") {
        let Some(end) = rest[start..].find(">>").map(|e| start + e) else {
            break;
        };
        out.push_str(&rest[..start]);
        let inner = &rest[start + 2..end];
        match inner
            .rsplit_once('*')
            .and_then(|(t, n)| Some((t, n.parse::<usize>().ok()?)))
        {
            Some((t, n)) => out.push_str(&t.repeat(n)),
            None => out.push_str(&rest[start..end + 2]),
        }
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

fn parse_line(origin: String, line: &str) -> Result<Case, String> {
    let mut case = Case {
        origin,
        method: "GET".into(),
        uri: Vec::new(),
        headers: Vec::new(),
        body: None,
    };
    let mut spec_headers: Vec<(String, Option<String>)> = Vec::new();
    if line.starts_with("{\"") {
        let spec: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let text = |key: &str| spec.get(key).and_then(serde_json::Value::as_str);
        case.method = text("method").unwrap_or("GET").to_string();
        case.uri = expand(text("uri").unwrap_or("/")).into_bytes();
        case.body = text("body").map(|b| expand(b).into_bytes());
        for pair in spec
            .get("headers")
            .and_then(|h| h.as_array())
            .into_iter()
            .flatten()
        {
            let name = pair
                .get(0)
                .and_then(|n| n.as_str())
                .ok_or("header without a name")?;
            let value = pair.get(1).and_then(|v| v.as_str()).map(expand);
            spec_headers.push((name.to_lowercase(), value));
        }
        let filler = spec
            .get("repeat_headers")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        for i in 0..filler {
            spec_headers.push((format!("x-filler-{i}"), Some("1".into())));
        }
    } else if let Some((method, target)) = line
        .split_once(' ')
        .filter(|(m, t)| m.bytes().all(|b| b.is_ascii_uppercase()) && t.starts_with('/'))
    {
        case.method = method.to_string();
        case.uri = expand(target).into_bytes();
    } else {
        case.uri = format!("/search?q={}", encode_component(line)).into_bytes();
    }
    let mut headers: Vec<(String, Option<Vec<u8>>)> = DEFAULT_HEADERS
        .iter()
        .map(|(n, v)| (n.to_string(), Some(v.as_bytes().to_vec())))
        .collect();
    let mut replaced: Vec<String> = Vec::new();
    for (name, value) in spec_headers {
        let is_default = DEFAULT_HEADERS.iter().any(|(n, _)| *n == name);
        let default = headers
            .iter_mut()
            .find(|(n, _)| *n == name)
            .filter(|_| is_default);
        match default {
            Some(slot) if !replaced.contains(&name) => {
                slot.1 = value.map(String::into_bytes);
                replaced.push(name);
            }
            _ => headers.push((name, value.map(String::into_bytes))),
        }
    }
    case.headers = headers
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .collect();
    let framed = case
        .headers
        .iter()
        .any(|(n, _)| n == "content-length" || n == "transfer-encoding");
    if let Some(body) = &case.body
        && !framed
    {
        case.headers
            .push(("content-length".into(), body.len().to_string().into_bytes()));
    }
    Ok(case)
}

fn load(dir: &Path) -> Vec<(String, Vec<Case>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let name = file
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let cases = text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
                .map(|(i, l)| {
                    let short: String = l.chars().take(100).collect();
                    let origin = format!(
                        "{}:{}: {short}",
                        file.file_name().unwrap_or_default().to_string_lossy(),
                        i + 1
                    );
                    parse_line(origin.clone(), l).unwrap_or_else(|e| panic!("{origin}: {e}"))
                })
                .collect();
            (name, cases)
        })
        .collect()
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// The WAF with the default configuration at a paranoia level.
fn waf(paranoia: u8) -> Waf {
    Waf::new(&WafConfig {
        paranoia,
        ..WafConfig::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// For each case, whether it is denied at paranoia 1 to 4, and the rules that counted at 1.
fn verdicts(cases: &[Case]) -> Vec<([bool; 4], Vec<u32>)> {
    let wafs = [waf(1), waf(2), waf(3), waf(4)];
    cases
        .iter()
        .map(|case| {
            let findings = case.findings();
            let path = case.path();
            let denied = wafs
                .each_ref()
                .map(|w| w.decide(&findings, &path).action == Action::Deny);
            (denied, wafs[0].decide(&findings, &path).rules)
        })
        .collect()
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

#[test]
fn corpus_detection_and_false_positive_rates() {
    let attacks = load(&corpus_dir().join("attack"));
    let benign: Vec<Case> = load(&corpus_dir().join("benign"))
        .into_iter()
        .flat_map(|(_, c)| c)
        .collect();

    let mut table = String::from(
        "\n| corpus | requests | PL1 | PL2 | PL3 | PL4 |\n| --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    let mut misses = Vec::new();
    let mut total = [0usize; 4];
    let mut all = 0;
    let mut per_family_pl1 = Vec::new();
    for (family, cases) in &attacks {
        let v = verdicts(cases);
        let detected: [usize; 4] =
            std::array::from_fn(|pl| v.iter().filter(|(d, _)| d[pl]).count());
        for (case, (d, rules)) in cases.iter().zip(&v) {
            if !d[0] {
                misses.push(format!(
                    "  missed {} (rules at PL1: {rules:?})",
                    case.origin
                ));
            }
        }
        let _ = writeln!(
            table,
            "| attack: {family} | {} | {:.1}% | {:.1}% | {:.1}% | {:.1}% |",
            cases.len(),
            percent(detected[0], cases.len()),
            percent(detected[1], cases.len()),
            percent(detected[2], cases.len()),
            percent(detected[3], cases.len()),
        );
        for pl in 0..4 {
            total[pl] += detected[pl];
        }
        all += cases.len();
        per_family_pl1.push((family.clone(), percent(detected[0], cases.len())));
    }
    let _ = writeln!(
        table,
        "| **all attacks (detection)** | {all} | {:.1}% | {:.1}% | {:.1}% | {:.1}% |",
        percent(total[0], all),
        percent(total[1], all),
        percent(total[2], all),
        percent(total[3], all),
    );
    let v = verdicts(&benign);
    let fp: [usize; 4] = std::array::from_fn(|pl| v.iter().filter(|(d, _)| d[pl]).count());
    for (case, (d, rules)) in benign.iter().zip(&v) {
        if d[0] {
            misses.push(format!(
                "  false positive {} (rules: {rules:?})",
                case.origin
            ));
        }
    }
    let _ = writeln!(
        table,
        "| **benign (false positives)** | {} | {:.2}% | {:.2}% | {:.2}% | {:.2}% |",
        benign.len(),
        percent(fp[0], benign.len()),
        percent(fp[1], benign.len()),
        percent(fp[2], benign.len()),
        percent(fp[3], benign.len()),
    );
    println!("{table}");
    for line in &misses {
        println!("{line}");
    }

    assert!(
        percent(total[0], all) >= 90.0,
        "detection at paranoia 1 is {:.1}%, below 90%",
        percent(total[0], all)
    );
    for (family, rate) in per_family_pl1 {
        assert!(
            rate >= 90.0,
            "{family}: detection at paranoia 1 is {rate:.1}%, below 90%"
        );
    }
    assert!(
        percent(fp[0], benign.len()) < 1.0,
        "false positives at paranoia 1: {:.2}%, not under 1%",
        percent(fp[0], benign.len())
    );
}

#[test]
fn corpus_is_large_enough() {
    for (family, cases) in load(&corpus_dir().join("attack")) {
        assert!(
            cases.len() >= 40,
            "{family}: {} attacks, want at least 40",
            cases.len()
        );
    }
    let benign: usize = load(&corpus_dir().join("benign"))
        .iter()
        .map(|(_, c)| c.len())
        .sum();
    assert!(benign >= 300, "{benign} benign requests, want at least 300");
}

#[test]
fn corpus_lines_parse_as_described() {
    let case = parse_line("t".into(), "it's <b>").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(case.uri, b"/search?q=it%27s%20%3Cb%3E");
    let case = parse_line(
        "t".into(),
        r#"{"method":"POST","uri":"/a","headers":[["host",null],["x","<<ab*3>>"]],"body":"{}"}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!case.headers.iter().any(|(n, _)| n == "host"));
    assert!(case.headers.contains(&("x".into(), b"ababab".to_vec())));
    assert!(
        case.headers
            .contains(&("content-length".into(), b"2".to_vec()))
    );
}
