#!/usr/bin/env python3
"""CycloneDX 1.5 SBOM (JSON) of the keepd binary's dependencies.

    packaging/sbom.py [--target TRIPLE] > keepd.cdx.json

Reads `cargo metadata` (locked, resolved for the target's platform, normal
dependencies only: what is linked into the shipped binary) and writes one
component per crate with its version, purl, license expression and source.
"""
import argparse
import json
import subprocess
import sys
import uuid
from datetime import datetime, timezone


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default=None)
    args = ap.parse_args()
    target = args.target
    if not target:
        vv = subprocess.run(["rustc", "-vV"], check=True, capture_output=True, text=True).stdout
        target = next(l.split(": ", 1)[1] for l in vv.splitlines() if l.startswith("host: "))
    cmd = ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", target]
    meta = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    pkgs = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    root = next(p for p in meta["packages"] if p["name"] == "keepd")
    # Walk normal (non-dev, non-build) dependencies from keepd.
    seen, stack = set(), [root["id"]]
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for d in nodes[pid]["deps"]:
            if any(k["kind"] is None for k in d["dep_kinds"]):
                stack.append(d["pkg"])
    seen.discard(root["id"])

    def component(p):
        c = {
            "type": "library",
            "bom-ref": f"pkg:cargo/{p['name']}@{p['version']}",
            "name": p["name"],
            "version": p["version"],
            "purl": f"pkg:cargo/{p['name']}@{p['version']}",
        }
        if p.get("license"):
            c["licenses"] = [{"expression": p["license"]}]
        if p.get("description"):
            c["description"] = p["description"].strip()
        if p.get("repository"):
            c["externalReferences"] = [{"type": "vcs", "url": p["repository"]}]
        return c

    comps = sorted((component(pkgs[i]) for i in seen), key=lambda c: (c["name"], c["version"]))
    deps = []
    for pid in sorted(seen | {root["id"]}):
        p = pkgs[pid]
        refs = sorted(
            f"pkg:cargo/{pkgs[d['pkg']]['name']}@{pkgs[d['pkg']]['version']}"
            for d in nodes[pid]["deps"]
            if d["pkg"] in seen and any(k["kind"] is None for k in d["dep_kinds"])
        )
        deps.append({"ref": f"pkg:cargo/{p['name']}@{p['version']}", "dependsOn": refs})
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{"type": "application", "name": "keepd packaging/sbom.py"}]},
            "component": {
                "type": "application",
                "bom-ref": f"pkg:cargo/keepd@{root['version']}",
                "name": "keepd",
                "version": root["version"],
                "purl": f"pkg:cargo/keepd@{root['version']}",
                "licenses": [{"expression": root.get("license") or "MIT"}],
            },
        },
        "components": comps,
        "dependencies": deps,
    }
    json.dump(bom, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
