//! Headless Chromium driven over the DevTools protocol (chromiumoxide), for
//! suites that assert on a page's DOM while it lives (a new version shown
//! without a reload) and keep screenshots as artefacts. The browser is
//! Debian's `chromium`, installed by [`crate::debian`] when missing.

use std::path::Path;
use std::time::Duration;

use chromiumoxide::browser::BrowserConfig;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use futures::StreamExt;
use tokio::task::JoinHandle;

/// How long a page has to load, and a DevTools command to answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How often [`text_when`] looks at the DOM.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A running headless Chromium; closed on [`Browser::close`] (or killed
/// when dropped).
pub struct Browser {
    browser: chromiumoxide::Browser,
    handler: JoinHandle<()>,
}

impl Browser {
    /// Starts Chromium with its profile in `profile`.
    pub async fn start(profile: &Path) -> anyhow::Result<Self> {
        let executable =
            tokio::task::spawn_blocking(|| crate::debian::ensure("/usr/bin/chromium", "chromium")).await??;
        let config = BrowserConfig::builder()
            .chrome_executable(executable)
            .new_headless_mode()
            // Root in a container has no user namespace to sandbox in.
            .no_sandbox()
            .user_data_dir(profile)
            .window_size(1280, 900)
            .viewport(None)
            .args(["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"])
            .args(["--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"])
            .launch_timeout(REQUEST_TIMEOUT)
            .request_timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(anyhow::Error::msg)?;
        let (browser, mut events) = chromiumoxide::Browser::launch(config).await?;
        // The protocol's messages are read by this task for as long as the
        // browser runs; a message it cannot parse is skipped, not fatal.
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        Ok(Self { browser, handler })
    }

    /// A new tab at `url`, once it has loaded.
    pub async fn open(&self, url: &str) -> anyhow::Result<Page> {
        let page = self.browser.new_page(url).await?;
        page.wait_for_navigation().await?;
        Ok(page)
    }

    /// Closes the browser and waits for it to exit.
    pub async fn close(mut self) -> anyhow::Result<()> {
        self.browser.close().await?;
        self.browser.wait().await?;
        self.handler.abort();
        Ok(())
    }
}

/// The text of the first element matching `selector` (`None` if there is
/// none), as the page's DOM holds it now.
pub async fn text(page: &Page, selector: &str) -> anyhow::Result<Option<String>> {
    let selector = serde_json::to_string(selector)?;
    // As JSON text: DevTools answers a bare `null` with no value at all.
    let script = format!(
        "(() => {{ const e = document.querySelector({selector}); return JSON.stringify(e ? e.textContent : null); }})()"
    );
    Ok(serde_json::from_str(&page.evaluate(script).await?.into_value::<String>()?)?)
}

/// The text of `selector` once `accept` holds for it, within `timeout`;
/// the error says what the DOM held last.
pub async fn text_when(
    page: &Page,
    selector: &str,
    accept: impl Fn(&str) -> bool,
    timeout: Duration,
) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let found = text(page, selector).await?;
        if let Some(found) = found.as_deref().filter(|found| accept(found)) {
            return Ok(found.to_owned());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("{selector} still held {found:?} after {timeout:?}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Saves a PNG of the whole page to `path` (a test artefact).
pub async fn screenshot(page: &Page, path: &Path) -> anyhow::Result<()> {
    let png = page.screenshot(ScreenshotParams::builder().full_page(true).build()).await?;
    std::fs::write(path, png)?;
    Ok(())
}
