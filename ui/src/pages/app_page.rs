//! `/apps/:name`: one app: owners and domains, status per gateway, recent traffic, the filter
//! chain in force, the current intent, the version history with diffs (`?diff=N` shows what
//! version N changed) and rollback.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::{Api, ApiError};
use crate::components::chart::{BarChart, LineChart, Series, ValueFormat};
use crate::components::code::{ChangesTable, DiffBlock, YamlBlock};
use crate::components::status::{EmptyState, ErrorNote, Loading};
use crate::components::tables::{GatewaysTable, RecordsTable};
use crate::logic::chain::describe;
use crate::logic::format;
use crate::logic::rollout::summary;
use crate::queries::{
    AppData, AppDetail, DIFF, DiffData, Gateway, IntentDiff, IntentVersion, ROLLBACK, RollbackData,
    TrafficSummary, app_query,
};
use crate::settings::UiSettings;

/// Versions listed in the history.
const HISTORY: i64 = 20;
/// Requests listed.
const RECENT: i64 = 15;

/// What the page shows: the app and the diff of the selected version.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct AppPageData {
    data: AppData,
    /// The diff shown: version `to - 1` → `to`; `None` when there is no earlier version.
    diff: Option<Result<IntentDiff, ApiError>>,
}

async fn load(api: Api, name: String, selected: Option<i64>) -> Result<AppPageData, ApiError> {
    let data = api
        .query::<AppData>(
            &app_query(),
            serde_json::json!({"name": name, "versions": HISTORY, "limit": RECENT}),
        )
        .await?;
    let to = selected.or(data.app.current_version);
    let diff = match to {
        Some(to) if to > 1 => Some(
            api.query::<DiffData>(
                DIFF,
                serde_json::json!({"app": name, "from": to - 1, "to": to}),
            )
            .await
            .map(|d| d.diff),
        ),
        _ => None,
    };
    Ok(AppPageData { data, diff })
}

/// `/apps/:name`.
#[component]
pub fn AppPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let name = Memo::new(move |_| params.with(|p| p.get("name").unwrap_or_default()));
    let selected =
        Memo::new(move |_| query.with(|q| q.get_str("diff").and_then(|v| v.parse::<i64>().ok())));
    // Bumped after a rollback to load the app again.
    let reload = RwSignal::new(0u32);
    let api = Api::from_context();
    let page = Resource::new(move || (name.get(), selected.get(), reload.get()), {
        let api = api.clone();
        move |(name, selected, _)| load(api.clone(), name, selected)
    });
    let rollback = Action::new(move |version: &i64| {
        let api = api.clone();
        let name = name.get_untracked();
        let version = *version;
        async move {
            api.query::<RollbackData>(
                ROLLBACK,
                serde_json::json!({"name": name, "version": version}),
            )
            .await
            .map(|d| (version, d.rollback_app))
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(_)) = rollback.value().get() {
            reload.update(|n| *n += 1);
        }
    });
    view! {
        <Title text=move || format!("{} · Apps · Paved", name.get())/>
        <p class="breadcrumb"><a href="/apps">"Apps"</a> " / " {move || name.get()}</p>
        <h1>{move || name.get()}</h1>
        <div id="rollback-status" role="status" aria-live="polite">
            {move || {
                rollback
                    .value()
                    .get()
                    .map(|r| match r {
                        Ok((from, result)) => {
                            view! {
                                <p class="ok-note">
                                    {format!(
                                        "Rolled back to version {from}: the app is now at version {}.",
                                        result.version.version,
                                    )}
                                </p>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    })
            }}
        </div>
        <Transition fallback=|| view! { <Loading/> }>
            {move || {
                page.get()
                    .map(|r| match r {
                        Ok(p) => view! { <AppBody page=p rollback/> }.into_any(),
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    })
            }}
        </Transition>
    }
}

#[component]
fn AppBody(
    page: AppPageData,
    rollback: Action<i64, Result<(i64, crate::queries::ApplyResult), ApiError>>,
) -> impl IntoView {
    let AppPageData { data, diff } = page;
    let AppData {
        app,
        waf_hits,
        gateways,
    } = data;
    let settings = UiSettings::current();
    let live = settings.live_url(&app.domains);
    let deleted = app.deleted_at.clone();
    let intent_text = app.current.as_ref().and_then(|c| c.text.clone());
    let chains = app
        .current
        .as_ref()
        .and_then(|c| c.intent.as_ref())
        .map(describe)
        .unwrap_or_default();
    let paved = app.paved.clone();
    let current_version = app.current_version;
    let versions = app.versions.clone();
    view! {
        <section class="panel" aria-labelledby="overview-heading" id="overview">
            <h2 id="overview-heading" class="sr-only">"Overview"</h2>
            {deleted.map(|d| view! { <p class="error" role="note">{format!("Deleted on {}.", format::date_time(&d))}</p> })}
            <dl class="facts">
                <div><dt>"Team"</dt><dd>{app.team.clone().unwrap_or_else(|| "—".into())}</dd></div>
                <div><dt>"Owners"</dt><dd id="owners">{app.owners.join(", ")}</dd></div>
                <div>
                    <dt>"Domains"</dt>
                    <dd>
                        {app.domains.join(", ")}
                        {live.map(|url| view! { " — " <a href=url.clone() id="live-url">{url.clone()}</a> })}
                    </dd>
                </div>
                <div>
                    <dt>"Version"</dt>
                    <dd>{current_version.map(|v| format!("version {v}")).unwrap_or_else(|| "none".into())}
                        {format!(" ({} in all)", format::plural(app.version_count, "version", "versions"))}
                    </dd>
                </div>
                <div><dt>"Last change"</dt><dd>{format::date_time(&app.updated_at)}</dd></div>
                <div>
                    <dt>"Paved"</dt>
                    <dd>
                        {match &paved {
                            Some(p) if p.paved => view! { <span class="badge ok">"paved"</span> }.into_any(),
                            Some(_) => view! { <span class="badge bad">"not paved"</span> }.into_any(),
                            None => view! { <span class="badge warn">"unknown"</span> }.into_any(),
                        }}
                    </dd>
                </div>
            </dl>
            {paved
                .filter(|p| !p.gaps.is_empty())
                .map(|p| view! {
                    <div class="gaps">
                        <p>"What is missing for the paved road:"</p>
                        <ul>{p.gaps.into_iter().map(|g| view! { <li>{g}</li> }).collect_view()}</ul>
                    </div>
                })}
        </section>

        <GatewayStatus app=app.clone() gateways/>

        <TrafficSection traffic=app.traffic.clone() recent=app.recent_requests.clone() waf_hits/>

        <section class="panel" aria-labelledby="chain-heading" id="filter-chain">
            <h2 id="chain-heading">"Filter chain in force"</h2>
            {if chains.is_empty() {
                view! { <EmptyState text="No current intent: the app serves nothing."/> }.into_any()
            } else {
                chains
                    .into_iter()
                    .map(|c| {
                        let domains = if c.domains.is_empty() { String::new() } else { format!(" on {}", c.domains.join(", ")) };
                        view! {
                            <div class="chain">
                                <h3><code>{c.path.clone()}</code>{format!(" → {}{domains}", c.target)}</h3>
                                <ol class="chain-steps">
                                    {c.steps
                                        .into_iter()
                                        .map(|s| view! {
                                            <li class=if s.active { "step on" } else { "step off" }>
                                                <strong>{s.filter}</strong>
                                                <span>{s.summary}</span>
                                            </li>
                                        })
                                        .collect_view()}
                                </ol>
                            </div>
                        }
                    })
                    .collect_view()
                    .into_any()
            }}
        </section>

        <section class="panel" aria-labelledby="intent-heading">
            <h2 id="intent-heading">
                {current_version.map(|v| format!("Current intent (version {v})")).unwrap_or_else(|| "Current intent".into())}
            </h2>
            {match intent_text {
                Some(text) => view! { <YamlBlock text id="current-intent" label="Current paved.yaml"/> }.into_any(),
                None => view! { <EmptyState text="No current intent."/> }.into_any(),
            }}
        </section>

        <History versions current=current_version rollback/>

        {diff.map(|d| view! { <DiffSection diff=d/> })}
    }
    .into_any()
}

/// Status per gateway of the app's last change.
#[component]
fn GatewayStatus(app: AppDetail, gateways: Vec<Gateway>) -> impl IntoView {
    let change = app.rollout.snapshot_version.or(app.snapshot_version);
    let (serving, failed, pending) = summary(&gateways, change);
    let text = if gateways.is_empty() {
        "No gateway has connected yet.".to_string()
    } else {
        format!(
            "The last change (snapshot {}) is served by {serving} of {} gateways; {failed} refused it, {pending} pending.",
            change.map(|v| v.to_string()).unwrap_or_else(|| "—".into()),
            gateways.len(),
        )
    };
    view! {
        <section class="panel" aria-labelledby="gw-heading" id="gateway-status">
            <h2 id="gw-heading">"Status per gateway"</h2>
            <p>{text}</p>
            <GatewaysTable gateways change caption="Gateways serving this app"/>
        </section>
    }
    .into_any()
}

/// Requests, denials by filter and WAF hits of the last 24 hours.
#[component]
fn TrafficSection(
    traffic: Option<TrafficSummary>,
    recent: Vec<crate::queries::TrafficRecord>,
    waf_hits: Vec<crate::queries::TrafficRecord>,
) -> impl IntoView {
    let Some(t) = traffic else {
        return view! {
            <section class="panel" id="traffic">
                <h2>"Recent traffic"</h2>
                <EmptyState text="No traffic data."/>
            </section>
        }
        .into_any();
    };
    let labels: Vec<String> = t.by_hour.iter().map(|b| format::hour(&b.hour)).collect();
    let requests: Vec<f64> = t.by_hour.iter().map(|b| b.requests as f64).collect();
    let denied: Vec<f64> = t.by_hour.iter().map(|b| b.denied as f64).collect();
    let by_filter: Vec<(String, f64)> = t
        .denied_by_filter
        .iter()
        .map(|f| (f.filter.clone(), f.count as f64))
        .collect();
    let description = format!(
        "{} and {} in the last 24 hours, hour by hour.",
        format::plural(t.requests, "request", "requests"),
        format::plural(t.denied, "denial", "denials"),
    );
    view! {
        <section class="panel" aria-labelledby="traffic-heading" id="traffic">
            <h2 id="traffic-heading">"Recent traffic (last 24 hours)"</h2>
            <dl class="stats">
                <div><dt>"Requests"</dt><dd id="traffic-requests">{format::count(t.requests)}</dd></div>
                <div><dt>"Denied"</dt><dd id="traffic-denied">{format::count(t.denied)}</dd></div>
                <div><dt>"WAF hits"</dt><dd id="traffic-waf-hits">{format::count(t.waf_hits)}</dd></div>
            </dl>
            {if t.requests == 0 {
                view! { <EmptyState text="No requests in the last 24 hours."/> }.into_any()
            } else {
                view! {
                    <div class="charts">
                        <LineChart
                            id="traffic-chart"
                            title="Requests and denials per hour"
                            description
                            labels
                            series=vec![
                                Series { name: "requests".into(), values: requests },
                                Series { name: "denied".into(), values: denied },
                            ]
                            format=ValueFormat::Count
                        />
                        {(!by_filter.is_empty()).then(|| view! {
                            <BarChart id="denials-by-filter" title="Denials by filter" data=by_filter format=ValueFormat::Count/>
                        })}
                    </div>
                }
                    .into_any()
            }}
            <RecordsTable id="recent-requests" caption="Latest requests" records=recent empty="No requests yet."/>
            <RecordsTable id="app-waf-hits" caption="Latest WAF hits" records=waf_hits empty="No WAF rule has fired on this app."/>
        </section>
    }
    .into_any()
}

/// The version history, with links to each version's changes and rollback buttons.
#[component]
fn History(
    versions: Vec<IntentVersion>,
    current: Option<i64>,
    rollback: Action<i64, Result<(i64, crate::queries::ApplyResult), ApiError>>,
) -> impl IntoView {
    let pending = rollback.pending();
    view! {
        <section class="panel" aria-labelledby="history-heading" id="history">
            <h2 id="history-heading">"Version history"</h2>
            <p class="muted small">
                "A rollback makes an earlier version's content current again, as a new version."
            </p>
            <div class="table-wrap">
                <table>
                    <caption class="sr-only">"Versions, newest first"</caption>
                    <thead>
                        <tr>
                            <th scope="col">"Version"</th>
                            <th scope="col">"What"</th>
                            <th scope="col">"By"</th>
                            <th scope="col">"When"</th>
                            <th scope="col">"Actions"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {versions
                            .into_iter()
                            .map(|v| {
                                let n = v.version;
                                let is_current = current == Some(n);
                                let what = match v.rolled_back_from {
                                    Some(from) => format!("rollback to version {from}"),
                                    None => v.action.clone(),
                                };
                                view! {
                                    <tr class:current=is_current>
                                        <th scope="row">
                                            {format!("{n}")}
                                            {is_current.then(|| view! { <span class="badge ok">"current"</span> })}
                                        </th>
                                        <td>{what}</td>
                                        <td>{v.author.clone()}<span class="muted small">{format!(" ({})", v.actor_kind.to_ascii_lowercase())}</span></td>
                                        <td class="nowrap">{format::date_time(&v.created_at)}</td>
                                        <td class="actions">
                                            {(n > 1).then(|| view! { <a href=format!("?diff={n}")>{format!("Changes in version {n}")}</a> })}
                                            {(!is_current).then(|| view! {
                                                <button
                                                    type="button"
                                                    class="secondary"
                                                    disabled=move || pending.get()
                                                    on:click=move |_| { rollback.dispatch(n); }
                                                >
                                                    {format!("Roll back to version {n}")}
                                                </button>
                                            })}
                                        </td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            </div>
        </section>
    }
    .into_any()
}

/// What one version changed.
#[component]
fn DiffSection(diff: Result<IntentDiff, ApiError>) -> impl IntoView {
    match diff {
        Ok(d) => view! {
            <section class="panel" aria-labelledby="diff-heading" id="version-diff">
                <h2 id="diff-heading">{format!("Changes in version {} (from version {})", d.to, d.from)}</h2>
                <DiffBlock diff=d.text_diff label=format!("Differences between version {} and {}", d.from, d.to)/>
                <h3>"Field by field"</h3>
                <ChangesTable changes=d.changes/>
            </section>
        }
        .into_any(),
        Err(e) => view! {
            <section class="panel" id="version-diff">
                <h2>"Changes"</h2>
                <ErrorNote error=e/>
            </section>
        }
        .into_any(),
    }
}
