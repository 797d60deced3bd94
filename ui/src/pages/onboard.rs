//! `/onboard`: the onboarding wizard. One step at a time (app and owners, domain, upstream,
//! who may enter, exposure, protection), each checked by the control plane's `planIntent`
//! before "Next" moves on; the last step shows the generated `paved.yaml`, the plan and
//! "Apply"; after applying, the live URL, the roll-out per gateway (live, by subscription) and
//! a curl example.
//!
//! The logic (steps, the intent sent at each step, mapping diagnostics to fields) is
//! `logic::wizard`; this module holds the form state and draws it. The wizard needs
//! JavaScript (validation happens as you go); without it the page says how to apply a
//! `paved.yaml` instead.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::{Api, ApiError};
use crate::components::code::{ChangesTable, DiffBlock, YamlBlock};
use crate::components::field::{CheckboxField, SelectField, TextAreaField, TextField};
use crate::components::status::{ErrorNote, Loading};
use crate::components::tables::GatewaysTable;
use crate::live;
use crate::logic::intent_yaml::to_yaml;
use crate::logic::rollout::summary;
use crate::logic::upstream::parse_upstream;
use crate::logic::wizard::{
    PopulationFields, RouteFields, Step, StepCheck, WizardFields, WizardState, assess, draft,
    field_label, ids,
};
use crate::queries::{
    APPLY, Applied, ApplyData, CHECK_UPSTREAM, CheckUpstreamData, GatewaysData, ME, Me, MeData,
    PLAN, Plan, PlanData, RolloutEventData, UpstreamCheck, gateway_rollout_subscription,
    gateways_query,
};
use crate::settings::UiSettings;

/// Id of the heading focused when a step is shown.
const STEP_HEADING: &str = "step-heading";
/// Id of the step's error summary.
const STEP_ERRORS: &str = "step-errors";

/// A row of a repeated group, with a key that stays while the row exists.
#[derive(Debug, Clone, PartialEq)]
struct Row<T> {
    key: u64,
    value: T,
}

/// The form's state: one signal per field (text as typed), rows for the repeated groups.
#[derive(Clone, Copy)]
struct Form {
    app_name: RwSignal<String>,
    team: RwSignal<Option<String>>,
    owners: RwSignal<Option<String>>,
    description: RwSignal<String>,
    domain: RwSignal<String>,
    upstream: RwSignal<String>,
    populations: RwSignal<Vec<Row<PopulationFields>>>,
    routes: RwSignal<Vec<Row<RouteFields>>>,
    service_clients: RwSignal<String>,
    internet_facing: RwSignal<bool>,
    data_sensitivity: RwSignal<String>,
    waf_mode: RwSignal<String>,
    rate_limit: RwSignal<String>,
    rate_requests: RwSignal<String>,
    rate_per: RwSignal<String>,
    rate_key: RwSignal<String>,
    rate_burst: RwSignal<String>,
    next_key: RwSignal<u64>,
}

impl Form {
    /// A form with the wizard's defaults, prefilled from the page's query string (a "Next"
    /// pressed before the page became interactive submits the form as a GET: nothing typed is
    /// lost).
    fn new(prefill: impl Fn(&str) -> Option<String>) -> Form {
        let d = WizardFields::default();
        let text = |id: &str, default: String| RwSignal::new(prefill(id).unwrap_or(default));
        Form {
            app_name: text(ids::APP_NAME, d.app_name),
            team: RwSignal::new(prefill(ids::TEAM)),
            owners: RwSignal::new(prefill(ids::OWNERS)),
            description: text(ids::DESCRIPTION, d.description),
            domain: text(ids::DOMAIN, d.domain),
            upstream: text(ids::UPSTREAM, d.upstream),
            populations: RwSignal::new(Vec::new()),
            routes: RwSignal::new(vec![Row {
                key: 0,
                value: RouteFields::default(),
            }]),
            service_clients: text(ids::SERVICE_CLIENTS, d.service_clients),
            internet_facing: RwSignal::new(d.internet_facing),
            data_sensitivity: text(ids::DATA_SENSITIVITY, d.data_sensitivity),
            waf_mode: text(ids::WAF_MODE, d.waf_mode),
            rate_limit: text(ids::RATE_LIMIT, d.rate_limit),
            rate_requests: text(ids::RATE_LIMIT_REQUESTS, d.rate_requests),
            rate_per: text(ids::RATE_LIMIT_PER, d.rate_per),
            rate_key: text(ids::RATE_LIMIT_KEY, d.rate_key),
            rate_burst: text(ids::RATE_LIMIT_BURST, d.rate_burst),
            next_key: RwSignal::new(1),
        }
    }

    /// Everything as [`WizardFields`]; owners and team fall back to the caller's defaults.
    fn snapshot(&self, me: &Me) -> WizardFields {
        WizardFields {
            app_name: self.app_name.get_untracked(),
            team: self
                .team
                .get_untracked()
                .unwrap_or_else(|| default_team(me)),
            owners: self
                .owners
                .get_untracked()
                .unwrap_or_else(|| me.name.clone()),
            description: self.description.get_untracked(),
            domain: self.domain.get_untracked(),
            upstream: self.upstream.get_untracked(),
            populations: self
                .populations
                .get_untracked()
                .into_iter()
                .map(|r| r.value)
                .collect(),
            routes: self
                .routes
                .get_untracked()
                .into_iter()
                .map(|r| r.value)
                .collect(),
            service_clients: self.service_clients.get_untracked(),
            internet_facing: self.internet_facing.get_untracked(),
            data_sensitivity: self.data_sensitivity.get_untracked(),
            waf_mode: self.waf_mode.get_untracked(),
            rate_limit: self.rate_limit.get_untracked(),
            rate_requests: self.rate_requests.get_untracked(),
            rate_per: self.rate_per.get_untracked(),
            rate_key: self.rate_key.get_untracked(),
            rate_burst: self.rate_burst.get_untracked(),
        }
    }

    /// Takes the values of `step`'s fields from the page (text typed before the page became
    /// interactive raised no input event).
    fn sync_from_page(&self, step: Step) {
        let text = |id: &str, signal: RwSignal<String>| {
            if let Some(v) = live::field_value(id) {
                signal.set(v);
            }
        };
        let optional = |id: &str, signal: RwSignal<Option<String>>| {
            if let Some(v) = live::field_value(id) {
                signal.set(Some(v));
            }
        };
        match step {
            Step::App => {
                text(ids::APP_NAME, self.app_name);
                optional(ids::TEAM, self.team);
                optional(ids::OWNERS, self.owners);
                text(ids::DESCRIPTION, self.description);
            }
            Step::Domain => text(ids::DOMAIN, self.domain),
            Step::Upstream => text(ids::UPSTREAM, self.upstream),
            Step::Access => {
                text(ids::SERVICE_CLIENTS, self.service_clients);
                self.populations.update(|rows| {
                    for (i, row) in rows.iter_mut().enumerate() {
                        let read = |part: &str| live::field_value(&ids::population(i, part));
                        if let Some(v) = read("name") {
                            row.value.name = v;
                        }
                        if let Some(v) = read("groups") {
                            row.value.groups = v;
                        }
                        if let Some(v) = read("claims") {
                            row.value.claims = v;
                        }
                    }
                });
                self.routes.update(|rows| {
                    for (i, row) in rows.iter_mut().enumerate() {
                        if let Some(v) = live::field_value(&ids::route(i, "path")) {
                            row.value.path = v;
                        }
                        if let Some(v) = live::field_value(&ids::route(i, "allow")) {
                            row.value.allow = v;
                        }
                    }
                });
            }
            Step::Exposure => text(ids::DATA_SENSITIVITY, self.data_sensitivity),
            Step::Protection => {
                text(ids::WAF_MODE, self.waf_mode);
                text(ids::RATE_LIMIT, self.rate_limit);
                text(ids::RATE_LIMIT_REQUESTS, self.rate_requests);
                text(ids::RATE_LIMIT_PER, self.rate_per);
                text(ids::RATE_LIMIT_KEY, self.rate_key);
                text(ids::RATE_LIMIT_BURST, self.rate_burst);
            }
            Step::Review => {}
        }
    }

    fn take_key(&self) -> u64 {
        let key = self.next_key.get_untracked();
        self.next_key.set(key + 1);
        key
    }
}

/// The team suggested to a person in exactly one team.
fn default_team(me: &Me) -> String {
    match me.teams.as_slice() {
        [one] => one.clone(),
        _ => String::new(),
    }
}

/// The wizard's shared state, passed to every step.
#[derive(Clone, Copy)]
struct Wizard {
    form: Form,
    state: RwSignal<WizardState>,
    upstream_check: RwSignal<Option<Result<UpstreamCheck, ApiError>>>,
    checking_upstream: RwSignal<bool>,
    review: RwSignal<Option<Result<Plan, ApiError>>>,
    applying: RwSignal<bool>,
    apply_check: RwSignal<Option<(ApiError, StepCheck)>>,
    applied: RwSignal<Option<Applied>>,
    me: StoredValue<Me>,
}

impl Wizard {
    /// Errors of field `id` from the last check.
    fn errors(&self, id: impl Into<String>) -> Signal<Vec<String>> {
        let state = self.state;
        let id = id.into();
        Signal::derive(move || state.with(|s| s.check.errors_for(&id).to_vec()))
    }

    fn fields(&self) -> WizardFields {
        self.form.snapshot(&self.me.get_value())
    }

    /// The full intent (no placeholders left at the last step).
    fn final_yaml(&self) -> String {
        to_yaml(&draft(&self.fields(), Step::Review).draft)
    }
}

/// `/onboard`.
#[component]
pub fn OnboardPage() -> impl IntoView {
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
    let interactive = RwSignal::new(false);
    // Effects run only in the browser, once the page is hydrated.
    Effect::new(move |_| interactive.set(true));
    let query = use_query_map();
    let form = Form::new(move |id: &str| {
        query
            .with_untracked(|q| q.get(id))
            .filter(|v| !v.is_empty())
    });
    view! {
        <Title text="Onboard an app · Paved"/>
        <h1>"Onboard an app"</h1>
        // Shown until the browser module takes over (and for good without JavaScript): a
        // `<noscript>` would break hydration (its content is raw text when scripts run).
        {move || (!interactive.get()).then(|| view! {
            <p class="note" id="wizard-needs-js">
                "The wizard checks each step with the control plane as you go, which needs JavaScript "
                "(still loading, or turned off). Without it, write a paved.yaml (see docs/intent.md) and run "
                <code>"paved apply -f paved.yaml"</code> "."
            </p>
        })}
        <Suspense fallback=|| view! { <Loading/> }>
            {move || {
                me.get()
                    .map(|r| match r {
                        Ok(me) => view! { <WizardView me form/> }.into_any(),
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

#[component]
fn WizardView(me: Me, form: Form) -> impl IntoView {
    let api = Api::from_context();
    let wizard = Wizard {
        form,
        state: RwSignal::new(WizardState::default()),
        upstream_check: RwSignal::new(None),
        checking_upstream: RwSignal::new(false),
        review: RwSignal::new(None),
        applying: RwSignal::new(false),
        apply_check: RwSignal::new(None),
        applied: RwSignal::new(None),
        me: StoredValue::new(me),
    };
    let step = Memo::new(move |_| wizard.state.with(|s| s.step));

    let plan_review = {
        let api = api.clone();
        move || {
            wizard.review.set(None);
            let yaml = wizard.final_yaml();
            let api = api.clone();
            spawn_local(async move {
                let plan = api
                    .query::<PlanData>(PLAN, serde_json::json!({"yaml": yaml}))
                    .await
                    .map(|d| d.plan_intent);
                wizard.review.set(Some(plan));
            });
        }
    };

    let check_upstream = {
        let api = api.clone();
        move || {
            let text = wizard.form.upstream.get_untracked();
            if text.trim().is_empty() || wizard.checking_upstream.get_untracked() {
                return;
            }
            let url = parse_upstream(&text)
                .map(|t| t.check_url())
                .unwrap_or_else(|| text.trim().to_string());
            wizard.checking_upstream.set(true);
            let api = api.clone();
            spawn_local(async move {
                let result = api
                    .query::<CheckUpstreamData>(CHECK_UPSTREAM, serde_json::json!({"url": url}))
                    .await
                    .map(|d| d.check_upstream);
                wizard.upstream_check.set(Some(result));
                wizard.checking_upstream.set(false);
            });
        }
    };

    let apply = {
        let api = api.clone();
        move || {
            if wizard.applying.get_untracked() {
                return;
            }
            wizard.applying.set(true);
            wizard.apply_check.set(None);
            let fields = wizard.fields();
            let drafted = draft(&fields, Step::Review);
            let yaml = to_yaml(&drafted.draft);
            let api = api.clone();
            spawn_local(async move {
                match api
                    .query::<ApplyData>(APPLY, serde_json::json!({"yaml": yaml}))
                    .await
                {
                    Ok(d) => {
                        wizard.applied.set(Some(d.apply_intent));
                        focus_soon("applied-heading");
                    }
                    Err(e) => {
                        let check = assess(Step::Review, &drafted, Some(&e));
                        wizard.apply_check.set(Some((e, check)));
                        focus_soon(STEP_ERRORS);
                    }
                }
                wizard.applying.set(false);
            });
        }
    };

    let on_submit = {
        let api = api.clone();
        let plan_review = plan_review.clone();
        let check_upstream = check_upstream.clone();
        let apply = apply.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let current = wizard.state.with_untracked(|s| s.step);
            if current == Step::Review {
                apply();
                return;
            }
            wizard.form.sync_from_page(current);
            let started = wizard
                .state
                .try_update(|s| s.begin_check())
                .unwrap_or(false);
            if !started {
                return;
            }
            if current == Step::Upstream {
                check_upstream();
            }
            let drafted = draft(&wizard.fields(), current);
            let yaml = to_yaml(&drafted.draft);
            let api = api.clone();
            let plan_review = plan_review.clone();
            spawn_local(async move {
                let plan = api
                    .query::<PlanData>(PLAN, serde_json::json!({"yaml": yaml}))
                    .await
                    .map(|d| d.plan_intent);
                let check = assess(current, &drafted, plan.as_ref().err());
                let first_error = check.field_errors.keys().next().cloned();
                let moved = wizard
                    .state
                    .try_update(|s| s.finish_check(current, check))
                    .unwrap_or(false);
                if moved {
                    if current.next() == Some(Step::Review) {
                        // The intent checked at the step before the last is the final one.
                        match plan {
                            Ok(p) => wizard.review.set(Some(Ok(p))),
                            Err(_) => plan_review(),
                        }
                    }
                    focus_soon(STEP_HEADING);
                } else {
                    focus_soon_owned(first_error.unwrap_or_else(|| STEP_ERRORS.to_string()));
                }
            });
        }
    };

    let go_back = move |_| {
        wizard.state.update(WizardState::back);
        focus_soon(STEP_HEADING);
    };

    let jump = {
        let plan_review = plan_review.clone();
        move |target: Step| {
            let current = wizard.state.with_untracked(|s| s.step);
            wizard.form.sync_from_page(current);
            if wizard
                .state
                .try_update(|s| s.go_to(target))
                .unwrap_or(false)
            {
                if target == Step::Review {
                    plan_review();
                }
                focus_soon(STEP_HEADING);
            }
        }
    };

    let restart = move |_| {
        let d = WizardFields::default();
        let f = wizard.form;
        f.app_name.set(d.app_name);
        f.team.set(None);
        f.owners.set(None);
        f.description.set(d.description);
        f.domain.set(d.domain);
        f.upstream.set(d.upstream);
        f.populations.set(Vec::new());
        f.routes.set(
            d.routes
                .into_iter()
                .map(|value| Row {
                    key: f.take_key(),
                    value,
                })
                .collect(),
        );
        f.service_clients.set(d.service_clients);
        f.internet_facing.set(d.internet_facing);
        f.data_sensitivity.set(d.data_sensitivity);
        f.waf_mode.set(d.waf_mode);
        f.rate_limit.set(d.rate_limit);
        f.rate_requests.set(d.rate_requests);
        f.rate_per.set(d.rate_per);
        f.rate_key.set(d.rate_key);
        f.rate_burst.set(d.rate_burst);
        wizard.state.set(WizardState::default());
        wizard.upstream_check.set(None);
        wizard.review.set(None);
        wizard.apply_check.set(None);
        wizard.applied.set(None);
        focus_soon(STEP_HEADING);
    };

    view! {
        {move || match wizard.applied.get() {
            Some(applied) => view! { <AppliedView applied restart/> }.into_any(),
            None => {
                let jump = jump.clone();
                let on_submit = on_submit.clone();
                let check_upstream = check_upstream.clone();
                view! {
                    <StepNav wizard step jump/>
                    <form class="wizard" novalidate=true on:submit=on_submit>
                        <StepSummary wizard/>
                        {move || {
                            let check_upstream = check_upstream.clone();
                            let s = step.get();
                            view! {
                                <fieldset class="step">
                                    <legend class="sr-only">{format!("Step {} of {}: {}", s.number(), Step::ALL.len(), s.title())}</legend>
                                    <h2 id=STEP_HEADING tabindex="-1">
                                        <span class="step-number">{format!("Step {} of {}", s.number(), Step::ALL.len())}</span>
                                        {s.title()}
                                    </h2>
                                    {match s {
                                        Step::App => view! { <AppStep wizard/> }.into_any(),
                                        Step::Domain => view! { <DomainStep wizard/> }.into_any(),
                                        Step::Upstream => view! { <UpstreamStep wizard check=Callback::new(move |_| check_upstream())/> }.into_any(),
                                        Step::Access => view! { <AccessStep wizard/> }.into_any(),
                                        Step::Exposure => view! { <ExposureStep wizard/> }.into_any(),
                                        Step::Protection => view! { <ProtectionStep wizard/> }.into_any(),
                                        Step::Review => view! { <ReviewStep wizard/> }.into_any(),
                                    }}
                                </fieldset>
                            }
                        }}
                        <div class="wizard-buttons">
                            {move || (step.get() != Step::App).then(|| view! {
                                <button type="button" class="secondary" on:click=go_back>"Back"</button>
                            })}
                            {move || {
                                let busy = wizard.state.with(|s| s.checking) || wizard.applying.get();
                                let text = if step.get() == Step::Review { "Apply" } else { "Next" };
                                view! {
                                    <button type="submit" class="primary" aria-busy=busy.to_string()>{text}</button>
                                }
                            }}
                            <span class="muted" role="status" aria-live="polite">
                                {move || {
                                    if wizard.state.with(|s| s.checking) {
                                        "Checking with the control plane…"
                                    } else if wizard.applying.get() {
                                        "Applying…"
                                    } else {
                                        ""
                                    }
                                }}
                            </span>
                        </div>
                    </form>
                }
                    .into_any()
            }
        }}
    }
}

/// Sets the keyboard focus on `id` once the page shows it.
fn focus_soon(id: &'static str) {
    focus_soon_owned(id.to_string());
}

fn focus_soon_owned(id: String) {
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    request_animation_frame(move || live::focus(&id));
    #[cfg(not(all(feature = "hydrate", not(feature = "ssr"))))]
    let _ = id;
}

/// The steps, as a list; steps already reached can be revisited.
#[component]
fn StepNav(
    wizard: Wizard,
    step: Memo<Step>,
    jump: impl Fn(Step) + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let furthest = Memo::new(move |_| wizard.state.with(|s| s.furthest));
    view! {
        <nav aria-label="Wizard steps">
            <ol class="steps">
                {Step::ALL
                    .into_iter()
                    .map(|s| {
                        let jump = jump.clone();
                        move || {
                            let jump = jump.clone();
                            let current = step.get() == s;
                            let label = format!("{}. {}", s.number(), s.title());
                            if current {
                                view! { <li class="current" aria-current="step">{label}</li> }.into_any()
                            } else if s <= furthest.get() {
                                view! {
                                    <li class="done">
                                        <button type="button" class="link-button" on:click=move |_| jump(s)>
                                            {label}
                                        </button>
                                    </li>
                                }
                                    .into_any()
                            } else {
                                view! { <li class="todo">{label}</li> }.into_any()
                            }
                        }
                    })
                    .collect_view()}
            </ol>
        </nav>
    }
}

/// Problems of the step as a whole, and notes about other steps.
#[component]
fn StepSummary(wizard: Wizard) -> impl IntoView {
    view! {
        <div id=STEP_ERRORS tabindex="-1" class="step-errors" aria-live="assertive">
            {move || {
                let (check, apply_error) = match wizard.apply_check.get() {
                    Some((e, check)) if wizard.state.with(|s| s.step) == Step::Review => (check, Some(e)),
                    _ => (wizard.state.with(|s| s.check.clone()), None),
                };
                let signed_out = check.signed_out
                    || matches!(apply_error, Some(ApiError::SignedOut));
                let field_count = check.field_errors.len();
                let blocking = !check.general.is_empty() || signed_out || field_count > 0;
                view! {
                    {signed_out.then(|| view! { <ErrorNote error=ApiError::SignedOut/> })}
                    {blocking.then(|| view! {
                        <div class="error-summary" role="alert">
                            <p><strong>"This step needs changes before you continue."</strong></p>
                            <ul>
                                {check.general.iter().map(|g| view! { <li>{g.clone()}</li> }).collect_view()}
                                {check.field_errors.iter().map(|(id, messages)| {
                                    let href = format!("#{id}");
                                    view! { <li><a href=href>{field_label(id)}</a>{format!(": {}", messages.join("; "))}</li> }
                                }).collect_view()}
                            </ul>
                        </div>
                    })}
                    {(!check.notes.is_empty()).then(|| view! {
                        <div class="notes">
                            <p>"The control plane also noted (for later steps; not blocking):"</p>
                            <ul>{check.notes.iter().map(|n| view! { <li>{n.message.clone()}</li> }).collect_view()}</ul>
                        </div>
                    })}
                }
            }}
        </div>
    }
}

fn text_setter(signal: RwSignal<String>) -> Callback<String> {
    Callback::new(move |v| signal.set(v))
}

#[component]
fn AppStep(wizard: Wizard) -> impl IntoView {
    let f = wizard.form;
    let me = wizard.me.get_value();
    let teams = me.teams.clone();
    let owners = f.owners.get_untracked().unwrap_or_else(|| me.name.clone());
    let team = f.team.get_untracked().unwrap_or_else(|| default_team(&me));
    view! {
        <p class="lead">"Name the app and say who is accountable for it."</p>
        <TextField
            id=ids::APP_NAME
            label="App name"
            hint="Lowercase letters, digits and -, starting with a letter; unique across apps."
            initial=f.app_name.get_untracked()
            on_input=text_setter(f.app_name)
            errors=wizard.errors(ids::APP_NAME)
            required=true
            placeholder="orders"
        />
        <TextField
            id=ids::TEAM
            label="Owner team"
            hint="The team that owns the app."
            initial=team
            on_input=Callback::new(move |v| f.team.set(Some(v)))
            errors=wizard.errors(ids::TEAM)
            list="my-teams"
        />
        <datalist id="my-teams">
            {teams.into_iter().map(|t| view! { <option value=t></option> }).collect_view()}
        </datalist>
        <TextField
            id=ids::OWNERS
            label="Owners"
            hint="E-mail addresses or user names, separated by commas."
            initial=owners
            on_input=Callback::new(move |v| f.owners.set(Some(v)))
            errors=wizard.errors(ids::OWNERS)
            required=true
        />
        <TextField
            id=ids::DESCRIPTION
            label="Description"
            hint="What the app does (optional)."
            initial=f.description.get_untracked()
            on_input=text_setter(f.description)
            errors=wizard.errors(ids::DESCRIPTION)
        />
    }
    .into_any()
}

#[component]
fn DomainStep(wizard: Wizard) -> impl IntoView {
    let f = wizard.form;
    view! {
        <p class="lead">"Where people reach the app. The gateway serves it on this name."</p>
        <TextField
            id=ids::DOMAIN
            label="Domain"
            hint="Such as orders.example.com; several separated by commas; *.preview.example.com for one-label wildcards."
            initial=f.domain.get_untracked()
            on_input=text_setter(f.domain)
            errors=wizard.errors(ids::DOMAIN)
            required=true
            placeholder="orders.example.com"
        />
    }
}

#[component]
fn UpstreamStep(wizard: Wizard, check: Callback<()>) -> impl IntoView {
    let f = wizard.form;
    view! {
        <p class="lead">"What serves the app: the gateway forwards requests to this address."</p>
        <TextField
            id=ids::UPSTREAM
            label="Upstream URL"
            hint="Such as http://10.0.0.5:8080 or https://orders.internal (TLS to the upstream), or host:port."
            initial=f.upstream.get_untracked()
            on_input=Callback::new(move |v| {
                f.upstream.set(v);
                wizard.upstream_check.set(None);
            })
            errors=wizard.errors(ids::UPSTREAM)
            required=true
            kind="text"
            placeholder="http://10.0.0.5:8080"
        />
        <div class="inline-actions">
            <button type="button" class="secondary" on:click=move |_| check.run(())>
                "Check reachability"
            </button>
            <span id="upstream-check" role="status" aria-live="polite">
                {move || {
                    if wizard.checking_upstream.get() {
                        return view! { <span class="muted">"Checking…"</span> }.into_any();
                    }
                    match wizard.upstream_check.get() {
                        None => ().into_any(),
                        Some(Ok(c)) if c.reachable => view! {
                            <span class="badge ok">"reachable"</span>
                            {c.status.map(|s| format!(" The control plane got HTTP {s}."))}
                        }
                            .into_any(),
                        Some(Ok(c)) => view! {
                            <span class="badge warn">"not reachable"</span>
                            {format!(
                                " The control plane could not reach it ({}). The gateway may sit elsewhere in the network: you can continue.",
                                c.error.unwrap_or_else(|| "no answer".into()),
                            )}
                        }
                            .into_any(),
                        Some(Err(e)) => view! {
                            <span class="badge warn">"not checked"</span>
                            {format!(" {e}")}
                        }
                            .into_any(),
                    }
                }}
            </span>
        </div>
    }
}

#[component]
fn AccessStep(wizard: Wizard) -> impl IntoView {
    let f = wizard.form;
    let add_population = move |_| {
        let key = f.take_key();
        f.populations.update(|rows| {
            rows.push(Row {
                key,
                value: PopulationFields::default(),
            })
        });
    };
    let add_route = move |_| {
        let key = f.take_key();
        f.routes.update(|rows| {
            rows.push(Row {
                key,
                value: RouteFields {
                    path: String::new(),
                    ..RouteFields::default()
                },
            })
        });
    };
    let population_rows = move || {
        f.populations
            .get()
            .into_iter()
            .enumerate()
            .collect::<Vec<(usize, Row<PopulationFields>)>>()
    };
    let route_rows = move || {
        f.routes
            .get()
            .into_iter()
            .enumerate()
            .collect::<Vec<(usize, Row<RouteFields>)>>()
    };
    view! {
        <p class="lead">
            "Every route requires single sign-on. Without populations any signed-in user may enter; "
            "with them, each route admits the populations it lists (all of them when it lists none)."
        </p>
        <h3>"User populations"</h3>
        <For
            each=population_rows
            key=|(i, row)| (*i, row.key)
            children=move |(i, row)| view! { <PopulationRow wizard index=i row/> }
        />
        {move || f.populations.with(Vec::is_empty).then(|| view! {
            <p class="empty">"No populations: any signed-in user may enter."</p>
        })}
        <button type="button" class="secondary" on:click=add_population>"Add a population"</button>

        <h3>"Routes"</h3>
        <For
            each=route_rows
            key=|(i, row)| (*i, row.key)
            children=move |(i, row)| view! { <RouteRow wizard index=i row/> }
        />
        <button type="button" class="secondary" on:click=add_route>"Add a route"</button>

        <h3>"Services"</h3>
        <TextField
            id=ids::SERVICE_CLIENTS
            label="Service clients"
            hint="OAuth client ids of services that call the app with a bearer token, separated by commas (optional)."
            initial=f.service_clients.get_untracked()
            on_input=text_setter(f.service_clients)
            errors=wizard.errors(ids::SERVICE_CLIENTS)
        />
    }
    .into_any()
}

#[component]
fn PopulationRow(wizard: Wizard, index: usize, row: Row<PopulationFields>) -> impl IntoView {
    let f = wizard.form;
    let key = row.key;
    let edit = move |change: fn(&mut PopulationFields, String)| {
        Callback::new(move |v: String| {
            f.populations.update(|rows| {
                if let Some(r) = rows.iter_mut().find(|r| r.key == key) {
                    change(&mut r.value, v);
                }
            })
        })
    };
    let remove = move |_| f.populations.update(|rows| rows.retain(|r| r.key != key));
    let label = if row.value.name.is_empty() {
        format!("population {}", index + 1)
    } else {
        row.value.name.clone()
    };
    view! {
        <div class="row-group" role="group" aria-label=format!("Population {}", index + 1)>
            <TextField
                id=ids::population(index, "name")
                label="Name"
                initial=row.value.name.clone()
                on_input=edit(|p, v| p.name = v)
                errors=wizard.errors(ids::population(index, "name"))
                placeholder="staff"
            />
            <TextField
                id=ids::population(index, "groups")
                label="Groups"
                hint="Identity-provider groups, separated by commas; being in any one admits."
                initial=row.value.groups.clone()
                on_input=edit(|p, v| p.groups = v)
                errors=wizard.errors(ids::population(index, "groups"))
                placeholder="all-staff"
            />
            <TextAreaField
                id=ids::population(index, "claims")
                label="Claims"
                hint="One per line: claim = value, value. Every claim must hold one of its values."
                initial=row.value.claims.clone()
                on_input=edit(|p, v| p.claims = v)
                errors=wizard.errors(ids::population(index, "claims"))
                placeholder="acr = mfa"
            />
            <button type="button" class="secondary" on:click=remove>{format!("Remove {label}")}</button>
        </div>
    }
}

#[component]
fn RouteRow(wizard: Wizard, index: usize, row: Row<RouteFields>) -> impl IntoView {
    let f = wizard.form;
    let key = row.key;
    let edit = move |change: fn(&mut RouteFields, String)| {
        Callback::new(move |v: String| {
            f.routes.update(|rows| {
                if let Some(r) = rows.iter_mut().find(|r| r.key == key) {
                    change(&mut r.value, v);
                }
            })
        })
    };
    let set_public = Callback::new(move |v: bool| {
        f.routes.update(|rows| {
            if let Some(r) = rows.iter_mut().find(|r| r.key == key) {
                r.value.public = v;
            }
        })
    });
    let remove = move |_| f.routes.update(|rows| rows.retain(|r| r.key != key));
    let removable = index > 0;
    view! {
        <div class="row-group" role="group" aria-label=format!("Route {}", index + 1)>
            <TextField
                id=ids::route(index, "path")
                label="Path prefix"
                hint="Matched on whole segments: /api matches /api/x, not /apix."
                initial=row.value.path.clone()
                on_input=edit(|r, v| r.path = v)
                errors=wizard.errors(ids::route(index, "path"))
                placeholder="/"
            />
            <TextField
                id=ids::route(index, "allow")
                label="Allowed populations"
                hint="Names of populations above, separated by commas; empty: all of them."
                initial=row.value.allow.clone()
                on_input=edit(|r, v| r.allow = v)
                errors=wizard.errors(ids::route(index, "allow"))
            />
            <CheckboxField
                id=ids::route(index, "public")
                label="Public: no sign-in on this route"
                initial=row.value.public
                on_change=set_public
                errors=wizard.errors(ids::route(index, "public"))
            />
            {removable.then(|| view! {
                <button type="button" class="secondary" on:click=remove>{format!("Remove route {}", index + 1)}</button>
            })}
        </div>
    }
}

#[component]
fn ExposureStep(wizard: Wizard) -> impl IntoView {
    let f = wizard.form;
    view! {
        <p class="lead">"How exposed the app is and how sensitive its data: recorded with the app for reviews and adoption tracking."</p>
        <CheckboxField
            id=ids::INTERNET_FACING
            label="Internet-facing: reachable from the internet"
            initial=f.internet_facing.get_untracked()
            on_change=Callback::new(move |v| f.internet_facing.set(v))
            errors=wizard.errors(ids::INTERNET_FACING)
        />
        <SelectField
            id=ids::DATA_SENSITIVITY
            label="Data sensitivity"
            hint="The most sensitive data the app handles."
            options=vec![
                ("public", "Public"),
                ("internal", "Internal"),
                ("confidential", "Confidential"),
                ("restricted", "Restricted"),
            ]
            initial=f.data_sensitivity.get_untracked()
            on_change=text_setter(f.data_sensitivity)
            errors=wizard.errors(ids::DATA_SENSITIVITY)
        />
    }
}

#[component]
fn ProtectionStep(wizard: Wizard) -> impl IntoView {
    let f = wizard.form;
    let custom = Memo::new(move |_| f.rate_limit.get() == "custom");
    view! {
        <p class="lead">"The WAF and rate limits. The defaults are the paved road."</p>
        <SelectField
            id=ids::WAF_MODE
            label="WAF mode"
            hint="Block denies attacks with 403 (paved); detect only logs them (not paved)."
            options=vec![("block", "Block (paved)"), ("detect", "Detect only")]
            initial=f.waf_mode.get_untracked()
            on_change=text_setter(f.waf_mode)
            errors=wizard.errors(ids::WAF_MODE)
        />
        <SelectField
            id=ids::RATE_LIMIT
            label="Rate limit"
            options=vec![
                ("default", "Platform default (per client IP)"),
                ("custom", "Custom limit"),
                ("none", "No limit"),
            ]
            initial=f.rate_limit.get_untracked()
            on_change=text_setter(f.rate_limit)
            errors=wizard.errors(ids::RATE_LIMIT)
        />
        {move || custom.get().then(|| view! {
            <div class="row-group" role="group" aria-label="Custom rate limit">
                <TextField
                    id=ids::RATE_LIMIT_REQUESTS
                    label="Requests per window"
                    initial=f.rate_requests.get_untracked()
                    on_input=text_setter(f.rate_requests)
                    errors=wizard.errors(ids::RATE_LIMIT_REQUESTS)
                    kind="number"
                    required=true
                />
                <SelectField
                    id=ids::RATE_LIMIT_PER
                    label="Window"
                    options=vec![("second", "Second"), ("minute", "Minute"), ("hour", "Hour")]
                    initial=f.rate_per.get_untracked()
                    on_change=text_setter(f.rate_per)
                    errors=wizard.errors(ids::RATE_LIMIT_PER)
                />
                <SelectField
                    id=ids::RATE_LIMIT_KEY
                    label="Counted per"
                    options=vec![("ip", "Client IP"), ("identity", "Signed-in user or service"), ("route", "Route (all clients together)")]
                    initial=f.rate_key.get_untracked()
                    on_change=text_setter(f.rate_key)
                    errors=wizard.errors(ids::RATE_LIMIT_KEY)
                />
                <TextField
                    id=ids::RATE_LIMIT_BURST
                    label="Burst"
                    hint="Extra requests allowed in a burst (optional)."
                    initial=f.rate_burst.get_untracked()
                    on_input=text_setter(f.rate_burst)
                    errors=wizard.errors(ids::RATE_LIMIT_BURST)
                    kind="number"
                />
            </div>
        })}
    }
    .into_any()
}

#[component]
fn ReviewStep(wizard: Wizard) -> impl IntoView {
    let yaml = wizard.final_yaml();
    view! {
        <p class="lead">
            "Commit this paved.yaml to the app's repository: it is the app's intent from now on. "
            "Apply it here to go live."
        </p>
        <h3>"paved.yaml"</h3>
        <YamlBlock text=yaml id="paved-yaml" label="Generated paved.yaml"/>
        <h3>"Plan"</h3>
        <div id="plan">
            {move || match wizard.review.get() {
                None => view! { <Loading text="Planning…"/> }.into_any(),
                Some(Err(e)) => view! { <PlanError error=e/> }.into_any(),
                Some(Ok(plan)) => view! { <PlanView plan/> }.into_any(),
            }}
        </div>
    }
}

/// A failed plan: the error and every diagnostic with its place in the file.
#[component]
fn PlanError(error: ApiError) -> impl IntoView {
    let diagnostics = match &error {
        ApiError::Graphql { diagnostics, .. } => diagnostics.clone(),
        _ => Vec::new(),
    };
    view! {
        <ErrorNote error/>
        {(!diagnostics.is_empty()).then(|| view! {
            <ul class="diagnostics">
                {diagnostics
                    .into_iter()
                    .map(|d| {
                        let place = match (d.line, d.column) {
                            (Some(l), Some(c)) => format!("paved.yaml:{l}:{c}: "),
                            _ => String::new(),
                        };
                        let field = d.field.filter(|f| !f.is_empty()).map(|f| format!("{f}: ")).unwrap_or_default();
                        view! { <li><code>{place}{field}</code>{d.message}</li> }
                    })
                    .collect_view()}
            </ul>
        })}
    }
}

#[component]
fn PlanView(plan: Plan) -> impl IntoView {
    let headline = match (plan.new_app, plan.changed, plan.current_version) {
        (true, _, _) => format!("New app: {}. Applying creates version 1.", plan.app),
        (false, false, v) => format!(
            "Existing app: {}. Nothing changes: it already has this content (version {}).",
            plan.app,
            v.unwrap_or_default()
        ),
        (false, true, v) => format!(
            "Existing app: {}. Applying replaces version {} with a new version.",
            plan.app,
            v.unwrap_or_default()
        ),
    };
    view! {
        <p id="plan-summary"><strong>{headline}</strong></p>
        <DiffBlock diff=plan.text_diff label="What applying changes in paved.yaml"/>
        <details>
            <summary>{format!("Field by field ({})", plan.changes.len())}</summary>
            <ChangesTable changes=plan.changes/>
        </details>
    }
}

/// After "Apply": the live URL, the roll-out per gateway and how to call the app.
#[component]
fn AppliedView(
    applied: Applied,
    restart: impl Fn(leptos::ev::MouseEvent) + 'static,
) -> impl IntoView {
    let settings = UiSettings::current();
    let live_url = settings.live_url(&applied.app.domains).unwrap_or_default();
    let app_href = format!("/apps/{}", applied.app.name);
    let curl = format!("curl -i -H \"Authorization: Bearer $TOKEN\" {live_url}");
    let headline = if applied.created {
        format!(
            "{} is applied: version {}.",
            applied.app.name, applied.version.version
        )
    } else {
        format!(
            "{} already had this content (version {}): nothing changed.",
            applied.app.name, applied.version.version
        )
    };
    view! {
        <section class="panel applied" aria-labelledby="applied-heading">
            <h2 id="applied-heading" tabindex="-1">{headline}</h2>
            <p class="live">
                "Live at " <a id="live-url" href=live_url.clone()>{live_url.clone()}</a>
                <span class="muted">" (through the gateway, behind single sign-on)"</span>
            </p>
            <RolloutStatus snapshot=applied.snapshot_version/>
            <h3>"Call it from a script"</h3>
            <p>
                "Requests without a session are sent to sign in. A service listed under service clients "
                "calls with a bearer token from the identity provider (client credentials):"
            </p>
            <pre class="code" tabindex="0" role="region" aria-label="curl example"><code id="curl-example">{curl}</code></pre>
            <p class="inline-actions">
                <a href=app_href>"Open the app's page"</a>
                <button type="button" class="secondary" on:click=restart>"Onboard another app"</button>
            </p>
        </section>
    }
    .into_any()
}

/// Roll-out of a change per gateway, live: the gateways first, then every event of the
/// `gatewayRollout` subscription.
#[component]
fn RolloutStatus(snapshot: Option<i64>) -> impl IntoView {
    let gateways = RwSignal::new(None::<Vec<crate::queries::Gateway>>);
    let live_error = RwSignal::new(None::<String>);
    let api = Api::from_context();
    // Effects run only in the browser, which is the only place this panel appears.
    Effect::new(move |_| {
        let api = api.clone();
        spawn_local(async move {
            if let Ok(d) = api
                .query::<GatewaysData>(&gateways_query(), serde_json::json!({}))
                .await
                && gateways.get_untracked().is_none()
            {
                gateways.set(Some(d.gateways));
            }
        });
        let subscription = live::subscribe::<RolloutEventData>(
            gateway_rollout_subscription(),
            serde_json::json!({}),
            move |event| match event {
                Ok(d) => gateways.set(Some(d.gateway_rollout.gateways)),
                Err(e) => live_error.set(Some(e.to_string())),
            },
        );
        on_cleanup(move || drop(subscription));
    });
    view! {
        <section id="rollout-status" aria-labelledby="rollout-heading">
            <h3 id="rollout-heading">"Roll-out to the gateways"</h3>
            <p role="status" aria-live="polite">
                {move || match gateways.get() {
                    _ if snapshot.is_none() => {
                        "Nothing new to roll out: the gateways already have this configuration.".to_string()
                    }
                    None => "Waiting for the gateways…".to_string(),
                    Some(list) if list.is_empty() => {
                        "No gateway has connected yet: the change goes out when one does.".to_string()
                    }
                    Some(list) => {
                        let (serving, failed, pending) = summary(&list, snapshot);
                        format!(
                            "Served by {serving} of {} gateways; {failed} refused it; {pending} pending.",
                            list.len()
                        )
                    }
                }}
            </p>
            {move || gateways.get().map(|list| view! {
                <GatewaysTable gateways=list change=snapshot caption="Gateways and this change"/>
            })}
            {move || live_error.get().map(|e| view! { <p class="muted small">{e}</p> })}
        </section>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_in_one_team_gets_it_as_default_team() {
        let me = |teams: &[&str]| Me {
            name: "ada".into(),
            kind: "PERSON".into(),
            role: None,
            teams: teams.iter().map(|t| t.to_string()).collect(),
        };
        assert_eq!(default_team(&me(&["platform"])), "platform");
        assert_eq!(default_team(&me(&[])), "");
        assert_eq!(default_team(&me(&["a", "b"])), "");
    }
}
