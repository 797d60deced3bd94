//! `/`: the security dashboard: how many apps, how many paved, the adoption trend, the latest
//! denials and WAF hits, and the gateways with the snapshot each serves.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::Api;
use crate::components::chart::{BarChart, LineChart, Series, ValueFormat};
use crate::components::status::{EmptyState, ErrorNote, Loading};
use crate::components::tables::{GatewaysTable, RecordsTable};
use crate::logic::chart::tally;
use crate::logic::format;
use crate::queries::{Adoption, DashboardData, dashboard_query};

/// Days of adoption trend drawn.
const TREND_DAYS: i64 = 30;
/// Denials fetched for the by-filter chart (the table shows the first [`LIST`]).
const DENIALS: i64 = 50;
/// Rows per table.
const LIST: usize = 10;

/// `/`: adoption, denials and gateways at a glance.
#[component]
pub fn DashboardPage() -> impl IntoView {
    let api = Api::from_context();
    let data = Resource::new(
        || (),
        move |_| {
            let api = api.clone();
            async move {
                api.query::<DashboardData>(
                    &dashboard_query(),
                    serde_json::json!({"days": TREND_DAYS, "denials": DENIALS, "limit": LIST}),
                )
                .await
            }
        },
    );
    view! {
        <Title text="Security dashboard · Paved"/>
        <h1>"Security dashboard"</h1>
        <Suspense fallback=|| view! { <Loading/> }>
            {move || {
                data.get()
                    .map(|r| match r {
                        Ok(d) => view! { <Dashboard data=d/> }.into_any(),
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

#[component]
fn Dashboard(data: DashboardData) -> impl IntoView {
    let DashboardData {
        adoption,
        recent_denials,
        waf_hits,
        gateways,
        snapshot_version,
    } = data;
    let no_apps = adoption.apps == 0;
    let by_filter = tally(
        recent_denials
            .iter()
            .map(|r| r.denied_by.clone().unwrap_or_else(|| "unknown".into())),
    );
    let denials_sampled = recent_denials.len();
    let mut latest_denials = recent_denials;
    latest_denials.truncate(LIST);
    view! {
        <section aria-labelledby="adoption-heading" class="panel">
            <h2 id="adoption-heading">"Adoption of the paved road"</h2>
            <dl class="stats" id="adoption-stats">
                <div>
                    <dt>"Apps"</dt>
                    <dd id="apps-count">{format::count(adoption.apps)}</dd>
                </div>
                <div>
                    <dt>"Paved"</dt>
                    <dd id="paved-count">{format::count(adoption.paved)}</dd>
                </div>
                <div>
                    <dt>"Adoption rate"</dt>
                    <dd id="adoption-rate">{format::percent(adoption.rate)}</dd>
                </div>
            </dl>
            {no_apps
                .then(|| {
                    view! {
                        <EmptyState
                            text="No apps yet"
                            action=("/onboard".to_string(), "onboard one".to_string())
                        />
                    }
                })}
            <p class="muted small">
                "Paved: sign-in on every non-public route and a blocking WAF on every route. "
                <a href="/apps?paved=no">"Apps that are not paved"</a>
            </p>
            <AdoptionChart adoption/>
        </section>

        <section aria-labelledby="denials-heading" class="panel">
            <h2 id="denials-heading">"Latest denials"</h2>
            {if by_filter.is_empty() {
                ().into_any()
            } else {
                view! {
                    <BarChart
                        id="denials-chart"
                        title=format!(
                            "Denials by filter, latest {}",
                            format::plural(denials_sampled as i64, "request", "requests"),
                        )
                        data=by_filter
                        format=ValueFormat::Count
                    />
                }
                    .into_any()
            }}
            <RecordsTable
                id="recent-denials"
                caption="Latest denied requests"
                records=latest_denials
                empty="No denied requests yet."
                show_app=true
            />
        </section>

        <section aria-labelledby="waf-heading" class="panel">
            <h2 id="waf-heading">"Latest WAF hits"</h2>
            <RecordsTable
                id="waf-hits"
                caption="Requests on which a WAF rule fired (blocked or detected)"
                records=waf_hits
                empty="No WAF rule has fired yet."
                show_app=true
            />
        </section>

        <section aria-labelledby="gateways-heading" class="panel" id="gateways">
            <h2 id="gateways-heading">"Gateways"</h2>
            <GatewaysTable
                gateways
                latest=snapshot_version
                caption="Gateways and the snapshot each serves"
            />
        </section>
    }
    .into_any()
}

/// The adoption rate day by day, as an area chart (`id="adoption-chart"`).
#[component]
fn AdoptionChart(adoption: Adoption) -> impl IntoView {
    let labels: Vec<String> = adoption
        .trend
        .iter()
        .map(|d| format::short_day(&d.day))
        .collect();
    let rates: Vec<f64> = adoption.trend.iter().map(|d| d.rate).collect();
    let description = match (adoption.trend.first(), adoption.trend.last()) {
        (Some(first), Some(last)) => format!(
            "Share of paved apps from {} ({} of {}) to {} ({} of {}).",
            format::short_day(&first.day),
            format::percent(first.rate),
            format::plural(first.apps, "app", "apps"),
            format::short_day(&last.day),
            format::percent(last.rate),
            format::plural(last.apps, "app", "apps"),
        ),
        _ => "No adoption data yet.".to_string(),
    };
    view! {
        <LineChart
            id="adoption-chart"
            title=format!("Adoption rate, last {TREND_DAYS} days")
            description
            labels
            series=vec![Series { name: "paved".into(), values: rates }]
            format=ValueFormat::Percent
            max=1.0
        />
    }
}
