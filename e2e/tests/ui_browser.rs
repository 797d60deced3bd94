//! The web UI in a real headless Chromium against everything `paved up` starts: a person signs
//! in through the control plane's login, onboards an app with the wizard, sees it live, reaches
//! it through the gateway behind SSO, rolls a version back and sees the dashboard count it.
//!
//! Screenshots of each page are saved under the test's output folder
//! (`$CARGO_TARGET_TMPDIR/ui-screenshots`, or `PAVED_SCREENSHOTS` when set — how the README's
//! pictures are made).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use paved_e2e::browser::Browser;
use paved_e2e::harness::start_echo_upstream;

const STEP: Duration = Duration::from_secs(15);

fn screenshot_dir() -> PathBuf {
    std::env::var_os("PAVED_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots"))
}

/// Signs in on the control plane's login form (any page of the UI leads there).
async fn sign_in(browser: &Browser, ui: &str, user: &str, password: &str) -> anyhow::Result<()> {
    browser.goto(&format!("{ui}/")).await?;
    browser.fill("#username", user).await?;
    browser.fill("#password", password).await?;
    browser.screenshot("login").await?;
    let submit = browser
        .wait_for("form button[type=submit], form input[type=submit]", STEP)
        .await?;
    submit.click().await?;
    browser.wait_for_text("Signed in as", STEP).await
}

/// Goes through the wizard, filling each field when its step shows it, until "Apply".
async fn complete_wizard(browser: &Browser, fields: &[(&str, &str)]) -> anyhow::Result<()> {
    let mut remaining: Vec<(&str, &str)> = fields.to_vec();
    for _step in 0..12 {
        let mut filled = Vec::new();
        for (id, value) in &remaining {
            let selector = format!("#{id}");
            if browser
                .client
                .find(fantoccini::Locator::Css(&selector))
                .await
                .is_ok()
            {
                browser.fill(&selector, value).await?;
                filled.push(*id);
            }
        }
        remaining.retain(|(id, _)| !filled.contains(id));
        let text = browser.body_text().await?;
        if remaining.is_empty()
            && text.contains("paved.yaml")
            && find_button(browser, "Apply").await
        {
            return Ok(());
        }
        browser.click_text("Next").await?;
        // The step validates with the control plane before it moves on.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    anyhow::bail!(
        "the wizard never reached its last step; fields not shown: {:?}; page:\n{}",
        remaining,
        browser.body_text().await.unwrap_or_default()
    )
}

async fn find_button(browser: &Browser, text: &str) -> bool {
    let xpath = format!("//button[normalize-space(.)='{text}']");
    browser
        .client
        .find(fantoccini::Locator::XPath(&xpath))
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_person_onboards_an_app_in_the_wizard_and_reaches_it_behind_sso() {
    let up = common::start("ui-browser").await;
    let upstream = start_echo_upstream();
    let ui = up.platform.public_url.clone();
    let gateway_port = up.args.listen.port();
    let browser = Browser::start(&screenshot_dir())
        .await
        .expect("headless Chromium starts");

    let started = Instant::now();
    sign_in(
        &browser,
        &ui,
        "demo",
        &up.platform.credentials.demo_password,
    )
    .await
    .expect("sign in through the control plane's login");

    // The wizard: every step validated by the control plane, then the plan and Apply.
    browser
        .goto(&format!("{ui}/onboard"))
        .await
        .expect("wizard");
    let upstream_url = format!("http://{}", upstream.addr);
    complete_wizard(
        &browser,
        &[
            ("app-name", "orders"),
            ("team", "platform"),
            ("domain", "orders.localhost"),
            ("upstream", upstream_url.as_str()),
        ],
    )
    .await
    .expect("the wizard reaches its last step");
    browser.wait_for_text("app: orders", STEP).await.ok();
    browser.screenshot("wizard").await.expect("screenshot");
    browser.click_text("Apply").await.expect("apply");
    let live = browser
        .wait_for("#live-url", STEP)
        .await
        .expect("the live URL is shown after apply");
    let live_url = live.text().await.expect("live url text");
    assert_eq!(
        live_url,
        format!("http://orders.localhost:{gateway_port}/"),
        "the live URL points at the gateway's listener"
    );
    browser
        .wait_for("#rollout-status", STEP)
        .await
        .expect("rollout status per gateway");
    browser.screenshot("applied").await.expect("screenshot");

    // Through the gateway: SSO reuses the provider's session, the app answers.
    browser
        .goto(&format!("{live_url}hello"))
        .await
        .expect("open the app");
    browser
        .wait_for_text("\"path\"", Duration::from_secs(30))
        .await
        .expect("the echo upstream answers through the gateway after SSO");
    let onboarded_in = started.elapsed();
    let page = browser.body_text().await.expect("page");
    assert!(
        page.contains("x-paved-user"),
        "the upstream sees the asserted identity: {page}"
    );
    eprintln!("signed in, onboarded and reached the app in {onboarded_in:?}");
    browser
        .screenshot("app-through-gateway")
        .await
        .expect("screenshot");

    // The catalog lists the app; a second version through the API, then a rollback in the UI.
    let token = up.platform.credentials.api_token.clone();
    let second = format!(
        "apiVersion: paved.dev/v1\nname: orders\ndescription: second version\nowners: [demo@paved.localhost]\nteam: platform\ndomains: [orders.localhost]\nupstream: {}\n",
        upstream.addr
    );
    let applied = apply_via_api(&ui, &token, &second).await;
    assert!(applied.is_ok(), "second version: {applied:?}");
    browser
        .goto(&format!("{ui}/apps/orders"))
        .await
        .expect("app page");
    browser
        .wait_for_text("orders", STEP)
        .await
        .expect("app page renders");
    browser.screenshot("app-page").await.expect("screenshot");
    browser
        .click_text("Roll back to version 1")
        .await
        .expect("rollback button");
    browser
        .wait_for_text("version 3", STEP)
        .await
        .expect("the rollback makes version 3");

    // The dashboard counts the new app.
    browser.goto(&format!("{ui}/")).await.expect("dashboard");
    browser
        .wait_for("#adoption-chart svg, svg#adoption-chart", STEP)
        .await
        .expect("the adoption trend is drawn");
    browser.screenshot("dashboard").await.expect("screenshot");

    browser.close().await.expect("browser closes");
    let mut platform = up.stop_gateway();
    platform.stop().await;
}

/// Applies an intent through the public GraphQL API with a tool's token.
async fn apply_via_api(ui: &str, token: &str, yaml: &str) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "query": "mutation($yaml: String!) { applyIntent(yaml: $yaml) { created } }",
        "variables": { "yaml": yaml },
    });
    let address = ui.trim_start_matches("http://").trim_end_matches('/');
    let reply = paved::apply_cmd::post_graphql(address, token, body).await?;
    if let Some(errors) = reply.get("errors") {
        anyhow::bail!("applyIntent failed: {errors}");
    }
    Ok(())
}
