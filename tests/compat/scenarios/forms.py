"""Form bodies (multipart and urlencoded) on JSON endpoints, and the
redirect of unclean paths."""
from ._common import S, records

SU = "/api/collections/_superusers/auth-with-password"
A = "/api/collections/users"
URLENC = {"Content-Type": "application/x-www-form-urlencoded"}
PW = "Zebra-Quartz-7731"
# The harness's superuser (harness/server.py).
SU_EMAIL = "root@example.com"
SU_PASSWORD = "r00t-Passw0rd!"

SCENARIOS = [
    {
        "id": "form_bodies",
        "title": "logins and other JSON endpoints with multipart and urlencoded bodies",
        "auth": "guest",
        "steps": [
            S("superuser login multipart", "POST", SU,
              form={"identity": SU_EMAIL, "password": SU_PASSWORD}, expect=200),
            S("superuser login urlencoded", "POST", SU, headers=URLENC,
              raw="identity=root%40example.com&password=r00t-Passw0rd%21", expect=200),
            S("superuser login multipart wrong password", "POST", SU,
              form={"identity": SU_EMAIL, "password": "wrong-password-1"}, expect=400),
            S("signup", "POST", records("users"), auth="superuser",
              body={"email": "form@example.com", "password": PW, "passwordConfirm": PW}, expect=200,
              save={"uid": "$.id"}),
            S("login @jsonPayload over form values", "POST", A + "/auth-with-password",
              form={"identity": "nobody@example.com",
                    "@jsonPayload": '{"identity": "form@example.com", "password": "%s"}' % PW},
              expect=200),
            S("login repeated key: first value", "POST", A + "/auth-with-password",
              form={"identity": ["form@example.com", "other@example.com"], "password": PW}, expect=200),
            S("login repeated key: second value unused", "POST", A + "/auth-with-password",
              form={"identity": ["other@example.com", "form@example.com"], "password": PW}, expect=400),
            S("login identity from the query (urlencoded)", "POST",
              A + "/auth-with-password?identity=form%40example.com", headers=URLENC,
              raw="password=" + PW, expect=200),
            S("login: multipart value after the query's", "POST",
              A + "/auth-with-password?identity=other%40example.com",
              form={"identity": "form@example.com", "password": PW}, expect=400),
            S("login bad @jsonPayload", "POST", A + "/auth-with-password",
              form={"@jsonPayload": '{"identity":'}, expect=400),
            S("login @jsonPayload not an object", "POST", A + "/auth-with-password",
              form={"@jsonPayload": "[1]"}, expect=400),
            S("login @jsonPayload null empties the form", "POST", A + "/auth-with-password",
              form={"identity": "form@example.com", "password": PW, "@jsonPayload": "null"}, expect=400),
            S("login broken multipart", "POST", A + "/auth-with-password",
              headers={"Content-Type": "multipart/form-data; boundary=xyz"}, raw="garbage", expect=400),
            S("request-password-reset form", "POST", A + "/request-password-reset",
              form={"email": "form@example.com"}, expect=204),
            S("request-verification urlencoded", "POST", A + "/request-verification", headers=URLENC,
              raw="email=form%40example.com", expect=204),
            S("confirm-verification form blank token", "POST", A + "/confirm-verification",
              form={"token": ""}, expect=400),
            S("impersonate duration not a number", "POST", A + "/impersonate/{uid}", auth="superuser",
              form={"duration": "abc"}, expect=400),
            S("impersonate duration negative", "POST", A + "/impersonate/{uid}", auth="superuser",
              headers=URLENC, raw="duration=-5", expect=400),
            S("impersonate duration as a JSON string", "POST", A + "/impersonate/{uid}", auth="superuser",
              form={"@jsonPayload": '{"duration": "300"}'}, expect=400),
            S("collection create form", "POST", "/api/collections", auth="superuser",
              form={"name": "formcoll", "type": "base", "listRule": "", "viewRule": "",
                    "createRule": "", "updateRule": "", "deleteRule": ""}, expect=200),
            S("collection update form", "PATCH", "/api/collections/formcoll", auth="superuser",
              form={"listRule": 'id != ""'}, expect=200),
        ],
    },
    {
        "id": "unclean_paths",
        "title": "paths with //, . or .. redirect to the cleaned path, never to another host",
        "auth": "guest",
        "steps": [
            S("backslash then slash", "GET", "/\\/evil.example//api"),
            S("two backslashes", "GET", "/\\\\/evil.example//api"),
            S("leading double slash", "GET", "//evil.example/api"),
            S("query kept", "GET", "/api//health", query={"x": "1"}),
            S("dot segments", "GET", "/api/x/../health"),
            S("single dot", "GET", "/api/./health"),
        ],
    },
]
