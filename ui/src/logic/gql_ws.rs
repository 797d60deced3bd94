//! The messages of the `graphql-transport-ws` protocol (the WebSocket sub-protocol the control
//! plane speaks at `/ui/graphql/ws`), encoded and decoded without a socket so they are tested
//! on the host. The browser side that owns the socket is `crate::live`.
//!
//! Flow: the client sends `connection_init`, the server answers `connection_ack`, the client
//! sends `subscribe` with an id, the server sends `next` events for it (then `error` or
//! `complete`); either side may `ping`, the other answers `pong`.

use serde_json::{Value, json};

/// The sub-protocol name to open the WebSocket with.
pub const PROTOCOL: &str = "graphql-transport-ws";

/// A message from the client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// Opens the session (the cookie authenticates it: no payload needed).
    ConnectionInit,
    /// Starts a subscription.
    Subscribe {
        /// The operation's id within the connection.
        id: String,
        /// The subscription document.
        query: String,
        /// Its variables.
        variables: Value,
    },
    /// Stops a subscription.
    Complete {
        /// Its id.
        id: String,
    },
    /// Answers the server's ping.
    Pong,
}

impl ClientMessage {
    /// The JSON text to send.
    pub fn to_text(&self) -> String {
        let value = match self {
            ClientMessage::ConnectionInit => json!({"type": "connection_init", "payload": {}}),
            ClientMessage::Subscribe {
                id,
                query,
                variables,
            } => json!({
                "id": id,
                "type": "subscribe",
                "payload": {"query": query, "variables": variables},
            }),
            ClientMessage::Complete { id } => json!({"id": id, "type": "complete"}),
            ClientMessage::Pong => json!({"type": "pong"}),
        };
        value.to_string()
    }
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    /// The session is accepted.
    ConnectionAck,
    /// An event of subscription `id`: a GraphQL response (`{"data", "errors"}`).
    Next {
        /// The subscription.
        id: String,
        /// The response.
        payload: Value,
    },
    /// Subscription `id` failed: a list of GraphQL errors.
    Error {
        /// The subscription.
        id: String,
        /// The errors.
        payload: Value,
    },
    /// Subscription `id` ended.
    Complete {
        /// The subscription.
        id: String,
    },
    /// The server checks the connection; answer [`ClientMessage::Pong`].
    Ping,
    /// The server's answer to a ping.
    Pong,
}

/// Decodes a text frame; `None` for anything that is not a known message.
pub fn parse_server(text: &str) -> Option<ServerMessage> {
    let v: Value = serde_json::from_str(text).ok()?;
    let id = || v.get("id").and_then(Value::as_str).map(str::to_string);
    let payload = || v.get("payload").cloned().unwrap_or(Value::Null);
    match v.get("type")?.as_str()? {
        "connection_ack" => Some(ServerMessage::ConnectionAck),
        "next" => Some(ServerMessage::Next {
            id: id()?,
            payload: payload(),
        }),
        "error" => Some(ServerMessage::Error {
            id: id()?,
            payload: payload(),
        }),
        "complete" => Some(ServerMessage::Complete { id: id()? }),
        "ping" => Some(ServerMessage::Ping),
        "pong" => Some(ServerMessage::Pong),
        _ => None,
    }
}

/// An `error` message's errors as a GraphQL response, so it decodes like any other answer.
pub fn error_response(payload: Value) -> Value {
    let errors = if payload.is_array() {
        payload
    } else {
        json!([{"message": "the subscription failed"}])
    };
    json!({"errors": errors})
}

/// The `ws://` or `wss://` URL of `path` on the page's origin (`http://host:port`).
pub fn socket_url(page_origin: &str, path: &str) -> String {
    let origin = page_origin.trim_end_matches('/');
    let origin = if let Some(rest) = origin.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = origin.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        origin.to_string()
    };
    format!("{origin}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_follow_the_protocol() {
        let init: Value =
            serde_json::from_str(&ClientMessage::ConnectionInit.to_text()).expect("json");
        assert_eq!(init, json!({"type": "connection_init", "payload": {}}));
        let sub: Value = serde_json::from_str(
            &ClientMessage::Subscribe {
                id: "1".into(),
                query: "subscription { gatewayRollout { event } }".into(),
                variables: json!({}),
            }
            .to_text(),
        )
        .expect("json");
        assert_eq!(sub["type"], "subscribe");
        assert_eq!(sub["id"], "1");
        assert_eq!(
            sub["payload"]["query"],
            "subscription { gatewayRollout { event } }"
        );
        assert_eq!(
            serde_json::from_str::<Value>(&ClientMessage::Pong.to_text()).expect("json"),
            json!({"type": "pong"})
        );
    }

    #[test]
    fn server_messages_are_recognised() {
        assert_eq!(
            parse_server(r#"{"type":"connection_ack"}"#),
            Some(ServerMessage::ConnectionAck)
        );
        assert_eq!(
            parse_server(r#"{"id":"1","type":"next","payload":{"data":{"x":1}}}"#),
            Some(ServerMessage::Next {
                id: "1".into(),
                payload: json!({"data": {"x": 1}})
            })
        );
        assert_eq!(
            parse_server(r#"{"type":"ping"}"#),
            Some(ServerMessage::Ping)
        );
        assert_eq!(
            parse_server(r#"{"id":"1","type":"complete"}"#),
            Some(ServerMessage::Complete { id: "1".into() })
        );
        assert_eq!(parse_server(r#"{"type":"next"}"#), None, "next needs an id");
        assert_eq!(parse_server("not json"), None);
        assert_eq!(parse_server(r#"{"type":"ka"}"#), None);
    }

    #[test]
    fn error_payloads_decode_as_graphql_errors() {
        let response =
            error_response(json!([{"message": "no", "extensions": {"code": "FORBIDDEN"}}]));
        let err = crate::api::decode_response::<Value>(response).expect_err("an error");
        assert_eq!(err.code(), Some("FORBIDDEN"));
        let odd = crate::api::decode_response::<Value>(error_response(json!("?")));
        assert!(odd.is_err());
    }

    #[test]
    fn socket_url_follows_the_page_scheme() {
        assert_eq!(
            socket_url("http://127.0.0.1:8081", "/ui/graphql/ws"),
            "ws://127.0.0.1:8081/ui/graphql/ws"
        );
        assert_eq!(
            socket_url("https://paved.example.com/", "/ui/graphql/ws"),
            "wss://paved.example.com/ui/graphql/ws"
        );
    }
}
