#!/usr/bin/env python3
"""Makes daemon/link/order.txt: which functions of keepd run, under callgrind.

    python3 daemon/link/profile.py [--keepd target/profiling/keepd] [--out daemon/link/order.txt]
    python3 daemon/link/profile.py --keepd SQLCIPHER_BUILD --merge daemon/link/order.txt

keepd (a build with its symbols: `cargo build --profile profiling -p keepd`)
starts under callgrind twice and idles 6 s each time (timers, the watchdog's
tick): on an empty data dir (a first boot: migrations, the default
collections) and on one that has a superuser (every later boot). What those
run is the first part of the list. Then, in the second process, the
requests most devices serve (tests/bench/bench.py's set-up: superuser and
user sign-in, collections, a batch, files; gets, lists, creates, a realtime
stream): the second part, without what the first has. `--merge LIST` adds this
build's profile to a list made from another build (the .deb's `sqlcipher` build
runs SQLCipher's own functions where the default build runs SQLite's): start-up
and idle of both first, then the requests of both; a function a build lacks is
skipped when it is linked. Names are written demangled
(c++filt), without what each build makes anew (daemon/link/cc.sh matches them to
each build's symbols the same way). Needs valgrind (Debian package).
"""
import argparse
import http.client
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "bench"))
import bench  # noqa: E402

KEY = os.path.join(ROOT, "daemon", "link", "key.sh")


def keys(names: list[str]) -> list[str]:
    """The names keyed as daemon/link/cc.sh keys a link's symbols (daemon/link/key.sh)."""
    out = subprocess.run([KEY], input="".join(n + "\n" for n in names), capture_output=True,
                         text=True, check=True).stdout
    return out.split("\n")[: len(names)]


def functions(dump: str, binary: str) -> list[str]:
    """The functions of `binary` a callgrind dump has costs for, in the dump's order."""
    names: dict[str, str] = {}
    objs: dict[str, str] = {}
    mine = False  # whether the functions that follow are the binary's
    target = os.path.realpath(binary)
    out: list[str] = []
    seen: set[str] = set()

    def resolve(table: dict[str, str], spec: str) -> str:
        m = re.match(r"\((\d+)\)(?: (.*))?$", spec)
        if not m:
            return spec
        if m.group(2) is not None:
            table[m.group(1)] = m.group(2)
        return table.get(m.group(1), "")

    for line in open(dump, errors="replace"):
        if line.startswith("ob="):
            mine = os.path.realpath(resolve(objs, line[3:].rstrip("\n"))) == target
        elif line.startswith(("cob=", "cfn=")):
            resolve(objs if line.startswith("cob=") else names, line[4:].rstrip("\n"))
        elif line.startswith("fn="):
            fn = resolve(names, line[3:].rstrip("\n"))
            # A bare address (a function without a symbol) matches nothing.
            if mine and fn and fn not in seen and not re.fullmatch(r"0x[0-9a-fA-F]+", fn):
                seen.add(fn)
                out.append(fn)
    return out


def read_list(path: str) -> tuple[list[str], list[str]]:
    """A list this script wrote: its start-up and idle part, and its requests part."""
    lines = open(path).read().splitlines()
    m = re.search(r"^# (\d+) functions run by start-up", "\n".join(lines[:3]), re.M)
    if not m:
        raise SystemExit(f"{path}: no count of start-up functions in its header")
    names = [ln for ln in lines if ln and not ln.startswith("#")]
    n = int(m.group(1))
    return names[:n], names[n:]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keepd", default=os.path.join(ROOT, "target", "profiling", "keepd"))
    ap.add_argument("--out", default=os.path.join(ROOT, "daemon", "link", "order.txt"))
    ap.add_argument("--idle", type=float, default=6.0)
    ap.add_argument("--merge", default=None, metavar="LIST",
                    help="merge into this list (made by an earlier run on another build) and write it to --out")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="keepd-profile-")

    def under_callgrind(srv: bench.Server, tag: str) -> None:
        srv.launcher = ["valgrind", "--tool=callgrind", "--demangle=no", "--dump-instr=no",
                        "--separate-threads=no", f"--callgrind-out-file={os.path.join(work, tag)}"]
        srv.start(ready_timeout=120)
        time.sleep(args.idle)
        subprocess.run(["callgrind_control", "-d", "idle", str(srv.pid)], check=True,
                       stdout=subprocess.DEVNULL)

    # A first boot: an empty data dir.
    first = bench.Server("keepd", "keepd", args.keepd, work)
    first.fresh_dir("first")
    try:
        under_callgrind(first, "cg-first.out")
    finally:
        first.stop(grace=120)  # callgrind writes its last dump on the way out
    # A later boot, then the requests.
    srv = bench.Server("keepd", "keepd", args.keepd, work)
    srv.fresh_dir("data")
    srv.upsert_superuser()
    try:
        under_callgrind(srv, "cg.out")
        # The requests: the benchmark's set-up and one of each of its loads.
        srv.setup_data(200, 100)
        srv.setup_owned()
        coll = f"/api/collections/{bench.COLLECTION}/records"
        for i in range(20):
            bench.must(srv.port, "GET", f"{coll}/{srv.ids[i]}")
            bench.must(srv.port, "GET", f"{coll}?perPage=50&sort=-n&filter=" + bench.Q(f"n>{i * 10}"))
            bench.must(srv.port, "POST", coll, bench.seed_record(10_000 + i, srv.user_id), srv.token)
            bench.must(srv.port, "GET", f"/api/collections/{bench.OWNED_COLLECTION}/records/{srv.owned[i]}",
                       token=srv.user_token)
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        c.request("GET", "/api/realtime")
        r = c.getresponse()
        first_lines = r.fp.readline() + r.fp.readline() + r.fp.readline()
        cid = re.search(rb'"clientId":"([^"]+)"', first_lines)
        if cid:
            bench.must(srv.port, "POST", "/api/realtime",
                       {"clientId": cid.group(1).decode(), "subscriptions": [f"{bench.COLLECTION}/*"]})
            bench.must(srv.port, "POST", coll, bench.seed_record(20_000, srv.user_id), srv.token)
            r.fp.readline()
        c.close()
    finally:
        srv.stop(grace=120)
    def dumps(prefix: str) -> list[str]:
        found = sorted((os.path.join(work, f) for f in os.listdir(work)
                        if f.startswith(prefix) and not f.endswith(".log")), key=os.path.getmtime)
        if len(found) < 2:
            raise SystemExit(f"expected two callgrind dumps {prefix}* in {work}, found {found}")
        return found

    boot, served = dumps("cg-first.out"), dumps("cg.out")
    seen: set[str] = set()
    idle = [k for k in keys(functions(boot[0], args.keepd) + functions(served[0], args.keepd))
            if k and not (k in seen or seen.add(k))]
    rest = keys([n for d in served[1:] for n in functions(d, args.keepd)])
    later = [k for k in rest if k and not (k in seen or seen.add(k))]
    builds = "one build"
    if args.merge:
        old_idle, old_later = read_list(args.merge)
        seen = set()
        idle = [k for k in old_idle + idle if not (k in seen or seen.add(k))]
        later = [k for k in old_later + later if not (k in seen or seen.add(k))]
        builds = "two builds (merged)"
    with open(args.out, "w") as f:
        f.write("# daemon/link/order.txt: made by daemon/link/profile.py; read by daemon/link/cc.sh.\n")
        f.write(f"# {len(idle)} functions run by start-up (a first boot and a later one) and the idle daemon, "
                f"then {len(later)} more run by requests; {builds}.\n")
        for k in idle + later:
            f.write(k + "\n")
    print(f"{args.out}: {len(idle)} + {len(later)} functions (dumps in {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
