//! `weir serve`: the HTTP control API over real sockets, hot reload, and
//! configuration errors, against the real binary.

use crate::serve_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serve_support::{Daemon, temp_dir, write_config};

const RULES: &str = r#"
list blocked = file "blocked.txt"

rule blocked_sender priority 10 {
  when envelope.from.domain in blocked
  then reject "blocked"
}

rule vip {
  when from.address == "ceo@example.com"
  then { tag "vip"; add_header "X-Priority" "1" }
}

rule burst {
  when rate(envelope.from.domain, 1h) > 1
  then tempfail
}

test "vip mail is tagged" {
  message """From: ceo@example.com
To: support@example.com
Subject: hello

hi
"""
  expect tag "vip"
}
"#;

const MESSAGE: &[u8] =
    b"From: ceo@example.com\r\nTo: support@example.com\r\nSubject: hello\r\n\r\nhi\r\n";

fn setup(name: &str, milter_extra: &str, extra: &str) -> Daemon {
    let dir = temp_dir(name);
    std::fs::write(dir.join("rules.flow"), RULES).unwrap();
    std::fs::write(dir.join("blocked.txt"), "spam.example\n").unwrap();
    let (http, milter) = write_config(&dir, milter_extra, extra);
    Daemon::start(&dir, http, milter).owning(dir)
}

/// Replaces a file the way editors do: write a temporary file, rename it.
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn health_metrics_and_auth() {
    let d = setup("health", "", "");
    let health = d.request("GET", "/healthz", false, b"");
    assert_eq!(health.status, 200);
    let health = health.json();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["ruleset"]["version"], 1);
    assert_eq!(health["ruleset"]["hash"].as_str().map(str::len), Some(16));

    let metrics = d.request("GET", "/metrics", false, b"");
    assert_eq!(metrics.status, 200);
    for name in [
        "weir_messages_total{verdict=\"accept\"} 0",
        "weir_rule_matches_total{rule=\"vip\"} 0",
        "weir_tags_total{tag=\"vip\"} 0",
        "weir_eval_duration_seconds_count 0",
        "weir_ruleset_version 1",
        "weir_reloads_total{result=\"error\"} 0",
        "weir_outbox_pending 0",
        "weir_milter_connections 0",
    ] {
        assert!(
            metrics.body.contains(name),
            "{name} missing:\n{}",
            metrics.body
        );
    }

    let anonymous = d.request("GET", "/v1/ruleset", false, b"");
    assert_eq!(anonymous.status, 401);
    assert!(
        anonymous
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer"))
    );
    let wrong =
        serve_support::http(d.http, "GET", "/v1/ruleset", Some("secret-tokeN"), b"").unwrap();
    assert_eq!(wrong.status, 401);
    // Unknown paths under /v1 need the token too (they reveal nothing).
    assert_eq!(d.request("GET", "/v1/nothing", false, b"").status, 401);

    let ruleset = d.get("/v1/ruleset");
    assert_eq!(ruleset.status, 200);
    let ruleset = ruleset.json();
    assert_eq!(ruleset["version"], 1);
    assert!(ruleset["last_error"].is_null());
    // This machine allows executable memory: the daemon runs native code.
    assert_eq!(ruleset["engine"], "native");
    let rules: Vec<&str> = ruleset["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["blocked_sender", "vip", "burst"]);
    assert_eq!(ruleset["rules"][1]["stage"], "header");
    assert_eq!(ruleset["rules"][0]["priority"], 10);
    let files: Vec<&str> = ruleset["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        files.iter().any(|f| f.ends_with("blocked.txt")),
        "{files:?}"
    );

    let unknown = d.get("/v1/nothing");
    assert_eq!(unknown.status, 404);
    assert!(unknown.json()["error"].is_string());
    assert_eq!(d.request("GET", "/v1/reload", true, b"").status, 405);
    assert_eq!(d.request("DELETE", "/healthz", false, b"").status, 405);
    assert_eq!(d.get("/v1/outbox").json(), serde_json::json!([]));
}

#[test]
fn check_is_a_dry_run() {
    let d = setup("check", "", "[limits]\nmax_message_size = \"1K\"\n");
    for _ in 0..3 {
        let r = d.request(
            "POST",
            "/v1/check?from=boss%40corp.example&to=support%40example.com&to=b%40example.com&client_ip=192.0.2.1&helo=mx.corp.example",
            true,
            MESSAGE,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let decision = r.json();
        // `rate()` counts nothing in a dry run, so `burst` never holds.
        assert_eq!(decision["verdict"], "accept", "{decision}");
        assert_eq!(decision["matched"], serde_json::json!(["vip"]));
        assert_eq!(decision["tags"], serde_json::json!(["vip"]));
        assert_eq!(decision["stage"], "header");
    }
    let blocked = d
        .request("POST", "/v1/check?from=x%40spam.example", true, MESSAGE)
        .json();
    assert_eq!(blocked["verdict"], "reject");
    assert_eq!(blocked["reply"]["code"], 550);

    // No audit entry, no metric.
    assert_eq!(d.get("/v1/actions").json(), serde_json::json!([]));
    let metrics = d.request("GET", "/metrics", false, b"").body;
    assert!(
        metrics.contains("weir_messages_total{verdict=\"accept\"} 0"),
        "{metrics}"
    );

    let big = vec![b'x'; 2048];
    assert_eq!(d.request("POST", "/v1/check", true, &big).status, 413);
    assert_eq!(
        d.request("POST", "/v1/check?client_ip=nope", true, MESSAGE)
            .status,
        400
    );
    assert_eq!(d.request("POST", "/v1/check", false, MESSAGE).status, 401);

    // Nothing was written: not even an empty rate() key for the counters
    // the rules read.
    let mut d = d;
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(20)), Some(0));
    let db = sled::open(d.dir.join("state/db")).expect("the store");
    let rates = db.open_tree("rates").expect("rates");
    assert!(
        rates.is_empty(),
        "{:?}",
        rates.iter().keys().collect::<Vec<_>>()
    );
}

#[test]
fn reload_swaps_only_a_good_ruleset() {
    let d = setup("reload", "", "");
    let ok = d.request("POST", "/v1/reload", true, b"");
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["version"], 2);
    assert_eq!(d.version(), 2);

    // A compile error: 422 with structured diagnostics; version 2 stays.
    let rules = d.dir.join("rules.flow");
    std::fs::write(&rules, RULES.replace("from.address ==", "from.adress ==")).unwrap();
    let bad = d.request("POST", "/v1/reload", true, b"");
    assert_eq!(bad.status, 422, "{}", bad.body);
    let body = bad.json();
    let diag = &body["diagnostics"][0];
    assert!(diag["code"].as_str().unwrap().starts_with('E'), "{body}");
    assert!(
        diag["file"].as_str().unwrap().ends_with("rules.flow"),
        "{body}"
    );
    assert_eq!(diag["line"], 10, "{body}");
    assert!(diag["col"].as_u64().unwrap() > 1);
    assert!(
        body["rendered"].as_str().unwrap().contains("adress"),
        "{body}"
    );
    assert_eq!(d.version(), 2);
    let last = d.get("/v1/ruleset").json();
    assert_eq!(last["version"], 2);
    assert_eq!(last["last_error"]["kind"], "compile");

    // A failing test block: 422 naming the test.
    std::fs::write(
        &rules,
        RULES.replace("expect tag \"vip\"", "expect tag \"urgent\""),
    )
    .unwrap();
    let failing = d.request("POST", "/v1/reload", true, b"");
    assert_eq!(failing.status, 422);
    assert_eq!(failing.json()["tests"][0]["test"], "vip mail is tagged");
    assert_eq!(d.version(), 2);

    let metrics = d.request("GET", "/metrics", false, b"").body;
    assert!(
        metrics.contains("weir_reloads_total{result=\"error\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("weir_reloads_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("weir_ruleset_version 2"), "{metrics}");

    // Fixed again: the next reload works and clears the error.
    std::fs::write(&rules, RULES).unwrap();
    assert_eq!(
        d.request("POST", "/v1/reload", true, b"").json()["version"],
        3
    );
    assert!(d.get("/v1/ruleset").json()["last_error"].is_null());
}

#[test]
fn sighup_reloads() {
    let d = setup("sighup", "", "");
    let before = d.request("GET", "/healthz", false, b"").json();
    std::fs::write(d.dir.join("blocked.txt"), "spam.example\nother.example\n").unwrap();
    d.signal("HUP");
    d.wait_version(2);
    let after = d.request("GET", "/healthz", false, b"").json();
    assert_ne!(before["ruleset"]["hash"], after["ruleset"]["hash"]);
}

#[test]
fn a_changed_rule_or_list_file_reloads() {
    let d = setup("watch", "", "");
    replace_file(
        &d.dir.join("rules.flow"),
        &RULES.replace("priority 10", "priority 20"),
    );
    d.wait_version(2);
    let ruleset = d.get("/v1/ruleset").json();
    assert_eq!(ruleset["rules"][0]["priority"], 20);

    // A list file edited in place.
    std::fs::write(d.dir.join("blocked.txt"), "spam.example\nnew.example\n").unwrap();
    d.wait_version(3);
    let r = d
        .request("POST", "/v1/check?from=a%40new.example", true, MESSAGE)
        .json();
    assert_eq!(r["verdict"], "reject");

    // A broken file does not replace the running ruleset.
    replace_file(&d.dir.join("rules.flow"), "rule broken {");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(d.version(), 3);
    assert!(!d.get("/v1/ruleset").json()["last_error"].is_null());
}

#[test]
fn a_changed_map_file_takes_effect_and_a_bad_line_is_refused() {
    let d = setup("watchmap", "", "");
    std::fs::write(d.dir.join("verdicts.map"), "new.example accept\n").unwrap();
    let rules = format!(
        "{RULES}\nmap verdicts = file \"verdicts.map\"\n\nrule mapped priority 5 {{\n  when verdicts[envelope.from.domain] == \"reject\"\n  then reject \"mapped\"\n}}\n"
    );
    replace_file(&d.dir.join("rules.flow"), &rules);
    d.wait_version(2);
    let check = |d: &Daemon| {
        d.request("POST", "/v1/check?from=a%40new.example", true, MESSAGE)
            .json()["verdict"]
            .clone()
    };
    assert_eq!(check(&d), "accept");

    // The map file edited in place is reloaded like a list file.
    std::fs::write(
        d.dir.join("verdicts.map"),
        "# by domain\nnew.example reject\n",
    )
    .unwrap();
    d.wait_version(3);
    assert_eq!(check(&d), "reject");

    // A bad line is refused at the map file's line; the running rules stay.
    std::fs::write(d.dir.join("verdicts.map"), "new.example\n").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(d.version(), 3);
    let error = d.get("/v1/ruleset").json()["last_error"].to_string();
    assert!(error.contains("verdicts.map:1"), "{error}");
    assert_eq!(check(&d), "reject");
}

#[test]
fn sigterm_stops_cleanly() {
    let mut d = setup("sigterm", "", "");
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(15)), Some(0), "{}", d.log());
}

fn serve_config(dir: &Path, config: &str) -> (Option<i32>, String) {
    std::fs::write(dir.join("weir.toml"), config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--config", "weir.toml"])
        .current_dir(dir)
        .output()
        .expect("weir runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_configuration_names_the_key_and_does_not_start() {
    let dir = temp_dir("badconfig");
    std::fs::write(dir.join("rules.flow"), "rule a { then accept }\n").unwrap();

    let (code, err) = serve_config(
        &dir,
        "rules = \"rules.flow\"\nstate_dir = \"s\"\n[milter]\nlisten = \"inet:127.0.0.1:1\"\non_error = \"maybe\"\n",
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("weir.toml: [milter] on_error: expected one of accept, tempfail, reject, got \"maybe\" (line 5, column 12)"),
        "{err}"
    );

    let (code, err) = serve_config(
        &dir,
        "rules = \"rules.flow\"\nstate_dir = \"s\"\n[http]\nlisten = \"127.0.0.1:1\"\nport = 3\n",
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("weir.toml: [http] port: unknown key, expected one of"),
        "{err}"
    );
    assert!(err.contains("line 5"), "{err}");

    // Every problem in one run, a misspelled key with its did-you-mean.
    let (code, err) = serve_config(
        &dir,
        "rules = \"rules.flow\"\nstate_dir = \"s\"\n[milter]\non_eror = \"tempfail\"\n\
         [limits]\neval_timeout = \"100M\"\nmax_headers = 0\n",
    );
    assert_eq!(code, Some(1));
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("weir.toml: "))
        .collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].contains("[milter] on_eror: unknown key, did you mean `on_error`?"),
        "{err}"
    );
    assert!(lines[1].contains("[limits] eval_timeout"), "{err}");
    assert!(lines[2].contains("[limits] max_headers"), "{err}");

    let (code, err) = serve_config(
        &dir,
        "rules = \"rules.flow\"\nstate_dir = \"s\"\n[limits]\neval_timeout = \"100M\"\n",
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("[limits] eval_timeout"), "{err}");

    let (code, err) = serve_config(&dir, "state_dir = \"s\"\n");
    assert_eq!(code, Some(1));
    assert!(err.contains("weir.toml: rules: missing"), "{err}");

    // A notify channel the rules name but weir.toml lacks: exit 1, named.
    std::fs::write(
        dir.join("notify.flow"),
        "# notify \"commented\" is not a channel\nrule a { then notify \"pager\" with {text: \"x\"} }\n",
    )
    .unwrap();
    let (code, err) = serve_config(
        &dir,
        "rules = \"notify.flow\"\nstate_dir = \"s\"\n[notify.slack]\nurl = \"http://127.0.0.1:9/\"\n",
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("channel \"pager\""), "{err}");
    assert!(err.contains("[notify.pager]"), "{err}");
    assert!(err.contains("configured: slack"), "{err}");
    assert!(!err.contains("commented"), "{err}");

    // An auto-reply needs [relay]; a redirect needs it only for LMTP
    // delivery (the milter makes it an envelope edit).
    std::fs::write(
        dir.join("send.flow"),
        "template away { body = \"away\" }\nrule vacation { then reply template away }\n\
         rule fwd { when subject contains \"x\" then redirect \"a@b.example\" }\n",
    )
    .unwrap();
    let (code, err) = serve_config(&dir, "rules = \"send.flow\"\nstate_dir = \"s\"\n");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("rule vacation sends mail"), "{err}");
    assert!(err.contains("needs [relay]"), "{err}");
    let lmtp = "[lmtp]\nlisten = \"127.0.0.1:1\"\nmaildir = \"m/{local}\"\n";
    let (code, err) = serve_config(
        &dir,
        &format!("rules = \"send.flow\"\nstate_dir = \"s\"\n{lmtp}"),
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("rule fwd, vacation sends mail"), "{err}");

    // Rules that do not compile: exit 2 with the diagnostics.
    let (code, err) = serve_config(&dir, "rules = \"missing.flow\"\nstate_dir = \"s\"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("missing.flow"), "{err}");

    let (code, err) = serve_config(
        &dir,
        "rules = \"rules.flow\"\nstate_dir = \"s\"\n[http]\ntoken_file = \"nope\"\n",
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("[http] token_file"), "{err}");
}

#[test]
fn the_token_file_must_be_private_and_long_enough() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("token-file");
    std::fs::write(dir.join("rules.flow"), "rule a { then accept }\n").unwrap();
    let config = "rules = \"rules.flow\"\nstate_dir = \"s\"\n[http]\nlisten = \"127.0.0.1:1\"\ntoken_file = \"tok\"\n";
    let token = dir.join("tok");
    std::fs::write(&token, "a-token-long-enough-to-pass\n").unwrap();
    for mode in [0o644, 0o640, 0o604, 0o777] {
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).unwrap();
        let (code, err) = serve_config(&dir, config);
        assert_eq!(code, Some(1), "mode {mode:o}: {err}");
        assert!(
            err.contains("[http] token_file") && err.contains(&format!("mode {mode:04o}")),
            "{err}"
        );
    }
    serve_support::write_token(&token, "short");
    let (code, err) = serve_config(&dir, config);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("shorter than 12 characters"), "{err}");
}

#[test]
fn a_generated_token_is_never_printed_and_the_scheme_is_case_insensitive() {
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("token-generated");
    std::fs::write(dir.join("rules.flow"), "rule a { then accept }\n").unwrap();
    let http = serve_support::free_port();
    let milter = serve_support::free_port();
    std::fs::write(
        dir.join("weir.toml"),
        format!(
            "rules = \"rules.flow\"\nstate_dir = \"state\"\n[milter]\nlisten = \"inet:127.0.0.1:{milter}\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--config", "weir.toml"])
        .current_dir(&dir)
        .stdout(std::fs::File::create(dir.join("out.log")).unwrap())
        .stderr(std::fs::File::create(dir.join("err.log")).unwrap())
        .spawn()
        .unwrap();
    let file = dir.join("state/api-token");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let answer = loop {
        assert!(std::time::Instant::now() < deadline, "no token generated");
        if let Ok(token) = std::fs::read_to_string(&file)
            && let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", http))
        {
            // The scheme in lower case (RFC 7235: case-insensitive).
            let request = format!(
                "GET /v1/ruleset HTTP/1.1\r\nHost: x\r\nAuthorization: bearer {}\r\nConnection: close\r\n\r\n",
                token.trim()
            );
            stream.write_all(request.as_bytes()).unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            break (token, answer);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    let (token, answer) = answer;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let printed = std::fs::read_to_string(dir.join("err.log")).unwrap()
        + &std::fs::read_to_string(dir.join("out.log")).unwrap();
    assert!(
        printed.contains("state/api-token"),
        "where it is: {printed}"
    );
    assert!(
        !printed.contains(token.trim()),
        "never what it is: {printed}"
    );
}
