//! The host functions of Proxy-Wasm ABI v0.2.1, as imports of module `env`.
//!
//! Each returns the status the spec names; a plugin misusing the ABI gets an error status,
//! never the gateway's crash. Resource limits (body and header sizes) are enforced by
//! trapping: the plugin's request is then denied, which is the fail-closed outcome.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmtime::Linker;

use crate::abi::{self, BufferType, HostResult, LogLevel, MapType, MetricType, Status, StreamType};
use crate::guest::{self, GuestCaller, read, read_str, return_bytes, status, write, write_u32};
use crate::headers::HeaderMap;
use crate::http_call::HttpCallRequest;
use crate::properties::{self, PluginFacts};
use crate::shared::QueueOwner;
use crate::state::{Effect, HostState};
use crate::stream::LocalResponse;

type R = wasmtime::Result<i32>;

/// Adds every `proxy_*` import to the linker.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    logging_and_time(linker)?;
    buffers(linker)?;
    header_maps(linker)?;
    properties_fns(linker)?;
    shared_data_and_queues(linker)?;
    streams(linker)?;
    http_calls(linker)?;
    metrics(linker)?;
    unsupported(linker)?;
    Ok(())
}

fn logging_and_time(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_log",
        |caller: GuestCaller<'_>, level: i32, ptr: i32, len: i32| -> R {
            let Some(level) = LogLevel::from_raw(level) else {
                return Ok(Status::BadArgument as i32);
            };
            if level < caller.data().env.log_level {
                return Ok(0);
            }
            let message = match read(&caller, ptr, len) {
                Ok(m) => m,
                Err(s) => return Ok(s as i32),
            };
            let message = String::from_utf8_lossy(&message);
            let plugin = caller.data().env.name.as_str();
            match level {
                LogLevel::Trace => tracing::trace!(plugin, message = %message, "plugin log"),
                LogLevel::Debug => tracing::debug!(plugin, message = %message, "plugin log"),
                LogLevel::Info => tracing::info!(plugin, message = %message, "plugin log"),
                LogLevel::Warn => tracing::warn!(plugin, message = %message, "plugin log"),
                LogLevel::Error | LogLevel::Critical => {
                    tracing::error!(plugin, message = %message, "plugin log")
                }
            }
            Ok(0)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_log_level",
        |mut caller: GuestCaller<'_>, ret: i32| -> R {
            let level = caller.data().env.log_level as u32;
            Ok(status(write_u32(&mut caller, ret, level)))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut caller: GuestCaller<'_>, ret: i32| -> R {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            Ok(status(write(&mut caller, ret, &now.to_le_bytes())))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut caller: GuestCaller<'_>, period: i32| -> R {
            let state = caller.data_mut();
            if state.effective_context != state.root_context_id {
                return Ok(Status::BadArgument as i32);
            }
            state
                .effects
                .push(Effect::TickPeriod(Duration::from_millis(u64::from(
                    period as u32,
                ))));
            Ok(0)
        },
    )?;
    Ok(())
}

/// The bytes of a readable buffer, for the effective context.
fn buffer_bytes(state: &HostState, buffer: BufferType) -> HostResult<&[u8]> {
    match buffer {
        BufferType::PluginConfiguration => Ok(&state.env.configuration),
        BufferType::VmConfiguration => Ok(&state.env.vm_configuration),
        BufferType::HttpRequestBody => state
            .stream()
            .map(|s| s.request_body.as_slice())
            .ok_or(Status::NotFound),
        BufferType::HttpResponseBody => state
            .stream()
            .map(|s| s.response_body.as_slice())
            .ok_or(Status::NotFound),
        BufferType::HttpCallResponseBody => state
            .call_response
            .as_ref()
            .map(|r| r.body.as_slice())
            .ok_or(Status::NotFound),
        _ => Err(Status::NotFound),
    }
}

fn buffers(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut caller: GuestCaller<'_>,
         buffer: i32,
         start: i32,
         max: i32,
         ret_ptr: i32,
         ret_size: i32|
         -> R {
            let Some(buffer) = BufferType::from_raw(buffer) else {
                return Ok(Status::BadArgument as i32);
            };
            let bytes = match buffer_bytes(caller.data(), buffer) {
                Ok(all) => {
                    let start = (start as u32 as usize).min(all.len());
                    let end = start.saturating_add(max as u32 as usize).min(all.len());
                    all[start..end].to_vec()
                }
                Err(s) => return Ok(s as i32),
            };
            Ok(status(return_bytes(
                &mut caller,
                &bytes,
                ret_ptr,
                ret_size,
            )?))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut caller: GuestCaller<'_>,
         buffer: i32,
         start: i32,
         size: i32,
         ptr: i32,
         len: i32|
         -> R {
            let Some(buffer) = BufferType::from_raw(buffer) else {
                return Ok(Status::BadArgument as i32);
            };
            let data = match read(&caller, ptr, len) {
                Ok(d) => d,
                Err(s) => return Ok(s as i32),
            };
            let max = caller.data().env.limits.max_body_bytes;
            let Some(stream) = caller.data_mut().stream_mut() else {
                return Ok(Status::NotFound as i32);
            };
            let body = match buffer {
                BufferType::HttpRequestBody => &mut stream.request_body,
                BufferType::HttpResponseBody => &mut stream.response_body,
                _ => return Ok(Status::NotFound as i32),
            };
            // Envoy's semantics: replace [start, start + size), clamped; start past the end
            // appends, size 0 at 0 prepends.
            let start = (start as u32 as usize).min(body.len());
            let end = start.saturating_add(size as u32 as usize).min(body.len());
            if body.len() - (end - start) + data.len() > max {
                wasmtime::bail!("plugin set a body larger than its limit of {max} bytes");
            }
            body.splice(start..end, data);
            Ok(0)
        },
    )?;
    Ok(())
}

/// The header map of the effective context (or of the HTTP call response being delivered).
fn map(state: &HostState, map: MapType) -> HostResult<&HeaderMap> {
    match map {
        MapType::HttpCallResponseHeaders => state
            .call_response
            .as_ref()
            .map(|r| &r.headers)
            .ok_or(Status::NotFound),
        MapType::HttpCallResponseTrailers => state
            .call_response
            .as_ref()
            .map(|r| &r.trailers)
            .ok_or(Status::NotFound),
        _ => {
            let stream = state.stream().ok_or(Status::NotFound)?;
            match map {
                MapType::HttpRequestHeaders => Ok(&stream.request_headers),
                MapType::HttpRequestTrailers => Ok(&stream.request_trailers),
                MapType::HttpResponseHeaders => Ok(&stream.response_headers),
                MapType::HttpResponseTrailers => Ok(&stream.response_trailers),
                _ => Err(Status::NotFound),
            }
        }
    }
}

/// A writable header map of the effective context; call response maps are read-only.
fn map_mut(state: &mut HostState, map: MapType) -> HostResult<&mut HeaderMap> {
    let stream = state.stream_mut().ok_or(Status::NotFound)?;
    match map {
        MapType::HttpRequestHeaders => Ok(&mut stream.request_headers),
        MapType::HttpRequestTrailers => Ok(&mut stream.request_trailers),
        MapType::HttpResponseHeaders => Ok(&mut stream.response_headers),
        MapType::HttpResponseTrailers => Ok(&mut stream.response_trailers),
        _ => Err(Status::NotFound),
    }
}

/// Header names are tokens (or pseudo-headers); values must not smuggle in line breaks.
fn valid_header(name: &str, value: &[u8]) -> bool {
    let name_ok = {
        let bare = name.strip_prefix(':').unwrap_or(name);
        !bare.is_empty()
            && bare
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    name_ok && !value.iter().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

/// Applies an edit to a writable map, enforcing header validity and the size limit.
fn edit_map(
    caller: &mut GuestCaller<'_>,
    map_type: i32,
    key: (i32, i32),
    value: Option<(i32, i32)>,
    edit: fn(&mut HeaderMap, &str, Vec<u8>),
) -> R {
    let Some(map_type) = MapType::from_raw(map_type) else {
        return Ok(Status::BadArgument as i32);
    };
    let key = match read_str(caller, key.0, key.1) {
        Ok(k) => k.to_ascii_lowercase(),
        Err(s) => return Ok(s as i32),
    };
    let value = match value.map(|(p, l)| read(caller, p, l)).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(s) => return Ok(s as i32),
    };
    if !valid_header(&key, &value) {
        return Ok(Status::BadArgument as i32);
    }
    let limit = caller.data().env.limits.max_header_bytes;
    let map = match map_mut(caller.data_mut(), map_type) {
        Ok(m) => m,
        Err(s) => return Ok(s as i32),
    };
    edit(map, &key, value);
    if map.byte_size() > limit {
        wasmtime::bail!("plugin grew a header map past its limit of {limit} bytes");
    }
    Ok(0)
}

fn header_maps(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut caller: GuestCaller<'_>, map_type: i32, ret_ptr: i32, ret_size: i32| -> R {
            let Some(map_type) = MapType::from_raw(map_type) else {
                return Ok(Status::BadArgument as i32);
            };
            let encoded = match map(caller.data(), map_type) {
                Ok(m) => m.encode(),
                Err(s) => return Ok(s as i32),
            };
            Ok(status(return_bytes(
                &mut caller,
                &encoded,
                ret_ptr,
                ret_size,
            )?))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut caller: GuestCaller<'_>, map_type: i32, ptr: i32, len: i32| -> R {
            let Some(map_type) = MapType::from_raw(map_type) else {
                return Ok(Status::BadArgument as i32);
            };
            let pairs = match read(&caller, ptr, len).and_then(|raw| abi::decode_pairs(&raw)) {
                Ok(p) => p,
                Err(s) => return Ok(s as i32),
            };
            let mut new_map = HeaderMap::new();
            for (name, value) in pairs {
                let Ok(name) = String::from_utf8(name) else {
                    return Ok(Status::BadArgument as i32);
                };
                if !valid_header(&name, &value) {
                    return Ok(Status::BadArgument as i32);
                }
                new_map.add(&name, value);
            }
            let limit = caller.data().env.limits.max_header_bytes;
            if new_map.byte_size() > limit {
                wasmtime::bail!("plugin set a header map past its limit of {limit} bytes");
            }
            match map_mut(caller.data_mut(), map_type) {
                Ok(m) => {
                    *m = new_map;
                    Ok(0)
                }
                Err(s) => Ok(s as i32),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut caller: GuestCaller<'_>,
         map_type: i32,
         key_ptr: i32,
         key_len: i32,
         ret_ptr: i32,
         ret_size: i32|
         -> R {
            let Some(map_type) = MapType::from_raw(map_type) else {
                return Ok(Status::BadArgument as i32);
            };
            let key = match read_str(&caller, key_ptr, key_len) {
                Ok(k) => k,
                Err(s) => return Ok(s as i32),
            };
            let value = match map(caller.data(), map_type)
                .and_then(|m| m.get(&key).ok_or(Status::NotFound))
            {
                Ok(v) => v.to_vec(),
                Err(s) => return Ok(s as i32),
            };
            Ok(status(return_bytes(
                &mut caller,
                &value,
                ret_ptr,
                ret_size,
            )?))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut caller: GuestCaller<'_>, map_type: i32, kp: i32, kl: i32, vp: i32, vl: i32| -> R {
            edit_map(
                &mut caller,
                map_type,
                (kp, kl),
                Some((vp, vl)),
                |m, k, v| m.replace(k, v),
            )
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut caller: GuestCaller<'_>, map_type: i32, kp: i32, kl: i32, vp: i32, vl: i32| -> R {
            edit_map(
                &mut caller,
                map_type,
                (kp, kl),
                Some((vp, vl)),
                |m, k, v| m.add(k, v),
            )
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut caller: GuestCaller<'_>, map_type: i32, kp: i32, kl: i32| -> R {
            edit_map(&mut caller, map_type, (kp, kl), None, |m, k, _| {
                m.remove(k);
            })
        },
    )?;
    Ok(())
}

fn properties_fns(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_property",
        |mut caller: GuestCaller<'_>,
         path_ptr: i32,
         path_len: i32,
         ret_ptr: i32,
         ret_size: i32|
         -> R {
            let value = read(&caller, path_ptr, path_len).and_then(|raw| {
                let path = properties::split_path(&raw)?;
                let state = caller.data();
                let facts = PluginFacts {
                    name: &state.env.name,
                    root_id: &state.env.root_id,
                    vm_id: &state.env.vm_id,
                };
                properties::get(&path, state.stream(), facts)
            });
            match value {
                Ok(v) => Ok(status(return_bytes(&mut caller, &v, ret_ptr, ret_size)?)),
                Err(s) => Ok(s as i32),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_property",
        |mut caller: GuestCaller<'_>,
         path_ptr: i32,
         path_len: i32,
         value_ptr: i32,
         value_len: i32|
         -> R {
            let parsed = read(&caller, path_ptr, path_len).and_then(|raw| {
                let path = properties::split_path(&raw)?.join(".");
                Ok((path, read(&caller, value_ptr, value_len)?))
            });
            let (path, value) = match parsed {
                Ok(p) => p,
                Err(s) => return Ok(s as i32),
            };
            let limit = caller.data().env.limits.max_header_bytes;
            let Some(stream) = caller.data_mut().stream_mut() else {
                return Ok(Status::NotFound as i32);
            };
            stream.properties.insert(path, value);
            if stream
                .properties
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
                > limit
            {
                wasmtime::bail!("plugin stored more than {limit} bytes of properties");
            }
            Ok(0)
        },
    )?;
    Ok(())
}

fn shared_data_and_queues(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut caller: GuestCaller<'_>,
         kp: i32,
         kl: i32,
         ret_ptr: i32,
         ret_size: i32,
         ret_cas: i32|
         -> R {
            if let Err(s) = guest::check_slot(&caller, ret_cas, 4) {
                return Ok(s as i32);
            }
            let found = read(&caller, kp, kl).and_then(|key| {
                let env = &caller.data().env;
                env.shared.get(&env.vm_id, &key)
            });
            let (value, cas) = match found {
                Ok(v) => v,
                Err(s) => return Ok(s as i32),
            };
            if let Err(s) = return_bytes(&mut caller, &value, ret_ptr, ret_size)? {
                return Ok(s as i32);
            }
            Ok(status(write_u32(&mut caller, ret_cas, cas)))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_shared_data",
        |caller: GuestCaller<'_>, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32| -> R {
            let result = read(&caller, kp, kl).and_then(|key| {
                let value = read(&caller, vp, vl)?;
                let env = &caller.data().env;
                env.shared.set(&env.vm_id, &key, &value, cas as u32)
            });
            Ok(status(result))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_register_shared_queue",
        |mut caller: GuestCaller<'_>, np: i32, nl: i32, ret_id: i32| -> R {
            let registered = read_str(&caller, np, nl).and_then(|name| {
                let state = caller.data();
                let owner = QueueOwner {
                    root_context_id: state.root_context_id,
                    notify: state.queue_notify.clone(),
                };
                state
                    .env
                    .shared
                    .register_queue(&state.env.vm_id, &name, owner)
            });
            match registered {
                Ok(id) => Ok(status(write_u32(&mut caller, ret_id, id))),
                Err(s) => Ok(s as i32),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |mut caller: GuestCaller<'_>, vp: i32, vl: i32, np: i32, nl: i32, ret_id: i32| -> R {
            let resolved = read_str(&caller, vp, vl).and_then(|vm_id| {
                let name = read_str(&caller, np, nl)?;
                let env = &caller.data().env;
                let vm_id = if vm_id.is_empty() {
                    env.vm_id.as_str()
                } else {
                    vm_id.as_str()
                };
                env.shared.resolve_queue(vm_id, &name)
            });
            match resolved {
                Ok(id) => Ok(status(write_u32(&mut caller, ret_id, id))),
                Err(s) => Ok(s as i32),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_enqueue_shared_queue",
        |caller: GuestCaller<'_>, queue_id: i32, vp: i32, vl: i32| -> R {
            let result = read(&caller, vp, vl)
                .and_then(|item| caller.data().env.shared.enqueue(queue_id as u32, &item));
            Ok(status(result))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_dequeue_shared_queue",
        |mut caller: GuestCaller<'_>, queue_id: i32, ret_ptr: i32, ret_size: i32| -> R {
            if let Err(s) = guest::check_slot(&caller, ret_ptr, 4)
                .and_then(|()| guest::check_slot(&caller, ret_size, 4))
            {
                return Ok(s as i32);
            }
            match caller.data().env.shared.dequeue(queue_id as u32) {
                Ok(item) => Ok(status(return_bytes(&mut caller, &item, ret_ptr, ret_size)?)),
                Err(s) => Ok(s as i32),
            }
        },
    )?;
    Ok(())
}

/// Queues an effect on the effective context's HTTP stream (continue or close); TCP streams
/// are not supported.
fn stream_effect(caller: &mut GuestCaller<'_>, stream: i32, effect: fn(u32) -> Effect) -> i32 {
    let state = caller.data_mut();
    match StreamType::from_raw(stream) {
        Some(StreamType::HttpRequest | StreamType::HttpResponse) => {
            let context_id = state.effective_context;
            if !state.live_contexts.contains(&context_id) {
                return Status::NotFound as i32;
            }
            state.effects.push(effect(context_id));
            0
        }
        Some(_) => Status::Unimplemented as i32,
        None => Status::BadArgument as i32,
    }
}

fn streams(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_continue_stream",
        |mut caller: GuestCaller<'_>, stream: i32| -> R {
            Ok(stream_effect(&mut caller, stream, |context_id| {
                Effect::Resume { context_id }
            }))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_close_stream",
        |mut caller: GuestCaller<'_>, stream: i32| -> R {
            Ok(stream_effect(&mut caller, stream, |context_id| {
                Effect::Close { context_id }
            }))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut caller: GuestCaller<'_>,
         status_code: i32,
         details_ptr: i32,
         details_len: i32,
         body_ptr: i32,
         body_len: i32,
         headers_ptr: i32,
         headers_len: i32,
         _grpc_status: i32|
         -> R {
            let Ok(status_code) = u16::try_from(status_code) else {
                return Ok(Status::BadArgument as i32);
            };
            if !(200..=599).contains(&status_code) {
                return Ok(Status::BadArgument as i32);
            }
            let parsed = (|| {
                let details =
                    String::from_utf8_lossy(&read(&caller, details_ptr, details_len)?).into_owned();
                let body = read(&caller, body_ptr, body_len)?;
                let mut headers = Vec::new();
                for (name, value) in abi::decode_pairs(&read(&caller, headers_ptr, headers_len)?)? {
                    let name = String::from_utf8(name).map_err(|_| Status::BadArgument)?;
                    if !valid_header(&name, &value) || name.starts_with(':') {
                        return Err(Status::BadArgument);
                    }
                    headers.push((name.to_ascii_lowercase(), value));
                }
                Ok(LocalResponse {
                    status: status_code,
                    details,
                    headers,
                    body,
                })
            })();
            let response = match parsed {
                Ok(r) => r,
                Err(s) => return Ok(s as i32),
            };
            let limits = caller.data().env.limits;
            if response.body.len() > limits.max_body_bytes {
                wasmtime::bail!(
                    "plugin's local response body is over {} bytes",
                    limits.max_body_bytes
                );
            }
            let state = caller.data_mut();
            let context_id = state.effective_context;
            if !state.live_contexts.contains(&context_id) {
                return Ok(Status::NotFound as i32);
            }
            state.effects.push(Effect::LocalResponse {
                context_id,
                response,
            });
            Ok(0)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_effective_context",
        |mut caller: GuestCaller<'_>, context_id: i32| -> R {
            let state = caller.data_mut();
            let context_id = context_id as u32;
            if context_id != state.root_context_id && !state.live_contexts.contains(&context_id) {
                return Ok(Status::BadArgument as i32);
            }
            state.effective_context = context_id;
            Ok(0)
        },
    )?;
    // Deferred completion of a context (after proxy_on_done returned false). Contexts are
    // torn down by the host anyway, so this only acknowledges.
    linker.func_wrap("env", "proxy_done", |_caller: GuestCaller<'_>| -> R {
        Ok(0)
    })?;
    Ok(())
}

fn http_calls(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_http_call",
        |mut caller: GuestCaller<'_>,
         up_ptr: i32,
         up_len: i32,
         headers_ptr: i32,
         headers_len: i32,
         body_ptr: i32,
         body_len: i32,
         trailers_ptr: i32,
         trailers_len: i32,
         timeout_ms: i32,
         ret_token: i32|
         -> R {
            if let Err(s) = guest::check_slot(&caller, ret_token, 4) {
                return Ok(s as i32);
            }
            let limits = caller.data().env.limits;
            let parsed = (|| {
                let cluster = read_str(&caller, up_ptr, up_len)?;
                let to_map = |raw: Vec<u8>| -> HostResult<HeaderMap> {
                    let mut map = HeaderMap::new();
                    for (name, value) in abi::decode_pairs(&raw)? {
                        let name = String::from_utf8(name).map_err(|_| Status::BadArgument)?;
                        if !valid_header(&name, &value) {
                            return Err(Status::BadArgument);
                        }
                        map.add(&name, value);
                    }
                    Ok(map)
                };
                let headers = to_map(read(&caller, headers_ptr, headers_len)?)?;
                let trailers = to_map(read(&caller, trailers_ptr, trailers_len)?)?;
                let body = read(&caller, body_ptr, body_len)?;
                if [":method", ":path", ":authority"]
                    .iter()
                    .any(|h| headers.get(h).is_none_or(<[u8]>::is_empty))
                {
                    return Err(Status::BadArgument);
                }
                if !caller.data().env.http.has_cluster(&cluster) {
                    return Err(Status::BadArgument);
                }
                let timeout = Duration::from_millis(u64::from(timeout_ms as u32))
                    .min(limits.max_http_call_timeout);
                Ok(HttpCallRequest {
                    cluster,
                    headers,
                    body,
                    trailers,
                    timeout,
                })
            })();
            let request = match parsed {
                Ok(r) => r,
                Err(s) => return Ok(s as i32),
            };
            if request.body.len() > limits.max_body_bytes {
                return Ok(Status::BadArgument as i32);
            }
            let state = caller.data_mut();
            state.next_call_token = state.next_call_token.wrapping_add(1).max(1);
            let token = state.next_call_token;
            let context_id = state.effective_context;
            state.effects.push(Effect::HttpCall {
                context_id,
                token,
                request,
            });
            Ok(status(write_u32(&mut caller, ret_token, token)))
        },
    )?;
    Ok(())
}

fn metrics(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_define_metric",
        |mut caller: GuestCaller<'_>, kind: i32, np: i32, nl: i32, ret_id: i32| -> R {
            let Some(kind) = MetricType::from_raw(kind) else {
                return Ok(Status::BadArgument as i32);
            };
            let defined = read_str(&caller, np, nl)
                .and_then(|name| caller.data().env.metrics.define(kind, &name));
            match defined {
                Ok(id) => Ok(status(write_u32(&mut caller, ret_id, id))),
                Err(s) => Ok(s as i32),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_increment_metric",
        |caller: GuestCaller<'_>, id: i32, offset: i64| -> R {
            Ok(status(
                caller.data().env.metrics.increment(id as u32, offset),
            ))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_record_metric",
        |caller: GuestCaller<'_>, id: i32, value: i64| -> R {
            Ok(status(
                caller.data().env.metrics.record(id as u32, value as u64),
            ))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_metric",
        |mut caller: GuestCaller<'_>, id: i32, ret: i32| -> R {
            match caller.data().env.metrics.get(id as u32) {
                Ok(value) => Ok(status(write(&mut caller, ret, &value.to_le_bytes()))),
                Err(s) => Ok(s as i32),
            }
        },
    )?;
    Ok(())
}

/// gRPC calls and foreign functions: defined so SDK-built modules instantiate, answering
/// with the statuses the SDK handles (`UNIMPLEMENTED`, `NOT_FOUND` for an unknown function).
fn unsupported(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let unimplemented = Status::Unimplemented as i32;
    linker.func_wrap(
        "env",
        "proxy_grpc_call",
        move |_: GuestCaller<'_>,
              _: i32,
              _: i32,
              _: i32,
              _: i32,
              _: i32,
              _: i32,
              _: i32,
              _: i32,
              _: i32,
              _: i32,
              _: i32,
              _: i32|
              -> R { Ok(unimplemented) },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_stream",
        move |_: GuestCaller<'_>,
              _: i32,
              _: i32,
              _: i32,
              _: i32,
              _: i32,
              _: i32,
              _: i32,
              _: i32,
              _: i32|
              -> R { Ok(unimplemented) },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_send",
        move |_: GuestCaller<'_>, _: i32, _: i32, _: i32, _: i32| -> R { Ok(unimplemented) },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_cancel",
        move |_: GuestCaller<'_>, _: i32| -> R { Ok(unimplemented) },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_close",
        move |_: GuestCaller<'_>, _: i32| -> R { Ok(unimplemented) },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_status",
        move |_: GuestCaller<'_>, _: i32, _: i32, _: i32| -> R { Ok(unimplemented) },
    )?;
    linker.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |_: GuestCaller<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> R {
            Ok(Status::NotFound as i32)
        },
    )?;
    Ok(())
}
