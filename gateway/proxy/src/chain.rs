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
    /// Whether the filters saw the end of the request (with its headers or its body).
    request_complete: bool,
    /// Whether the filters saw the end of the response.
    response_complete: bool,
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
            request_complete: false,
            response_complete: false,
        }
    }

    /// Whether the filters saw the end of the request: after that, as in Envoy, there is no
    /// body callback (a request that ends with its headers has no `proxy_on_request_body`).
    pub fn request_complete(&self) -> bool {
        self.request_complete
    }

    /// Whether the filters saw the end of the response (see [`Self::request_complete`]).
    pub fn response_complete(&self) -> bool {
        self.response_complete
    }

    /// Whether the route has any filter.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Runs `proxy_on_request_headers` through the chain, in order, creating each context.
    pub async fn request_headers(&mut self, end_of_stream: bool) -> ChainDecision {
        self.request_complete = end_of_stream;
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

    /// Runs `proxy_on_request_body` in order over the body buffered so far; nothing once the
    /// request is complete (Envoy calls body callbacks only while there is a body), unless
    /// data came after all: filters see every byte that goes upstream.
    pub async fn request_body(&mut self, end_of_stream: bool) -> ChainDecision {
        if self.request_complete && self.stream.request_body.is_empty() {
            return ChainDecision::Continue;
        }
        self.request_complete = end_of_stream;
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
        self.response_complete = end_of_stream;
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

    /// Runs `proxy_on_response_body` in reverse order (synchronously); nothing once the
    /// response is complete, unless data came after all (see [`Self::request_body`]).
    pub fn response_body(&mut self, end_of_stream: bool) -> ChainDecision {
        if self.response_complete && self.stream.response_body.is_empty() {
            return ChainDecision::Continue;
        }
        self.response_complete = end_of_stream;
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

    /// Ends every context (`proxy_on_done`, `proxy_on_log`, `proxy_on_delete`: one step, under
    /// one lock of its instance, per filter).
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use paved_wasm_host::{
        ClusterDispatcher, HeaderMap, PluginSpec, Runtime, RuntimeOptions, StreamInfo,
    };

    use super::*;

    /// The conformance plugin (plugins/conformance) with `config`, as a security filter.
    fn conformance(runtime: &Runtime, name: &str, config: &str) -> Arc<ChainPlugin> {
        let path = paved_builtin_plugins::artifact_path("conformance");
        let wasm = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut spec = PluginSpec::new(name, wasm, config.as_bytes().to_vec());
        spec.instances = 1;
        let http = Arc::new(ClusterDispatcher::new(HashMap::new(), 1 << 20));
        let plugin = runtime
            .load(spec, http)
            .expect("the conformance plugin loads");
        Arc::new(ChainPlugin {
            plugin,
            fail_open: false,
            security: true,
        })
    }

    fn request(method: &str) -> HttpStream {
        let headers = HeaderMap::from_pairs([
            (":method", method),
            (":path", "/"),
            (":authority", "app.test"),
            (":scheme", "http"),
        ]);
        HttpStream::new(headers, Arc::new(StreamInfo::default()))
    }

    /// Both plugins buffer their body until its end, then append a marker: a body callback
    /// at the end of a message without body would show as a marker in an empty body.
    fn chain(runtime: &Runtime, method: &str) -> RequestChain {
        let on_request = conformance(
            runtime,
            "request-body",
            r#"{"scenario": "request_body", "transform": "append", "marker": "[req]"}"#,
        );
        let on_response = conformance(
            runtime,
            "response-body",
            r#"{"scenario": "response_body", "transform": "append", "marker": "[resp]"}"#,
        );
        RequestChain::new(&[on_request, on_response], request(method))
    }

    #[tokio::test]
    async fn messages_that_end_with_their_headers_get_no_body_callbacks() {
        let runtime = Runtime::new(RuntimeOptions::default()).expect("engine");
        let mut chain = chain(&runtime, "GET");
        assert_eq!(chain.request_headers(true).await, ChainDecision::Continue);
        assert!(chain.request_complete());
        assert_eq!(chain.request_body(true).await, ChainDecision::Continue);
        assert!(
            chain.stream.request_body.is_empty(),
            "no request body callback: {:?}",
            String::from_utf8_lossy(&chain.stream.request_body)
        );
        assert!(
            !chain.stream.request_headers.is_changed(),
            "a bodiless GET's headers are left as they were"
        );

        chain.stream.response_headers = HeaderMap::from_pairs([(":status", "204")]);
        assert_eq!(
            chain.response_headers(true, None).await,
            ChainDecision::Continue
        );
        assert_eq!(
            chain
                .stream
                .response_headers
                .get_str("x-request-body-calls"),
            Some("0")
        );
        assert!(chain.response_complete());
        assert_eq!(chain.response_body(true), ChainDecision::Continue);
        assert!(
            chain.stream.response_body.is_empty(),
            "no response body callback: {:?}",
            String::from_utf8_lossy(&chain.stream.response_body)
        );
        chain.finish();
    }

    #[tokio::test]
    async fn messages_with_a_body_get_their_body_callbacks() {
        let runtime = Runtime::new(RuntimeOptions::default()).expect("engine");
        let mut chain = chain(&runtime, "POST");
        assert_eq!(chain.request_headers(false).await, ChainDecision::Continue);
        assert!(!chain.request_complete());
        chain.stream.request_body.extend_from_slice(b"abc");
        assert_eq!(chain.request_body(true).await, ChainDecision::Continue);
        assert_eq!(chain.stream.request_body, b"abc[req]");
        assert!(chain.request_complete());

        chain.stream.response_headers = HeaderMap::from_pairs([(":status", "200")]);
        assert_eq!(
            chain.response_headers(false, None).await,
            ChainDecision::Continue
        );
        chain.stream.response_body.extend_from_slice(b"ok");
        assert_eq!(chain.response_body(true), ChainDecision::Continue);
        assert_eq!(chain.stream.response_body, b"ok[resp]");
        chain.finish();
    }
}
