//! Value helpers the interpreter needs from `weir-stdlib` (rendering as
//! text, case folding, members of addresses, attachments and times),
//! reached through one module so the rest of the crate names them once.

use weir_stdlib::{Type, Value};

/// Renders a value as interpolation does (LANGUAGE.md §2).
pub(crate) fn to_text(v: &Value) -> String {
    v.to_text()
}

/// Case folding for case-insensitive comparisons.
pub(crate) fn fold(s: &str) -> String {
    weir_stdlib::value::fold(s)
}

/// The members of a (non-list) type: (name, type).
pub(crate) fn members(ty: &Type) -> Vec<(&'static str, Type)> {
    weir_stdlib::registry::members(ty)
        .into_iter()
        .map(|(n, t, _)| (n, t))
        .collect()
}

/// The value of a member of a (non-list) value.
pub(crate) fn member_value(v: &Value, member: &str) -> Option<Value> {
    weir_stdlib::registry::member_value(v, member)
}
