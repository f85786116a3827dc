"""Run a generated case against PocketBase and keepd side by side and compare.

Per step the two servers get the same request (symbolic values resolved per
server), and the fuzzer compares
  1. the response: status and the masked JSON body (messages and codes included);
  2. after a write: the full stored state of every collection of the case, as a
     superuser lists it (record ids named by symbol, timestamps and the random
     parts of stored file names masked);
  3. after a write touching an auth collection: whether each user's token still
     refreshes, and whether the passwords the request carried now log in.
The first difference ends the case (after it the two states have diverged).
"""
import copy
import difflib
import json
import os
import re
import sys
import threading
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "compat"))

from harness import client  # noqa: E402
from harness.masking import Masker  # noqa: E402
from harness.runner import strict_equal  # noqa: E402
from harness.server import Server  # noqa: E402

UNBOUND_ID = "zzzzzzzzzzzzzzz"
DROP = object()  # a {"$stored"} naming no file: left out of a list, "" elsewhere  # a generated id the server never made (same on both)
FILE_RAND_RE = re.compile(r"_[a-z0-9]{10}(?=[._]|$)")
SETTINGS = {"batch": {"enabled": True, "maxRequests": 50, "timeout": 10, "maxBodySize": 0},
            "rateLimits": {"enabled": False}}
KEEPD_SETTINGS = {"lockout": {"maxFailures": 1000000, "windowSeconds": 60, "baseSeconds": 1, "maxSeconds": 1}}


# --------------------------------------------------------------------------- servers
class Pair:
    """The reference PocketBase and keepd, started once and reused by many cases
    (each case creates its own collections and deletes them afterwards)."""

    def __init__(self, pb_bin, keepd_bin, base_tmp=None):
        self.bins = (pb_bin, keepd_bin)
        self.base_tmp = base_tmp
        self.ref = self.sut = None
        self.restarts = 0

    def start(self):
        self.ref = Server("pb", self.bins[0], self.base_tmp)
        self.sut = Server("keepd", self.bins[1], self.base_tmp)
        errors = []

        def go(s):
            try:
                s.start()
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        ts = [threading.Thread(target=go, args=(s,)) for s in (self.ref, self.sut)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        if errors:
            self.stop()
            raise RuntimeError("server start failed: " + "; ".join(map(str, errors)))
        for s in (self.ref, self.sut):
            body = dict(SETTINGS)
            if s is self.sut:
                body.update(KEEPD_SETTINGS)
            r = http(s, "PATCH", "/api/settings", body, token=s.superuser_token)
            if r.status != 200:
                raise RuntimeError(f"[{s.label}] settings: {r.status} {r.raw[:300]!r}")
        return self

    def restart(self):
        self.restarts += 1
        self.stop()
        return self.start()

    def stop(self):
        for s in (self.ref, self.sut):
            if s is not None:
                s.stop()


def http(server, method, path, body=None, token=None, multipart=None):
    headers = {}
    if token:
        headers["Authorization"] = token
    data = None
    if multipart is not None:
        data, ctype = client.encode_multipart(multipart)
        headers["Content-Type"] = ctype
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    return client.send(server.host, server.port, method, path, headers, data, timeout=60)


# --------------------------------------------------------------------------- per-server state
class Side:
    def __init__(self, server):
        self.server = server
        self.label = server.label
        self.syms = {}      # symbol -> actual id (server-generated ids only)
        self.coll_ids = {}  # name -> collection id
        self.tokens = {}    # user sym -> token (None: login failed)
        self.raw_state = {}  # coll -> [raw records] (last snapshot)
        self.masker = Masker(window_start=server.started_at - 5, strict_ids=False)

    def bind(self, sym, actual):
        self.syms[sym] = actual
        self.masker.alias(actual, sym)

    def alias_explicit(self, case):
        for v in explicit_ids(case):
            self.masker.alias(v, v)

    def resolve(self, v):
        if isinstance(v, dict):
            if "$ref" in v:
                s = v["$ref"]
                if isinstance(s, str) and s.startswith("@"):
                    return self.syms.get(s, UNBOUND_ID)
                return s
            if "$stored" in v:
                sym, field, n = v["$stored"]
                rid = self.resolve({"$ref": sym})
                for recs in self.raw_state.values():
                    for rec in recs:
                        if rec.get("id") == rid:
                            val = rec.get(field)
                            vals = val if isinstance(val, list) else ([val] if val else [])
                            if n < len(vals):
                                return vals[n]
                return v.get("else", DROP)
            if "$file" in v:
                return v  # encoded by the transport
            out = {k: self.resolve(x) for k, x in v.items()}
            return {k: ("" if x is DROP else x) for k, x in out.items()}
        if isinstance(v, list):
            return [x for x in (self.resolve(y) for y in v) if x is not DROP]
        return v

    def token(self, principal):
        if principal == "superuser":
            return self.server.superuser_token
        if principal == "guest":
            return None
        return self.tokens.get(principal)


def explicit_ids(case):
    out = set()

    def walk(v):
        if isinstance(v, dict):
            if "$ref" in v and isinstance(v["$ref"], str) and not v["$ref"].startswith("@"):
                out.add(v["$ref"])
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(case.get("steps"))
    for u in case.get("users", ()):
        out.add(u["sym"])
    for st in case.get("steps", ()):
        for sub in [st] + list(st.get("requests", ())):
            rid = (sub.get("body") or {}).get("id")
            if isinstance(rid, str):
                out.add(rid)
    return {x for x in out if len(x) >= 6 and x != "nonexistent0001"}


# --------------------------------------------------------------------------- encoding
def has_file(v):
    if isinstance(v, dict):
        return "$file" in v
    if isinstance(v, list):
        return any(has_file(x) for x in v)
    return False


def file_part(v):
    name, text, mime = v["$file"]
    return {"filename": name, "content": text.encode("latin-1"), "type": mime}


def json_safe(v):
    """A body for a JSON transport: file uploads become their names."""
    if isinstance(v, dict):
        if "$file" in v:
            return v["$file"][0]
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, list):
        return [json_safe(x) for x in v]
    return v


def form_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return ""
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def multipart_fields(body, prefix="", json_payload=False):
    """-> (form dict for client.encode_multipart, payload dict for @jsonPayload)."""
    form, payload = {}, {}
    for k, v in body.items():
        if has_file(v):
            vals = v if isinstance(v, list) else [v]
            form[prefix + k] = [file_part(x) if isinstance(x, dict) and "$file" in x else form_value(x)
                                for x in vals]
        elif json_payload:
            payload[k] = v
        elif isinstance(v, list):
            form[prefix + k] = [form_value(x) for x in v] if v else [""]
        else:
            form[prefix + k] = form_value(v)
    return form, payload


def records_url(coll, rid=None):
    return f"/api/collections/{coll}/records" + (f"/{rid}" if rid is not None else "")


SUB_METHOD = {"create": "POST", "update": "PATCH", "delete": "DELETE", "upsert": "PUT"}


def sub_url(side, sub):
    if sub["op"] in ("update", "delete"):
        return records_url(sub["coll"], side.resolve(sub["target"]))
    return records_url(sub["coll"])


def build_request(side, step):
    """-> (method, path, body-or-None, multipart-or-None, token)."""
    token = side.token(step["as"])
    op = step["op"]
    if op == "batch":
        reqs, files = [], {}
        for i, sub in enumerate(step["requests"]):
            r = {"method": SUB_METHOD[sub["op"]], "url": sub_url(side, sub)}
            if "body" in sub:
                body = side.resolve(sub["body"])
                if step.get("multipart"):
                    form, payload = multipart_fields(body, prefix=f"requests.{i}.", json_payload=True)
                    files.update(form)
                    r["body"] = payload
                else:
                    r["body"] = json_safe(body)
            reqs.append(r)
        if step.get("multipart"):
            files["@jsonPayload"] = json.dumps({"requests": reqs})
            return "POST", "/api/batch", None, files, token
        return "POST", "/api/batch", {"requests": reqs}, None, token
    query = step.get("query") or {}
    q = "".join(f"&{k}=" + urllib.parse.quote(query[k], safe="") for k in ("filter", "expand", "fields")
                if query.get(k))
    if op == "list":
        return "GET", records_url(step["coll"]) + "?perPage=500" + q, None, None, token
    if op == "view":
        return "GET", records_url(step["coll"], side.resolve(step["target"])) + ("?" + q[1:] if q else ""), \
            None, None, token
    if op == "delete":
        return "DELETE", records_url(step["coll"], side.resolve(step["target"])), None, None, token
    method = SUB_METHOD[op]
    url = sub_url(side, step)
    body = side.resolve(step.get("body") or {})
    if step.get("via") == "multipart":
        form, payload = multipart_fields(body, json_payload=step.get("jsonPayload", False))
        if payload:
            form["@jsonPayload"] = json.dumps(payload)
        if not form:
            form = {"@jsonPayload": "{}"}
        return method, url, None, form, token
    return method, url, json_safe(body), None, token


# --------------------------------------------------------------------------- masking / comparison
def file_fields(case):
    return {f["name"] for c in case["collections"] for f in c["fields"] if f["type"] == "file"}


def mask_all_files(node):
    """Every string in node with the random part of stored file names masked."""
    if isinstance(node, dict):
        return {k: mask_all_files(v) for k, v in node.items()}
    if isinstance(node, list):
        return [mask_all_files(x) for x in node]
    if isinstance(node, str):
        return FILE_RAND_RE.sub("_<rand>", node)
    return node


def mask_files(node, names):
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k in names:
                if isinstance(v, str):
                    v = FILE_RAND_RE.sub("_<rand>", v)
                elif isinstance(v, list):
                    v = [FILE_RAND_RE.sub("_<rand>", x) if isinstance(x, str) else x for x in v]
                elif isinstance(v, dict):
                    # a field error naming a stored file (its message, params.file)
                    v = mask_all_files(v)
                out[k] = v
            else:
                out[k] = mask_files(v, names)
        return out
    if isinstance(node, list):
        return [mask_files(x, names) for x in node]
    return node


def sort_items(body):
    """List answers: items in the order of their (masked) ids, since generated ids differ."""
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        body = dict(body)
        body["items"] = sorted(body["items"], key=lambda it: json.dumps(it.get("id") if isinstance(it, dict)
                                                                         else it, sort_keys=True))
    return body


def diff_paths(a, b, path=""):
    """Leaf paths where two JSON values differ (strictly: 5 vs 5.0 vs true differ)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            p = f"{path}.{k}" if path else str(k)
            if k not in a:
                out.append(p + " (only keepd)")
            elif k not in b:
                out.append(p + " (only reference)")
            else:
                out.extend(diff_paths(a[k], b[k], p))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out.extend(diff_paths(x, y, f"{path}[{i}]"))
        return out
    return [] if strict_equal(a, b) else [path or "$"]


class Diff:
    """One difference between the servers, with everything a matcher may look at."""

    def __init__(self, where, case, step_index, ref, sut, ref_status=None, sut_status=None, note=""):
        self.where = where            # setup | response | state | token | login | crash
        self.case = case
        self.step_index = step_index  # None for setup
        self.ref, self.sut = ref, sut
        self.ref_status, self.sut_status = ref_status, sut_status
        self.note = note
        self.paths = diff_paths(ref, sut) if where != "crash" else ["$"]
        if ref_status != sut_status:
            self.paths = ["<status>"] + self.paths

    @property
    def step(self):
        return self.case["steps"][self.step_index] if self.step_index is not None else None

    def signature(self):
        """What makes two differences 'the same' (for shrinking): where, the kind of step, the
        statuses, the differing paths and each side's failing answer (message and error codes)."""
        st = self.step or {}
        return (self.where, st.get("op"), self.ref_status, self.sut_status,
                tuple(sorted({generalize(p) for p in self.paths})),
                answer_shape(self.ref, self.ref_status), answer_shape(self.sut, self.sut_status))

    def text(self, limit=4000):
        head = f"difference in {self.where}"
        if self.step_index is not None:
            head += f" at step {self.step_index}"
        if self.note:
            head += f" ({self.note})"
        out = [head, f"  status: reference={self.ref_status} keepd={self.sut_status}",
               "  differing paths: " + ", ".join(self.paths[:12])]
        a = json.dumps(self.ref, indent=1, sort_keys=True)
        b = json.dumps(self.sut, indent=1, sort_keys=True)
        d = "\n".join(difflib.unified_diff(a.splitlines(), b.splitlines(), "reference (PocketBase)", "keepd",
                                           lineterm="", n=2))
        out.append(d[:limit] + ("\n..." if len(d) > limit else ""))
        return "\n".join(out)


def answer_shape(body, status):
    """(status, message, sorted (field, code)) of a failed answer or of a batch's failing
    sub-request; None for a success or a state."""
    if not isinstance(status, int) or status < 400 or not isinstance(body, dict):
        return None
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    reqs = data.get("requests")
    if isinstance(reqs, dict) and len(reqs) == 1:
        (_, sub), = reqs.items()
        body = sub.get("response") or {} if isinstance(sub, dict) else {}
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
    codes = tuple(sorted((k, v.get("code")) for k, v in data.items() if isinstance(v, dict)))
    return body.get("status"), body.get("message"), codes


GEN_RE = re.compile(r"<[^>]+>")


def generalize(path):
    """state.c0.<rid>.n1 -> state.c0.*.n1; items[3].x -> items[*].x"""
    return re.sub(r"\[\d+\]", "[*]", GEN_RE.sub("*", path))


# --------------------------------------------------------------------------- the runner
class Runner:
    def __init__(self, pair, log=None, trace=False):
        self.pair = pair
        self.log = log or (lambda *_: None)
        self.trace = trace

    def send_both(self, sides, fn):
        """fn(side) -> Response, for both servers in parallel (they are separate processes)."""
        out = [None, None]

        def go(i):
            out[i] = fn(sides[i])
        t = threading.Thread(target=go, args=(1,))
        t.start()
        go(0)
        t.join()
        return out

    def masked(self, side, resp, case):
        body = resp.body_for_compare()
        m = side.masker.mask(body)
        return sort_items(mask_files(m, file_fields(case)))

    def run(self, case, classify=None):
        """-> (diffs, steps_run). Leaves the servers clean (or restarts them).

        `classify(diff)` names a known difference (or None). A step whose
        differences are all known and left the stored states equal does not end
        the case (both servers refused, say, with different messages); any
        other difference ends it: the first unknown one, or a known one after
        which the states have diverged. Each diff gets `.known` (entry or None).
        """
        sides = [Side(self.pair.ref), Side(self.pair.sut)]
        for s in sides:
            s.alias_explicit(case)
        diffs = []
        steps_run = 0
        classify = classify or (lambda d: None)
        try:
            d = self.setup(case, sides)
            if d:
                d.known = classify(d)
                return [d], 0
            no_token = {sym for sym, tok in sides[0].tokens.items() if tok is None}
            for i, step in enumerate(case["steps"]):
                ds, diverged = self.run_step(case, sides, i, step)
                steps_run += 1
                if not ds:
                    continue
                for d in ds:
                    d.no_token = no_token  # users whose login failed: they act as guests
                first = ds[0]
                first.known = classify(first)
                diffs.append(first)
                # a known response difference explains what follows from it in the same step
                if first.known is None or diverged:
                    break
            return diffs, steps_run
        finally:
            self.cleanup(case)

    # -- setup
    def setup(self, case, sides):
        colls = case["collections"]
        # 1. every collection with its fields except relations to itself (not creatable in one go),
        #    without rules (they may name collections created later)
        for c in colls:
            def create(side, c=c):
                body = {k: v for k, v in c.items() if not k.endswith("Rule")}
                body["fields"] = [self.field_json(side, f) for f in c["fields"]
                                  if not (f["type"] == "relation" and f["collection"] == c["name"])]
                return http(side.server, "POST", "/api/collections", body, side.server.superuser_token)
            rs = self.send_both(sides, create)
            d = self.compare_simple(case, sides, rs, f"create collection {c['name']}")
            if d:
                return d
            if rs[0].status != 200:
                return Diff("setup", case, None, rs[0].json, rs[1].json, rs[0].status, rs[1].status,
                            note=f"the reference refused collection {c['name']}: the generator made an "
                                 f"invalid schema")
            for s, r in zip(sides, rs):
                s.coll_ids[c["name"]] = r.json["id"]
                s.masker.alias(r.json["id"], "coll:" + c["name"])
        # 2. self relations and the rules
        for c in colls:
            def patch(side, c=c):
                body = {k: v for k, v in c.items() if k.endswith("Rule")}
                if any(f["type"] == "relation" and f["collection"] == c["name"] for f in c["fields"]):
                    cur = http(side.server, "GET", f"/api/collections/{c['name']}", None,
                               side.server.superuser_token).json
                    have = {f["name"] for f in cur["fields"]}
                    body["fields"] = cur["fields"] + [self.field_json(side, f) for f in c["fields"]
                                                      if f["name"] not in have]
                return http(side.server, "PATCH", f"/api/collections/{c['name']}", body,
                            side.server.superuser_token)
            rs = self.send_both(sides, patch)
            d = self.compare_simple(case, sides, rs, f"rules of {c['name']}")
            if d:
                return d
            if rs[0].status != 200:
                return Diff("setup", case, None, rs[0].json, rs[1].json, rs[0].status, rs[1].status,
                            note=f"the reference refused the rules of {c['name']}: generator bug")
        # 3. users, created by a superuser through the API, then logged in
        for u in case["users"]:
            rs = self.send_both(sides, lambda side: http(side.server, "POST", records_url(u["collection"]),
                                                         side.resolve(u["body"]), side.server.superuser_token))
            d = self.compare_simple(case, sides, rs, f"create user {u['sym']}")
            if d:
                return d
        for u in case["users"]:
            rs = self.send_both(sides, lambda side: http(
                side.server, "POST", f"/api/collections/{u['collection']}/auth-with-password",
                {"identity": u["email"], "password": u["password"]}))
            d = self.compare_simple(case, sides, rs, f"login {u['sym']}")
            if d:
                return d
            for s, r in zip(sides, rs):
                s.tokens[u["sym"]] = r.json.get("token") if r.status == 200 and r.is_json else None
        self.snapshot(case, sides)
        return None

    def field_json(self, side, f):
        f = dict(f)
        if f["type"] == "relation":
            f["collectionId"] = side.coll_ids.get(f.pop("collection"), "missing")
        return f

    def compare_simple(self, case, sides, rs, what, where="setup", step_index=None):
        a, b = (self.masked(s, r, case) for s, r in zip(sides, rs))
        if rs[0].status != rs[1].status or not strict_equal(a, b):
            return Diff(where, case, step_index, a, b, rs[0].status, rs[1].status, note=what)
        return None

    def cleanup(self, case):
        ok = True
        for c in reversed(case["collections"]):
            for s in (self.pair.ref, self.pair.sut):
                if not s.alive():
                    ok = False
                    continue
                r = http(s, "DELETE", f"/api/collections/{c['name']}", None, s.superuser_token)
                if r.status not in (204, 404):
                    ok = False
        if not ok:
            self.log("cleanup failed: restarting both servers")
            self.pair.restart()

    # -- snapshots
    def snapshot(self, case, sides, new_syms=()):
        """Stored state of every case collection on both servers (masked), binding new ids."""
        raws = []
        for side in sides:
            raw = {}
            for c in case["collections"]:
                # (no sort: the generated collections have no created field; the state is keyed by id)
                r = http(side.server, "GET", records_url(c["name"]) + "?perPage=500",
                         None, side.server.superuser_token)
                if r.status != 200:
                    raise RuntimeError(f"[{side.label}] listing {c['name']} as a superuser: {r.status} "
                                       f"{r.raw[:300]!r}")
                raw[c["name"]] = (r.json or {}).get("items", []) if r.status == 200 else \
                    {"<status>": r.status, "body": r.json}
            side.raw_state = {k: v for k, v in raw.items() if isinstance(v, list)}
            raws.append(raw)
        # bind ids the servers generated, per collection, in the order the step declared them
        wanted = {}
        for coll, sym in new_syms:
            wanted.setdefault(coll, []).append(sym)
        for side, raw in zip(sides, raws):
            known = set(side.syms.values()) | set(explicit_ids(case)) | {UNBOUND_ID}
            for coll, recs in raw.items():
                if not isinstance(recs, list):
                    continue
                fresh = [rec for rec in recs if rec.get("id") not in known]
                if len(fresh) > 1:  # several in one step (a batch): pair them by content, not list order
                    fresh.sort(key=lambda rec: json.dumps(
                        {k: v for k, v in rec.items() if k not in ("id", "created", "updated")}, sort_keys=True))
                for sym, rid in zip(wanted.get(coll, []), [rec["id"] for rec in fresh]):
                    if sym not in side.syms:
                        side.bind(sym, rid)
        out = []
        ff = file_fields(case)
        for side, raw in zip(sides, raws):
            st = {}
            for coll, recs in raw.items():
                if isinstance(recs, list):
                    masked = [mask_files(side.masker.mask(rec), ff) for rec in recs]
                    st[coll] = {str(m.get("id")): m for m in masked}
                else:
                    st[coll] = side.masker.mask(recs)
            out.append(st)
        return out

    # -- steps
    def run_step(self, case, sides, i, step):
        """-> (diffs, diverged): the step's differences, first the response's; diverged
        when the stored states (or tokens) no longer agree."""
        if not self.pair.sut.alive() or not self.pair.ref.alive():
            return [Diff("crash", case, i, None, None, note="a server is not running")], True
        rs = self.send_both(sides, lambda side: self.send(side, step))
        if self.trace:
            m, path = build_request(sides[0], step)[:2]
            self.log(f"  step {i}: {step['as']} {m} {path} -> reference {rs[0].status} keepd {rs[1].status}")
            for r, lab in zip(rs, ("reference", "keepd")):
                self.log(f"    {lab}: {r.raw[:600].decode('utf-8', 'replace')}")
        if not self.pair.sut.alive():
            return [Diff("crash", case, i, None, self.pair.sut.log_tail(), rs[0].status, rs[1].status,
                         note="keepd died")], True
        writes = step["op"] not in ("view", "list")
        if writes:
            new = [(step["coll"], step["new"])] if step.get("new") else []
            for sub in step.get("requests", ()):
                if sub.get("new"):
                    new.append((sub["coll"], sub["new"]))
            states = self.snapshot(case, sides, new)
        diffs = []
        d = self.compare_simple(case, sides, rs, "response", "response", i)
        if d:
            diffs.append(d)
        if not writes:
            return diffs, False
        if not strict_equal(states[0], states[1]):
            diffs.append(Diff("state", case, i, states[0], states[1], rs[0].status, rs[1].status,
                              note="stored state"))
            return diffs, True
        d = self.auth_checks(case, sides, i, step)
        if d:
            diffs.append(d)
            return diffs, True
        return diffs, False

    def send(self, side, step):
        method, path, body, form, token = build_request(side, step)
        if form is not None:
            return http(side.server, method, path, token=token, multipart=form)
        return http(side.server, method, path, body, token=token)

    def auth_checks(self, case, sides, i, step):
        subs = step.get("requests") or [step]
        auth_colls = {c["name"] for c in case["collections"] if c["type"] == "auth"}
        touched = {s["coll"] for s in subs if s.get("coll") in auth_colls}
        if not touched:
            return None
        # every user of a touched collection: does the token still work?
        for u in case["users"]:
            if u["collection"] not in touched:
                continue
            rs = self.send_both(sides, lambda side: http(
                side.server, "POST", f"/api/collections/{u['collection']}/auth-refresh", {},
                token=side.tokens.get(u["sym"])))
            if rs[0].status != rs[1].status:
                return Diff("token", case, i, self.masked(sides[0], rs[0], case), self.masked(sides[1], rs[1], case),
                            rs[0].status, rs[1].status, note=f"auth-refresh of {u['sym']} after the step")
        # passwords the request carried: which of them log in now?
        for sub in subs:
            if sub.get("coll") not in auth_colls or not isinstance(sub.get("body"), dict):
                continue
            body = sub["body"]
            cands = [body[k] for k in ("password", "oldPassword") if isinstance(body.get(k), str) and body[k]]
            if not cands:
                continue
            sym = (sub.get("target") or body.get("id") or {"$ref": sub.get("new")})
            sym = sym["$ref"] if isinstance(sym, dict) else sym
            if not isinstance(sym, str):
                continue
            for pw in cands:
                def login(side, sym=sym, pw=pw):
                    rid = side.resolve({"$ref": sym})
                    rec = next((x for x in side.raw_state.get(sub["coll"], []) if x.get("id") == rid), None)
                    if rec is None:
                        return None
                    return http(side.server, "POST", f"/api/collections/{sub['coll']}/auth-with-password",
                                {"identity": rec.get("email"), "password": pw})
                rs = self.send_both(sides, login)
                if rs[0] is None or rs[1] is None:
                    continue
                if rs[0].status != rs[1].status:
                    return Diff("login", case, i, self.masked(sides[0], rs[0], case),
                                self.masked(sides[1], rs[1], case), rs[0].status, rs[1].status,
                                note=f"login of {sym} with the password {pw!r} after the step")
        return None


def truncated(case, upto):
    """The case with the steps up to and including index `upto`."""
    c = copy.deepcopy(case)
    c["steps"] = c["steps"][:upto + 1]
    return c

