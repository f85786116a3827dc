"""Import figures: a pb_data made by the real PocketBase through its API
(N records over two collections with a relation, F stored files), then
`keepd import pocketbase` timed, with its peak RSS (getrusage of the child).

    python3 tests/bench/import_bench.py KEEPD PB [--records N] [--files F]

Prints one Markdown table row. Standard library only.
"""
import argparse
import json
import os
import sys
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def call(base, method, path, body=None, token=None, raw=None, ctype="application/json"):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": ctype}
    if token:
        headers["Authorization"] = token
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            text = r.read()
            return json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {path}: {e.code} {e.read()[:500]!r}")


def multipart(fields, file_field, name, content):
    boundary = uuid.uuid4().hex
    out = b""
    for k, v in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
    out += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def make_pb_data(pb, root, n_records, n_files):
    pb_dir = os.path.join(root, "pb_data")
    subprocess.run([pb, "superuser", "upsert", "bench@example.com", "bench-password-1", "--dir", pb_dir],
                   check=True, capture_output=True, cwd=root)
    port = free_port()
    proc = subprocess.Popen([pb, "serve", "--http", f"127.0.0.1:{port}", "--dir", pb_dir],
                            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/api/health", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        tok = call(base, "POST", "/api/collections/_superusers/auth-with-password",
                   {"identity": "bench@example.com", "password": "bench-password-1"})["token"]
        call(base, "PATCH", "/api/settings", {"batch": {"enabled": True, "maxRequests": 1000, "timeout": 60, "maxBodySize": 0}}, tok)
        groups = call(base, "POST", "/api/collections", {
            "name": "groups", "type": "base", "listRule": "", "viewRule": "",
            "fields": [{"name": "name", "type": "text"}]}, tok)
        call(base, "POST", "/api/collections", {
            "name": "items", "type": "base", "listRule": "", "viewRule": "",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "n", "type": "number"},
                {"name": "ok", "type": "bool"},
                {"name": "meta", "type": "json"},
                {"name": "group", "type": "relation", "collectionId": groups["id"], "maxSelect": 1},
                {"name": "doc", "type": "file", "maxSelect": 1, "maxSize": 10_000_000},
            ],
            "indexes": ["CREATE INDEX idx_items_n ON items (n)"]}, tok)
        gids = [call(base, "POST", "/api/collections/groups/records", {"name": f"g{i}"}, tok)["id"] for i in range(20)]
        per = 1000
        for start in range(0, n_records - n_files, per):
            reqs = [{"method": "POST", "url": "/api/collections/items/records",
                     "body": {"title": f"item {i}", "n": i, "ok": i % 2 == 0,
                              "meta": {"i": i, "tags": ["a", "b"]}, "group": gids[i % 20]}}
                    for i in range(start, min(start + per, n_records - n_files))]
            call(base, "POST", "/api/batch", {"requests": reqs}, tok)
        for i in range(n_files):
            content = os.urandom(2000 + (i * 37) % 20000)
            body, ctype = multipart({"title": f"file {i}", "n": str(i), "group": gids[i % 20]}, "doc", f"doc{i}.bin", content)
            call(base, "POST", "/api/collections/items/records", raw=body, ctype=ctype, token=tok)
    finally:
        proc.terminate()
        proc.wait(30)
    return pb_dir


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("keepd")
    ap.add_argument("pb")
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--files", type=int, default=1_000)
    a = ap.parse_args()
    a.keepd, a.pb = os.path.abspath(a.keepd), os.path.abspath(a.pb)
    root = tempfile.mkdtemp(prefix="keepd-import-bench-")
    os.chmod(root, 0o700)
    try:
        t0 = time.monotonic()
        pb_dir = make_pb_data(a.pb, root, a.records, a.files)
        made = time.monotonic() - t0
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(pb_dir) for f in fs)
        target = os.path.join(root, "keepd_data")
        t0 = time.monotonic()
        # Through a fresh interpreter, whose children are keepd alone: the
        # peak RSS is keepd's, not PocketBase's.
        probe = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
                 "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)")
        r = subprocess.run([sys.executable, "-c", probe, a.keepd, "import", "pocketbase", pb_dir, "--dir", target],
                           cwd=root, capture_output=True, text=True)
        took = time.monotonic() - t0
        if r.returncode != 0:
            raise SystemExit(f"import failed:\n{r.stdout}\n{r.stderr}")
        rss_mib = int(r.stderr.strip().splitlines()[-1]) / 1024
        summary = [line for line in r.stdout.splitlines() if "items:" in line or "stored file" in line]
        print(f"| {a.records:,} records, {a.files:,} files, pb_data {size / 2**20:.1f} MiB "
              f"(made by PocketBase in {made:.0f} s) | {took:.2f} s | {rss_mib:.1f} MiB | {'; '.join(s.strip() for s in summary)} |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
