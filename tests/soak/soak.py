"""The soak: mixed load against a running keepd for a while, with
realtime (SSE) clients connecting and leaving, while the daemon's RSS and
open file descriptors are sampled from /proc. Fails on any 5xx, any
answer a step did not expect, a transport error, or RSS/FDs that grow
after the warm-up.

    python3 soak.py --base URL --pid PID --email E --password P --seconds S

Run through tests/soak/run.sh, which starts the daemon on a fresh data dir.
Standard library only.
"""

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import threading
import time
import urllib.parse
import uuid

MIB = 1024 * 1024


class Failure(Exception):
    pass


class Api:
    """One keep-alive connection (a client of the soak is one of these)."""

    def __init__(self, base, token=None):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.token = token
        self.conn = None

    def call(self, method, path, body=None, ctype="application/json", expect=(200,)):
        headers = {}
        if self.token:
            headers["Authorization"] = self.token
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        if body is not None:
            headers["Content-Type"] = ctype
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                raw = r.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server may close an idle keep-alive connection; a
                # fresh connection retries once, and twice is an error.
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        if r.status >= 500:
            raise Failure(f"{method} {path} -> {r.status}: {raw[:300]!r}")
        if r.status not in expect:
            raise Failure(f"{method} {path} -> {r.status} (expected {expect}): {raw[:300]!r}")
        if not raw or not r.getheader("Content-Type", "").startswith("application/json"):
            return raw
        return json.loads(raw)


def multipart(fields, files):
    boundary = "soak" + uuid.uuid4().hex
    out = bytearray()
    for k, v in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
    for k, (name, data) in files.items():
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{name}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = {}
        self.errors = []

    def count(self, op):
        with self.lock:
            self.ops[op] = self.ops.get(op, 0) + 1

    def fail(self, msg):
        with self.lock:
            self.errors.append(msg)


def load_worker(args, su_token, user_email, stop, stats, seed):
    rnd = random.Random(seed)
    api = Api(args.base, su_token)
    mine = []
    coll = "/api/collections/soak_items/records"
    while not stop.is_set():
        try:
            r = rnd.random()
            if r < 0.25 or not mine:
                rec = api.call("POST", coll, {"title": f"t{rnd.randrange(10**6)}", "n": rnd.random()})
                mine.append(rec["id"])
                stats.count("create")
            elif r < 0.35:
                data = os.urandom(rnd.randrange(1, 64 * 1024))
                body, ct = multipart({"title": "with file"}, {"doc": ("blob.bin", data)})
                rec = api.call("POST", coll, body, ctype=ct)
                mine.append(rec["id"])
                got = api.call("GET", f"/api/files/soak_items/{rec['id']}/{rec['doc']}")
                if got != data:
                    raise Failure("a file came back different")
                stats.count("upload")
            elif r < 0.50:
                rid = rnd.choice(mine)
                api.call("PATCH", f"{coll}/{rid}", {"n": rnd.random(), "title": "updated"})
                stats.count("update")
            elif r < 0.65:
                api.call("GET", f"{coll}?perPage=20&sort=-n&filter=" + urllib.parse.quote("n >= 0.5"))
                stats.count("list")
            elif r < 0.78:
                api.call("GET", f"{coll}/{rnd.choice(mine)}")
                stats.count("view")
            elif r < 0.86:
                reqs = [{"method": "POST", "url": coll, "body": {"title": "batch", "n": i}} for i in range(5)]
                out = api.call("POST", "/api/batch", {"requests": reqs})
                if len(out) != 5 or any(o["status"] != 200 for o in out):
                    raise Failure(f"batch answered {out!r:.300}")
                mine.extend(o["body"]["id"] for o in out)
                stats.count("batch")
            elif r < 0.90:
                login = Api(args.base)
                a = login.call("POST", "/api/collections/users/auth-with-password",
                               {"identity": user_email, "password": args.password})
                if not a.get("token"):
                    raise Failure("login without a token")
                login.call("POST", "/api/collections/users/auth-with-password",
                           {"identity": user_email, "password": "wrong-" + args.password},
                           expect=(400,))
                # A successful login resets the failure count (no lockout).
                login.call("POST", "/api/collections/users/auth-with-password",
                           {"identity": user_email, "password": args.password})
                login.conn and login.conn.close()
                stats.count("login")
            else:
                while len(mine) > 30:
                    api.call("DELETE", f"{coll}/{mine.pop(0)}", expect=(204,))
                    stats.count("delete")
                if mine and rnd.random() < 0.5:
                    api.call("DELETE", f"{coll}/{mine.pop(0)}", expect=(204,))
                    stats.count("delete")
        except Failure as e:
            stats.fail(str(e))
        except Exception as e:  # transport errors are failures too
            stats.fail(f"{type(e).__name__}: {e}")
            api.conn = None
        if len(stats.errors) > 20:
            stop.set()
    for rid in mine:
        try:
            api.call("DELETE", f"{coll}/{rid}", expect=(204,))
        except Exception as e:
            stats.fail(f"cleanup: {e}")
    if api.conn:
        api.conn.close()


def sse_worker(args, stop, stats, seed):
    """Realtime clients connecting, subscribing, reading a while, leaving."""
    rnd = random.Random(seed)
    u = urllib.parse.urlsplit(args.base)
    while not stop.is_set():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        try:
            conn.request("GET", "/api/realtime", headers={"Accept": "text/event-stream"})
            r = conn.getresponse()
            if r.status != 200:
                raise Failure(f"GET /api/realtime -> {r.status}")
            client_id = None
            while client_id is None:
                line = r.fp.readline()
                if not line:
                    raise Failure("event stream closed before PB_CONNECT")
                if line.startswith(b"data:"):
                    client_id = json.loads(line[5:])["clientId"]
            sub = Api(args.base)
            sub.call("POST", "/api/realtime",
                     {"clientId": client_id, "subscriptions": ["soak_items"]}, expect=(204,))
            sub.conn.close()
            stats.count("sse_connect")
            until = time.monotonic() + rnd.uniform(0.2, 3.0)
            r.fp.raw._sock.settimeout(0.5)
            while time.monotonic() < until and not stop.is_set():
                try:
                    line = r.fp.readline()
                except (TimeoutError, OSError):
                    continue
                if not line:
                    raise Failure("event stream closed by the server")
                if line.startswith(b"event:soak_items"):
                    stats.count("sse_event")
        except Failure as e:
            stats.fail(str(e))
        except Exception as e:
            stats.fail(f"sse {type(e).__name__}: {e}")
        finally:
            conn.close()


def proc_sample(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--email", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--sse", type=int, default=3)
    ap.add_argument("--rss-factor", type=float, default=1.25)
    ap.add_argument("--rss-slack-mib", type=float, default=8)
    ap.add_argument("--fd-slack", type=int, default=8)
    args = ap.parse_args()

    su = Api(args.base)
    tok = su.call("POST", "/api/collections/_superusers/auth-with-password",
                  {"identity": args.email, "password": args.password})["token"]
    su.token = tok
    su.call("PATCH", "/api/settings", {"batch": {"enabled": True, "maxRequests": 50},
                                        "rateLimits": {"enabled": False}})
    su.call("POST", "/api/collections", {
        "name": "soak_items", "type": "base",
        "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"},
                   {"name": "doc", "type": "file", "maxSelect": 1, "maxSize": 1048576}],
    })
    user_email = "soak@example.com"
    su.call("POST", "/api/collections/users/records",
            {"email": user_email, "password": args.password,
             "passwordConfirm": args.password, "verified": True})

    start_rss, start_fds = proc_sample(args.pid)
    stop = threading.Event()
    stats = Stats()
    threads = [threading.Thread(target=load_worker, args=(args, tok, user_email, stop, stats, i))
               for i in range(args.workers)]
    threads += [threading.Thread(target=sse_worker, args=(args, stop, stats, 100 + i))
                for i in range(args.sse)]
    for t in threads:
        t.start()
    samples = []  # (elapsed, rss, fds)
    t0 = time.monotonic()
    warmup = max(20.0, args.seconds * 0.25)
    while time.monotonic() - t0 < args.seconds and not stop.is_set():
        time.sleep(2)
        rss, fds = proc_sample(args.pid)
        samples.append((time.monotonic() - t0, rss, fds))
    stop.set()
    for t in threads:
        t.join(60)
    time.sleep(1.5)  # the SSE connections closed last wind down
    idle_rss, idle_fds = proc_sample(args.pid)

    after = [s for s in samples if s[0] >= warmup]
    if len(after) < 3:
        after = samples[len(samples) // 2:]
    med_rss = statistics.median(s[1] for s in after)
    med_fds = statistics.median(s[2] for s in after)
    end_rss = max(s[1] for s in samples[-3:])
    end_fds = max(s[2] for s in samples[-3:])
    total = sum(stats.ops.values())
    print(f"soak: {args.seconds:.0f}s, {total} operations: "
          + ", ".join(f"{k} {v}" for k, v in sorted(stats.ops.items())))
    print(f"soak: RSS start {start_rss / MIB:.1f} MiB, post-warm-up median {med_rss / MIB:.1f} MiB, "
          f"end {end_rss / MIB:.1f} MiB, idle after {idle_rss / MIB:.1f} MiB")
    print(f"soak: FDs start {start_fds}, post-warm-up median {med_fds:.0f}, end {end_fds}, "
          f"idle after {idle_fds}")
    problems = list(stats.errors[:20])
    rss_cap = args.rss_factor * med_rss + args.rss_slack_mib * MIB
    if end_rss > rss_cap:
        problems.append(f"RSS grew: end {end_rss / MIB:.1f} MiB > {rss_cap / MIB:.1f} MiB")
    fd_cap = args.rss_factor * med_fds + args.fd_slack
    if end_fds > fd_cap:
        problems.append(f"FDs grew: end {end_fds} > {fd_cap:.0f}")
    # The reader pool and the server's workers open what they need during
    # the warm-up; once the clients have left nothing more may stay open.
    if idle_fds > med_fds + args.fd_slack:
        problems.append(f"FDs not released: {idle_fds} idle after the load, median {med_fds:.0f} under it")
    for k in ("create", "update", "list", "view", "delete", "upload", "batch", "login", "sse_connect"):
        if stats.ops.get(k, 0) == 0:
            problems.append(f"no {k} ran")
    if problems:
        for p in problems:
            print(f"soak: FAIL: {p}", file=sys.stderr)
        sys.exit(1)
    print("soak: ok")


if __name__ == "__main__":
    main()
