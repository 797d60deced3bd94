//! Plugins built from `plugins/` with the official SDK load in the host and answer its calls.

use std::collections::HashMap;
use std::sync::Arc;

use paved_wasm_host::{
    ClusterDispatcher, HeaderMap, HttpStream, PluginSpec, Runtime, RuntimeOptions, StreamInfo,
    Verdict,
};

fn request(path: &str) -> HttpStream {
    let headers = HeaderMap::from_pairs([
        (":method", "GET"),
        (":path", path),
        (":authority", "app"),
        (":scheme", "http"),
    ]);
    HttpStream::new(headers, Arc::new(StreamInfo::default()))
}

#[tokio::test]
async fn noop_plugin_built_with_the_sdk_lets_requests_through_unchanged() {
    let runtime = Runtime::new(RuntimeOptions::default()).expect("engine");
    let wasm = paved_builtin_plugins::get("noop").expect("noop is built in");
    let http = Arc::new(ClusterDispatcher::new(HashMap::new(), 1 << 20));
    let plugin = runtime
        .load(PluginSpec::new("noop", wasm, Vec::new()), http)
        .expect("loads");

    for i in 0..3 {
        let mut stream = request(&format!("/item/{i}"));
        let before = stream.request_headers.clone();
        let mut context = plugin.new_http_context().expect("context");
        let verdict = context
            .on_request_headers(&mut stream, true)
            .await
            .expect("runs");
        assert_eq!(verdict, Verdict::Continue);
        assert_eq!(
            stream.request_headers, before,
            "a no-op plugin changes nothing"
        );
        context.finish(&mut stream);
    }
    assert_eq!(
        plugin
            .stats()
            .calls
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    assert_eq!(
        plugin
            .stats()
            .failures
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn modules_that_are_not_proxy_wasm_are_rejected_at_load() {
    let runtime = Runtime::new(RuntimeOptions::default()).expect("engine");
    let http = Arc::new(ClusterDispatcher::new(HashMap::new(), 1 << 20));
    let garbage = runtime.load(
        PluginSpec::new("garbage", &b"not wasm"[..], Vec::new()),
        http.clone(),
    );
    let message = garbage
        .err()
        .map(|e| e.to_string())
        .expect("garbage is rejected");
    assert!(
        message.contains("plugin garbage: compiling the module failed"),
        "{message}"
    );

    // A valid module without the ABI version marker.
    let empty_module: &[u8] = b"\0asm\x01\0\0\0";
    let no_abi = runtime.load(PluginSpec::new("bare", empty_module, Vec::new()), http);
    let message = no_abi
        .err()
        .map(|e| e.to_string())
        .expect("a bare module is rejected");
    assert!(
        message.contains("not a Proxy-Wasm ABI v0.2.x module"),
        "{message}"
    );
}

/// A plugin built with the SDK from `plugins/<name>` with `config`.
fn load(runtime: &Runtime, module: &str, name: &str, config: &str) -> paved_wasm_host::Plugin {
    let path = paved_builtin_plugins::artifact_path(module);
    let wasm = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut spec = PluginSpec::new(name, wasm, config.as_bytes().to_vec());
    spec.instances = 1;
    let http = Arc::new(ClusterDispatcher::new(HashMap::new(), 1 << 20));
    runtime
        .load(spec, http)
        .unwrap_or_else(|e| panic!("{name} loads: {e}"))
}

#[tokio::test]
async fn header_maps_stay_unchanged_until_a_plugin_edits_them_and_read_back_its_edits() {
    let runtime = Runtime::new(RuntimeOptions::default()).expect("engine");
    let noop = load(&runtime, "noop", "noop", "");
    // Writes `x-probe` (and its report headers); the next plugin reads it back.
    let writer = load(
        &runtime,
        "conformance",
        "writer",
        r#"{"scenario": "headers", "read": "x-none", "add": {"x-probe": "from-writer"}, "remove": ["x-gone"], "replace": {"x-replaced": "a-longer-value"}}"#,
    );
    let reader = load(
        &runtime,
        "conformance",
        "reader",
        r#"{"scenario": "headers", "read": "x-probe"}"#,
    );

    let mut stream = request("/edit");
    stream.request_headers.add("x-gone", "1");
    stream.request_headers.add("x-replaced", "short");
    stream.request_headers.mark_unchanged();
    let mut contexts = Vec::new();

    let mut context = noop.new_http_context().expect("context");
    let verdict = context.on_request_headers(&mut stream, true).await;
    assert_eq!(verdict, Ok(Verdict::Continue));
    assert!(
        !stream.request_headers.is_changed(),
        "a plugin that does not edit leaves the map unchanged: nothing to write back"
    );
    contexts.push(context);

    for plugin in [&writer, &reader] {
        let mut context = plugin.new_http_context().expect("context");
        let verdict = context.on_request_headers(&mut stream, true).await;
        assert_eq!(verdict, Ok(Verdict::Continue), "{}", plugin.name());
        contexts.push(context);
    }
    let headers = &stream.request_headers;
    assert!(headers.is_changed());
    assert_eq!(
        headers.get_str("x-seen-header"),
        Some("from-writer"),
        "the reader sees the writer's edit: {headers:?}"
    );
    assert_eq!(headers.get("x-gone"), None);
    assert_eq!(headers.get_str("x-replaced"), Some("a-longer-value"));
    assert_eq!(headers.get_str(":path"), Some("/edit"));
    // The reader counted the pairs it got from `proxy_get_header_map_pairs`.
    let count = headers
        .get_str("x-seen-count")
        .and_then(|c| c.parse::<usize>().ok());
    assert!(count.is_some_and(|c| c > 4), "{headers:?}");
    for context in contexts {
        context.finish(&mut stream);
    }
}
