//! The browser's side of things the server cannot do: GraphQL subscriptions over a WebSocket
//! (`/ui/graphql/ws`, graphql-transport-ws), moving the keyboard focus, reading form fields
//! and the settings the server wrote into the page.
//!
//! Every function here is callable from shared component code: in the server build (or before
//! hydration) they do nothing, which is right because they only run from browser events and
//! effects.

use serde::de::DeserializeOwned;

use crate::api::ApiError;

/// A live subscription; dropping it closes the socket.
pub struct Subscription {
    // The browser's socket is not `Send`; Leptos' cleanups want `Send`. The browser has one
    // thread, so the wrapper (which panics if moved to another thread) is sound there.
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    socket: send_wrapper::SendWrapper<browser::Socket>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

/// Subscribes to `query` and calls `on_event` with each event decoded into `T` (or the error
/// that ended it). `None` where there is no browser.
pub fn subscribe<T: DeserializeOwned + 'static>(
    query: String,
    variables: serde_json::Value,
    on_event: impl Fn(Result<T, ApiError>) + 'static,
) -> Option<Subscription> {
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    {
        let on_event = std::rc::Rc::new(on_event);
        let on_payload = {
            let on_event = on_event.clone();
            std::rc::Rc::new(move |payload: serde_json::Value| {
                on_event(crate::api::decode_response::<T>(payload));
            })
        };
        let on_end = std::rc::Rc::new(move |why: String| {
            on_event(Err(ApiError::Transport(why)));
        });
        match browser::Socket::open(&query, variables, on_payload, on_end.clone()) {
            Ok(socket) => Some(Subscription {
                socket: send_wrapper::SendWrapper::new(socket),
            }),
            Err(e) => {
                on_end(e);
                None
            }
        }
    }
    #[cfg(not(all(feature = "hydrate", not(feature = "ssr"))))]
    {
        let _ = (query, variables, on_event);
        None
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
        self.socket.close();
    }
}

/// Moves the keyboard focus to the element with id `id` (after a step change or onto the
/// first field with an error).
pub fn focus(id: &str) {
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    browser::focus(id);
    #[cfg(not(all(feature = "hydrate", not(feature = "ssr"))))]
    let _ = id;
}

/// The current value of the form field with id `id` (input, select or textarea), read from the
/// page: text typed before the page became interactive is not lost.
pub fn field_value(id: &str) -> Option<String> {
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    {
        browser::field_value(id)
    }
    #[cfg(not(all(feature = "hydrate", not(feature = "ssr"))))]
    {
        let _ = id;
        None
    }
}

/// The `content` of `<meta name="{name}">` in the page.
pub fn meta_content(name: &str) -> Option<String> {
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    {
        browser::meta_content(name)
    }
    #[cfg(not(all(feature = "hydrate", not(feature = "ssr"))))]
    {
        let _ = name;
        None
    }
}

#[cfg(all(feature = "hydrate", not(feature = "ssr")))]
mod browser {
    use std::cell::Cell;
    use std::rc::Rc;

    use wasm_bindgen::JsCast;
    use wasm_bindgen::prelude::Closure;

    use crate::api::BROWSER_GRAPHQL_WS_PATH;
    use crate::logic::gql_ws::{
        ClientMessage, PROTOCOL, ServerMessage, error_response, parse_server, socket_url,
    };

    /// The one operation id used per socket (one subscription per socket).
    const OPERATION_ID: &str = "1";

    type Handler = Rc<dyn Fn(serde_json::Value)>;
    type EndHandler = Rc<dyn Fn(String)>;

    /// An open socket with its event handlers (kept alive as long as the socket).
    pub struct Socket {
        ws: web_sys::WebSocket,
        closed: Rc<Cell<bool>>,
        _on_open: Closure<dyn FnMut(web_sys::Event)>,
        _on_message: Closure<dyn FnMut(web_sys::MessageEvent)>,
        _on_close: Closure<dyn FnMut(web_sys::CloseEvent)>,
    }

    impl Socket {
        /// Connects, then subscribes once the server acknowledges.
        pub fn open(
            query: &str,
            variables: serde_json::Value,
            on_payload: Handler,
            on_end: EndHandler,
        ) -> Result<Socket, String> {
            let window = web_sys::window().ok_or("no window")?;
            let origin = window
                .location()
                .origin()
                .map_err(|_| "no page origin".to_string())?;
            let url = socket_url(&origin, BROWSER_GRAPHQL_WS_PATH);
            let ws = web_sys::WebSocket::new_with_str(&url, PROTOCOL)
                .map_err(|e| format!("cannot open {url}: {e:?}"))?;
            let closed = Rc::new(Cell::new(false));

            let on_open = {
                let ws = ws.clone();
                Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
                    let _ = ws.send_with_str(&ClientMessage::ConnectionInit.to_text());
                })
            };
            let on_message = {
                let ws = ws.clone();
                let closed = closed.clone();
                let on_end = on_end.clone();
                let subscribe = ClientMessage::Subscribe {
                    id: OPERATION_ID.into(),
                    query: query.to_string(),
                    variables,
                }
                .to_text();
                Closure::<dyn FnMut(web_sys::MessageEvent)>::new(
                    move |ev: web_sys::MessageEvent| {
                        let Some(text) = ev.data().as_string() else {
                            return;
                        };
                        match parse_server(&text) {
                            Some(ServerMessage::ConnectionAck) => {
                                let _ = ws.send_with_str(&subscribe);
                            }
                            Some(ServerMessage::Next { payload, .. }) => on_payload(payload),
                            Some(ServerMessage::Error { payload, .. }) => {
                                on_payload(error_response(payload));
                            }
                            Some(ServerMessage::Complete { .. }) => {
                                closed.set(true);
                                let _ = ws.close();
                                on_end("the live updates ended".into());
                            }
                            Some(ServerMessage::Ping) => {
                                let _ = ws.send_with_str(&ClientMessage::Pong.to_text());
                            }
                            Some(ServerMessage::Pong) | None => {}
                        }
                    },
                )
            };
            let on_close = {
                let closed = closed.clone();
                Closure::<dyn FnMut(web_sys::CloseEvent)>::new(move |_| {
                    if !closed.replace(true) {
                        on_end("the live connection closed; reload the page to resume".into());
                    }
                })
            };
            ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
            ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
            Ok(Socket {
                ws,
                closed,
                _on_open: on_open,
                _on_message: on_message,
                _on_close: on_close,
            })
        }

        /// Ends the subscription and the socket (no "closed" report: we closed it).
        pub fn close(&self) {
            if self.closed.replace(true) {
                return;
            }
            if self.ws.ready_state() == web_sys::WebSocket::OPEN {
                let _ = self.ws.send_with_str(
                    &ClientMessage::Complete {
                        id: OPERATION_ID.into(),
                    }
                    .to_text(),
                );
            }
            self.ws.set_onopen(None);
            self.ws.set_onmessage(None);
            self.ws.set_onclose(None);
            let _ = self.ws.close();
        }
    }

    fn document() -> Option<web_sys::Document> {
        web_sys::window()?.document()
    }

    pub fn focus(id: &str) {
        if let Some(el) = document()
            .and_then(|d| d.get_element_by_id(id))
            .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
        {
            let _ = el.focus();
        }
    }

    pub fn field_value(id: &str) -> Option<String> {
        let el = document()?.get_element_by_id(id)?;
        if let Some(input) = el.dyn_ref::<web_sys::HtmlInputElement>() {
            return Some(input.value());
        }
        if let Some(select) = el.dyn_ref::<web_sys::HtmlSelectElement>() {
            return Some(select.value());
        }
        el.dyn_ref::<web_sys::HtmlTextAreaElement>()
            .map(web_sys::HtmlTextAreaElement::value)
    }

    pub fn meta_content(name: &str) -> Option<String> {
        document()?
            .query_selector(&format!("meta[name=\"{name}\"]"))
            .ok()??
            .get_attribute("content")
    }
}
