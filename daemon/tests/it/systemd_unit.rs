//! `daemon/weir.service` as systemd reads it: `systemd-analyze verify`
//! accepts it without a warning, and it lets the daemon do its job under
//! `ProtectSystem=strict` (the Maildir root writable, restarts that never
//! give up after a store fault, enough file descriptors).
//!
//! Needs `systemd-analyze`; without it the test prints `skipped: ...` and
//! passes, unless `WEIR_REQUIRE_MAIL_TOOLS=1` (CI), where it fails.

use crate::postfix_support;

use std::process::Command;

const UNIT: &str = include_str!("../../weir.service");

/// The values of `key` in the unit, in order.
fn values<'a>(key: &str) -> Vec<&'a str> {
    UNIT.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::trim)
        .collect()
}

#[test]
fn the_unit_lets_the_daemon_deliver_and_recover() {
    let writable: Vec<&str> = values("ReadWritePaths")
        .iter()
        .map(|v| v.trim_start_matches('-'))
        .collect();
    assert!(
        writable.contains(&"/var/mail"),
        "the documented maildir = \"/var/mail/{{domain}}/{{local}}\" must be writable: {writable:?}"
    );
    assert_eq!(values("ProtectSystem"), ["strict"]);
    assert_eq!(values("StartLimitIntervalSec"), ["0"]);
    assert_eq!(values("Restart"), ["on-failure"]);
    let nofile: u64 = values("LimitNOFILE")
        .first()
        .and_then(|v| v.parse().ok())
        .expect("LimitNOFILE");
    assert!(nofile >= 16_384, "{nofile}");
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    if postfix_support::missing_mail_tools(&["systemd-analyze"], false).is_some() {
        return;
    }
    // verify checks that ExecStart's program exists: point it at the binary
    // under test.
    let dir = crate::common::temp_dir("unit");
    let unit = dir.join("weir.service");
    std::fs::write(
        &unit,
        UNIT.replace("/usr/local/bin/weir", env!("CARGO_BIN_EXE_weir")),
    )
    .expect("unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Unknown keys and bad values are warnings with exit status 0: any
    // message about the unit is a failure.
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("weir.service"))
        .collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
    let _ = std::fs::remove_dir_all(&dir);
}
