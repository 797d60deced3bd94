//! Code blocks: YAML with syntax highlighting, unified diffs, and field-level change lists.

use leptos::prelude::*;

use crate::logic::diff::{LineKind, parse_unified, short_value, stats};
use crate::logic::yaml_highlight::highlight;
use crate::queries::FieldChange;

/// A YAML document, highlighted, in a scrollable block reachable with the keyboard.
#[component]
pub fn YamlBlock(
    /// The text.
    #[prop(into)]
    text: String,
    /// What it is, for screen readers (the block is a focusable region).
    #[prop(into)]
    label: String,
    /// Element id.
    #[prop(optional, into)]
    id: Option<String>,
) -> impl IntoView {
    let lines = highlight(&text);
    view! {
        <pre class="code yaml" tabindex="0" role="region" aria-label=label id=id>
            <code>
                {lines
                    .into_iter()
                    .map(|pieces| {
                        view! {
                            <span class="line">
                                {pieces
                                    .into_iter()
                                    .map(|p| match p.kind.class() {
                                        Some(class) => view! { <span class=class>{p.text}</span> }.into_any(),
                                        None => p.text.into_any(),
                                    })
                                    .collect_view()}
                            </span>
                            "\n"
                        }
                    })
                    .collect_view()}
            </code>
        </pre>
    }
}

/// A unified diff with line numbers, `+`/`-` markers and colours.
#[component]
pub fn DiffBlock(
    /// The unified diff.
    #[prop(into)]
    diff: String,
    /// What it compares, for screen readers.
    #[prop(into)]
    label: String,
) -> impl IntoView {
    let lines = parse_unified(&diff);
    if lines.is_empty() {
        return view! { <p class="empty">"No differences in the text."</p> }.into_any();
    }
    let (added, removed) = stats(&lines);
    let number = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
    view! {
        <p class="diff-stats">
            <span class="d-add-text">{format!("+{added} added")}</span>
            ", "
            <span class="d-del-text">{format!("−{removed} removed")}</span>
        </p>
        <pre class="code diff" tabindex="0" role="region" aria-label=label>
            <code>
                {lines
                    .into_iter()
                    .map(|l| {
                        let marker = match l.kind {
                            LineKind::Added => "+",
                            LineKind::Removed => "-",
                            _ => " ",
                        };
                        let sr = l.kind.label();
                        view! {
                            <span class=format!("line {}", l.kind.class())>
                                <span class="ln" aria-hidden="true">{number(l.old)}</span>
                                <span class="ln" aria-hidden="true">{number(l.new)}</span>
                                <span class="marker" aria-hidden="true">{marker}</span>
                                {(!sr.is_empty()).then(|| view! { <span class="sr-only">{format!("{sr}: ")}</span> })}
                                {l.text}
                            </span>
                            "\n"
                        }
                    })
                    .collect_view()}
            </code>
        </pre>
    }
    .into_any()
}

/// Field-level changes as a table (path, kind, before, after).
#[component]
pub fn ChangesTable(
    /// The changes.
    changes: Vec<FieldChange>,
) -> impl IntoView {
    if changes.is_empty() {
        return view! { <p class="empty">"No field changes."</p> }.into_any();
    }
    view! {
        <div class="table-wrap">
            <table class="changes">
                <caption class="sr-only">"Field changes"</caption>
                <thead>
                    <tr>
                        <th scope="col">"Field"</th>
                        <th scope="col">"Change"</th>
                        <th scope="col">"Before"</th>
                        <th scope="col">"After"</th>
                    </tr>
                </thead>
                <tbody>
                    {changes
                        .into_iter()
                        .map(|c| {
                            let kind = c.kind.to_ascii_lowercase();
                            view! {
                                <tr>
                                    <td><code>{c.path}</code></td>
                                    <td><span class=format!("badge kind-{kind}")>{kind.clone()}</span></td>
                                    <td><code>{short_value(c.before.as_ref(), 80)}</code></td>
                                    <td><code>{short_value(c.after.as_ref(), 80)}</code></td>
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
