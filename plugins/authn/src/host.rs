//! Host calls on the stream of the *effective* context: reading a request's facts, removing
//! spoofable headers, and carrying out an [`Outcome`]. The root context uses the same code
//! after `proxy_set_effective_context` to finish requests that waited for the provider.

use std::time::Duration;

use log::warn;
use paved_identity::authn::{Admission, CallRequest, CallResponse, Outcome, Pending, Reply};
use paved_identity::identity::{Identity, props};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, Status};

use crate::instance::Instance;

/// The facts of a request, owned (they outlive the host call that read them).
#[derive(Debug, Default)]
pub struct OwnedRequest {
    pub method: String,
    pub scheme: String,
    pub authority: String,
    pub path: String,
    pub authorization: Option<String>,
    pub cookie: Option<String>,
    pub accept: Option<String>,
    pub sec_fetch_mode: Option<String>,
}

impl OwnedRequest {
    pub fn as_request(&self) -> paved_identity::authn::Request<'_> {
        paved_identity::authn::Request {
            method: &self.method,
            scheme: &self.scheme,
            authority: &self.authority,
            path: &self.path,
            authorization: self.authorization.as_deref(),
            cookie: self.cookie.as_deref(),
            accept: self.accept.as_deref(),
            sec_fetch_mode: self.sec_fetch_mode.as_deref(),
        }
    }
}

/// Reads the request headers of the effective context. Values that are not UTF-8 are
/// replaced (lossy): they can never form a valid token or cookie.
pub fn read_request() -> OwnedRequest {
    let pairs = hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default();
    let mut req = OwnedRequest::default();
    let mut cookies: Vec<String> = Vec::new();
    let mut authorizations: Vec<String> = Vec::new();
    for (name, value) in pairs {
        let value = String::from_utf8_lossy(&value).into_owned();
        match name.to_ascii_lowercase().as_str() {
            ":method" => req.method = value,
            ":scheme" => req.scheme = value,
            ":authority" => req.authority = value,
            ":path" => req.path = value,
            "host" if req.authority.is_empty() => req.authority = value,
            "cookie" => cookies.push(value),
            // Several Authorization headers join into a value no token parser accepts.
            "authorization" => authorizations.push(value),
            "accept" => req.accept = Some(value),
            "sec-fetch-mode" => req.sec_fetch_mode = Some(value),
            _ => {}
        }
    }
    if !cookies.is_empty() {
        req.cookie = Some(cookies.join("; "));
    }
    if !authorizations.is_empty() {
        req.authorization = Some(authorizations.join(", "));
    }
    req
}

/// Removes every header a client could use to claim an identity.
pub fn strip(names: &[String]) {
    for name in names {
        // Removing an absent header is not an error worth reporting.
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None);
    }
}

/// Sets a `paved.*` property on the effective context's stream.
pub fn set_property(path: &str, value: &str) {
    let segments: Vec<&str> = path.split('.').collect();
    if let Err(status) = hostcalls::set_property(segments, Some(value.as_bytes())) {
        warn!("authn: set_property {path}: {status:?}");
    }
}

fn record(decision: &str, identity: Option<&Identity>) {
    if let Some(id) = identity {
        for (name, value) in id.properties() {
            set_property(name, &value);
        }
    }
    set_property(props::DECISION_AUTHN, decision);
}

/// What became of an outcome.
pub enum Applied {
    /// Let the request go on (resume it if it is paused).
    Continue,
    /// Answered: nothing more to do.
    Done,
    /// A call was dispatched; its answer continues `Pending`.
    Called(u32, Pending),
    /// The request waits for the provider (the root resumes it).
    Waiting,
}

/// Carries out `outcome` for request `ctx` (the effective context). A call is dispatched as
/// `dispatch_as` (the root's id, when the root acts for a waiting request; the SDK routes
/// the answer to whoever was running when the call was made).
pub fn apply(
    inst: &Instance,
    ctx: u32,
    outcome: Outcome,
    now_ms: u64,
    dispatch_as: Option<u32>,
) -> Applied {
    match outcome {
        Outcome::Continue(admission) => {
            admit(inst, ctx, admission);
            Applied::Continue
        }
        Outcome::Respond(reply) => {
            respond(&reply);
            Applied::Done
        }
        Outcome::Call(call) => {
            if let Some(root) = dispatch_as {
                let _ = hostcalls::set_effective_context(root);
            }
            match dispatch(inst, &call.request) {
                Ok(token) => Applied::Called(token, call.pending),
                Err(status) => {
                    warn!("authn: calling the identity provider failed: {status:?}");
                    if dispatch_as.is_some() && hostcalls::set_effective_context(ctx).is_err() {
                        return Applied::Done;
                    }
                    respond(&inst.authn.unavailable());
                    Applied::Done
                }
            }
        }
        Outcome::Wait(need, resume) => {
            let pushed = inst.waiting.borrow_mut().push(ctx, now_ms, (need, resume));
            if pushed.is_err() {
                respond(&inst.authn.unavailable());
                return Applied::Done;
            }
            if need == paved_identity::authn::Need::Keys {
                inst.provider
                    .borrow_mut()
                    .request_key_refresh(now_ms / 1000);
            }
            Applied::Waiting
        }
    }
}

fn admit(inst: &Instance, ctx: u32, admission: Admission) {
    for (name, value) in &admission.headers {
        if let Err(status) =
            hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value))
        {
            warn!("authn: setting {name}: {status:?}");
        }
    }
    record(&admission.decision.as_string(), admission.identity.as_ref());
    if !admission.response_cookies.is_empty() {
        inst.response_cookies
            .borrow_mut()
            .insert(ctx, admission.response_cookies);
    }
}

fn respond(reply: &Reply) {
    record(&reply.decision.as_string(), reply.identity.as_ref());
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let body = (!reply.body.is_empty()).then_some(reply.body.as_slice());
    if let Err(status) = hostcalls::send_http_response(u32::from(reply.status), headers, body) {
        warn!("authn: sending the local response: {status:?}");
    }
}

fn dispatch(inst: &Instance, req: &CallRequest) -> Result<u32, Status> {
    let mut headers: Vec<(&str, &str)> = vec![
        (":method", req.method),
        (":path", &req.path),
        (":authority", &req.authority),
    ];
    headers.extend(req.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let body = (!req.body.is_empty()).then_some(req.body.as_slice());
    hostcalls::dispatch_http_call(
        &inst.cluster,
        headers,
        body,
        Vec::new(),
        Duration::from_millis(inst.authn.settings().http_timeout_ms),
    )
}

/// Most of a call's body read (larger documents are refused by their parsers anyway).
const MAX_CALL_BODY: usize = 512 * 1024;

/// Reads the answer to a call, in `on_http_call_response` (status 0: the call failed).
pub fn call_response(num_headers: usize, body_size: usize) -> CallResponse {
    if num_headers == 0 {
        return CallResponse::default();
    }
    let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()
        .and_then(|s| {
            std::str::from_utf8(&s)
                .ok()
                .and_then(|s| s.parse::<u16>().ok())
        })
        .unwrap_or(0);
    let body = hostcalls::get_buffer(
        BufferType::HttpCallResponseBody,
        0,
        body_size.min(MAX_CALL_BODY),
    )
    .ok()
    .flatten()
    .unwrap_or_default();
    CallResponse { status, body }
}
