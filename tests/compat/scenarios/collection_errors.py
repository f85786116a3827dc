"""Every validation error answer of POST/PATCH /api/collections: codes, messages, `data` keys
and params (names, ids, types, fields and their options per type, rules, indexes, auth options).

Each step sends one defect (unless its name says otherwise) so that each error is seen alone;
a few steps combine defects to pin which errors PocketBase reports together.
"""
from ._common import S

C = "/api/collections"


_N = [0]


def new(name, step, body, expect=400, **kw):
    """POST a collection named `name` (merged into `body`; None: a fresh name, so steps don't collide)."""
    if name is None:
        _N[0] += 1
        name = f"c{_N[0]}"
    b = {"name": name}
    b.update(body)
    return S(step, "POST", C, body=b, expect=expect, **kw)


def fields(name, step, flds, expect=400, ctype="base", **kw):
    """POST a collection with `flds` (name None: a fresh name, so steps don't collide)."""
    return new(name, step, {"type": ctype, "fields": flds}, expect=expect, **kw)


def patch(coll, step, body, expect=400, **kw):
    return S(step, "PATCH", f"{C}/{coll}", body=body, expect=expect, **kw)


LONG = "a" * 256
REGEX_MSG = [{"regex": r"(?i)error parsing regexp.*",
              "reason": "the rest of the message is the regex engine's own words (Go's regexp vs Rust's)"}]
AUTOGEN_EX = [{"regex": r'ex\.: ".*"', "reason": "PocketBase shows a random example value"}]
HELP_LONG = "h" * 301

NAMES = {
    "id": "collection_errors_names",
    "title": "collection names, ids, types and the system flag",
    "steps": [
        new("", "empty name", {}),
        new(None, "null name", {"name": None}),
        new(LONG, "name of 256 chars", {}),
        new("a" * 255, "name of 255 chars is fine", {}, expect=200),
        new("has space", "name with a space", {}),
        new("a-b", "name with a dash", {}),
        new("naïve", "name with a non-ascii letter", {}),
        new("a.b", "name with a dot", {}),
        new("a_via_b", "name with _via_", {}),
        new("A_VIA_B", "name with _VIA_ upper case", {}),
        new("users", "duplicate name", {}),
        new("Users", "duplicate name other case", {}),
        new("_superusers", "system collection name", {}),
        new("_pb_users_auth_", "name equal to a collection id", {}),
        new("_collections", "reserved: _collections", {}),
        new("_params", "reserved: _params", {}),
        new("_migrations", "reserved: _migrations", {}),
        new("_COLLECTIONS", "reserved: _COLLECTIONS upper case", {}),
        new("_mfas", "reserved: _mfas (a system collection)", {}),
        new("_externalAuths", "reserved: _externalAuths", {}),
        new("sqlite_master", "reserved: sqlite_master", {}),
        new("sqlite_sequence", "reserved: sqlite_sequence", {}),
        new("sqlite_stat1", "reserved: sqlite_stat1", {}),
        new("sqlite_nope", "reserved prefix: sqlite_nope", {}),
        new("x1", "bad type", {"type": "nope"}),
        new("x2", "empty type", {"type": ""}, expect=200),
        new("x3", "null type", {"type": None}, expect=200),
        new("x4", "id too long", {"id": "i" * 101}),
        new("x5", "id with bad chars", {"id": "bad id!"}),
        new("x6", "id already used", {"id": "_pb_users_auth_"}),
        new("x7", "id empty string", {"id": ""}, expect=200),
        new("x8", "system flag on create", {"system": True}, expect=200),
        new("x9", "name and type and rule all wrong", {"name": "bad name", "type": "nope",
                                                        "listRule": "nope ="}),
        new("base1", "setup: base collection", {}, expect=200, save={"base1Id": "$.id"}),
        patch("base1", "rename to existing name", {"name": "users"}),
        patch("base1", "rename to existing name other case", {"name": "USERS"}),
        patch("base1", "rename to reserved table", {"name": "_params"}),
        patch("base1", "rename to sqlite_master", {"name": "sqlite_master"}),
        patch("base1", "rename to a collection id", {"name": "_pb_users_auth_"}),
        patch("base1", "rename to bad chars", {"name": "b a d"}),
        patch("base1", "rename to empty", {"name": ""}),
        patch("base1", "change id", {"id": "otherid12345"}, expect=404),
        patch("base1", "set system flag", {"system": True}),
        patch("base1", "change type to auth", {"type": "auth"}),
        patch("base1", "change type to view", {"type": "view"}),
        patch("base1", "change type to nonsense", {"type": "nope"}),
        patch("_superusers", "rename _superusers", {"name": "admins"}),
        patch("_superusers", "unset system flag of _superusers", {"system": False}),
        patch("_superusers", "change _superusers rule", {"listRule": ""}),
        patch("_superusers", "change _superusers authRule", {"authRule": "id != ''"}),
        patch("_mfas", "rename _mfas", {"name": "mfas2"}),
        patch("users", "users type to base", {"type": "base"}),
        patch("users", "rename users is fine", {"name": "members"}, expect=200),
        S("after", "GET", C, query={"filter": "system = false", "sort": "name", "fields": "name,type,system"},
          expect=200),
    ],
}

SCENARIOS = [NAMES]


def f(name, ftype, **opts):
    d = {"name": name, "type": ftype}
    d.update(opts)
    return d


FIELDS = {
    "id": "collection_errors_fields",
    "title": "field definitions: names, ids, reserved names, options of every field type",
    "steps": [
        fields(None, "field name empty", [f("", "text")]),
        fields(None, "field name too long", [f("n" * 101, "text")]),
        fields(None, "field name bad chars", [f("a b", "text")]),
        fields(None, "field name _via_", [f("x_via_y", "text")]),
        fields(None, "field name null", [f("null", "text")]),
        fields(None, "field name true", [f("true", "bool")]),
        fields(None, "field name _rowid_", [f("_rowid_", "number")]),
        fields(None, "field name expand", [f("expand", "json")]),
        fields(None, "field name collectionId", [f("collectionId", "text")]),
        fields(None, "field name collectionName", [f("collectionName", "text")]),
        fields(None, "field name Expand (case)", [f("Expand", "text")], expect=200),
        fields(None, "duplicate names case-insensitive", [f("a", "text"), f("A", "number")]),
        fields(None, "duplicate field ids", [f("a", "text", id="same1"), f("b", "number", id="same1")], expect=200),
        fields(None, "duplicate names and bad option", [f("a", "text"), f("A", "number"),
                                                        f("s", "select")]),
        fields(None, "id as number", [f("id", "number")]),
        fields(None, "id as text without primaryKey", [f("id", "text")], expect=200),
        fields(None, "id primary key without pattern", [f("id", "text", primaryKey=True, required=True)], expect=200),
        fields(None, "id primary key hidden", [f("id", "text", primaryKey=True, required=True,
                                                 pattern="^[a-z0-9]+$", hidden=True)], expect=200),
        fields(None, "id primary key not required", [f("id", "text", primaryKey=True, pattern="^[a-z]+$")], expect=200),
        fields(None, "second primary key", [f("other", "text", primaryKey=True, required=True,
                                              pattern="^[a-z]+$")]),
        fields(None, "created as text in base is fine", [f("created", "text"), f("updated", "number")],
               expect=200),
        fields(None, "auth: passwordConfirm field", [f("passwordConfirm", "text")], ctype="auth"),
        fields(None, "auth: oldPassword field", [f("oldPassword", "text")], ctype="auth"),
        fields(None, "auth: password as text", [f("password", "text")], ctype="auth", expect=200),
        fields(None, "auth: email as text", [f("email", "text")], ctype="auth", expect=200),
        fields(None, "auth: tokenKey as number", [f("tokenKey", "number")], ctype="auth", expect=200),
        fields(None, "auth: verified as text", [f("verified", "text")], ctype="auth", expect=200),
        fields(None, "auth: emailVisibility as text", [f("emailVisibility", "text")], ctype="auth", expect=200),
        fields(None, "auth: created as text is fine", [f("created", "text")], ctype="auth", expect=200),
        fields(None, "help too long", [f("t", "text", help=HELP_LONG)]),
        fields(None, "text min negative", [f("t", "text", min=-1)]),
        fields(None, "text max below min", [f("t", "text", min=5, max=2)]),
        fields(None, "text max huge", [f("t", "text", max=2 ** 53)]),
        fields(None, "text bad pattern", [f("t", "text", pattern="(")],
               mask=REGEX_MSG),
        fields(None, "text bad autogeneratePattern", [f("t", "text", autogeneratePattern="[")], mask=REGEX_MSG),
        fields(None, "text autogeneratePattern too long for max",
               [f("t", "text", autogeneratePattern="[a-z]{10}", max=5)], mask=AUTOGEN_EX),
        fields(None, "text autogeneratePattern not matching pattern",
               [f("t", "text", autogeneratePattern="[0-9]{5}", pattern="^[a-z]+$")], mask=AUTOGEN_EX),
        fields(None, "text several bad options", [f("t", "text", min=-1, max=-2, help=HELP_LONG)]),
        fields(None, "number min > max", [f("n", "number", min=10, max=1)]),
        fields(None, "number min == max is fine", [f("n", "number", min=1, max=1)], expect=200),
        fields(None, "number onlyInt with fractional min", [f("n", "number", onlyInt=True, min=1.5)]),
        fields(None, "number onlyInt with fractional max", [f("n", "number", onlyInt=True, max=2.5)]),
        fields(None, "number negative max below zero min", [f("n", "number", min=0, max=-1)]),
        fields(None, "select without values", [f("s", "select")]),
        fields(None, "select empty values", [f("s", "select", values=[])]),
        fields(None, "select maxSelect over values", [f("s", "select", values=["a", "b"], maxSelect=3)]),
        fields(None, "select maxSelect negative", [f("s", "select", values=["a"], maxSelect=-1)]),
        fields(None, "select duplicate values is fine", [f("s", "select", values=["a", "a"])], expect=200),
        fields(None, "relation without collectionId", [f("r", "relation")]),
        fields(None, "relation to missing collection", [f("r", "relation", collectionId="nope")]),
        fields(None, "relation by collection name", [f("r", "relation", collectionId="users")]),
        fields(None, "relation minSelect negative", [f("r", "relation", collectionId="_pb_users_auth_",
                                                         minSelect=-1)]),
        fields(None, "relation maxSelect below minSelect", [f("r", "relation", collectionId="_pb_users_auth_",
                                                              minSelect=3, maxSelect=2)]),
        fields(None, "relation minSelect without maxSelect", [f("r", "relation",
                                                                collectionId="_pb_users_auth_", minSelect=2)]),
        fields(None, "relation maxSelect negative", [f("r", "relation", collectionId="_pb_users_auth_",
                                                       maxSelect=-1)]),
        fields("f12", "relation cascadeDelete on multiple is fine", [
            f("r", "relation", collectionId="_pb_users_auth_", maxSelect=5, cascadeDelete=True)], expect=200,
            save={"f12Id": "$.id"}),
        S("f12 relation field id", "GET", C + "/f12", expect=200, save={"f12RelId": "$.fields[1].id"}),
        patch("f12", "relation collectionId change", {"fields": [
            {"id": "{f12RelId}", "name": "r", "type": "relation", "collectionId": "_pb_users_auth_"}]},
            expect=200, note="same collection: fine"),
        fields("f13", "setup: another target", [f("t", "text")], expect=200, save={"f13Id": "$.id"}),
        patch("f12", "relation collectionId changed to another", {"fields": [
            {"id": "{f12RelId}", "name": "r", "type": "relation", "collectionId": "{f13Id}"}]}),
        patch("f12", "relation type changed", {"fields": [
            {"id": "{f12RelId}", "name": "r", "type": "text"}]}),
        patch("f12", "field type changed and bad option elsewhere", {"fields": [
            {"id": "{f12RelId}", "name": "r", "type": "number"}, f("s", "select")]}),
        fields(None, "file maxSelect negative", [f("x", "file", maxSelect=-1)]),
        fields(None, "file maxSize negative", [f("x", "file", maxSize=-1)]),
        fields(None, "file maxSize huge", [f("x", "file", maxSize=2 ** 53)]),
        fields(None, "file bad thumb", [f("x", "file", thumbs=["abc"])]),
        fields(None, "file 0x0 thumb", [f("x", "file", thumbs=["100x100", "0x0"])]),
        fields(None, "file good thumbs", [f("x", "file", thumbs=["100x100", "0x50", "20x0t", "5x5b", "5x5f"])],
               expect=200),
        fields(None, "file mimeTypes anything goes", [f("y", "file", mimeTypes=["not a mime"])], expect=200,
               note="f14 exists by now"),
        fields(None, "autodate neither onCreate nor onUpdate", [f("d", "autodate")]),
        fields(None, "autodate onUpdate only is fine", [f("d", "autodate", onUpdate=True)], expect=200),
        fields(None, "password in base: min 0", [f("p", "password", min=0)], expect=200),
        fields(None, "password min 72", [f("p", "password", min=72)]),
        fields(None, "password max 72", [f("p", "password", max=72)]),
        fields(None, "password max below min", [f("p", "password", min=10, max=5)]),
        fields(None, "password cost 3", [f("p", "password", cost=3)]),
        fields(None, "password cost 32", [f("p", "password", cost=32)]),
        fields(None, "password bad pattern", [f("p", "password", pattern="[")],
               mask=REGEX_MSG),
        fields(None, "json maxSize negative", [f("j", "json", maxSize=-1)]),
        fields(None, "editor maxSize negative", [f("e", "editor", maxSize=-1)]),
        fields(None, "date min after max", [f("d", "date", min="2024-01-02 00:00:00.000Z",
                                               max="2024-01-01 00:00:00.000Z")], expect=200),
        fields(None, "date bad min", [f("d", "date", min="nope")], expect=200),
        fields(None, "email onlyDomains and exceptDomains", [f("e", "email", onlyDomains=["a.com"],
                                                                exceptDomains=["b.com"])]),
        fields(None, "email bad domain", [f("e", "email", onlyDomains=["not a domain"])]),
        fields(None, "url onlyDomains and exceptDomains", [f("u", "url", onlyDomains=["a.com"],
                                                              exceptDomains=["b.com"])]),
        fields(None, "url bad domain", [f("u", "url", exceptDomains=["-bad-.com", "ok.com"])]),
        fields(None, "geoPoint help too long", [f("g", "geoPoint", help=HELP_LONG)]),
        fields(None, "bool help too long", [f("b", "bool", help=HELP_LONG)]),
        fields(None, "many fields each wrong", [
            f("a", "number", min=3, max=1), f("b", "select"), f("c", "relation"), f("", "text"),
            f("d", "file", maxSelect=-1), f("e", "autodate")]),
        fields(None, "field id too long", [f("a", "text", id="i" * 101)]),
        fields(None, "unknown option key is ignored", [f("a", "text", nope=1)], expect=200),
        patch("users", "users: remove email field", {"fields": [
            {"name": "id", "type": "text", "primaryKey": True, "required": True, "pattern": "^[a-z0-9]+$",
             "system": True, "id": "text3208210256", "min": 15, "max": 15,
             "autogeneratePattern": "[a-z0-9]{15}"}]}, expect=200),
        S("users fields", "GET", C + "/users", expect=200, save={"emailId": "$.fields[3].id",
                                                                  "pwId": "$.fields[1].id"}),
        patch("users", "users: rename email field", {"fields": [
            {"id": "{emailId}", "name": "mail", "type": "email", "system": True}]}),
        patch("users", "users: email type change", {"fields": [
            {"id": "{emailId}", "name": "email", "type": "text", "system": True}]}, expect=200),
        patch("users", "users: password min 0", {"fields": [
            {"id": "{pwId}", "name": "password", "type": "password", "system": True, "hidden": True,
             "min": 0}]}, expect=200),
        patch("users", "users: password not hidden", {"fields": [
            {"id": "{pwId}", "name": "password", "type": "password", "system": True, "hidden": False,
             "min": 8}]}, expect=200),
        S("after", "GET", C, query={"filter": "system = false", "sort": "name", "fields": "name"}, expect=200),
    ],
}

SCENARIOS.append(FIELDS)


RULES_INDEXES = {
    "id": "collection_errors_rules_indexes",
    "title": "API rules (syntax, unknown fields, @request/@collection misuse) and index definitions",
    "steps": [
        new(None, "rule syntax error", {"listRule": "title = "}),
        new(None, "rule unbalanced parens", {"viewRule": "(id = 'a'"}),
        new(None, "rule unknown field", {"createRule": "nope = 1"}),
        new(None, "rule unknown @request key", {"updateRule": "@request.nope = 1"}),
        new(None, "rule unknown @request.auth field is fine", {"deleteRule": "@request.auth.nope = 1"},
            expect=200),
        new(None, "rule unknown @collection", {"listRule": "@collection.nope.id = id"}),
        new(None, "rule @collection unknown field", {"listRule": "@collection.users.nope = id"}),
        new(None, "rule bad operator", {"listRule": "id === 'a'"}),
        new(None, "rule unknown modifier", {"listRule": "id:nope = 'a'"}),
        new(None, "rule @request.body unknown field is fine", {"createRule": "@request.body.nope = 1"},
            expect=200),
        new(None, "every rule wrong", {"listRule": "a =", "viewRule": "b =", "createRule": "c =",
                                       "updateRule": "d =", "deleteRule": "e ="}),
        new(None, "auth rule wrong", {"type": "auth", "authRule": "nope = 1"}),
        new(None, "manage rule wrong", {"type": "auth", "manageRule": "nope = 1"}),
        new(None, "manage rule empty string", {"type": "auth", "manageRule": ""}),
        new(None, "mfa rule wrong", {"type": "auth", "mfa": {"enabled": True, "rule": "nope = 1"},
                                     "otp": {"enabled": True}}),
        new(None, "auth rule on base collection is ignored", {"authRule": "nope = 1"}, expect=200),
        new(None, "index not sql", {"indexes": ["nope"]}),
        new(None, "index drop table", {"indexes": ["DROP TABLE users"]}),
        new(None, "index empty string", {"indexes": [""]}),
        new(None, "index no columns", {"indexes": ["CREATE INDEX idx_a ON i1 ()"]}),
        new(None, "index on missing column", {"indexes": ["CREATE INDEX idx_a ON i1 (nope)"]}),
        new(None, "unique index on missing column", {"indexes": ["CREATE UNIQUE INDEX idx_a ON i1 (nope)"]}),
        new(None, "index duplicate names", {"fields": [{"name": "a", "type": "text"}, {"name": "b", "type": "text"}],
                                            "indexes": ["CREATE INDEX idx_a ON i2 (a)",
                                                        "CREATE INDEX IDX_A ON i2 (b)"]}),
        new(None, "index duplicate definitions", {"fields": [{"name": "a", "type": "text"}],
                                                  "indexes": ["CREATE INDEX idx_a ON i2 (a)",
                                                              "CREATE INDEX idx_b ON i2 (a)"]}),
        new(None, "index name used by another collection", {
            "fields": [{"name": "a", "type": "text"}],
            "indexes": ["CREATE INDEX idx_email__pb_users_auth_ ON i2 (a)"]}),
        new(None, "index on other table name is fine", {"fields": [{"name": "a", "type": "text"}],
                                                         "indexes": ["CREATE INDEX idx_i2a ON other (a)"]},
            expect=200),
        new(None, "index second of three bad", {"fields": [{"name": "a", "type": "text"}],
                                                "indexes": ["CREATE INDEX idx_1 ON i3 (a)", "nope",
                                                            "also nope"]}),
        new(None, "indexes not strings", {"indexes": [1, 2]}),
        new(None, "auth: no email unique index", {"type": "auth", "indexes": [
            "CREATE UNIQUE INDEX idx_tk ON i4 (tokenKey)"]}, expect=200),
        patch("users", "users: drop the email index", {"indexes": [
            "CREATE UNIQUE INDEX `idx_tokenKey__pb_users_auth_` ON `users` (`tokenKey`)"]}, expect=200),
        patch("users", "users: email index no longer unique", {"indexes": [
            "CREATE UNIQUE INDEX `idx_tokenKey__pb_users_auth_` ON `users` (`tokenKey`)",
            "CREATE INDEX `idx_email__pb_users_auth_` ON `users` (`email`)"]}),
        patch("users", "users: indexes emptied", {"indexes": []}, expect=200),
        patch("users", "users: email index renamed is fine", {"indexes": [
            "CREATE UNIQUE INDEX `idx_tokenKey__pb_users_auth_` ON `users` (`tokenKey`)",
            "CREATE UNIQUE INDEX `idx_mail_x` ON `users` (`email`) WHERE `email` != ''"]}, expect=200),
        S("after", "GET", C, query={"filter": "system = false", "sort": "name", "fields": "name,indexes"},
          expect=200),
    ],
}

SECRET = "s" * 40

AUTH_OPTIONS = {
    "id": "collection_errors_auth_options",
    "title": "auth collection options: tokens, passwordAuth, otp, mfa, oauth2, templates, authAlert",
    "steps": [
        new(None, "token duration 0", {"type": "auth", "authToken": {"duration": 0}}),
        new(None, "token duration 9", {"type": "auth", "authToken": {"duration": 9}}),
        new(None, "token duration too big", {"type": "auth", "fileToken": {"duration": 94670857}}),
        new(None, "token duration negative", {"type": "auth", "verificationToken": {"duration": -5}}),
        new(None, "token secret short", {"type": "auth", "passwordResetToken": {"duration": 100,
                                                                                  "secret": "short"}}),
        new(None, "token secret long", {"type": "auth", "emailChangeToken": {"duration": 100,
                                                                               "secret": "x" * 256}}),
        new(None, "token not an object", {"type": "auth", "authToken": 5}),
        new(None, "every token wrong", {"type": "auth", "authToken": {"duration": 1},
                                         "passwordResetToken": {"duration": 1},
                                         "emailChangeToken": {"duration": 1},
                                         "verificationToken": {"duration": 1}, "fileToken": {"duration": 1}}),
        new(None, "passwordAuth without identityFields", {"type": "auth", "passwordAuth": {
            "enabled": True, "identityFields": []}}),
        new(None, "passwordAuth identityField missing", {"type": "auth", "passwordAuth": {
            "enabled": True, "identityFields": ["nope"]}}),
        new(None, "passwordAuth identityField without unique index", {
            "type": "auth", "fields": [{"name": "username", "type": "text"}],
            "passwordAuth": {"enabled": True, "identityFields": ["email", "username"]}}),
        new(None, "passwordAuth identityField with unique index", {
            "type": "auth", "fields": [{"name": "username", "type": "text"}],
            "indexes": ["CREATE UNIQUE INDEX idx_un ON a2 (username)"],
            "passwordAuth": {"enabled": True, "identityFields": ["email", "username"]}}, expect=200),
        new(None, "passwordAuth disabled with bad identityFields is fine", {"type": "auth", "passwordAuth": {
            "enabled": False, "identityFields": ["nope"]}}, expect=200),
        new(None, "otp duration 5", {"type": "auth", "otp": {"enabled": True, "duration": 5}}),
        new(None, "otp duration too big", {"type": "auth", "otp": {"enabled": True, "duration": 86401}}),
        new(None, "otp length 3", {"type": "auth", "otp": {"enabled": True, "length": 3}}),
        new(None, "otp length 0", {"type": "auth", "otp": {"enabled": True, "length": 0, "duration": 0}}),
        new(None, "otp disabled with bad values", {"type": "auth", "otp": {"enabled": False, "length": 0,
                                                                            "duration": 0}}, expect=200),
        new(None, "otp empty template", {"type": "auth", "otp": {"emailTemplate": {"subject": "",
                                                                                   "body": ""}}}),
        new(None, "mfa with one method", {"type": "auth", "mfa": {"enabled": True}}),
        new(None, "mfa duration 5", {"type": "auth", "mfa": {"enabled": True, "duration": 5},
                                     "otp": {"enabled": True}}),
        new(None, "mfa duration too big", {"type": "auth", "mfa": {"enabled": True, "duration": 86401},
                                           "otp": {"enabled": True}}),
        new(None, "mfa with no methods", {"type": "auth", "mfa": {"enabled": True},
                                          "passwordAuth": {"enabled": False}}),
        new(None, "mfa with password and otp", {"type": "auth", "mfa": {"enabled": True},
                                                "otp": {"enabled": True}}, expect=200),
        new(None, "oauth2 unknown provider", {"type": "auth", "oauth2": {"enabled": True, "providers": [
            {"name": "nope", "clientId": "a", "clientSecret": "b"}]}}),
        new(None, "oauth2 provider without secrets", {"type": "auth", "oauth2": {"enabled": True, "providers": [
            {"name": "google"}]}}),
        new(None, "oauth2 duplicate provider", {"type": "auth", "oauth2": {"enabled": True, "providers": [
            {"name": "google", "clientId": "a", "clientSecret": "b"},
            {"name": "google", "clientId": "a", "clientSecret": "b"}]}}),
        new(None, "oauth2 bad urls", {"type": "auth", "oauth2": {"enabled": True, "providers": [
            {"name": "oidc", "clientId": "a", "clientSecret": "b", "authURL": "nope",
             "tokenURL": "nope", "userInfoURL": "nope"}]}}),
        new(None, "oauth2 disabled with bad provider", {"type": "auth", "oauth2": {
            "enabled": False, "providers": [{"name": "nope"}]}}, expect=200),
        new(None, "verification template empty", {"type": "auth", "verificationTemplate": {"subject": "",
                                                                                          "body": ""}}),
        new(None, "reset template no body", {"type": "auth", "resetPasswordTemplate": {"subject": "s",
                                                                                      "body": ""}}),
        new(None, "email change template no subject", {"type": "auth", "confirmEmailChangeTemplate": {
            "subject": "", "body": "b"}}),
        new(None, "auth alert template empty", {"type": "auth", "authAlert": {
            "enabled": False, "emailTemplate": {"subject": "", "body": ""}}}),
        new(None, "several options wrong", {"type": "auth", "authToken": {"duration": 1},
                                            "otp": {"enabled": True, "length": 1},
                                            "verificationTemplate": {"subject": "", "body": "b"},
                                            "listRule": "nope ="}),
        new(None, "auth collection with a password field named pw", {"type": "auth", "fields": [
            {"name": "pw", "type": "password"}]}, expect=200),
        patch("users", "users: token duration 0", {"authToken": {"duration": 0}}),
        patch("users", "users: secret short", {"authToken": {"secret": "short"}}),
        patch("users", "users: mfa alone", {"mfa": {"enabled": True}}),
        patch("users", "users: identityFields emptied", {"passwordAuth": {"identityFields": []}}),
        patch("users", "users: name as identity without unique index",
              {"passwordAuth": {"identityFields": ["email", "name"]}}),
        patch("users", "users: otp and mfa on is fine", {"otp": {"enabled": True}, "mfa": {"enabled": True}},
              expect=200),
        S("after", "GET", C, query={"filter": "system = false", "sort": "name", "fields": "name"}, expect=200),
    ],
}

SCENARIOS += [RULES_INDEXES, AUTH_OPTIONS]
