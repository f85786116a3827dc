"""Self-tests without servers: the allowlist is well formed, its matchers are narrow (a
different difference next to a known one still fails), generation is reproducible, and
the state comparison sees what it must."""
import copy
import json

import gen
import known
from execute import Diff, diff_paths, mask_files, sort_items


def case_with(step, colls):
    return {"seed": 0, "collections": colls, "users": [], "steps": [step]}


C_HIDDEN = {"name": "c0", "type": "base", "createRule": "", "updateRule": "",
            "fields": [{"name": "t1", "type": "text"}, {"name": "h1", "type": "number", "hidden": True}]}
C_GUARD = {"name": "u0", "type": "auth", "createRule": "", "updateRule": "@request.body.credits:isset = false",
           "fields": [{"name": "credits", "type": "number"}]}


def err(data, message="Failed to create record.", status=400):
    return {"data": data, "message": message, "status": status}


def ok(**fields):
    return dict(collectionId="<coll:c0>", collectionName="c0", id="<r>", **fields)


def test_allowlist_is_well_formed():
    assert known.validate() == []
    for e in known.KNOWN:
        assert e.status in (known.OPEN, known.DELIBERATE)


def test_hidden_value_stored_matches_only_the_hidden_field():
    step = {"op": "update", "as": "someuser", "via": "json", "coll": "c0", "target": {"$ref": "r"},
            "body": {"h1": 5, "t1": "a"}}
    case = case_with(step, [C_HIDDEN])
    ref = {"c0": {"<r>": {"id": "<r>", "t1": "a", "h1": 0}}}
    sut = {"c0": {"<r>": {"id": "<r>", "t1": "a", "h1": 5}}}
    d = Diff("state", case, 0, ref, sut, 200, 200)
    assert known.match(d).key == "hidden-field-written-by-non-superuser"
    # a visible field differing as well is a new difference
    sut2 = copy.deepcopy(sut)
    sut2["c0"]["<r>"]["t1"] = "b"
    assert known.match(Diff("state", case, 0, ref, sut2, 200, 200)) is None
    # the same from a superuser is a new difference
    su = copy.deepcopy(case)
    su["steps"][0]["as"] = "superuser"
    assert known.match(Diff("state", su, 0, ref, sut, 200, 200)) is None
    # and so is a hidden field the request did not send
    nosend = copy.deepcopy(case)
    del nosend["steps"][0]["body"]["h1"]
    assert known.match(Diff("state", nosend, 0, ref, sut, 200, 200)) is None


def test_modifier_bypass_is_no_longer_explained():
    step = {"op": "update", "as": "someuser", "via": "json", "coll": "u0", "target": {"$ref": "r"},
            "body": {"credits+": 100}}
    case = case_with(step, [C_GUARD])
    ref = err({}, "The requested resource wasn't found.", 404)
    d = Diff("response", case, 0, ref, ok(credits=100), 404, 200)
    # fixed (modifiers are resolved before rules read @request.body): a bypass is a new difference
    assert known.match(d) is None
    plain = copy.deepcopy(case)
    plain["steps"][0]["body"] = {"credits": 100}
    assert known.match(Diff("response", plain, 0, ref, ok(credits=100), 404, 200)) is None
    unguarded = copy.deepcopy(case)
    unguarded["collections"][0]["updateRule"] = "id = @request.auth.id"
    assert known.match(Diff("response", unguarded, 0, ref, ok(credits=100), 404, 200)) is None


def test_batch_password_policy_only_for_password_errors():
    step = {"op": "batch", "as": "superuser", "multipart": False,
            "requests": [{"op": "create", "coll": "u0", "body": {"email": "a@b.io", "password": "short1",
                                                                 "passwordConfirm": "short1"}}]}
    case = case_with(step, [C_GUARD])
    ref = {"data": {"requests": {"0": {"code": "batch_request_failed", "message": "Batch request failed.",
                                       "response": err({"password": {"code": "validation_min_text_constraint",
                                                                     "message": "Must be at least 8 character(s)."}})}}},
           "message": "Batch transaction failed.", "status": 400}
    sut = [{"status": 200, "body": ok()}]
    assert known.match(Diff("response", case, 0, ref, sut, 400, 200)).key == "batch-skips-password-policy"
    ref2 = copy.deepcopy(ref)
    ref2["data"]["requests"]["0"]["response"]["data"] = {"credits": {"code": "validation_invalid_number",
                                                                     "message": "x"}}
    assert known.match(Diff("response", case, 0, ref2, sut, 400, 200)) is None


def test_common_password_refused_at_an_earlier_batch_request():
    step = {"op": "batch", "as": "superuser", "multipart": False,
            "requests": [{"op": "create", "coll": "u0", "body": {"email": "a@b.io", "password": "password123",
                                                                 "passwordConfirm": "password123"}},
                         {"op": "delete", "coll": "u0", "target": {"$ref": "gone"}}]}
    case = case_with(step, [C_GUARD])

    def batch_err(i, resp):
        return {"data": {"requests": {str(i): {"code": "batch_request_failed", "message": "Batch request failed.",
                                               "response": resp}}},
                "message": "Batch transaction failed.", "status": 400}
    common = {"password": {"code": "validation_common_password",
                           "message": "The password is too common, please choose another one."}}
    ref = batch_err(1, err({}, "The requested resource wasn't found.", 404))
    sut = batch_err(0, err(common))
    assert known.match(Diff("response", case, 0, ref, sut, 400, 400)).key == "common-password-refused"
    # another error of keepd's next to the common password is a new difference
    sut2 = batch_err(0, err(dict(common, email={"code": "validation_not_unique", "message": "x"})))
    assert known.match(Diff("response", case, 0, ref, sut2, 400, 400)) is None
    # PocketBase failing at an earlier sub-request than keepd is not this entry
    later = copy.deepcopy(case)
    later["steps"][0]["requests"].reverse()
    ref0 = batch_err(0, err({}, "The requested resource wasn't found.", 404))
    sut1 = batch_err(1, err(common))
    assert known.common_password_refused(Diff("response", later, 0, ref0, sut1, 400, 400)) is False
    # a password other than the common one is a new difference
    other = copy.deepcopy(case)
    other["steps"][0]["requests"][0]["body"]["password"] = "Not-common-123"
    assert known.match(Diff("response", other, 0, ref, sut, 400, 400)) is None


def test_unrelated_differences_match_nothing():
    step = {"op": "view", "as": "superuser", "coll": "c0", "target": {"$ref": "r"}}
    case = case_with(step, [C_HIDDEN])
    assert known.match(Diff("response", case, 0, ok(t1="a"), ok(t1="b"), 200, 200)) is None
    assert known.match(Diff("response", case, 0, err({}, "x", 404), ok(t1="a"), 404, 200)) is None
    assert known.match(Diff("crash", case, 0, None, "log", 200, 0)) is None


def test_generation_is_reproducible_and_json():
    a, b = gen.generate(1234), gen.generate(1234)
    assert json.dumps(a) == json.dumps(b)
    assert json.dumps(gen.generate(1235)) != json.dumps(a)
    kinds = {f["type"] for s in range(1, 30) for c in gen.generate(s)["collections"] for f in c["fields"]}
    assert {"text", "number", "bool", "email", "url", "date", "select", "relation", "file", "json"} <= kinds


def test_masking_of_file_names_and_list_order():
    body = {"items": [{"id": "<b>", "f1": "note_abcdefghij.txt"}, {"id": "<a>", "f1": ["x_0123456789.bin"]}]}
    out = sort_items(mask_files(body, {"f1"}))
    assert [it["id"] for it in out["items"]] == ["<a>", "<b>"]
    assert out["items"][1]["f1"] == "note_<rand>.txt"
    assert out["items"][0]["f1"] == ["x_<rand>.bin"]
    # a file field's error naming a stored file
    e = {"data": {"f1": {"code": "validation_file_size_limit", "message": "Failed to upload big_welz8ckhkm.txt.",
                         "params": {"file": "big_welz8ckhkm.txt", "maxSize": 64}},
                  "t1": {"code": "x", "message": "big_welz8ckhkm.txt"}}}
    out = mask_files(e, {"f1"})
    assert out["data"]["f1"]["message"] == "Failed to upload big_<rand>.txt."
    assert out["data"]["f1"]["params"] == {"file": "big_<rand>.txt", "maxSize": 64}
    assert out["data"]["t1"]["message"] == "big_welz8ckhkm.txt"


def test_diff_paths_are_strict():
    assert diff_paths({"a": 1}, {"a": 1.0}) == ["a"]
    assert diff_paths({"a": [1, 2]}, {"a": [1, 2]}) == []
    assert diff_paths({"a": 1}, {"b": 1}) == ["a (only reference)", "b (only keepd)"]


C_FILE = {"name": "c0", "type": "base", "createRule": "@request.body.f1:isset = false",
          "fields": [{"name": "f1", "type": "file", "maxSelect": 1, "maxSize": 100},
                     {"name": "b1", "type": "bool"}]}


def test_file_field_and_form_value_rules():
    up = {"op": "create", "as": "guest", "via": "multipart", "coll": "c0",
          "body": {"f1": {"$file": ["one.txt", "hello", "text/plain"]}}}
    case = case_with(up, [C_FILE])
    d = Diff("response", case, 0, err({}), ok(f1="one_<rand>.txt"), 400, 200)
    # fixed (rules see the file fields a write touches): a bypass is a new difference
    assert known.match(d) is None
    # the same answers for a request that sends no file field: something else
    other = copy.deepcopy(case)
    other["steps"][0]["body"] = {"b1": True}
    assert known.match(Diff("response", other, 0, err({}), ok(b1=True), 400, 200)) is None
    # a form value the rule compares: PocketBase casts it, keepd does not
    cast = copy.deepcopy(other)
    cast["collections"][0]["createRule"] = "@request.body.b1 != true"
    # fixed (body values are normalized to the field's type): a difference is a new one
    assert known.match(Diff("response", cast, 0, err({}), ok(b1=True), 400, 200)) is None
    as_json = copy.deepcopy(cast)
    as_json["steps"][0]["via"] = "json"
    assert known.match(Diff("response", as_json, 0, err({}), ok(b1=True), 400, 200)) is None
