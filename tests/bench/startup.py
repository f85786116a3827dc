#!/usr/bin/env python3
"""Start-up on an existing data dir: process start -> first 200 on /api/health.

    python3 tests/bench/startup.py --server keepd=target/profiling/keepd \\
        --server keepd-before=/path/to/old/keepd --server pocketbase=tests/compat/.venv/bin/pocketbase
    python3 tests/bench/startup.py --server keepd=... --server keepd-before=... --callgrind 5

Each server gets a data dir seeded once as instructions.py seeds it (10,000
records, a user, two collections; keepd binaries share theirs), then
`--rounds` starts, the servers alternating round by round, each timed two
ways, then stopped:
  - polled: from the spawn to the first 200 on /api/health, polled every 1 ms;
  - activated (keepd only; as systemd's socket activation does it): the
    harness binds the listening socket, connects and sends GET /api/health
    (the kernel queues the connection), then spawns keepd with the socket as
    fd 3 (LISTEN_FDS=1, LISTEN_PID its own pid); timed from the spawn to the
    answer read, with no polling granularity.
Prints the median and range per server and the ratio to the first one.
Wall time: read it only from a quiet machine (the load average is printed).

--callgrind N: also counts keepd's instructions in the activated form under
valgrind's callgrind (exec -> the answer sent, every thread), N times per
keepd binary, and prints the median: a figure the machine's load cannot move.
--keep-callgrind DIR keeps the dumps (callgrind_annotate them).
"""

from __future__ import annotations

import argparse
import glob
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


def spawn_activated(argv: list[str], sock, log, env: dict) -> subprocess.Popen:
    """Starts argv as systemd starts a socket-activated service: the listening
    socket as fd 3, LISTEN_FDS=1 and LISTEN_PID the process's own pid (set in
    the child, which then execs argv itself)."""
    env = dict(env)
    env["LISTEN_FDS"] = "1"
    env.pop("LISTEN_FDNAMES", None)
    fd = sock.fileno()
    path = shutil.which(argv[0]) or argv[0]

    def child() -> None:
        os.dup2(fd, 3)  # inheritable: fd 3 survives the exec
        env["LISTEN_PID"] = str(os.getpid())
        os.execve(path, argv, env)

    return subprocess.Popen(["/bin/false"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            close_fds=False, preexec_fn=child)


def time_activated(binary: str, datadir: str, log, cg_out: str | None = None) -> tuple[float, int | None]:
    """Socket activation: the request is queued before keepd runs; returns the
    seconds from the spawn to the answer and, under callgrind, the instructions."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    env = dict(os.environ)
    env.pop("KEEPD_LOG", None)
    argv = [binary, "serve", "--http", f"127.0.0.1:{port}", "--dir", datadir]
    if cg_out:
        argv = ["valgrind", "--tool=callgrind", "--instr-atstart=yes", "--dump-instr=no",
                f"--callgrind-out-file={cg_out}"] + argv
    c = socket.create_connection(("127.0.0.1", port), timeout=600)
    c.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    t0 = time.monotonic()
    p = spawn_activated(argv, sock, log, env)
    sock.close()
    instructions = None
    try:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        elapsed = time.monotonic() - t0
        if not data.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"{binary}: activated start answered {data[:40]!r}")
        if cg_out:
            before = set(glob.glob(cg_out + ".*"))
            subprocess.run(["callgrind_control", "-d", str(p.pid)], check=True, capture_output=True, timeout=120)
            deadline = time.monotonic() + 120
            while instructions is None and time.monotonic() < deadline:
                for f in set(glob.glob(cg_out + ".*")) - before:
                    instructions = ib.read_total(f)
                time.sleep(0.05)
        return elapsed, instructions
    finally:
        c.close()
        ib.stop(p)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", action="append", required=True, help="label=binary (a label starting "
                    "with 'pocketbase' gets its own data dir)")
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--callgrind", type=int, default=0, help="also count keepd's activated start-up under "
                    "callgrind this many times per keepd binary")
    ap.add_argument("--keep-callgrind", default="", help="keep the callgrind dumps in this directory")
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
        activated: dict[str, list[float]] = {label: [] for label, _ in servers if not label.startswith("pocketbase")}
        for r in range(a.rounds):
            order = servers if r % 2 == 0 else list(reversed(servers))
            for label, binary in order:
                kind = "pocketbase" if label.startswith("pocketbase") else "keepd"
                times[label].append(time_start(binary, dirs[kind], log) * 1000)
                if kind == "keepd":
                    activated[label].append(time_activated(binary, dirs[kind], log)[0] * 1000)
        counts: dict[str, list[int]] = {label: [] for label in activated}
        cgdir = a.keep_callgrind or os.path.join(work, "cg")
        os.makedirs(cgdir, exist_ok=True)
        for r in range(a.callgrind):
            for label, binary in servers:
                if label in counts:
                    _, n = time_activated(binary, dirs["keepd"], log, os.path.join(cgdir, f"{label}-{r}.out"))
                    counts[label].append(n or 0)
        first = statistics.median(times[servers[0][0]])
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {a.rounds} rounds, alternating")
        print("| Server | start-up ms, polled: median (min–max) | / first | socket-activated: median (min–max) |"
              + (" instructions, activated: median (min–max) |" if a.callgrind else ""))
        print("|---|---|---|---|" + ("---|" if a.callgrind else ""))
        for label, _ in servers:
            t = times[label]
            act = activated.get(label)
            row = (f"| {label} | {statistics.median(t):.1f} ({min(t):.1f}–{max(t):.1f}) | "
                   f"{statistics.median(t) / first:.2f} | "
                   + (f"{statistics.median(act):.1f} ({min(act):.1f}–{max(act):.1f}) |" if act else "— |"))
            if a.callgrind:
                n = counts.get(label)
                row += f" {statistics.median(n):,.0f} ({min(n):,}–{max(n):,}) |" if n else " — |"
            print(row)
    finally:
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
