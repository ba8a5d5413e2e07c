//! Where the operating system refuses executable memory (systemd's
//! `MemoryDenyWriteExecute=yes`, which is Linux's `PR_SET_MDWE`), compiling
//! to native code is an error the caller can fall back from, never a
//! crash. The test re-runs itself in a child process that Python puts
//! under `PR_SET_MDWE` first (the setting cannot be undone in a process).

mod common;

use std::process::Command;

use common::*;
use weir_compiler::{EvalOptions, MemoryRates, NativeError, NativeRuleset};

const CHILD: &str = "WEIR_TEST_MDWE_CHILD";

/// Python: refuse W^X changes for this process and what it executes, then
/// run the test binary; exit 77 when the kernel lacks `PR_SET_MDWE`.
const LAUNCHER: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    sys.exit(77)
os.execv(sys.argv[1], sys.argv[1:])
"#;

#[test]
fn refused_executable_memory_is_an_error_and_the_interpreter_still_works() {
    let r = rules(r#"rule a { when subject contains "invoice" then tag "x" }"#);
    if std::env::var_os(CHILD).is_some() {
        let err = NativeRuleset::compile(&r).expect_err("executable memory is refused here");
        assert!(
            matches!(err, NativeError::ExecutableMemory(_)),
            "unexpected error: {err}"
        );
        let d = r.evaluate(
            &tx(MAIL),
            &mut MemoryRates::default(),
            &EvalOptions::default(),
        );
        assert_eq!(d.tags, ["x"]);
        return;
    }
    // The parent: native code works here.
    assert!(NativeRuleset::compile(&r).is_ok());
    let exe = std::env::current_exe().expect("the test binary");
    let out = Command::new("python3")
        .arg("-c")
        .arg(LAUNCHER)
        .arg(&exe)
        .args([
            "--exact",
            "refused_executable_memory_is_an_error_and_the_interpreter_still_works",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output();
    let Ok(out) = out else {
        eprintln!("no python3: skipped");
        return;
    };
    if out.status.code() == Some(77) {
        eprintln!("the kernel has no PR_SET_MDWE: skipped");
        return;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
