from ._common import S, records

U = records("users")
A = "/api/collections/users"


def signup(var, email, password="pass12345", **extra):
    body = {"email": email, "password": password, "passwordConfirm": password}
    body.update(extra)
    return S(f"signup {var}", "POST", U, auth="guest", body=body, expect=200, save={f"{var}Id": "$.id"})


def login(name, email, password="pass12345"):
    return S(f"login {name}", "POST", A + "/auth-with-password", auth="guest",
             body={"identity": email, "password": password}, expect=200, save={name: "$.token"})


SCENARIOS = [
    {
        "id": "auth_users",
        "title": "users collection signup validation, auth-with-password, auth-refresh, auth-methods",
        "auth": "guest",
        "steps": [
            S("auth-methods", "GET", A + "/auth-methods", expect=200),
            S("auth-methods superusers", "GET", "/api/collections/_superusers/auth-methods", expect=200),
            S("auth-methods of base collection", "POST", "/api/collections", auth="superuser",
              body={"name": "plain", "listRule": ""}, expect=200),
            S("auth-methods non-auth collection", "GET", "/api/collections/plain/auth-methods"),
            S("signup password mismatch", "POST", U, body={"email": "x@example.com", "password": "pass12345",
                                                           "passwordConfirm": "other1234"}, expect=400),
            S("signup missing passwordConfirm", "POST", U, body={"email": "x@example.com",
                                                                 "password": "pass12345"}, expect=400),
            S("signup short password", "POST", U, body={"email": "x@example.com", "password": "short",
                                                         "passwordConfirm": "short"}, expect=400),
            S("signup too long password", "POST", U, body={"email": "x@example.com", "password": "p" * 80,
                                                           "passwordConfirm": "p" * 80}, expect=400),
            S("signup bad email", "POST", U, body={"email": "nope", "password": "pass12345",
                                                   "passwordConfirm": "pass12345"}, expect=400),
            S("signup missing email", "POST", U, body={"password": "pass12345", "passwordConfirm": "pass12345"},
              expect=400),
            S("signup empty body", "POST", U, body={}, expect=400),
            signup("alice", "alice@example.com", name="Alice"),
            S("signup duplicate email", "POST", U, body={"email": "alice@example.com", "password": "pass12345",
                                                         "passwordConfirm": "pass12345"}, expect=400),
            S("signup duplicate email different case", "POST", U, body={
                "email": "ALICE@example.com", "password": "pass12345", "passwordConfirm": "pass12345"}),
            S("signup trying to set verified", "POST", U, body={
                "email": "v@example.com", "password": "pass12345", "passwordConfirm": "pass12345",
                "verified": True}),
            signup("bob", "bob@example.com", emailVisibility=True, name="Bob"),
            S("signup as superuser may set verified", "POST", U, auth="superuser", body={
                "email": "carol@example.com", "password": "pass12345", "passwordConfirm": "pass12345",
                "verified": True, "emailVisibility": False}, expect=200),
            login("alice", "alice@example.com"),
            login("bob", "bob@example.com"),
            S("login wrong password", "POST", A + "/auth-with-password",
              body={"identity": "alice@example.com", "password": "wrongpass"}, expect=400),
            S("login unknown identity", "POST", A + "/auth-with-password",
              body={"identity": "nobody@example.com", "password": "pass12345"}, expect=400),
            S("login missing password", "POST", A + "/auth-with-password", body={"identity": "alice@example.com"},
              expect=400),
            S("login empty body", "POST", A + "/auth-with-password", body={}, expect=400),
            S("login identity case-insensitive", "POST", A + "/auth-with-password",
              body={"identity": "Alice@Example.com", "password": "pass12345"}),
            S("login with identityField", "POST", A + "/auth-with-password",
              body={"identity": "alice@example.com", "password": "pass12345", "identityField": "email"},
              expect=200),
            S("login with bad identityField", "POST", A + "/auth-with-password",
              body={"identity": "alice@example.com", "password": "pass12345", "identityField": "name"},
              expect=400),
            S("login on base collection", "POST", "/api/collections/plain/auth-with-password",
              body={"identity": "a", "password": "b"}),
            S("login on unknown collection", "POST", "/api/collections/nope/auth-with-password",
              body={"identity": "a", "password": "b"}, expect=404),
            S("login with expand", "POST", A + "/auth-with-password", query={"fields": "token,record.email"},
              body={"identity": "bob@example.com", "password": "pass12345"}, expect=200),
            S("auth-refresh", "POST", A + "/auth-refresh", auth="alice", expect=200),
            S("auth-refresh Bearer prefix", "POST", A + "/auth-refresh", headers={"Authorization": "Bearer {alice}"},
              expect=200),
            S("auth-refresh as guest", "POST", A + "/auth-refresh", expect=401),
            S("auth-refresh bad token", "POST", A + "/auth-refresh", headers={"Authorization": "abc"}, expect=401),
            S("auth-refresh on other collection", "POST", "/api/collections/_superusers/auth-refresh",
              auth="alice"),
            S("superuser auth-refresh", "POST", "/api/collections/_superusers/auth-refresh", auth="superuser",
              expect=200),
            S("superuser login wrong password", "POST", "/api/collections/_superusers/auth-with-password",
              body={"identity": "root@example.com", "password": "nope"}, expect=400),
            S("view self", "GET", U + "/{aliceId}", auth="alice", expect=200),
            S("view other (rule id = @request.auth.id)", "GET", U + "/{bobId}", auth="alice", expect=404),
            S("list as alice", "GET", U, auth="alice", expect=200),
            S("list as guest", "GET", U, expect=200),
            S("list as superuser shows emails", "GET", U, auth="superuser", query={"sort": "email"}, expect=200),
            S("update self name", "PATCH", U + "/{aliceId}", auth="alice", body={"name": "Alice2"}, expect=200),
            S("change password without oldPassword", "PATCH", U + "/{aliceId}", auth="alice",
              body={"password": "newpass123", "passwordConfirm": "newpass123"}, expect=400),
            S("change password wrong oldPassword", "PATCH", U + "/{aliceId}", auth="alice",
              body={"oldPassword": "bad", "password": "newpass123", "passwordConfirm": "newpass123"}, expect=400),
            S("change password ok", "PATCH", U + "/{aliceId}", auth="alice",
              body={"oldPassword": "pass12345", "password": "newpass123", "passwordConfirm": "newpass123"},
              expect=200),
            S("old token invalid after password change", "POST", A + "/auth-refresh", auth="alice", expect=401),
            S("login with new password", "POST", A + "/auth-with-password",
              body={"identity": "alice@example.com", "password": "newpass123"}, expect=200,
              save={"alice2": "$.token"}),
            S("user sets verified on self", "PATCH", U + "/{aliceId}", auth="alice2", body={"verified": True}),
            S("user changes email directly", "PATCH", U + "/{aliceId}", auth="alice2",
              body={"email": "alice3@example.com"}),
            S("superuser changes password without old", "PATCH", U + "/{bobId}", auth="superuser",
              body={"password": "bobnew1234", "passwordConfirm": "bobnew1234"}, expect=200),
            S("impersonate", "POST", A + "/impersonate/{bobId}", auth="superuser", body={"duration": 60},
              expect=200),
            S("impersonate as user", "POST", A + "/impersonate/{bobId}", auth="alice2", body={}, expect=403),
            S("delete other user", "DELETE", U + "/{bobId}", auth="alice2", expect=404),
            S("delete self", "DELETE", U + "/{aliceId}", auth="alice2", expect=204),
            S("token of deleted user", "POST", A + "/auth-refresh", auth="alice2", expect=401),
        ],
    },
]
