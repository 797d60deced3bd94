//! `/pkg/{file}`: the browser half of the UI (hydration module, JS glue, stylesheet), embedded
//! in the binary by `paved-ui-assets`.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::secrets::sha256_hex;

/// The files keep their names from one release to the next, so browsers revalidate every use
/// (`no-cache`) and get `304 Not Modified` while the ETag holds: a new release never runs
/// with last release's glue or module.
const CACHE_CONTROL: &str = "no-cache";

/// Strong ETags of the embedded files, computed once.
fn etags() -> &'static HashMap<&'static str, String> {
    static ETAGS: OnceLock<HashMap<&'static str, String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        paved_ui_assets::ASSETS
            .iter()
            .map(|a| (a.name, format!("\"{}\"", &sha256_hex(a.bytes)[..32])))
            .collect()
    })
}

/// `GET /pkg/{file}`.
pub async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(asset) = paved_ui_assets::asset(&file) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let etag = etags().get(asset.name).cloned().unwrap_or_default();
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.bytes,
        )
            .into_response()
    };
    let h = r.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    super::csp::add_common_headers(h);
    r
}
