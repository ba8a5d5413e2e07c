//! The `stdlib/*.flow` modules, compiled into the binary so that
//! `import "stdlib/NAME"` needs no files on disk.

/// The source of `stdlib/NAME`, if there is such a module.
pub fn source(name: &str) -> Option<&'static str> {
    MODULES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// Every module: (name, source).
pub const MODULES: &[(&str, &str)] = &[
    ("bulk", include_str!("../flow/bulk.flow")),
    ("auth", include_str!("../flow/auth.flow")),
    ("spam", include_str!("../flow/spam.flow")),
];
