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
