//! The words of Flow that the grammar gives a fixed meaning: shared by the
//! parser's error messages, the language server's completion and the
//! editor grammars' drift tests, so there is one list to change.

/// The reserved words of docs/language.md ("Lexical structure").
pub const RESERVED: &[&str] = &[
    "import",
    "let",
    "list",
    "map",
    "file",
    "fn",
    "template",
    "rule",
    "priority",
    "shadow",
    "when",
    "then",
    "else",
    "if",
    "test",
    "and",
    "or",
    "not",
    "in",
    "under",
    "contains",
    "starts_with",
    "ends_with",
    "matches",
    "as",
    "exists",
    "all",
    "any",
    "with",
    "true",
    "false",
    "classifier",
];

/// The words that start a top-level declaration (the parser resynchronises
/// at them after a syntax error).
pub const DECLARATION_KEYWORDS: &[&str] = &[
    "import",
    "let",
    "list",
    "map",
    "classifier",
    "fn",
    "template",
    "rule",
    "test",
];
