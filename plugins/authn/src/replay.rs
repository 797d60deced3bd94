//! Single use of login `state`s across every instance of the plugin: the set of used states
//! lives in shared data and is updated with compare-and-swap.

use paved_identity::replay::{ReplayGuard, UsedSet};
use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;

/// Shared-data key of the used states.
pub const KEY: &str = "paved.authn.used_states";
/// CAS attempts before giving up (and refusing the login: fail closed).
const ATTEMPTS: u32 = 64;

/// Creates the key if absent, so that every later update is a CAS update (two first writes
/// racing would otherwise lose one).
pub fn init() {
    if let Ok((None, None)) = hostcalls::get_shared_data(KEY) {
        let _ = hostcalls::set_shared_data(KEY, Some(&[]), None);
    }
}

/// The guard over shared data.
pub struct SharedReplay;

impl ReplayGuard for SharedReplay {
    fn first_use(&mut self, id: &str, expires: u64, now: u64) -> bool {
        for _ in 0..ATTEMPTS {
            let Ok((value, cas)) = hostcalls::get_shared_data(KEY) else {
                return false;
            };
            let mut set = UsedSet::decode(value.as_deref().unwrap_or_default());
            if !set.first_use(id, expires, now) {
                return false;
            }
            match hostcalls::set_shared_data(KEY, Some(&set.encode()), cas) {
                Ok(()) => return true,
                Err(Status::CasMismatch) => continue,
                Err(_) => return false,
            }
        }
        false
    }
}
