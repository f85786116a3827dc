"""Known differences between keepd and PocketBase 0.40.6 found by the fuzzer.

Each entry: a key, a status, the reason, and a matcher over a `Diff`
(execute.py). The matchers are deliberately narrow: they check who sent what
to which collection, which server answered what, and that *every* differing
path is explained by the entry, so a new, different difference still fails.

status:
  "open"        a keepd bug, not fixed yet (each entry says whether it is being
                fixed or only reported); remove the entry when it is fixed
  "deliberate"  a deliberate difference, documented in COMPATIBILITY.md
"""

OPEN = "open"
DELIBERATE = "deliberate"


class Known:
    def __init__(self, key, status, reason, match):
        self.key, self.status, self.reason, self._match = key, status, reason, match

    def match(self, diff):
        try:
            return bool(self._match(diff))
        except (KeyError, TypeError, AttributeError, IndexError, ValueError):
            return False


# --------------------------------------------------------------------------- helpers
def subs(d):
    """The (sub-)requests of the step: [(index or None, sub)]."""
    st = d.step
    if st is None:
        return []
    if st["op"] == "batch":
        return list(enumerate(st["requests"]))
    return [(None, st)]


def coll(d, name):
    return next(c for c in d.case["collections"] if c["name"] == name)


def field(d, cname, fname):
    return next((f for f in coll(d, cname)["fields"] if f["name"] == fname), None)


def base_key(k):
    return k.strip("+-")


def non_superuser(d):
    return d.step is not None and d.step["as"] != "superuser"


def hidden_keys(d, sub):
    """Body keys of a (sub-)request that name hidden fields (modifiers included), by field name."""
    out = set()
    for k in (sub.get("body") or {}):
        f = field(d, sub["coll"], base_key(k))
        if f is not None and f.get("hidden"):
            out.add(base_key(k))
    return out


def failure(body, status):
    """(index, status, message, data) of a failed answer: a batch's failing sub-request
    (index = its position) or a direct request (index None); None for a success."""
    if not isinstance(status, int) or status < 400 or not isinstance(body, dict):
        return None
    reqs = (body.get("data") or {}).get("requests") if isinstance(body.get("data"), dict) else None
    if isinstance(reqs, dict) and len(reqs) == 1:
        (i, sub), = reqs.items()
        r = sub.get("response") or {}
        return int(i), r.get("status"), r.get("message"), r.get("data") or {}
    return None, status, body.get("message"), body.get("data") or {}


def ref_fail(d):
    return failure(d.ref, d.ref_status)


def sut_fail(d):
    return failure(d.sut, d.sut_status)


def sut_ok(d):
    return isinstance(d.sut_status, int) and d.sut_status < 400


def sub_at(d, idx):
    s = subs(d)
    if idx is None:
        return s[0][1] if len(s) == 1 and s[0][0] is None else None
    return d.step["requests"][idx]


def state_fields(d):
    """(collection, field) of every differing state path (None if a path is not of that form)."""
    out = set()
    for p in d.paths:
        if p == "<status>":
            continue
        parts = p.split(" ")[0].split(".")
        if len(parts) < 3:
            return None
        out.add((parts[0], parts[2].split("[")[0]))
    return out


def without(data, keys):
    return {k: v for k, v in (data or {}).items() if k not in keys}


def rule(d, cname, op):
    return coll(d, cname).get(op + "Rule")


# --------------------------------------------------------------------------- matchers
def create_rule_denial_leaks_validation(d):
    """PocketBase answers a create its createRule denies with an empty 400 (nothing about
    the values); keepd validates first and tells the caller which values are wrong."""
    if d.where != "response":
        return False
    rf, sf = ref_fail(d), sut_fail(d)
    if not rf or not sf or rf[0] != sf[0]:
        return False
    sub = sub_at(d, rf[0])
    if sub is None or sub["op"] not in ("create", "upsert") or not non_superuser(d):
        return False
    r = rule(d, sub["coll"], "create")
    return (r not in (None, "") and rf[1] == sf[1] == 400 and rf[2] == sf[2] == "Failed to create record."
            and rf[3] == {} and sf[3] != {})


def file_json_unknown_name(d):
    """A JSON (non-upload) value for a file field that names no file of the record (or is no
    string): PocketBase refuses it (validation_invalid_file, 'Invalid new files: [...]'),
    keepd drops it silently."""
    if d.where != "response":
        return False
    rf = ref_fail(d)
    if not rf or rf[1] != 400:
        return False
    sub = sub_at(d, rf[0])
    if sub is None:
        return False
    bad = {k for k, v in rf[3].items()
           if isinstance(v, dict) and v.get("code") == "validation_invalid_file"
           and (field(d, sub["coll"], k) or {}).get("type") == "file"}
    if not bad:
        return False
    # the refused values were sent as plain values, not uploads
    for k in bad:
        v = (sub.get("body") or {}).get(k)
        if isinstance(v, dict) and "$file" in v or isinstance(v, list) and any(
                isinstance(x, dict) and "$file" in x for x in v):
            return False
    rest = without(rf[3], bad)
    if sut_ok(d):
        return rest == {}
    sf = sut_fail(d)
    if not sf or sf[0] != rf[0] or sf[2] != rf[2]:
        return False
    sd = dict(sf[3])
    for k in bad:  # keepd then reports what PocketBase's invalid-file error hid (e.g. required)
        sd.pop(k, None)
    return sd == rest


def batch_password_policy(d):
    """In a batch, keepd skips the password checks of auth records (length, confirmation,
    oldPassword) that a direct request makes: PocketBase refuses the sub-request."""
    if d.where != "response" or d.step["op"] != "batch" or not sut_ok(d):
        return False
    rf = ref_fail(d)
    if not rf or rf[0] is None or rf[1] != 400:
        return False
    keys = set(rf[3])
    pw = {"password", "passwordConfirm", "oldPassword"}
    sub = d.step["requests"][rf[0]]
    return bool(keys & pw) and coll(d, sub["coll"])["type"] == "auth" and \
        keys <= pw | {k for k, v in rf[3].items() if isinstance(v, dict)
                      and v.get("code") == "validation_invalid_file"}


def hidden_field_written(d):
    """Non-superusers' values for hidden fields: PocketBase ignores them (as if not sent);
    keepd validates and stores them."""
    if not non_superuser(d):
        return False
    if d.where == "state":
        fields = state_fields(d)
        if not fields:
            return False
        sent = {}
        for _, sub in subs(d):
            for h in hidden_keys(d, sub):
                sent.setdefault(sub["coll"], set()).add(h)
        return all(f in sent.get(c, ()) for c, f in fields)
    if d.where != "response":
        return False
    rf, sf = ref_fail(d), sut_fail(d)
    idx = (rf or sf)[0] if (rf or sf) else None
    sub = sub_at(d, idx) if (rf or sf) else None
    if sub is None:
        return False
    h = hidden_keys(d, sub)
    if not h:
        return False
    if rf and sf:
        return rf[0] == sf[0] and rf[2] == sf[2] and without(rf[3], h) == without(sf[3], h) and rf[3] != sf[3]
    if rf and not sf:  # PocketBase: a hidden required field counts as not sent
        return set(rf[3]) <= h and all(v.get("code") == "validation_required" for v in rf[3].values())
    if sf and not rf:  # keepd refuses a value PocketBase never looked at
        return set(sf[3]) <= h and sf[3] != {}
    return False


def auth_rule_login_status(d):
    """A login the collection's authRule refuses: PocketBase 403 'The request doesn't satisfy
    the collection requirements to authenticate.', keepd 400 'Failed to authenticate.'."""
    return (d.where in ("setup", "login") and d.ref_status == 403 and d.sut_status == 400
            and (d.ref or {}).get("message") == "The request doesn't satisfy the collection requirements to "
                                                "authenticate."
            and (d.sut or {}).get("message") == "Failed to authenticate."
            and any(c.get("authRule") for c in d.case["collections"] if c["type"] == "auth"))


def manage_rule_empty(d):
    """An empty manageRule: PocketBase refuses it (validation_nil_or_not_empty_required),
    keepd stores it."""
    return (d.where == "setup" and d.ref_status == 400 and d.sut_status == 200
            and set((d.ref or {}).get("data", {})) == {"manageRule"}
            and d.ref["data"]["manageRule"].get("code") == "validation_nil_or_not_empty_required")


def manage_only_field_error_alone(d):
    """A non-manager sets verified (or another field only managers may set): PocketBase answers
    with that error alone, keepd adds the other field errors of the same request."""
    if d.where != "response":
        return False
    rf, sf = ref_fail(d), sut_fail(d)
    if not rf or not sf or rf[0] != sf[0] or rf[1] != sf[1] != 400:
        return False
    mismatch = {k for k, v in rf[3].items() if isinstance(v, dict) and v.get("code") == "validation_values_mismatch"}
    if not mismatch or set(rf[3]) != mismatch or not non_superuser(d):
        return False
    return all(sf[3].get(k) == rf[3][k] for k in mismatch) and len(sf[3]) > len(rf[3])


KNOWN = [
    Known("create-rule-denial-leaks-validation", OPEN,
          "keepd validates a create before its createRule: a caller the rule denies learns which values are "
          "invalid (or taken: unique indexes); PocketBase answers the denial with an empty 400. Being fixed "
          "(record write path rewrite).", create_rule_denial_leaks_validation),
    Known("hidden-field-written-by-non-superuser", OPEN,
          "keepd accepts, validates and stores values for hidden fields from non-superusers; PocketBase drops "
          "them (a hidden required field then counts as blank). Being fixed (record write path rewrite).",
          hidden_field_written),
    Known("batch-skips-password-policy", OPEN,
          "keepd's batch path does not apply the auth record password checks (min length, passwordConfirm, "
          "oldPassword) of the direct routes. Being fixed (record write path rewrite).", batch_password_policy),
    Known("file-json-unknown-name", OPEN,
          "A plain (JSON or form text) value for a file field that is not one of the record's stored file "
          "names: PocketBase refuses it with validation_invalid_file, keepd ignores it. Reported, not fixed "
          "yet (files::plan, record write path).", file_json_unknown_name),
    Known("auth-rule-login-status", OPEN,
          "A password login refused by the collection's authRule: PocketBase 403 with its own message, keepd "
          "400 'Failed to authenticate.'. Reported, not fixed yet (api/auth).", auth_rule_login_status),
    Known("manage-rule-empty-accepted", OPEN,
          "manageRule \"\" is refused by PocketBase (null or a non-empty rule only); keepd stores it, giving "
          "every user manage rights. Reported, not fixed yet (schema/parse).", manage_rule_empty),
    Known("manage-only-field-error-alone", OPEN,
          "A non-manager setting verified: PocketBase reports only that error, keepd reports it along with "
          "the request's other field errors. Reported, not fixed yet (record write path).",
          manage_only_field_error_alone),
]


def match(diff):
    for e in KNOWN:
        if e.match(diff):
            return e
    return None


def by_key(k):
    return next(e for e in KNOWN if e.key == k)


def validate():
    problems = []
    keys = [e.key for e in KNOWN]
    if len(keys) != len(set(keys)):
        problems.append("duplicate keys")
    for e in KNOWN:
        if e.status not in (OPEN, DELIBERATE):
            problems.append(f"{e.key}: status must be {OPEN!r} or {DELIBERATE!r}")
        if len(e.reason.strip()) < 20:
            problems.append(f"{e.key}: needs a reason")
        if e.status == DELIBERATE and "COMPATIBILITY.md" not in e.reason:
            problems.append(f"{e.key}: a deliberate difference must point to COMPATIBILITY.md")
    return problems
