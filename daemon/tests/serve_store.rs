//! `weir serve`: the audit log and quarantine endpoints over a store that
//! holds decisions, and durability across `kill -9`.
//!
//! Decisions normally come from the milter; here the store is filled
//! before the daemon starts (sled allows one process at a time), in the
//! daemon's own format, which also checks that what one run wrote is read
//! by the next.

mod serve_support;

use std::path::Path;

use serde_json::json;
use serve_support::{Daemon, temp_dir, write_config};

const RULES: &str = "rule hold {\n  when subject contains \"exe\"\n  then quarantine \"executable\"\n}\nrule vip {\n  when from.address == \"ceo@example.com\"\n  then tag \"vip\"\n}\n";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Writes audit entries (time offset, verdict, matched, queue id) and the
/// quarantine index for the `quarantine` ones, as the daemon would.
fn seed(state: &Path, entries: &[(i64, &str, &[&str], &str)]) -> Vec<u64> {
    let db = sled::open(state.join("db")).unwrap();
    let audit = db.open_tree("audit").unwrap();
    let quarantine = db.open_tree("quarantine").unwrap();
    let mut ids = Vec::new();
    for (age, verdict, matched, queue_id) in entries {
        let id = db.generate_id().unwrap();
        let time = now() - age;
        let entry = json!({
            "id": id, "time": time, "source": "milter", "queue_id": queue_id,
            "message_id": format!("<{id}@example.com>"), "ruleset_version": 1,
            "decision": {"verdict": verdict, "reply": null, "stage": "header",
                "matched": matched, "tags": [], "score": 0, "folder": null, "actions": []},
        });
        audit
            .insert(id.to_be_bytes(), serde_json::to_vec(&entry).unwrap())
            .unwrap();
        if *verdict == "quarantine" {
            let held = json!({
                "queue_id": queue_id, "audit_id": id, "rule": "hold", "reason": "executable",
                "time": time, "summary": {"message_id": format!("<{id}@example.com>"),
                    "from": "a@example.org", "to": ["b@example.com"], "subject": "exe", "size": 100},
            });
            quarantine
                .insert(queue_id.as_bytes(), serde_json::to_vec(&held).unwrap())
                .unwrap();
        }
        ids.push(id);
    }
    db.flush().unwrap();
    ids
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[test]
fn actions_are_filtered_and_paged() {
    let dir = temp_dir("actions");
    std::fs::write(dir.join("rules.flow"), RULES).unwrap();
    let ids = seed(
        &dir.join("state"),
        &[
            (7200, "accept", &["vip"], "A1"),
            (3600, "reject", &[], "A2"),
            (60, "accept", &[], "A3"),
            (10, "quarantine", &["hold"], "A4"),
        ],
    );
    let (http, milter) = write_config(&dir, "", "");
    let d = Daemon::start(&dir, http, milter);

    let all = d.get("/v1/actions").json();
    let queue_ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["queue_id"].as_str().unwrap())
        .collect();
    assert_eq!(queue_ids, ["A1", "A2", "A3", "A4"], "oldest first");
    let first = &all[0];
    assert_eq!(first["id"], ids[0]);
    assert_eq!(first["verdict"], "accept");
    assert_eq!(first["ruleset_version"], 1);
    assert_eq!(first["stage"], "header");
    assert!(first["time"].as_str().unwrap().ends_with('Z'));

    let accepted = d.get("/v1/actions?verdict=accept").json();
    assert_eq!(accepted.as_array().unwrap().len(), 2);
    let vip = d.get("/v1/actions?rule=vip").json();
    assert_eq!(vip.as_array().unwrap().len(), 1);
    assert_eq!(vip[0]["queue_id"], "A1");
    let after = d.get(&format!("/v1/actions?since={}", ids[1])).json();
    assert_eq!(after.as_array().unwrap().len(), 2);
    assert_eq!(after[0]["queue_id"], "A3");
    let last_two = d.get("/v1/actions?limit=2").json();
    assert_eq!(last_two[0]["queue_id"], "A3");
    assert_eq!(last_two[1]["queue_id"], "A4");
    // An RFC 3339 time 30 minutes ago.
    let since = serve_time(now() - 1800);
    let recent = d.get(&format!("/v1/actions?since={since}")).json();
    assert_eq!(recent.as_array().unwrap().len(), 2, "{since}");

    assert_eq!(d.get("/v1/actions?verdict=maybe").status, 400);
    assert_eq!(d.get("/v1/actions?limit=x").status, 400);
    assert_eq!(d.get("/v1/actions?since=yesterday").status, 400);
}

/// RFC 3339 UTC, computed independently of the daemon.
fn serve_time(secs: i64) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn quarantine_release_and_delete_run_the_configured_commands() {
    let dir = temp_dir("quarantine");
    std::fs::write(dir.join("rules.flow"), RULES).unwrap();
    seed(
        &dir.join("state"),
        &[
            (30, "quarantine", &["hold"], "4KQ1"),
            (20, "accept", &[], "5AB"),
            (10, "quarantine", &["hold"], "4KQ2"),
        ],
    );
    let log = dir.join("argv.log");
    let release = script(
        &dir,
        "release.sh",
        &format!("echo release \"$@\" >> {}", log.display()),
    );
    let delete = script(
        &dir,
        "delete.sh",
        "echo \"postsuper: fatal: no such queue file $2\" >&2; exit 1",
    );
    let (http, milter) = write_config(
        &dir,
        &format!("release = \"{release} -H {{queue_id}}\"\ndelete = \"{delete} -d {{queue_id}}\""),
        "",
    );
    let d = Daemon::start(&dir, http, milter);

    let list = d.get("/v1/quarantine").json();
    let held: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue_id"].as_str().unwrap())
        .collect();
    assert_eq!(held, ["4KQ1", "4KQ2"]);
    assert_eq!(list[0]["rule"], "hold");
    assert_eq!(list[0]["reason"], "executable");

    let one = d.get("/v1/quarantine/4KQ1");
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["decision"]["verdict"], "quarantine");
    assert_eq!(d.get("/v1/quarantine/NOPE").status, 404);
    assert_eq!(d.get("/v1/quarantine/a;b").status, 404);

    let released = d.request("POST", "/v1/quarantine/4KQ1/release", true, b"");
    assert_eq!(released.status, 200, "{}", released.body);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "release -H 4KQ1\n",
        "the command got the queue id as one argument"
    );
    assert_eq!(d.get("/v1/quarantine/4KQ1").status, 404);
    assert_eq!(
        d.request("POST", "/v1/quarantine/4KQ1/release", true, b"")
            .status,
        404
    );

    let failed = d.request("DELETE", "/v1/quarantine/4KQ2", true, b"");
    assert_eq!(failed.status, 502);
    assert!(
        failed.json()["stderr"]
            .as_str()
            .unwrap()
            .contains("no such queue file 4KQ2")
    );
    assert_eq!(d.get("/v1/quarantine/4KQ2").status, 200, "still held");
    assert_eq!(
        d.request("DELETE", "/v1/quarantine/4KQ2", false, b"")
            .status,
        401
    );
}

#[test]
fn state_survives_kill_9() {
    let dir = temp_dir("restart");
    std::fs::write(dir.join("rules.flow"), RULES).unwrap();
    let (http, milter) = write_config(&dir, "", "");
    let mut d = Daemon::start(&dir, http, milter);
    assert_eq!(
        d.request("POST", "/v1/reload", true, b"").json()["version"],
        2
    );
    d.signal("KILL");
    let status = d.child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    drop(d);

    // The ruleset version counter was flushed before the reload answered.
    let d = Daemon::start(&dir, http, milter);
    assert_eq!(d.version(), 3);
}
