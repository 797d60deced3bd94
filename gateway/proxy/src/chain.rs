//! Running a route's filter chain over one request: the contexts of every plugin, the
//! stream they share, and the failure policy (fail closed unless a filter is fail-open).

use std::sync::Arc;

use paved_wasm_host::{BodyVerdict, HttpContext, HttpStream, LocalResponse, PluginFailure};

use crate::active::ChainPlugin;

/// What the chain decided for a phase.
#[derive(Debug, PartialEq, Eq)]
pub enum ChainDecision {
    /// Go on.
    Continue,
    /// Hold the body and wait for more (body phases only).
    Buffer,
    /// Answer with this response; `by` is the filter that produced or caused it.
    Respond {
        /// The response.
        response: LocalResponse,
        /// The index of the filter in the chain.
        by: usize,
    },
    /// Reset the stream.
    Close,
}

/// One filter's context for this request; `None` once it failed open (it is skipped then).
struct Slot {
    plugin: Arc<ChainPlugin>,
    context: Option<HttpContext>,
}

/// The chain of one request.
pub struct RequestChain {
    slots: Vec<Slot>,
    /// Headers, bodies and properties as the filters see and change them.
    pub stream: HttpStream,
    /// The filter that denied the request, for the access log and metrics.
    pub denied_by: Option<String>,
}

impl RequestChain {
    /// A chain over `plugins` for a request whose state is `stream`.
    pub fn new(plugins: &[Arc<ChainPlugin>], stream: HttpStream) -> Self {
        Self {
            slots: plugins
                .iter()
                .map(|plugin| Slot {
                    plugin: plugin.clone(),
                    context: None,
                })
                .collect(),
            stream,
            denied_by: None,
        }
    }

    /// Whether the route has any filter.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Runs `proxy_on_request_headers` through the chain, in order, creating each context.
    pub async fn request_headers(&mut self, end_of_stream: bool) -> ChainDecision {
        // Every filter gets its context first, as in Envoy: a filter after one that answers
        // locally still sees the response and `proxy_on_log` (the access log records denials).
        let mut failed_to_start = None;
        for index in 0..self.slots.len() {
            let slot = &mut self.slots[index];
            match slot.plugin.plugin.new_http_context() {
                Ok(context) => slot.context = Some(context),
                Err(failure) => {
                    failed_to_start.get_or_insert((index, failure));
                }
            }
        }
        for index in 0..self.slots.len() {
            if let Some((failed, _)) = &failed_to_start
                && *failed == index
            {
                let (_, failure) = failed_to_start.take().expect("checked just above");
                match self.on_failure(index, failure) {
                    Some(decision) => return decision,
                    None => continue,
                }
            }
            let Some(context) = self.slots[index].context.as_mut() else {
                continue;
            };
            let result = context
                .on_request_headers(&mut self.stream, end_of_stream)
                .await;
            if let Some(decision) = self.settle(index, result.map(BodyVerdict::from)) {
                return decision;
            }
        }
        ChainDecision::Continue
    }

    /// Runs `proxy_on_request_body` in order over the body buffered so far.
    pub async fn request_body(&mut self, end_of_stream: bool) -> ChainDecision {
        let mut buffer = false;
        for index in 0..self.slots.len() {
            let Some(context) = self.slots[index].context.as_mut() else {
                continue;
            };
            let result = context
                .on_request_body(&mut self.stream, end_of_stream)
                .await;
            match self.settle(index, result) {
                Some(ChainDecision::Buffer) => buffer = true,
                Some(decision) => return decision,
                None => {}
            }
        }
        if buffer {
            ChainDecision::Buffer
        } else {
            ChainDecision::Continue
        }
    }

    /// Runs `proxy_on_response_headers` in reverse order (responses flow back through the
    /// chain), over the filters before `before` only (for a local response produced by
    /// filter `before`).
    pub async fn response_headers(
        &mut self,
        end_of_stream: bool,
        before: Option<usize>,
    ) -> ChainDecision {
        let end = before.unwrap_or(self.slots.len()).min(self.slots.len());
        for index in (0..end).rev() {
            let Some(context) = self.slots[index].context.as_mut() else {
                continue;
            };
            let result = context
                .on_response_headers(&mut self.stream, end_of_stream)
                .await;
            if let Some(decision) = self.settle(index, result.map(BodyVerdict::from)) {
                return decision;
            }
        }
        ChainDecision::Continue
    }

    /// Runs `proxy_on_response_body` in reverse order (synchronously).
    pub fn response_body(&mut self, end_of_stream: bool) -> ChainDecision {
        let mut buffer = false;
        for index in (0..self.slots.len()).rev() {
            let Some(context) = self.slots[index].context.as_mut() else {
                continue;
            };
            let result = context.on_response_body(&mut self.stream, end_of_stream);
            match self.settle(index, result) {
                Some(ChainDecision::Buffer) => buffer = true,
                Some(decision) => return decision,
                None => {}
            }
        }
        if buffer {
            ChainDecision::Buffer
        } else {
            ChainDecision::Continue
        }
    }

    /// Ends every context (`proxy_on_done`, `proxy_on_log`, `proxy_on_delete`).
    pub fn finish(&mut self) {
        for slot in &mut self.slots {
            if let Some(context) = slot.context.take() {
                context.finish(&mut self.stream);
            }
        }
    }

    /// Turns one filter's result into a decision, or `None` to go on to the next filter.
    fn settle(
        &mut self,
        index: usize,
        result: Result<BodyVerdict, PluginFailure>,
    ) -> Option<ChainDecision> {
        match result {
            Ok(BodyVerdict::Continue) => None,
            Ok(BodyVerdict::Buffer) => Some(ChainDecision::Buffer),
            Ok(BodyVerdict::Respond(response)) => {
                if response.status >= 400 {
                    self.denied_by = Some(self.slots[index].plugin.plugin.name().to_owned());
                }
                Some(ChainDecision::Respond {
                    response,
                    by: index,
                })
            }
            Ok(BodyVerdict::Close) => {
                self.denied_by = Some(self.slots[index].plugin.plugin.name().to_owned());
                Some(ChainDecision::Close)
            }
            Err(failure) => self.on_failure(index, failure),
        }
    }

    /// The failure policy: a fail-open filter is logged and skipped from then on; any other
    /// failure denies the request (403 for security filters, 500 otherwise).
    fn on_failure(&mut self, index: usize, failure: PluginFailure) -> Option<ChainDecision> {
        let slot = &mut self.slots[index];
        let name = slot.plugin.plugin.name().to_owned();
        slot.context = None;
        if slot.plugin.fail_open {
            tracing::warn!(plugin = %name, failure = %failure, "filter failed open; request continues");
            return None;
        }
        tracing::error!(plugin = %name, failure = %failure, "filter failed closed; request denied");
        let status = if slot.plugin.security { 403 } else { 500 };
        let body = serde_json::json!({
            "error": if status == 403 { "forbidden" } else { "filter_failed" },
            "filter": name,
            "request_id": self.stream.info.request_id,
        });
        self.denied_by = Some(name);
        Some(ChainDecision::Respond {
            response: LocalResponse {
                status,
                details: format!("filter failure: {failure}"),
                headers: vec![("content-type".into(), b"application/json".to_vec())],
                body: body.to_string().into_bytes(),
            },
            by: index,
        })
    }
}

impl Drop for RequestChain {
    fn drop(&mut self) {
        self.finish();
    }
}
