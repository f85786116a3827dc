#!/usr/bin/env bash
# DAST: schemathesis fuzzes a live keepd against its OpenAPI description
# (openapi/keepd.yaml), bounded in time. Fails on any 5xx, a status code
# the description does not declare for the route, a wrong content type or
# a body not matching the declared schema (PocketBase's `{status, message,
# data}` for every error).
#
#   tests/dast/run.sh [extra schemathesis args...]
#
# Env:
#   KEEPD_BIN          the daemon (default target/debug/keepd, built if missing)
#   DAST_SECONDS       time budget of the fuzzing as the superuser (default 120)
#   DAST_DEVICE_SECONDS  then of the sync device routes as a device (default 30)
#   DAST_SEED          seed (default 1; a run is reproducible with it)
#   DAST_VENV          venv (default tests/dast/.venv, made from requirements.txt)
#   DAST_KEEP=1        keep the data dir, the daemon's log and the report
#
# The daemon runs on a fresh data dir as a sync hub (so the sync routes are
# fuzzed too) with a superuser, a collection of every common field kind
# (synced), a record with a file in it, a `users` record and an enrolled
# device.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${DAST_VENV:-$HERE/.venv}"
PY="${PYTHON:-python3}"
SECONDS_BUDGET="${DAST_SECONDS:-120}"
SEED="${DAST_SEED:-1}"
DEVICE_SECONDS="${DAST_DEVICE_SECONDS:-30}"
DEVICE_ROUTES='^/api/sync/(enrol|push|pull|snapshot|schema|blobs/)' 

stamp="$VENV/.requirements.sha"
want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/schemathesis" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
    echo "$want" > "$stamp"
fi

KEEPD_BIN="${KEEPD_BIN:-$ROOT/target/debug/keepd}"
if [ ! -x "$KEEPD_BIN" ]; then
    (cd "$ROOT" && cargo build --locked -p keepd)
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/keepd-dast.XXXXXX")"
chmod 700 "$WORK"
PID=""
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    if [ "${DAST_KEEP:-0}" = 1 ]; then echo "dast: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
EMAIL="dast@example.com"
PASSWORD="Dast-Quartz-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"

"$KEEPD_BIN" superuser upsert --dir "$WORK/data" "$EMAIL" "$PASSWORD" >/dev/null
# Loopback is a trusted proxy: the device routes (HTTPS only) count it as
# TLS terminated in front of the daemon, and are fuzzed over plain HTTP.
KEEPD_SYNC_ROLE=hub KEEPD_TRUSTED_PROXIES=127.0.0.1/32 "$KEEPD_BIN" serve --dir "$WORK/data" --http "127.0.0.1:$PORT" >"$WORK/keepd.log" 2>&1 &
PID=$!

# The fixtures, through the API itself.
eval "$("$VENV/bin/python" - "$BASE" "$EMAIL" "$PASSWORD" <<'PYEOF'
import json, shlex, sys, time, urllib.request, urllib.error
base, email, password = sys.argv[1:4]

def call(method, path, body=None, token=None, ctype="application/json"):
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", ctype)
    if token:
        req.add_header("Authorization", token)
    with urllib.request.urlopen(req, timeout=10) as r:
        raw = r.read()
        return json.loads(raw) if raw else None

for _ in range(100):
    try:
        call("GET", "/api/health")
        break
    except Exception:
        time.sleep(0.1)
else:
    sys.exit("dast: keepd did not answer /api/health")

tok = call("POST", "/api/collections/_superusers/auth-with-password",
           {"identity": email, "password": password})["token"]
users = call("GET", "/api/collections/users", token=tok)
user = call("POST", "/api/collections/users/records",
            {"email": "member@example.com", "password": password, "passwordConfirm": password,
             "verified": True}, token=tok)
call("POST", "/api/collections", {
    "name": "dast_posts", "type": "base",
    "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
    "fields": [
        {"name": "title", "type": "text", "max": 200},
        {"name": "n", "type": "number"},
        {"name": "flag", "type": "bool"},
        {"name": "when", "type": "date"},
        {"name": "mail", "type": "email"},
        {"name": "site", "type": "url"},
        {"name": "kind", "type": "select", "values": ["a", "b", "c"], "maxSelect": 2},
        {"name": "meta", "type": "json"},
        {"name": "docs", "type": "file", "maxSelect": 3, "maxSize": 1048576},
        {"name": "owner", "type": "relation", "collectionId": users["id"], "maxSelect": 1},
    ],
}, token=tok)
# A record with a PNG in it (thumbs are made of images).
png = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5f6e0"
    "5c0000000049454e44ae426082")
boundary = "dastfixture9f3"
body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nfixture\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"owner\"\r\n\r\n{user['id']}\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"docs\"; filename=\"dot.png\"\r\n"
        f"Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{boundary}--\r\n".encode()
rec = call("POST", "/api/collections/dast_posts/records", body, token=tok,
           ctype=f"multipart/form-data; boundary={boundary}")
# A synced collection and an enrolled device, for the device routes.
call("PUT", "/api/sync/collections", [{"collection": "dast_posts", "direction": "both"}], token=tok)
dev = call("POST", "/api/sync/devices", {"name": "dast"}, token=tok)
secret = "dast-device-secret-" + "7" * 24
call("POST", "/api/sync/enrol", {"token": dev["token"], "secret": secret})
for k, v in {"KEEPD_DAST_DEVICE": f"KeepdDevice {dev['device']['id']}.{secret}",
             "KEEPD_DAST_TOKEN": tok, "KEEPD_DAST_COLLECTION": "dast_posts",
             "KEEPD_DAST_RECORD": rec["id"], "KEEPD_DAST_FILE": rec["docs"][0]}.items():
    print(f"export {k}={shlex.quote(v)}")
PYEOF
)"

echo "dast: keepd $("$KEEPD_BIN" --version 2>/dev/null | head -1) on $BASE; ${SECONDS_BUDGET}s, seed $SEED"
rc=0
st() {
    (cd "$HERE" && "$VENV/bin/schemathesis" --config-file "$HERE/schemathesis.toml" run \
        "$ROOT/openapi/keepd.yaml" --url "$BASE" --seed "$SEED" --workers 1 \
        --suppress-health-check all "$@") 2>&1 | tee -a "$WORK/schemathesis.log"
}
# As the superuser: every operation but the device routes of sync.
st --max-time "$SECONDS_BUDGET" --exclude-path-regex "$DEVICE_ROUTES" "$@" || rc=$?
# As an enrolled device: the device routes.
(export KEEPD_DAST_TOKEN="$KEEPD_DAST_DEVICE"
    st --max-time "$DEVICE_SECONDS" --include-path-regex "$DEVICE_ROUTES" "$@") || rc=$?

if ! kill -0 "$PID" 2>/dev/null; then
    echo "dast: FAIL: keepd died during the run; its log:" >&2
    tail -50 "$WORK/keepd.log" >&2
    rc=1
fi
if grep -q "panicked" "$WORK/keepd.log"; then
    echo "dast: FAIL: keepd logged a panic:" >&2
    grep -A5 "panicked" "$WORK/keepd.log" | head -40 >&2
    rc=1
fi
cases="$(sed -n 's/^ *\([0-9][0-9]*\) generated.*/\1/p' "$WORK/schemathesis.log" | awk '{s+=$1} END {print s}')"
echo "dast: ${cases:-?} schemathesis cases run in ${SECONDS_BUDGET}s + ${DEVICE_SECONDS}s (seed $SEED)"
if [ "$rc" != 0 ]; then
    DAST_KEEP=1
    echo "dast: FAIL (exit $rc)" >&2
fi
exit "$rc"
