"""Tiny JSON path subset: $  .key  [N]  [*]   e.g. $.items[0].id, $.items[*].created"""
import re

_TOKEN = re.compile(r"\.([A-Za-z0-9_@:\-]+)|\[(\d+|\*)\]|\[\"([^\"]+)\"\]")


class PathError(ValueError):
    pass


def parse(path):
    if not path.startswith("$"):
        raise PathError(f"path must start with '$': {path!r}")
    rest, toks, pos = path[1:], [], 0
    while pos < len(rest):
        m = _TOKEN.match(rest, pos)
        if not m:
            raise PathError(f"bad path {path!r} at {rest[pos:]!r}")
        if m.group(1) is not None:
            toks.append(m.group(1))
        elif m.group(3) is not None:
            toks.append(m.group(3))
        elif m.group(2) == "*":
            toks.append("*")
        else:
            toks.append(int(m.group(2)))
        pos = m.end()
    return toks


_MISSING = object()


def get(doc, path, default=_MISSING):
    cur = doc
    for t in parse(path):
        if t == "*":
            raise PathError("wildcards are not allowed when reading a single value")
        if isinstance(t, int):
            if isinstance(cur, list) and -len(cur) <= t < len(cur):
                cur = cur[t]
                continue
        elif isinstance(cur, dict) and t in cur:
            cur = cur[t]
            continue
        if default is _MISSING:
            raise KeyError(path)
        return default
    return cur


def remove(doc, path, placeholder):
    """Drop dict keys / replace list items matching path (wildcards allowed). In place."""
    toks = parse(path)
    if not toks:
        return placeholder

    def walk(cur, i):
        t = toks[i]
        last = i == len(toks) - 1
        if t == "*":
            if isinstance(cur, list):
                for j in range(len(cur)):
                    if last:
                        cur[j] = placeholder
                    else:
                        walk(cur[j], i + 1)
            elif isinstance(cur, dict):
                for k in list(cur):
                    if last:
                        cur[k] = placeholder
                    else:
                        walk(cur[k], i + 1)
        elif isinstance(t, int):
            if isinstance(cur, list) and -len(cur) <= t < len(cur):
                if last:
                    cur[t] = placeholder
                else:
                    walk(cur[t], i + 1)
        elif isinstance(cur, dict) and t in cur:
            if last:
                del cur[t]
            else:
                walk(cur[t], i + 1)

    walk(doc, 0)
    return doc
