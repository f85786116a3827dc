"""GET /api/collections/{c}/auth-methods for several auth collection configurations."""
from ._common import S

C = "/api/collections"


PKCE = [{"regex": r"(?<=state=)[A-Za-z0-9]+|(?<=code_challenge=)[A-Za-z0-9_-]+|^[A-Za-z0-9_-]{30,43}$",
         "reason": "PocketBase makes a random state and PKCE verifier/challenge for each answer"}]


def methods(step, coll="users", expect=200):
    return S(step, "GET", f"{C}/{coll}/auth-methods", auth="guest", expect=expect)


def patch(step, body, coll="users", expect=200):
    return S(step, "PATCH", f"{C}/{coll}", body=body, expect=expect, auth="superuser")


SCENARIOS = [
    {
        "id": "auth_methods_configs",
        "title": "auth-methods: password on/off with identity fields, otp, mfa, oauth2 providers, superusers, "
                 "non-auth and missing collections",
        "steps": [
            methods("default users"),
            methods("superusers", "_superusers"),
            methods("by collection id", "_pb_users_auth_"),
            methods("as superuser differs not", "users"),
            patch("add username field with unique index", {
                "fields": [{"name": "username", "type": "text"}],
                "indexes": ["CREATE UNIQUE INDEX idx_username ON users (username)"]}),
            patch("identity fields email and username", {"passwordAuth": {"identityFields": ["email", "username"]}}),
            methods("two identity fields"),
            patch("identity fields username only", {"passwordAuth": {"identityFields": ["username"]}}),
            methods("username only"),
            patch("turn password off", {"passwordAuth": {"enabled": False}}),
            methods("password off"),
            patch("otp on", {"otp": {"enabled": True, "duration": 300, "length": 6}}),
            methods("otp on, password off"),
            patch("password on again", {"passwordAuth": {"enabled": True, "identityFields": ["email"]}}),
            patch("mfa on", {"mfa": {"enabled": True, "duration": 900}}),
            methods("password, otp and mfa"),
            patch("oauth2 providers", {"oauth2": {"enabled": True, "providers": [
                {"name": "google", "clientId": "gid", "clientSecret": "gsecret"},
                {"name": "github", "clientId": "hid", "clientSecret": "hsecret", "displayName": "GH"}]}}),
            dict(methods("oauth2 on with two providers"), mask=PKCE),
            patch("oauth2 off keeps providers", {"oauth2": {"enabled": False}}),
            methods("oauth2 off"),
            patch("otp off mfa off", {"mfa": {"enabled": False}, "otp": {"enabled": False}}),
            methods("back to password only"),
            S("create a base collection", "POST", C, auth="superuser", body={"name": "plain", "listRule": ""}, expect=200),
            methods("base collection", "plain", expect=404),
            methods("missing collection", "nope", expect=404),
            S("auth-methods with fields", "GET", f"{C}/users/auth-methods", auth="guest",
              query={"fields": "password,mfa"}, expect=200),
            S("new auth collection", "POST", C, auth="superuser", body={"name": "members", "type": "auth"},
              expect=200),
            methods("new auth collection defaults", "members"),
        ],
    },
]
