//! States every page needs: loading, empty, and errors (with a way to sign in again when the
//! session ended).

use leptos::prelude::*;
use leptos_router::hooks::use_location;

use crate::api::ApiError;

/// Shown while a Suspense waits (only in the browser: the server waits for the data).
#[component]
pub fn Loading(
    /// What is loading, for screen readers.
    #[prop(into, default = "Loading…".into())]
    text: String,
) -> impl IntoView {
    view! { <p class="loading" role="status">{text}</p> }
}

/// An empty list, with what to do about it.
#[component]
pub fn EmptyState(
    /// What is missing.
    #[prop(into)]
    text: String,
    /// A link to the fix: (href, text).
    #[prop(optional)]
    action: Option<(String, String)>,
) -> impl IntoView {
    view! {
        <p class="empty">
            {text}
            {action.map(|(href, label)| view! { " — " <a href=href>{label}</a> })}
        </p>
    }
}

/// An API error, announced. A signed-out error offers the sign-in that brings the person back
/// to this page.
#[component]
pub fn ErrorNote(
    /// The error.
    error: ApiError,
    /// Element id (to link it from a field with `aria-describedby`).
    #[prop(optional, into)]
    id: Option<String>,
) -> impl IntoView {
    let location = use_location();
    match error {
        ApiError::SignedOut => {
            let href = move || {
                let path = location.pathname.get();
                format!("/ui/login?next={}", encode_next(&path))
            };
            view! {
                <div class="error" role="alert" id=id>
                    "You are signed out. "
                    <a href=href>"Sign in"</a>
                    " to continue."
                </div>
            }
            .into_any()
        }
        other => {
            let code = other.code().map(|c| format!(" ({c})")).unwrap_or_default();
            view! {
                <div class="error" role="alert" id=id>
                    {other.to_string()}
                    <span class="muted">{code}</span>
                </div>
            }
            .into_any()
        }
    }
}

/// Percent-encodes a local path for `?next=` (only unreserved characters and `/` stay).
pub fn encode_next(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_paths_are_percent_encoded() {
        assert_eq!(encode_next("/apps/web"), "/apps/web");
        assert_eq!(encode_next("/apps?q=a b&x"), "/apps%3Fq%3Da%20b%26x");
    }
}
