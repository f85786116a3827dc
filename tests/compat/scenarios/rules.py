from ._common import S, records

N = records("notes")
L = records("locked")
U = records("users")
A = "/api/collections/users"


def user(name):
    return [
        S(f"setup: user {name}", "POST", U, auth="superuser", body={
            "email": f"{name}@example.com", "password": "pass12345", "passwordConfirm": "pass12345",
            "name": name}, expect=200, save={f"{name}Id": "$.id"}),
        S(f"setup: login {name}", "POST", A + "/auth-with-password", auth="guest",
          body={"identity": f"{name}@example.com", "password": "pass12345"}, expect=200, save={name: "$.token"}),
    ]


SCENARIOS = [
    {
        "id": "rules",
        "title": "API rules: null → 403, failing view → 404, failing create → 400, list filtering",
        "steps": user("alice") + user("bob") + [
            S("setup: notes collection", "POST", "/api/collections", body={
                "name": "notes", "type": "base",
                "listRule": "public = true || owner = @request.auth.id",
                "viewRule": "public = true || owner = @request.auth.id",
                "createRule": "@request.auth.id != '' && owner = @request.auth.id && "
                              "@request.body.title != 'forbidden'",
                "updateRule": "owner = @request.auth.id && @request.body.owner:isset = false",
                "deleteRule": None,
                "fields": [{"name": "title", "type": "text", "required": True},
                           {"name": "public", "type": "bool"},
                           {"name": "owner", "type": "relation", "collectionId": "_pb_users_auth_",
                            "maxSelect": 1}]}, expect=200),
            S("setup: locked collection (all rules null)", "POST", "/api/collections", body={
                "name": "locked", "fields": [{"name": "title", "type": "text"}]}, expect=200),
            S("setup: locked record", "POST", L, body={"title": "secret"}, expect=200, save={"l1": "$.id"}),
            S("create as alice", "POST", N, auth="alice", body={"title": "a private", "owner": "{aliceId}"},
              expect=200, save={"na": "$.id"}),
            S("create public as alice", "POST", N, auth="alice",
              body={"title": "a public", "public": True, "owner": "{aliceId}"}, expect=200, save={"nap": "$.id"}),
            S("create as bob", "POST", N, auth="bob", body={"title": "b private", "owner": "{bobId}"}, expect=200,
              save={"nb": "$.id"}),
            S("create as guest (rule fails)", "POST", N, auth="guest", body={"title": "g", "owner": "{aliceId}"},
              expect=400),
            S("create for someone else (rule fails)", "POST", N, auth="bob",
              body={"title": "spoof", "owner": "{aliceId}"}, expect=400),
            S("create with forbidden body value", "POST", N, auth="alice",
              body={"title": "forbidden", "owner": "{aliceId}"}, expect=400),
            S("create invalid data that also fails rule", "POST", N, auth="guest", body={"owner": "{aliceId}"}),
            S("list as guest (filtered)", "GET", N, auth="guest", query={"sort": "title", "fields": "title"},
              expect=200),
            S("list as alice", "GET", N, auth="alice", query={"sort": "title", "fields": "title"}, expect=200),
            S("list as bob", "GET", N, auth="bob", query={"sort": "title", "fields": "title"}, expect=200),
            S("list as superuser", "GET", N, query={"sort": "title", "fields": "title"}, expect=200),
            S("list as alice with filter", "GET", N, auth="alice", query={"filter": "public = false",
                                                                          "fields": "title"}, expect=200),
            S("view own", "GET", N + "/{na}", auth="alice", expect=200),
            S("view other's private (404)", "GET", N + "/{na}", auth="bob", expect=404),
            S("view other's private as guest (404)", "GET", N + "/{na}", auth="guest", expect=404),
            S("view public as guest", "GET", N + "/{nap}", auth="guest", expect=200),
            S("update own", "PATCH", N + "/{na}", auth="alice", body={"title": "a private 2"}, expect=200),
            S("update own changing owner (rule fails)", "PATCH", N + "/{na}", auth="alice",
              body={"owner": "{bobId}"}, expect=404),
            S("update other's (404)", "PATCH", N + "/{na}", auth="bob", body={"title": "hack"}, expect=404),
            S("update other's public (visible but rule fails)", "PATCH", N + "/{nap}", auth="bob",
              body={"title": "hack"}),
            S("update as guest", "PATCH", N + "/{nap}", auth="guest", body={"title": "hack"}),
            S("delete (null rule) as alice", "DELETE", N + "/{na}", auth="alice", expect=403),
            S("delete (null rule) as guest", "DELETE", N + "/{na}", auth="guest", expect=403),
            S("delete as superuser", "DELETE", N + "/{nb}", expect=204),
            S("locked: list as guest", "GET", L, auth="guest", expect=403),
            S("locked: list as user", "GET", L, auth="alice", expect=403),
            S("locked: view as user", "GET", L + "/{l1}", auth="alice", expect=403),
            S("locked: view missing as user", "GET", L + "/nope", auth="alice", expect=403),
            S("locked: create as user", "POST", L, auth="alice", body={"title": "x"}, expect=403),
            S("locked: update as user", "PATCH", L + "/{l1}", auth="alice", body={"title": "x"}, expect=403),
            S("locked: delete as user", "DELETE", L + "/{l1}", auth="alice", expect=403),
            S("locked: superuser list", "GET", L, query={"fields": "title"}, expect=200),
            S("guest filtering on hidden-by-rule data", "GET", N, auth="guest",
              query={"filter": "owner = '{aliceId}'", "fields": "title", "sort": "title"}, expect=200),
            S("user filter by @request.auth (superuser-only in filter param)", "GET", N, auth="bob",
              query={"filter": "owner = @request.auth.id", "fields": "title"}, expect=403),
            S("user sort by @request (superuser-only)", "GET", N, auth="bob",
              query={"sort": "@request.auth.id"}),
            S("guest uses superuser-only filter field", "GET", N, auth="guest",
              query={"filter": "@collection.users.email != ''"}),
            S("users: email hidden for others unless emailVisibility", "PATCH", "/api/collections/users",
              body={"listRule": "", "viewRule": ""}, expect=200),
            S("users list as alice (emails)", "GET", U, auth="alice", query={"sort": "name",
                                                                            "fields": "name,email"}, expect=200),
            S("bob sets emailVisibility", "PATCH", U + "/{bobId}", auth="bob", body={"emailVisibility": True},
              expect=200),
            S("users list as alice after", "GET", U, auth="alice", query={"sort": "name", "fields": "name,email"},
              expect=200),
            S("filter on email by guest", "GET", U, auth="guest", query={"filter": "email ~ 'example'",
                                                                         "fields": "name"}, expect=200),
        ],
    },
]
