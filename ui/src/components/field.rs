//! Form fields with a visible label, an optional hint and the control plane's errors next to
//! them. The input's `id` and `name` are the same stable string (tests and labels use it); the
//! hint and the error list are linked with `aria-describedby`, the input is marked
//! `aria-invalid` while it has errors, and new errors are announced (`aria-live`).
//!
//! Values are written into the HTML once (`value="..."`) and the page's field is then the
//! source of truth, reported through `on_input`: text typed before the page became interactive
//! survives hydration (a reactive `value` property would overwrite it), and a step's fields are
//! rebuilt from the wizard's state whenever the step is shown again.

use leptos::prelude::*;

/// Element id of a field's error list.
pub fn error_id(id: &str) -> String {
    format!("{id}-error")
}

fn hint_id(id: &str) -> String {
    format!("{id}-hint")
}

fn described_by(id: &str, has_hint: bool) -> String {
    if has_hint {
        format!("{} {}", hint_id(id), error_id(id))
    } else {
        error_id(id)
    }
}

/// The label text, with "(required)" for required fields.
fn label_text(label: &str, required: bool) -> String {
    if required {
        format!("{label} (required)")
    } else {
        label.to_string()
    }
}

#[component]
fn Hint(id: String, hint: Option<String>) -> impl IntoView {
    hint.map(|h| view! { <p class="hint" id=hint_id(&id)>{h}</p> })
}

/// The error list of field `id` (always present, so `aria-describedby` never dangles).
#[component]
pub fn FieldErrors(
    /// The field's id.
    #[prop(into)]
    id: String,
    /// Its errors.
    #[prop(into)]
    errors: Signal<Vec<String>>,
) -> impl IntoView {
    view! {
        <div class="field-error" id=error_id(&id) aria-live="assertive" aria-atomic="true">
            {move || {
                errors
                    .get()
                    .into_iter()
                    .map(|e| view! { <p>{e}</p> })
                    .collect_view()
            }}
        </div>
    }
}

/// A one-line text input.
#[component]
pub fn TextField(
    /// Element id and form name.
    #[prop(into)]
    id: String,
    /// Visible label.
    #[prop(into)]
    label: String,
    /// Help shown under the label.
    #[prop(optional, into)]
    hint: Option<String>,
    /// The value written into the page.
    #[prop(into)]
    initial: String,
    /// Called with the new value on every keystroke.
    on_input: Callback<String>,
    /// The control plane's errors for this field.
    #[prop(into)]
    errors: Signal<Vec<String>>,
    /// Marked as required (the control plane decides what is valid).
    #[prop(optional)]
    required: bool,
    /// Id of a `<datalist>` with suggestions.
    #[prop(optional, into)]
    list: Option<String>,
    /// `text`, `url`, `number`, `email`...
    #[prop(optional, into)]
    kind: Option<String>,
    /// Example value.
    #[prop(optional, into)]
    placeholder: Option<String>,
    /// Browser autocompletion hint.
    #[prop(optional, into)]
    autocomplete: Option<String>,
) -> impl IntoView {
    let kind = kind.unwrap_or_else(|| "text".into());
    let describedby = described_by(&id, hint.is_some());
    let invalid = move || (!errors.with(Vec::is_empty)).to_string();
    view! {
        <div class="field">
            <label for=id.clone()>{label_text(&label, required)}</label>
            <Hint id=id.clone() hint/>
            <input
                id=id.clone()
                name=id.clone()
                type=kind
                value=initial
                list=list
                on:input=move |ev| on_input.run(event_target_value(&ev))
                aria-describedby=describedby
                aria-invalid=invalid
                aria-required=required.then_some("true")
                placeholder=placeholder
                autocomplete=autocomplete.unwrap_or_else(|| "off".into())
                spellcheck="false"
            />
            <FieldErrors id=id errors/>
        </div>
    }
}

/// A multi-line text input.
#[component]
pub fn TextAreaField(
    /// Element id and form name.
    #[prop(into)]
    id: String,
    /// Visible label.
    #[prop(into)]
    label: String,
    /// Help shown under the label.
    #[prop(optional, into)]
    hint: Option<String>,
    /// The value written into the page.
    #[prop(into)]
    initial: String,
    /// Called with the new value on every keystroke.
    on_input: Callback<String>,
    /// The control plane's errors for this field.
    #[prop(into)]
    errors: Signal<Vec<String>>,
    /// Example value.
    #[prop(optional, into)]
    placeholder: Option<String>,
) -> impl IntoView {
    let describedby = described_by(&id, hint.is_some());
    let invalid = move || (!errors.with(Vec::is_empty)).to_string();
    view! {
        <div class="field">
            <label for=id.clone()>{label}</label>
            <Hint id=id.clone() hint/>
            <textarea
                id=id.clone()
                name=id.clone()
                rows="3"
                on:input=move |ev| on_input.run(event_target_value(&ev))
                aria-describedby=describedby
                aria-invalid=invalid
                placeholder=placeholder
                spellcheck="false"
            >
                {initial}
            </textarea>
            <FieldErrors id=id errors/>
        </div>
    }
}

/// A choice among fixed options.
#[component]
pub fn SelectField(
    /// Element id and form name.
    #[prop(into)]
    id: String,
    /// Visible label.
    #[prop(into)]
    label: String,
    /// Help shown under the label.
    #[prop(optional, into)]
    hint: Option<String>,
    /// (value, text) of each option.
    options: Vec<(&'static str, &'static str)>,
    /// The value chosen when the page is written.
    #[prop(into)]
    initial: String,
    /// Called with the new value.
    on_change: Callback<String>,
    /// The control plane's errors for this field.
    #[prop(into)]
    errors: Signal<Vec<String>>,
) -> impl IntoView {
    let describedby = described_by(&id, hint.is_some());
    let invalid = move || (!errors.with(Vec::is_empty)).to_string();
    view! {
        <div class="field">
            <label for=id.clone()>{label}</label>
            <Hint id=id.clone() hint/>
            <select
                id=id.clone()
                name=id.clone()
                on:change=move |ev| on_change.run(event_target_value(&ev))
                aria-describedby=describedby
                aria-invalid=invalid
            >
                {options
                    .into_iter()
                    .map(|(v, text)| {
                        view! { <option value=v selected=initial == v>{text}</option> }
                    })
                    .collect_view()}
            </select>
            <FieldErrors id=id errors/>
        </div>
    }
}

/// A checkbox with its label beside it.
#[component]
pub fn CheckboxField(
    /// Element id and form name.
    #[prop(into)]
    id: String,
    /// Visible label.
    #[prop(into)]
    label: String,
    /// Help shown under the label.
    #[prop(optional, into)]
    hint: Option<String>,
    /// Checked when the page is written.
    initial: bool,
    /// Called with the new state.
    on_change: Callback<bool>,
    /// The control plane's errors for this field.
    #[prop(into)]
    errors: Signal<Vec<String>>,
) -> impl IntoView {
    let describedby = described_by(&id, hint.is_some());
    let invalid = move || (!errors.with(Vec::is_empty)).to_string();
    view! {
        <div class="field checkbox">
            <input
                type="checkbox"
                id=id.clone()
                name=id.clone()
                checked=initial
                on:change=move |ev| on_change.run(event_target_checked(&ev))
                aria-describedby=describedby
                aria-invalid=invalid
            />
            <label for=id.clone()>{label}</label>
            <Hint id=id.clone() hint/>
            <FieldErrors id=id errors/>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_and_errors_are_both_described() {
        assert_eq!(described_by("domain", true), "domain-hint domain-error");
        assert_eq!(described_by("team", false), "team-error");
        assert_eq!(label_text("Domain", true), "Domain (required)");
    }
}
