//! Walking a request: every value in it goes through normalisation and the detectors that
//! apply to where it was found.

use crate::detect::{self, Hits, Value};
use crate::normalize::{Encoding, Normalized};
use crate::parse::{cookies, json, multipart, urlencoded};
use crate::request::{Location, Request, Target};
use crate::rule::{self, RuleId};

/// Most arguments inspected; more is itself a finding (920380), and bounds the work.
pub const MAX_ARGUMENTS: usize = 1024;
/// Longest value inspected; longer values are inspected up to it.
pub const MAX_VALUE_BYTES: usize = 256 * 1024;

/// A rule that matched, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The rule.
    pub rule: RuleId,
    /// Where it matched.
    pub target: Target,
}

/// Every rule match in a request, at every paranoia level, before exclusions and scoring.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// The matches, in request order, one per rule and target.
    pub hits: Vec<Hit>,
}

impl Findings {
    fn add(&mut self, rules: Hits, target: &Target) {
        for rule in rules {
            let hit = Hit {
                rule,
                target: target.clone(),
            };
            if !self.hits.contains(&hit) {
                self.hits.push(hit);
            }
        }
    }
}

/// Inspects a whole request.
pub fn inspect(req: &Request<'_>) -> Findings {
    let mut findings = Findings::default();
    let mut head = Hits::new();
    detect::protocol::head(req, &mut head);
    findings.add(head, &Target::request());
    path(req, &mut findings);
    let mut arguments = Arguments::default();
    for pair in urlencoded::pairs(req.raw_query()) {
        arguments.pair(pair.name, pair.value, Encoding::Form, &mut findings);
    }
    headers(req, &mut findings);
    if let Some(body) = req.body {
        self::body(req, body.bytes, &mut arguments, &mut findings);
        if body.truncated {
            findings.add(vec![rule::BODY_NOT_FULLY_INSPECTED], &Target::request());
        }
    }
    if arguments.count > MAX_ARGUMENTS {
        findings.add(vec![rule::TOO_MANY_ARGUMENTS], &Target::request());
    }
    findings
}

/// The detectors for a value found at `location`.
fn inspect_value(value: &Value<'_>) -> Hits {
    let mut hits = Hits::new();
    detect::protocol::value(value, &mut hits);
    detect::sqli::detect(value, &mut hits);
    detect::xss::detect(value, &mut hits);
    detect::lfi::detect(value, &mut hits);
    detect::rfi::detect(value, &mut hits);
    detect::rce::detect(value, &mut hits);
    hits
}

fn bounded(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(MAX_VALUE_BYTES)]
}

/// The path as a whole (traversal, restricted files, probes) and segment by segment
/// (injections into path parameters such as `/users/1 or 1=1`).
fn path(req: &Request<'_>, findings: &mut Findings) {
    let raw = bounded(req.raw_path());
    let norm = Normalized::new(raw, Encoding::Path);
    let target = Target::new(Location::Path, "");
    let value = Value {
        location: Location::Path,
        name: "",
        norm: &norm,
    };
    let mut hits = Hits::new();
    detect::protocol::value(&value, &mut hits);
    detect::lfi::detect(&value, &mut hits);
    detect::xss::detect(&value, &mut hits);
    detect::scanner::probe_path(&norm.lower, &mut hits);
    detect::protocol::restricted_extension(&norm.lower, &mut hits);
    for segment in raw.split(|&b| b == b'/').filter(|s| !s.is_empty()) {
        let norm = Normalized::new(segment, Encoding::Path);
        let value = Value {
            location: Location::Path,
            name: "",
            norm: &norm,
        };
        detect::sqli::detect(&value, &mut hits);
        detect::rce::detect(&value, &mut hits);
    }
    findings.add(hits, &target);
}

/// Counts arguments and their names, across the query and the body.
#[derive(Default)]
struct Arguments {
    count: usize,
    seen: Vec<String>,
}

impl Arguments {
    fn room(&mut self) -> bool {
        self.count += 1;
        self.count <= MAX_ARGUMENTS
    }

    /// A `name=value` argument of a query, form or multipart field.
    fn pair(&mut self, name: &[u8], value: &[u8], encoding: Encoding, findings: &mut Findings) {
        if !self.room() {
            return;
        }
        let name_norm = Normalized::new(bounded(name), encoding);
        let name_text = name_norm.decoded.to_lowercase();
        self.named(
            &name_text,
            &name_text,
            &name_norm,
            Some(value),
            encoding,
            findings,
        );
    }

    /// An argument whose name is already decoded (JSON keys); `path` is its key path.
    fn named(
        &mut self,
        name: &str,
        path: &str,
        name_norm: &Normalized,
        value: Option<&[u8]>,
        encoding: Encoding,
        findings: &mut Findings,
    ) {
        let name_target = Target {
            location: Location::ArgName,
            name: name.to_string(),
            path: path.to_string(),
        };
        findings.add(
            inspect_value(&Value {
                location: Location::ArgName,
                name,
                norm: name_norm,
            }),
            &name_target,
        );
        if let Some(value) = value {
            // JSON keys (no value here) repeat legitimately across the objects of an array.
            if self.seen.iter().any(|n| n == name) {
                findings.add(vec![rule::PARAMETER_POLLUTION], &name_target);
            } else {
                self.seen.push(name.to_string());
            }
            let norm = Normalized::new(bounded(value), encoding);
            let target = Target {
                location: Location::Arg,
                ..name_target
            };
            findings.add(
                inspect_value(&Value {
                    location: Location::Arg,
                    name,
                    norm: &norm,
                }),
                &target,
            );
        }
    }
}

fn headers(req: &Request<'_>, findings: &mut Findings) {
    for (name, value) in req.headers.iter().filter(|(n, _)| !n.starts_with(':')) {
        if name == "cookie" {
            for (cookie, cookie_value) in cookies::pairs(value) {
                let name_norm = Normalized::new(cookie.as_bytes(), Encoding::Plain);
                let mut hits = Hits::new();
                detect::rce::detect(
                    &Value {
                        location: Location::CookieName,
                        name: &cookie,
                        norm: &name_norm,
                    },
                    &mut hits,
                );
                findings.add(hits, &Target::new(Location::CookieName, cookie.clone()));
                let norm = Normalized::new(bounded(&cookie_value), Encoding::Plain);
                findings.add(
                    inspect_value(&Value {
                        location: Location::Cookie,
                        name: &cookie,
                        norm: &norm,
                    }),
                    &Target::new(Location::Cookie, cookie.clone()),
                );
            }
            continue;
        }
        let norm = Normalized::new(bounded(value), Encoding::Plain);
        let target = Target::new(Location::Header, name.clone());
        let header = Value {
            location: Location::Header,
            name,
            norm: &norm,
        };
        let mut hits = Hits::new();
        if name == "user-agent" {
            detect::scanner::user_agent(&norm.decoded, &mut hits);
        }
        if name == "user-agent" || name == "referer" {
            detect::sqli::detect(&header, &mut hits);
            detect::xss::detect(&header, &mut hits);
        }
        // Shellshock and Log4Shell travel in any header; the detector limits itself to them
        // for headers other than User-Agent and Referer.
        detect::rce::detect(&header, &mut hits);
        findings.add(hits, &target);
    }
}

/// Media types whose bodies are text worth inspecting as a whole.
fn is_text(media_type: &str) -> bool {
    media_type.starts_with("text/")
        || media_type.ends_with("+xml")
        || matches!(
            media_type,
            "application/xml"
                | "application/graphql"
                | "application/javascript"
                | "application/x-yaml"
                | "application/yaml"
        )
}

/// Server-side script extensions that must not be uploaded.
const SCRIPT_EXTENSIONS: &[&str] = &[
    "php", "php3", "php4", "php5", "php7", "phtml", "phar", "pht", "phps", "jsp", "jspx", "asp",
    "aspx", "ashx", "asmx", "cer", "cgi", "pl", "py", "sh", "shtml", "htaccess",
];

fn body(req: &Request<'_>, bytes: &[u8], arguments: &mut Arguments, findings: &mut Findings) {
    let media_type = req.media_type().unwrap_or_default();
    if media_type == "application/x-www-form-urlencoded" {
        for pair in urlencoded::pairs(bytes) {
            arguments.pair(pair.name, pair.value, Encoding::Form, findings);
        }
    } else if media_type == "application/json" || media_type.ends_with("+json") {
        for field in json::fields(bytes, MAX_ARGUMENTS + 1) {
            if field.is_key {
                if !arguments.room() {
                    continue;
                }
                let norm = Normalized::new(bounded(field.text.as_bytes()), Encoding::Plain);
                let name = field.text.to_lowercase();
                let path = field.path.to_lowercase();
                arguments.named(&name, &path, &norm, None, Encoding::Plain, findings);
            } else {
                let norm = Normalized::new(bounded(field.text.as_bytes()), Encoding::Plain);
                let name = field.key.to_lowercase();
                let target = Target {
                    location: Location::Arg,
                    name: name.clone(),
                    path: field.path.to_lowercase(),
                };
                findings.add(
                    inspect_value(&Value {
                        location: Location::Arg,
                        name: &name,
                        norm: &norm,
                    }),
                    &target,
                );
            }
        }
    } else if media_type == "multipart/form-data" {
        let boundary = req
            .header("content-type")
            .and_then(|ct| multipart::boundary(&ct));
        let Some(boundary) = boundary else {
            findings.add(vec![rule::INVALID_REQUEST_LINE], &Target::request());
            return;
        };
        for part in multipart::parts(bytes, &boundary, MAX_ARGUMENTS + 1) {
            match &part.filename {
                Some(filename) => {
                    let norm = Normalized::new(filename.as_bytes(), Encoding::Plain);
                    let target = Target::new(Location::FileName, part.name.to_lowercase());
                    let mut hits = Hits::new();
                    let value = Value {
                        location: Location::FileName,
                        name: &part.name,
                        norm: &norm,
                    };
                    detect::lfi::detect(&value, &mut hits);
                    detect::protocol::value(&value, &mut hits);
                    let extension = norm.lower.rsplit('.').next().unwrap_or_default();
                    if norm.lower.contains('.') && SCRIPT_EXTENSIONS.contains(&extension.trim()) {
                        hits.push(rule::PHP_UPLOAD);
                    }
                    findings.add(hits, &target);
                }
                None => arguments.pair(
                    part.name.as_bytes(),
                    part.content,
                    Encoding::Plain,
                    findings,
                ),
            }
        }
    } else if media_type.is_empty() || is_text(&media_type) {
        let norm = Normalized::new(bounded(bytes), Encoding::Plain);
        findings.add(
            inspect_value(&Value {
                location: Location::Body,
                name: "",
                norm: &norm,
            }),
            &Target::new(Location::Body, ""),
        );
    }
}
