//! `proxy_get_property`: the Envoy attribute names plugins read, and how values are encoded.
//!
//! Encodings follow Envoy, so plugins written for it decode them unchanged: strings are raw
//! bytes, integers 8-byte little-endian `i64`, booleans one byte, timestamps nanoseconds since
//! the Unix epoch as `i64`, and maps of headers use the ABI's pair encoding.

use std::time::UNIX_EPOCH;

use crate::abi::{HostResult, Status};
use crate::headers::HeaderMap;
use crate::stream::HttpStream;

/// What a root context's properties come from: the plugin itself.
#[derive(Debug, Clone, Copy)]
pub struct PluginFacts<'a> {
    /// The plugin's name.
    pub name: &'a str,
    /// Its root ID.
    pub root_id: &'a str,
    /// Its VM ID.
    pub vm_id: &'a str,
}

/// Splits the ABI's property path (segments separated by NUL) into segments.
pub fn split_path(raw: &[u8]) -> HostResult<Vec<&str>> {
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    raw.split(|b| *b == 0)
        .map(|part| std::str::from_utf8(part).map_err(|_| Status::BadArgument))
        .collect()
}

/// The value of the attribute at `path`; `NotFound` for unknown attributes or ones that have
/// no value in this phase (`response.code` before the response).
pub fn get(
    path: &[&str],
    stream: Option<&HttpStream>,
    plugin: PluginFacts<'_>,
) -> HostResult<Vec<u8>> {
    let joined = path.join(".");
    match joined.as_str() {
        "plugin_name" => return Ok(plugin.name.as_bytes().to_vec()),
        "plugin_root_id" => return Ok(plugin.root_id.as_bytes().to_vec()),
        "plugin_vm_id" => return Ok(plugin.vm_id.as_bytes().to_vec()),
        _ => {}
    }
    let stream = stream.ok_or(Status::NotFound)?;
    let info = &stream.info;
    let req = &stream.request_headers;
    let header =
        |map: &HeaderMap, name: &str| map.get(name).map(<[u8]>::to_vec).ok_or(Status::NotFound);
    let path_header = || req.get(":path").unwrap_or(b"/");
    match path {
        ["request", "path"] => header(req, ":path"),
        ["request", "url_path"] => Ok(path_header()
            .split(|b| *b == b'?')
            .next()
            .unwrap_or(b"/")
            .to_vec()),
        ["request", "query"] => {
            let path = path_header();
            Ok(path
                .iter()
                .position(|b| *b == b'?')
                .map(|at| path[at + 1..].to_vec())
                .unwrap_or_default())
        }
        ["request", "host"] => header(req, ":authority"),
        ["request", "scheme"] => header(req, ":scheme"),
        ["request", "method"] => header(req, ":method"),
        ["request", "referer"] => header(req, "referer"),
        ["request", "useragent"] => header(req, "user-agent"),
        ["request", "id"] => Ok(info.request_id.as_bytes().to_vec()),
        ["request", "protocol"] => Ok(info.protocol.as_bytes().to_vec()),
        ["request", "time"] => {
            let nanos = info
                .start_time
                .duration_since(UNIX_EPOCH)
                .map_err(|_| Status::InternalFailure)?;
            Ok((nanos.as_nanos() as i64).to_le_bytes().to_vec())
        }
        ["request", "headers"] => Ok(req.encode()),
        ["request", "headers", name] => header(req, name),
        ["source", "address"] => info
            .source
            .map(|a| a.to_string().into_bytes())
            .ok_or(Status::NotFound),
        ["source", "port"] => info
            .source
            .map(|a| i64::from(a.port()).to_le_bytes().to_vec())
            .ok_or(Status::NotFound),
        ["destination", "address"] => info
            .destination
            .map(|a| a.to_string().into_bytes())
            .ok_or(Status::NotFound),
        ["destination", "port"] => info
            .destination
            .map(|a| i64::from(a.port()).to_le_bytes().to_vec())
            .ok_or(Status::NotFound),
        ["connection", "mtls"] => Ok(vec![u8::from(info.tls.as_ref().is_some_and(|t| t.mtls))]),
        ["connection", "tls_version"] => info
            .tls
            .as_ref()
            .map(|t| t.version.as_bytes().to_vec())
            .ok_or(Status::NotFound),
        ["connection", "requested_server_name"] => info
            .tls
            .as_ref()
            .and_then(|t| t.server_name.as_ref())
            .map(|s| s.as_bytes().to_vec())
            .ok_or(Status::NotFound),
        ["response", "code"] => {
            let status = stream
                .response_headers
                .get_str(":status")
                .ok_or(Status::NotFound)?;
            let code: i64 = status.parse().map_err(|_| Status::NotFound)?;
            Ok(code.to_le_bytes().to_vec())
        }
        ["response", "headers"] => Ok(stream.response_headers.encode()),
        ["response", "headers", name] => header(&stream.response_headers, name),
        ["route_name"] => Ok(info.route_name.as_bytes().to_vec()),
        ["cluster_name"] => Ok(info.cluster_name.as_bytes().to_vec()),
        // Values plugins stored come last: a plugin cannot shadow a built-in attribute
        // (e.g. `source.address`) for the filters after it.
        _ => stream
            .properties
            .get(&joined)
            .cloned()
            .ok_or(Status::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::stream::StreamInfo;

    fn facts() -> PluginFacts<'static> {
        PluginFacts {
            name: "p",
            root_id: "r",
            vm_id: "v",
        }
    }

    #[test]
    fn request_attributes_use_envoy_encodings() {
        let info = StreamInfo {
            source: Some("10.1.2.3:5555".parse().expect("addr")),
            request_id: "abc".into(),
            ..StreamInfo::default()
        };
        let mut stream = HttpStream::new(
            HeaderMap::from_pairs([(":method", "GET"), (":path", "/a/b?x=1")]),
            Arc::new(info),
        );
        stream.response_headers.add(":status", "404");
        let get = |p: &[&str]| get(p, Some(&stream), facts());
        assert_eq!(get(&["request", "path"]), Ok(b"/a/b?x=1".to_vec()));
        assert_eq!(get(&["request", "url_path"]), Ok(b"/a/b".to_vec()));
        assert_eq!(get(&["request", "query"]), Ok(b"x=1".to_vec()));
        assert_eq!(get(&["source", "address"]), Ok(b"10.1.2.3:5555".to_vec()));
        assert_eq!(get(&["source", "port"]), Ok(5555i64.to_le_bytes().to_vec()));
        assert_eq!(
            get(&["response", "code"]),
            Ok(404i64.to_le_bytes().to_vec())
        );
        assert_eq!(get(&["connection", "mtls"]), Ok(vec![0]));
        assert_eq!(get(&["request", "id"]), Ok(b"abc".to_vec()));
        assert_eq!(get(&["no", "such"]), Err(Status::NotFound));
        assert_eq!(get(&["plugin_name"]), Ok(b"p".to_vec()));
    }

    #[test]
    fn paths_are_nul_separated_utf8() {
        assert_eq!(split_path(b"request\0path"), Ok(vec!["request", "path"]));
        assert_eq!(split_path(b"plugin_name\0"), Ok(vec!["plugin_name"]));
        assert_eq!(split_path(b"bad\xff"), Err(Status::BadArgument));
    }

    #[test]
    fn root_contexts_see_only_plugin_attributes() {
        assert_eq!(
            get(&["request", "path"], None, facts()),
            Err(Status::NotFound)
        );
        assert_eq!(get(&["plugin_root_id"], None, facts()), Ok(b"r".to_vec()));
    }
}
