"""Load for tests/bench/list_cache.sh: sets up a collection, then (between
the two marks the shell script toggles callgrind on) sends N list requests
of one shape. Stdlib only."""
import http.client, json, subprocess, sys, time

port, n, mode, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]


def req(c, m, p, body=None, tok=None):
    h = {"Content-Type": "application/json"}
    if tok:
        h["Authorization"] = tok
    c.request(m, p, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    return r.status, r.read()


for _ in range(600):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port)
        req(c, "GET", "/api/health")
        break
    except Exception:
        time.sleep(0.1)
st, d = req(c, "POST", "/api/collections/_superusers/auth-with-password",
            {"identity": "a@b.co", "password": "correct horse battery"})
su = json.loads(d)["token"]
st, d = req(c, "PATCH", "/api/settings", {"rateLimits": {"enabled": False}}, su)
assert st == 200, (st, d)
st, d = req(c, "POST", "/api/collections", {
    "name": "posts", "type": "base",
    "listRule": "@request.auth.id != '' || public = true", "createRule": "",
    "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"},
               {"name": "public", "type": "bool"}]}, su)
assert st == 200, (st, d)
for i in range(200):
    st, d = req(c, "POST", "/api/collections/posts/records",
                {"title": "post number %d" % i, "n": i, "public": i % 2 == 0})
    assert st == 200, (st, d)
st, d = req(c, "POST", "/api/collections/users/records",
            {"email": "u@b.co", "password": "pass-123456789", "passwordConfirm": "pass-123456789"})
assert st == 200, (st, d)
st, d = req(c, "POST", "/api/collections/users/auth-with-password",
            {"identity": "u@b.co", "password": "pass-123456789"})
user = json.loads(d)["token"]

tok = user if mode.startswith("user") else None
base = "/api/collections/posts/records?sort=-n&perPage=20&filter=n%3E10"
c2 = http.client.HTTPConnection("127.0.0.1", port)
req(c2, "GET", base, tok=tok)  # warm: the same connection, templates compiled
subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
for i in range(n):
    if mode.endswith("distinct"):
        # Every query distinct: a miss, then an insert (and evictions).
        path = base + "%26%26title!%3D%27x" + str(i) + "%27"
    else:
        path = base
    st, _ = req(c2, "GET", path, tok=tok)
    assert st == 200, st
subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
