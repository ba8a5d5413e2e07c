//! End to end: the real `weir lsp` binary, spoken to over its stdin and
//! stdout with Content-Length framing, as an editor does.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use serde_json::{Value, json};

/// A session with a running `weir lsp`.
struct Session {
    child: Child,
    stdin: ChildStdin,
    messages: Receiver<Value>,
    next_id: i64,
}

impl Session {
    fn start() -> Session {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("weir lsp starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, messages) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            while let Some(message) = read_message(&mut reader) {
                if sender.send(message).is_err() {
                    break;
                }
            }
        });
        Session {
            child,
            stdin,
            messages,
            next_id: 0,
        }
    }

    fn send(&mut self, message: Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len())
            .expect("write to weir lsp");
        self.stdin.flush().expect("flush");
    }

    fn next(&self) -> Value {
        self.messages
            .recv_timeout(Duration::from_secs(30))
            .expect("weir lsp answers within 30 s")
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let message = self.next();
            if message["id"] == id && message.get("method").is_none() {
                assert!(message.get("error").is_none(), "{method} failed: {message}");
                return message["result"].clone();
            }
        }
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// The next diagnostics published for `uri`.
    fn diagnostics(&self, uri: &str) -> Vec<Value> {
        loop {
            let message = self.next();
            if message["method"] == "textDocument/publishDiagnostics"
                && message["params"]["uri"] == uri
            {
                return message["params"]["diagnostics"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
            }
        }
    }
}

/// Reads one framed message; `None` at the end of the stream.
fn read_message(reader: &mut impl BufRead) -> Option<Value> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(n) = line.strip_prefix("Content-Length: ") {
            length = n.parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length?];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

fn file_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// The (line, character) of the first `needle` in `text`, plus `delta`.
fn position(text: &str, needle: &str, delta: usize) -> Value {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not found"));
    let line = text[..offset].matches('\n').count();
    let column = offset - text[..offset].rfind('\n').map_or(0, |i| i + 1);
    json!({"line": line, "character": column + delta})
}

const BROKEN: &str = "\
let vip = [\"ceo@example.com\"]

rule unknown_field {
  when envelope.frm.domain == \"example.com\"
  then tag \"a\"
}

rule unknown_action {
  when from.address in vip
  then frobnicate \"y\"
}

rule type_error {
  when count(subject) > 1
  then tag \"c\"
}
";

const GOOD: &str = "\
let vip = [\"ceo@example.com\"]

rule   vip_mail {
     when from.address in vip
  then tag \"vip\"
}
";

#[test]
fn weir_lsp_speaks_lsp_over_stdio() {
    let dir = crate::common::temp_dir("lsp-e2e");
    let mut session = Session::start();
    let init = session.request(
        "initialize",
        json!({"processId": null, "rootUri": file_uri(&dir), "capabilities": {}}),
    );
    assert_eq!(init["capabilities"]["hoverProvider"], true, "{init}");
    assert_eq!(init["serverInfo"]["name"], "weir");
    session.notify("initialized", json!({}));

    // A file with errors in several places.
    let broken_path = dir.join("broken.flow");
    std::fs::write(&broken_path, BROKEN).expect("write");
    let broken = file_uri(&broken_path);
    session.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": broken, "languageId": "flow", "version": 1, "text": BROKEN}}),
    );
    let diagnostics = session.diagnostics(&broken);
    let found: Vec<(String, Value)> = diagnostics
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap_or("").to_string(),
                d["range"]["start"].clone(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            ("E0102".to_string(), position(BROKEN, "envelope.frm", 0)),
            ("E0116".to_string(), position(BROKEN, "frobnicate", 0)),
            ("E0108".to_string(), position(BROKEN, "subject)", 0)),
        ],
        "{diagnostics:#?}"
    );
    assert_eq!(
        diagnostics[0]["range"]["end"],
        position(BROKEN, "envelope.frm", 12)
    );
    assert_eq!(diagnostics[0]["severity"], 1);
    assert!(
        diagnostics[0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("hint: "),
        "{:#?}",
        diagnostics[0]
    );

    // Hover on a field, on any part of its path.
    let hover = session.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": broken}, "position": position(BROKEN, "from.address", 1)}),
    );
    let text = hover["contents"]["value"].as_str().unwrap_or("");
    assert!(text.contains("from: list<address>"), "{hover}");

    // Completion after a dot.
    let good_path = dir.join("good.flow");
    std::fs::write(&good_path, GOOD).expect("write");
    let good = file_uri(&good_path);
    session.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": good, "languageId": "flow", "version": 1, "text": GOOD}}),
    );
    assert_eq!(session.diagnostics(&good), Vec::<Value>::new());
    let completion = session.request(
        "textDocument/completion",
        json!({"textDocument": {"uri": good}, "position": position(GOOD, "address in", 0)}),
    );
    let labels: Vec<&str> = completion
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["label"].as_str())
        .collect();
    assert!(
        labels.contains(&"domain") && labels.contains(&"address"),
        "{labels:?}"
    );

    // Definition of a `let`.
    let definition = session.request(
        "textDocument/definition",
        json!({"textDocument": {"uri": good}, "position": position(GOOD, "in vip", 4)}),
    );
    assert_eq!(definition["uri"], good);
    assert_eq!(definition["range"]["start"], position(GOOD, "vip =", 0));

    // Formatting: one edit with `weir fmt`'s text.
    let edits = session.request(
        "textDocument/formatting",
        json!({"textDocument": {"uri": good}, "options": {"tabSize": 2, "insertSpaces": true}}),
    );
    let edits = edits.as_array().cloned().unwrap_or_default();
    assert_eq!(edits.len(), 1, "{edits:?}");
    let formatted = edits[0]["newText"].as_str().unwrap_or("");
    assert!(
        formatted.contains("rule vip_mail {\n  when from.address in vip\n"),
        "{formatted}"
    );

    // Shutdown and exit: status 0.
    assert_eq!(session.request("shutdown", Value::Null), Value::Null);
    session.notify("exit", Value::Null);
    drop(session.stdin);
    let status = session.child.wait().expect("weir lsp exits");
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
