//! The console's access rules and its `/v1` additions, against the real
//! daemon over HTTP (no browser): both tokens and their roles, login and
//! the session cookie, CSRF, the pages' Content-Security-Policy, audited
//! acts with their role, the audit search, explain, and the Playground's
//! check, backtest and gated deploy. The browser tests are in
//! `console_browser.rs`.

use crate::console_support::{ADMIN, Console, READER};
use crate::serve_support::files;

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn the_read_only_token_reads_and_is_refused_every_mutation() {
    let c = Console::start("roles");
    c.deliver("bob@example.org", "HOLD me", "held");
    let held = c.daemon.get("/v1/quarantine").json();
    let id = held[0]["id"].as_str().expect("a held copy").to_string();
    let ro = bearer(READER);
    let auth = [("Authorization", ro.as_str())];
    assert_eq!(c.request("GET", "/v1/actions", &auth, b"").status, 200);
    assert_eq!(c.request("GET", "/v1/quarantine", &auth, b"").status, 200);
    assert_eq!(
        c.request("GET", "/v1/session", &auth, b"").json()["role"],
        "readonly"
    );
    // A dry run is not a mutation.
    let check = c.request("POST", "/v1/check", &auth, b"Subject: pills\r\n\r\nx\r\n");
    assert_eq!(check.status, 200, "{check:?}");
    for (method, path) in [
        ("POST", format!("/v1/quarantine/{id}/release")),
        ("DELETE", format!("/v1/quarantine/{id}")),
        ("POST", "/v1/reload".to_string()),
        ("POST", "/v1/outbox/x/retry".to_string()),
        ("POST", "/v1/playground/deploy".to_string()),
    ] {
        let r = c.request(method, &path, &auth, b"{}");
        assert_eq!(r.status, 403, "{method} {path}: {r:?}");
        assert!(r.json()["error"].as_str().unwrap().contains("read-only"));
    }
    // Nothing happened: still held, still version 1.
    assert_eq!(c.daemon.get("/v1/quarantine").json()[0]["status"], "held");
    assert_eq!(c.daemon.version(), 1);
    // A wrong token is 401, as before.
    let wrong = bearer("not-a-token-at-all");
    let r = c.request(
        "GET",
        "/v1/actions",
        &[("Authorization", wrong.as_str())],
        b"",
    );
    assert_eq!(r.status, 401);
}

#[test]
fn login_gives_a_strict_cookie_and_mutations_need_the_csrf_token() {
    let c = Console::start("session");
    // Pages need a session.
    let r = c.request("GET", "/console/", &[], b"");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/console/login"));
    // A wrong token: the form again, 401, no cookie.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let r = c.request("POST", "/console/login", &form, b"token=wrong-token-123");
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());
    // The cookie: HttpOnly, SameSite=Strict; Secure only behind TLS.
    let r = c.request(
        "POST",
        "/console/login",
        &form,
        format!("token={ADMIN}").as_bytes(),
    );
    let cookie = r.header("set-cookie").expect("cookie").to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "{cookie}");
    let tls = [form[0], ("X-Forwarded-Proto", "https")];
    let r = c.request(
        "POST",
        "/console/login",
        &tls,
        format!("token={ADMIN}").as_bytes(),
    );
    assert!(r.header("set-cookie").unwrap().contains("; Secure"));

    let (cookie, csrf) = c.login(ADMIN);
    let with_cookie = [("Cookie", cookie.as_str())];
    assert_eq!(
        c.request("GET", "/v1/actions", &with_cookie, b"").status,
        200
    );
    let r = c.request("POST", "/v1/reload", &with_cookie, b"");
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.json()["error"].as_str().unwrap().contains("CSRF"));
    let bad = [with_cookie[0], ("X-CSRF-Token", "0000")];
    assert_eq!(c.request("POST", "/v1/reload", &bad, b"").status, 403);
    assert_eq!(c.daemon.version(), 1, "refused reloads did nothing");
    let good = [with_cookie[0], ("X-CSRF-Token", csrf.as_str())];
    let r = c.request("POST", "/v1/reload", &good, b"");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(c.daemon.version(), 2);
    // The reload is in the audit log with who did it.
    let acts = c.actions("");
    let reload = acts
        .iter()
        .rev()
        .find(|e| e["act"] == "reload")
        .expect("a reload entry");
    assert_eq!(reload["source"], "api");
    assert_eq!(reload["result"], "reloaded");
    assert_eq!(reload["by"]["role"], "admin");
    assert_eq!(reload["by"]["via"], "session");
    // Logout needs the CSRF token too, then the session is gone.
    let form_cookie = [form[0], with_cookie[0]];
    let r = c.request("POST", "/console/logout", &form_cookie, b"csrf=nope");
    assert_eq!(r.status, 403);
    let r = c.request(
        "POST",
        "/console/logout",
        &form_cookie,
        format!("csrf={csrf}").as_bytes(),
    );
    assert_eq!(r.status, 303);
    assert_eq!(
        c.request("GET", "/v1/actions", &with_cookie, b"").status,
        401
    );
}

#[test]
fn pages_have_a_strict_policy_and_no_inline_code() {
    let c = Console::start("csp");
    c.deliver("bob@example.org", "cheap pills", "buy pills");
    c.deliver("bob@example.org", "HOLD this", "held");
    let (cookie, _) = c.login(ADMIN);
    let entry = c.actions("?rule=pills").pop().expect("an entry");
    let held = c.daemon.get("/v1/quarantine").json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let pages = [
        "/console/".to_string(),
        "/console/live".into(),
        format!("/console/message/{}", entry["id"]),
        "/console/search?rule=pills".into(),
        "/console/quarantine".into(),
        format!("/console/quarantine/{held}"),
        "/console/rules".into(),
        "/console/playground".into(),
        "/console/outbox".into(),
    ];
    for page in &pages {
        let r = c.request("GET", page, &[("Cookie", &cookie)], b"");
        assert_eq!(r.status, 200, "{page}: {r:?}");
        let csp = r.header("content-security-policy").expect("a CSP");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{csp}"
        );
        assert!(csp.contains("default-src 'none'"), "{csp}");
        // Every script has a src; no inline style or handler attributes.
        for (i, _) in r.body.match_indices("<script") {
            let tag = &r.body[i..i + r.body[i..].find('>').unwrap()];
            assert!(tag.contains(" src="), "{page}: inline script {tag}");
        }
        assert!(!r.body.contains(" style="), "{page}");
        assert!(!r.body.contains(" onclick="), "{page}");
        assert!(!r.body.contains("<style"), "{page}");
    }
}

#[test]
fn a_read_only_session_sees_no_controls_that_change_anything() {
    let c = Console::start("ro-ui");
    c.deliver("bob@example.org", "HOLD this", "held");
    let held = c.daemon.get("/v1/quarantine").json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (admin, _) = c.login(ADMIN);
    let (reader, reader_csrf) = c.login(READER);
    for page in [
        "/console/quarantine".to_string(),
        format!("/console/quarantine/{held}"),
    ] {
        let a = c.request("GET", &page, &[("Cookie", &admin)], b"").body;
        let r = c.request("GET", &page, &[("Cookie", &reader)], b"").body;
        assert!(a.contains("data-act=\"release\""), "{page}");
        assert!(
            !r.contains("data-act=\"release\"") && !r.contains("data-act=\"delete\""),
            "{page}"
        );
    }
    let a = c
        .request("GET", "/console/rules", &[("Cookie", &admin)], b"")
        .body;
    let r = c
        .request("GET", "/console/rules", &[("Cookie", &reader)], b"")
        .body;
    assert!(a.contains("id=\"reload\"") && !r.contains("id=\"reload\""));
    let r = c
        .request("GET", "/console/playground", &[("Cookie", &reader)], b"")
        .body;
    assert!(!r.contains("pg-deploy"));
    // Even with its CSRF token, the session's role is read-only.
    let h = [
        ("Cookie", reader.as_str()),
        ("X-CSRF-Token", reader_csrf.as_str()),
    ];
    let r = c.request("POST", &format!("/v1/quarantine/{held}/release"), &h, b"");
    assert_eq!(r.status, 403);
}

#[test]
fn a_release_is_audited_with_its_role_and_lands_in_the_maildir() {
    let c = Console::start("release");
    c.deliver("bob@example.org", "HOLD this", "held");
    let held = c.daemon.get("/v1/quarantine").json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = c
        .daemon
        .request("POST", &format!("/v1/quarantine/{held}/release"), true, b"");
    assert_eq!(r.status, 200, "{r:?}");
    let inbox = c.dir.join("mail/example.org/bob/new");
    assert_eq!(files(&inbox).len(), 1, "released into INBOX");
    let act = c
        .actions("")
        .into_iter()
        .rev()
        .find(|e| e["quarantine"] == "released")
        .unwrap();
    assert_eq!(act["by"]["role"], "admin");
    assert_eq!(act["by"]["via"], "token");
}

#[test]
fn the_audit_search_filters_and_pages() {
    let c = Console::start("search");
    for i in 0..5 {
        c.deliver("bob@example.org", &format!("cheap pills {i}"), "x");
    }
    c.deliver("carol@example.org", "hello", "x");
    let spam = c.actions("?tag=spam");
    assert_eq!(spam.len(), 5);
    assert_eq!(c.actions("?to=CAROL@").len(), 1);
    assert_eq!(c.actions("?from=alice&to=bob").len(), 5);
    // Pages of 2, newest first through `before`.
    let page = c.actions("?tag=spam&limit=2");
    assert_eq!(page.len(), 2);
    let oldest = page[0]["id"].as_u64().unwrap();
    let next = c.actions(&format!("?tag=spam&limit=2&before={oldest}"));
    assert_eq!(next.len(), 2);
    assert!(next.iter().all(|e| e["id"].as_u64().unwrap() < oldest));
    let q = &spam[0]["queue_id"];
    let mid = spam[0]["message_id"].as_str().unwrap();
    assert_eq!(
        c.actions(&format!("?message_id={}", &mid[1..mid.len() - 1]))
            .len(),
        1
    );
    assert!(
        !c.actions(&format!("?queue_id={}", q.as_str().unwrap()))
            .is_empty()
    );
    let r = c.daemon.get("/v1/actions?before=x");
    assert_eq!(r.status, 400);
    assert_eq!(c.daemon.get("/v1/actions?until=yesterday").status, 400);
    assert_eq!(
        c.daemon
            .get("/v1/actions?until=2000-01-01T00:00:00Z")
            .json(),
        serde_json::json!([])
    );
}

#[test]
fn a_kept_message_is_explained_with_its_matching_bytes() {
    let c = Console::start("explain");
    let mid = crate::console_support::unique();
    let message = format!(
        "From: alice@example.com\nSubject: cheap pills today\nMessage-ID: <{mid}@example.com>\n\nHello\n"
    );
    c.deliver_raw("bob@example.org", &message);
    let entry = c.wait_entry(&mid);
    let one = c.daemon.get(&format!("/v1/actions/{}", entry["id"])).json();
    assert_eq!(one["kept"], true);
    let e = c
        .daemon
        .get(&format!("/v1/actions/{}/explain", entry["id"]))
        .json();
    let source = e["source"].as_str().unwrap();
    let h = &e["highlights"][0];
    assert_eq!(h["rule"], "pills");
    let (s, t) = (
        h["start"].as_u64().unwrap() as usize,
        h["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(&source[s..t], "pills");
    assert!(source[..s].ends_with("Subject: cheap "), "{source}");
    assert_eq!(c.daemon.get("/v1/actions/999999/explain").status, 404);
}

#[test]
fn the_playground_checks_backtests_and_deploys_through_the_gate() {
    let c = Console::start("playground");
    c.deliver("bob@example.org", "cheap pills", "x");
    c.deliver("bob@example.org", "viagra offer", "x");
    c.deliver("bob@example.org", "lunch", "x");
    let post = |path: &str, body: serde_json::Value| {
        c.daemon
            .request("POST", path, true, body.to_string().as_bytes())
    };
    // A broken rule: diagnostics.
    let broken = crate::console_support::RULES
        .replace("subject contains \"pills\"", "subjekt contains \"pills\"");
    let r = post(
        "/v1/playground/check",
        serde_json::json!({"source": broken}),
    );
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["ok"], false);
    assert!(j["rendered"].as_str().unwrap().contains("subjekt"), "{j}");
    assert_eq!(j["diagnostics"][0]["severity"], "error");
    let r = post(
        "/v1/playground/check",
        serde_json::json!({"source": crate::console_support::RULES}),
    );
    assert_eq!(r.json()["ok"], true);
    // Backtest: catching "viagra" too changes exactly that message.
    let wider = crate::console_support::RULES.replace(
        "subject contains \"pills\"",
        "subject contains \"pills\" or subject contains \"viagra\"",
    );
    let r = post(
        "/v1/playground/backtest",
        serde_json::json!({"source": wider, "limit": 50}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let j = r.json();
    assert_eq!(j["compared"], 3, "{j}");
    assert_eq!(j["changed"].as_array().unwrap().len(), 1, "{j}");
    let change = &j["changed"][0]["changes"];
    assert_eq!(change["tags"]["new"], serde_json::json!(["spam"]), "{j}");
    assert_eq!(change["folder"]["new"], "Junk", "{j}");
    // A deploy whose test fails is refused; the file and version stay.
    let failing = crate::console_support::RULES.replace(
        "then { tag \"spam\"; fileinto \"Junk\" }",
        "then { fileinto \"Junk\" }",
    );
    let before = std::fs::read_to_string(c.dir.join("rules.flow")).unwrap();
    let r = post(
        "/v1/playground/deploy",
        serde_json::json!({"source": failing}),
    );
    assert_eq!(r.status, 422, "{r:?}");
    let j = r.json();
    assert_eq!(j["kind"], "test", "{j}");
    assert_eq!(j["tests"][0]["test"], "pills are junk", "{j}");
    assert_eq!(j["version"], 1);
    assert_eq!(c.daemon.version(), 1);
    assert_eq!(
        std::fs::read_to_string(c.dir.join("rules.flow")).unwrap(),
        before
    );
    // A good one is written and runs.
    let r = post(
        "/v1/playground/deploy",
        serde_json::json!({"source": wider}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["version"], 2);
    assert_eq!(
        std::fs::read_to_string(c.dir.join("rules.flow")).unwrap(),
        wider
    );
    let acts: Vec<_> = c
        .actions("")
        .into_iter()
        .filter(|e| e["act"] == "deploy")
        .collect();
    assert_eq!(acts.len(), 2);
    assert_eq!(acts[0]["result"], "refused");
    assert_eq!(acts[1]["result"], "deployed");
    assert_eq!(acts[1]["by"]["role"], "admin");
    // Versions and their diff source.
    let history = c.daemon.get("/v1/ruleset/history").json();
    assert!(history.as_array().unwrap().len() >= 2, "{history}");
    let v1 = c.daemon.get("/v1/ruleset/history/1").json();
    assert_eq!(v1["files"][0]["text"], crate::console_support::RULES);
    // Bad input: not JSON.
    let r = c
        .daemon
        .request("POST", "/v1/playground/check", true, b"rule x");
    assert_eq!(r.status, 400);
}

#[test]
fn the_overview_figures_count_decisions() {
    let c = Console::start("stats");
    c.deliver("bob@example.org", "cheap pills", "x");
    c.deliver("bob@example.org", "HOLD", "x");
    let s = c.daemon.get("/v1/stats").json();
    let sum = |v: &str| {
        s["hour"][v]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .sum::<f64>()
    };
    assert_eq!(sum("accept"), 1.0, "{s}");
    assert_eq!(sum("quarantine"), 1.0, "{s}");
    assert_eq!(s["quarantine"]["held"], 1);
    assert_eq!(s["top_rules"][0]["hits"], 1);
    assert_eq!(s["store"], "ok");
    assert_eq!(s["ruleset"]["version"], 1);
    assert!(s["eval_seconds"]["p99"].as_f64().unwrap() > 0.0);
}

#[test]
fn the_playground_runs_a_pasted_message_with_its_explanation() {
    let c = Console::start("run");
    let ro = bearer(READER);
    let body = serde_json::json!({
        "source": crate::console_support::RULES,
        "message": "From: a@example.com\nSubject: cheap pills\n\nhi\n",
        "from": "a@example.com",
        "to": ["bob@example.org"],
    });
    // A read-only caller may run: it changes nothing.
    let h = [("Authorization", ro.as_str())];
    let r = c.request(
        "POST",
        "/v1/playground/run",
        &h,
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let j = r.json();
    assert_eq!(j["tags"], serde_json::json!(["spam"]), "{j}");
    assert_eq!(j["trace"][0]["rule"], "pills");
    let (s, e) = (
        j["highlights"][0]["start"].as_u64().unwrap() as usize,
        j["highlights"][0]["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(&j["source"].as_str().unwrap()[s..e], "pills");
    // No audit entry: a dry run.
    assert!(c.actions("").is_empty());
    // Without a message: a clear 400.
    let r = c.request("POST", "/v1/playground/run", &h, br#"{"source": ""}"#);
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("message"));
}

#[test]
fn the_rules_page_diffs_two_versions() {
    let c = Console::start("rules-diff");
    let wider = crate::console_support::RULES
        .replace("\"pills\"", "\"pills\" or subject contains \"viagra\"");
    std::fs::write(c.dir.join("rules.flow"), &wider).unwrap();
    assert_eq!(
        c.daemon.request("POST", "/v1/reload", true, b"").status,
        200
    );
    let (cookie, _) = c.login(READER);
    let page = c
        .request("GET", "/console/rules?a=1&b=2", &[("Cookie", &cookie)], b"")
        .body;
    assert!(page.contains("Diff 1 → 2"), "{page}");
    assert!(
        page.contains("<del>-  when subject contains &quot;pills&quot;\n</del>"),
        "{page}"
    );
    assert!(page.contains("viagra"), "{page}");
    assert!(
        page.contains("<span class=\"t-kw\">rule</span>"),
        "highlighted"
    );
}

#[test]
fn a_read_only_token_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = crate::serve_support::temp_dir("console-ro-mode");
    std::fs::write(dir.join("rules.flow"), crate::console_support::RULES).unwrap();
    std::fs::write(dir.join("ro-token"), "reader-token-0123\n").unwrap();
    std::fs::set_permissions(dir.join("ro-token"), std::fs::Permissions::from_mode(0o644)).unwrap();
    crate::serve_support::write_config(&dir, "", "readonly_token_file = \"ro-token\"\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--config", "weir.toml"])
        .current_dir(&dir)
        .output()
        .expect("weir serve runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[http] readonly_token_file: ") && err.contains("mode 0644"),
        "{err}"
    );
    assert!(
        !err.contains("reader-token"),
        "the token is never printed: {err}"
    );
}

#[test]
fn a_message_the_milter_decided_is_kept_and_explained() {
    use weir::milter_client::Mail;
    let c = Console::start("milter-kept");
    let mail = Mail {
        helo: "client.example.test".into(),
        from: "alice@example.com".into(),
        to: vec!["bob@example.org".into()],
        headers: vec![
            ("From".into(), "<alice@example.com>".into()),
            ("Subject".into(), "cheap pills by milter".into()),
            ("Message-ID".into(), "<milter-kept@example.com>".into()),
        ],
        body: b"Hello.\r\n".to_vec(),
        queue_id: "4F2A1B3C".into(),
        ..Mail::default()
    };
    crate::serve_support::milter_reply(c.daemon.milter, &mail).expect("a reply");
    let entry = c.wait_entry("milter-kept");
    assert_eq!(entry["source"], "milter");
    let e = c
        .daemon
        .get(&format!("/v1/actions/{}/explain", entry["id"]))
        .json();
    let source = e["source"].as_str().expect("the source");
    assert!(
        source.contains("Subject: cheap pills by milter"),
        "{source}"
    );
    let h = &e["highlights"][0];
    let (s, t) = (
        h["start"].as_u64().unwrap() as usize,
        h["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(&source[s..t], "pills");
}
