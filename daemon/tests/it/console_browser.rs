//! The console in a real browser: Debian's chromium, headless, driven
//! through chromedriver (WebDriver, the fantoccini crate) against a real
//! `weir serve` fed over LMTP. Skipped with a message when chromium or
//! chromedriver is missing, unless `WEIR_REQUIRE_BROWSER=1` (CI).
//!
//! The same tests take the screenshots of docs/console.md: with
//! `UPDATE_SCREENSHOTS=1` they are written to `docs/console/`, else to the
//! test's temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::console_support::{ADMIN, Console, READER, RULES};
use crate::postfix_support::which;
use crate::serve_support::{files, free_port};

/// Why the browser tests cannot run here, or `None`. Panics instead when
/// `WEIR_REQUIRE_BROWSER=1`.
fn missing_browser() -> Option<String> {
    let missing: Vec<&str> = ["chromium", "chromedriver"]
        .into_iter()
        .filter(|t| which(t).is_none())
        .collect();
    if missing.is_empty() {
        return None;
    }
    let why = format!(
        "{} not installed (apt-get install chromium chromium-driver)",
        missing.join(", ")
    );
    if std::env::var("WEIR_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("WEIR_REQUIRE_BROWSER=1 but: {why}");
    }
    eprintln!("skipped: {why}");
    Some(why)
}

/// chromedriver in its own process group (chromium runs under it), and a
/// WebDriver session; the whole group is killed when dropped.
struct Browser {
    driver: Child,
    client: Client,
    shots: PathBuf,
}

impl Browser {
    /// A headless chromium `width` pixels wide, dark when `dark`.
    async fn start(width: u32, dark: bool, shots: &Path) -> Browser {
        let port = free_port();
        // Its own session: no controlling terminal for chromium, and one
        // group to kill.
        let driver = Command::new(which("setsid").expect("setsid"))
            .arg(which("chromedriver").expect("chromedriver"))
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            // Nothing leaves the machine: no updates, sync or telemetry.
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-default-apps".into(),
            "--disable-extensions".into(),
            "--no-first-run".into(),
            "--disable-crash-reporter".into(),
            "--disable-breakpad".into(),
            "--disable-features=Translate,OptimizationHints,MediaRouter".into(),
            format!("--window-size={width},900"),
        ];
        if dark {
            args.push("--force-dark-mode".into());
            args.push("--blink-settings=preferredColorScheme=0".into());
        }
        let mut options = json!({"binary": which("chromium").expect("chromium"), "args": args});
        // Headless windows are at least 500 px wide: a phone's width is
        // emulated instead.
        if width < 500 {
            options["mobileEmulation"] =
                json!({"deviceMetrics": {"width": width, "height": 844, "pixelRatio": 1}});
        }
        let caps = json!({"browserName": "chrome", "goog:chromeOptions": options});
        let caps = caps.as_object().expect("an object").clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            let attempt = ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await;
            match attempt {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no WebDriver session: {e}"),
            }
        };
        Browser {
            driver,
            client,
            shots: shots.to_path_buf(),
        }
    }

    /// Logs in with `token` on the login page.
    async fn login(&self, base: &str, token: &str) {
        self.client
            .goto(&format!("{base}/console/login"))
            .await
            .expect("goto");
        let field = self
            .client
            .find(Locator::Id("token"))
            .await
            .expect("token field");
        field.send_keys(token).await.expect("type");
        self.client
            .find(Locator::Css("button[type=submit]"))
            .await
            .expect("button")
            .click()
            .await
            .expect("click");
        self.wait_js(
            "return document.body.dataset.page === 'overview'",
            "the Overview after login",
        )
        .await;
    }

    /// Polls `script` (a function body returning a boolean) until true.
    async fn wait_js(&self, script: &str, what: &str) {
        self.wait_js_for(script, what, Duration::from_secs(10))
            .await;
    }

    async fn wait_js_for(&self, script: &str, what: &str, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let v = self
                .client
                .execute(script, vec![])
                .await
                .unwrap_or(Value::Null);
            if v == Value::Bool(true) {
                return start.elapsed();
            }
            assert!(start.elapsed() < within, "not in {within:?}: {what}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The text of the first element matching `css`.
    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .expect("text")
    }

    /// Saves a screenshot as `name.png`.
    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::create_dir_all(&self.shots).expect("screenshot dir");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// Sets a text area's value as typing would (an `input` event).
    async fn set_value(&self, id: &str, value: &str) {
        let script = "const e = document.getElementById(arguments[0]); e.value = arguments[1]; \
                      e.dispatchEvent(new Event('input', {bubbles: true}));";
        self.client
            .execute(script, vec![json!(id), json!(value)])
            .await
            .expect("set value");
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .expect("click");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        // `--`: procps' kill otherwise reads "-PID" as an option.
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.wait();
    }
}

/// Where screenshots go.
fn shots_dir(console: &Console) -> PathBuf {
    if std::env::var("UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        crate::common::root().join("docs/console")
    } else {
        console.dir.join("screenshots")
    }
}

/// Runs a browser test's body, failing it if it takes over two minutes
/// (a WebDriver command that never answers).
fn within(body: impl std::future::Future<Output = ()>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(120), body)
            .await
            .expect("the browser test took over 2 minutes");
    });
}

/// Runs blocking test I/O (LMTP, the API) off the runtime's thread.
async fn off<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("the blocking part")
}

const HTML_ATTACK: &str = "From: mallory@example.net\nTo: bob@example.org\nSubject: HOLD html\nMIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n<html><body><p id=\"hi\">Hello from HTML</p>\
<script>window.top.pwned = 1; parent.document.title = 'pwned';</script>\
<img src=\"https://tracker.invalid/p.gif\" onerror=\"parent.document.title='pwned-img'\">\
<form action=\"https://evil.invalid/\"><input name=\"a\"><button>go</button></form></body></html>\n";

#[test]
fn an_admin_watches_explains_and_releases_in_the_browser() {
    if missing_browser().is_some() {
        return;
    }
    let console = std::sync::Arc::new(Console::start("browser-admin"));
    let base = console.url();
    within(async move {
        let b = Browser::start(1280, false, &shots_dir(&console)).await;
        // Some traffic for the Overview.
        let c = console.clone();
        off(move || {
            c.deliver("bob@example.org", "cheap pills", "x");
            c.deliver("carol@example.org", "lunch?", "x");
        })
        .await;
        b.login(&base, ADMIN).await;
        b.wait_js(
            "return document.querySelector('#chart-hour canvas') !== null",
            "the hour chart",
        )
        .await;
        b.shot("overview").await;
        let id = live(&b, &console, &base).await;
        message_page(&b, id).await;
        search_page(&b, &base).await;
        // Quarantine: an HTML message that tries to run a script, and a release.
        let c = console.clone();
        off(move || {
            c.deliver_raw("bob@example.org", HTML_ATTACK);
            c.deliver("bob@example.org", "HOLD plain", "release me");
        })
        .await;
        let held = console.daemon.get("/v1/quarantine").json();
        let html_id = held[0]["id"].as_str().expect("id").to_string();
        let plain_id = held[1]["id"].as_str().expect("id").to_string();
        b.client
            .goto(&format!("{base}/console/quarantine"))
            .await
            .expect("quarantine");
        b.shot("quarantine").await;
        sanitised_body(&b, &base, &html_id).await;
        release(&b, &console, &base, &plain_id).await;
        b.client
            .goto(&format!("{base}/console/outbox"))
            .await
            .expect("outbox");
        b.shot("outbox").await;
        b.client.clone().close().await.expect("close");
    });
}

/// Live: a message sent now appears within 2 s of its LMTP reply; the
/// verdict filter hides it and Pause holds new rows. Its audit id.
async fn live(b: &Browser, console: &std::sync::Arc<Console>, base: &str) -> u64 {
    b.client
        .goto(&format!("{base}/console/live"))
        .await
        .expect("live");
    b.wait_js(
        "return document.getElementById('live-status').textContent === 'Live.'",
        "the stream",
    )
    .await;
    let mid = crate::console_support::unique();
    let c = console.clone();
    let m = mid.clone();
    off(move || {
        let message = format!("From: alice@example.com\nTo: bob@example.org\nSubject: cheap pills today\nMessage-ID: <{m}@example.com>\n\nHello\n");
        c.deliver_raw("bob@example.org", &message);
    })
    .await;
    // Timed from the LMTP reply (the audit entry is written before it).
    let row = format!(
        "[...document.querySelectorAll('#live-rows tr')].find(r => r.entry && r.entry.message_id.includes('{mid}'))"
    );
    let took = b
        .wait_js_for(
            &format!("return {row} !== undefined"),
            "the new decision on Live",
            Duration::from_secs(2),
        )
        .await;
    let id = console.wait_entry(&mid)["id"].as_u64().expect("an id");
    eprintln!("Live showed audit entry {id} {took:?} after the LMTP reply");
    let filter = "const s = document.querySelector('#live-filter select'); s.value = arguments[0]; \
                  s.dispatchEvent(new Event('input', {bubbles: true}));";
    b.client
        .execute(filter, vec![json!("reject")])
        .await
        .expect("filter");
    let hidden = format!("return {row}.hidden");
    assert_eq!(
        b.client.execute(&hidden, vec![]).await.expect("js"),
        Value::Bool(true)
    );
    b.client
        .execute(filter, vec![json!("")])
        .await
        .expect("filter");
    assert_eq!(
        b.client.execute(&hidden, vec![]).await.expect("js"),
        Value::Bool(false)
    );
    b.click("#live-pause").await;
    assert_eq!(b.text("#live-pause").await, "Resume");
    b.shot("live").await;
    b.click("#live-pause").await;
    id
}

/// The Message page highlights the matching bytes in the source.
async fn message_page(b: &Browser, id: u64) {
    // Its Message page: the matching bytes highlighted in the source.
    b.click(&format!("#live-rows tr[data-id=\"{id}\"] a")).await;
    b.wait_js(
        "return document.body.dataset.page === 'message'",
        "the Message page",
    )
    .await;
    let marked = b.text("#message-source mark").await;
    assert_eq!(marked, "pills");
    let before = b
            .client
            .execute("return document.querySelector('#message-source mark').previousSibling.textContent.endsWith('Subject: cheap ')", vec![])
            .await
            .expect("js");
    assert_eq!(before, Value::Bool(true), "the mark is in the Subject line");
    b.client
        .execute(
            "document.getElementById('h-explain').scrollIntoView()",
            vec![],
        )
        .await
        .expect("scroll");
    b.shot("message").await;
}

/// Search by tag.
async fn search_page(b: &Browser, base: &str) {
    // Search.
    b.client
        .goto(&format!("{base}/console/search?tag=spam"))
        .await
        .expect("search");
    let rows = b
        .client
        .find_all(Locator::Css("#search-results tbody tr"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 2, "two spam entries");
    b.shot("search").await;
}

/// A held HTML message: its script does not run, its body is sanitised
/// and framed in a sandbox.
async fn sanitised_body(b: &Browser, base: &str, html_id: &str) {
    b.client
        .goto(&format!("{base}/console/quarantine/{html_id}"))
        .await
        .expect("held");
    b.client
        .find(Locator::Css("iframe.body"))
        .await
        .expect("the body frame");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let title = b.client.title().await.expect("title");
    assert!(
        title.starts_with("Held message"),
        "the script changed the title: {title}"
    );
    let pwned = b
        .client
        .execute("return window.pwned === undefined", vec![])
        .await
        .expect("js");
    assert_eq!(pwned, Value::Bool(true));
    b.shot("quarantine-message").await;
    // The frame is sandboxed (no scripts even if one were left), and
    // what it shows is sanitised.
    let sandbox = b
        .client
        .find(Locator::Css("iframe.body"))
        .await
        .expect("frame")
        .attr("sandbox")
        .await
        .expect("attr");
    assert_eq!(sandbox.as_deref(), Some(""));
    let body = b
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 fetch(document.querySelector('iframe.body').getAttribute('src'))
                   .then(r => r.text().then(t => done([r.headers.get('content-security-policy'), t])));",
                vec![],
            )
            .await
            .expect("the frame's document");
    let (csp, html) = (
        body[0].as_str().unwrap_or(""),
        body[1].as_str().unwrap_or(""),
    );
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(html.contains("Hello from HTML"), "{html}");
    for bad in [
        "<script",
        "<img",
        "<form",
        "<input",
        "onerror",
        "tracker.invalid",
    ] {
        assert!(!html.contains(bad), "{bad} in the sanitised body: {html}");
    }
}

/// Release from the Quarantine page, confirmed: the copy lands in the
/// Maildir and the audit log says who did it.
async fn release(b: &Browser, console: &Console, base: &str, plain_id: &str) {
    b.client
        .goto(&format!("{base}/console/quarantine"))
        .await
        .expect("quarantine");
    b.click(&format!("button[data-act=release][data-id=\"{plain_id}\"]"))
        .await;
    let asked = b.client.get_alert_text().await.expect("a confirmation");
    assert!(asked.contains(plain_id), "{asked}");
    b.client.accept_alert().await.expect("confirm");
    let inbox = console.dir.join("mail/example.org/bob/new");
    let deadline = Instant::now() + Duration::from_secs(10);
    let landed = || {
        files(&inbox).iter().any(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .contains("release me")
        })
    };
    while !landed() {
        assert!(
            Instant::now() < deadline,
            "the released copy did not land in {}",
            inbox.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(files(&inbox).len(), 1, "only the released copy is in INBOX");
    // The audit entry follows the delivery.
    let act = loop {
        let found = console
            .actions("")
            .into_iter()
            .rev()
            .find(|e| e["quarantine"] == "released");
        if let Some(act) = found {
            break act;
        }
        assert!(
            Instant::now() < deadline,
            "the release is not in the audit log"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(act["by"], json!({"role": "admin", "via": "session"}));
}

#[test]
fn a_read_only_login_cannot_release() {
    if missing_browser().is_some() {
        return;
    }
    let console = std::sync::Arc::new(Console::start("browser-readonly"));
    let base = console.url();
    within(async move {
        let c = console.clone();
        off(move || c.deliver("bob@example.org", "HOLD this", "x")).await;
        let id = console.daemon.get("/v1/quarantine").json()[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let b = Browser::start(1280, false, &shots_dir(&console)).await;
        b.login(&base, READER).await;
        b.client
            .goto(&format!("{base}/console/quarantine"))
            .await
            .expect("quarantine");
        b.client
            .find(Locator::Css("#quarantine-table"))
            .await
            .expect("the list");
        let buttons = b
            .client
            .find_all(Locator::Css("button[data-act], button[data-bulk]"))
            .await
            .expect("find");
        assert!(
            buttons.is_empty(),
            "a read-only user sees no release or delete"
        );
        // The API refuses it anyway, with the session's CSRF token.
        let status = b
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 fetch('/v1/quarantine/' + arguments[0] + '/release', {method: 'POST',
                   headers: {'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content}})
                   .then(r => done(r.status));",
                vec![json!(id)],
            )
            .await
            .expect("fetch");
        assert_eq!(status, json!(403));
        assert_eq!(
            console.daemon.get("/v1/quarantine").json()[0]["status"],
            "held"
        );
        b.client.clone().close().await.expect("close");
    });
}

#[test]
fn the_playground_shows_diagnostics_backtests_and_refuses_a_failing_deploy() {
    if missing_browser().is_some() {
        return;
    }
    let console = std::sync::Arc::new(Console::start("browser-playground"));
    let base = console.url();
    within(async move {
        let c = console.clone();
        off(move || {
            c.deliver("bob@example.org", "cheap pills", "x");
            c.deliver("bob@example.org", "viagra offer", "x");
            c.deliver("bob@example.org", "lunch", "x");
        })
        .await;
        let b = Browser::start(1280, false, &shots_dir(&console)).await;
        b.login(&base, ADMIN).await;
        b.client
            .goto(&format!("{base}/console/playground"))
            .await
            .expect("playground");
        b.wait_js("return document.getElementById('pg-diagnostics').textContent.startsWith('No problems')", "the first check").await;
        // Diagnostics as you type.
        let broken = RULES.replace("subject contains \"pills\"", "subjekt contains \"pills\"");
        b.set_value("pg-source", &broken).await;
        b.wait_js(
            "return document.getElementById('pg-diagnostics').textContent.includes('subjekt')",
            "a diagnostic",
        )
        .await;
        b.shot("playground").await;
        // Backtest a wider rule.
        let wider = RULES.replace(
            "subject contains \"pills\"",
            "subject contains \"pills\" or subject contains \"viagra\"",
        );
        b.set_value("pg-source", &wider).await;
        b.wait_js(
            "return document.getElementById('pg-diagnostics').textContent.startsWith('No problems')",
            "the diagnostic gone once fixed",
        )
        .await;
        b.click("#pg-backtest").await;
        b.wait_js(
            "return !!document.getElementById('pg-backtest-summary')",
            "the backtest",
        )
        .await;
        let summary = b.text("#pg-backtest-summary").await;
        assert!(summary.starts_with("1 of 3 kept messages"), "{summary}");
        let changed = b.text("#pg-changed tbody").await;
        assert!(changed.contains("\"Junk\""), "{changed}");
        b.shot("playground-backtest").await;
        // A deploy whose test fails is refused; version 1 keeps running.
        let failing = RULES.replace(
            "then { tag \"spam\"; fileinto \"Junk\" }",
            "then { fileinto \"Junk\" }",
        );
        b.set_value("pg-source", &failing).await;
        b.click("#pg-deploy").await;
        b.client.accept_alert().await.expect("confirm");
        b.wait_js(
            "return !!document.getElementById('pg-running')",
            "the refusal",
        )
        .await;
        let result = b.text("#pg-result").await;
        assert!(
            result.contains("test blocks failed") && result.contains("pills are junk"),
            "{result}"
        );
        assert_eq!(b.text("#pg-running").await, "Version 1 keeps running.");
        assert_eq!(console.daemon.version(), 1);
        assert_eq!(
            std::fs::read_to_string(console.dir.join("rules.flow")).unwrap(),
            RULES
        );
        // Rules: the source highlighted, and the versions.
        b.client
            .goto(&format!("{base}/console/rules"))
            .await
            .expect("rules");
        b.client
            .find(Locator::Css("pre.code .t-kw"))
            .await
            .expect("highlighted keywords");
        b.shot("rules").await;
        b.client.clone().close().await.expect("close");
    });
}

#[test]
fn the_console_reads_at_390_pixels_and_in_dark_mode() {
    if missing_browser().is_some() {
        return;
    }
    let console = std::sync::Arc::new(Console::start("browser-narrow"));
    let base = console.url();
    within(async move {
        let c = console.clone();
        off(move || c.deliver("bob@example.org", "cheap pills", "x")).await;
        let b = Browser::start(390, true, &shots_dir(&console)).await;
        b.login(&base, ADMIN).await;
        let width = b
            .client
            .execute("return window.innerWidth", vec![])
            .await
            .expect("js");
        assert_eq!(width, json!(390));
        // Nothing wider than the window (tables scroll inside their box).
        let fits = "return document.documentElement.scrollWidth <= window.innerWidth";
        b.wait_js(fits, "no horizontal scroll on the Overview")
            .await;
        let dark = b
            .client
            .execute(
                "return window.matchMedia('(prefers-color-scheme: dark)').matches",
                vec![],
            )
            .await
            .expect("js");
        assert_eq!(dark, Value::Bool(true), "dark mode emulated");
        b.shot("overview-390-dark").await;
        b.client
            .goto(&format!("{base}/console/live"))
            .await
            .expect("live");
        b.wait_js(
            "return document.querySelectorAll('#live-rows tr').length > 0",
            "a row",
        )
        .await;
        b.wait_js(fits, "no horizontal scroll on Live").await;
        // Keyboard: the skip link is the first stop and moves focus to main.
        b.client
            .active_element()
            .await
            .expect("focus")
            .send_keys(&char::from(fantoccini::key::Key::Tab).to_string())
            .await
            .expect("tab");
        let first = b
            .client
            .execute("return document.activeElement.className", vec![])
            .await
            .expect("js");
        assert_eq!(first, json!("skip"));
        b.shot("live-390-dark").await;
        b.client.clone().close().await.expect("close");
    });
}
