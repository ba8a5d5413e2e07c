//! The stable codes of syntax errors, `E0001`..`E0099`.
//!
//! Every diagnostic the parser reports carries one of these codes; the
//! compiler's codes start at `E0100`. A code never changes meaning once
//! released (tools and users match on them).
//!
//! | code | meaning |
//! | --- | --- |
//! | `E0001` | unexpected text: something else was expected here |
//! | `E0002` | a string literal is not terminated on its line (or is malformed) |
//! | `E0003` | an unknown escape in a string (`\q`); the valid ones are `\n \r \t \" \\ \$ \u{XXXX}` |
//! | `E0004` | a regex literal is not terminated on its line |
//! | `E0005` | an unknown regex flag (only `i m s x`) |
//! | `E0006` | a number with an unknown suffix (`10k`, `5ms`) |
//! | `E0007` | a number too large, or a size or duration that is not a whole number of bytes or seconds |
//! | `E0008` | an invalid IP address or CIDR prefix length |
//! | `E0009` | chained comparisons (`a == b == c`): comparisons do not associate |
//! | `E0010` | `all` not followed by a comparison |
//! | `E0011` | `as NAME` not after a `matches` test |
//! | `E0012` | `any` after an operator other than `contains`, `starts_with`, `ends_with` or `==` |
//! | `E0013` | an expression nested too deeply |
//! | `E0014` | a top-level line that does not start a declaration |
//! | `E0015` | a rule without `then` after its condition |
//! | `E0016` | a reserved word used as a name |
//! | `E0017` | an invalid `\u{...}` escape (not 1 to 6 hex digits naming a Unicode scalar value) |
//! | `E0018` | an interpolation `${...}` where only plain text is allowed (paths, test names) |
//! | `E0019` | the file ends in the middle of a declaration (an unclosed `{`, `(`, `[` or string) |
//! | `E0020` | a line of a `test` block that is not `message`, `envelope`, `client` or `expect` |
//! | `E0021` | a `"""` string that is never closed |
//! | `E0022` | `expect score` with an operator other than `== != < <= > >=` |

/// Unexpected text: something else was expected here.
pub const UNEXPECTED: &str = "E0001";
/// A string literal not terminated on its line.
pub const UNTERMINATED_STRING: &str = "E0002";
/// An unknown escape in a string.
pub const INVALID_ESCAPE: &str = "E0003";
/// A regex literal not terminated on its line.
pub const UNTERMINATED_REGEX: &str = "E0004";
/// An unknown regex flag.
pub const INVALID_REGEX_FLAG: &str = "E0005";
/// A number with an unknown suffix.
pub const INVALID_NUMBER_SUFFIX: &str = "E0006";
/// A number out of range, or a fractional byte or second count.
pub const NUMBER_OUT_OF_RANGE: &str = "E0007";
/// An invalid IP address or CIDR prefix.
pub const INVALID_IP: &str = "E0008";
/// Chained comparisons.
pub const CHAINED_COMPARISON: &str = "E0009";
/// `all` not before a comparison.
pub const MISPLACED_ALL: &str = "E0010";
/// `as NAME` not after `matches`.
pub const MISPLACED_AS: &str = "E0011";
/// `any` after the wrong operator.
pub const MISPLACED_ANY: &str = "E0012";
/// Nesting too deep.
pub const TOO_DEEP: &str = "E0013";
/// A top-level line that does not start a declaration.
pub const EXPECTED_DECLARATION: &str = "E0014";
/// A rule without `then`.
pub const EXPECTED_THEN: &str = "E0015";
/// A reserved word used as a name.
pub const RESERVED_WORD: &str = "E0016";
/// An invalid `\u{...}` escape.
pub const INVALID_UNICODE_ESCAPE: &str = "E0017";
/// An interpolation where only plain text is allowed.
pub const INTERPOLATION_NOT_ALLOWED: &str = "E0018";
/// The file ends in the middle of a declaration.
pub const UNEXPECTED_EOF: &str = "E0019";
/// An unknown line in a `test` block.
pub const INVALID_TEST_STATEMENT: &str = "E0020";
/// A `"""` string never closed.
pub const UNTERMINATED_TRIPLE_STRING: &str = "E0021";
/// `expect score` with a non-ordering operator.
pub const INVALID_SCORE_OPERATOR: &str = "E0022";
/// A file that starts with Sieve's `require`: a Sieve script, not Flow.
pub const SIEVE_SCRIPT: &str = "E0023";

/// Every code with its one-line meaning, in order (for `docs/diagnostics.md`
/// and for tests that check the table is complete).
pub const ALL: &[(&str, &str)] = &[
    (
        UNEXPECTED,
        "unexpected text: something else was expected here",
    ),
    (
        UNTERMINATED_STRING,
        "a string literal is not terminated on its line (or is malformed)",
    ),
    (INVALID_ESCAPE, "an unknown escape in a string"),
    (
        UNTERMINATED_REGEX,
        "a regex literal is not terminated on its line",
    ),
    (INVALID_REGEX_FLAG, "an unknown regex flag (only i m s x)"),
    (INVALID_NUMBER_SUFFIX, "a number with an unknown suffix"),
    (
        NUMBER_OUT_OF_RANGE,
        "a number out of range, or a fractional byte or second count",
    ),
    (INVALID_IP, "an invalid IP address or CIDR prefix length"),
    (
        CHAINED_COMPARISON,
        "chained comparisons: comparisons do not associate",
    ),
    (MISPLACED_ALL, "`all` not followed by a comparison"),
    (MISPLACED_AS, "`as NAME` not after a `matches` test"),
    (
        MISPLACED_ANY,
        "`any` after an operator other than contains, starts_with, ends_with or ==",
    ),
    (TOO_DEEP, "an expression nested too deeply"),
    (
        EXPECTED_DECLARATION,
        "a top-level line that does not start a declaration",
    ),
    (EXPECTED_THEN, "a rule without `then` after its condition"),
    (RESERVED_WORD, "a reserved word used as a name"),
    (INVALID_UNICODE_ESCAPE, "an invalid \\u{...} escape"),
    (
        INTERPOLATION_NOT_ALLOWED,
        "an interpolation where only plain text is allowed",
    ),
    (
        UNEXPECTED_EOF,
        "the file ends in the middle of a declaration",
    ),
    (
        INVALID_TEST_STATEMENT,
        "a test line that is not message, envelope, client or expect",
    ),
    (
        UNTERMINATED_TRIPLE_STRING,
        "a \"\"\" string that is never closed",
    ),
    (
        INVALID_SCORE_OPERATOR,
        "`expect score` with an operator other than == != < <= > >=",
    ),
    (
        SIEVE_SCRIPT,
        "a file that starts with Sieve's `require`: a Sieve script, not Flow",
    ),
];
