//! Acting on a decision: the properties the access log reads, the log line, and the 403.

use log::warn;
use paved_waf_engine::{Action, Decision};
use proxy_wasm::traits::HttpContext;

/// Records the decision in the stream's properties (`paved.decision.waf`, `paved.waf.rules`,
/// `paved.waf.score`) and, in block mode past the threshold, denies the request. Returns
/// whether it denied.
pub fn apply(ctx: &dyn HttpContext, decision: &Decision) -> bool {
    ctx.set_property(
        vec!["paved", "decision", "waf"],
        Some(decision.action.as_str().as_bytes()),
    );
    ctx.set_property(
        vec!["paved", "waf", "rules"],
        Some(decision.rules_csv().as_bytes()),
    );
    ctx.set_property(
        vec!["paved", "waf", "score"],
        Some(decision.score.to_string().as_bytes()),
    );
    let request_id = request_id(ctx);
    if decision.action != Action::Allow {
        let targets: Vec<String> = decision
            .hits
            .iter()
            .map(|h| format!("{}@{}", h.rule, h.target))
            .collect();
        warn!(
            "waf: {} request {request_id}: score {} rules [{}] at {}",
            decision.action,
            decision.score,
            decision.rules_csv(),
            targets.join(" ")
        );
    }
    if decision.action == Action::Deny {
        deny(ctx, &request_id);
        return true;
    }
    false
}

/// The request's ID, the reference given to the client.
pub fn request_id(ctx: &dyn HttpContext) -> String {
    ctx.get_property(vec!["request", "id"])
        .map(|id| String::from_utf8_lossy(&id).into_owned())
        .unwrap_or_else(|| "unknown".to_string())
}

/// The 403: a reference the client can quote to support, never the rules that fired (they
/// would teach an attacker what to change).
pub fn deny(ctx: &dyn HttpContext, request_id: &str) {
    let body =
        format!("Request blocked by the web application firewall.\nReference: {request_id}\n");
    ctx.send_http_response(
        403,
        vec![
            ("content-type", "text/plain; charset=utf-8"),
            ("cache-control", "no-store"),
            ("x-request-id", request_id),
        ],
        Some(body.as_bytes()),
    );
}
