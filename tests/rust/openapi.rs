//! The OpenAPI description (openapi/keepd.yaml) against the route table
//! (`api::routes::table`): every (method, path) the daemon serves is
//! described, and nothing else is. The description is what
//! tests/dast/run.sh fuzzes the daemon with, so a route left out of it is
//! a route never fuzzed.
//!
//! The file is read as the plain YAML it is written in: under `paths:`, a
//! path is a key indented by two spaces, its operations keys indented by
//! four. Both the table and the file name path parameters `{name}`.

use std::collections::BTreeSet;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn described() -> BTreeSet<(String, String)> {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/keepd.yaml");
    let text = std::fs::read_to_string(file).expect("openapi/keepd.yaml");
    let mut ops = BTreeSet::new();
    let mut in_paths = false;
    let mut path: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if !line.starts_with(' ') {
            in_paths = line.trim_end() == "paths:";
            path = None;
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(key) = line.strip_prefix("  ").filter(|l| !l.starts_with(' ')) {
            let key = key.trim_end().strip_suffix(':').expect("a path key");
            let key = key.trim_matches(|c| c == '\'' || c == '"');
            assert!(
                key.starts_with("/api/") || key == "/_" || key.starts_with("/_/"),
                "path {key:?} outside /api/ and the console's /_/"
            );
            path = Some(key.to_string());
        } else if let Some(key) = line.strip_prefix("    ").filter(|l| !l.starts_with(' ')) {
            let key = key.trim_end().trim_end_matches(':');
            let p = path.as_ref().expect("an operation under a path");
            if METHODS.contains(&key) {
                let op = (key.to_uppercase(), p.clone());
                assert!(ops.insert(op.clone()), "{op:?} described twice");
            } else {
                assert!(
                    ["parameters", "summary", "description", "servers"].contains(&key),
                    "unexpected key {key:?} under {p}"
                );
            }
        }
    }
    ops
}

fn served() -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for r in keepd::api::routes::table() {
        // The panic-test route exists only in test builds of that feature.
        if r.pattern == "/api/__panic" {
            continue;
        }
        let op = (r.method.as_str().to_string(), r.pattern.to_string());
        assert!(ops.insert(op.clone()), "{op:?} routed twice");
    }
    ops
}

#[test]
fn description_matches_the_route_table() {
    let described = described();
    let served = served();
    // The parser found the file's operations at all (a file it misread
    // would yield nothing, and a comparison of nothing with the table
    // would fail anyway; this names the cause).
    assert!(
        described.len() > 50,
        "only {} operations read",
        described.len()
    );
    let missing: Vec<_> = served.difference(&described).collect();
    let extra: Vec<_> = described.difference(&served).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "openapi/keepd.yaml and api::routes::table differ:\n  served, not described: {missing:?}\n  described, not served: {extra:?}"
    );
}

#[test]
fn every_operation_declares_its_errors_as_pocketbase_errors() {
    // Every JSON error response refers to the one error schema, and every
    // operation has an operationId (schemathesis names failures by it).
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/keepd.yaml");
    let text = std::fs::read_to_string(file).expect("openapi/keepd.yaml");
    let ops = described().len();
    let ids = text
        .lines()
        .filter(|l| l.trim_start().starts_with("operationId:"))
        .count();
    assert_eq!(ids, ops, "operations without an operationId");
    let error = text.split("\n    Error:\n").nth(1).expect("schema Error");
    let error: String = error.lines().take(4).collect::<Vec<_>>().join("\n");
    assert!(
        error.contains("required: [status, message, data]"),
        "{error}"
    );
}
