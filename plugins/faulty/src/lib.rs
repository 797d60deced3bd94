//! `faulty`: a plugin that misbehaves on purpose, for the host's failure-mode tests.
//!
//! Its configuration (`{"scenario": "<name>", ...}`, see `README.md`) picks the fault: a trap,
//! an endless loop, memory exhaustion, host calls with pointers outside its memory, a header
//! of a mebibyte, or a failing `proxy_on_configure`. The host must contain each one: deny the
//! request (or reject the plugin), log it, and keep serving everything else.
//!
//! Returning an action other than Continue (0) or Pause (1) is not among the faults: the SDK
//! exports `proxy_on_request_headers` itself and its `Action` enum cannot hold another value,
//! so an SDK-built plugin cannot do it.

use std::rc::Rc;

use log::error;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde::Deserialize;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

const MIB: usize = 1 << 20;

fn one_mib() -> usize {
    MIB
}

#[derive(Debug, Deserialize)]
#[serde(tag = "scenario", rename_all = "snake_case", deny_unknown_fields)]
enum Fault {
    /// Panics; with `panic = "abort"` the panic is a wasm trap (`unreachable`).
    Trap {
        #[serde(default)]
        phase: Phase,
    },
    /// Never returns: only the host's epoch deadline stops it.
    Loop {
        #[serde(default)]
        phase: Phase,
    },
    /// Allocates `chunk_bytes` at a time until `memory.grow` fails; the allocation failure
    /// aborts, which is a trap.
    Oom {
        #[serde(default)]
        phase: Phase,
        #[serde(default = "one_mib")]
        chunk_bytes: usize,
    },
    /// Calls host functions directly with bad pointers, lengths and enum values, and answers
    /// 200 with the statuses they returned.
    BadPointer {
        #[serde(default)]
        call: Probe,
    },
    /// Adds a header of `bytes` bytes to the request (or the response).
    HugeHeader {
        #[serde(default = "one_mib")]
        bytes: usize,
        #[serde(default)]
        target: Target,
    },
    ConfigureFails {},
    ConfigureTrap {},
}

/// The callback in which a fault happens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Phase {
    #[default]
    RequestHeaders,
    RequestBody,
    ResponseHeaders,
    ResponseBody,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Target {
    #[default]
    Request,
    Response,
}

#[derive(Default)]
struct Root {
    fault: Option<Rc<Fault>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let fault: Fault = match serde_json::from_slice(&bytes) {
            Ok(fault) => fault,
            Err(err) => {
                error!("faulty: bad configuration: {err}");
                return false;
            }
        };
        match fault {
            Fault::ConfigureFails {} => return false,
            Fault::ConfigureTrap {} => panic!("faulty: trap in on_configure, on purpose"),
            _ => {}
        }
        self.fault = Some(Rc::new(fault));
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Faulty {
            fault: self.fault.clone(),
        }))
    }
}

struct Faulty {
    /// `None` only if the host created a request for a plugin whose `on_configure` failed.
    fault: Option<Rc<Fault>>,
}

impl Faulty {
    /// Misbehaves if the configured fault belongs to `now`.
    fn act(&self, now: Phase) -> Action {
        let Some(fault) = self.fault.as_deref() else {
            return Action::Continue;
        };
        match *fault {
            Fault::Trap { phase } if phase == now => panic!("faulty: trap in {now:?}, on purpose"),
            Fault::Loop { phase } if phase == now => spin(),
            Fault::Oom { phase, chunk_bytes } if phase == now => exhaust_memory(chunk_bytes),
            Fault::BadPointer { call } if now == Phase::RequestHeaders => {
                let results: Vec<(Probe, String)> = Probe::ALL
                    .iter()
                    .map(|&probe| (probe, run(probe).to_string()))
                    .collect();
                let names: Vec<String> = results.iter().map(|(probe, _)| probe.header()).collect();
                let mut headers: Vec<(&str, &str)> = Vec::with_capacity(results.len() + 1);
                if let Some((_, status)) = results.iter().find(|(probe, _)| *probe == call) {
                    headers.push(("x-status", status));
                }
                headers.extend(
                    names
                        .iter()
                        .zip(&results)
                        .map(|(name, (_, status))| (name.as_str(), status.as_str())),
                );
                self.send_http_response(200, headers, Some(b"bad_pointer probes done\n"));
                Action::Pause
            }
            Fault::HugeHeader { bytes, target } => {
                match (target, now) {
                    (Target::Request, Phase::RequestHeaders) => {
                        self.add_http_request_header("x-huge", &huge(bytes));
                    }
                    (Target::Response, Phase::ResponseHeaders) => {
                        self.add_http_response_header("x-huge", &huge(bytes));
                    }
                    _ => {}
                }
                Action::Continue
            }
            _ => Action::Continue,
        }
    }
}

impl Context for Faulty {}

impl HttpContext for Faulty {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.act(Phase::RequestHeaders)
    }

    fn on_http_request_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        self.act(Phase::RequestBody)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.act(Phase::ResponseHeaders)
    }

    fn on_http_response_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        self.act(Phase::ResponseBody)
    }
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        // black_box: the loop must really run, not be folded into a trap or removed.
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn exhaust_memory(chunk_bytes: usize) -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // A non-zero fill touches every page, so none of it can stay virtual.
        hoard.push(vec![0xa5; chunk_bytes.max(1)]);
        std::hint::black_box(&hoard);
    }
}

fn huge(bytes: usize) -> String {
    "a".repeat(bytes)
}

/// Imports of the host functions the probes call, declared with plain integers so that any
/// pointer, length or enum value can be passed, and any status read back (the SDK's `Status`
/// cannot hold `INVALID_MEMORY_ACCESS`). Same wasm signatures as the SDK's own declarations.
mod raw {
    #[link(wasm_import_module = "env")]
    extern "C" {
        pub fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
        pub fn proxy_get_header_map_value(
            map_type: u32,
            key_data: *const u8,
            key_size: usize,
            return_value_data: *mut *mut u8,
            return_value_size: *mut usize,
        ) -> u32;
        pub fn proxy_set_header_map_pairs(
            map_type: u32,
            map_data: *const u8,
            map_size: usize,
        ) -> u32;
        pub fn proxy_get_buffer_bytes(
            buffer_type: u32,
            start: usize,
            max_size: usize,
            return_buffer_data: *mut *mut u8,
            return_buffer_size: *mut usize,
        ) -> u32;
        pub fn proxy_get_shared_data(
            key_data: *const u8,
            key_size: usize,
            return_value_data: *mut *mut u8,
            return_value_size: *mut usize,
            return_cas: *mut u32,
        ) -> u32;
        pub fn proxy_http_call(
            upstream_data: *const u8,
            upstream_size: usize,
            headers_data: *const u8,
            headers_size: usize,
            body_data: *const u8,
            body_size: usize,
            trailers_data: *const u8,
            trailers_size: usize,
            timeout: u32,
            return_token: *mut u32,
        ) -> u32;
        pub fn proxy_send_local_response(
            status_code: u32,
            status_code_details_data: *const u8,
            status_code_details_size: usize,
            body_data: *const u8,
            body_size: usize,
            headers_data: *const u8,
            headers_size: usize,
            grpc_status: i32,
        ) -> u32;
    }
}

/// An address far past any memory the host lets a plugin have (wasm32 tops out at 4 GiB).
const OUT_OF_BOUNDS: usize = 0xffff_0000;
const MESSAGE: &[u8] = b"faulty: probe";
const PATH: &[u8] = b":path";
const REQUEST_HEADERS: u32 = 0;
const UNKNOWN_ENUM: u32 = 99;

/// One bad host call. The comment on each variant is the status the spec asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Probe {
    /// 6: the message lies outside memory.
    #[default]
    LogOob,
    /// 6: a valid pointer with a length that wraps around the address space.
    LogOverflow,
    /// 2: log level 99.
    LogLevel,
    /// 6: the key lies outside memory.
    HeaderKeyOob,
    /// 6: the return pointers lie outside memory.
    HeaderReturnOob,
    /// 2: map type 99.
    HeaderMapType,
    /// 2: a serialized map that claims 65535 pairs in 8 bytes.
    SetMapMalformed,
    /// 2: buffer type 99.
    BufferType,
    /// 6: the shared data key lies outside memory.
    SharedKeyOob,
    /// 6: the upstream name lies outside memory.
    HttpCallOob,
    /// 6: the local response body lies outside memory.
    LocalResponseOob,
}

impl Probe {
    /// Every probe, in the order they run.
    const ALL: [Probe; 11] = [
        Probe::LogOob,
        Probe::LogOverflow,
        Probe::LogLevel,
        Probe::HeaderKeyOob,
        Probe::HeaderReturnOob,
        Probe::HeaderMapType,
        Probe::BufferType,
        Probe::SharedKeyOob,
        Probe::HttpCallOob,
        Probe::LocalResponseOob,
        // Last: a host that wrongly accepted it would have replaced the request headers.
        Probe::SetMapMalformed,
    ];

    /// `x-status-` and the probe's name in kebab case: `HeaderKeyOob` → `x-status-header-key-oob`.
    fn header(self) -> String {
        let mut name = String::from("x-status");
        for c in format!("{self:?}").chars() {
            if c.is_ascii_uppercase() {
                name.push('-');
            }
            name.push(c.to_ascii_lowercase());
        }
        name
    }
}

/// Makes the bad call `probe` stands for and returns the host's raw status.
fn run(probe: Probe) -> u32 {
    let oob_const = OUT_OF_BOUNDS as *const u8;
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    let mut token: u32 = 0;
    let mut cas: u32 = 0;
    // SAFETY: the host only reads and writes wasm memory through bounds checks; the
    // pointers into our own memory (locals and constants) are valid for what it may write.
    unsafe {
        match probe {
            Probe::LogOob => raw::proxy_log(2, oob_const, 16),
            Probe::LogOverflow => raw::proxy_log(2, MESSAGE.as_ptr(), usize::MAX),
            Probe::LogLevel => raw::proxy_log(UNKNOWN_ENUM, MESSAGE.as_ptr(), MESSAGE.len()),
            Probe::HeaderKeyOob => raw::proxy_get_header_map_value(
                REQUEST_HEADERS,
                oob_const,
                8,
                &raw mut data,
                &raw mut size,
            ),
            Probe::HeaderReturnOob => raw::proxy_get_header_map_value(
                REQUEST_HEADERS,
                PATH.as_ptr(),
                PATH.len(),
                OUT_OF_BOUNDS as *mut *mut u8,
                (OUT_OF_BOUNDS + 8) as *mut usize,
            ),
            Probe::HeaderMapType => raw::proxy_get_header_map_value(
                UNKNOWN_ENUM,
                PATH.as_ptr(),
                PATH.len(),
                &raw mut data,
                &raw mut size,
            ),
            Probe::SetMapMalformed => {
                let lying: [u8; 8] = [0xff, 0xff, 0, 0, 1, 0, 0, 0];
                raw::proxy_set_header_map_pairs(REQUEST_HEADERS, lying.as_ptr(), lying.len())
            }
            Probe::BufferType => {
                raw::proxy_get_buffer_bytes(UNKNOWN_ENUM, 0, 16, &raw mut data, &raw mut size)
            }
            Probe::SharedKeyOob => raw::proxy_get_shared_data(
                oob_const,
                16,
                &raw mut data,
                &raw mut size,
                &raw mut cas,
            ),
            Probe::HttpCallOob => {
                let no_map = [0u8; 4];
                raw::proxy_http_call(
                    oob_const,
                    16,
                    no_map.as_ptr(),
                    4,
                    std::ptr::null(),
                    0,
                    no_map.as_ptr(),
                    4,
                    1000,
                    &raw mut token,
                )
            }
            Probe::LocalResponseOob => raw::proxy_send_local_response(
                200,
                std::ptr::null(),
                0,
                oob_const,
                16,
                std::ptr::null(),
                0,
                -1,
            ),
        }
    }
}
