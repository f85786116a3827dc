from ._common import S, records, setup_tags_and_posts

P = records("posts")
C = "/api/collections"
JSON = {"Content-Type": "application/json"}

SCENARIOS = [
    {
        "id": "http_errors",
        "title": "malformed bodies, content types, oversized bodies, unknown routes/methods",
        "steps": setup_tags_and_posts() + [
            S("malformed JSON on record create", "POST", P, raw='{"title": "abc",', headers=JSON, expect=400),
            S("malformed JSON on record update", "POST", P, body={"title": "Target"}, expect=200,
              save={"p1": "$.id"}),
            S("malformed JSON update", "PATCH", P + "/{p1}", raw="{nope", headers=JSON, expect=400),
            S("malformed JSON on collection create", "POST", C, raw="{", headers=JSON, expect=400),
            S("JSON array instead of object", "POST", P, raw='[{"title": "abc"}]', headers=JSON, expect=400),
            S("JSON string instead of object", "POST", P, raw='"abc"', headers=JSON, expect=400),
            S("JSON null body", "POST", P, raw="null", headers=JSON),
            S("trailing garbage after JSON", "POST", P, raw='{"title": "Trailing"} xyz', headers=JSON),
            S("empty body with JSON content type", "POST", P, raw="", headers=JSON, expect=400),
            S("no body at all", "POST", P, expect=400),
            S("text/plain with JSON text", "POST", P, raw='{"title": "Plain text"}',
              headers={"Content-Type": "text/plain"}),
            S("no content type with JSON text", "POST", P, raw='{"title": "No ctype"}'),
            S("urlencoded form", "POST", P, raw="title=Urlencoded+ok&n=4",
              headers={"Content-Type": "application/x-www-form-urlencoded"}),
            S("application/json with charset", "POST", P, raw='{"title": "With charset"}',
              headers={"Content-Type": "application/json; charset=utf-8"}, expect=200),
            S("wrong JSON type for field (object to text)", "POST", P, body={"title": {"a": 1}}),
            S("wrong JSON type (array to number)", "POST", P, body={"title": "Arr num", "n": [1, 2]}),
            S("oversized body (> 32 MiB)", "POST", C, headers=JSON,
              raw_generate={"prefix": '{"name": "big", "x": "', "fill": "x", "size": (32 << 20) + 1024,
                            "suffix": '"}'}, expect=413),
            S("oversized record body (tags: no field raises the 32 MiB limit)", "POST", records("tags"),
              headers=JSON, raw_generate={"prefix": '{"title": "', "fill": "x", "size": (32 << 20),
                                          "suffix": '"}'}, expect=413),
            S("record body over 32 MiB but under the posts limit (32 MiB + 5 MiB editor + 100 json)",
              "POST", P, headers=JSON, raw_generate={"prefix": '{"title": "', "fill": "x", "size": (33 << 20),
                                                      "suffix": '"}'}, expect=400),
            S("server still fine after 413", "GET", P, query={"fields": "title", "sort": "title"}, expect=200),
            S("PUT on records (no such route)", "PUT", P + "/{p1}", body={"title": "x"}),
            S("POST on record id (no such route)", "POST", P + "/{p1}", body={"title": "x"}),
            S("unknown sub-route", "GET", C + "/posts/nope"),
            S("trailing slash on records", "GET", P + "/", query={"fields": "title", "sort": "title"}),
            S("double slash", "GET", "/api//health"),
            S("OPTIONS preflight", "OPTIONS", P, headers={"Origin": "http://example.com",
                                                          "Access-Control-Request-Method": "POST"}),
            S("bad Authorization token", "GET", P, auth="guest", headers={"Authorization": "garbage"},
              query={"fields": "title", "sort": "title"}),
            S("bad Authorization on superuser-only route", "GET", C, auth="guest",
              headers={"Authorization": "garbage"}, expect=401),
            S("expired-looking JWT", "GET", C, auth="guest", headers={
                "Authorization": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpZCI6IngiLCJ0eXBlIjoiYXV0aCIsImV4cCI6MX0."
                                 "c2lnbmF0dXJl"}, expect=401),
            S("list records after all", "GET", P, query={"fields": "title,n", "sort": "title"}, expect=200),
        ],
    },
]
