//! Keys the configuration does not give: generated once per gateway process and kept in
//! shared data, so every instance of the plugin (same configuration) seals and signs with the
//! same ones. Sessions then survive across instances but not across restarts or replicas;
//! production configurations name their keys (`session_key`, `assertion_key`).

use log::warn;
use paved_identity::assertion::{export_key, generate_key, parse_signing_key};
use paved_identity::jwt::SigningKey;
use paved_identity::random::OsRng;
use paved_identity::seal::SealKey;
use proxy_wasm::hostcalls;
use serde_json::{Value, json};

const KEY: &str = "paved.authn.generated_keys.v1";

/// The process's generated keys, creating them if no instance has yet.
pub fn generated() -> (SealKey, SigningKey) {
    if let Some(keys) = read() {
        return keys;
    }
    let session = SealKey::generate(&mut OsRng);
    let assertion = generate_key(&mut OsRng);
    let doc = json!({"session": session.to_base64(), "assertion": export_key(&assertion).as_str()});
    // Two instances starting at once may both write; both then read back the same value
    // below (the last write), so they agree.
    if let Err(status) = hostcalls::set_shared_data(KEY, Some(doc.to_string().as_bytes()), None) {
        warn!("authn: storing generated keys: {status:?}");
    }
    read().unwrap_or((session, assertion))
}

fn read() -> Option<(SealKey, SigningKey)> {
    let (value, _) = hostcalls::get_shared_data(KEY).ok()?;
    let doc: Value = serde_json::from_slice(&value?).ok()?;
    let session = SealKey::from_base64(doc.get("session")?.as_str()?).ok()?;
    let assertion = parse_signing_key(doc.get("assertion")?.as_str()?).ok()?;
    Some((session, assertion))
}
