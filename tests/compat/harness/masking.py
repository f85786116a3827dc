"""Replace run-specific values (ids, timestamps, tokens, secrets) by stable placeholders.

One Masker per server per scenario.  Ids are mapped *consistently*: the first
time an id value is seen (sorted-key walk of the response) it gets a placeholder
(`<record#3>`, `<collection#1>`, `<field#2>`, or `<NAME>` when a step captured it
with `save`), and every later occurrence of the same value -- whole string or
substring (e.g. inside an index SQL or an error message) -- becomes the same
placeholder.  Relations therefore still have to point at the *right* record.

Everything else (structure, key sets, JSON types incl. int-vs-float, values) is
kept exact.
"""
import base64
import datetime as dt
import json
import os
import re
import time

TS_RE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?Z")
JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+")
TIMESTAMP_KEYS = {"created", "updated"}
SECRET_KEYS = {"secret", "tokenKey"}
JWT_TIME_CLAIMS = {"exp", "iat", "nbf"}
MIN_SUBSTRING_ID_LEN = 6
# seconds of slack around the server's lifetime for "generated" timestamps
TS_SLACK = 5.0

# PocketBase collection ids ("pbc_" + crc32(type+name)) and field ids
# (type + crc32(name)) are deterministic.  With COMPAT_STRICT_IDS=1 they are
# compared verbatim instead of being masked.
STRICT_IDS = os.environ.get("COMPAT_STRICT_IDS", "") not in ("", "0", "false")
# what "deterministic" looks like; other ids of these kinds (explicit ids, the
# random `_clone_XXXX` ids of view-collection fields) are still masked
DETERMINISTIC_ID_RE = {"collection": re.compile(r"^pbc_\d+$"), "field": re.compile(r"^[a-zA-Z]+\d+$")}
NEVER = re.compile(r"(?!)")


def _b64json(seg):
    seg += "=" * (-len(seg) % 4)
    return json.loads(base64.urlsafe_b64decode(seg.encode()))


def _is_collection(d):
    return isinstance(d.get("fields"), list) and "name" in d and "type" in d and "id" in d


class Masker:
    def __init__(self, window_start, strict_ids=STRICT_IDS):
        self.window_start = window_start
        self.strict_ids = strict_ids
        self.ids = {}  # raw value -> placeholder
        self.counters = {}
        self._re = None

    # -- learning ---------------------------------------------------------
    def alias(self, value, name):
        """Mask `value` as `<name>` from now on (a caller that knows which
        values correspond between the servers names them itself, so the
        placeholders do not depend on the order values were first seen)."""
        if isinstance(value, str) and value and self.ids.get(value) != f"<{name}>":
            self.ids[value] = f"<{name}>"
            self._re = None

    def _register(self, value, category, names):
        if not isinstance(value, str) or value == "" or value in self.ids:
            return
        if self.strict_ids and DETERMINISTIC_ID_RE.get(category, NEVER).match(value):
            return
        if value in names:
            ph = f"<{names[value]}>"
        else:
            n = self.counters.get(category, 0) + 1
            self.counters[category] = n
            ph = f"<{category}#{n}>"
        self.ids[value] = ph
        self._re = None

    def learn(self, node, names, in_fields=False):
        if isinstance(node, dict):
            keys = sorted(node)
            if "id" in node:
                if in_fields:
                    cat = "field"
                elif _is_collection(node):
                    cat = "collection"
                else:
                    cat = "record"
                self._register(node["id"], cat, names)
            if "collectionId" in node:
                self._register(node["collectionId"], "collection", names)
            for k in keys:
                v = node[k]
                if isinstance(v, str):
                    for m in JWT_RE.finditer(v):
                        try:
                            self.learn(_b64json(m.group(0).split(".")[1]), names)
                        except Exception:  # noqa: BLE001
                            pass
                else:
                    self.learn(v, names, in_fields=(k == "fields" and _is_collection(node)))
        elif isinstance(node, list):
            for v in node:
                self.learn(v, names, in_fields=in_fields)
        elif isinstance(node, str):
            for m in JWT_RE.finditer(node):
                try:
                    self.learn(_b64json(m.group(0).split(".")[1]), names)
                except Exception:  # noqa: BLE001
                    pass

    # -- masking ----------------------------------------------------------
    def _id_regex(self):
        if self._re is None:
            subs = sorted((v for v in self.ids if len(v) >= MIN_SUBSTRING_ID_LEN), key=len, reverse=True)
            self._re = re.compile("|".join(re.escape(v) for v in subs)) if subs else False
        return self._re

    def _mask_ts(self, m, force):
        s = m.group(0)
        if force:
            return "<timestamp>"
        try:
            t = dt.datetime.strptime(s[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc).timestamp()
        except ValueError:
            return s
        if self.window_start - TS_SLACK <= t <= time.time() + TS_SLACK:
            return "<timestamp>"
        return s

    def _mask_jwt(self, tok):
        parts = tok.split(".")
        try:
            header = _b64json(parts[0])
            payload = _b64json(parts[1])
        except Exception:  # noqa: BLE001
            return "<JWT:undecodable>"
        now = time.time()
        masked = {}
        for k, v in payload.items():
            if k in JWT_TIME_CLAIMS and isinstance(v, (int, float)):
                # keep the token lifetime (rounded to the minute), drop the clock
                masked[k] = f"<now{int(round((v - now) / 60.0) * 60):+d}s>"
            else:
                masked[k] = self.mask_value(v)
        return "<JWT %s %s>" % (json.dumps(header, sort_keys=True),
                                json.dumps(masked, sort_keys=True, separators=(",", ":")))

    def mask_string(self, s, key=None):
        if key in SECRET_KEYS and s:
            return "<secret>"
        if JWT_RE.search(s):
            s = JWT_RE.sub(lambda m: self._mask_jwt(m.group(0)), s)
        if s in self.ids:
            return self.ids[s]
        r = self._id_regex()
        if r:
            s = r.sub(lambda m: self.ids[m.group(0)], s)
        if TS_RE.search(s):
            s = TS_RE.sub(lambda m: self._mask_ts(m, key in TIMESTAMP_KEYS), s)
        return s

    def mask_value(self, node, key=None):
        if isinstance(node, dict):
            return {self.mask_string(k): self.mask_value(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [self.mask_value(v, key) for v in node]
        if isinstance(node, str):
            return self.mask_string(node, key)
        return node

    def mask(self, body, names=None):
        self.learn(body, names or {})
        return self.mask_value(body)
