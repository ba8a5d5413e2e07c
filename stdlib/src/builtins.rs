//! The contents of the registry. STUB: to be filled.

use crate::registry::Registry;

pub(crate) fn build_registry() -> Registry {
    Registry { fields: Vec::new(), functions: Vec::new(), actions: Vec::new() }
}
