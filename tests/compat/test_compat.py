"""Differential test: every scenario runs against PocketBase (PB_BIN) and keepd (KEEPD_BIN)."""
import os

import pytest

from harness.runner import ScenarioError, run_differential, validate_scenario
from harness import jsonpath
from known_differences import KNOWN_DIFFERENCES
from scenarios import load_all

SCENARIOS = load_all()
FAIL_FAST = os.environ.get("COMPAT_FAIL_FAST", "") not in ("", "0")
MAX_REPORTS = int(os.environ.get("COMPAT_MAX_REPORTS", "5"))


def test_scenarios_are_well_formed():
    ids = [s["id"] for s in SCENARIOS]
    assert len(ids) == len(set(ids)), "duplicate scenario ids"
    problems = [f"{s['id']}: {p}" for s in SCENARIOS for p in validate_scenario(s)]
    assert not problems, "\n".join(problems)


def test_known_differences_are_documented():
    by_id = {s["id"]: s for s in SCENARIOS}
    problems = []
    for sid, steps in KNOWN_DIFFERENCES.items():
        if sid not in by_id:
            problems.append(f"unknown scenario {sid!r}")
            continue
        names = {st["name"] for st in by_id[sid]["steps"]}
        for step, entries in steps.items():
            if step not in names:
                problems.append(f"{sid}: unknown step {step!r}")
            for e in entries:
                if not str(e.get("reason", "")).strip():
                    problems.append(f"{sid}/{step}: entry {e!r} has no reason")
                p = e.get("path", "")
                if p not in ("<status>", "<content-type>", "$"):
                    try:
                        jsonpath.parse(p)
                    except jsonpath.PathError as ex:
                        problems.append(f"{sid}/{step}: {ex}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["id"] for s in SCENARIOS])
def test_scenario(scenario, servers):
    ref, sut = servers
    try:
        failures = run_differential(scenario, ref, sut, KNOWN_DIFFERENCES.get(scenario["id"], {}),
                                    fail_fast=FAIL_FAST)
    except ScenarioError as e:
        pytest.fail(f"scenario {scenario['id']!r} does not hold against the reference itself:\n{e}",
                    pytrace=False)
    if failures:
        shown = failures[:MAX_REPORTS]
        more = len(failures) - len(shown)
        msg = f"{len(failures)} step(s) differ in scenario {scenario['id']!r}:\n\n" + \
              "\n\n".join(shown)
        if more:
            msg += f"\n\n... and {more} more differing step(s) (COMPAT_MAX_REPORTS to see them)"
        pytest.fail(msg, pytrace=False)
