//! The stable diagnostic codes of the compiler (docs/language.md ("Diagnostics")).
//!
//! The parser owns `E0001`–`E0099`; the compiler's errors start at `E0100`
//! and its warnings at `W0201`. A code never changes meaning once released:
//! add new codes at the end. `docs/diagnostics.md` describes each one with
//! an example, and `tests/diagnostics/` has a golden file per code.

/// A file (entry, import) cannot be read.
pub const CANNOT_READ: &str = "E0100";
/// Imports form a cycle.
pub const IMPORT_CYCLE: &str = "E0101";
/// A name or field is not known.
pub const UNKNOWN_NAME: &str = "E0102";
/// A name is declared twice in one file.
pub const DUPLICATE_NAME: &str = "E0103";
/// A name is declared by two imports of the file that uses it.
pub const AMBIGUOUS_NAME: &str = "E0104";
/// Two rules of the ruleset have the same name.
pub const DUPLICATE_RULE: &str = "E0105";
/// A called function is not known.
pub const UNKNOWN_FUNCTION: &str = "E0106";
/// A function is called with the wrong number of arguments.
pub const ARGUMENT_COUNT: &str = "E0107";
/// An expression has the wrong type.
pub const TYPE_MISMATCH: &str = "E0108";
/// A member (`.domain`) does not exist on the value's type.
pub const UNKNOWN_MEMBER: &str = "E0109";
/// A regex literal does not compile.
pub const INVALID_REGEX: &str = "E0110";
/// `matches … as NAME` under `not` or `or`.
pub const CAPTURE_UNDER_NOT_OR: &str = "E0111";
/// `m[i]` past the regex's groups.
pub const CAPTURE_INDEX: &str = "E0112";
/// `matches … as NAME` somewhere other than a rule's `when`.
pub const CAPTURE_PLACE: &str = "E0113";
/// `matched(r)` where r is not a rule that runs earlier.
pub const MATCHED_ORDER: &str = "E0114";
/// A `fn` calls itself, directly or through others.
pub const RECURSION: &str = "E0115";
/// An action word is not known.
pub const UNKNOWN_ACTION: &str = "E0116";
/// An action has the wrong arguments.
pub const ACTION_ARGUMENTS: &str = "E0117";
/// A `reject`/`tempfail` code is outside its class.
pub const REPLY_CODE: &str = "E0118";
/// An enhanced status code is malformed or of the wrong class.
pub const REPLY_STATUS: &str = "E0119";
/// An action follows a verdict (or `stop`) in the same block.
pub const AFTER_VERDICT: &str = "E0120";
/// `else` on a rule without `when`.
pub const ELSE_WITHOUT_WHEN: &str = "E0121";
/// `template NAME` does not name a template, or a template is missing.
pub const NOT_A_TEMPLATE: &str = "E0122";
/// A template field other than `subject`, `body`, `from` and `addresses`.
pub const TEMPLATE_FIELD: &str = "E0123";
/// A `list` or `map` file cannot be read, or has a bad line.
pub const LIST_FILE: &str = "E0124";
/// A `let` is not a compile-time constant (reads a field, or refers to itself).
pub const NOT_CONSTANT: &str = "E0125";
/// A `test` block is malformed (no `message`, a bad expectation).
pub const BAD_TEST: &str = "E0126";
/// `with` or `template` on an action that takes neither.
pub const ACTION_CLAUSE: &str = "E0127";
/// A name that is not a value (a rule, a template, a function) used as one.
pub const NOT_A_VALUE: &str = "E0128";
/// `import "stdlib/NAME"` with no such module.
pub const UNKNOWN_MODULE: &str = "E0129";
/// A `fn` parameter's type is not a type.
pub const UNKNOWN_TYPE: &str = "E0130";
/// A parameter name appears twice in one `fn`.
pub const DUPLICATE_PARAM: &str = "E0131";
/// A misused `some`/`every` lambda: out of place, nested, or reading captures.
pub const LAMBDA: &str = "E0132";
/// An unknown time zone in `local()`, or a `time("...")` that is not a
/// constant RFC 3339 time.
pub const INVALID_TIME: &str = "E0140";
/// A malformed `classifier` declaration (fewer than two classes, a class
/// repeated or empty, a name declared twice in the ruleset), or a class or
/// member a classifier does not have.
pub const CLASSIFIER: &str = "E0141";

/// A rule that can never run: an earlier rule always ends evaluation.
pub const UNREACHABLE_RULE: &str = "W0201";
/// A local declaration shadows an imported one.
pub const SHADOWED_NAME: &str = "W0202";
/// A `let`, `list`, `fn` or `template` nothing uses.
pub const UNUSED: &str = "W0203";
/// A `redirect` that can run after a `fileinto` (the filed copy is dropped).
pub const REDIRECT_AFTER_FILEINTO: &str = "W0204";
/// A rule that could decide at an earlier stage than a rule before it
/// (its verdict waits for that rule's stage).
pub const STAGE_ORDER: &str = "W0210";
/// A rule that tests `score` before a later rule adds to it.
pub const SCORE_ORDER: &str = "W0211";

/// Every compiler code with its one-line meaning, in order (for
/// `docs/diagnostics.md` and the test that every code has a golden file).
pub const ALL: &[(&str, &str)] = &[
    (
        CANNOT_READ,
        "a file (the entry or an import) cannot be read",
    ),
    (IMPORT_CYCLE, "imports form a cycle"),
    (UNKNOWN_NAME, "an unknown field, name or rule"),
    (
        DUPLICATE_NAME,
        "a name declared twice in one file (or bound twice by `as`)",
    ),
    (
        AMBIGUOUS_NAME,
        "a name declared by two imports of the file that uses it",
    ),
    (
        DUPLICATE_RULE,
        "two rules of the ruleset with the same name",
    ),
    (UNKNOWN_FUNCTION, "a call to an unknown function"),
    (
        ARGUMENT_COUNT,
        "a function called with the wrong number of arguments",
    ),
    (TYPE_MISMATCH, "an expression of the wrong type"),
    (
        UNKNOWN_MEMBER,
        "an unknown member (`.domian`) of an address, attachment, time or duration",
    ),
    (INVALID_REGEX, "a regex literal that does not compile"),
    (
        CAPTURE_UNDER_NOT_OR,
        "`matches … as NAME` under `not` or `or`",
    ),
    (CAPTURE_INDEX, "a capture index past the regex's groups"),
    (CAPTURE_PLACE, "`matches … as NAME` outside a rule's `when`"),
    (
        MATCHED_ORDER,
        "`matched(r)` where r is not a rule that runs earlier",
    ),
    (
        RECURSION,
        "a `fn` that calls itself, directly or through others",
    ),
    (UNKNOWN_ACTION, "an unknown action word"),
    (ACTION_ARGUMENTS, "an action with the wrong arguments"),
    (
        REPLY_CODE,
        "a `reject` code that is not 5xx, or a `tempfail` code that is not 4xx",
    ),
    (
        REPLY_STATUS,
        "an enhanced status code that is malformed or of the wrong class",
    ),
    (
        AFTER_VERDICT,
        "an action after a verdict or `stop` in the same block",
    ),
    (ELSE_WITHOUT_WHEN, "`else` on a rule without `when`"),
    (
        NOT_A_TEMPLATE,
        "`template NAME` that names no template, or `reply` without one",
    ),
    (
        TEMPLATE_FIELD,
        "a template field other than `subject`, `body`, `from` and `addresses`",
    ),
    (
        LIST_FILE,
        "a `list` or `map` file that cannot be read, or a bad line in one",
    ),
    (NOT_CONSTANT, "a `let` that is not a compile-time constant"),
    (
        BAD_TEST,
        "a malformed `test` block (no `message`, an unknown expectation)",
    ),
    (
        ACTION_CLAUSE,
        "`with` or `template` on an action that takes neither",
    ),
    (
        NOT_A_VALUE,
        "a rule, template, function or map name used as a value",
    ),
    (
        UNKNOWN_MODULE,
        "`import \"stdlib/NAME\"` with no such module",
    ),
    (UNKNOWN_TYPE, "an unknown type in a `fn` parameter"),
    (DUPLICATE_PARAM, "a parameter name repeated in one `fn`"),
    (
        LAMBDA,
        "a `x => …` lambda outside `some`/`every`, nested, or reading `matches … as` captures",
    ),
    (
        INVALID_TIME,
        "an unknown time zone in `local()`, or a `time()` that is not a constant RFC 3339 time",
    ),
    (
        CLASSIFIER,
        "a malformed `classifier` declaration, or a class or member the classifier does not have",
    ),
    (
        UNREACHABLE_RULE,
        "a rule that can never run: an earlier rule always ends evaluation",
    ),
    (SHADOWED_NAME, "a local declaration shadows an imported one"),
    (
        UNUSED,
        "a `let`, `list`, `fn` or `template` that nothing uses",
    ),
    (
        REDIRECT_AFTER_FILEINTO,
        "a `redirect` that can run after a `fileinto`: the filed copy is dropped",
    ),
    (
        STAGE_ORDER,
        "a rule that could decide at an earlier stage than a rule before it",
    ),
    (
        SCORE_ORDER,
        "a rule that tests `score` before a later rule adds to it",
    ),
];
