//! `weir serve`: the audit log and quarantine endpoints over a store that
//! holds decisions, and durability across `kill -9`.
//!
//! Decisions normally come from the milter; here the store is filled
//! before the daemon starts (sled allows one process at a time), in the
//! daemon's own format, which also checks that what one run wrote is read
//! by the next.

use crate::serve_support;

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

/// A stand-in for Postfix's queue: `queue.sh` prints `queue.jsonl` as
/// `postqueue -j` would, `release.sh -H ID` logs its argv and takes the
/// message out of hold as `postsuper -H` does, `delete.sh` fails as
/// `postsuper -d` does for a missing file.
fn fake_postfix(dir: &Path, queue: &[(&str, &str, &str)]) -> (String, std::path::PathBuf) {
    let file = dir.join("queue.jsonl");
    let lines: String = queue
        .iter()
        .map(|(name, id, sender)| {
            format!(
                "{}\n",
                json!({"queue_name": name, "queue_id": id, "sender": sender, "recipients": [{"address": "b@example.com"}]})
            )
        })
        .collect();
    std::fs::write(&file, lines).unwrap();
    let log = dir.join("argv.log");
    let queue = script(dir, "queue.sh", &format!("cat {}", file.display()));
    let release = script(
        dir,
        "release.sh",
        &format!(
            "echo release \"$@\" >> {log}\nsed -i \"/\\\"$2\\\"/s/\\\"hold\\\"/\\\"deferred\\\"/\" {q}",
            log = log.display(),
            q = file.display()
        ),
    );
    let delete = script(
        dir,
        "delete.sh",
        &format!(
            "echo delete \"$@\" >> {}\necho \"postsuper: fatal: no such queue file $2\" >&2; exit 1",
            log.display()
        ),
    );
    let config = format!(
        "release = \"{release} -H {{queue_id}}\"\ndelete = \"{delete} -d {{queue_id}} hold\"\nqueue = \"{queue}\""
    );
    (config, log)
}

#[test]
fn quarantine_release_and_delete_act_only_on_what_postfix_holds() {
    let dir = temp_dir("quarantine");
    std::fs::write(dir.join("rules.flow"), RULES).unwrap();
    seed(
        &dir.join("state"),
        &[
            (30, "quarantine", &["hold"], "4A1B2C3D41"),
            (20, "accept", &[], "5AB"),
            (10, "quarantine", &["hold"], "4A1B2C3D42"),
            // Planted by a local milter client: Postfix's keyword.
            (9, "quarantine", &["hold"], "ALL"),
            // Someone else's message in the hold queue.
            (8, "quarantine", &["hold"], "4A1B2C3D43"),
            // Released by hand, outside Weir.
            (7, "quarantine", &["hold"], "4A1B2C3D44"),
        ],
    );
    let (milter_extra, log) = fake_postfix(
        &dir,
        &[
            ("hold", "4A1B2C3D41", "a@example.org"),
            ("hold", "4A1B2C3D42", "A@Example.org"),
            ("hold", "4A1B2C3D43", "mallory@example.net"),
            ("deferred", "4A1B2C3D44", "a@example.org"),
            ("hold", "4A1B2C3D45", "a@example.org"),
        ],
    );
    let (http, milter) = write_config(&dir, &milter_extra, "");
    let d = Daemon::start(&dir, http, milter);

    let list = d.get("/v1/quarantine").json();
    let listed: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["queue_id"].as_str().unwrap(),
                q["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("4A1B2C3D41", "held"),
            ("4A1B2C3D42", "held"),
            ("ALL", "gone"),
            ("4A1B2C3D43", "gone"),
            ("4A1B2C3D44", "gone"),
        ]
    );
    assert_eq!(list[0]["rule"], "hold");
    assert_eq!(list[0]["reason"], "executable");

    let one = d.get("/v1/quarantine/4A1B2C3D41");
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["decision"]["verdict"], "quarantine");
    assert_eq!(d.get("/v1/quarantine/NOPE").status, 404);
    assert_eq!(d.get("/v1/quarantine/a;b").status, 404);

    // Nothing that is not the held message reaches postsuper.
    for id in ["ALL", "4A1B2C3D43", "4A1B2C3D44"] {
        for (method, path) in [
            ("POST", format!("/v1/quarantine/{id}/release")),
            ("DELETE", format!("/v1/quarantine/{id}")),
        ] {
            let r = d.request(method, &path, true, b"");
            assert_eq!(r.status, 409, "{method} {path}: {}", r.body);
            assert_eq!(r.json()["status"], "gone");
        }
    }
    assert!(
        !log.exists(),
        "no command ran: {:?}",
        std::fs::read_to_string(&log)
    );
    // A message Weir never indexed is not released either.
    assert_eq!(
        d.request("POST", "/v1/quarantine/4A1B2C3D45/release", true, b"")
            .status,
        404
    );

    let released = d.request("POST", "/v1/quarantine/4A1B2C3D41/release", true, b"");
    assert_eq!(released.status, 200, "{}", released.body);
    assert_eq!(released.json()["status"], "released");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "release -H 4A1B2C3D41\n",
        "the command got the queue id as one argument"
    );
    assert_eq!(d.get("/v1/quarantine/4A1B2C3D41").status, 404);
    assert_eq!(
        d.request("POST", "/v1/quarantine/4A1B2C3D41/release", true, b"")
            .status,
        404
    );

    let failed = d.request("DELETE", "/v1/quarantine/4A1B2C3D42", true, b"");
    assert_eq!(failed.status, 502);
    assert!(
        failed.json()["stderr"]
            .as_str()
            .unwrap()
            .contains("no such queue file 4A1B2C3D42")
    );
    let still = d.get("/v1/quarantine/4A1B2C3D42");
    assert_eq!(still.status, 200, "still held");
    assert_eq!(still.json()["status"], "held");
    assert_eq!(
        d.request("DELETE", "/v1/quarantine/4A1B2C3D42", false, b"")
            .status,
        401
    );
}

#[test]
fn a_command_that_moves_nothing_is_not_reported_as_released() {
    let dir = temp_dir("quarantine-noop");
    std::fs::write(dir.join("rules.flow"), RULES).unwrap();
    seed(
        &dir.join("state"),
        &[(30, "quarantine", &["hold"], "4A1B2C3D41")],
    );
    let (milter_extra, _) = fake_postfix(&dir, &[("hold", "4A1B2C3D41", "a@example.org")]);
    // `true` exits 0 but releases nothing.
    let milter_extra = milter_extra.replacen(
        &milter_extra[..milter_extra.find('\n').unwrap()],
        "release = \"true {queue_id}\"",
        1,
    );
    let (http, milter) = write_config(&dir, &milter_extra, "");
    let d = Daemon::start(&dir, http, milter);
    let r = d.request("POST", "/v1/quarantine/4A1B2C3D41/release", true, b"");
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(d.get("/v1/quarantine/4A1B2C3D41").json()["status"], "held");
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
