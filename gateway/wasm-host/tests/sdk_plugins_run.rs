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
