//! `/apps`: the app catalog with search and filters (name, team, paved or not). The filters are
//! a plain GET form, so they work without JavaScript and a filtered list is a link.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::{Api, ApiError};
use crate::components::status::{EmptyState, ErrorNote, Loading};
use crate::logic::catalog::{CatalogQuery, PavedFilter, apply, team_suggestions};
use crate::logic::format;
use crate::queries::{AppSummary, CATALOG, CATALOG_PAGE, CatalogData, ME, MeData};

/// Most pages fetched for one listing (the catalog shows every matching app up to this).
const MAX_PAGES: usize = 20;

/// What the catalog shows: the apps that pass every filter, and whether the list was cut.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Listing {
    /// Apps matching name and team (before the paved filter).
    matching: usize,
    /// Apps that pass every filter.
    apps: Vec<AppSummary>,
    /// More apps exist than were fetched.
    truncated: bool,
    /// Teams to suggest in the filter.
    teams: Vec<String>,
}

/// Every app matching `query` (page by page: the API's complexity limit caps a page).
async fn list_apps(api: Api, query: CatalogQuery) -> Result<Listing, ApiError> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    let mut truncated = false;
    for page in 0..MAX_PAGES {
        let data = api
            .query::<CatalogData>(
                CATALOG,
                serde_json::json!({"filter": query.api_filter(), "first": CATALOG_PAGE, "after": after}),
            )
            .await?;
        all.extend(data.apps.nodes);
        match data.apps.page_info {
            crate::queries::PageInfo {
                has_next_page: true,
                end_cursor: Some(cursor),
            } => {
                if page + 1 == MAX_PAGES {
                    truncated = true;
                }
                after = Some(cursor);
            }
            _ => break,
        }
    }
    let me = api
        .query::<MeData>(ME, serde_json::json!({}))
        .await
        .map(|d| d.me.teams)
        .unwrap_or_default();
    let teams = team_suggestions(&me, &all);
    let matching = all.len();
    Ok(Listing {
        matching,
        apps: apply(all, &query),
        truncated,
        teams,
    })
}

/// `/apps`: search and filter the apps the caller may read.
#[component]
pub fn CatalogPage() -> impl IntoView {
    let params = use_query_map();
    let search = Memo::new(move |_| {
        params.with(|p| {
            CatalogQuery::from_params(p.get_str("q"), p.get_str("team"), p.get_str("paved"))
        })
    });
    let api = Api::from_context();
    let listing = Resource::new(
        move || search.get(),
        move |query| list_apps(api.clone(), query),
    );
    view! {
        <Title text="Apps · Paved"/>
        <h1>"Apps"</h1>
        {move || {
            let q = search.get();
            view! { <Filters query=q listing/> }
        }}
        <Suspense fallback=|| view! { <Loading/> }>
            {move || {
                listing
                    .get()
                    .map(|r| match r {
                        Ok(l) => view! { <AppList listing=l query=search.get_untracked()/> }.into_any(),
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

#[component]
fn Filters(query: CatalogQuery, listing: Resource<Result<Listing, ApiError>>) -> impl IntoView {
    let paved_options = [
        (PavedFilter::Any, "Any"),
        (PavedFilter::Paved, "Paved"),
        (PavedFilter::NotPaved, "Not paved"),
    ];
    let filtered = query.is_filtered();
    view! {
        <form method="get" action="/apps" class="filters" role="search" aria-label="Filter apps">
            <div class="field">
                <label for="q">"Name contains"</label>
                <input id="q" name="q" type="search" value=query.q autocomplete="off"/>
            </div>
            <div class="field">
                <label for="team">"Team"</label>
                <input id="team" name="team" type="text" value=query.team list="team-options" autocomplete="off"/>
                <datalist id="team-options">
                    <Suspense fallback=|| ()>
                        {move || {
                            listing
                                .get()
                                .and_then(Result::ok)
                                .map(|l| {
                                    l.teams
                                        .into_iter()
                                        .map(|t| view! { <option value=t></option> })
                                        .collect_view()
                                })
                        }}
                    </Suspense>
                </datalist>
            </div>
            <div class="field">
                <label for="paved">"Paved"</label>
                <select id="paved" name="paved">
                    {paved_options
                        .into_iter()
                        .map(|(p, text)| {
                            view! { <option value=p.param() selected=query.paved == p>{text}</option> }
                        })
                        .collect_view()}
                </select>
            </div>
            <div class="actions">
                <button type="submit">"Search"</button>
                {filtered.then(|| view! { <a href="/apps">"Clear filters"</a> })}
            </div>
        </form>
    }
}

#[component]
fn AppList(listing: Listing, query: CatalogQuery) -> impl IntoView {
    if listing.apps.is_empty() {
        return if query.is_filtered() {
            view! {
                <p class="empty" role="status">
                    "No app matches these filters. " <a href="/apps">"Clear filters"</a>
                </p>
            }
            .into_any()
        } else {
            view! {
                <EmptyState
                    text="No apps yet"
                    action=("/onboard".to_string(), "onboard one".to_string())
                />
            }
            .into_any()
        };
    }
    let shown = listing.apps.len() as i64;
    let summary = if shown as usize == listing.matching {
        format::plural(shown, "app", "apps")
    } else {
        format!(
            "{} of {}",
            format::count(shown),
            format::plural(listing.matching as i64, "app", "apps")
        )
    };
    view! {
        <p role="status" id="apps-count">
            {summary}
            {listing.truncated.then_some(" (the first ones only: narrow the search to see the rest)")}
        </p>
        <div class="table-wrap">
            <table id="apps-table">
                <caption class="sr-only">"Apps"</caption>
                <thead>
                    <tr>
                        <th scope="col">"App"</th>
                        <th scope="col">"Team"</th>
                        <th scope="col">"Owners"</th>
                        <th scope="col">"Domains"</th>
                        <th scope="col">"Version"</th>
                        <th scope="col">"Paved"</th>
                        <th scope="col">"Last change"</th>
                    </tr>
                </thead>
                <tbody>
                    {listing
                        .apps
                        .into_iter()
                        .map(|a| view! { <AppRow app=a/> })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

#[component]
fn AppRow(app: AppSummary) -> impl IntoView {
    let href = format!("/apps/{}", app.name);
    let (badge, text, gaps) = match &app.paved {
        Some(p) if p.paved => ("badge ok", "paved", String::new()),
        Some(p) => ("badge bad", "not paved", p.gaps.join("; ")),
        None => ("badge warn", "unknown", String::new()),
    };
    view! {
        <tr>
            <th scope="row"><a href=href>{app.name.clone()}</a></th>
            <td>{app.team.clone().unwrap_or_else(|| "—".into())}</td>
            <td>{app.owners.join(", ")}</td>
            <td>{app.domains.join(", ")}</td>
            <td>{app.current_version.map(|v| v.to_string()).unwrap_or_else(|| "deleted".into())}</td>
            <td>
                <span class=badge>{text}</span>
                {(!gaps.is_empty()).then(|| view! { <span class="small muted gaps">{format!(" {gaps}")}</span> })}
            </td>
            <td class="nowrap">{format::date_time(&app.updated_at)}</td>
        </tr>
    }
}
