"""Differential fuzzer: PocketBase (PB_BIN) vs keepd (KEEPD_BIN).

    run.sh                          the CI run: the regression files, then the fixed seeds
    run.sh --seconds 600            the long run: new seeds until the time is up
    run.sh --seed 1234 [--steps N]  one case (prints it and its outcome)
    run.sh --replay FILE.json       one saved case
    run.sh --seed 1234 --shrink --save NAME   shrink a failing case and save it as a regression

Every case is reproducible from its seed (`--seed`); a difference prints the
case shrunk to the shortest failing step sequence, ready to be saved with
`--save`. Differences listed in known.py (each with its reason) do not fail
the run but are counted and shown.
"""
import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import gen  # noqa: E402
import known  # noqa: E402
from execute import Pair, Runner, truncated  # noqa: E402
from shrink import shrink  # noqa: E402

REGRESSIONS = os.path.join(HERE, "regressions")
CI_SEEDS = list(range(1, 61))


def default_bins():
    root = os.path.abspath(os.path.join(HERE, "..", ".."))
    pb = os.environ.get("PB_BIN") or os.path.join(root, "tests", "compat", ".venv", "bin", "pocketbase")
    kd = os.environ.get("KEEPD_BIN")
    if not kd:
        for c in ("debug", "release"):
            p = os.path.join(root, "target", c, "keepd")
            if os.path.exists(p):
                kd = p
                break
    return pb, kd


def render_case(case, upto=None):
    """The reproduction: schema, users and request sequence, as JSON."""
    c = truncated(case, upto) if upto is not None else case
    return json.dumps(c, indent=1, sort_keys=False)


class Stats:
    def __init__(self):
        self.cases = 0
        self.steps = 0
        self.clean = 0
        self.known = {}    # entry key -> [(label, case, diff)] (the first 20)
        self.known_count = {}  # entry key -> hits
        self.failures = []  # (label, case, diff)


def run_one(runner, case, label, stats, args):
    """-> the first difference not in known.py, or None."""
    diffs, steps = runner.run(case, known.match)
    stats.cases += 1
    stats.steps += steps
    if not diffs:
        stats.clean += 1
        if case.get("expect_known"):
            print(f"  note: {label} was saved for the known difference {case['expect_known']!r}, which no "
                  f"longer shows: if it is fixed, remove its entry from known.py and this file")
        return None
    for d in diffs:
        if d.known is not None:
            stats.known_count[d.known.key] = stats.known_count.get(d.known.key, 0) + 1
            hits = stats.known.setdefault(d.known.key, [])
            if len(hits) < 20:  # a long run keeps the first few cases of each
                hits.append((label, case, d))
            if args.verbose:
                print(f"  {label}: known difference {d.known.key} at step {d.step_index}")
    want = case.get("expect_known")
    if want and want not in {d.known.key for d in diffs if d.known is not None}:
        print(f"  note: {label} was saved for the known difference {want!r}, which no longer shows: "
              f"if it is fixed, remove its entry from known.py and this file")
    last = diffs[-1]
    if last.known is not None:
        return None
    stats.failures.append((label, case, last))
    print(f"\nFAIL {label}: a difference not listed in known.py\n{last.text()}", flush=True)
    return last


def reproduction(runner, case, d, args, log=print):
    small = case
    if args.shrink and d.step_index is not None:
        t0 = time.monotonic()
        small, d2 = shrink(runner, case, d, known.match, budget_s=args.shrink_seconds, log=log)
        d = d2 or d
        log(f"  shrunk to {len(small['steps'])} step(s) in {time.monotonic() - t0:.0f}s")
    if d.step_index is not None:
        small = truncated(small, d.step_index)
    else:  # a difference while setting up: no step is needed
        small = dict(small, steps=[])
    return small, d


def report_failure(runner, label, case, d, args):
    small, d = reproduction(runner, case, d, args)
    print(f"--- reproduction of {label} (save with --save NAME; replay with --replay FILE)")
    print(render_case(small))
    print(d.text())
    if args.save:
        path = args.save if args.save.endswith(".json") else os.path.join(REGRESSIONS, args.save + ".json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(small, f, indent=1)
            f.write("\n")
        print(f"saved {path}")


def load_regressions():
    out = []
    if os.path.isdir(REGRESSIONS):
        for name in sorted(os.listdir(REGRESSIONS)):
            if name.endswith(".json"):
                with open(os.path.join(REGRESSIONS, name)) as f:
                    out.append((f"regression {name}", json.load(f)))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, action="append", help="run this seed (repeatable)")
    ap.add_argument("--seeds", help="a range A-B of seeds")
    ap.add_argument("--seconds", type=float, help="long run: new random seeds until the time is up")
    ap.add_argument("--steps", type=int, default=30, help="random steps per case (default 30)")
    ap.add_argument("--replay", action="append", help="replay a saved case file")
    ap.add_argument("--no-regressions", action="store_true", help="skip the saved regression cases")
    ap.add_argument("--shrink", action="store_true", default=None, help="shrink failing cases (default: on)")
    ap.add_argument("--no-shrink", dest="shrink", action="store_false")
    ap.add_argument("--shrink-seconds", type=float, default=60, help="time to shrink one case (default 60)")
    ap.add_argument("--shrink-known", action="store_true",
                    help="also shrink and print known differences (to document them)")
    ap.add_argument("--save", help="save the (shrunk) failing case as regressions/NAME.json")
    ap.add_argument("--save-known", action="store_true",
                    help="with --shrink-known: save each known difference not yet saved as "
                         "regressions/known-KEY.json (replayed on every run; a note when it stops showing)")
    ap.add_argument("--print-case", action="store_true", help="print each generated case")
    ap.add_argument("--max-failures", type=int, default=3, help="stop after this many new differences")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--trace", action="store_true", help="print every step's request and both answers")
    args = ap.parse_args(argv)
    if args.shrink is None:
        args.shrink = True

    pb, kd = default_bins()
    if not kd or not os.path.exists(kd) or not os.path.exists(pb):
        print(f"difffuzz: need PB_BIN ({pb}) and KEEPD_BIN ({kd})", file=sys.stderr)
        return 2
    problems = known.validate()
    if problems:
        print("known.py is malformed:\n" + "\n".join(problems), file=sys.stderr)
        return 2

    saved_known = set()
    for _, c in load_regressions():
        if c.get("expect_known"):
            saved_known.add(c["expect_known"])
    jobs = []  # (label, case-or-seed)
    explicit = bool(args.seed or args.seeds or args.replay or args.seconds)
    if not args.no_regressions and not (args.seed or args.replay):
        jobs.extend(load_regressions())
    for path in args.replay or ():
        with open(path) as f:
            jobs.append((f"replay {os.path.basename(path)}", json.load(f)))
    seeds = list(args.seed or [])
    if args.seeds:
        a, b = args.seeds.split("-")
        seeds.extend(range(int(a), int(b) + 1))
    if not explicit:
        seeds = CI_SEEDS
    jobs.extend((f"seed {s}", s) for s in seeds)

    # a TERM (e.g. a CI timeout) still stops both servers and removes their data dirs
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = tempfile.mkdtemp(prefix="difffuzz-")
    pair = Pair(pb, kd, tmp)
    print(f"difffuzz: PB_BIN={pb}\ndifffuzz: KEEPD_BIN={kd}", flush=True)
    t0 = time.monotonic()
    stats = Stats()
    rng = random.SystemRandom()
    try:
        pair.start()
        runner = Runner(pair, log=print, trace=args.trace)
        def todo():
            yield from jobs
            if args.seconds:
                while time.monotonic() - t0 < args.seconds:
                    yield (None, rng.randrange(1, 2**31))

        for label, what in todo():
            if isinstance(what, int):
                label = label or f"seed {what}"
                case = gen.generate(what, args.steps)
            else:
                case = what
            if args.print_case:
                print(render_case(case))
            d = run_one(runner, case, label, stats, args)
            if args.seconds and stats.cases % 25 == 0:
                print(f"  ... {stats.cases} cases, {stats.steps} steps, {time.monotonic() - t0:.0f}s; known: "
                      + ", ".join(f"{k} x{n}" for k, n in sorted(stats.known_count.items())), flush=True)
            if d is not None:
                report_failure(runner, label, case, d, args)
                if len(stats.failures) >= args.max_failures:
                    print(f"stopping after {len(stats.failures)} new difference(s)")
                    break
        if args.shrink_known:
            for k, hits in sorted(stats.known.items()):
                if k in saved_known:
                    continue
                label, case, d = min(hits, key=lambda h: h[2].step_index or 0)
                small, d2 = reproduction(runner, case, d, args, log=lambda *_: None)
                print(f"\n=== known difference {k} ({label}), shrunk to {len(small['steps'])} step(s)")
                print(json.dumps(small))
                print(d2.text(2500))
                if args.save_known:
                    small = dict(small, expect_known=k)
                    path = os.path.join(REGRESSIONS, f"known-{k}.json")
                    with open(path, "w") as f:
                        json.dump(small, f, indent=1)
                        f.write("\n")
                    print(f"saved {path}")
    finally:
        pair.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    took = time.monotonic() - t0
    print(f"\ndifffuzz: {stats.cases} case(s), {stats.steps} step(s) in {took:.0f}s; "
          f"{stats.clean} without difference")
    if stats.known:
        print("known differences hit (known.py):")
        for k, hits in sorted(stats.known.items()):
            e = known.by_key(k)
            print(f"  {k} [{e.status}] x{stats.known_count[k]}: {', '.join(h[0] for h in hits[:6])}"
                  f"{' ...' if len(hits) > 6 else ''}")
    print(f"difffuzz: {stats.cases - len(stats.failures)} passed, {len(stats.failures)} failed")
    return 1 if stats.failures else 0


if __name__ == "__main__":
    sys.exit(main())
