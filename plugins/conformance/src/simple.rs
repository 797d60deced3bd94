//! Scenarios of one host function each: `log`, `time`, `vm_config` and `reset`.

use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{debug, error, info, trace, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel};

use crate::util::{header_safe, header_safe_or_absent};

/// `log`: one message at every level, then `proxy_get_log_level`.
#[derive(Default)]
pub struct Log {
    level: Option<LogLevel>,
}

impl Context for Log {}

impl HttpContext for Log {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let path = self
            .get_http_request_header_bytes(":path")
            .unwrap_or_default();
        let path = header_safe(&path);
        trace!("conformance log trace {path}");
        debug!("conformance log debug {path}");
        info!("conformance log info {path}");
        warn!("conformance log warn {path}");
        error!("conformance log error {path}");
        // The `log` crate has no level above error.
        hostcalls::log(
            LogLevel::Critical,
            &format!("conformance log critical {path}"),
        )
        .expect("log");
        self.level = Some(hostcalls::get_log_level().expect("get_log_level"));
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.set_http_response_header("x-logged", Some("6"));
        if let Some(level) = self.level {
            self.set_http_response_header("x-log-level", Some(&(level as u32).to_string()));
        }
        Action::Continue
    }
}

/// `time`: the host's clock, through the Proxy-Wasm call and through WASI.
#[derive(Default)]
pub struct Time {
    proxy_ns: u128,
    wasi_ns: u128,
}

impl Context for Time {}

impl HttpContext for Time {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let since_epoch =
            |time: SystemTime| time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        self.proxy_ns = since_epoch(self.get_current_time());
        // std's clock is WASI `clock_time_get(REALTIME)`.
        self.wasi_ns = since_epoch(SystemTime::now());
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.set_http_response_header("x-time-ns", Some(&self.proxy_ns.to_string()));
        self.set_http_response_header("x-time-wasi-ns", Some(&self.wasi_ns.to_string()));
        Action::Continue
    }
}

/// What `proxy_on_vm_start` received: the size argument and the bytes read with it.
#[derive(Default)]
pub struct VmStart {
    pub size: usize,
    pub bytes: Option<Vec<u8>>,
}

/// `vm_config`: reports [`VmStart`].
pub struct VmConfig {
    vm: Rc<VmStart>,
}

impl VmConfig {
    pub fn new(vm: Rc<VmStart>) -> Self {
        Self { vm }
    }
}

impl Context for VmConfig {}

impl HttpContext for VmConfig {
    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.set_http_response_header("x-vm-config-size", Some(&self.vm.size.to_string()));
        let bytes = header_safe_or_absent(self.vm.bytes.as_deref());
        self.set_http_response_header("x-vm-config", Some(&bytes));
        Action::Continue
    }
}

/// `reset`: closes the request stream with `proxy_close_stream` instead of answering.
pub struct Reset;

impl Context for Reset {}

impl HttpContext for Reset {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.reset_http_request();
        Action::Pause
    }
}
