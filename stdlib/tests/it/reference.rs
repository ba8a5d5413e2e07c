//! `docs/reference.md` is generated from the registry and the stdlib
//! modules; this test fails when they differ. `UPDATE_EXPECT=1` rewrites it.

use std::path::Path;

#[test]
fn docs_reference_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/reference.md");
    let generated = weir_stdlib::reference::reference_markdown();
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, &generated).expect("write docs/reference.md");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "docs/reference.md is stale: run `UPDATE_EXPECT=1 cargo test -p weir-stdlib --test it reference`"
    );
}

#[test]
fn reference_lists_every_registry_entry() {
    let text = weir_stdlib::reference::reference_markdown();
    let reg = weir_stdlib::registry();
    for f in &reg.fields {
        assert!(
            text.contains(&format!("| `{}` |", f.path)),
            "field {}",
            f.path
        );
    }
    for f in &reg.functions {
        assert!(
            text.contains(&format!("### `{}(", f.name)),
            "function {}",
            f.name
        );
    }
    for a in &reg.actions {
        assert!(
            text.contains(&format!("### `{}", a.usage)),
            "action {}",
            a.name
        );
    }
    for (name, _) in weir_stdlib::modules::MODULES {
        assert!(
            text.contains(&format!("### `stdlib/{name}`")),
            "module {name}"
        );
    }
}
