//! `metrics`: a counter, a gauge and a histogram defined by the root context, updated by every
//! request and read back with `proxy_get_metric`.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MetricType, Status};

use crate::config::MetricsConfig;
use crate::util::status_name;

/// A metric id no host hands out (ids are small and dense in practice).
const UNKNOWN_METRIC: u32 = u32::MAX;

#[derive(Clone, Copy)]
pub struct MetricIds {
    counter: u32,
    gauge: u32,
    histogram: u32,
    /// Whether defining the counter a second time returned the same id, as it must: every
    /// instance of the plugin defines its metrics, and they must all update one series.
    redefined_same: bool,
}

impl MetricIds {
    pub fn define(config: &MetricsConfig) -> Self {
        let define =
            |kind, name: &str| hostcalls::define_metric(kind, name).expect("define_metric");
        let counter = define(MetricType::Counter, &config.counter);
        Self {
            counter,
            gauge: define(MetricType::Gauge, &config.gauge),
            histogram: define(MetricType::Histogram, &config.histogram),
            redefined_same: define(MetricType::Counter, &config.counter) == counter,
        }
    }
}

fn render(value: Result<u64, Status>) -> String {
    value.map_or_else(
        |status| status_name(status).to_string(),
        |value| value.to_string(),
    )
}

pub struct Metrics {
    ids: MetricIds,
    /// How the host answered an attempt to decrement the counter.
    decrement: &'static str,
}

impl Metrics {
    pub fn new(ids: MetricIds) -> Self {
        Self {
            ids,
            decrement: "not-run",
        }
    }
}

impl Context for Metrics {}

impl HttpContext for Metrics {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let ids = self.ids;
        hostcalls::increment_metric(ids.counter, 1).expect("increment counter");
        hostcalls::increment_metric(ids.gauge, 1).expect("increment gauge");
        let path_len = self
            .get_http_request_header_bytes(":path")
            .map_or(0, |path| path.len());
        hostcalls::record_metric(ids.histogram, path_len as u64).expect("record histogram");
        // Counters only go up: the spec wants BAD_ARGUMENT here.
        self.decrement = match hostcalls::increment_metric(ids.counter, -1) {
            Ok(()) => "ok",
            Err(status) => status_name(status),
        };
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let ids = self.ids;
        let reports = [
            (
                "x-metric-counter",
                render(hostcalls::get_metric(ids.counter)),
            ),
            ("x-metric-gauge", render(hostcalls::get_metric(ids.gauge))),
            (
                "x-metric-histogram",
                render(hostcalls::get_metric(ids.histogram)),
            ),
            (
                "x-metric-unknown",
                render(hostcalls::get_metric(UNKNOWN_METRIC)),
            ),
            ("x-metric-counter-decrement", self.decrement.to_string()),
            (
                "x-metric-redefine",
                if ids.redefined_same {
                    "same"
                } else {
                    "different"
                }
                .to_string(),
            ),
        ];
        for (name, value) in reports {
            self.set_http_response_header(name, Some(&value));
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        // The gauge counts requests in flight.
        hostcalls::increment_metric(self.ids.gauge, -1).expect("decrement gauge");
    }
}
