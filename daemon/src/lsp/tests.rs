//! In-process tests: the server runs on a thread over
//! `Connection::memory()`, and each test speaks real LSP messages to it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use lsp_server::{Connection, Message, Notification, Request, RequestId};
use lsp_types::notification::{
    DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument, Exit, Initialized,
    Notification as _, PublishDiagnostics, ShowMessage,
};
use lsp_types::request::{
    CodeLensRequest, Completion, DocumentSymbolRequest, ExecuteCommand, Formatting, GotoDefinition,
    HoverRequest, Initialize, References, Request as _, Shutdown,
};
use lsp_types::{
    CodeLens, CodeLensParams, CompletionItem, CompletionParams, CompletionResponse, Diagnostic,
    DiagnosticSeverity, DidChangeTextDocumentParams, DidCloseTextDocumentParams,
    DidOpenTextDocumentParams, DocumentFormattingParams, DocumentSymbolParams,
    DocumentSymbolResponse, ExecuteCommandParams, FormattingOptions, GotoDefinitionParams,
    GotoDefinitionResponse, Hover, HoverContents, HoverParams, InitializeParams, Location,
    NumberOrString, Position, PublishDiagnosticsParams, Range, ReferenceContext, ReferenceParams,
    ShowMessageParams, SymbolKind, TextDocumentContentChangeEvent, TextDocumentIdentifier,
    TextDocumentItem, TextDocumentPositionParams, TextEdit, Url, VersionedTextDocumentIdentifier,
};
use serde_json::Value;

/// A directory of its own for one test, removed afterwards.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("weir-lsp-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create a directory");
        }
        std::fs::write(&path, text).expect("write a file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn uri(path: &Path) -> Url {
    Url::from_file_path(path).expect("an absolute path")
}

/// The client side of an in-memory session.
struct Client {
    connection: Connection,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    next_id: i32,
    /// Notifications received while waiting for something else.
    pending: VecDeque<Notification>,
    dir: TempDir,
}

impl Client {
    fn start() -> Client {
        let (server_side, client_side) = Connection::memory();
        let server = std::thread::spawn(move || super::serve(server_side));
        let mut client = Client {
            connection: client_side,
            server: Some(server),
            next_id: 0,
            pending: VecDeque::new(),
            dir: TempDir::new(),
        };
        let mut params = InitializeParams::default();
        params.capabilities.workspace = Some(lsp_types::WorkspaceClientCapabilities {
            code_lens: Some(lsp_types::CodeLensWorkspaceClientCapabilities {
                refresh_support: Some(true),
            }),
            ..Default::default()
        });
        let init: Value = client.request_raw(
            Initialize::METHOD,
            serde_json::to_value(params).unwrap_or_default(),
        );
        assert!(
            init["capabilities"]["hoverProvider"]
                .as_bool()
                .unwrap_or(false),
            "{init}"
        );
        client.notify::<Initialized>(lsp_types::InitializedParams {});
        client
    }

    fn recv(&self) -> Message {
        self.connection
            .receiver
            .recv_timeout(Duration::from_secs(20))
            .expect("the server answers within 20 s")
    }

    fn request_raw(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = RequestId::from(self.next_id);
        let request = Request {
            id: id.clone(),
            method: method.to_string(),
            params,
        };
        self.connection
            .sender
            .send(request.into())
            .expect("send a request");
        loop {
            match self.recv() {
                Message::Response(response) if response.id == id => {
                    match response.response_result {
                        Ok(value) => return value,
                        Err(e) => panic!("{method} failed: {} {}", e.code, e.message),
                    }
                }
                Message::Response(_) => {}
                Message::Notification(n) => self.pending.push_back(n),
                // The server's own requests (code lens refresh): answer them.
                Message::Request(r) => {
                    let _ = self
                        .connection
                        .sender
                        .send(lsp_server::Response::new_ok(r.id, ()).into());
                }
            }
        }
    }

    fn request<R: lsp_types::request::Request>(&mut self, params: R::Params) -> R::Result {
        let value = self.request_raw(R::METHOD, serde_json::to_value(params).unwrap_or_default());
        serde_json::from_value(value).expect("a well-formed result")
    }

    fn notify<N: lsp_types::notification::Notification>(&self, params: N::Params) {
        let n = Notification::new(N::METHOD.to_string(), params);
        self.connection
            .sender
            .send(n.into())
            .expect("send a notification");
    }

    /// The next notification of method `N`, skipping others.
    fn next_notification<N: lsp_types::notification::Notification>(&mut self) -> N::Params {
        loop {
            let n = match self.pending.pop_front() {
                Some(n) => n,
                None => match self.recv() {
                    Message::Notification(n) => n,
                    Message::Request(r) => {
                        let _ = self
                            .connection
                            .sender
                            .send(lsp_server::Response::new_ok(r.id, ()).into());
                        continue;
                    }
                    Message::Response(_) => continue,
                },
            };
            if n.method == N::METHOD {
                return serde_json::from_value(n.params).expect("well-formed params");
            }
        }
    }

    /// The next diagnostics published for `uri`.
    fn diagnostics(&mut self, uri: &Url) -> Vec<Diagnostic> {
        loop {
            let p: PublishDiagnosticsParams = self.next_notification::<PublishDiagnostics>();
            if &p.uri == uri {
                return p.diagnostics;
            }
        }
    }

    /// Writes `name` to the test's directory and opens it; its diagnostics.
    fn open(&mut self, name: &str, text: &str) -> (Url, Vec<Diagnostic>) {
        let path = self.dir.write(name, text);
        let uri = uri(&path);
        self.notify::<DidOpenTextDocument>(DidOpenTextDocumentParams {
            text_document: TextDocumentItem::new(
                uri.clone(),
                "flow".to_string(),
                1,
                text.to_string(),
            ),
        });
        let diagnostics = self.diagnostics(&uri);
        (uri, diagnostics)
    }

    fn change(
        &mut self,
        uri: &Url,
        version: i32,
        changes: Vec<TextDocumentContentChangeEvent>,
    ) -> Vec<Diagnostic> {
        self.notify::<DidChangeTextDocument>(DidChangeTextDocumentParams {
            text_document: VersionedTextDocumentIdentifier::new(uri.clone(), version),
            content_changes: changes,
        });
        self.diagnostics(uri)
    }

    fn at(uri: &Url, position: Position) -> TextDocumentPositionParams {
        TextDocumentPositionParams::new(TextDocumentIdentifier::new(uri.clone()), position)
    }

    fn hover(&mut self, uri: &Url, position: Position) -> Option<String> {
        let hover: Option<Hover> = self.request::<HoverRequest>(HoverParams {
            text_document_position_params: Self::at(uri, position),
            work_done_progress_params: Default::default(),
        });
        hover.map(|h| match h.contents {
            HoverContents::Markup(m) => m.value,
            other => panic!("markdown hover expected, got {other:?}"),
        })
    }

    fn complete(&mut self, uri: &Url, position: Position) -> Vec<CompletionItem> {
        let response: Option<CompletionResponse> = self.request::<Completion>(CompletionParams {
            text_document_position: Self::at(uri, position),
            work_done_progress_params: Default::default(),
            partial_result_params: Default::default(),
            context: None,
        });
        match response {
            Some(CompletionResponse::Array(items)) => items,
            Some(CompletionResponse::List(list)) => list.items,
            None => Vec::new(),
        }
    }

    fn definition(&mut self, uri: &Url, position: Position) -> Option<Location> {
        let response: Option<GotoDefinitionResponse> =
            self.request::<GotoDefinition>(GotoDefinitionParams {
                text_document_position_params: Self::at(uri, position),
                work_done_progress_params: Default::default(),
                partial_result_params: Default::default(),
            });
        match response {
            Some(GotoDefinitionResponse::Scalar(location)) => Some(location),
            Some(other) => panic!("one location expected, got {other:?}"),
            None => None,
        }
    }

    fn references(
        &mut self,
        uri: &Url,
        position: Position,
        include_declaration: bool,
    ) -> Vec<Location> {
        let mut found: Vec<Location> = self
            .request::<References>(ReferenceParams {
                text_document_position: Self::at(uri, position),
                work_done_progress_params: Default::default(),
                partial_result_params: Default::default(),
                context: ReferenceContext {
                    include_declaration,
                },
            })
            .unwrap_or_default();
        found.sort_by_key(|l| {
            (
                l.uri.to_string(),
                l.range.start.line,
                l.range.start.character,
            )
        });
        found
    }

    fn format(&mut self, uri: &Url) -> Option<Vec<TextEdit>> {
        self.request::<Formatting>(DocumentFormattingParams {
            text_document: TextDocumentIdentifier::new(uri.clone()),
            options: FormattingOptions {
                tab_size: 2,
                insert_spaces: true,
                ..Default::default()
            },
            work_done_progress_params: Default::default(),
        })
    }

    fn code_lenses(&mut self, uri: &Url) -> Vec<CodeLens> {
        self.request::<CodeLensRequest>(CodeLensParams {
            text_document: TextDocumentIdentifier::new(uri.clone()),
            work_done_progress_params: Default::default(),
            partial_result_params: Default::default(),
        })
        .unwrap_or_default()
    }

    /// Shuts the server down; asserts that it ended cleanly.
    fn shutdown(mut self) {
        let _: () = self.request::<Shutdown>(());
        self.notify::<Exit>(());
        let server = self.server.take().expect("the server thread");
        let outcome = server.join().expect("the server thread does not panic");
        assert!(outcome.is_ok(), "serve ended with {outcome:?}");
    }
}

/// The position of the `n`th (0-based) occurrence of `needle` in `text`,
/// plus `delta` characters (ASCII text).
fn pos(text: &str, needle: &str, n: usize, delta: u32) -> Position {
    let offset = text
        .match_indices(needle)
        .nth(n)
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("{needle:?} not in the text"));
    let line = text[..offset].matches('\n').count() as u32;
    let column = (offset - text[..offset].rfind('\n').map_or(0, |i| i + 1)) as u32;
    Position::new(line, column + delta)
}

fn code(d: &Diagnostic) -> String {
    match &d.code {
        Some(NumberOrString::String(s)) => s.clone(),
        other => panic!("a string code expected, got {other:?}"),
    }
}

/// A file with errors in four places: a syntax error, an unknown field (with
/// a hint), an unknown action and a type error.
const BROKEN: &str = "\
rule unknown_field {
  when envelope.frm.domain == \"example.com\"
  then tag \"a\"
}

rule syntax_error {
  when subject contains
  then tag \"b\"
}

rule unknown_action {
  when subject contains \"x\"
  then frobnicate \"y\"
}

rule type_error {
  when count(subject) > 1
  then tag \"c\"
}
";

#[test]
fn diagnostics_report_every_error_with_code_range_and_hint() {
    let mut client = Client::start();
    let (uri, diagnostics) = client.open("broken.flow", BROKEN);
    let codes: Vec<String> = diagnostics.iter().map(code).collect();
    assert!(diagnostics.len() >= 4, "{diagnostics:#?}");
    for d in &diagnostics {
        assert_eq!(d.severity, Some(DiagnosticSeverity::ERROR), "{d:#?}");
        assert_eq!(d.source.as_deref(), Some("weir"));
    }
    // Each error is on its own rule's line.
    let on_line = |line: u32| {
        diagnostics
            .iter()
            .filter(|d| d.range.start.line == line)
            .map(code)
            .collect::<Vec<_>>()
    };
    let unknown = diagnostics
        .iter()
        .find(|d| d.range.start.line == 1)
        .expect("a diagnostic on line 2");
    assert_eq!(code(unknown), "E0102", "{codes:?}");
    assert_eq!(unknown.range.start, pos(BROKEN, "envelope.frm", 0, 0));
    assert_eq!(unknown.range.end, pos(BROKEN, "envelope.frm", 0, 12));
    assert!(unknown.message.contains("\nhint: "), "{}", unknown.message);
    assert!(
        unknown.message.contains("envelope.from"),
        "{}",
        unknown.message
    );
    assert!(
        on_line(6)
            .iter()
            .chain(on_line(7).iter())
            .any(|c| c.starts_with("E00")),
        "{codes:?}"
    );
    assert_eq!(on_line(12), vec!["E0116".to_string()], "{codes:?}");
    assert_eq!(on_line(16), vec!["E0108".to_string()], "{codes:?}");

    // Fixing the file clears them.
    let fixed = "rule ok {\n  when subject contains \"x\"\n  then tag \"ok\"\n}\n";
    let after = client.change(
        &uri,
        2,
        vec![TextDocumentContentChangeEvent {
            range: None,
            range_length: None,
            text: fixed.to_string(),
        }],
    );
    assert_eq!(after, Vec::new());
    client.shutdown();
}

#[test]
fn diagnostics_follow_incremental_edits_and_imports() {
    let mut client = Client::start();
    client
        .dir
        .write("lib.flow", "let internal = [\"example.com\"]\n");
    let main = "import \"lib\"\n\nrule r {\n  when envelope.from.domain in internal\n  then tag \"x\"\n}\n";
    let (uri, diagnostics) = client.open("main.flow", main);
    assert_eq!(diagnostics, Vec::new());
    // Rename the use: `internal` → `internel`, an unknown name.
    let at = pos(main, "internal", 0, 6);
    let edit = TextDocumentContentChangeEvent {
        range: Some(Range::new(at, Position::new(at.line, at.character + 1))),
        range_length: None,
        text: "e".to_string(),
    };
    let diagnostics = client.change(&uri, 2, vec![edit]);
    assert_eq!(
        diagnostics.iter().map(code).collect::<Vec<_>>(),
        vec!["E0102".to_string()]
    );
    assert_eq!(diagnostics[0].range.start, pos(main, "internal", 0, 0));
    assert!(
        diagnostics[0].message.contains("internal"),
        "{}",
        diagnostics[0].message
    );
    client.notify::<DidCloseTextDocument>(DidCloseTextDocumentParams {
        text_document: TextDocumentIdentifier::new(uri.clone()),
    });
    assert_eq!(client.diagnostics(&uri), Vec::new());
    client.shutdown();
}

#[test]
fn diagnostics_carry_related_locations() {
    let mut client = Client::start();
    let text = "rule twice {\n  then tag \"a\"\n}\n\nrule twice {\n  then tag \"b\"\n}\n";
    let (uri, diagnostics) = client.open("dup.flow", text);
    let dup = diagnostics
        .iter()
        .find(|d| code(d) == "E0103")
        .unwrap_or_else(|| panic!("{diagnostics:#?}"));
    assert_eq!(dup.range.start, pos(text, "twice", 1, 0));
    let related = dup.related_information.clone().unwrap_or_default();
    assert_eq!(related.len(), 1, "{dup:#?}");
    assert_eq!(related[0].location.uri, uri);
    assert_eq!(related[0].location.range.start, pos(text, "twice", 0, 0));
    client.shutdown();
}

const SUPPORT: &str = "\
import \"stdlib/bulk\"

# Addresses of the people who get mail first.
# Kept short on purpose.
let vip = [\"ceo@example.com\"]

fn is_internal(a: address) = a.domain in [\"example.com\"]

template ack {
  subject = \"Re: ${subject}\"
  body = \"We got it.\"
}

rule vip_mail {
  when from.address in vip and not is_bulk()
  then {
    tag \"vip\"
    reply template ack
  }
}

rule after_vip {
  when matched(vip_mail) and not is_internal(envelope.from)
  then fileinto \"VIP\"
}

test \"vip\" {
  message \"\"\"From: ceo@example.com
To: support@example.com
Subject: hello

hi
\"\"\"
  expect matched vip_mail
  expect tag \"vip\"
}
";

#[test]
fn hover_documents_fields_members_builtins_actions_and_declarations() {
    let mut client = Client::start();
    let (uri, _) = client.open("support.flow", SUPPORT);
    // Any part of a field path shows the whole field.
    for delta in [0, 9] {
        let doc = client
            .hover(&uri, pos(SUPPORT, "envelope.from", 0, delta))
            .expect("a hover on envelope.from");
        assert!(doc.contains("envelope.from: address"), "{doc}");
        assert!(doc.contains("stage: `mail`"), "{doc}");
    }
    let member = client
        .hover(&uri, pos(SUPPORT, "a.domain", 0, 3))
        .expect("a hover on .domain");
    assert!(member.contains("domain: string"), "{member}");
    let field_member = client
        .hover(&uri, pos(SUPPORT, "from.address", 0, 6))
        .expect("a hover on .address");
    assert!(
        field_member.contains("address: list<string>"),
        "{field_member}"
    );
    let builtin = client
        .hover(&uri, pos(SUPPORT, "matched(", 0, 2))
        .expect("a hover on matched");
    assert!(builtin.contains("matched(rule) -> bool"), "{builtin}");
    let action = client
        .hover(&uri, pos(SUPPORT, "fileinto", 0, 1))
        .expect("a hover on fileinto");
    assert!(action.contains("fileinto"), "{action}");
    let reply = client
        .hover(&uri, pos(SUPPORT, "reply template", 0, 0))
        .expect("a hover on reply");
    assert!(reply.contains("reply template"), "{reply}");
    // A user declaration: its line and the comment above it.
    let vip = client
        .hover(&uri, pos(SUPPORT, "in vip", 0, 3))
        .expect("a hover on vip");
    assert!(vip.contains("let vip = [\"ceo@example.com\"]"), "{vip}");
    assert!(
        vip.contains("Addresses of the people who get mail first.\nKept short on purpose."),
        "{vip}"
    );
    // An imported declaration says where it comes from.
    let bulk = client
        .hover(&uri, pos(SUPPORT, "is_bulk", 0, 1))
        .expect("a hover on is_bulk");
    assert!(bulk.contains("fn is_bulk()"), "{bulk}");
    assert!(bulk.contains("stdlib/bulk"), "{bulk}");
    let param = client
        .hover(&uri, pos(SUPPORT, "a.domain", 0, 0))
        .expect("a hover on a parameter");
    assert!(param.contains("(parameter) a: address"), "{param}");
    // Nothing to say about a string.
    assert_eq!(client.hover(&uri, pos(SUPPORT, "We got it", 0, 2)), None);
    client.shutdown();
}

fn labels(items: &[CompletionItem]) -> Vec<&str> {
    items.iter().map(|i| i.label.as_str()).collect()
}

#[test]
fn completion_offers_members_fields_actions_and_names_in_scope() {
    let mut client = Client::start();
    let text = "\
import \"stdlib/bulk\"
let vip = [\"a@b\"]
template ack {
  subject = \"x\"
  body = \"y\"
}
fn f(a: address) = a.
rule r {
  when envelope.from.
  then {
    tag \"x\"
    
  }
}
rule s {
  when 
  then reply template 
}
";
    let (uri, _) = client.open("complete.flow", text);
    let members = client.complete(&uri, pos(text, "envelope.from.", 0, 14));
    let got = labels(&members);
    for want in ["domain", "local", "detail", "name", "address"] {
        assert!(got.contains(&want), "{want} missing from {got:?}");
    }
    assert!(!got.contains(&"subject"), "{got:?}");
    let path = client.complete(&uri, pos(text, "envelope.from.", 0, 9));
    let got = labels(&path);
    assert!(got.contains(&"from") && got.contains(&"to"), "{got:?}");
    let param = client.complete(&uri, pos(text, "a.\n", 0, 2));
    assert!(labels(&param).contains(&"domain"), "{:?}", labels(&param));

    let action_line = Position::new(pos(text, "tag \"x\"", 0, 0).line + 1, 4);
    let actions = client.complete(&uri, action_line);
    let got = labels(&actions);
    for want in ["tag", "reject", "fileinto", "add_header", "if"] {
        assert!(got.contains(&want), "{want} missing from {got:?}");
    }
    let expr = client.complete(&uri, pos(text, "when \n", 0, 5));
    let got = labels(&expr);
    for want in [
        "envelope.from",
        "subject",
        "header",
        "count",
        "vip",
        "is_bulk",
        "not",
    ] {
        assert!(got.contains(&want), "{want} missing from {got:?}");
    }
    assert!(
        !got.contains(&"fileinto"),
        "no actions in a condition: {got:?}"
    );
    assert!(!got.contains(&"ack"), "templates are not values: {got:?}");
    let templates = client.complete(&uri, pos(text, "template \n", 0, 9));
    assert_eq!(labels(&templates), vec!["ack"]);
    let top = client.complete(&uri, Position::new(pos(text, "rule s", 0, 0).line, 0));
    assert!(
        labels(&top).contains(&"rule") && labels(&top).contains(&"import"),
        "{:?}",
        labels(&top)
    );
    client.shutdown();
}

#[test]
fn time_zones_and_test_worlds_in_the_editor() {
    let mut client = Client::start();
    let text = "\
rule r {
  when local(now, \"Europe/Berln\").hour >= 18
  then tag \"x\"
}
test \"t\" {
  message \"\"\"
    Subject: x

    y
    \"\"\"
  now \"2024-12-20T18:00:00Z\"
  
}
";
    let (uri, diagnostics) = client.open("world.flow", text);
    let zone = diagnostics
        .iter()
        .find(|d| code(d) == "E0140")
        .unwrap_or_else(|| panic!("no E0140 in {diagnostics:?}"));
    assert!(zone.message.contains("Europe/Berlin"), "{}", zone.message);
    assert_eq!(zone.range.start, pos(text, "\"Europe/Berln\"", 0, 0));
    let line = Position::new(pos(text, "now \"2024", 0, 0).line + 1, 2);
    let words = client.complete(&uri, line);
    let got = labels(&words);
    for want in ["now", "recipient", "rate", "duplicate", "expect"] {
        assert!(got.contains(&want), "{want} missing from {got:?}");
    }
    let expr = client.complete(&uri, pos(text, "local(", 0, 0));
    let got = labels(&expr);
    for want in ["local", "time", "now"] {
        assert!(got.contains(&want), "{want} missing from {got:?}");
    }
    client.shutdown();
}

#[test]
fn definition_and_references_cover_declarations_imports_and_matched() {
    let mut client = Client::start();
    let lib = "# shared lists\nlet internal = [\"example.com\"]\n\nrule early priority 1 {\n  then tag \"early\"\n}\n";
    let lib_path = client.dir.write("lib.flow", lib);
    let (uri, _) = client.open("support.flow", SUPPORT);

    // A `let` in this file.
    let def = client
        .definition(&uri, pos(SUPPORT, "in vip", 0, 3))
        .expect("vip is declared");
    assert_eq!(def.uri, uri);
    assert_eq!(def.range.start, pos(SUPPORT, "vip =", 0, 0));
    // A rule in `matched(...)` and in a test's `expect matched`.
    let rule = pos(SUPPORT, "vip_mail", 0, 0);
    for at in [
        pos(SUPPORT, "matched(vip_mail)", 0, 9),
        pos(SUPPORT, "expect matched vip_mail", 0, 16),
    ] {
        let def = client.definition(&uri, at).expect("vip_mail is declared");
        assert_eq!(def.range.start, rule);
    }
    let refs = client.references(&uri, rule, true);
    let starts: Vec<Position> = refs.iter().map(|l| l.range.start).collect();
    assert_eq!(
        starts,
        vec![
            rule,
            pos(SUPPORT, "matched(vip_mail)", 0, 8),
            pos(SUPPORT, "expect matched vip_mail", 0, 15)
        ],
        "{refs:#?}"
    );
    let without = client.references(&uri, rule, false);
    assert_eq!(without.len(), 2);
    // A template and a function.
    let def = client
        .definition(&uri, pos(SUPPORT, "template ack\n", 0, 10))
        .expect("ack is declared");
    assert_eq!(def.range.start, pos(SUPPORT, "ack {", 0, 0));
    let def = client
        .definition(&uri, pos(SUPPORT, "is_internal(envelope", 0, 2))
        .expect("is_internal is declared");
    assert_eq!(def.range.start, pos(SUPPORT, "is_internal(a", 0, 0));
    // A parameter.
    let def = client
        .definition(&uri, pos(SUPPORT, "a.domain", 0, 0))
        .expect("a is a parameter");
    assert_eq!(def.range.start, pos(SUPPORT, "a: address", 0, 0));

    // Across files: a name declared in an imported file, used in an open one.
    let main = "import \"lib\"\n\nrule late {\n  when envelope.from.domain in internal and matched(early)\n  then tag \"x\"\n}\n";
    let (main_uri, _) = client.open("main.flow", main);
    let def = client
        .definition(&main_uri, pos(main, "in internal", 0, 4))
        .expect("internal is imported");
    assert_eq!(def.uri, uri_of(&lib_path));
    assert_eq!(def.range.start, pos(lib, "internal", 0, 0));
    let def = client
        .definition(&main_uri, pos(main, "early)", 0, 1))
        .expect("early is imported");
    assert_eq!(def.range.start, pos(lib, "early", 0, 0));
    let import = client
        .definition(&main_uri, pos(main, "\"lib\"", 0, 2))
        .expect("the import names a file");
    assert_eq!(import.uri, uri_of(&lib_path));
    // References of the imported `let`, asked from its own (closed) file.
    let refs = client.references(&uri_of(&lib_path), pos(lib, "internal", 0, 0), true);
    let found: Vec<(Url, Position)> = refs.into_iter().map(|l| (l.uri, l.range.start)).collect();
    assert_eq!(
        found,
        vec![
            (uri_of(&lib_path), pos(lib, "internal", 0, 0)),
            (main_uri.clone(), pos(main, "internal", 0, 0))
        ]
    );
    client.shutdown();
}

fn uri_of(path: &Path) -> Url {
    uri(path)
}

#[test]
fn document_symbols_list_every_declaration() {
    let mut client = Client::start();
    let (uri, _) = client.open("support.flow", SUPPORT);
    let response: Option<DocumentSymbolResponse> =
        client.request::<DocumentSymbolRequest>(DocumentSymbolParams {
            text_document: TextDocumentIdentifier::new(uri.clone()),
            work_done_progress_params: Default::default(),
            partial_result_params: Default::default(),
        });
    let Some(DocumentSymbolResponse::Nested(symbols)) = response else {
        panic!("nested symbols expected")
    };
    let got: Vec<(&str, SymbolKind)> = symbols.iter().map(|s| (s.name.as_str(), s.kind)).collect();
    assert_eq!(
        got,
        vec![
            ("vip", SymbolKind::CONSTANT),
            ("is_internal", SymbolKind::FUNCTION),
            ("ack", SymbolKind::OBJECT),
            ("vip_mail", SymbolKind::EVENT),
            ("after_vip", SymbolKind::EVENT),
            ("vip", SymbolKind::METHOD),
        ]
    );
    let rule = &symbols[3];
    assert_eq!(rule.range.start, pos(SUPPORT, "rule vip_mail", 0, 0));
    assert_eq!(
        rule.range.end.line,
        pos(SUPPORT, "rule after_vip", 0, 0).line - 2
    );
    assert_eq!(rule.selection_range.start, pos(SUPPORT, "vip_mail", 0, 0));
    client.shutdown();
}

#[test]
fn formatting_is_one_whole_document_edit_from_weir_fmt() {
    let mut client = Client::start();
    let messy = "rule   r {\n      when subject contains \"x\"\n then    tag \"y\"\n}\n";
    let (uri, _) = client.open("messy.flow", messy);
    let expected = weir_grammar::format::format(messy, "messy.flow").expect("the text parses");
    let edits = client.format(&uri).expect("an array of edits");
    if expected == messy {
        assert_eq!(edits, Vec::new());
    } else {
        assert_eq!(edits.len(), 1);
        assert_eq!(
            edits[0].range,
            Range::new(Position::new(0, 0), Position::new(4, 0))
        );
        assert_eq!(edits[0].new_text, expected);
    }
    // A canonical file needs no edit; a broken one gets none.
    let (canonical, _) = client.open("canonical.flow", &expected);
    assert_eq!(client.format(&canonical), Some(Vec::new()));
    let (broken, _) = client.open("broken.flow", BROKEN);
    assert_eq!(client.format(&broken), Some(Vec::new()));
    client.shutdown();
}

#[test]
fn code_lenses_run_tests_and_show_results() {
    let mut client = Client::start();
    let text = "\
rule billing {
  when subject contains \"invoice\"
  then tag \"billing\"
}

test \"invoices are tagged\" {
  message \"\"\"Subject: your invoice

hi
\"\"\"
  expect tag \"billing\"
}

test \"wrong expectation\" {
  message \"\"\"Subject: hello

hi
\"\"\"
  expect tag \"billing\"
}
";
    let (uri, diagnostics) = client.open("tests.flow", text);
    assert_eq!(diagnostics, Vec::new());
    let lenses = client.code_lenses(&uri);
    let titles: Vec<String> = lenses
        .iter()
        .filter_map(|l| l.command.as_ref().map(|c| c.title.clone()))
        .collect();
    assert_eq!(titles, vec!["▶ run all tests", "▶ run test", "▶ run test"]);
    assert_eq!(lenses[1].range.start, pos(text, "test \"invoices", 0, 0));
    assert_eq!(lenses[2].range.start, pos(text, "test \"wrong", 0, 0));

    // Run them all, as the top lens does.
    let command = lenses[0].command.clone().expect("a command");
    assert_eq!(command.command, "weir.runTests");
    let result: Option<Value> = client.request::<ExecuteCommand>(ExecuteCommandParams {
        command: command.command.clone(),
        arguments: command.arguments.clone().unwrap_or_default(),
        work_done_progress_params: Default::default(),
    });
    let result = result.expect("a result");
    assert_eq!(result["passed"], 1, "{result}");
    assert_eq!(result["failed"], 1, "{result}");
    assert_eq!(result["results"][0]["name"], "invoices are tagged");
    assert_eq!(result["results"][0]["passed"], true);
    assert_eq!(result["results"][1]["passed"], false);
    let shown: ShowMessageParams = client.next_notification::<ShowMessage>();
    assert!(
        shown.message.contains("1 passed, 1 failed"),
        "{}",
        shown.message
    );

    let titles: Vec<String> = client
        .code_lenses(&uri)
        .iter()
        .filter_map(|l| l.command.as_ref().map(|c| c.title.clone()))
        .collect();
    assert_eq!(titles[0], "▶ run all tests · ✘ 1 failed, 1 passed");
    assert_eq!(titles[1], "✔ passed");
    assert!(titles[2].starts_with("✘ failed: "), "{titles:?}");

    // One test alone, through its own lens's arguments.
    let single = client.code_lenses(&uri)[1]
        .command
        .clone()
        .expect("a command");
    let result: Option<Value> = client.request::<ExecuteCommand>(ExecuteCommandParams {
        command: single.command,
        arguments: single.arguments.unwrap_or_default(),
        work_done_progress_params: Default::default(),
    });
    let result = result.expect("a result");
    assert_eq!(
        (result["passed"].as_u64(), result["failed"].as_u64()),
        (Some(1), Some(0)),
        "{result}"
    );

    // An edit forgets the results.
    let edit = TextDocumentContentChangeEvent {
        range: None,
        range_length: None,
        text: text.to_string(),
    };
    client.change(&uri, 2, vec![edit]);
    let titles: Vec<String> = client
        .code_lenses(&uri)
        .iter()
        .filter_map(|l| l.command.as_ref().map(|c| c.title.clone()))
        .collect();
    assert_eq!(titles[1], "▶ run test");
    client.shutdown();
}

#[test]
fn exit_without_shutdown_is_an_error() {
    let (server_side, client_side) = Connection::memory();
    let server = std::thread::spawn(move || super::serve(server_side));
    let init = Request::new(
        RequestId::from(1),
        Initialize::METHOD.to_string(),
        InitializeParams::default(),
    );
    client_side.sender.send(init.into()).expect("send");
    let _ = client_side
        .receiver
        .recv_timeout(Duration::from_secs(20))
        .expect("an answer");
    client_side
        .sender
        .send(Notification::new(Exit::METHOD.to_string(), ()).into())
        .expect("send");
    let outcome = server.join().expect("no panic");
    assert!(outcome.is_err());
}

#[test]
fn unknown_requests_get_an_error_not_a_crash() {
    let mut client = Client::start();
    client.next_id += 1;
    let id = RequestId::from(client.next_id);
    let request = Request {
        id: id.clone(),
        method: "textDocument/unheardOf".to_string(),
        params: Value::Null,
    };
    client.connection.sender.send(request.into()).expect("send");
    loop {
        if let Message::Response(r) = client.recv()
            && r.id == id
        {
            assert!(r.response_result.is_err());
            break;
        }
    }
    // A position far outside the file is clamped, not a panic.
    let (uri, _) = client.open("x.flow", "rule r {\n  then tag \"x\"\n}\n");
    assert_eq!(client.hover(&uri, Position::new(999, 999)), None);
    client.shutdown();
}

#[test]
fn hover_and_completion_know_calls_lists_and_test_blocks() {
    let mut client = Client::start();
    let text = "\
rule exe {
  when attachments.name ends_with \".exe\" or header(\"X-Spam\").raw contains \"yes\"
  then quarantine \"executable\"
}

test \"exe\" {
  message \"\"\"Subject: x

y
\"\"\"
  expect verdict 
  expect 
}
";
    let (uri, _) = client.open("exe.flow", text);
    let name = client
        .hover(&uri, pos(text, "name ends_with", 0, 1))
        .expect("a hover on .name");
    assert!(
        name.contains("(list<attachment>).name: list<string>"),
        "{name}"
    );
    let raw = client
        .hover(&uri, pos(text, "raw", 0, 1))
        .expect("a hover on .raw");
    assert!(raw.contains("header(\"Name\").raw: list<string>"), "{raw}");
    let header = client
        .hover(&uri, pos(text, "header(", 0, 1))
        .expect("a hover on header");
    assert!(
        header.contains("header(string) -> list<string>") && header.contains("stage"),
        "{header}"
    );
    let verdict = client
        .hover(&uri, pos(text, "quarantine", 0, 1))
        .expect("a hover on quarantine");
    assert!(verdict.contains("verdict"), "{verdict}");

    let verdicts = client.complete(&uri, pos(text, "expect verdict ", 0, 15));
    let got = labels(&verdicts);
    assert!(
        got.contains(&"reject") && got.contains(&"quarantine") && !got.contains(&"tag"),
        "{got:?}"
    );
    let expects = client.complete(&uri, pos(text, "expect \n", 0, 7));
    let got = labels(&expects);
    assert!(
        got.contains(&"verdict") && got.contains(&"tag") && got.contains(&"matched"),
        "{got:?}"
    );
    let raw_member = client.complete(&uri, pos(text, "raw", 0, 0));
    assert_eq!(labels(&raw_member), vec!["raw"]);
    client.shutdown();
}

#[test]
fn maps_have_hover_definition_completion_and_a_symbol() {
    let mut client = Client::start();
    let text = "\
# Folders by recipient domain.
map folders = {\"example.com\": \"Work\"}

rule by_domain {
  when to[0].domain in folders
  then fileinto folders[to[0].domain]
}
";
    let (uri, _) = client.open("maps.flow", text);
    let hover = client
        .hover(&uri, pos(text, "folders[", 0, 1))
        .expect("a hover on the map");
    assert!(
        hover.contains("map folders") && hover.contains("Folders by recipient domain"),
        "{hover}"
    );
    let target = client
        .definition(&uri, pos(text, "folders\n", 0, 1))
        .expect("the map's declaration");
    assert_eq!(target.range.start, pos(text, "folders =", 0, 0));
    let names = client.complete(&uri, pos(text, "folders[", 0, 0));
    let got = labels(&names);
    assert!(
        got.contains(&"folders")
            && got.contains(&"some")
            && got.contains(&"every")
            && got.contains(&"under"),
        "{got:?}"
    );
    let response: Option<DocumentSymbolResponse> =
        client.request::<DocumentSymbolRequest>(DocumentSymbolParams {
            text_document: TextDocumentIdentifier::new(uri.clone()),
            work_done_progress_params: Default::default(),
            partial_result_params: Default::default(),
        });
    let Some(DocumentSymbolResponse::Nested(symbols)) = response else {
        panic!("nested symbols expected")
    };
    assert_eq!(symbols[0].name, "folders");
    assert_eq!(symbols[0].detail.as_deref(), Some("map"));
    client.shutdown();
}

#[test]
fn a_lambda_element_is_a_parameter_of_the_list_item_type() {
    let mut client = Client::start();
    let text = "\
rule disguised {
  when some(attachments, a => a.name ends_with \".pdf\")
  then tag \"x\"
}
";
    let (uri, _) = client.open("lambda.flow", text);
    let hover = client
        .hover(&uri, pos(text, "a.name", 0, 0))
        .expect("a hover on the element");
    assert!(hover.contains("(parameter) a: attachment"), "{hover}");
    let member = client
        .hover(&uri, pos(text, "name ends_with", 0, 1))
        .expect("a hover on its member");
    assert!(member.contains("string"), "{member}");
    client.shutdown();
}
