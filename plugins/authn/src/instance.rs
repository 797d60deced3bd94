//! The state one plugin instance shares between its root context and its requests.

use std::cell::RefCell;
use std::collections::HashMap;

use log::{info, warn};
use paved_identity::authn::{
    Authn, CallResponse, ConfiguredKeys, Env, Need, Outcome, Pending, Resume,
};
use paved_identity::provider::{ProviderCache, ProviderSnapshot, Schedule};
use paved_identity::random::OsRng;
use paved_identity::waitlist::WaitList;
use paved_model::plugin_config::AuthnConfig;
use proxy_wasm::hostcalls;

use crate::host::OwnedRequest;
use crate::replay::SharedReplay;
use crate::{keys, replay};

/// Shared-data key of the provider's documents, so instances fetch them once between them.
const PROVIDER_KEY: &str = "paved.authn.provider";

pub struct Instance {
    pub authn: Authn,
    pub cluster: String,
    pub provider: RefCell<ProviderCache>,
    /// Requests paused for the provider, with what they need and how to go on.
    pub waiting: RefCell<WaitList<(Need, Resume)>>,
    /// `Set-Cookie` values for the responses of requests let through (refreshed sessions).
    pub response_cookies: RefCell<HashMap<u32, Vec<String>>>,
    /// Requests paused on a call they made themselves, with when it started (ms): the root
    /// answers them if the host never delivers the call's answer.
    pub calls_in_flight: RefCell<HashMap<u32, u64>>,
}

impl Instance {
    /// Builds the instance from the plugin configuration; `None` (logged) if unusable.
    pub fn configure(bytes: &[u8]) -> Option<Instance> {
        let config: AuthnConfig = match serde_json::from_slice(bytes) {
            Ok(c) => c,
            Err(err) => {
                warn!("authn: configuration is not valid JSON for authn: {err}");
                return None;
            }
        };
        let configured = match ConfiguredKeys::from_config(&config) {
            Ok(k) => k,
            Err(err) => {
                warn!("authn: {err}");
                return None;
            }
        };
        let (session, assertion) = match (configured.session, configured.assertion) {
            (Some(s), Some(a)) => (s, a),
            (s, a) => {
                warn!(
                    "authn: app {:?}: no session_key or assertion_key configured; using keys \
                     generated for this gateway process (sessions end when it restarts)",
                    config.app
                );
                let (gen_s, gen_a) = keys::generated();
                (s.unwrap_or(gen_s), a.unwrap_or(gen_a))
            }
        };
        let authn = match Authn::new(&config, &session, &configured.previous_sessions, assertion) {
            Ok(a) => a,
            Err(err) => {
                warn!("authn: {err}");
                return None;
            }
        };
        replay::init();
        let s = authn.settings();
        let schedule = Schedule {
            refresh_secs: s.jwks_refresh_secs,
            min_key_refresh_secs: s.jwks_min_refresh_secs,
        };
        let instance = Instance {
            cluster: s.idp_cluster.clone(),
            provider: RefCell::new(ProviderCache::new(&s.issuer, schedule)),
            waiting: RefCell::new(WaitList::new(s.max_waiting, s.max_wait_ms)),
            response_cookies: RefCell::new(HashMap::new()),
            calls_in_flight: RefCell::new(HashMap::new()),
            authn,
        };
        instance.adopt_shared();
        Some(instance)
    }

    /// Decides a request of the effective context.
    pub fn decide(&self, req: &OwnedRequest, now_secs: u64) -> Outcome {
        let provider = self.provider.borrow();
        let mut rng = OsRng;
        let mut replay = SharedReplay;
        let mut env = Env {
            now: now_secs,
            rng: &mut rng,
            replay: &mut replay,
            key_refresh_allowed: provider.key_refresh_allowed(now_secs),
        };
        self.authn
            .on_request(&req.as_request(), provider.provider(), &mut env)
    }

    /// Continues a step with the provider's answer.
    pub fn continue_call(
        &self,
        pending: Pending,
        response: CallResponse,
        now_secs: u64,
    ) -> Outcome {
        let provider = self.provider.borrow();
        let mut rng = OsRng;
        let mut replay = SharedReplay;
        let mut env = Env {
            now: now_secs,
            rng: &mut rng,
            replay: &mut replay,
            key_refresh_allowed: provider.key_refresh_allowed(now_secs),
        };
        self.authn
            .on_call_response(pending, response, provider.provider(), &mut env)
    }

    /// Takes the provider's documents from shared data if another instance fetched newer
    /// ones.
    pub fn adopt_shared(&self) -> bool {
        let Ok((Some(bytes), _)) = hostcalls::get_shared_data(PROVIDER_KEY) else {
            return false;
        };
        let Ok(snapshot) = serde_json::from_slice::<ProviderSnapshot>(&bytes) else {
            return false;
        };
        let adopted = self.provider.borrow_mut().adopt(&snapshot);
        if adopted {
            info!("authn: using the provider documents another instance fetched");
        }
        adopted
    }

    /// Publishes freshly fetched documents for the other instances.
    pub fn share(&self) {
        let Some(snapshot) = self.provider.borrow().snapshot() else {
            return;
        };
        if let Ok(bytes) = serde_json::to_vec(&snapshot)
            && let Err(status) = hostcalls::set_shared_data(PROVIDER_KEY, Some(&bytes), None)
        {
            warn!("authn: sharing the provider documents: {status:?}");
        }
    }
}
