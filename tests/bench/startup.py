#!/usr/bin/env python3
"""Start-up on an existing data dir: process start -> first 200 on /api/health.

    python3 tests/bench/startup.py --server keepd=target/profiling/keepd \\
        --server keepd-before=/path/to/old/keepd --server pocketbase=tests/compat/.venv/bin/pocketbase

Each server gets a data dir seeded once as instructions.py seeds it (10,000
records, a user, two collections; keepd binaries share theirs), then
`--rounds` starts, the servers alternating round by round, each timed from
the spawn to the first 200 on /api/health (polled every 1 ms), then stopped.
Prints the median and range per server and the ratio to the first one.
Wall time: read it only from a quiet machine (the load average is printed).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import instructions as ib  # noqa: E402


def time_start(binary: str, datadir: str, log) -> float:
    port = ib.free_port()
    env = dict(os.environ)
    env.pop("KEEPD_LOG", None)
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "serve", "--http", f"127.0.0.1:{port}", "--dir", datadir],
                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    try:
        while time.monotonic() - t0 < 60:
            if p.poll() is not None:
                raise RuntimeError(f"{binary} exited with {p.returncode}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
                c.request("GET", "/api/health")
                st = c.getresponse().status
                c.close()
                if st == 200:
                    return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(0.001)
        raise RuntimeError(f"{binary} not ready in 60 s")
    finally:
        ib.stop(p)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", action="append", required=True, help="label=binary (a label starting "
                    "with 'pocketbase' gets its own data dir)")
    ap.add_argument("--rounds", type=int, default=11)
    a = ap.parse_args()
    servers = [s.split("=", 1) for s in a.server]
    work = tempfile.mkdtemp(prefix="keepd-startup-")
    log = open(os.path.join(work, "servers.log"), "ab")
    try:
        dirs: dict[str, str] = {}
        for label, binary in servers:
            kind = "pocketbase" if label.startswith("pocketbase") else "keepd"
            if kind not in dirs:
                srv = ib.Server(kind, kind, binary, work, log)
                srv.setup()
                dirs[kind] = srv.dir
        times: dict[str, list[float]] = {label: [] for label, _ in servers}
        for r in range(a.rounds):
            order = servers if r % 2 == 0 else list(reversed(servers))
            for label, binary in order:
                kind = "pocketbase" if label.startswith("pocketbase") else "keepd"
                times[label].append(time_start(binary, dirs[kind], log) * 1000)
        first = statistics.median(times[servers[0][0]])
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {a.rounds} rounds, alternating")
        print("| Server | start-up ms, median (min–max) | / first |")
        print("|---|---|---|")
        for label, _ in servers:
            t = times[label]
            print(f"| {label} | {statistics.median(t):.1f} ({min(t):.1f}–{max(t):.1f}) | "
                  f"{statistics.median(t) / first:.2f} |")
    finally:
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
