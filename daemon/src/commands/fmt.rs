//! `weir fmt [--check] PATH...`: canonical formatting.

use std::io::{Read, Write};
use std::path::PathBuf;

use super::DiagnosticPrinter;
use crate::inputs::{self, Input};

/// Rewrites files in place (or stdin to stdout). With `--check`, changes
/// nothing and lists the files that would change. Exit 0 when nothing
/// would change (or everything was formatted), 1 when `--check` finds a
/// file to change, 2 when a file cannot be read or does not parse.
pub fn run(paths: &[PathBuf], check: bool) -> u8 {
    let mut printer = DiagnosticPrinter::new();
    let mut status = 0;
    for input in inputs::expand(paths, inputs::flow_file) {
        let name = input.display();
        let source = match read_text(&input) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot read {name}: {e}");
                status = 2;
                continue;
            }
        };
        let formatted = match weir_grammar::format::format(&source, &name) {
            Ok(f) => f,
            Err(diagnostics) => {
                for d in &diagnostics {
                    printer.print_one(d, &weir_grammar::diagnostic::render(d, &source));
                }
                status = 2;
                continue;
            }
        };
        let changed = formatted != source;
        match (&input, check) {
            (_, true) => {
                if changed {
                    println!("{name}");
                    status = status.max(1);
                }
            }
            (Input::Stdin, false) => {
                let _ = std::io::stdout().write_all(formatted.as_bytes());
            }
            (Input::File(path), false) => {
                if changed && let Err(e) = std::fs::write(path, formatted) {
                    eprintln!("error: cannot write {name}: {e}");
                    status = 2;
                }
            }
        }
    }
    status
}

fn read_text(input: &Input) -> std::io::Result<String> {
    match input {
        Input::File(p) => std::fs::read_to_string(p),
        Input::Stdin => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            Ok(s)
        }
    }
}
