//! SQLite dialect helpers (filled by the filter work).

/// Quotes an SQL identifier that comes from the schema (collection or field
/// names, validated as `[A-Za-z0-9_]+` when the collection is saved).
pub fn quote_ident(name: &str) -> String {
    debug_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    format!("\"{}\"", name.replace('"', "\"\""))
}
