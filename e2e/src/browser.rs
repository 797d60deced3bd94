//! A real browser for UI tests: Debian's headless Chromium driven over WebDriver
//! (`chromedriver`, installed by `scripts/bootstrap.sh`) with `fantoccini`.
//!
//! Each [`Browser`] starts its own `chromedriver` on a free port and a Chromium with a fresh
//! profile directory, so tests never share cookies; both are stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use fantoccini::{Client, ClientBuilder, Locator};

use crate::harness::free_port;

/// Where Debian installs the driver and the browser.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A WebDriver session in a headless Chromium, and the driver process behind it.
pub struct Browser {
    /// The WebDriver client (navigate, find, click, screenshot, ...).
    pub client: Client,
    driver: Child,
    profile: PathBuf,
    screenshots: PathBuf,
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium; screenshots go to `screenshots`.
    pub async fn start(screenshots: &Path) -> anyhow::Result<Browser> {
        for tool in [CHROMEDRIVER, CHROMIUM] {
            if !Path::new(tool).exists() {
                bail!(
                    "{tool} is missing: run scripts/bootstrap.sh (installs chromium and chromium-driver)"
                );
            }
        }
        std::fs::create_dir_all(screenshots)
            .with_context(|| format!("create {}", screenshots.display()))?;
        let port = free_port();
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start chromedriver")?;
        let profile =
            std::env::temp_dir().join(format!("paved-chromium-{}-{port}", std::process::id()));
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1366,900",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = None;
        // The driver needs a moment to listen.
        for _ in 0..100 {
            let mut builder = ClientBuilder::rustls().context("WebDriver client")?;
            match builder.capabilities(caps.clone()).connect(&url).await {
                Ok(client) => {
                    return Ok(Browser {
                        client,
                        driver,
                        profile,
                        screenshots: screenshots.to_path_buf(),
                    });
                }
                Err(e) => last_error = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        driver.kill().ok();
        Err(anyhow::anyhow!(
            "chromedriver did not accept a session: {last_error:?}"
        ))
    }

    /// Navigates to `url`.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("open {url}"))
    }

    /// Waits (up to `timeout`) for an element matching the CSS `selector`.
    pub async fn wait_for(
        &self,
        selector: &str,
        timeout: Duration,
    ) -> anyhow::Result<fantoccini::elements::Element> {
        self.client
            .wait()
            .at_most(timeout)
            .for_element(Locator::Css(selector))
            .await
            .with_context(|| format!("no element `{selector}` within {timeout:?}"))
    }

    /// Waits (up to `timeout`) until the page's text contains `needle`.
    pub async fn wait_for_text(&self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let body = self.body_text().await.unwrap_or_default();
            if body.contains(needle) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("`{needle}` did not appear within {timeout:?}; the page says:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The visible text of the page's body.
    pub async fn body_text(&self) -> anyhow::Result<String> {
        Ok(self.client.find(Locator::Css("body")).await?.text().await?)
    }

    /// Replaces the value of the input matching `selector` with `text`.
    pub async fn fill(&self, selector: &str, text: &str) -> anyhow::Result<()> {
        let input = self.wait_for(selector, Duration::from_secs(10)).await?;
        input
            .clear()
            .await
            .with_context(|| format!("clear {selector}"))?;
        input
            .send_keys(text)
            .await
            .with_context(|| format!("type into {selector}"))
    }

    /// Clicks the first button (or link) whose visible text is exactly `text`.
    pub async fn click_text(&self, text: &str) -> anyhow::Result<()> {
        let xpath = format!(
            "//button[normalize-space(.)='{text}'] | //a[normalize-space(.)='{text}'] | //input[@type='submit' and @value='{text}']"
        );
        let element = self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::XPath(&xpath))
            .await
            .with_context(|| format!("no button or link `{text}`"))?;
        element
            .click()
            .await
            .with_context(|| format!("click `{text}`"))
    }

    /// Saves a PNG screenshot of the viewport as `<screenshots>/<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let png = self.client.screenshot().await.context("screenshot")?;
        let path = self.screenshots.join(format!("{name}.png"));
        std::fs::write(&path, png).with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    }

    /// The current URL.
    pub async fn url(&self) -> anyhow::Result<String> {
        Ok(self.client.current_url().await?.to_string())
    }

    /// Ends the session and stops the driver.
    pub async fn close(mut self) -> anyhow::Result<()> {
        let result = self
            .client
            .clone()
            .close()
            .await
            .context("close the session");
        self.driver.kill().ok();
        self.driver.wait().ok();
        std::fs::remove_dir_all(&self.profile).ok();
        result
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that panicked never reached `close`: do not leave the driver running.
        self.driver.kill().ok();
        self.driver.wait().ok();
    }
}
