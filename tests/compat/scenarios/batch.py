from ._common import S, records, setup_tags_and_posts

P = "/api/collections/posts/records"
T = "/api/collections/tags/records"
ENABLE = {"batch": {"enabled": True, "maxRequests": 50, "timeout": 3, "maxBodySize": 0}}

SCENARIOS = [
    {
        "id": "batch",
        "title": "batch API: disabled, enable via settings, success, rollback, limits",
        "steps": setup_tags_and_posts() + [
            S("batch while disabled", "POST", "/api/batch", body={"requests": [
                {"method": "POST", "url": P, "body": {"title": "Disabled"}}]}, expect=403),
            S("enable batch via settings", "PATCH", "/api/settings", body=ENABLE, expect=200),
            S("settings as guest", "GET", "/api/settings", auth="guest", expect=401),
            S("batch success", "POST", "/api/batch", body={"requests": [
                {"method": "POST", "url": P, "body": {"title": "Batch one", "n": 1}},
                {"method": "POST", "url": P + "?expand=tag", "body": {"title": "Batch two", "tag": "{t1}"}},
                {"method": "PATCH", "url": T + "/{t2}", "body": {"rank": 20}},
                {"method": "DELETE", "url": T + "/{t3}"},
                {"method": "PUT", "url": P, "body": {"id": "upsert000000001", "title": "Upserted"}},
                {"method": "PUT", "url": P, "body": {"id": "upsert000000001", "title": "Upserted again"}},
            ]}, expect=200),
            S("state after success", "GET", P, query={"sort": "title", "fields": "id,title,n,tag"}, expect=200),
            S("tags after success", "GET", T, query={"sort": "title"}, expect=200),
            S("batch rollback on validation failure", "POST", "/api/batch", body={"requests": [
                {"method": "POST", "url": P, "body": {"title": "Rolled back"}},
                {"method": "PATCH", "url": T + "/{t1}", "body": {"rank": 99}},
                {"method": "POST", "url": P, "body": {"title": "x"}},
            ]}, expect=400),
            S("nothing persisted after rollback", "GET", P, query={"sort": "title", "fields": "title"},
              expect=200),
            S("tag unchanged after rollback", "GET", T + "/{t1}", expect=200),
            S("batch with missing record", "POST", "/api/batch", body={"requests": [
                {"method": "POST", "url": P, "body": {"title": "Before missing"}},
                {"method": "DELETE", "url": P + "/nope"},
            ]}, expect=400),
            S("batch with unknown collection", "POST", "/api/batch", body={"requests": [
                {"method": "POST", "url": "/api/collections/nope/records", "body": {}}]}, expect=400),
            S("batch with unsupported url", "POST", "/api/batch", body={"requests": [
                {"method": "GET", "url": P}]}, expect=400),
            S("batch empty", "POST", "/api/batch", body={"requests": []}, expect=400),
            S("batch missing requests", "POST", "/api/batch", body={}, expect=400),
            S("batch too many requests", "POST", "/api/batch", body={"requests": [
                {"method": "POST", "url": P, "body": {"title": f"Many {i}"}} for i in range(51)]}, expect=400),
            S("batch as guest respects rules (posts createRule '')", "POST", "/api/batch", auth="guest",
              body={"requests": [{"method": "POST", "url": P, "body": {"title": "Guest batch"}}]}, expect=200),
            S("batch as guest on superuser-only collection", "POST", "/api/batch", auth="guest",
              body={"requests": [{"method": "POST", "url": T, "body": {"title": "Guest tag"}}]}, expect=400),
            S("batch malformed body", "POST", "/api/batch", raw="{", headers={"Content-Type": "application/json"},
              expect=400),
            S("final posts", "GET", P, query={"sort": "title", "fields": "title"}, expect=200),
        ],
    },
]
