#!/usr/bin/env python3
"""Instructions per request, keepd vs PocketBase: a cost the machine's load cannot move.

Called by instructions.sh (Python 3 stdlib only). For each server:
  1. a fresh data dir: superuser, rate limits off, a user, two collections
     (`ibench`: text, number n, unindexed number m, bool, relation; list, view
     and create rules ""; 10,000 records, half with flag=true; `iowned`: view
     rule `owner = @request.auth.id`, 50 records owned by the user), seeded
     natively, then the server is stopped;
  2. the server is started again under `valgrind --tool=callgrind` on that
     data dir: the instructions from exec to its first 200 on /api/health are
     the start-up figure; counting is then off until asked; the user logs in;
  3. per scenario, on one keep-alive connection: a warm-up, then counting on
     (`callgrind_control -i on`, counters zeroed), N1 requests, a dump, N2
     requests, a dump, counting off. Each dump holds the instructions of all
     threads since the previous one, so (dump2 - dump1) / (N2 - N1) is the
     cost of one request with any per-batch fixed cost removed;
  4. repeats that --repeat times and reports the median, and the ratio
     PocketBase / keepd.

For `auth` keepd's share spent in the password hash (argon2id) is read from
the dumps with callgrind_annotate (inclusive cost of the outermost function
whose name contains `argon2::`) and reported apart; PocketBase's binary is
stripped, so its bcrypt share cannot be told apart.

On aarch64 (--aarch64-keepd BIN --qemu QEMU --plugin libinsncount.so): keepd
built for aarch64 runs under qemu-user with an instruction-counting TCG plugin
(tests/bench/qemu-insn/insncount.c: guest instructions of every thread, written
out at exit). qemu cannot be asked for a count while running, so each figure is
two processes on copies of the same seeded data dir (seeded by the amd64 keepd;
SQLite's file format is the same): start, the user's login, a warm-up, N
requests, SIGTERM; (count with N2 - count with N1) / (N2 - N1).

Go and callgrind: with Go's asynchronous preemption (SIGURG) callgrind aborts
(`threads.c: Assertion 'sigNum == ...current_state.sig' failed`), so both
servers run with GODEBUG=asyncpreemptoff=1 (no effect on keepd).
"""

from __future__ import annotations

import argparse
import glob
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

SUPERUSER = ("ibench-admin@example.com", "ibench-admin-pass-123")
USER = ("ibench-user@example.com", "ibench-user-pass-123")
RECORDS = 10_000
IDLE_SECONDS = 3.0
OWNED = 50
LIST_PATH = "/api/collections/ibench/records?" + "filter=" + urllib.parse.quote("(flag=true)") + "&sort=-m&perPage=50"

# scenario -> (what, default N1, N2, quick N1, N2)
SCENARIOS = {
    "get": ("Get by id (guest, view rule \"\")", 200, 1200, 50, 250),
    "authget": ("Get by id (user token, view rule `owner = @request.auth.id`)", 200, 1200, 50, 250),
    "list": ("List: filter matching 5,000 of 10,000, sort on an unindexed number, 50 per page, totals counted",
             10, 60, 2, 7),
    "create": ("Create (POST small JSON)", 100, 600, 20, 120),
    "auth": ("Auth with password (users)", 1, 4, 1, 2),
}


def log(msg: str) -> None:
    print(f"[instructions {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Conn:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, port: int, timeout: float = 600.0):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def req(self, method: str, path: str, body=None, token: str | None = None) -> tuple[int, bytes]:
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = token
        self.c.request(method, path, body=data, headers=headers)
        r = self.c.getresponse()
        return r.status, r.read()

    def must(self, method: str, path: str, body=None, token: str | None = None):
        st, out = self.req(method, path, body, token)
        if st not in (200, 204):
            raise RuntimeError(f"{method} {path}: HTTP {st}: {out[:300]!r}")
        return json.loads(out) if out else None

    def close(self) -> None:
        self.c.close()


def wait_ready(proc: subprocess.Popen, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it answered")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
            c.request("GET", "/api/health")
            st = c.getresponse().status
            c.close()
            if st == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server not ready within {timeout}s")


def stop(proc: subprocess.Popen, grace: float = 60.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Server:
    def __init__(self, key: str, label: str, binary: str, workdir: str, log_file):
        self.key, self.label, self.binary = key, label, binary
        self.dir = os.path.join(workdir, key)
        self.cgdir = os.path.join(workdir, f"cg-{key}")
        self.log = log_file
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.ids: list[str] = []
        self.owned: list[str] = []
        self.user_token = ""
        # --writer-thread: callgrind keeps each thread's counts apart, and
        # the thread that syncs the database (the writer) is reported too
        self.per_thread = False

    def start(self, under_callgrind: bool) -> int | None:
        """Starts the server; under callgrind, returns the instructions from exec to
        its first 200 on /api/health (counting is then switched off)."""
        self.port = free_port()
        if self.key == "hello":
            # The hyper "hello" ceiling (tests/bench/hello): no data dir.
            argv = [self.binary, "--http", f"127.0.0.1:{self.port}"]
        else:
            argv = [self.binary, "serve", "--http", f"127.0.0.1:{self.port}", "--dir", self.dir]
        env = dict(os.environ)
        env.pop("KEEPD_LOG", None)
        env["GODEBUG"] = "asyncpreemptoff=1"
        # The list scenario repeats one URL: without this keepd's answer
        # cache would answer it, and the figure would not be the list's work.
        env["KEEPD_LIST_CACHE_BYTES"] = "0"
        if under_callgrind:
            shutil.rmtree(self.cgdir, ignore_errors=True)
            os.makedirs(self.cgdir)
            argv = ["valgrind", "--tool=callgrind", "--instr-atstart=yes", "--dump-instr=no",
                    f"--callgrind-out-file={self.cgdir}/cg.out"] + \
                (["--separate-threads=yes"] if self.per_thread else []) + argv
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        wait_ready(self.proc, self.port, 600 if under_callgrind else 60)
        if not under_callgrind:
            return None
        startup = read_total(self.dump()) or 0
        self.control("-i", "off")
        return startup

    def setup(self) -> None:
        os.makedirs(self.dir, mode=0o700)
        subprocess.run([self.binary, "superuser", "upsert", SUPERUSER[0], SUPERUSER[1], "--dir", self.dir],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
        self.start(False)
        c = Conn(self.port)
        tok = c.must("POST", "/api/collections/_superusers/auth-with-password",
                     {"identity": SUPERUSER[0], "password": SUPERUSER[1]})["token"]
        c.must("PATCH", "/api/settings", {"batch": {"enabled": True, "maxRequests": 500, "timeout": 60, "maxBodySize": 0},
                                          "rateLimits": {"enabled": False}}, tok)
        users = c.must("GET", "/api/collections/users", token=tok)
        user = c.must("POST", "/api/collections/users/records",
                      {"email": USER[0], "password": USER[1], "passwordConfirm": USER[1]}, tok)
        c.must("POST", "/api/collections", {
            "name": "ibench", "type": "base", "listRule": "", "viewRule": "", "createRule": "",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "n", "type": "number"},
                {"name": "m", "type": "number"},
                {"name": "flag", "type": "bool"},
                {"name": "owner", "type": "relation", "collectionId": users["id"], "maxSelect": 1},
            ],
            "indexes": ["CREATE INDEX idx_ibench_n ON ibench (n)"],
        }, tok)
        c.must("POST", "/api/collections", {
            "name": "iowned", "type": "base", "viewRule": "owner = @request.auth.id",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "owner", "type": "relation", "collectionId": users["id"], "maxSelect": 1},
            ],
        }, tok)
        for start in range(0, RECORDS, 500):
            reqs = [{"method": "POST", "url": "/api/collections/ibench/records",
                     "body": {"title": f"record {i}", "n": i % 1000, "m": (i * 7919) % RECORDS,
                              "flag": i % 2 == 0, "owner": user["id"]}}
                    for i in range(start, min(RECORDS, start + 500))]
            for r in c.must("POST", "/api/batch", {"requests": reqs}, tok):
                if r.get("status") != 200:
                    raise RuntimeError(f"{self.label}: seed step failed: {r}")
                self.ids.append(r["body"]["id"])
        for i in range(OWNED):
            r = c.must("POST", "/api/collections/iowned/records", {"title": f"mine {i}", "owner": user["id"]}, tok)
            self.owned.append(r["id"])
        c.close()
        stop(self.proc)

    def control(self, *args: str) -> None:
        assert self.proc is not None
        # valgrind's pid is the server's pid (valgrind execs into the tool)
        r = subprocess.run(["callgrind_control", *args, str(self.proc.pid)], capture_output=True, text=True, timeout=120)
        if r.returncode != 0 or "OK" not in r.stdout:
            raise RuntimeError(f"callgrind_control {' '.join(args)}: {r.stdout} {r.stderr}")

    def dumps(self) -> set[str]:
        return set(glob.glob(os.path.join(self.cgdir, "cg.out.*")))

    def dump(self) -> list[str]:
        """Asks for a dump; returns its file (one per thread with --writer-thread)."""
        before = self.dumps()
        self.control("-d")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            new = self.dumps() - before
            if new:
                # complete once each file's totals line is written (and, per thread,
                # once no more files appear)
                for _ in range(200):
                    time.sleep(0.1 if self.per_thread else 0)
                    again = self.dumps() - before
                    if again == new and all(read_total(p) is not None for p in new):
                        return sorted(new)
                    new = again
                    time.sleep(0.05)
            time.sleep(0.05)
        raise RuntimeError("no callgrind dump appeared")


def read_total(path: str | list[str]) -> int | None:
    """The instructions of a dump (summed over its files)."""
    if isinstance(path, list):
        totals = [read_total(p) for p in path]
        return None if any(t is None for t in totals) else sum(totals)
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("totals:") or line.startswith("summary:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


SYNC_FN = re.compile(r"^c?fn=\(\d+\) (fdatasync|fsync)$", re.M)


def writer_total(paths: list[str]) -> int:
    """The instructions of the thread that synced the database in this dump: only the
    writer thread commits (the per-thread files of --separate-threads=yes)."""
    found = []
    for p in paths:
        with open(p) as f:
            if SYNC_FN.search(f.read()):
                found.append(p)
    if len(found) != 1:
        raise RuntimeError(f"expected one thread calling fsync in the dump, found {found}")
    return read_total(found[0]) or 0


def hash_cost(path: str | list[str], pattern: str) -> int:
    """Inclusive cost of the outermost function matching pattern (the largest inclusive)."""
    if isinstance(path, list):
        return sum(hash_cost(p, pattern) for p in path)
    r = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                       capture_output=True, text=True, timeout=600)
    best = 0
    rx = re.compile(pattern)
    for line in r.stdout.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(.*)$", line)
        if not m or not rx.search(m.group(2)):
            continue
        best = max(best, int(m.group(1).replace(",", "")))
    return best


def one_request(srv: Server, c: Conn, scenario: str, i: int) -> None:
    if scenario == "get":
        st, out = c.req("GET", "/api/collections/ibench/records/" + srv.ids[(i * 97) % len(srv.ids)])
    elif scenario == "authget":
        st, out = c.req("GET", "/api/collections/iowned/records/" + srv.owned[i % len(srv.owned)], token=srv.user_token)
    elif scenario == "list":
        st, out = c.req("GET", LIST_PATH)
    elif scenario == "create":
        st, out = c.req("POST", "/api/collections/ibench/records", {"title": "x", "n": 1, "m": 2, "flag": True})
    elif scenario == "auth":
        st, out = c.req("POST", "/api/collections/users/auth-with-password", {"identity": USER[0], "password": USER[1]})
    else:
        raise ValueError(scenario)
    if st != 200:
        raise RuntimeError(f"{srv.label} {scenario}: HTTP {st}: {out[:300]!r}")
    if scenario == "list":
        js = json.loads(out)
        if js.get("totalItems") != RECORDS // 2 or len(js.get("items", [])) != 50:
            raise RuntimeError(f"{srv.label} list: unexpected answer {str(js)[:300]}")


def measure(srv: Server, scenario: str, n1: int, n2: int, warm: int, hash_pattern: str | None) -> dict:
    c = Conn(srv.port)
    for i in range(warm):
        one_request(srv, c, scenario, i)
    srv.control("-i", "on")
    srv.control("-z")
    w0 = time.monotonic()
    for i in range(n1):
        one_request(srv, c, scenario, i)
    d1 = srv.dump()
    w1 = time.monotonic()
    for i in range(n2):
        one_request(srv, c, scenario, n1 + i)
    d2 = srv.dump()
    w2 = time.monotonic()
    srv.control("-i", "off")
    c.close()
    t1, t2 = read_total(d1) or 0, read_total(d2) or 0
    out = {"n1": n1, "n2": n2, "total1": t1, "total2": t2, "per_request": (t2 - t1) / (n2 - n1),
           "seconds_per_request": ((w2 - w1) - (w1 - w0)) / (n2 - n1), "dumps": [d1, d2]}
    if srv.per_thread and scenario == "create":
        out["writer_per_request"] = (writer_total(d2) - writer_total(d1)) / (n2 - n1)
    if hash_pattern:
        h1, h2 = hash_cost(d1, hash_pattern), hash_cost(d2, hash_pattern)
        out["hash_per_request"] = (h2 - h1) / (n2 - n1)
    return out


def qemu_count(a, seeded: Server, workdir: str, scenario: str, n: int, warm: int) -> int:
    """Guest instructions of one aarch64 keepd process that served n requests of scenario."""
    d = os.path.join(workdir, "aarch64")
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(seeded.dir + "-seeded", d)
    out = os.path.join(workdir, "aarch64.count")
    if os.path.exists(out):
        os.remove(out)
    srv = Server("aarch64", "keepd (aarch64)", a.aarch64_keepd, workdir, seeded.log)
    srv.dir, srv.ids, srv.owned = d, seeded.ids, seeded.owned
    srv.port = free_port()
    env = dict(os.environ)
    env.pop("KEEPD_LOG", None)
    env["KEEPD_LIST_CACHE_BYTES"] = "0"  # as above
    argv = [a.qemu]
    if a.qemu_ld_prefix:
        argv += ["-L", a.qemu_ld_prefix]
    argv += ["-plugin", f"{a.plugin},out={out}", a.aarch64_keepd,
             "serve", "--http", f"127.0.0.1:{srv.port}", "--dir", d]
    srv.proc = subprocess.Popen(argv, stdout=srv.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    try:
        wait_ready(srv.proc, srv.port, 300)
        c = Conn(srv.port)
        srv.user_token = c.must("POST", "/api/collections/users/auth-with-password",
                                {"identity": USER[0], "password": USER[1]})["token"]
        for i in range(warm + n):
            one_request(srv, c, scenario, i)
        c.close()
    finally:
        stop(srv.proc, grace=300)
    with open(out) as f:
        return int(f.read().split()[1])


def fmt(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:,.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keepd", required=True)
    ap.add_argument("--pocketbase", default="", help="omit to count keepd only")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--repeat", type=int, default=3, help="measurements per scenario (median reported)")
    ap.add_argument("--quick", action="store_true", help="small N1/N2 (CI)")
    ap.add_argument("--workdir", default="")
    ap.add_argument("--aarch64-keepd", default="", help="keepd built for aarch64: also count it under qemu")
    ap.add_argument("--qemu", default="qemu-aarch64", help="a qemu-aarch64 with plugin support (not -static)")
    ap.add_argument("--qemu-ld-prefix", default="", help="-L for qemu (default: none, the host's arm64 multiarch libraries; the cross toolchain's libc under -L hangs keepd at its first thread)")
    ap.add_argument("--plugin", default="", help="the instruction-counting plugin (libinsncount.so)")
    ap.add_argument("--hello", default="", help="the hyper hello ceiling (tests/bench/hello): its get counted too")
    ap.add_argument("--keep", action="store_true", help="keep data dirs and callgrind dumps")
    ap.add_argument("--writer-thread", action="store_true",
                    help="keepd: count each thread apart and report the writer thread's share of a create")
    ap.add_argument("--out", default="")
    ap.add_argument("--json-out", default="")
    ap.add_argument("--command", default="tests/bench/instructions.sh")
    a = ap.parse_args()

    scenarios = [s for s in a.scenarios.split(",") if s]
    for s in scenarios:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s}")
    workdir = a.workdir or tempfile.mkdtemp(prefix="keepd-instr-")
    os.makedirs(workdir, exist_ok=True)
    log(f"workdir {workdir}")
    servers_spec = [("keepd", "keepd", a.keepd, r"argon2::")]
    if a.pocketbase:
        # PocketBase ships stripped (Go's own symbol table is not one valgrind reads):
        # its bcrypt share cannot be told apart.
        servers_spec.append(("pocketbase", "PocketBase", a.pocketbase, None))
    results: dict[str, dict] = {}
    seeded: dict[str, Server] = {}
    t_start = time.monotonic()
    logf = open(os.path.join(workdir, "servers.log"), "ab")
    try:
        for key, label, binary, hpat in servers_spec:
            srv = Server(key, label, binary, workdir, logf)
            srv.per_thread = a.writer_thread and key == "keepd"
            log(f"{label}: seeding {RECORDS:,} records natively")
            srv.setup()
            seeded[key] = srv
            if key == "keepd" and a.aarch64_keepd:
                # as seeded: the runs below add records (create)
                shutil.copytree(srv.dir, srv.dir + "-seeded")
            log(f"{label}: starting under callgrind")
            startup = srv.start(True)
            log(f"{label}: {startup:,} instructions from exec to the first 200 on /api/health")
            try:
                c = Conn(srv.port)
                srv.user_token = c.must("POST", "/api/collections/users/auth-with-password",
                                        {"identity": USER[0], "password": USER[1]})["token"]
                c.close()
                results[key] = {"startup": startup}
                # What the server does on its own (timers, Go's sysmon and GC), per second of
                # wall time under callgrind: requests take ~50x longer there, so this background
                # is inflated in the per-request figures by about rate x (seconds per request).
                srv.control("-i", "on")
                srv.control("-z")
                time.sleep(IDLE_SECONDS)
                idle = read_total(srv.dump()) or 0
                srv.control("-i", "off")
                results[key]["idle_per_second"] = idle / IDLE_SECONDS
                log(f"{label}: {idle / IDLE_SECONDS:,.0f} instructions per second while idle")
                for s in scenarios:
                    _, n1, n2, q1, q2 = SCENARIOS[s]
                    if a.quick:
                        n1, n2 = q1, q2
                    warm = 1 if s == "auth" else 20
                    runs = []
                    for r in range(a.repeat):
                        m = measure(srv, s, n1, n2, warm, hpat if s == "auth" else None)
                        log(f"{label} {s} #{r + 1}: {m['per_request']:,.0f} instructions per request"
                            + (f" (hash {m['hash_per_request']:,.0f})" if "hash_per_request" in m else "")
                            + (f" (writer thread {m['writer_per_request']:,.0f})" if "writer_per_request" in m else ""))
                        runs.append(m)
                    per = statistics.median(m["per_request"] for m in runs)
                    entry = {"per_request": per, "runs": [m["per_request"] for m in runs], "n1": n1, "n2": n2,
                             "seconds_per_request": statistics.median(m["seconds_per_request"] for m in runs)}
                    if runs and "writer_per_request" in runs[0]:
                        entry["writer_per_request"] = statistics.median(m["writer_per_request"] for m in runs)
                    if s == "auth" and hpat:
                        h = statistics.median(m["hash_per_request"] for m in runs)
                        entry["hash_per_request"] = h
                        entry["non_hash_per_request"] = per - h
                    results[key][s] = entry
            finally:
                stop(srv.proc)
        if a.hello and "get" in scenarios:
            # The ceiling: the same get path, answered with a fixed body.
            srv = Server("hello", "hyper hello", a.hello, workdir, logf)
            srv.ids = ["abcdefghijklmno"]
            log("hyper hello: starting under callgrind")
            srv.start(True)
            try:
                _, n1, n2, q1, q2 = SCENARIOS["get"]
                if a.quick:
                    n1, n2 = q1, q2
                runs = []
                for r in range(a.repeat):
                    m = measure(srv, "get", n1, n2, 20, None)
                    log(f"hyper hello get #{r + 1}: {m['per_request']:,.0f} instructions per request")
                    runs.append(m["per_request"])
                results["hello"] = {"get": {"per_request": statistics.median(runs), "runs": runs, "n1": n1, "n2": n2}}
            finally:
                stop(srv.proc)
        if a.aarch64_keepd:
            results["aarch64"] = {}
            for s in scenarios:
                _, n1, n2, q1, q2 = SCENARIOS[s]
                if a.quick:
                    n1, n2 = q1, q2
                warm = 1 if s == "auth" else 20
                runs = []
                for r in range(a.repeat):
                    c1 = qemu_count(a, seeded["keepd"], workdir, s, n1, warm)
                    c2 = qemu_count(a, seeded["keepd"], workdir, s, n2, warm)
                    runs.append((c2 - c1) / (n2 - n1))
                    log(f"keepd (aarch64) {s} #{r + 1}: {runs[-1]:,.0f} instructions per request")
                results["aarch64"][s] = {"per_request": statistics.median(runs), "runs": runs, "n1": n1, "n2": n2}
    finally:
        logf.close()

    elapsed = time.monotonic() - t_start
    lines = [
        f"Command: `{a.command}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; wall time {elapsed:.0f} s  ",
        f"Binaries: keepd `{a.keepd}`" + (f"; PocketBase `{a.pocketbase}`" if a.pocketbase else "") + "  ",
        f"Method: valgrind {subprocess.run(['valgrind', '--version'], capture_output=True, text=True).stdout.strip()} "
        f"callgrind, one keep-alive connection, (instructions of N2 requests − of N1) / (N2 − N1), "
        f"median of {a.repeat}; all threads counted; rate limits off, everything else as shipped.",
        "",
        "| Instructions per request | keepd | PocketBase | PB/keepd | N1 → N2 |"
        + (" keepd aarch64 (qemu) |" if "aarch64" in results else ""),
        "|---|---|---|---|---|" + ("---|" if "aarch64" in results else ""),
    ]
    for s in scenarios:
        k = results.get("keepd", {}).get(s)
        p = results.get("pocketbase", {}).get(s)
        ratio = f"{p['per_request'] / k['per_request']:.2f}×" if k and p and k["per_request"] > 0 else ""
        nn = f"{k['n1']} → {k['n2']}" if k else ""
        arm = results.get("aarch64", {}).get(s)
        lines.append(f"| {SCENARIOS[s][0]} | {fmt(k and k['per_request'])} | {fmt(p and p['per_request'])} | {ratio} | {nn} |"
                     + (f" {fmt(arm and arm['per_request'])} |" if "aarch64" in results else ""))
        if k and "writer_per_request" in k:
            lines.append(f"| … of which keepd's writer thread (one write per group) | {fmt(k['writer_per_request'])} | | | |"
                         + (" |" if "aarch64" in results else ""))
        if s == "auth":
            for part, what in (("hash_per_request", "the password hash (argon2id / bcrypt)"),
                               ("non_hash_per_request", "everything but the hash")):
                kv, pv = k and k.get(part), p and p.get(part)
                r2 = f"{pv / kv:.2f}×" if kv and pv else ""
                lines.append(f"| … of which {what} | {fmt(kv)} | {fmt(pv)} | {r2} | |"
                             + (" |" if "aarch64" in results else ""))
    ks, ps = results.get("keepd", {}).get("startup"), results.get("pocketbase", {}).get("startup")
    lines.append(f"| Start-up on the seeded data dir: exec → first 200 on /api/health (instructions, once) "
                 f"| {fmt(ks)} | {fmt(ps)} | {f'{ps / ks:.2f}×' if ks and ps else ''} | |"
                 + (" |" if "aarch64" in results else ""))
    h = results.get("hello", {}).get("get")
    if h:
        lines.append("")
        ratios = [f"{s} {h['per_request'] / results['keepd'][s]['per_request']:.1%}"
                  for s in ("get", "authget") if results.get("keepd", {}).get(s)]
        lines.append(f"The hyper \"hello\" ceiling: {fmt(h['per_request'])} instructions per request on the get path "
                     f"(median of {len(h['runs'])}); hello / keepd: {', '.join(ratios)}.")
    for key, label in (("keepd", "keepd"), ("pocketbase", "PocketBase")):
        if key in results and "idle_per_second" in results[key]:
            lines.append("")
            lines.append(f"{label} on its own while idle: {results[key]['idle_per_second']:,.0f} instructions per second "
                         "under callgrind; seconds per request under callgrind: "
                         + ", ".join(f"{s} {results[key][s]['seconds_per_request'] * 1000:,.1f} ms" for s in scenarios))
    table = "\n".join(lines)
    print(table)
    if a.out:
        with open(a.out, "w") as f:
            f.write(table + "\n")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"command": a.command, "results": results, "seconds": elapsed}, f, indent=1)
    if not a.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
