//! Helpers for the console's tests: a `weir serve` with both tokens, LMTP
//! delivery, the ring of recent messages on, and an HTTP client that sends
//! any headers (cookies, CSRF) and reads them back.

use std::time::Duration;

use crate::serve_support::{
    Daemon, HttpResponse, TempDir, free_port, http_with, lmtp_deliver, lmtp_table, temp_dir,
    write_config, write_token,
};

/// The admin token ([`write_config`] writes it).
pub const ADMIN: &str = "secret-token";
/// The read-only token.
pub const READER: &str = "reader-token-0123";

/// The console's test ruleset: spam by subject into Junk, a quarantine,
/// and a test block that the deploy gate runs.
pub const RULES: &str = r#"
rule pills {
  when subject contains "pills"
  then { tag "spam"; fileinto "Junk" }
}
rule held {
  when subject contains "HOLD"
  then quarantine "held for review"
}
test "pills are junk" {
  message """
From: a@example.com
Subject: cheap pills

buy
"""
  expect tag "spam"
}
"#;

/// A running daemon with its directory and LMTP port.
pub struct Console {
    /// The daemon.
    pub daemon: Daemon,
    /// The LMTP port.
    pub lmtp: u16,
    /// Its directory, removed after the daemon stops.
    pub dir: TempDir,
}

impl Console {
    /// Starts a daemon in a fresh directory named after `name`.
    pub fn start(name: &str) -> Console {
        let dir = temp_dir(&format!("console-{name}"));
        std::fs::write(dir.join("rules.flow"), RULES).expect("rules");
        write_token(&dir.join("ro-token"), READER);
        let lmtp = free_port();
        let extra = format!(
            "readonly_token_file = \"ro-token\"\nkeep_messages = 100\nkeep_for = \"1h\"\n\n{}",
            lmtp_table(&dir, &format!("inet:127.0.0.1:{lmtp}"))
        );
        let (http, milter) = write_config(&dir, "", &extra);
        let daemon = Daemon::start(&dir, http, milter);
        Console { daemon, dir, lmtp }
    }

    /// Delivers a message over LMTP; the replies.
    pub fn deliver(&self, to: &str, subject: &str, body: &str) -> Vec<String> {
        self.deliver_raw(
            to,
            &format!("From: alice@example.com\nTo: {to}\nSubject: {subject}\nMessage-ID: <{}@example.com>\n\n{body}\n", unique()),
        )
    }

    /// Delivers `message` to `to` over LMTP.
    pub fn deliver_raw(&self, to: &str, message: &str) -> Vec<String> {
        lmtp_deliver(self.lmtp, "alice@example.com", &[to], message)
    }

    /// A request with `headers`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        request(self.daemon.http, method, path, headers, body)
    }

    /// The console's base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.daemon.http)
    }

    /// Logs in with `token`: the session cookie (`name=value`) and the
    /// page's CSRF token.
    pub fn login(&self, token: &str) -> (String, String) {
        let body = format!("token={token}");
        let r = self.request(
            "POST",
            "/console/login",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        );
        assert_eq!(r.status, 303, "{r:?}");
        let set = r
            .header("set-cookie")
            .expect("a session cookie")
            .to_string();
        let cookie = set.split(';').next().expect("name=value").to_string();
        let page = self.request("GET", "/console/", &[("Cookie", &cookie)], b"");
        assert_eq!(page.status, 200, "{page:?}");
        let csrf = page
            .body
            .split("name=\"csrf-token\" content=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("the CSRF token in the page")
            .to_string();
        (cookie, csrf)
    }

    /// Audit entries, oldest first.
    pub fn actions(&self, query: &str) -> Vec<serde_json::Value> {
        let r = self.daemon.get(&format!("/v1/actions{query}"));
        assert_eq!(r.status, 200, "{r:?}");
        r.json().as_array().cloned().expect("entries")
    }

    /// Waits for an audit entry whose Message-ID contains `needle`.
    pub fn wait_entry(&self, needle: &str) -> serde_json::Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .actions(&format!("?message_id={needle}"))
                .into_iter()
                .next_back();
            if let Some(e) = found {
                return e;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no entry for {needle}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A string unique in this test run (Message-IDs).
pub fn unique() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("m{}x{n}", std::process::id())
}

/// One HTTP/1.1 request with extra headers and `Connection: close`.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    http_with(port, method, path, headers, body).expect("the HTTP request")
}
