"""Known, deliberate differences between keepd and PocketBase.

Empty by default.  Shape:

    KNOWN_DIFFERENCES = {
        "<scenario id>": {
            "<step name>": [
                {"path": "$.data.foo", "reason": "why keepd deliberately differs"},
            ],
        },
    }

`path` is a JSON path into the (masked) response body: `$.a.b`, `$.items[0]`,
`$.items[*].x` (wildcards allowed); the key is dropped from both bodies (list
items are replaced), so presence/absence differences are ignored too.
Special paths: "$" ignores the whole body, "<status>" the status code,
"<content-type>" the media type.  Every entry MUST carry a non-empty "reason";
test_compat.py::test_known_differences_are_documented enforces it.
"""

KNOWN_DIFFERENCES = {
    "auth_users": {
        "signup too long password": [
            {
                "path": "$.data",
                "reason": "PocketBase's bcrypt rejects passwords over 72 bytes with an empty error; "
                "keepd hashes with argon2id and reports the password field's length rule as a field error "
                "(same status and message, a clearer body).",
            },
        ],
    },
}

KNOWN_DIFFERENCES["collections_validation"] = {
    "text bad pattern": [
        {
            "path": "$.data.fields",
            "reason": "The message quotes the regex engine's own error text (Go's regexp vs Rust's regex); "
            "the code validation_invalid_regex and the field path are the same.",
        }
    ],
}
KNOWN_DIFFERENCES["collections_import"] = {
    "import invalid collection": [
        {
            "path": "$.data.collections.message",
            "reason": "PocketBase quotes Go's JSON decoder error for an unknown field type; keepd names the "
            "collection and field instead. The status, message and code are the same.",
        }
    ],
}
KNOWN_DIFFERENCES["batch"] = {
    "enable batch via settings": [
        {
            "path": "$.rateLimits",
            "reason": "keepd ships with rate limiting on (PocketBase: off) and its own default rules "
            "(COMPATIBILITY.md, 'Deliberate differences'); the settings shape is PocketBase's.",
        },
        {
            "path": "$.lockout",
            "reason": "keepd's account lockout policy (PocketBase has no lockout) is one more settings key.",
        },
    ],
}

SQLITE_NAME = (
    "PocketBase lets a `sqlite_*` name through its validation and answers SQLite's own error text "
    "(`Failed to create collection. Raw error: ... object name reserved for internal use`) with empty data; "
    "keepd refuses every `sqlite_*` name up front with the validation error PocketBase gives its other "
    "internal tables (`data.name.code = validation_collection_name_invalid`): same status, a field error "
    "instead of database text."
)
RULE_TEXT = (
    "The code (validation_invalid_rule), the rule key and the status are PocketBase's; the 'Raw error' text "
    "after it comes from the filter parser, whose wording for this kind of mistake is not yet PocketBase's."
)
KNOWN_DIFFERENCES["collection_errors_names"] = {
    "reserved: sqlite_master": [{"path": "$", "reason": SQLITE_NAME}],
    "reserved: sqlite_sequence": [{"path": "$", "reason": SQLITE_NAME}],
    "reserved prefix: sqlite_nope": [{"path": "$", "reason": SQLITE_NAME}],
    "rename to sqlite_master": [{"path": "$", "reason": SQLITE_NAME}],
}
KNOWN_DIFFERENCES["collection_errors_rules_indexes"] = {
    step: [{"path": "$.data[*].message", "reason": RULE_TEXT}]
    for step in ("rule unbalanced parens", "rule unknown @collection", "rule @collection unknown field",
                 "rule bad operator", "rule unknown modifier")
}

NO_LOGOS = (
    "keepd ships no third-party artwork: each provider's `logo` is an SVG letter mark of keepd's own "
    "(PocketBase embeds each provider's brand logo); every other key of the provider entries is PocketBase's."
)
KNOWN_DIFFERENCES["auth_methods_configs"] = {
    "oauth2 on with two providers": [{"path": "$.oauth2.providers[*].logo", "reason": NO_LOGOS}],
}
KNOWN_DIFFERENCES["oauth2_providers"] = {
    "list": [{"path": "$[*].logo", "reason": NO_LOGOS}],
    "auth-methods with every provider": [{"path": "$.oauth2.providers[*].logo", "reason": NO_LOGOS}],
}

# View queries (scenarios/views.py): where keepd's checker, not SQLite, refuses
# a query, the raw error text is keepd's own; and what PocketBase runs but
# keepd deliberately refuses (COMPATIBILITY.md, "View collections").
from scenarios.views import QUERIES as _VIEW_QUERIES  # noqa: E402

_VIEW_MESSAGE = (
    "Both refuse the query with the same 400; the raw error quotes keepd's SQL checker "
    "(which refuses anything but one SELECT before SQLite sees it) instead of SQLite's parser."
)
_VIEW_REFUSED = (
    "keepd runs only a checked SELECT over collections' own columns: SQLite's tables and pragmas, "
    "internal tables, password hashes and token keys, recursive CTEs (unbounded), allocating functions "
    "and rowids are refused, where PocketBase runs whatever SQLite accepts."
)
KNOWN_DIFFERENCES["views_dry_run_table"] = {}
for _name, _q, _kind in _VIEW_QUERIES:
    if _kind == "message":
        KNOWN_DIFFERENCES["views_dry_run_table"]["q: " + _name] = [{"path": "$.message", "reason": _VIEW_MESSAGE}]
    elif _kind == "keepd_refuses":
        KNOWN_DIFFERENCES["views_dry_run_table"]["q: " + _name] = [
            {"path": "$", "reason": _VIEW_REFUSED}, {"path": "<status>", "reason": _VIEW_REFUSED}]
