#!/usr/bin/env python3
"""Print the masked transcript of scenarios run against ONE binary.

    python dump.py [--bin PATH] [SCENARIO_ID ...]      (default: $PB_BIN, all scenarios)

Handy to see what PocketBase answers for each step (the expected behaviour),
or what keepd answers, without running the differential test.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.runner import run_single  # noqa: E402
from harness.server import Server  # noqa: E402
from scenarios import load_all  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("PB_BIN"))
    ap.add_argument("--compact", action="store_true", help="one line per body")
    ap.add_argument("ids", nargs="*")
    a = ap.parse_args()
    if not a.bin:
        ap.error("--bin or PB_BIN required")
    scenarios = [s for s in load_all() if not a.ids or s["id"] in a.ids]
    for sc in scenarios:
        print(f"######## {sc['id']}: {sc.get('title', '')}")
        srv = Server("dump", a.bin).start()
        try:
            for step, r in run_single(sc, srv):
                print(f"--- {step['name']}\n>>> {r['request']}")
                for k in ("body", "raw", "form"):
                    if k in step:
                        print(f">>> {k}: {json.dumps(step[k], default=repr) if k != 'raw' else step[k]!r}"[:2000])
                print(f"<<< {r['status']} {r['media_type']}")
                if a.compact:
                    print(json.dumps(r["body"], sort_keys=True, ensure_ascii=False))
                else:
                    print(json.dumps(r["body"], indent=1, sort_keys=True, ensure_ascii=False))
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
