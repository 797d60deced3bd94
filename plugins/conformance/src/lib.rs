//! `conformance`: the plugin the gateway's Proxy-Wasm conformance suite runs.
//!
//! Written against the official SDK (`proxy-wasm` 0.2), unmodified, so that the host is tested
//! with exactly the calls, argument shapes and `unwrap`s of real plugins. Its configuration
//! (`{"scenario": "<name>", ...}`, see `README.md`) picks one scenario; every scenario makes
//! what it did or read observable over HTTP, in request headers the upstream echoes back or in
//! the response the client sees. An unknown scenario or field fails `proxy_on_configure`.

mod body;
mod config;
mod headers;
mod http_call;
mod local_response;
mod metrics;
mod properties;
mod root_pause;
mod shared;
mod simple;
mod trailers;
mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use log::error;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

use config::Scenario;
use metrics::MetricIds;
use root_pause::Gate;
use shared::QueueHandle;
use simple::VmStart;

proxy_wasm::main! {{
    // Everything reaches the host, which applies its own level (the `log` scenario needs all).
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(Root::new(context_id))
    });
}}

/// What the root context set up for its scenario in `on_configure`, shared with requests.
enum Setup {
    None,
    Queue(Rc<QueueHandle>),
    Tick(Rc<Cell<u64>>),
    RootPause(Rc<Gate>),
    Metrics(MetricIds),
}

struct Root {
    id: u32,
    vm: Rc<VmStart>,
    scenario: Option<Scenario>,
    setup: Setup,
}

impl Root {
    fn new(id: u32) -> Self {
        Self {
            id,
            vm: Rc::default(),
            scenario: None,
            setup: Setup::None,
        }
    }

    /// The root's own part of a scenario: counters, queue, timer, metrics.
    fn set_up(&self, scenario: &Scenario) -> Setup {
        match scenario {
            Scenario::SharedData(config) => {
                util::init_counter(&config.key);
                Setup::None
            }
            Scenario::Queue(config) => {
                util::init_counter(&config.count_key);
                let id = self.register_shared_queue(&config.name);
                let resolved = match self.resolve_shared_queue(&config.vm_id, &config.name) {
                    Some(same) if same == id => "same",
                    Some(_) => "different",
                    None => "not-found",
                };
                Setup::Queue(Rc::new(QueueHandle { id, resolved }))
            }
            Scenario::Tick(config) => {
                util::init_counter(&config.key);
                self.set_tick_period(Duration::from_millis(config.period_ms));
                Setup::Tick(Rc::default())
            }
            Scenario::RootPause(config) => {
                self.set_tick_period(Duration::from_millis(config.period_ms));
                Setup::RootPause(Rc::default())
            }
            Scenario::Metrics(config) => Setup::Metrics(MetricIds::define(config)),
            Scenario::Lifecycle(config) => {
                util::init_counter(&config.log_key);
                util::init_counter(&config.done_key);
                Setup::None
            }
            _ => Setup::None,
        }
    }
}

impl Context for Root {}

impl RootContext for Root {
    fn on_vm_start(&mut self, vm_configuration_size: usize) -> bool {
        // Kept for the `vm_config` scenario: the scenario is not known before on_configure.
        let bytes = self.get_vm_configuration();
        self.vm = Rc::new(VmStart {
            size: vm_configuration_size,
            bytes,
        });
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let Some(bytes) = self.get_plugin_configuration() else {
            error!("conformance: no plugin configuration");
            return false;
        };
        let scenario: Scenario = match serde_json::from_slice(&bytes) {
            Ok(scenario) => scenario,
            Err(err) => {
                error!("conformance: bad configuration: {err}");
                return false;
            }
        };
        self.setup = self.set_up(&scenario);
        self.scenario = Some(scenario);
        true
    }

    fn on_tick(&mut self) {
        match (&self.scenario, &self.setup) {
            (Some(Scenario::Tick(config)), Setup::Tick(local)) => {
                local.set(local.get() + 1);
                util::add_to_counter(&config.key, 1);
            }
            (Some(Scenario::RootPause(config)), Setup::RootPause(gate)) => {
                gate.tick(self.id, config.ticks);
            }
            _ => {}
        }
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        if let Some(Scenario::Queue(config)) = &self.scenario {
            shared::drain_queue(config, self, queue_id);
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // The SDK panics on None; a host that creates requests for a plugin whose
        // on_configure failed gets a pass-through context instead.
        let Some(scenario) = &self.scenario else {
            return Some(Box::new(PassThrough));
        };
        Some(match (scenario, &self.setup) {
            (Scenario::Headers(config), _) => Box::new(headers::Headers::new(config.clone())),
            (Scenario::LocalResponse(config), _) => {
                Box::new(local_response::LocalResponse::new(config.clone()))
            }
            (Scenario::RequestBody(config), _) => Box::new(body::RequestBody::new(config.clone())),
            (Scenario::ResponseBody(config), _) => {
                Box::new(body::ResponseBody::new(config.clone()))
            }
            (Scenario::Trailers {}, _) => Box::<trailers::Trailers>::default(),
            (Scenario::HttpCall(config), _) => Box::new(http_call::HttpCall::new(config.clone())),
            (Scenario::SharedData(config), _) => {
                Box::new(shared::SharedData::new(config.clone(), context_id))
            }
            (Scenario::Queue(config), Setup::Queue(queue)) => {
                Box::new(shared::Queue::new(config.clone(), queue.clone()))
            }
            (Scenario::Tick(config), Setup::Tick(local)) => {
                Box::new(shared::Tick::new(config.clone(), local.clone()))
            }
            (Scenario::RootPause(_), Setup::RootPause(gate)) => {
                Box::new(root_pause::RootPause::new(gate.clone(), context_id))
            }
            (Scenario::Metrics(_), Setup::Metrics(ids)) => Box::new(metrics::Metrics::new(*ids)),
            (Scenario::Properties(config), _) => {
                Box::new(properties::Properties::new(config.clone()))
            }
            (Scenario::Log {}, _) => Box::<simple::Log>::default(),
            (Scenario::Time {}, _) => Box::<simple::Time>::default(),
            (Scenario::VmConfig {}, _) => Box::new(simple::VmConfig::new(self.vm.clone())),
            (Scenario::Lifecycle(config), _) => {
                Box::new(shared::Lifecycle::new(config.clone(), context_id, self.id))
            }
            (Scenario::Reset {}, _) => Box::new(simple::Reset),
            // set_up always pairs these scenarios with their setup.
            (
                Scenario::Queue(_)
                | Scenario::Tick(_)
                | Scenario::RootPause(_)
                | Scenario::Metrics(_),
                _,
            ) => {
                unreachable!("scenario without its setup")
            }
        })
    }
}

/// Lets everything through; see `create_http_context`.
struct PassThrough;

impl Context for PassThrough {}

impl HttpContext for PassThrough {}
