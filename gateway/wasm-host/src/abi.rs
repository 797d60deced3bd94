//! The numbers of the Proxy-Wasm ABI v0.2.1 and its one wire format (header maps).
//!
//! Values are those of the spec and of the official SDKs' `types.rs`: plugins `unwrap`
//! statuses, so returning any other number than the one the spec names makes them panic.

/// A status code returned by every host function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    /// The call succeeded.
    Ok = 0,
    /// The key, queue, property or context does not exist.
    NotFound = 1,
    /// An argument was out of range (unknown enum value, bad header map).
    BadArgument = 2,
    /// A value could not be serialized.
    SerializationFailure = 3,
    /// A value could not be parsed.
    ParseFailure = 4,
    /// A pointer or length from the guest was outside its memory.
    InvalidMemoryAccess = 6,
    /// A queue has no item.
    Empty = 7,
    /// Shared data changed since the CAS value was read.
    CasMismatch = 8,
    /// The host failed for a reason of its own.
    InternalFailure = 10,
    /// The host does not implement the function.
    Unimplemented = 12,
}

impl From<Status> for i32 {
    fn from(status: Status) -> i32 {
        status as i32
    }
}

/// The result of a host function: `Ok` or a failing status.
pub type HostResult<T = ()> = Result<T, Status>;

/// What a plugin returns from a stream callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Go on to the next filter.
    Continue,
    /// Stop here until the plugin resumes the stream (for bodies: buffer until then).
    Pause,
}

impl Action {
    /// Decodes the value a plugin returned; anything but 0 and 1 is a misbehaving plugin.
    pub fn from_raw(raw: i32) -> Option<Self> {
        match raw {
            0 => Some(Self::Continue),
            1 => Some(Self::Pause),
            _ => None,
        }
    }
}

/// Which buffer `proxy_get_buffer_bytes` and `proxy_set_buffer_bytes` address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferType {
    /// The request body seen so far.
    HttpRequestBody,
    /// The response body seen so far.
    HttpResponseBody,
    /// Bytes from the downstream connection (TCP filters; unsupported).
    DownstreamData,
    /// Bytes from the upstream connection (TCP filters; unsupported).
    UpstreamData,
    /// The body of an `proxy_http_call` response, during `proxy_on_http_call_response`.
    HttpCallResponseBody,
    /// A gRPC message (unsupported).
    GrpcReceiveBuffer,
    /// The VM configuration, during `proxy_on_vm_start`.
    VmConfiguration,
    /// The plugin configuration, during `proxy_on_configure`.
    PluginConfiguration,
    /// Foreign function call data (unsupported).
    CallData,
}

impl BufferType {
    /// Decodes a buffer type argument.
    pub fn from_raw(raw: i32) -> Option<Self> {
        Some(match raw {
            0 => Self::HttpRequestBody,
            1 => Self::HttpResponseBody,
            2 => Self::DownstreamData,
            3 => Self::UpstreamData,
            4 => Self::HttpCallResponseBody,
            5 => Self::GrpcReceiveBuffer,
            6 => Self::VmConfiguration,
            7 => Self::PluginConfiguration,
            8 => Self::CallData,
            _ => return None,
        })
    }
}

/// Which header map a map function addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapType {
    /// Request headers, with `:method`, `:path`, `:authority`, `:scheme`.
    HttpRequestHeaders,
    /// Request trailers.
    HttpRequestTrailers,
    /// Response headers, with `:status`.
    HttpResponseHeaders,
    /// Response trailers.
    HttpResponseTrailers,
    /// gRPC initial metadata (unsupported).
    GrpcReceiveInitialMetadata,
    /// gRPC trailing metadata (unsupported).
    GrpcReceiveTrailingMetadata,
    /// Headers of an `proxy_http_call` response.
    HttpCallResponseHeaders,
    /// Trailers of an `proxy_http_call` response.
    HttpCallResponseTrailers,
}

impl MapType {
    /// Decodes a map type argument.
    pub fn from_raw(raw: i32) -> Option<Self> {
        Some(match raw {
            0 => Self::HttpRequestHeaders,
            1 => Self::HttpRequestTrailers,
            2 => Self::HttpResponseHeaders,
            3 => Self::HttpResponseTrailers,
            4 => Self::GrpcReceiveInitialMetadata,
            5 => Self::GrpcReceiveTrailingMetadata,
            6 => Self::HttpCallResponseHeaders,
            7 => Self::HttpCallResponseTrailers,
            _ => return None,
        })
    }
}

/// Which stream `proxy_continue_stream` and `proxy_close_stream` address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamType {
    /// The HTTP request.
    HttpRequest,
    /// The HTTP response.
    HttpResponse,
    /// The downstream TCP connection (unsupported).
    Downstream,
    /// The upstream TCP connection (unsupported).
    Upstream,
}

impl StreamType {
    /// Decodes a stream type argument.
    pub fn from_raw(raw: i32) -> Option<Self> {
        Some(match raw {
            0 => Self::HttpRequest,
            1 => Self::HttpResponse,
            2 => Self::Downstream,
            3 => Self::Upstream,
            _ => return None,
        })
    }
}

/// A plugin's log level, as `proxy_log` and `proxy_get_log_level` number them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Most verbose.
    Trace = 0,
    /// Debugging detail.
    Debug = 1,
    /// Normal operation.
    Info = 2,
    /// Something unexpected.
    Warn = 3,
    /// A failure.
    Error = 4,
    /// A failure that needs attention now.
    Critical = 5,
}

impl LogLevel {
    /// Decodes a log level argument.
    pub fn from_raw(raw: i32) -> Option<Self> {
        Some(match raw {
            0 => Self::Trace,
            1 => Self::Debug,
            2 => Self::Info,
            3 => Self::Warn,
            4 => Self::Error,
            5 => Self::Critical,
            _ => return None,
        })
    }
}

/// The kind of a metric defined by `proxy_define_metric`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution of recorded values.
    Histogram,
}

impl MetricType {
    /// Decodes a metric type argument.
    pub fn from_raw(raw: i32) -> Option<Self> {
        Some(match raw {
            0 => Self::Counter,
            1 => Self::Gauge,
            2 => Self::Histogram,
            _ => return None,
        })
    }
}

/// Encodes header pairs the way the ABI passes maps: the number of pairs, each pair's key and
/// value lengths (all `u32` little endian), then each key and value followed by a NUL byte.
pub fn encode_pairs<'a, I>(pairs: I) -> Vec<u8>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let count = pairs.clone().into_iter().count();
    let data: usize = pairs
        .clone()
        .into_iter()
        .map(|(k, v)| k.len() + v.len() + 2)
        .sum();
    let mut out = Vec::with_capacity(4 + count * 8 + data);
    out.extend_from_slice(&(count as u32).to_le_bytes());
    for (key, value) in pairs.clone() {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    for (key, value) in pairs {
        out.extend_from_slice(key);
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out
}

/// Decodes a map in the ABI's format; any inconsistency (a count or length past the end, a
/// missing NUL) is `BadArgument`, so a plugin cannot make the host read out of bounds.
pub fn decode_pairs(bytes: &[u8]) -> HostResult<Vec<(Vec<u8>, Vec<u8>)>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let read_u32 = |at: usize| -> HostResult<usize> {
        let raw = bytes.get(at..at + 4).ok_or(Status::BadArgument)?;
        Ok(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize)
    };
    let count = read_u32(0)?;
    // Each pair needs at least 8 bytes of lengths and 2 NULs: bounds the allocation below.
    if count > bytes.len() / 10 + 1 {
        return Err(Status::BadArgument);
    }
    let mut lengths = Vec::with_capacity(count);
    for i in 0..count {
        lengths.push((read_u32(4 + i * 8)?, read_u32(8 + i * 8)?));
    }
    let mut at = 4 + count * 8;
    let mut take = |len: usize| -> HostResult<Vec<u8>> {
        let end = at.checked_add(len).ok_or(Status::BadArgument)?;
        let value = bytes.get(at..end).ok_or(Status::BadArgument)?.to_vec();
        if bytes.get(end) != Some(&0) {
            return Err(Status::BadArgument);
        }
        at = end + 1;
        Ok(value)
    };
    let mut pairs = Vec::with_capacity(count);
    for (key_len, value_len) in lengths {
        let key = take(key_len)?;
        let value = take(value_len)?;
        pairs.push((key, value));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_maps_round_trip_through_the_wire_format() {
        let pairs: Vec<(&[u8], &[u8])> = vec![(b":path", b"/a?b"), (b"x-empty", b""), (b"k", b"v")];
        let encoded = encode_pairs(pairs.iter().copied());
        let decoded = decode_pairs(&encoded).expect("valid map");
        let expected: Vec<(Vec<u8>, Vec<u8>)> = pairs
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn truncated_or_lying_maps_are_bad_arguments() {
        let good = encode_pairs([(&b"key"[..], &b"value"[..])]);
        for cut in 1..good.len() {
            assert_eq!(
                decode_pairs(&good[..cut]),
                Err(Status::BadArgument),
                "cut at {cut}"
            );
        }
        let mut huge_count = good.clone();
        huge_count[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_pairs(&huge_count), Err(Status::BadArgument));
        let mut no_nul = good;
        let last = no_nul.len() - 1;
        no_nul[last] = b'x';
        assert_eq!(decode_pairs(&no_nul), Err(Status::BadArgument));
    }

    #[test]
    fn actions_other_than_continue_and_pause_are_rejected() {
        assert_eq!(Action::from_raw(0), Some(Action::Continue));
        assert_eq!(Action::from_raw(1), Some(Action::Pause));
        assert_eq!(Action::from_raw(2), None);
        assert_eq!(Action::from_raw(-1), None);
    }
}
