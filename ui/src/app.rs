//! The application shell: the HTML document, the navigation and the routes.

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::{SsrMode, StaticSegment, path};

use crate::api::Api;
use crate::pages;
use crate::queries::{ME, MeData};
use crate::settings::{GATEWAY_URL_META, UiSettings};

/// The whole HTML document the server renders around [`App`].
pub fn shell(options: LeptosOptions) -> impl IntoView {
    // The browser reads the platform settings from the page (crate::settings).
    let settings = UiSettings::current();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name=GATEWAY_URL_META content=settings.gateway_url/>
                // No favicon request (the CSP allows `data:` images).
                <link rel="icon" href="data:,"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The UI: navigation and one route per page.
///
/// Every page renders in `SsrMode::Async`: the server waits for all of a page's data and sends
/// finished HTML, so the read-only pages work without JavaScript (out-of-order streaming would
/// need scripts to put suspended parts in place).
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="paved" href="/pkg/paved_ui.css"/>
        <Title text="Paved"/>
        <Router>
            <a class="skip-link" href="#main">"Skip to content"</a>
            <header class="topbar">
                <a class="brand" href="/">"Paved"</a>
                <nav aria-label="Main">
                    <A href="/" exact=true>"Dashboard"</A>
                    <A href="/apps">"Apps"</A>
                    <A href="/onboard">"Onboard an app"</A>
                </nav>
                <UserMenu/>
            </header>
            <main id="main" tabindex="-1">
                <Routes fallback=|| view! { <NotFound/> }>
                    <Route
                        path=StaticSegment("")
                        view=pages::dashboard::DashboardPage
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=StaticSegment("apps")
                        view=pages::catalog::CatalogPage
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/apps/:name")
                        view=pages::app_page::AppPage
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=StaticSegment("onboard")
                        view=pages::onboard::OnboardPage
                        ssr=SsrMode::Async
                    />
                </Routes>
            </main>
        </Router>
    }
}

/// Who is signed in, and the way out (a plain form: works without JavaScript).
#[component]
fn UserMenu() -> impl IntoView {
    let api = Api::from_context();
    let me = Resource::new(
        || (),
        move |_| {
            let api = api.clone();
            async move {
                api.query::<MeData>(ME, serde_json::json!({}))
                    .await
                    .map(|d| d.me)
            }
        },
    );
    view! {
        <div class="user">
            <Suspense fallback=|| ()>
                {move || {
                    me.get()
                        .map(|me| match me {
                            Ok(me) => {
                                view! {
                                    <span class="signed-in">
                                        "Signed in as " <strong>{me.name}</strong>
                                        {me.role.map(|r| view! { <span class="muted">{format!(" ({r})")}</span> })}
                                    </span>
                                    <form method="post" action="/ui/logout" class="inline">
                                        <button type="submit" class="link-button">"Sign out"</button>
                                    </form>
                                }
                                    .into_any()
                            }
                            Err(_) => view! { <a href="/ui/login?next=/">"Sign in"</a> }.into_any(),
                        })
                }}
            </Suspense>
        </div>
    }
}

/// Any other path.
#[component]
fn NotFound() -> impl IntoView {
    view! {
        <Title text="Not found · Paved"/>
        <h1>"Not found"</h1>
        <p class="empty">
            "This page does not exist. " <a href="/apps">"See the apps"</a> " or "
            <a href="/onboard">"onboard one"</a> "."
        </p>
    }
}
