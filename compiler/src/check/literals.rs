//! Literal action arguments the daemon could not carry out: checked here
//! so that `weir check` and `weir test` refuse what the milter or LMTP
//! would silently drop or be unable to store (docs/language.md, "Test and
//! production agree").

use weir_grammar::ast::{self, ExprKind};
use weir_stdlib::folder::maildir_name;

use super::{Annotate, Checker, Ctx};
use crate::codes;

/// The text of a string literal without interpolation.
fn plain(e: &ast::Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Str(s) => s.as_plain(),
        _ => None,
    }
}

impl Checker<'_> {
    /// `add_header`/`set_header`/`remove_header` with a literal name the
    /// MTA does not accept (`"Bad Header:"`, `""`).
    pub(super) fn literal_header_name(&mut self, cx: Ctx, word: &str, arg: &ast::Expr) {
        let Some(name) = plain(arg) else { return };
        if weir_stdlib::valid_header_name(&name) {
            return;
        }
        let suggestion: String = name
            .trim()
            .trim_end_matches(':')
            .chars()
            .map(|c| if c == ' ' { '-' } else { c })
            .filter(|c| c.is_ascii_graphic() && *c != ':')
            .collect();
        let hint = if suggestion.is_empty() {
            "a header name is printable ASCII without spaces or `:`, such as \"X-Spam\"".to_string()
        } else {
            format!(
                "a header name is printable ASCII without spaces or `:`: did you mean \"{suggestion}\"?"
            )
        };
        self.error(
            codes::ACTION_ARGUMENTS,
            cx.unit,
            arg.span,
            format!("`{word}` cannot use the header name {name:?}"),
        )
        .set_label("the milter and LMTP would drop this edit")
        .set_hint(hint);
    }

    /// `fileinto` with a literal folder that cannot be stored in Maildir++
    /// whatever `[lmtp] utf8_folders` says.
    pub(super) fn literal_folder(&mut self, cx: Ctx, arg: &ast::Expr) {
        let Some(folder) = plain(arg) else { return };
        let Some(e) = [false, true]
            .into_iter()
            .find_map(|utf8| maildir_name(&folder, utf8).err())
        else {
            return;
        };
        self.error(
            codes::ACTION_ARGUMENTS,
            cx.unit,
            arg.span,
            format!("the folder {folder:?} cannot be stored: {e}"),
        )
        .set_label("not a folder name Maildir++ can hold")
        .set_hint(
            "levels are separated by `/` (or by `.` after `INBOX.`), none empty, no control characters, the whole at most 255 bytes on disk",
        );
    }
}
