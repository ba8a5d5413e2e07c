//! `weir lsp`: the language server for `.flow` files, over stdio.
//!
//! A small synchronous loop over an `lsp_server::Connection` (stdio in
//! [`run`], an in-memory pair in tests): open buffers are kept in memory
//! (incremental sync) and every change recompiles them with the real
//! compiler, so the editor shows exactly what `weir check` reports.
//! Requests are answered from the syntax tree of the buffer and of the
//! files it imports, and from the builtin registry.
//!
//! Module map: `workspace` (buffers, files, name resolution), `text`
//! (UTF-16 positions), `occurrences` (what each word means), `diagnostics`,
//! `hover`, `completion`, `navigation` (definition, references, symbols),
//! `tests_lens` (running `test` blocks from code lenses).

mod completion;
mod diagnostics;
mod hover;
mod navigation;
mod occurrences;
mod tests_lens;
mod text;
mod workspace;

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use anyhow::anyhow;
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidChangeWatchedFiles, DidCloseTextDocument, DidOpenTextDocument,
    DidSaveTextDocument, Notification as _, PublishDiagnostics, ShowMessage,
};
use lsp_types::request::{
    CodeLensRefresh, CodeLensRequest, Completion, DocumentSymbolRequest, ExecuteCommand,
    Formatting, GotoDefinition, HoverRequest, References, Request as _,
};
use lsp_types::{
    CodeLensOptions, CompletionOptions, CompletionResponse, DocumentSymbolResponse,
    ExecuteCommandOptions, GotoDefinitionResponse, InitializeParams, MessageType, OneOf, Position,
    PublishDiagnosticsParams, Range, SaveOptions, ServerCapabilities, ShowMessageParams,
    TextDocumentSyncCapability, TextDocumentSyncKind, TextDocumentSyncOptions,
    TextDocumentSyncSaveOptions, TextEdit, Url,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use tests_lens::{RUN_TESTS, TestResult};
use text::LineIndex;
use workspace::{Documents, FileKey, ParsedFile, World};

/// Serves LSP on stdin/stdout until the client exits; returns the exit status
/// (0 after `shutdown` then `exit`, 1 otherwise).
pub fn run() -> u8 {
    let (connection, io_threads) = Connection::stdio();
    match serve(connection) {
        Ok(()) => match io_threads.join() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("weir lsp: {e}");
                1
            }
        },
        Err(e) => {
            eprintln!("weir lsp: {e}");
            1
        }
    }
}

/// What the server can do.
fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                save: Some(TextDocumentSyncSaveOptions::SaveOptions(SaveOptions {
                    include_text: Some(false),
                })),
                ..TextDocumentSyncOptions::default()
            },
        )),
        hover_provider: Some(lsp_types::HoverProviderCapability::Simple(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![".".to_string()]),
            ..CompletionOptions::default()
        }),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        document_symbol_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        code_lens_provider: Some(CodeLensOptions {
            resolve_provider: Some(false),
        }),
        execute_command_provider: Some(ExecuteCommandOptions {
            commands: vec![RUN_TESTS.to_string()],
            ..ExecuteCommandOptions::default()
        }),
        ..ServerCapabilities::default()
    }
}

/// Runs the protocol on `connection`: the initialize handshake, then
/// requests and notifications until `shutdown` and `exit`. An `exit`
/// without `shutdown`, or a connection closed early, is an error.
pub(crate) fn serve(connection: Connection) -> anyhow::Result<()> {
    let (id, params) = connection.initialize_start()?;
    let init: InitializeParams = serde_json::from_value(params).unwrap_or_default();
    let reply = serde_json::json!({
        "capabilities": capabilities(),
        "serverInfo": { "name": "weir", "version": env!("CARGO_PKG_VERSION") },
    });
    connection.initialize_finish(id, reply)?;
    let lens_refresh = init
        .capabilities
        .workspace
        .and_then(|w| w.code_lens)
        .and_then(|c| c.refresh_support)
        .unwrap_or(false);
    let mut server = Server {
        connection: &connection,
        docs: Documents::default(),
        published: BTreeSet::new(),
        test_results: HashMap::new(),
        lens_refresh,
        next_id: 0,
    };
    for message in &connection.receiver {
        match message {
            Message::Request(request) => {
                if connection.handle_shutdown(&request)? {
                    return Ok(());
                }
                server.request(request);
            }
            Message::Notification(notification) => {
                if notification.method == lsp_types::notification::Exit::METHOD {
                    return Err(anyhow!("exit before shutdown"));
                }
                server.notification(notification);
            }
            Message::Response(_) => {} // answers to our refresh requests: nothing to do
        }
    }
    Err(anyhow!("the client closed the connection without exit"))
}

/// An error answer: code and message.
type Failure = (ErrorCode, String);

fn parse<P: DeserializeOwned>(params: Value) -> Result<P, Failure> {
    serde_json::from_value(params).map_err(|e| (ErrorCode::InvalidParams, e.to_string()))
}

fn to_json<T: serde::Serialize>(value: T) -> Result<Value, Failure> {
    serde_json::to_value(value).map_err(|e| (ErrorCode::InternalError, e.to_string()))
}

/// The state of one session.
struct Server<'a> {
    connection: &'a Connection,
    docs: Documents,
    /// URIs that have diagnostics published (to clear them when fixed).
    published: BTreeSet<Url>,
    /// The last test results per file, for the code lenses' titles.
    test_results: HashMap<Url, Vec<TestResult>>,
    /// Whether the client accepts `workspace/codeLens/refresh`.
    lens_refresh: bool,
    next_id: u64,
}

impl Server<'_> {
    fn send(&self, message: Message) {
        // A closed connection ends the loop on the next receive.
        let _ = self.connection.sender.send(message);
    }

    fn notify<N: lsp_types::notification::Notification>(&self, params: N::Params) {
        self.send(Notification::new(N::METHOD.to_string(), params).into());
    }

    fn request(&mut self, request: Request) {
        let id = request.id.clone();
        let method = request.method.clone();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            self.dispatch(&request.method, request.params)
        }))
        .unwrap_or_else(|_| {
            Err((
                ErrorCode::InternalError,
                format!("weir lsp failed on {method}"),
            ))
        });
        let response = match outcome {
            Ok(result) => Response {
                id,
                response_result: Ok(result),
            },
            Err((code, message)) => Response::new_err(id, code as i32, message),
        };
        self.send(response.into());
    }

    fn dispatch(&mut self, method: &str, params: Value) -> Result<Value, Failure> {
        match method {
            HoverRequest::METHOD => {
                let p: lsp_types::HoverParams = parse(params)?;
                let at = p.text_document_position_params;
                to_json(
                    self.with_file(&at.text_document.uri, at.position, hover::hover)
                        .flatten(),
                )
            }
            Completion::METHOD => {
                let p: lsp_types::CompletionParams = parse(params)?;
                let at = p.text_document_position;
                let items = self
                    .with_file(&at.text_document.uri, at.position, completion::complete)
                    .unwrap_or_default();
                to_json(CompletionResponse::Array(items))
            }
            GotoDefinition::METHOD => {
                let p: lsp_types::GotoDefinitionParams = parse(params)?;
                let at = p.text_document_position_params;
                let found = self
                    .with_file(&at.text_document.uri, at.position, navigation::definition)
                    .flatten();
                to_json(found.map(GotoDefinitionResponse::Scalar))
            }
            References::METHOD => {
                let p: lsp_types::ReferenceParams = parse(params)?;
                let at = p.text_document_position;
                let include = p.context.include_declaration;
                let found = self.with_file(&at.text_document.uri, at.position, |w, f, o| {
                    navigation::references(w, f, o, include)
                });
                to_json(found.unwrap_or_default())
            }
            DocumentSymbolRequest::METHOD => {
                let p: lsp_types::DocumentSymbolParams = parse(params)?;
                let symbols =
                    self.with_file(&p.text_document.uri, Position::default(), |_, f, _| {
                        navigation::symbols(f)
                    });
                to_json(symbols.map(DocumentSymbolResponse::Nested))
            }
            Formatting::METHOD => {
                let p: lsp_types::DocumentFormattingParams = parse(params)?;
                to_json(self.format(&p.text_document.uri))
            }
            CodeLensRequest::METHOD => {
                let p: lsp_types::CodeLensParams = parse(params)?;
                let uri = p.text_document.uri;
                let results = self.test_results.get(&uri).cloned().unwrap_or_default();
                let lenses = self.with_file(&uri, Position::default(), |_, f, _| {
                    tests_lens::code_lenses(f, &uri, &results)
                });
                to_json(lenses.unwrap_or_default())
            }
            ExecuteCommand::METHOD => {
                let p: lsp_types::ExecuteCommandParams = parse(params)?;
                self.execute(p)
            }
            _ => Err((
                ErrorCode::MethodNotFound,
                format!("weir lsp does not handle {method}"),
            )),
        }
    }

    /// Runs `f` on the parsed file of `uri` (its buffer, or the disk) and
    /// the byte offset of `position` in it.
    fn with_file<T>(
        &self,
        uri: &Url,
        position: Position,
        f: impl FnOnce(&World<'_>, &Rc<ParsedFile>, usize) -> T,
    ) -> Option<T> {
        let world = World::new(&self.docs);
        let file = world.file(&FileKey::Path(Documents::path_of(uri)))?;
        let offset = LineIndex::new(&file.text).offset(position);
        Some(f(&world, &file, offset))
    }

    /// One whole-document edit to the canonical form of `weir fmt`; no
    /// edit when the text is already canonical or does not parse (the
    /// syntax errors are in the diagnostics already).
    fn format(&self, uri: &Url) -> Vec<TextEdit> {
        let path = Documents::path_of(uri);
        let Some(text) = self.docs.text_of(&FileKey::Path(path.clone())) else {
            return Vec::new();
        };
        let name = path.display().to_string();
        let Ok(Ok(formatted)) = catch_unwind(|| weir_grammar::format::format(&text, &name)) else {
            return Vec::new();
        };
        if formatted == text {
            return Vec::new();
        }
        let end = LineIndex::new(&text).position(text.len());
        vec![TextEdit {
            range: Range::new(Position::new(0, 0), end),
            new_text: formatted,
        }]
    }

    fn execute(&mut self, params: lsp_types::ExecuteCommandParams) -> Result<Value, Failure> {
        if params.command != RUN_TESTS {
            return Err((
                ErrorCode::InvalidParams,
                format!("unknown command {}", params.command),
            ));
        }
        let uri = params
            .arguments
            .first()
            .and_then(Value::as_str)
            .and_then(|s| Url::parse(s).ok())
            .ok_or((
                ErrorCode::InvalidParams,
                format!("{RUN_TESTS} takes the file's URI"),
            ))?;
        let only = params.arguments.get(1).and_then(Value::as_str);
        let path = Documents::path_of(&uri);
        let run = tests_lens::run_tests(&self.docs, &path, only);
        tests_lens::merge(self.test_results.entry(uri.clone()).or_default(), &run);
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let typ = if run.error.is_none() && run.failed == 0 {
            MessageType::INFO
        } else {
            MessageType::ERROR
        };
        self.notify::<ShowMessage>(ShowMessageParams {
            typ,
            message: run.summary(&name),
        });
        if self.lens_refresh {
            self.next_id += 1;
            let id = RequestId::from(format!("weir-lens-refresh-{}", self.next_id));
            self.send(Request::new(id, CodeLensRefresh::METHOD.to_string(), ()).into());
        }
        to_json(run)
    }

    fn notification(&mut self, notification: Notification) {
        match notification.method.as_str() {
            DidOpenTextDocument::METHOD => {
                let Ok(p) = parse::<lsp_types::DidOpenTextDocumentParams>(notification.params)
                else {
                    return;
                };
                let doc = p.text_document;
                self.test_results.remove(&doc.uri);
                self.docs.open(doc.uri, doc.version, doc.text);
            }
            DidChangeTextDocument::METHOD => {
                let Ok(p) = parse::<lsp_types::DidChangeTextDocumentParams>(notification.params)
                else {
                    return;
                };
                self.test_results.remove(&p.text_document.uri);
                let Some(doc) = self.docs.get_mut(&p.text_document.uri) else {
                    return;
                };
                doc.version = p.text_document.version;
                for change in p.content_changes {
                    text::apply_change(&mut doc.text, change);
                }
            }
            DidCloseTextDocument::METHOD => {
                let Ok(p) = parse::<lsp_types::DidCloseTextDocumentParams>(notification.params)
                else {
                    return;
                };
                self.test_results.remove(&p.text_document.uri);
                self.docs.close(&p.text_document.uri);
            }
            // Saved files and changed list files on disk may change what compiles.
            DidSaveTextDocument::METHOD | DidChangeWatchedFiles::METHOD => {}
            _ => return,
        }
        self.publish_diagnostics();
    }

    /// Recompiles the open buffers and publishes every file's diagnostics,
    /// clearing those of files that have none any more.
    fn publish_diagnostics(&mut self) {
        let publication = diagnostics::compute(&self.docs);
        let stale: Vec<Url> = self
            .published
            .iter()
            .filter(|u| !publication.contains_key(*u))
            .cloned()
            .collect();
        for uri in stale {
            self.notify::<PublishDiagnostics>(PublishDiagnosticsParams {
                uri,
                diagnostics: Vec::new(),
                version: None,
            });
        }
        self.published.clear();
        for (uri, (version, diagnostics)) in publication {
            if !diagnostics.is_empty() {
                self.published.insert(uri.clone());
            }
            self.notify::<PublishDiagnostics>(PublishDiagnosticsParams {
                uri,
                diagnostics,
                version,
            });
        }
    }
}
