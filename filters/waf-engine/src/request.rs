//! The request as the WAF sees it, and the named places in it that rules inspect.

use std::fmt;

/// A request: its head as received, and as much of its body as was buffered.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The method (`:method`).
    pub method: &'a str,
    /// The request target as received (`:path`): path and query, still encoded.
    pub uri: &'a [u8],
    /// Every header in order, names lowercase, repeated names kept (HTTP/2 pseudo-headers
    /// such as `:authority` may be among them).
    pub headers: &'a [(String, Vec<u8>)],
    /// The body, when there is one.
    pub body: Option<Body<'a>>,
}

/// A request body, or its first bytes.
#[derive(Debug, Clone, Copy)]
pub struct Body<'a> {
    /// The bytes inspected.
    pub bytes: &'a [u8],
    /// Whether the body was longer than what was buffered (inspected partially).
    pub truncated: bool,
}

impl Request<'_> {
    /// Values of a header (lowercase name), in order.
    pub fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of a header, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_values(name)
            .next()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The path part of the target, still encoded.
    pub fn raw_path(&self) -> &[u8] {
        let end = self
            .uri
            .iter()
            .position(|&b| b == b'?' || b == b'#')
            .unwrap_or(self.uri.len());
        &self.uri[..end]
    }

    /// The query string, still encoded (without `?`).
    pub fn raw_query(&self) -> &[u8] {
        match self.uri.iter().position(|&b| b == b'?') {
            Some(at) => {
                let rest = &self.uri[at + 1..];
                let end = rest.iter().position(|&b| b == b'#').unwrap_or(rest.len());
                &rest[..end]
            }
            None => &[],
        }
    }

    /// The media type of the body, lowercase, without parameters.
    pub fn media_type(&self) -> Option<String> {
        self.header("content-type").map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
    }
}

/// Where an inspected value was found; exclusions and decisions refer to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Location {
    /// The whole request (protocol checks).
    Request,
    /// The path, or one of its segments.
    Path,
    /// A query or body argument's value (form field, JSON string, multipart field).
    Arg,
    /// An argument's name (query, form or multipart name, JSON key).
    ArgName,
    /// A cookie's value.
    Cookie,
    /// A cookie's name.
    CookieName,
    /// A request header's value.
    Header,
    /// A body that is not parsed into arguments (text, XML).
    Body,
    /// The file name of an uploaded file.
    FileName,
}

/// A value's place: where, and under which name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// Where.
    pub location: Location,
    /// The argument, cookie or header name (JSON fields: the key; nested keys also give
    /// `path`), empty for the path and the request.
    pub name: String,
    /// For JSON fields, the dotted path of keys (`user.address.street`); otherwise `name`.
    pub path: String,
}

impl Target {
    /// A target with the same name and path.
    pub fn new(location: Location, name: impl Into<String>) -> Target {
        let name = name.into();
        Target {
            location,
            path: name.clone(),
            name,
        }
    }

    /// The whole request.
    pub fn request() -> Target {
        Target::new(Location::Request, "")
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.location {
            Location::Request => return f.write_str("REQUEST"),
            Location::Path => return f.write_str("REQUEST_FILENAME"),
            Location::Body => return f.write_str("REQUEST_BODY"),
            Location::Arg => "ARGS",
            Location::ArgName => "ARGS_NAMES",
            Location::Cookie => "REQUEST_COOKIES",
            Location::CookieName => "REQUEST_COOKIES_NAMES",
            Location::Header => "REQUEST_HEADERS",
            Location::FileName => "FILES",
        };
        write!(f, "{prefix}:{}", self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_splits_into_path_and_query() {
        let req = Request {
            method: "GET",
            uri: b"/a/b?x=1&y=2#frag",
            headers: &[],
            body: None,
        };
        assert_eq!(req.raw_path(), b"/a/b");
        assert_eq!(req.raw_query(), b"x=1&y=2");
        let bare = Request { uri: b"/", ..req };
        assert_eq!(bare.raw_query(), b"");
    }

    #[test]
    fn media_type_drops_parameters_and_case() {
        let headers = [(
            "content-type".to_string(),
            b"Application/JSON; charset=utf-8".to_vec(),
        )];
        let req = Request {
            method: "POST",
            uri: b"/",
            headers: &headers,
            body: None,
        };
        assert_eq!(req.media_type().as_deref(), Some("application/json"));
    }

    #[test]
    fn targets_print_like_crs_variables() {
        assert_eq!(Target::new(Location::Arg, "q").to_string(), "ARGS:q");
        assert_eq!(Target::request().to_string(), "REQUEST");
    }
}
