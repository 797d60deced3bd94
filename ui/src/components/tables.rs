//! Tables of requests (denials, WAF hits, recent requests) and of gateways.

use leptos::prelude::*;

use crate::components::status::EmptyState;
use crate::logic::format;
use crate::logic::rollout::progress;
use crate::queries::{Gateway, TrafficRecord};

/// Latest requests: time, app, request, status, the filter that denied it and WAF rules.
#[component]
pub fn RecordsTable(
    /// Element id of the table's section.
    #[prop(into)]
    id: String,
    /// Caption.
    #[prop(into)]
    caption: String,
    /// The records, newest first.
    records: Vec<TrafficRecord>,
    /// Text shown when there are none.
    #[prop(into)]
    empty: String,
    /// Show the app column (the dashboard spans apps).
    #[prop(optional)]
    show_app: bool,
) -> impl IntoView {
    if records.is_empty() {
        return view! {
            <div id=id>
                <h3>{caption}</h3>
                <EmptyState text=empty/>
            </div>
        }
        .into_any();
    }
    view! {
        <div class="table-wrap" id=id>
            <table>
                <caption>{caption}</caption>
                <thead>
                    <tr>
                        <th scope="col">"Time"</th>
                        {show_app.then(|| view! { <th scope="col">"App"</th> })}
                        <th scope="col">"Request"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">"Denied by"</th>
                        <th scope="col">"WAF rules"</th>
                    </tr>
                </thead>
                <tbody>
                    {records
                        .into_iter()
                        .map(|r| {
                            let app_href = format!("/apps/{}", r.app);
                            view! {
                                <tr>
                                    <td class="nowrap">{format::date_time(&r.time)}</td>
                                    {show_app.then(|| view! { <td><a href=app_href>{r.app.clone()}</a></td> })}
                                    <td class="request">
                                        <code>{format!("{} {}", r.method, r.path)}</code>
                                    </td>
                                    <td>{if r.status == 0 { "—".to_string() } else { r.status.to_string() }}</td>
                                    <td>{r.denied_by.unwrap_or_else(|| "—".into())}</td>
                                    <td>
                                        {if r.waf_rules.is_empty() {
                                            "—".to_string()
                                        } else {
                                            r.waf_rules.join(", ")
                                        }}
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

/// Gateways: id, state, the snapshot each serves, and (when `change` is given) whether each
/// serves that change.
#[component]
pub fn GatewaysTable(
    /// The gateways.
    gateways: Vec<Gateway>,
    /// The latest snapshot version.
    #[prop(optional_no_strip)]
    latest: Option<i64>,
    /// The snapshot version carrying a change to follow (adds a column saying whether each
    /// gateway serves it).
    #[prop(optional_no_strip)]
    change: Option<i64>,
    /// Caption.
    #[prop(into)]
    caption: String,
) -> impl IntoView {
    if gateways.is_empty() {
        return view! {
            <EmptyState text="No gateway has connected yet: changes go out when one does."/>
        }
        .into_any();
    }
    view! {
        <div class="table-wrap">
            <table>
                <caption>
                    {caption}
                    {latest.map(|v| view! { <span class="muted">{format!(" (latest snapshot: version {v})")}</span> })}
                </caption>
                <thead>
                    <tr>
                        <th scope="col">"Gateway"</th>
                        <th scope="col">"State"</th>
                        <th scope="col">"Serves snapshot"</th>
                        {change.map(|_| view! { <th scope="col">"This change"</th> })}
                        <th scope="col">"Last seen"</th>
                    </tr>
                </thead>
                <tbody>
                    {gateways
                        .into_iter()
                        .map(|g| {
                            let state_class = match g.state.as_str() {
                                "ACK" => "badge ok",
                                "NACK" => "badge bad",
                                _ => "badge warn",
                            };
                            let served = g
                                .version_served
                                .map(|v| format!("version {v}"))
                                .unwrap_or_else(|| "none yet".into());
                            let up_to_date = if g.up_to_date { " (latest)" } else { "" };
                            let p = change.map(|c| progress(&g, Some(c)));
                            let error = g.error.clone().filter(|_| g.state == "NACK");
                            view! {
                                <tr>
                                    <th scope="row"><code>{g.id.clone()}</code></th>
                                    <td>
                                        <span class=state_class>{g.state.clone()}</span>
                                        {error.map(|e| view! { <span class="error small">{format!(" {e}")}</span> })}
                                    </td>
                                    <td>{served}{up_to_date}</td>
                                    {p.map(|p| view! { <td><span class=p.class()>{p.label()}</span></td> })}
                                    <td class="nowrap">
                                        {g.last_seen.as_deref().map(format::date_time).unwrap_or_default()}
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}
