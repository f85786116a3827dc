"""Self-tests of the masking/comparison (no servers): masking must hide run-specific
values but never real differences."""
import base64
import json
import time

from harness.masking import Masker
from harness.runner import compare_step, strict_equal, substitute

NOW = time.time()
TS_NOW = time.strftime("%Y-%m-%d %H:%M:%S.123Z", time.gmtime(NOW))


def jwt(payload):
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")  # noqa: E731
    return f"{enc({'alg': 'HS256', 'typ': 'JWT'})}.{enc(payload)}.c2ln"


def masked(*bodies, names=None):
    m = Masker(window_start=NOW - 10, strict_ids=False)
    return [m.mask(b, names or {}) for b in bodies]


def res(body, status=200):
    return {"status": status, "media_type": "application/json", "body": body, "save_errors": []}


def test_ids_are_mapped_consistently():
    a = masked({"id": "aaaaaaaaaaaaaaa", "collectionId": "pbc_1", "items": [{"id": "bbbbbbbbbbbbbbb"}]},
               {"rel": "bbbbbbbbbbbbbbb", "other": ["aaaaaaaaaaaaaaa"]})
    b = masked({"id": "ccccccccccccccc", "collectionId": "pbc_2", "items": [{"id": "ddddddddddddddd"}]},
               {"rel": "ddddddddddddddd", "other": ["ccccccccccccccc"]})
    assert a == b
    assert a[1]["other"] == [a[0]["id"]]
    assert a[1]["rel"] == a[0]["items"][0]["id"] != a[0]["id"]


def test_unlearned_random_values_are_not_hidden():
    # an id never seen at an id position is compared verbatim (fails safe)
    assert masked({"rel": "aaaaaaaaaaaaaaa"}) != masked({"rel": "bbbbbbbbbbbbbbb"})


def test_relation_to_the_wrong_record_is_detected():
    a = masked({"id": "aaaaaaaaaaaaaaa"}, {"id": "bbbbbbbbbbbbbbb"}, {"rel": "aaaaaaaaaaaaaaa"})
    b = masked({"id": "ccccccccccccccc"}, {"id": "ddddddddddddddd"}, {"rel": "ddddddddddddddd"})
    assert a[2] != b[2]


def test_named_captures_and_substrings():
    a = masked({"id": "aaaaaaaaaaaaaaa", "msg": "x aaaaaaaaaaaaaaa y"}, names={"aaaaaaaaaaaaaaa": "post1"})
    assert a[0] == {"id": "<post1>", "msg": "x <post1> y"}


def test_generated_timestamps_masked_fixed_dates_kept():
    (a,) = masked({"created": TS_NOW, "when": TS_NOW, "fixed": "2020-01-01 10:00:00.000Z",
                   "updated": "2001-01-01 00:00:00.000Z"})
    assert a == {"created": "<timestamp>", "when": "<timestamp>", "fixed": "2020-01-01 10:00:00.000Z",
                 "updated": "<timestamp>"}


def test_jwt_claims_are_compared():
    # Relative to the time of masking (the module's NOW may be minutes old by now).
    now = int(time.time())
    p = {"id": "aaaaaaaaaaaaaaa", "collectionId": "pbc_1", "type": "auth", "refreshable": True,
         "exp": now + 432000}
    (a,) = masked({"token": jwt(p)})
    (b,) = masked({"token": jwt(dict(p, id="bbbbbbbbbbbbbbb", exp=now + 432001))})
    assert a == b and "<now+432000s>" in a["token"]
    (c,) = masked({"token": jwt(dict(p, refreshable=False))})
    (d,) = masked({"token": jwt(dict(p, exp=now + 86400))})
    assert c != a and d != a


def test_types_are_strict():
    assert not strict_equal({"n": 5}, {"n": 5.0})
    assert not strict_equal({"b": True}, {"b": 1})
    assert not strict_equal({"a": None}, {})
    assert strict_equal({"a": [1, {"b": "x"}]}, {"a": [1, {"b": "x"}]})


def test_compare_reports_status_body_and_ignores():
    step = {"name": "s"}
    assert compare_step(step, res({"a": 1}), res({"a": 1})) is None
    assert "status" in compare_step(step, res({"a": 1}), res({"a": 1}, 201))
    assert "body differs" in compare_step(step, res({"a": 1}), res({"a": 2}))
    assert "body differs" in compare_step(step, res({"a": 1}), res({"a": 1.0}))
    assert "body differs" in compare_step(step, res({"a": 1}), res({"a": True}))
    ign = [{"path": "$.a", "reason": "test"}]
    assert compare_step(step, res({"a": 1, "b": 2}), res({"b": 2}), ign) is None
    ign = [{"path": "$.items[*].x", "reason": "test"}]
    assert compare_step(step, res({"items": [{"x": 1}, {"x": 2}]}), res({"items": [{"x": 3}, {}]}), ign) is None


def test_substitute_keeps_types():
    v = {"ids": ["a1", "b2"], "n": 3}
    assert substitute("{ids}", v) == ["a1", "b2"]
    assert substitute("x {n} {unknown}", v) == "x 3 {unknown}"
    assert substitute({"k": ["{n}"]}, v) == {"k": [3]}
