//! The `stdlib/*.flow` modules, compiled into the binary so that
//! `import "stdlib/NAME"` needs no files on disk.

/// The source of `stdlib/NAME`, if there is such a module.
pub fn source(name: &str) -> Option<&'static str> {
    MODULES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// A name a module reads from the file that imports it: a setting only the
/// ruleset can give (which servers' results to trust).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    /// The name the importing file must declare (a `let` or a `list`).
    pub name: &'static str,
    /// A declaration to copy, for the error when it is missing.
    pub example: &'static str,
    /// What it is for.
    pub why: &'static str,
}

/// The names module `name` requires of the files that import it.
pub fn requires(name: &str) -> &'static [Requirement] {
    match name {
        "auth" => &[Requirement {
            name: "trusted_authserv",
            example: "let trusted_authserv = [\"mx.example.com\"]",
            why: "the authserv-ids of your own servers: only `Authentication-Results` headers \
                  they wrote count",
        }],
        _ => &[],
    }
}

/// Every module: (name, source).
pub const MODULES: &[(&str, &str)] = &[
    ("bulk", include_str!("../flow/bulk.flow")),
    ("auth", include_str!("../flow/auth.flow")),
    ("spam", include_str!("../flow/spam.flow")),
];
