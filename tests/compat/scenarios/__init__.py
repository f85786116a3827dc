"""Scenario registry: every module in this package exposes SCENARIOS = [ {...}, ... ].

A scenario is plain data:

    {
      "id": "records_crud",              # unique, used as the pytest id
      "title": "what it specifies",
      "auth": "superuser",               # default auth of its steps (default: superuser)
      "mask": [{"regex": "...", "reason": "..."}],   # optional, applies to every step (see STEP)
      "steps": [ STEP, ... ],
    }

A STEP is:

    {
      "name":   "create post",           # unique within the scenario
      "method": "POST",
      "path":   "/api/collections/posts/records/{post1}",   # {var} = captured value
      "query":  {"filter": "n > 1"},     # optional, urlencoded (values may use {var})
      "auth":   "guest" | "superuser" | "<var holding a token>",
      "body":   {...},                   # JSON body (strings may use {var}; "{var}" alone keeps the type)
      "raw":    "text",                  # or raw body (+ "headers": {"Content-Type": ...})
      "raw_generate": {"prefix": "..", "fill": "x", "size": N, "suffix": ".."},
      "form":   {"field": "value" | [..]},   # multipart/form-data
      "headers": {...},
      "save":   {"post1": "$.id"},       # capture per server (ids differ between servers)
      "expect": 200,                     # status the *reference* must return (sanity check)
      "note":   "free text for readers",
      "mask":   [{"regex": "...", "reason": "..."}],  # inherent nondeterminism of the reference
                                         # (e.g. a random suffix): matches become <masked> on both sides
    }
"""
import importlib
import pkgutil


def load_all():
    out = []
    for mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if mod.startswith("_"):
            continue
        out.extend(importlib.import_module(f"{__name__}.{mod}").SCENARIOS)
    return out
