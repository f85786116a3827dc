"""Execute scenario steps against servers, capture variables, compare masked results."""
import difflib
import json
import re
import urllib.parse

from . import client, jsonpath
from .masking import Masker

VAR_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
STEP_KEYS = {"name", "method", "path", "query", "auth", "body", "raw", "raw_generate", "form",
             "headers", "save", "expect", "note", "mask"}
SPECIAL_IGNORE = {"<status>", "<content-type>"}


class ScenarioError(AssertionError):
    """The scenario itself is broken (e.g. the reference does not behave as the step expects)."""


# --------------------------------------------------------------------------- helpers
def substitute(value, vars_):
    if isinstance(value, str):
        m = VAR_RE.fullmatch(value)
        if m and m.group(1) in vars_:
            return vars_[m.group(1)]  # whole-string var keeps its JSON type
        return VAR_RE.sub(lambda mm: str(vars_[mm.group(1)]) if mm.group(1) in vars_ else mm.group(0), value)
    if isinstance(value, list):
        return [substitute(v, vars_) for v in value]
    if isinstance(value, dict):
        return {substitute(k, vars_): substitute(v, vars_) for k, v in value.items()}
    return value


def strict_equal(a, b):
    """JSON equality that also distinguishes bool/int/float (5 vs 5.0 vs true)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b))
    return a == b


def _typed_dump(v):
    """JSON text where floats keep a visible '.0' so int/float diffs show up in the diff."""
    return json.dumps(v, indent=2, sort_keys=True, ensure_ascii=False)


def validate_scenario(sc):
    problems = []
    names = set()
    for m in sc.get("mask") or ():
        if not str(m.get("reason", "")).strip() or "regex" not in m:
            problems.append("scenario mask entries need 'regex' and a non-empty 'reason'")
    for i, st in enumerate(sc["steps"]):
        label = f"step {i} ({st.get('name')!r})"
        if "name" not in st or "method" not in st or "path" not in st:
            problems.append(f"{label}: needs name, method and path")
        if st.get("name") in names:
            problems.append(f"{label}: duplicate step name")
        names.add(st.get("name"))
        extra = set(st) - STEP_KEYS
        if extra:
            problems.append(f"{label}: unknown keys {sorted(extra)}")
        if sum(k in st for k in ("body", "raw", "raw_generate", "form")) > 1:
            problems.append(f"{label}: only one of body/raw/raw_generate/form")
        for m in st.get("mask") or ():
            if not str(m.get("reason", "")).strip() or "regex" not in m:
                problems.append(f"{label}: mask entries need 'regex' and a non-empty 'reason'")
            else:
                try:
                    re.compile(m["regex"])
                except re.error as e:
                    problems.append(f"{label}: bad mask regex: {e}")
        for var, path in (st.get("save") or {}).items():
            try:
                jsonpath.parse(path)
            except jsonpath.PathError as e:
                problems.append(f"{label}: save {var}: {e}")
    return problems


# --------------------------------------------------------------------------- per-server state
class ServerRun:
    def __init__(self, server):
        self.server = server
        self.vars = {}
        self.masker = Masker(window_start=server.started_at)

    def build(self, step, default_auth):
        v = self.vars
        path = substitute(step["path"], v)
        if step.get("query"):
            q = substitute(step["query"], v)
            qs = urllib.parse.urlencode([(k, x) for k, val in q.items()
                                         for x in (val if isinstance(val, list) else [val])],
                                        quote_via=urllib.parse.quote, safe="")
            path += ("&" if "?" in path else "?") + qs
        headers = {str(k): str(x) for k, x in substitute(step.get("headers", {}), v).items()}
        auth = step.get("auth", default_auth)
        if auth == "superuser":
            headers.setdefault("Authorization", self.server.superuser_token)
        elif auth not in (None, "guest"):
            headers.setdefault("Authorization", str(v.get(auth, f"<unset token {auth}>")))
        body = None
        if "body" in step:
            body = json.dumps(substitute(step["body"], v)).encode()
            headers.setdefault("Content-Type", "application/json")
        elif "raw" in step:
            raw = step["raw"]
            body = raw if isinstance(raw, bytes) else substitute(raw, v).encode()
        elif "raw_generate" in step:
            g = step["raw_generate"]
            body = (g.get("prefix", "") + g["fill"] * g["size"] + g.get("suffix", "")).encode()
        elif "form" in step:
            body, ctype = client.encode_multipart(substitute(step["form"], v))
            headers.setdefault("Content-Type", ctype)
        return step["method"], path, headers, body

    def execute(self, step, default_auth, scenario_masks=()):
        method, target, headers, body = self.build(step, default_auth)
        resp = client.send(self.server.host, self.server.port, method, target, headers, body)
        names = {}
        save_errors = []
        for var, path in (step.get("save") or {}).items():
            try:
                val = jsonpath.get(resp.json, path) if resp.is_json else jsonpath.get(None, path)
            except KeyError:
                save_errors.append(f"save {var}={path}: not found in response")
                continue
            self.vars[var] = val
            if isinstance(val, str):
                names[val] = var
        masked = self.masker.mask(resp.body_for_compare(), names)
        for m in list(scenario_masks) + list(step.get("mask") or ()):
            masked = _regex_mask(masked, re.compile(m["regex"]))
        return {"request": f"{method} {target}", "status": resp.status, "media_type": resp.media_type,
                "body": masked, "save_errors": save_errors}


def _regex_mask(node, rx):
    if isinstance(node, dict):
        return {rx.sub("<masked>", k): _regex_mask(v, rx) for k, v in node.items()}
    if isinstance(node, list):
        return [_regex_mask(v, rx) for v in node]
    if isinstance(node, str):
        return rx.sub("<masked>", node)
    return node


# --------------------------------------------------------------------------- comparison
def _apply_ignores(res, ignores):
    body = json.loads(json.dumps(res["body"]))  # deep copy
    status, media = res["status"], res["media_type"]
    for ig in ignores:
        p = ig["path"]
        if p == "<status>":
            status = "<ignored>"
        elif p == "<content-type>":
            media = "<ignored>"
        elif p == "$":
            body = "<ignored>"
        else:
            jsonpath.remove(body, p, "<ignored>")
    return status, media, body


def compare_step(step, ref, sut, ignores=()):
    """Return None if equal, else a readable report."""
    rs, rm, rb = _apply_ignores(ref, ignores)
    ss, sm, sb = _apply_ignores(sut, ignores)
    problems = []
    if rs != ss:
        problems.append(f"status: reference={rs} keepd={ss}")
    if rm != sm:
        problems.append(f"content-type: reference={rm!r} keepd={sm!r}")
    if sut["save_errors"]:
        problems.extend(f"keepd {e}" for e in sut["save_errors"])
    if not strict_equal(rb, sb):
        a, b = _typed_dump(rb).splitlines(), _typed_dump(sb).splitlines()
        diff = "\n".join(difflib.unified_diff(a, b, "reference (PocketBase)", "keepd", lineterm="", n=3))
        if not diff:  # only int/float/bool type differences
            diff = "(values equal as text but JSON types differ, e.g. 5 vs 5.0)\n" + \
                   _type_diff(rb, sb)
        problems.append("body differs:\n" + diff)
    if not problems:
        return None
    return "\n".join(problems)


def _type_diff(a, b, path="$"):
    if type(a) is not type(b):
        return f"  {path}: reference {type(a).__name__} {a!r} vs keepd {type(b).__name__} {b!r}\n"
    out = ""
    if isinstance(a, dict):
        for k in a:
            if k in b:
                out += _type_diff(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b)):
            out += _type_diff(x, y, f"{path}[{i}]")
    return out


def format_body(b, limit=6000):
    s = _typed_dump(b)
    return s if len(s) <= limit else s[:limit] + f"\n... ({len(s) - limit} more chars)"


def run_differential(scenario, ref_server, sut_server, known_differences, fail_fast=False):
    """Run every step on both servers; return list of failure reports (empty = pass)."""
    default_auth = scenario.get("auth", "superuser")
    ref, sut = ServerRun(ref_server), ServerRun(sut_server)
    failures = []
    for i, step in enumerate(scenario["steps"]):
        r = ref.execute(step, default_auth, scenario.get("mask", ()))
        header = f"[{scenario['id']}] step {i} {step['name']!r}: {r['request']}"
        if r["save_errors"]:
            raise ScenarioError(f"{header}\nreference: {r['save_errors']}\n{format_body(r['body'])}")
        exp = step.get("expect")
        if exp is not None and r["status"] != exp:
            raise ScenarioError(f"{header}\nscenario expects status {exp}, the reference answered "
                                f"{r['status']}:\n{format_body(r['body'])}")
        if not sut_server.alive():
            failures.append(f"{header}\nkeepd is not running any more (exit {sut_server.proc.returncode}):\n"
                            f"{sut_server.log_tail()}")
            break
        s = sut.execute(step, default_auth, scenario.get("mask", ()))
        report = compare_step(step, r, s, known_differences.get(step["name"], ()))
        if report:
            failures.append(f"{header}\n{report}\n--- reference body:\n{format_body(r['body'])}\n"
                            f"--- keepd body:\n{format_body(s['body'])}")
            if fail_fast:
                break
    return failures


def run_single(scenario, server):
    """Transcript of one server (used by dump.py)."""
    default_auth = scenario.get("auth", "superuser")
    run = ServerRun(server)
    out = []
    for step in scenario["steps"]:
        r = run.execute(step, default_auth, scenario.get("mask", ()))
        out.append((step, r))
    return out
