#!/usr/bin/env python3
"""Instructions keepd spends per write fanned out to N realtime subscribers (callgrind).

    python3 tests/bench/rt_instructions.py --keepd target/profiling/keepd \\
        --rtload target/bench-rtload/release/bench-rtload [--subs 1000] [--users 100] [--repeat 3]

A fresh data dir (superuser; `rtpub`: list/view rule ""; `rtauth`: list/view rule
`@request.auth.id != ""`; --users users, tokens by impersonation), keepd started under
`valgrind --tool=callgrind` with counting off. Per variant (guests on `rtpub`, signed-in
subscribers on `rtauth`, spread over the users): counting on, `rtload latency` with N1
writes (it opens the streams, subscribes, writes, reads every event, closes), a dump, the
same with N2 writes, a dump. Both runs pay the same fixed costs (connections,
subscriptions, teardown), so (dump2 - dump1) / (N2 - N1) is what one more write costs:
its request, its commit and its fan-out to every subscriber (rules, rendering, queues,
one SSE write per subscriber), every keepd thread, user space only (the kernel's share
of the socket writes is not counted). Median of --repeat. Python 3 stdlib only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import instructions as ins  # noqa: E402  (its helpers: Conn, free_port, wait_ready, stop, read_total)

SUPERUSER = ("rt-admin@example.com", "rt-admin-pass-123")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keepd", required=True)
    ap.add_argument("--rtload", required=True)
    ap.add_argument("--subs", type=int, default=1000)
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--n1", type=int, default=4)
    ap.add_argument("--n2", type=int, default=14)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--settle", type=float, default=3.0, help="seconds after each rtload run before a dump")
    ap.add_argument("--variants", default="guest,auth")
    ap.add_argument("--keep", default=None, help="copy the dumps here (read them with callgrind_annotate; "
                                                  "n2 minus n1 is N2 - N1 writes)")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="rt-insn-")
    log = open(os.path.join(work, "server.log"), "w")
    srv = ins.Server("keepd", "keepd", args.keepd, work, log)
    os.makedirs(srv.dir, mode=0o700)
    subprocess.run([args.keepd, "superuser", "upsert", SUPERUSER[0], SUPERUSER[1], "--dir", srv.dir],
                   check=True, stdout=subprocess.DEVNULL, timeout=120)
    env_caps = {"KEEPD_MAX_CONNECTIONS": "5000", "KEEPD_MAX_CONNECTIONS_PER_IP": "5000",
                "KEEPD_REALTIME_MAX_CLIENTS": "5000", "KEEPD_REALTIME_MAX_CLIENTS_PER_IP": "5000"}
    os.environ.update(env_caps)
    try:
        srv.start(False)
        c = ins.Conn(srv.port)
        tok = c.must("POST", "/api/collections/_superusers/auth-with-password",
                     {"identity": SUPERUSER[0], "password": SUPERUSER[1]})["token"]
        c.must("PATCH", "/api/settings", {"rateLimits": {"enabled": False}}, tok)
        fields = [{"name": "title", "type": "text"}, {"name": "n", "type": "number"},
                  {"name": "flag", "type": "bool"}]
        c.must("POST", "/api/collections", {"name": "rtpub", "type": "base", "listRule": "", "viewRule": "",
                                            "fields": fields}, tok)
        c.must("POST", "/api/collections", {"name": "rtauth", "type": "base",
                                            "listRule": '@request.auth.id != ""',
                                            "viewRule": '@request.auth.id != ""', "fields": fields}, tok)
        tokens = []
        for i in range(args.users):
            pw = "rt-user-pass-123"
            u = c.must("POST", "/api/collections/users/records",
                       {"email": f"rt-{i}@example.com", "password": pw, "passwordConfirm": pw}, tok)
            tokens.append(c.must("POST", f"/api/collections/users/impersonate/{u['id']}",
                                 {"duration": 86400}, tok)["token"])
        c.close()
        tokens_file = os.path.join(work, "tokens.txt")
        with open(tokens_file, "w") as f:
            f.write("\n".join(tokens) + "\n")
        ins.stop(srv.proc)

        srv.start(True)
        c = ins.Conn(srv.port)
        tok = c.must("POST", "/api/collections/_superusers/auth-with-password",
                     {"identity": SUPERUSER[0], "password": SUPERUSER[1]})["token"]
        c.close()

        def run(coll: str, n: int, extra: list[str]) -> None:
            out = subprocess.run([args.rtload, "latency", f"127.0.0.1:{srv.port}", str(args.subs), str(n),
                                  coll, tok, *extra], capture_output=True, text=True, timeout=1200,
                                 env=dict(os.environ, RTLOAD_GRACE_S="600"))
            if out.returncode != 0:
                raise RuntimeError(f"rtload: {out.stderr.strip()}")
            res = __import__("json").loads(out.stdout.strip().splitlines()[-1])
            if res["missing"]:
                raise RuntimeError(f"{res['missing']} events missing under callgrind: {res}")

        results = {}
        for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
            coll, extra = ("rtpub", []) if variant == "guest" else ("rtauth", [tokens_file])
            xs = []
            for r in range(args.repeat):
                # warm-up (first statements prepared, buffers grown), uncounted
                run(coll, 2, extra)
                time.sleep(args.settle)
                srv.control("-i", "on")
                srv.control("-z")
                run(coll, args.n1, extra)
                time.sleep(args.settle)  # the server closes the streams rtload left
                p1 = srv.dump()
                d1 = ins.read_total(p1) or 0
                run(coll, args.n2, extra)
                time.sleep(args.settle)
                p2 = srv.dump()
                d2 = ins.read_total(p2) or 0
                if args.keep:
                    for tag, path in (("n1", p1), ("n2", p2)):
                        shutil.copy(path, os.path.join(args.keep, f"{variant}-{r + 1}-{tag}.out"))
                srv.control("-i", "off")
                per = (d2 - d1) / (args.n2 - args.n1)
                xs.append(per)
                print(f"[rt-insn] {variant} round {r + 1}: {per / 1e6:.2f} M instructions per write "
                      f"to {args.subs} subscribers ({per / args.subs:,.0f} per subscriber)", file=sys.stderr)
            results[variant] = statistics.median(xs)
        print(f"| Subscribers | Instructions per write (M, median of {args.repeat}) | per subscriber |")
        print("|---|---|---|")
        for variant, per in results.items():
            who = "guests" if variant == "guest" else f"signed in ({args.users} users)"
            print(f"| {args.subs:,} {who} | {per / 1e6:.2f} | {per / args.subs:,.0f} |")
    finally:
        if srv.proc is not None:
            ins.stop(srv.proc)
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
