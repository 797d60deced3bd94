//! Who a request is from, as authn establishes it and authz and the access log read it: the
//! properties authn records on the stream and the plain headers upstreams receive.

use serde_json::{Map, Value};

use crate::claims::Claims;

/// Property names (set by authn with `proxy_set_property`, read by authz and accesslog).
pub mod props {
    /// The subject (`sub`, or the client id of a service token without one).
    pub const SUBJECT: &str = "paved.identity.subject";
    /// The e-mail address, when the identity has one.
    pub const EMAIL: &str = "paved.identity.email";
    /// Groups, comma-joined; `%` and `,` inside a group are percent-encoded.
    pub const GROUPS: &str = "paved.identity.groups";
    /// OAuth client id (`client_id` or `azp`) of a bearer token.
    pub const CLIENT_ID: &str = "paved.identity.client_id";
    /// `user` or `service`.
    pub const KIND: &str = "paved.identity.kind";
    /// `session` (browser cookie) or `bearer` (Authorization header).
    pub const SOURCE: &str = "paved.identity.source";
    /// The issuer that vouched for the identity.
    pub const ISSUER: &str = "paved.identity.issuer";
    /// The identity's other claims as one compact JSON object.
    pub const CLAIMS: &str = "paved.identity.claims";
    /// authn's decision: `allow`, `deny:<reason>` or `login`.
    pub const DECISION_AUTHN: &str = "paved.decision.authn";
    /// authz's decision: `allow`, `allow:<via>` or `deny:<reason>`.
    pub const DECISION_AUTHZ: &str = "paved.decision.authz";
}

/// Plain identity headers upstreams receive next to the signed assertion. Anything a client
/// sends with these names is removed first.
pub mod headers {
    /// The subject.
    pub const USER: &str = "x-paved-user";
    /// The e-mail address.
    pub const EMAIL: &str = "x-paved-email";
    /// The groups, comma-joined (encoded like the property).
    pub const GROUPS: &str = "x-paved-groups";
    /// The client id of a bearer token.
    pub const CLIENT_ID: &str = "x-paved-client-id";
    /// Every convenience header.
    pub const ALL: [&str; 4] = [USER, EMAIL, GROUPS, CLIENT_ID];
}

/// Most groups kept for one identity.
pub const MAX_GROUPS: usize = 256;
/// Longest group name kept.
pub const MAX_GROUP_BYTES: usize = 256;
/// Largest single claim value exposed in [`props::CLAIMS`] (bigger ones are left out).
pub const MAX_CLAIM_BYTES: usize = 512;

/// Claims that only matter to the token itself, never exposed as identity (`iss` and `sub`
/// have properties of their own).
const PLUMBING: [&str; 15] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "nonce",
    "at_hash",
    "c_hash",
    "s_hash",
    "sid",
    "_claim_names",
    "_claim_sources",
    "updated_at",
];

/// Whether a person or a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A person.
    User,
    /// A service client (OAuth client credentials).
    Service,
}

impl Kind {
    /// `user` or `service`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Service => "service",
        }
    }
}

/// How the identity was proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The session cookie.
    Session,
    /// A bearer token.
    Bearer,
}

impl Source {
    /// `session` or `bearer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Session => "session",
            Source::Bearer => "bearer",
        }
    }
}

/// An authenticated identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// Subject.
    pub subject: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Groups.
    pub groups: Vec<String>,
    /// OAuth client id (bearer tokens only).
    pub client_id: Option<String>,
    /// Person or machine.
    pub kind: Kind,
    /// How it was proven.
    pub source: Source,
    /// The issuer.
    pub issuer: String,
    /// Other claims, bounded (see [`exposed_claims`]).
    pub claims: Map<String, Value>,
}

/// Why verified claims do not make an identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Neither `sub` nor a client id.
    #[error("token has no subject")]
    NoSubject,
}

impl Identity {
    /// The identity of a bearer token's verified claims.
    pub fn from_bearer(
        claims: &Claims,
        groups_claim: &str,
        max_claims_bytes: usize,
    ) -> Result<Identity, IdentityError> {
        let client_id = claims
            .str("client_id")
            .or_else(|| claims.str("azp"))
            .map(str::to_string);
        let service = match (&claims.sub, &client_id) {
            (None, Some(_)) => true,
            (Some(sub), Some(cid)) => sub == cid || claims.str("gty") == Some("client-credentials"),
            _ => false,
        };
        let subject = claims
            .sub
            .clone()
            .or_else(|| client_id.clone())
            .filter(|s| !s.is_empty())
            .ok_or(IdentityError::NoSubject)?;
        Ok(Identity {
            subject,
            email: email_of(&claims.all),
            groups: groups_of(&claims.all, groups_claim),
            client_id,
            kind: if service { Kind::Service } else { Kind::User },
            source: Source::Bearer,
            issuer: claims.iss.clone().unwrap_or_default(),
            claims: exposed_claims(&claims.all, groups_claim, max_claims_bytes),
        })
    }

    /// The properties authn records, in a fixed order.
    pub fn properties(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            (props::SUBJECT, self.subject.clone()),
            (props::GROUPS, join_list(&self.groups)),
            (props::KIND, self.kind.as_str().to_string()),
            (props::SOURCE, self.source.as_str().to_string()),
            (props::ISSUER, self.issuer.clone()),
            (
                props::CLAIMS,
                Value::Object(self.claims.clone()).to_string(),
            ),
        ];
        if let Some(email) = &self.email {
            out.push((props::EMAIL, email.clone()));
        }
        if let Some(cid) = &self.client_id {
            out.push((props::CLIENT_ID, cid.clone()));
        }
        out
    }

    /// Reads an identity back from properties (`get` returns a property's value). `None`
    /// when there is no subject: the request is anonymous.
    pub fn from_properties(get: impl Fn(&str) -> Option<String>) -> Option<Identity> {
        let subject = get(props::SUBJECT).filter(|s| !s.is_empty())?;
        let claims = get(props::CLAIMS)
            .and_then(|c| serde_json::from_str::<Map<String, Value>>(&c).ok())
            .unwrap_or_default();
        Some(Identity {
            subject,
            email: get(props::EMAIL).filter(|s| !s.is_empty()),
            groups: get(props::GROUPS)
                .map(|g| split_list(&g))
                .unwrap_or_default(),
            client_id: get(props::CLIENT_ID).filter(|s| !s.is_empty()),
            kind: match get(props::KIND).as_deref() {
                Some("service") => Kind::Service,
                _ => Kind::User,
            },
            source: match get(props::SOURCE).as_deref() {
                Some("bearer") => Source::Bearer,
                _ => Source::Session,
            },
            issuer: get(props::ISSUER).unwrap_or_default(),
            claims,
        })
    }

    /// The convenience headers for the upstream (values made header-safe).
    pub fn upstream_headers(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![(headers::USER, header_safe(&self.subject))];
        if let Some(email) = &self.email {
            out.push((headers::EMAIL, header_safe(email)));
        }
        out.push((headers::GROUPS, join_list(&self.groups)));
        if let Some(cid) = &self.client_id {
            out.push((headers::CLIENT_ID, header_safe(cid)));
        }
        out
    }
}

/// `email`, if it is a string.
pub fn email_of(claims: &Map<String, Value>) -> Option<String> {
    claims
        .get("email")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
        .map(str::to_string)
}

/// The groups in `claim`: an array of strings (other items ignored) or a single string;
/// bounded in number and length.
pub fn groups_of(claims: &Map<String, Value>, claim: &str) -> Vec<String> {
    let items: Vec<&str> = match claims.get(claim) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => vec![s.as_str()],
        _ => Vec::new(),
    };
    let mut groups: Vec<String> = items
        .into_iter()
        .filter(|g| !g.is_empty() && g.len() <= MAX_GROUP_BYTES)
        .take(MAX_GROUPS)
        .map(str::to_string)
        .collect();
    groups.dedup();
    groups
}

/// The claims exposed to authz: every claim except token plumbing and the groups claim,
/// whose value is a string, number, boolean or an array of those, each at most
/// [`MAX_CLAIM_BYTES`] as JSON, in name order until `max_bytes` is reached.
pub fn exposed_claims(
    claims: &Map<String, Value>,
    groups_claim: &str,
    max_bytes: usize,
) -> Map<String, Value> {
    let mut out = Map::new();
    let mut used = 2;
    for (name, value) in claims {
        if PLUMBING.contains(&name.as_str()) || name == groups_claim || !simple(value) {
            continue;
        }
        let size = name.len() + value.to_string().len() + 4;
        if size > MAX_CLAIM_BYTES + name.len() + 4 || used + size > max_bytes {
            continue;
        }
        used += size;
        out.insert(name.clone(), value.clone());
    }
    out
}

fn simple(value: &Value) -> bool {
    match value {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => true,
        Value::Array(items) => items
            .iter()
            .all(|v| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))),
        _ => false,
    }
}

/// Percent-encodes `%`, `,` and every byte outside printable ASCII, so any list item fits in
/// a header and a comma always separates items.
pub fn encode_item(item: &str) -> String {
    let mut out = String::with_capacity(item.len());
    for b in item.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' && b != b',' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reverses [`encode_item`].
pub fn decode_item(item: &str) -> String {
    let bytes = item.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = item
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Items encoded with [`encode_item`], comma-joined.
pub fn join_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| encode_item(i))
        .collect::<Vec<_>>()
        .join(",")
}

/// Reverses [`join_list`].
pub fn split_list(text: &str) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    text.split(',').map(decode_item).collect()
}

/// A header-safe value: [`encode_item`] without the comma rule.
pub fn header_safe(value: &str) -> String {
    encode_item(value).replace("%2C", ",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Claims {
        Claims::from_json(v.to_string().as_bytes()).expect("claims")
    }

    #[test]
    fn a_user_token_makes_a_user_identity() {
        let c = claims(json!({"iss": "i", "sub": "alice", "email": "a@example.com",
            "groups": ["staff", "hr", 7], "email_verified": true, "azp": "spa", "exp": 1}));
        let id = Identity::from_bearer(&c, "groups", 2048).expect("identity");
        assert_eq!(id.subject, "alice");
        assert_eq!(id.kind, Kind::User);
        assert_eq!(id.groups, vec!["staff", "hr"]);
        assert_eq!(id.client_id.as_deref(), Some("spa"));
        assert_eq!(id.claims.get("email_verified"), Some(&json!(true)));
        assert!(id.claims.get("exp").is_none() && id.claims.get("groups").is_none());
    }

    #[test]
    fn client_credentials_tokens_are_services() {
        let no_sub = claims(json!({"iss": "i", "client_id": "billing", "exp": 1}));
        let id = Identity::from_bearer(&no_sub, "groups", 2048).expect("identity");
        assert_eq!((id.subject.as_str(), id.kind), ("billing", Kind::Service));
        let same = claims(json!({"iss": "i", "sub": "billing", "azp": "billing"}));
        assert_eq!(
            Identity::from_bearer(&same, "groups", 2048).map(|i| i.kind),
            Ok(Kind::Service)
        );
        let none = claims(json!({"iss": "i"}));
        assert_eq!(
            Identity::from_bearer(&none, "groups", 2048),
            Err(IdentityError::NoSubject)
        );
    }

    #[test]
    fn properties_round_trip() {
        let c = claims(json!({"iss": "i", "sub": "bob", "email": "b@example.com",
            "groups": ["a,b", "50%", "plain"], "department": "audit", "client_id": "cli"}));
        let id = Identity::from_bearer(&c, "groups", 2048).expect("identity");
        let props: std::collections::HashMap<&str, String> = id.properties().into_iter().collect();
        assert_eq!(props[props::GROUPS], "a%2Cb,50%25,plain");
        let back = Identity::from_properties(|name| props.get(name).cloned()).expect("identity");
        assert_eq!(back, id);
    }

    #[test]
    fn no_subject_property_means_anonymous() {
        assert_eq!(Identity::from_properties(|_| None), None);
    }

    #[test]
    fn header_values_cannot_break_headers() {
        assert_eq!(
            header_safe("evil\r\nx-paved-user: admin"),
            "evil%0D%0Ax-paved-user: admin"
        );
        assert_eq!(header_safe("Zoë"), "Zo%C3%AB");
        assert_eq!(decode_item("Zo%C3%AB"), "Zoë");
    }

    #[test]
    fn exposed_claims_are_bounded() {
        let mut m = Map::new();
        m.insert("big".into(), json!("x".repeat(MAX_CLAIM_BYTES + 1)));
        m.insert("nested".into(), json!({"a": 1}));
        for i in 0..100 {
            m.insert(format!("c{i:03}"), json!("value-value-value"));
        }
        let out = exposed_claims(&m, "groups", 512);
        assert!(!out.contains_key("big") && !out.contains_key("nested"));
        assert!(Value::Object(out.clone()).to_string().len() <= 512);
        assert!(out.contains_key("c000"));
    }
}
