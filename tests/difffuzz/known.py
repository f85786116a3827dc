"""Known differences between keepd and PocketBase 0.40.6 found by the fuzzer.

Each entry: a key, a status, the reason, and a matcher over a `Diff`
(execute.py). The matchers are deliberately narrow: they check who sent what
to which collection, which server answered what, and that *every* differing
path is explained by the entry, so a new, different difference still fails.

status:
  "open"        a keepd bug, not fixed yet (reported); remove the entry when it is fixed
  "deliberate"  a deliberate difference, documented in COMPATIBILITY.md
"""

import json
import re

from gen import is_multi

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


def is_guest(d):
    """A guest, or a user whose login failed on both servers (so sends no token)."""
    return d.step is not None and (d.step["as"] == "guest" or d.step["as"] in getattr(d, "no_token", ()))


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


def sut_passed(d, idx):
    """keepd accepted the (sub-)request at idx: the whole request succeeded, or (a batch) it
    failed only at a later sub-request."""
    if sut_ok(d):
        return True
    sf = sut_fail(d)
    return bool(sf) and idx is not None and sf[0] is not None and sf[0] > idx


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


def late_unique(rf, sf):
    """Unique errors on one side only while the other side reported other errors: both servers
    check the unique indexes only once everything else validates, so these follow from another
    difference (a value one side validated and the other ignored)."""
    if not rf or not sf:
        return set()
    out = set()
    for a, b in ((rf[3], sf[3]), (sf[3], rf[3])):
        if b:
            out |= {k for k, v in a.items() if k not in b and v.get("code") == "validation_not_unique"}
    return out


def rule(d, cname, op):
    return coll(d, cname).get(op + "Rule")


# --------------------------------------------------------------------------- matchers
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
    if sut_passed(d, rf[0]):
        return rest == {}
    sf = sut_fail(d)
    if not sf or sf[0] != rf[0] or sf[2] != rf[2]:
        return False
    sd = dict(sf[3])
    for k in bad:  # keepd then reports what PocketBase's invalid-file error hid (e.g. required)
        sd.pop(k, None)
    # with the file value dropped keepd's validation passes on to the unique indexes
    sd = {k: v for k, v in sd.items() if not (k not in rest and v.get("code") == "validation_not_unique")}
    return sd == rest


def batch_password_policy(d):
    """In a batch, keepd skips the password checks of auth records (required, length,
    confirmation, oldPassword) that a direct request makes: PocketBase refuses the sub-request."""
    if d.where != "response" or d.step["op"] != "batch":
        return False
    rf = ref_fail(d)
    if not rf or rf[0] is None or rf[1] != 400:
        return False
    keys = set(rf[3])
    pw = {"password", "passwordConfirm", "oldPassword"}
    sub = d.step["requests"][rf[0]]
    if not keys & pw or coll(d, sub["coll"])["type"] != "auth":
        return False
    only_pw = keys <= pw | {k for k, v in rf[3].items() if isinstance(v, dict)
                            and v.get("code") == "validation_invalid_file"}
    if sut_ok(d):
        return only_pw
    sf = sut_fail(d)
    if sf and sf[0] is not None and sf[0] > rf[0]:  # keepd passed it and failed a later one
        return only_pw
    # keepd refuses the same sub-request for its other errors only (PocketBase answers the password
    # errors before validating the rest, so it may list fewer of them)
    sf = sut_fail(d)
    return bool(sf) and sf[0] == rf[0] and sf[2] == rf[2] and not set(sf[3]) & pw and \
        all(rf[3][k] == sf[3][k] for k in set(rf[3]) & set(sf[3]))


def mentions(rule_text, name):
    """Does a rule read field `name` (as a record field, a relation path or @request.body.name)?"""
    return bool(re.search(r"(?<![\w.@])%s\b|@request\.body\.%s\b" % (re.escape(name), re.escape(name)),
                          rule_text or ""))


def op_rule(d, sub):
    """The rule text a (sub-)request is checked against (an upsert: create's and update's)."""
    if sub["op"] == "upsert":
        return " ".join(r for r in (rule(d, sub["coll"], "create"), rule(d, sub["coll"], "update")) if r)
    return rule(d, sub["coll"], sub["op"]) or ""


def hidden_field_written(d):
    """Non-superusers' values for hidden fields: PocketBase ignores them (as if not sent: its
    rules do not see them, a hidden required or unique field counts as blank); keepd validates,
    checks its rules against and stores them."""
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
    if not rf and not sf:
        return False
    ri = rf[0] if rf else None
    si = sf[0] if sf else None
    if d.step["op"] == "batch":
        # keepd fails an earlier sub-request on its hidden values only (PocketBase got further)
        if sf and (not rf or ri > si):
            ssub = d.step["requests"][si]
            hs = hidden_keys(d, ssub)
            if sf[3] and set(sf[3]) <= hs or any(mentions(op_rule(d, ssub), x) for x in hs):
                return True
        # PocketBase fails an earlier sub-request whose rule reads a hidden field that was sent,
        # or that fails on hidden values alone (blank to PocketBase)
        if rf and (not sf or si > ri):
            sub = d.step["requests"][ri]
            hs = hidden_keys(d, sub)
            if any(mentions(op_rule(d, sub), x) for x in hs):
                return True
            return bool(rf[3]) and set(rf[3]) <= hs
        if ri != si:
            return False
    sub = sub_at(d, ri if rf else si)
    if sub is None:
        return False
    h = hidden_keys(d, sub)
    if not h:
        return False
    # (in a batch the password errors keepd skips there, batch-skips-password-policy, may add to it)
    e = h | ({"password", "passwordConfirm", "oldPassword"} if d.step["op"] == "batch" else set())
    e |= late_unique(rf, sf)
    if rf and sf and rf[2] == sf[2] and without(rf[3], e) == without(sf[3], e):
        differing = (set(rf[3]) ^ set(sf[3])) | {k for k in set(rf[3]) & set(sf[3]) if rf[3][k] != sf[3][k]}
        if differing & h:
            return True
    # a rule reading a hidden field: PocketBase's rule does not see the value, keepd's does
    if any(mentions(op_rule(d, sub), x) for x in h):
        return True
    if rf and sf:
        return False
    if rf:  # PocketBase: the hidden field counts as blank (required, unique, min)
        return bool(rf[3]) and set(rf[3]) <= h
    return bool(sf[3]) and set(sf[3]) <= h  # keepd refuses a value PocketBase never looked at



def uploads(sub):
    """Field names a (sub-)request uploads files to (plain, + and - forms)."""
    out = set()
    for k, v in (sub.get("body") or {}).items():
        vals = v if isinstance(v, list) else [v]
        if any(isinstance(x, dict) and "$file" in x for x in vals):
            out.add(base_key(k))
    return out


def file_fields_sent(d, sub):
    """File fields a (sub-)request sends anything for (uploads, names, [] or "", +/- forms)."""
    return {base_key(k) for k in (sub.get("body") or {})
            if (field(d, sub["coll"], base_key(k)) or {}).get("type") == "file"}


def denial_differs(d, idx):
    """One server refused the (sub-)request at idx and the other did not (or not the same way)."""
    rf, sf = ref_fail(d), sut_fail(d)
    ra = rf if rf and rf[0] == idx else None
    sa = sf if sf and sf[0] == idx else None
    # (a create's denial is a 400 with empty data: the same status and message as a validation error)
    return (ra is None) != (sa is None) or (ra is not None and (ra[:3], ra[3] == {}) != (sa[:3], sa[3] == {}))



def batch_upload_unknown_field(d):
    """A multipart batch uploading a file for a field the collection does not have (or a hidden
    one, from a non-superuser): PocketBase ignores the part, keepd refuses the batch with
    'Failed to read the submitted batch files data.'."""
    if d.where != "response" or d.step is None or d.step["op"] != "batch" or not d.step.get("multipart"):
        return False
    sf = sut_fail(d)
    if not sf or sf[2] != "Failed to read the submitted batch files data." or sf[3] != {}:
        return False
    sub = d.step["requests"][sf[0]]
    for f in uploads(sub):
        fd = field(d, sub["coll"], f)
        if fd is None or fd.get("type") != "file" or (fd.get("hidden") and non_superuser(d)):
            return True
    return False


MANAGER_FIELD_CODES = {"validation_values_mismatch", "validation_required"}


def manage_rule_ignored(d):
    """A user whom the collection's manageRule makes a manager sets fields only managers may set
    (verified, email, password without oldPassword) in a create, or in any batch sub-request:
    PocketBase allows it; keepd does not apply the manageRule there and refuses (the field's
    validation_values_mismatch / oldPassword required, or an empty 400 under an expression
    createRule)."""
    if d.where != "response" or not non_superuser(d) or is_guest(d):
        return False
    sf = sut_fail(d)
    if not sf:
        return False
    sub = sub_at(d, sf[0])
    if sub is None:
        return False
    batch = d.step["op"] == "batch"
    if not (sub["op"] in ("create", "upsert") or batch):
        return False
    c = coll(d, sub["coll"])
    if c["type"] != "auth" or not c.get("manageRule"):
        return False
    body = sub.get("body") or {}
    manager_keys = {"verified", "email", "password", "oldPassword"}
    if not manager_keys & set(body):
        return False
    rf = ref_fail(d)
    same_sub = rf is not None and rf[0] == sf[0]
    ref_data = rf[3] if same_sub else {}
    extra = {k: v for k, v in sf[3].items() if k not in ref_data}
    if any(ref_data.get(k) != sf[3].get(k) for k in ref_data if k in sf[3]):
        return False
    if sf[3] == {}:
        return sub["op"] in ("create", "upsert") and not ref_data
    return bool(extra) and set(extra) <= manager_keys | {"passwordConfirm"} and \
        all(v.get("code") in MANAGER_FIELD_CODES for v in extra.values()) and \
        all(k in sf[3] for k in ref_data)


def create_rule_path_on_invalid_body(d):
    """A create whose body is invalid and whose createRule reads a field through a relation
    (`rel.field`) or @collection: PocketBase's rule passes and it answers the field errors; keepd
    answers an empty 400 as if the rule had failed."""
    if d.where != "response" or not non_superuser(d):
        return False
    rf, sf = ref_fail(d), sut_fail(d)
    if not rf or not sf or rf[0] != sf[0] or rf[1] != 400 or sf[1] != 400 or rf[2] != sf[2]:
        return False
    sub = sub_at(d, rf[0])
    if sub is None or sub["op"] not in ("create", "upsert"):
        return False
    r = rule(d, sub["coll"], "create") or ""
    has_path = re.search(r"(?<![@\w.])[A-Za-z]\w*\.(?!id\b)[A-Za-z]\w*", r) or "@collection." in r
    return bool(has_path) and rf[3] != {} and sf[3] == {}


def select_error_precedence(d):
    """A select over maxSelect that also holds an unknown value: PocketBase reports the count
    (validation_too_many_values), keepd the value (validation_invalid_value). Both refuse."""
    if d.where != "response":
        return False
    rf, sf = ref_fail(d), sut_fail(d)
    if not rf or not sf or rf[0] != sf[0] or rf[2] != sf[2]:
        return False
    sub = sub_at(d, rf[0])
    if sub is None:
        return False
    keys = {k for k in set(rf[3]) & set(sf[3]) if rf[3][k] != sf[3][k]
            and (field(d, sub["coll"], k) or {}).get("type") == "select"
            and rf[3][k].get("code") == "validation_too_many_values"
            and sf[3][k].get("code") == "validation_invalid_value"}
    return bool(keys) and without(rf[3], keys) == without(sf[3], keys)


FORM_KEYS = {"password", "passwordConfirm", "oldPassword", "verified", "emailVisibility", "tokenKey", "email"}


def auth_error_tiers(d):
    """An auth record write with both auth-form errors (passwordConfirm, oldPassword, fields only
    managers may set, password length) and other errors: PocketBase checks the form first and
    answers with those errors alone, then the record; keepd checks in its own order, so the two
    answers list different subsets. Both refuse; where both name a field they agree."""
    if d.where != "response":
        return False
    rf, sf = ref_fail(d), sut_fail(d)
    if not rf or not sf or rf[0] != sf[0] or rf[1] != 400 or sf[1] != 400 or rf[2] != sf[2]:
        return False
    sub = sub_at(d, rf[0])
    if sub is None or coll(d, sub["coll"])["type"] != "auth" or rf[3] == sf[3]:
        return False
    a, b = rf[3], sf[3]
    if not a or not b or any(a[k] != b[k] for k in set(a) & set(b)):
        return False
    return set(a) <= FORM_KEYS or set(b) <= FORM_KEYS


def file_mime_unknown_content(d):
    """A field with mimeTypes [text/plain] and an upload whose content sniffs as no known type
    (application/octet-stream): PocketBase refuses it (validation_invalid_mime_type), keepd
    stores it."""
    if d.where != "response":
        return False
    rf = ref_fail(d)
    if not rf:
        return False
    sub = sub_at(d, rf[0])
    if sub is None:
        return False
    bad = {k for k, v in rf[3].items() if v.get("code") == "validation_invalid_mime_type"}
    if not bad:
        return False
    for k in bad:
        vals = [v for kk, v in (sub.get("body") or {}).items() if base_key(kk) == k]
        flat = [x for v in vals for x in (v if isinstance(v, list) else [v])]
        if not any(isinstance(x, dict) and "$file" in x and x["$file"][2] == "application/octet-stream"
                   for x in flat):
            return False
    rest = without(rf[3], bad)
    if sut_passed(d, rf[0]):
        return rest == {}
    sf = sut_fail(d)
    late = late_unique(rf, sf)  # keepd took the file, so went on to the unique indexes
    return bool(sf) and sf[0] == rf[0] and without(sf[3], bad | late) == without(rest, late)


def null_path_equals_guest_id(d):
    """A guest and a rule comparing a path that resolves to nothing (a relation to a missing
    record, @collection.X of an empty collection) with @request.auth.id: PocketBase compares
    NULL as "" and the guest's empty id matches, so the rule passes; keepd's does not."""
    if d.where != "response" or not is_guest(d):
        return False
    rf, sf = ref_fail(d), sut_fail(d)
    if not sf:
        return False
    sub = sub_at(d, sf[0])
    if sub is None:
        return False
    r = op_rule(d, sub)
    if not re.search(r"[\w.]+\.id \?=? ?@request\.auth\.id|@collection\.", r) or "@request.auth.id" not in r:
        return False
    denied = (sf[1] == 400 and sf[3] == {} and sf[2] in ("Failed to create record.",)) or sf[1] in (403, 404)
    passed_ref = (not rf or rf[0] != sf[0]) or (rf[1] == 400 and rf[3] != {})
    return denied and passed_ref


def common_password_refused(d):
    """keepd refuses the most common passwords (validation_common_password); PocketBase accepts
    them (in a batch, it may then fail at a later sub-request)."""
    if d.where != "response":
        return False
    sf = sut_fail(d)
    if not sf or (sf[3].get("password") or {}).get("code") != "validation_common_password":
        return False
    sub = sub_at(d, sf[0])
    if sub is None or (sub.get("body") or {}).get("password") != "password123":
        return False
    rf = ref_fail(d)
    rest = without(sf[3], {"password"})
    if rf is None:
        return rest == {} and d.ref_status < 400
    if rf[0] is not None and sf[0] is not None and sf[0] < rf[0]:
        # a batch: keepd stopped at the common password, PocketBase accepted it and failed at a
        # later sub-request (both roll back)
        return rest == {}
    return rf[0] == sf[0] and "password" not in rf[3] and without(rf[3], {"password"}) == rest


def big_number_text(d):
    """Numbers of 1e20 and more: Go writes 1e20 as 100000000000000000000 (no exponent below 1e21),
    keepd as 1e20. The same number for any JSON reader."""
    if d.where not in ("response", "state") or d.ref_status != d.sut_status:
        return False

    def walk(a, b):
        if isinstance(a, dict) and isinstance(b, dict):
            return set(a) == set(b) and all(walk(a[k], b[k]) for k in a)
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(walk(x, y) for x, y in zip(a, b))
        if type(a) is int and type(b) is float:
            return float(a) == b and abs(b) >= 1e16
        return type(a) is type(b) and a == b
    return walk(d.ref, d.sut)


# First match wins: where two entries could explain a difference, the more specific one comes first.
KNOWN = [
    Known("common-password-refused", DELIBERATE,
          "keepd refuses the ~10,000 most common passwords (validation_common_password); PocketBase accepts "
          "them. See COMPATIBILITY.md, 'Deliberate differences' (common passwords).", common_password_refused),
    Known("hidden-field-written-by-non-superuser", OPEN,
          "Fixed in what matters: keepd drops non-superusers' hidden-field values as PocketBase does "
          "(tests/rust/write_path.rs). The matcher still explains answers that differ only in which of the "
          "errors of a request naming hidden fields come first (an auth form's password errors, say). Both refuse.",
          hidden_field_written),
    Known("batch-upload-unknown-field", OPEN,
          "A multipart batch with a file part for a field the collection lacks (or a hidden one, from a "
          "non-superuser): PocketBase ignores the part, keepd refuses the whole batch ('Failed to read the "
          "submitted batch files data.'). Reported, not fixed yet (api/batch).", batch_upload_unknown_field),
    Known("batch-skips-password-policy", OPEN,
          "Fixed in what matters: batch sub-requests get the direct routes' password checks "
          "(tests/rust/write_path.rs). Left: a batch password change carrying another auth-form error (an e-mail "
          "change without the e-mail) where PocketBase also reports the old password invalid and keepd only the "
          "other error. Both refuse.", batch_password_policy),
    Known("file-json-unknown-name", OPEN,
          "A plain (JSON or form text) value for a file field that is not one of the record's stored file "
          "names: both refuse it with validation_invalid_file; keepd lists every unknown name, PocketBase "
          "sometimes fewer of them (its message and invalidFiles). Reported.", file_json_unknown_name),
    Known("manage-rule-ignored", OPEN,
          "keepd does not apply the auth collection's manageRule to creates, nor to any batch sub-request: a "
          "manager setting verified, email, or a password without oldPassword there is refused; PocketBase "
          "allows it. Reported, not fixed yet (record write path, api/batch).", manage_rule_ignored),
    Known("null-path-equals-guest-id", OPEN,
          "A rule comparing a path that resolves to nothing (relation to a missing record, @collection.X of an "
          "empty collection) with @request.auth.id: PocketBase compares NULL as \"\" so a guest (empty id) "
          "passes; keepd's rule fails (the stricter answer). Reported, not fixed yet (rules).",
          null_path_equals_guest_id),
    Known("create-rule-path-on-invalid-body", OPEN,
          "A create with an invalid body under a createRule that reads a relation's field (`rel.field`) or "
          "@collection: "
          "PocketBase's rule passes and it answers the field errors, keepd an empty 400 as for a denial. "
          "Reported, not fixed yet (rules, record write path).", create_rule_path_on_invalid_body),
    Known("select-error-precedence", OPEN,
          "A select over maxSelect holding an unknown value: PocketBase reports the count, keepd the value. "
          "Both refuse. Reported, not fixed yet (schema/record).", select_error_precedence),
    Known("file-mime-unknown-content", OPEN,
          "mimeTypes [text/plain] and an upload whose content matches no known signature: PocketBase sniffs "
          "application/octet-stream and refuses it (validation_invalid_mime_type), keepd stores it. Reported, "
          "not fixed yet (files::plan).", file_mime_unknown_content),
    Known("auth-error-tiers", OPEN,
          "Auth record writes: PocketBase answers auth-form errors (passwordConfirm, oldPassword, "
          "manager-only fields) alone before validating the record; keepd validates in another order and "
          "lists a different subset of errors. Both refuse. Reported, not fixed yet (record write path).",
          auth_error_tiers),
    Known("big-number-text", OPEN,
          "Go's JSON writes numbers below 1e21 without an exponent (100000000000000000000), keepd as 1e20: "
          "the same value for every JSON reader. Reported (cosmetic).", big_number_text),
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
