//! Converting between Pingora's request and response headers and the filters' header maps
//! (with the `:method`, `:path`, `:authority`, `:scheme` and `:status` pseudo-headers).

use bytes::Bytes;
use paved_wasm_host::HeaderMap;
use pingora::http::{RequestHeader, ResponseHeader};

/// The request as filters see it. `Host` becomes `:authority`, as in Envoy. The map counts as
/// unchanged ([`HeaderMap::is_changed`]): whether a filter changed it is all the gateway needs
/// to know to write it back.
pub fn request_map(req: &RequestHeader, scheme: &str) -> HeaderMap {
    let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = req
        .uri
        .authority()
        .map(|a| a.as_str().as_bytes())
        .or_else(|| req.headers.get(http::header::HOST).map(|h| h.as_bytes()))
        .unwrap_or_default();
    let method = req.method.as_str();
    // One allocation per buffer: sized for the pseudo-headers and every header.
    let bytes = ":method:path:authority:scheme".len()
        + method.len()
        + path.len()
        + authority.len()
        + scheme.len()
        + req
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len())
            .sum::<usize>();
    let mut map = HeaderMap::with_capacity(4 + req.headers.len(), bytes);
    map.add(":method", method);
    map.add(":path", path);
    map.add(":authority", authority);
    map.add(":scheme", scheme);
    for (name, value) in &req.headers {
        if name != http::header::HOST {
            map.add(name.as_str(), value.as_bytes());
        }
    }
    map.mark_unchanged();
    map
}

/// Writes the filters' request back: method, path, authority (as `Host`) and every header.
pub fn apply_request(map: &HeaderMap, req: &mut RequestHeader) -> Result<(), String> {
    if let Some(method) = map.get(":method") {
        let method = http::Method::from_bytes(method).map_err(|e| format!(":method: {e}"))?;
        req.set_method(method);
    }
    if let Some(path) = map.get(":path") {
        let uri = http::Uri::try_from(path).map_err(|e| format!(":path: {e}"))?;
        req.set_uri(uri);
    }
    let names: Vec<http::HeaderName> = req.headers.keys().cloned().collect();
    for name in names {
        req.remove_header(&name);
    }
    if let Some(authority) = map.get(":authority") {
        req.insert_header(http::header::HOST, authority)
            .map_err(|e| format!("host: {e}"))?;
    }
    for (name, value) in map.iter().filter(|(n, _)| !n.starts_with(':')) {
        req.append_header(name.to_owned(), value)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

/// The response as filters see it, unchanged (see [`request_map`]).
pub fn response_map(resp: &ResponseHeader) -> HeaderMap {
    let status = resp.status.as_str();
    let bytes = ":status".len()
        + status.len()
        + resp
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len())
            .sum::<usize>();
    let mut map = HeaderMap::with_capacity(1 + resp.headers.len(), bytes);
    map.add(":status", status);
    for (name, value) in &resp.headers {
        map.add(name.as_str(), value.as_bytes());
    }
    map.mark_unchanged();
    map
}

/// Writes the filters' response headers back, including a changed `:status`.
pub fn apply_response(map: &HeaderMap, resp: &mut ResponseHeader) -> Result<(), String> {
    if let Some(status) = map.get_str(":status") {
        let code: u16 = status.parse().map_err(|_| format!(":status {status:?}"))?;
        resp.set_status(code).map_err(|e| format!(":status: {e}"))?;
    }
    let names: Vec<http::HeaderName> = resp.headers.keys().cloned().collect();
    for name in names {
        resp.remove_header(&name);
    }
    for (name, value) in map.iter().filter(|(n, _)| !n.starts_with(':')) {
        resp.append_header(name.to_owned(), Bytes::copy_from_slice(value).as_ref())
            .map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

/// A response header for a status, headers and a body of known length.
pub fn build_response(
    status: u16,
    headers: &HeaderMap,
    body_len: usize,
) -> Result<ResponseHeader, String> {
    let mut resp =
        ResponseHeader::build(status, Some(headers.len() + 1)).map_err(|e| e.to_string())?;
    for (name, value) in headers.iter().filter(|(n, _)| !n.starts_with(':')) {
        if name == "content-length" || name == "transfer-encoding" {
            continue;
        }
        resp.append_header(name.to_owned(), value)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    resp.insert_header(http::header::CONTENT_LENGTH, body_len.to_string())
        .map_err(|e| e.to_string())?;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_the_filters_view() {
        let mut req = RequestHeader::build("POST", b"/a/b?c=d", None).expect("request");
        req.insert_header("host", "app.example.com")
            .expect("header");
        req.append_header("x-many", "1").expect("header");
        req.append_header("x-many", "2").expect("header");
        let mut map = request_map(&req, "https");
        assert!(!map.is_changed(), "as received");
        assert_eq!(map.get_str(":authority"), Some("app.example.com"));
        assert_eq!(map.get_str(":scheme"), Some("https"));
        assert_eq!(map.get_str(":path"), Some("/a/b?c=d"));
        assert!(
            map.get("host").is_none(),
            "Host is the :authority pseudo-header"
        );
        assert_eq!(map.get_all("x-many").count(), 2);

        map.replace(":path", "/rewritten");
        assert!(map.is_changed());
        map.replace(":authority", "other.example.com");
        map.remove("x-many");
        map.add("x-added", "yes");
        apply_request(&map, &mut req).expect("applies");
        assert_eq!(req.uri.path(), "/rewritten");
        assert_eq!(
            req.headers.get("host").map(|h| h.as_bytes()),
            Some(&b"other.example.com"[..])
        );
        assert!(req.headers.get("x-many").is_none());
        assert_eq!(
            req.headers.get("x-added").map(|h| h.as_bytes()),
            Some(&b"yes"[..])
        );
    }

    #[test]
    fn responses_round_trip_with_status() {
        let mut resp = ResponseHeader::build(200, None).expect("response");
        resp.insert_header("server", "upstream").expect("header");
        let mut map = response_map(&resp);
        assert!(!map.is_changed(), "as received");
        assert_eq!(map.get_str(":status"), Some("200"));
        map.replace(":status", "418");
        map.remove("server");
        apply_response(&map, &mut resp).expect("applies");
        assert_eq!(resp.status.as_u16(), 418);
        assert!(resp.headers.get("server").is_none());
    }

    #[test]
    fn invalid_paths_from_filters_are_errors_not_panics() {
        let mut req = RequestHeader::build("GET", b"/", None).expect("request");
        let mut map = request_map(&req, "http");
        map.replace(":path", "/bad path with spaces");
        assert!(apply_request(&map, &mut req).is_err());
    }
}
