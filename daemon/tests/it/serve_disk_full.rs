//! `weir serve` on a full disk: the state directory is a small tmpfs that
//! the test fills for real. While the store cannot write, every message is
//! tempfailed (never accepted unrecorded), `/healthz` answers 503 and the
//! daemon exits with status 75 so that its supervisor starts it again; once
//! space is freed, the restarted daemon accepts and records mail.
//!
//! Needs root (to mount the tmpfs); without it the test prints
//! `skipped: ...` and passes, unless `WEIR_REQUIRE_MAIL_TOOLS=1` (CI).

use crate::serve_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serve_support::{Daemon, temp_dir, write_config};
use weir::milter_client::{Mail, Reply};

const RULES: &str = "rule vip {\n  when subject contains \"vip\"\n  then tag \"vip\"\n}\n";

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status();
        match status {
            Ok(s) if s.success() => Some(Tmpfs(path.to_path_buf())),
            other => {
                let why = format!("cannot mount a tmpfs ({other:?}; needs root)");
                if std::env::var("WEIR_REQUIRE_MAIL_TOOLS").as_deref() == Ok("1") {
                    panic!("WEIR_REQUIRE_MAIL_TOOLS=1 but: {why}");
                }
                eprintln!("skipped: {why}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` with `dir/filler` until a write fails.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("filler");
    for chunk in [1 << 20, 4096, 512] {
        let block = vec![b'x'; chunk];
        while file
            .write_all(&block)
            .and_then(|()| file.sync_all())
            .is_ok()
        {}
    }
    path
}

/// One message through the milter: its final reply, or the I/O error
/// (the daemon gone or going).
fn send(port: u16, n: usize) -> std::io::Result<Reply> {
    let mail = Mail {
        helo: "client.example.test".into(),
        from: "alice@example.org".into(),
        to: vec!["bob@example.test".into()],
        headers: vec![
            (
                "Subject".into(),
                format!("vip message {n} {}", "x".repeat(2000)),
            ),
            ("Message-ID".into(), format!("<disk-{n}@example.org>")),
        ],
        body: "body line\r\n".repeat(200).into_bytes(),
        queue_id: format!("4A1B2C{n:04}"),
        ..Mail::default()
    };
    serve_support::milter_reply(port, &mail)
}

#[test]
fn a_full_disk_tempfails_mail_and_the_restarted_daemon_recovers() {
    let dir = temp_dir("disk-full");
    let Some(state) = Tmpfs::mount(&dir.join("state"), "16m") else {
        return;
    };
    std::fs::write(dir.join("rules.flow"), RULES).expect("rules");
    let (http, milter) = write_config(&dir, "", "");
    let mut d = Daemon::start(&dir, http, milter);
    assert_eq!(send(milter, 0).expect("sent"), Reply::Accept);

    let filler = fill(&state.0);
    // Until the daemon notices and exits, each message is tempfailed or
    // finds the daemon gone (Postfix then applies milter_default_action =
    // tempfail): none is accepted without its audit entry.
    let mut tempfailed = 0;
    let mut accepted = vec!["disk-0@example.org".to_string()];
    let mut n = 1;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(Some(status)) = d.child.try_wait() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running:\n{}", d.log());
        match send(milter, n) {
            Ok(Reply::Accept) | Ok(Reply::Continue) => {
                // Accepted means recorded (checked below): sled may still
                // have had room in a segment it had already allocated.
                accepted.push(format!("disk-{n}@example.org"));
            }
            Ok(Reply::Tempfail) => tempfailed += 1,
            Ok(Reply::Code(code)) if code.starts_with('4') => tempfailed += 1,
            Ok(other) => panic!("message {n}: {other:?}\n{}", d.log()),
            Err(_) => {}
        }
        if let Ok(r) = d.try_request("GET", "/healthz", false, b"") {
            assert!(
                r.status == 200 || r.status == 503,
                "{} {}",
                r.status,
                r.body
            );
        }
        n += 1;
    };
    assert_eq!(status.code(), Some(75), "{}", d.log());
    assert!(
        d.log().contains("the store does not take writes"),
        "{}",
        d.log()
    );
    eprintln!("{tempfailed} of {n} messages tempfailed while the disk was full");

    // While the disk is full, a start (what the supervisor keeps doing)
    // does not serve mail: it fails or exits at its first probe.
    drop(d);

    // Space is freed; the supervisor's next start works.
    std::fs::remove_file(&filler).expect("free the disk");
    let d = Daemon::start(&dir, http, milter);
    let recovered = (1000..1010).map(|i| send(milter, i)).find(|r| r.is_ok());
    assert_eq!(
        recovered.expect("a message").expect("sent"),
        Reply::Accept,
        "{}",
        d.log()
    );
    let metrics = d.request("GET", "/metrics", false, b"").body;
    assert!(metrics.contains("weir_store_errors_total"), "{metrics}");
    // Every accepted message has its audit entry, the last one included.
    let actions = d.get("/v1/actions?limit=10000").json();
    let ids: Vec<&str> = actions
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|e| e["message_id"].as_str())
        .collect();
    for id in &accepted {
        assert!(
            ids.contains(&id.as_str()),
            "{id} accepted but not recorded: {ids:?}"
        );
    }
    assert!(ids.contains(&"disk-1000@example.org"), "{ids:?}");
}
