"""Shrink a failing case to the shortest step sequence that still shows the same difference.

The failing step is kept; the steps before it are removed by delta debugging
(chunks, then single steps), then users, whole body keys and batch
sub-requests of the remaining steps, then unused collections, fields, and
rules (made null or "") are dropped where the difference stays. Every try replays the case on
the running servers (fresh collections), so shrinking is bounded by time.
"""
import copy
import time


def same(d, ref):
    return d is not None and d.signature() == ref.signature()


def shrink(runner, case, diff, classify=None, budget_s=120, log=print):
    deadline = time.monotonic() + budget_s
    cur = copy.deepcopy(case)
    cur["steps"] = cur["steps"][:diff.step_index + 1]
    best = diff

    def attempt(candidate):
        nonlocal best
        if time.monotonic() > deadline:
            return False
        diffs, _ = runner.run(candidate, classify)
        last = diffs[-1] if diffs else None
        if last is not None and last.step_index == len(candidate["steps"]) - 1 and same(last, diff) \
                and getattr(last, "known", None) is getattr(diff, "known", None):
            best = last
            return True
        return False

    # 1. the prefix, ddmin style
    n = 2
    while len(cur["steps"]) > 1 and time.monotonic() < deadline:
        prefix, last = cur["steps"][:-1], cur["steps"][-1]
        size = max(1, len(prefix) // n)
        reduced = False
        for start in range(0, len(prefix), size):
            cand = copy.deepcopy(cur)
            cand["steps"] = prefix[:start] + prefix[start + size:] + [last]
            if attempt(cand):
                cur = cand
                n = max(n - 1, 2)
                reduced = True
                break
        if not reduced:
            if size == 1:
                break
            n = min(n * 2, len(prefix))
    # 2. users nobody acts as
    used = set()
    for st in cur["steps"]:
        used.add(st.get("as"))
    for u in list(cur["users"]):
        if u["sym"] in used:
            continue
        cand = copy.deepcopy(cur)
        cand["users"] = [x for x in cand["users"] if x["sym"] != u["sym"]]
        if attempt(cand):
            cur = cand
    # 3. body keys, one at a time (steps from the last one backwards)
    for si in range(len(cur["steps"]) - 1, -1, -1):
        for sub_i in range(len(cur["steps"][si].get("requests", [None]))):
            def body_of(c):
                st = c["steps"][si]
                return st["requests"][sub_i].get("body") if "requests" in st else st.get("body")
            body = body_of(cur)
            if not isinstance(body, dict):
                continue
            for k in list(body):
                if time.monotonic() > deadline:
                    break
                cand = copy.deepcopy(cur)
                del body_of(cand)[k]
                if attempt(cand):
                    cur = cand
        # whole sub-requests of a batch
        st = cur["steps"][si]
        if "requests" in st and len(st["requests"]) > 1:
            for j in range(len(st["requests"]) - 1, -1, -1):
                cand = copy.deepcopy(cur)
                if len(cand["steps"][si]["requests"]) <= 1:
                    break
                del cand["steps"][si]["requests"][j]
                if attempt(cand):
                    cur = cand
    # 4. the schema: collections no step uses, fields, then rules made trivial
    def uses(c, name):
        return any(st.get("coll") == name or any(sub.get("coll") == name for sub in st.get("requests", ()))
                   for st in c["steps"]) or any(u["collection"] == name for u in c["users"])
    for name in [x["name"] for x in reversed(cur["collections"])]:
        if time.monotonic() > deadline or uses(cur, name):
            continue
        cand = copy.deepcopy(cur)
        cand["collections"] = [x for x in cand["collections"] if x["name"] != name]
        if attempt(cand):
            cur = cand
    for ci in range(len(cur["collections"])):
        for fname in [f["name"] for f in cur["collections"][ci]["fields"]]:
            if time.monotonic() > deadline:
                break
            cand = copy.deepcopy(cur)
            cand["collections"][ci]["fields"] = [f for f in cand["collections"][ci]["fields"] if f["name"] != fname]
            if "indexes" in cand["collections"][ci]:
                cand["collections"][ci]["indexes"] = [i for i in cand["collections"][ci]["indexes"]
                                                      if f"({fname})" not in i]
            if attempt(cand):
                cur = cand
        for key in [k for k in cur["collections"][ci] if k.endswith("Rule")]:
            v = cur["collections"][ci][key]
            for simpler in (None, ""):
                if v == simpler or time.monotonic() > deadline:
                    continue
                cand = copy.deepcopy(cur)
                cand["collections"][ci][key] = simpler
                if attempt(cand):
                    cur = cand
                    break
    log(f"  shrink: {len(case['steps'][:diff.step_index + 1])} -> {len(cur['steps'])} step(s)")
    return cur, best
