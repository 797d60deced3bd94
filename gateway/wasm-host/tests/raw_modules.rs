//! Misbehaviour an SDK-built plugin cannot show (plugins/faulty/README.md, "Not covered"):
//! tiny modules encoded by the test itself, exporting just what the host needs. An invalid
//! action, a rejected VM configuration, a loop in `proxy_on_configure`, a trap in a background
//! callback (`proxy_on_tick`).

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use paved_wasm_host::{LoadError, PluginFailure, PluginSpec};

const I32: u8 = 0x7f;
const END: u8 = 0x0b;

fn leb(mut value: u32, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn name(text: &str, out: &mut Vec<u8>) {
    leb(text.len() as u32, out);
    out.extend_from_slice(text.as_bytes());
}

fn section(id: u8, items: &[Vec<u8>], out: &mut Vec<u8>) {
    let mut content = Vec::new();
    leb(items.len() as u32, &mut content);
    for item in items {
        content.extend_from_slice(item);
    }
    out.push(id);
    leb(content.len() as u32, out);
    out.extend_from_slice(&content);
}

/// A function type of `params` i32 parameters and an optional i32 result.
fn func_type(params: usize, result: bool) -> Vec<u8> {
    let mut t = vec![0x60];
    leb(params as u32, &mut t);
    t.extend(std::iter::repeat_n(I32, params));
    t.extend_from_slice(if result { &[1, I32] } else { &[0] });
    t
}

/// An exported function: its name, signature and instructions (without the final `end`).
struct Func {
    export: &'static str,
    params: usize,
    result: bool,
    code: Vec<u8>,
}

fn func(export: &'static str, params: usize, result: bool, code: &[u8]) -> Func {
    Func {
        export,
        params,
        result,
        code: code.to_vec(),
    }
}

/// `i32.const n` for a small non-negative n.
fn i32_const(n: u8) -> [u8; 2] {
    assert!(n < 64, "single-byte signed LEB only");
    [0x41, n]
}

/// A module with one page of exported memory, imports of `env` functions (all i32), and
/// `funcs`, plus the exports every plugin needs unless `funcs` defines them.
fn module(imports: &[(&str, usize, bool)], funcs: Vec<Func>) -> Vec<u8> {
    module_with_data(imports, funcs, &[])
}

/// [`module`] with `data` segments: bytes placed at fixed addresses of the memory.
fn module_with_data(
    imports: &[(&str, usize, bool)],
    funcs: Vec<Func>,
    data: &[(u8, &[u8])],
) -> Vec<u8> {
    let mut funcs = funcs;
    let defaults = [
        func("proxy_abi_version_0_2_1", 0, false, &[]),
        func("proxy_on_memory_allocate", 1, true, &[0x41, 0x80, 0x08]), // i32.const 1024
        func("proxy_on_context_create", 2, false, &[]),
    ];
    for default in defaults {
        if !funcs.iter().any(|f| f.export == default.export) {
            funcs.push(default);
        }
    }
    let mut types = Vec::new();
    let mut import_items = Vec::new();
    for (i, (field, params, result)) in imports.iter().enumerate() {
        types.push(func_type(*params, *result));
        let mut item = Vec::new();
        name("env", &mut item);
        name(field, &mut item);
        item.push(0x00);
        leb(i as u32, &mut item);
        import_items.push(item);
    }
    let mut func_items = Vec::new();
    let mut export_items = Vec::new();
    let mut memory_export = Vec::new();
    name("memory", &mut memory_export);
    memory_export.extend_from_slice(&[0x02, 0x00]);
    export_items.push(memory_export);
    let mut bodies = Vec::new();
    for (i, f) in funcs.iter().enumerate() {
        let type_index = (imports.len() + i) as u32;
        types.push(func_type(f.params, f.result));
        let mut type_ref = Vec::new();
        leb(type_index, &mut type_ref);
        func_items.push(type_ref);
        let mut export = Vec::new();
        name(f.export, &mut export);
        export.push(0x00);
        leb(type_index, &mut export); // function index = imports + i = type index
        export_items.push(export);
        let mut body = vec![0x00]; // no locals
        body.extend_from_slice(&f.code);
        body.push(END);
        let mut sized = Vec::new();
        leb(body.len() as u32, &mut sized);
        sized.extend_from_slice(&body);
        bodies.push(sized);
    }
    let mut out = b"\0asm\x01\0\0\0".to_vec();
    section(1, &types, &mut out);
    if !import_items.is_empty() {
        section(2, &import_items, &mut out);
    }
    section(3, &func_items, &mut out);
    section(5, &[vec![0x00, 0x01]], &mut out); // one memory, min 1 page
    section(7, &export_items, &mut out);
    section(10, &bodies, &mut out);
    if !data.is_empty() {
        let segments: Vec<Vec<u8>> = data
            .iter()
            .map(|(at, bytes)| {
                let mut segment = vec![0x00];
                segment.extend_from_slice(&i32_const(*at));
                segment.push(END);
                leb(bytes.len() as u32, &mut segment);
                segment.extend_from_slice(bytes);
                segment
            })
            .collect();
        section(11, &segments, &mut out);
    }
    out
}

fn raw_spec(name: &str, wasm: Vec<u8>) -> PluginSpec {
    let mut spec = PluginSpec::new(name, wasm, Vec::new());
    spec.instances = 1;
    spec
}

#[tokio::test]
async fn the_hand_encoded_module_loads_and_lets_requests_through() {
    // Guards the encoder: the same module as below, answering Continue.
    let wasm = module(
        &[],
        vec![func("proxy_on_request_headers", 3, true, &i32_const(0))],
    );
    let runtime = runtime();
    let plugin = runtime
        .load(raw_spec("raw-continue", wasm), no_clusters())
        .expect("loads");
    let out = pass(&plugin, &Req::get("/raw"), &Resp::ok()).await;
    assert_header(out.upstream().header(":path"), "/raw", "passed through");
}

#[tokio::test]
async fn an_action_other_than_continue_or_pause_fails_the_request() {
    let wasm = module(
        &[],
        vec![func("proxy_on_request_headers", 3, true, &i32_const(7))],
    );
    let runtime = runtime();
    let plugin = runtime
        .load(raw_spec("raw-action", wasm), no_clusters())
        .expect("loads");
    for round in 1..=2u64 {
        let failed = failure(&plugin, &Req::get("/"), &Resp::ok()).await;
        assert_eq!(
            failed.failure,
            PluginFailure::BadReturn {
                plugin: "raw-action".into(),
                function: "proxy_on_request_headers",
                value: 7,
            }
        );
        assert_eq!(plugin.stats().failures.load(Ordering::Relaxed), round);
        assert_eq!(
            plugin.stats().instances_started.load(Ordering::Relaxed),
            round,
            "a fresh instance each time"
        );
    }
}

#[tokio::test]
async fn a_vm_start_that_returns_false_rejects_the_plugin() {
    let wasm = module(&[], vec![func("proxy_on_vm_start", 2, true, &i32_const(0))]);
    let runtime = runtime();
    match load_error(&runtime, raw_spec("raw-vm-start", wasm)) {
        LoadError::VmStartRejected { plugin } => assert_eq!(plugin, "raw-vm-start"),
        other => panic!("expected VmStartRejected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_loop_in_configure_fails_the_load_within_its_time_budget() {
    // loop (br 0) end; i32.const 1
    let code = [0x03, 0x40, 0x0c, 0x00, END, 0x41, 0x01];
    let wasm = module(&[], vec![func("proxy_on_configure", 2, true, &code)]);
    let runtime = runtime();
    let mut spec = raw_spec("raw-configure-loop", wasm);
    spec.limits.call_timeout = Duration::from_millis(20);
    let started = Instant::now();
    let error = load_error(&runtime, spec);
    let elapsed = started.elapsed();
    match error {
        LoadError::Failed {
            failure: PluginFailure::Timeout { function, .. },
            ..
        } => assert_eq!(function, "proxy_on_configure"),
        other => panic!("expected a timeout in proxy_on_configure, got {other:?}"),
    }
    assert!(
        elapsed < Duration::from_secs(3),
        "the load took {elapsed:?}"
    );
}

#[tokio::test]
async fn a_trap_in_a_tick_poisons_the_instance_and_the_next_request_replaces_it() {
    // on_configure: proxy_set_tick_period_milliseconds(100); return 1. on_tick: unreachable.
    let configure = [0x41, 0xe4, 0x00, 0x10, 0x00, 0x1a, 0x41, 0x01];
    let wasm = module(
        &[("proxy_set_tick_period_milliseconds", 1, true)],
        vec![
            func("proxy_on_configure", 2, true, &configure),
            func("proxy_on_tick", 1, false, &[0x00]),
            func("proxy_on_request_headers", 3, true, &i32_const(0)),
        ],
    );
    let runtime = runtime();
    let plugin = runtime
        .load(raw_spec("raw-tick-trap", wasm), no_clusters())
        .expect("loads");
    // The first tick (after 100 ms) traps and poisons the only instance.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let out = pass(&plugin, &Req::get("/after-tick"), &Resp::ok()).await;
    assert_header(
        out.upstream().header(":path"),
        "/after-tick",
        "served by a fresh instance",
    );
    assert_eq!(
        plugin.stats().instances_started.load(Ordering::Relaxed),
        2,
        "the poisoned instance was replaced"
    );
}

#[tokio::test]
async fn a_cas_on_a_key_that_does_not_exist_yet_is_ignored_as_on_envoy() {
    // on_request_headers returns the status of
    // proxy_set_shared_data("missing", "v", cas 5): 0 (Continue) is Envoy's answer; any other
    // status comes back as a BadReturn carrying it.
    let code = [0x41, 16, 0x41, 7, 0x41, 32, 0x41, 1, 0x41, 5, 0x10, 0x00];
    let wasm = module_with_data(
        &[("proxy_set_shared_data", 5, true)],
        vec![func("proxy_on_request_headers", 3, true, &code)],
        &[(16, b"missing"), (32, b"v")],
    );
    let runtime = runtime();
    let plugin = runtime
        .load(raw_spec("raw-cas", wasm), no_clusters())
        .expect("loads");
    match exchange(&plugin, &Req::get("/"), &Resp::ok()).await {
        Ok(_) => {}
        Err(Failed {
            failure: PluginFailure::BadReturn { value, .. },
            ..
        }) => panic!("proxy_set_shared_data returned status {value}, Envoy returns OK (0)"),
        Err(other) => panic!("{other:?}"),
    }
}

/// Pauses every request in its headers; traps in a body callback.
fn pause_then_trap() -> Vec<u8> {
    module(
        &[],
        vec![
            func("proxy_on_request_headers", 3, true, &i32_const(1)),
            func("proxy_on_request_body", 3, true, &[0x00]),
        ],
    )
}

#[tokio::test]
async fn a_paused_stream_fails_when_another_stream_poisons_its_instance() {
    let runtime = runtime();
    let plugin = runtime
        .load(
            raw_spec("raw-paused-poisoned", pause_then_trap()),
            no_clusters(),
        )
        .expect("loads");
    let (req_a, req_b) = (Req::get("/a").header("x-mine", "a"), Req::new("POST", "/b"));
    let (mut a_stream, mut b_stream) = (req_a.stream(), req_b.stream());
    let mut a = plugin.new_http_context().expect("context");
    let mut b = plugin.new_http_context().expect("context");
    let started = Instant::now();
    let (a_result, b_result) = tokio::join!(
        bounded("a, paused", a.on_request_headers(&mut a_stream, true)),
        async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            b_stream.request_body = b"x".to_vec();
            bounded("b, trapping", b.on_request_body(&mut b_stream, true)).await
        }
    );
    assert!(
        matches!(b_result, Err(PluginFailure::Trap { .. })),
        "{b_result:?}"
    );
    assert!(
        a_result.is_err(),
        "the paused stream fails with its instance: {a_result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "at once, not after the pause timeout"
    );
    drop((a, b));
    // The next request gets a fresh instance (and is paused by it, as this module does).
    let mut c = plugin.new_http_context().expect("context");
    let paused = tokio::time::timeout(
        Duration::from_millis(20),
        c.on_request_headers(&mut req_a.stream(), true),
    )
    .await;
    assert!(paused.is_err(), "paused, not failed");
    assert_eq!(plugin.stats().instances_started.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn a_paused_stream_failed_by_another_stream_is_handed_back_for_fail_open() {
    let runtime = runtime();
    let plugin = runtime
        .load(
            raw_spec("raw-paused-handback", pause_then_trap()),
            no_clusters(),
        )
        .expect("loads");
    let (req_a, req_b) = (Req::get("/a").header("x-mine", "a"), Req::new("POST", "/b"));
    let (mut a_stream, mut b_stream) = (req_a.stream(), req_b.stream());
    let mut a = plugin.new_http_context().expect("context");
    let mut b = plugin.new_http_context().expect("context");
    let (a_result, _) = tokio::join!(
        bounded("a, paused", a.on_request_headers(&mut a_stream, true)),
        async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            b_stream.request_body = b"x".to_vec();
            bounded("b, trapping", b.on_request_body(&mut b_stream, true)).await
        }
    );
    assert!(a_result.is_err());
    assert_eq!(
        a_stream.request_headers.get("x-mine"),
        Some(&b"a"[..]),
        "{:?}",
        a_stream.request_headers
    );
}

#[tokio::test]
async fn a_paused_stream_failed_by_another_stream_is_unavailable() {
    let runtime = runtime();
    let plugin = runtime
        .load(
            raw_spec("raw-paused-unavailable", pause_then_trap()),
            no_clusters(),
        )
        .expect("loads");
    let (req_a, req_b) = (Req::get("/a"), Req::new("POST", "/b"));
    let (mut a_stream, mut b_stream) = (req_a.stream(), req_b.stream());
    let mut a = plugin.new_http_context().expect("context");
    let mut b = plugin.new_http_context().expect("context");
    let (a_result, _) = tokio::join!(
        bounded("a, paused", a.on_request_headers(&mut a_stream, true)),
        async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            b_stream.request_body = b"x".to_vec();
            bounded("b, trapping", b.on_request_body(&mut b_stream, true)).await
        }
    );
    assert!(
        matches!(&a_result, Err(PluginFailure::Unavailable { .. })),
        "the instance failed for another stream: {a_result:?}"
    );
}
