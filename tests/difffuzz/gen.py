"""Seeded generation of one fuzz case: collections, users, request steps.

A case is plain JSON data, so it can be printed, shrunk and saved as a
regression file.  Nothing here talks to a server: values that differ between
the two servers are symbolic and resolved by the executor per server:

    {"$ref": SYM}             a record id: an explicit id (SYM is the id itself)
                              or "@..." for an id the server generated
    {"$file": [name, text, mime]}   an uploaded file part (multipart only)
    {"$stored": [SYM, field, n]}    the n-th stored file name of a record (if it has none:
                                    left out of a list, else the "else" value or "")

Case shape:

    {"seed": int, "collections": [COLL...], "users": [USER...], "steps": [STEP...]}
    COLL  = PocketBase collection JSON, relation fields name their target with
            "collection": NAME (the executor fills collectionId per server)
    USER  = {"sym", "collection", "email", "password", "body"}
    STEP  = {"op": create|update|delete|view|list|batch, "as": "guest"|"superuser"|USER sym,
             "via": json|multipart|batch (writes), "coll", "target", "body", "new",
             "query" (list), "requests": [SUB...] (batch), "multipart": bool (batch)}
    SUB   = {"op": create|update|delete|upsert, "coll", "target", "body", "new"}
"""
import random
import string

ALNUM = string.ascii_lowercase + string.digits
SELECT_VALUES = ["a", "b", "c", "d"]
TEXTS = ["", "a", "b", "ab", "hello", "x y", "zzzzzzzzzzzz", "Q"]
NUMBERS = [0, 1, 2, 3, 5, -1, 2.5, 100]
DATES = ["2021-01-02 03:04:05.000Z", "2022-06-30 00:00:00.000Z", ""]
COMMON_PASSWORD = "password123"  # in keepd's common-password list (a deliberate difference)

TYPE_WEIGHTS = [("text", 5), ("number", 5), ("bool", 2), ("email", 1), ("url", 1), ("date", 1),
                ("select", 2), ("mselect", 2), ("relation", 3), ("mrelation", 2), ("file", 2),
                ("mfile", 2), ("json", 1)]
SHORT = {"text": "t", "number": "n", "bool": "b", "email": "em", "url": "url", "date": "d",
         "select": "s", "mselect": "ms", "relation": "r", "mrelation": "mr", "file": "f",
         "mfile": "mf", "json": "j"}


def wchoice(r, pairs):
    total = sum(w for _, w in pairs)
    x = r.uniform(0, total)
    for v, w in pairs:
        x -= w
        if x <= 0:
            return v
    return pairs[-1][0]


def kind(field):
    """The generator's kind of a field (select/relation/file split by maxSelect)."""
    t = field["type"]
    if t in ("select", "relation", "file"):
        return ("m" if field.get("maxSelect", 1) > 1 else "") + t
    return t


def is_multi(field):
    return field["type"] in ("select", "relation", "file") and field.get("maxSelect", 1) > 1


class Gen:
    def __init__(self, seed, steps=30):
        self.seed = seed
        self.r = random.Random(seed)
        self.n_steps = steps
        self.colls = []
        self.users = []
        self.known = {}  # coll -> [sym]
        self.n_auto = 0
        self.n_mail = 0

    # ------------------------------------------------------------------ ids
    def new_id(self):
        return "".join(self.r.choice(ALNUM) for _ in range(15))

    def new_auto(self, coll):
        self.n_auto += 1
        sym = f"@{coll}{self.n_auto}"
        self.known[coll].append(sym)
        return sym

    def new_email(self):
        self.n_mail += 1
        return f"m{self.n_mail}@{self.r.choice(['x.io', 'y.org'])}"

    def strong_password(self):
        return "Pw-" + "".join(self.r.choice(ALNUM) for _ in range(9))

    # ------------------------------------------------------------------ schema
    def gen_fields(self, name, idx_pool, self_is_auth):
        r = self.r
        fields = []
        n = r.randint(2, 6)
        earlier = [c["name"] for c in self.colls] + [name]
        for i in range(n):
            k = wchoice(r, TYPE_WEIGHTS)
            f = {"name": f"{SHORT[k]}{i + 1}"}
            if k == "text":
                f.update(type="text")
                if r.random() < 0.3:
                    f["max"] = r.choice([3, 10])
                if r.random() < 0.2:
                    f["min"] = r.choice([1, 2])
                if r.random() < 0.15:
                    f["pattern"] = "^[a-z ]*$"
            elif k == "number":
                f.update(type="number")
                if r.random() < 0.3:
                    f["min"] = r.choice([0, 1])
                if r.random() < 0.3:
                    f["max"] = r.choice([3, 10])
                if r.random() < 0.3:
                    f["onlyInt"] = True
            elif k in ("bool", "email", "url", "date", "json"):
                f.update(type=k)
                if k == "json" and r.random() < 0.3:
                    f["maxSize"] = 20
            elif k in ("select", "mselect"):
                f.update(type="select", values=SELECT_VALUES, maxSelect=1 if k == "select" else r.choice([2, 3]))
            elif k in ("relation", "mrelation"):
                f.update(type="relation", collection=r.choice(earlier),
                         maxSelect=1 if k == "relation" else r.choice([2, 3]),
                         cascadeDelete=r.random() < 0.3)
            elif k in ("file", "mfile"):
                f.update(type="file", maxSelect=1 if k == "file" else r.choice([2, 3]),
                         maxSize=r.choice([64, 5000]))
                if r.random() < 0.2:
                    f["mimeTypes"] = ["text/plain"]
                if r.random() < 0.2:
                    f["protected"] = True
            if r.random() < 0.25:
                f["hidden"] = True
            if r.random() < 0.15 and k != "bool":
                f["required"] = True
            fields.append(f)
            if k in ("text", "number", "email") and r.random() < 0.25:
                idx_pool.append(f["name"])
        if self_is_auth and r.random() < 0.6:
            fields.append({"name": "credits", "type": "number", **({"hidden": True} if r.random() < 0.3 else {})})
        return fields

    def gen_collections(self):
        r = self.r
        n_auth = r.choice([1, 1, 2])
        n_base = r.choice([1, 2, 2, 3])
        names = [f"u{i}" for i in range(n_auth)] + [f"c{i}" for i in range(n_base)]
        for name in names:
            auth = name.startswith("u")
            idx_pool = []
            c = {"name": name, "type": "auth" if auth else "base", "fields": self.gen_fields(name, idx_pool, auth)}
            idx = []
            for fname in idx_pool:
                where = " WHERE %s != ''" % fname if r.random() < 0.5 else ""
                idx.append(f"CREATE UNIQUE INDEX idx_{name}_{fname} ON {name} ({fname}){where}")
            if idx:
                c["indexes"] = idx
            self.colls.append(c)
            self.known[name] = []
        for c in self.colls:
            for op in ("list", "view", "create", "update", "delete"):
                c[op + "Rule"] = self.gen_rule(c, op)
            if c["type"] == "auth":
                m = self.gen_rule(c, "manage") if r.random() < 0.3 else None
                if m == "" and r.random() < 0.9:
                    m = None  # PocketBase refuses "" (a known difference); rarely, to keep cases going
                c["manageRule"] = m
                if r.random() < 0.05:
                    c["authRule"] = "verified = true"

    # ------------------------------------------------------------------ rules
    def coll(self, name):
        return next(c for c in self.colls if c["name"] == name)

    def auth_colls(self):
        return [c for c in self.colls if c["type"] == "auth"]

    def const_for(self, f):
        r = self.r
        k = kind(f) if f else "text"
        if k == "number":
            return str(r.choice([0, 1, 2, 3]))
        if k == "bool":
            return r.choice(["true", "false"])
        if k in ("select", "mselect"):
            return '"%s"' % r.choice(SELECT_VALUES)
        return '"%s"' % r.choice(["", "a", "b", "hello"])

    def cmp_atom(self, lhs, f):
        r = self.r
        k = kind(f) if f else "text"
        if k == "number":
            op = r.choice(["=", "!=", ">", "<=", "<"])
        elif k in ("mselect", "mrelation", "mfile"):
            op = r.choice(["?=", "?!=", "="])
        else:
            op = r.choice(["=", "!="])
        return f"{lhs} {op} {self.const_for(f)}"

    def gen_atom(self, c, op):
        r = self.r
        fields = c["fields"]
        rels = [f for f in fields if f["type"] == "relation"]
        choices = [("auth_set", 3), ("auth_field", 2), ("body", 6 if op in ("create", "update") else 1),
                   ("field", 2 if op != "create" else 1), ("owner", 4), ("relpath", 2 if rels else 0),
                   ("collection", 1)]
        what = wchoice(r, choices)
        ac = r.choice(self.auth_colls())
        if what == "auth_set":
            return r.choice(['@request.auth.id != ""', '@request.auth.id = ""',
                             f'@request.auth.collectionName = "{ac["name"]}"'])
        if what == "auth_field":
            cand = [f for f in ac["fields"] if f["type"] in ("number", "bool", "text", "select")]
            if cand and r.random() < 0.7:
                f = r.choice(cand)
                return self.cmp_atom(f"@request.auth.{f['name']}", f)
            return f"@request.auth.verified = {r.choice(['true', 'false'])}"
        if what == "body":
            names = [f["name"] for f in fields]
            if c["type"] == "auth":
                names += ["email", "verified", "emailVisibility", "password"]
            fname = r.choice(names)
            f = next((x for x in fields if x["name"] == fname), None)
            form = r.random()
            if form < 0.4:
                return f"@request.body.{fname}:isset = {r.choice(['false', 'false', 'true'])}"
            if form < 0.55 and op == "update":
                return f"@request.body.{fname}:changed = false"
            if form < 0.7 and f is not None and is_multi(f):
                return f"@request.body.{fname}:length {r.choice(['<', '<=', '>'])} {r.choice([1, 2])}"
            if f is not None and f["type"] == "relation":
                return f"@request.body.{fname} {r.choice(['=', '!='])} @request.auth.id"
            return self.cmp_atom(f"@request.body.{fname}", f)
        if what == "field":
            cand = [f for f in fields if f["type"] in ("number", "bool", "text", "select", "relation")]
            if not cand:
                return '@request.auth.id != ""'
            f = r.choice(cand)
            if f["type"] == "relation":
                return f'{f["name"]} {"?=" if is_multi(f) else "="} @request.auth.id'
            return self.cmp_atom(f["name"], f)
        if what == "owner":
            if c["type"] == "auth" and r.random() < 0.6:
                return "id = @request.auth.id"
            own = [f for f in rels if self.coll(f["collection"])["type"] == "auth"]
            if own:
                f = r.choice(own)
                return f'{f["name"]} {"?=" if is_multi(f) else "="} @request.auth.id'
            return '@request.auth.id != ""'
        if what == "relpath":
            f = r.choice(rels)
            t = self.coll(f["collection"])
            cand = [x for x in t["fields"] if x["type"] in ("number", "bool", "text", "select")]
            sep = "?=" if is_multi(f) else "="
            if cand and r.random() < 0.6:
                g = r.choice(cand)
                atom = self.cmp_atom(f'{f["name"]}.{g["name"]}', g)
                return atom if not is_multi(f) else atom.replace(" = ", " ?= ", 1)
            return f'{f["name"]}.id {sep} @request.auth.id'
        # @collection
        t = r.choice(self.colls)
        cand = [x for x in t["fields"] if x["type"] in ("number", "bool", "text")]
        if cand and r.random() < 0.5:
            g = r.choice(cand)
            return self.cmp_atom(f'@collection.{t["name"]}.{g["name"]}', g).replace(" = ", " ?= ", 1)
        return f'@collection.{t["name"]}.id ?= @request.auth.id'

    def gen_rule(self, c, op):
        r = self.r
        x = r.random()
        if x < 0.12:
            return None
        if x < 0.35:
            return ""
        atoms = [self.gen_atom(c, op) for _ in range(r.choice([1, 1, 2, 2, 3]))]
        out = atoms[0]
        for a in atoms[1:]:
            out += r.choice([" && ", " && ", " || "]) + a
        if r.random() < 0.1 and len(atoms) > 1:
            out = f"({out})"
        return out

    # ------------------------------------------------------------------ users
    def gen_users(self):
        r = self.r
        for c in self.auth_colls():
            for i in range(r.choice([1, 2, 2])):
                uid = self.new_id()
                sym = uid
                pw = self.strong_password()
                body = {"id": uid, "email": self.new_email(), "password": pw, "passwordConfirm": pw,
                        "verified": r.random() < 0.6, "emailVisibility": r.random() < 0.3}
                for f in c["fields"]:
                    if f["type"] in ("number", "bool", "text", "select") and (f.get("required") or r.random() < 0.7):
                        body[f["name"]] = self.valid_value(f, for_user=True)
                self.users.append({"sym": sym, "collection": c["name"], "email": body["email"], "password": pw,
                                   "body": body})
                self.known[c["name"]].append(sym)

    # ------------------------------------------------------------------ values
    def file_part(self):
        r = self.r
        name = r.choice(["one.txt", "two.txt", "Note File.txt", "data.bin", "big.txt"])
        if name == "big.txt":
            return {"$file": [name, "B" * 200, "text/plain"]}
        if name == "data.bin":
            return {"$file": [name, "\x00\x01bin", "application/octet-stream"]}
        return {"$file": [name, "hello " + "".join(r.choice(ALNUM) for _ in range(4)), "text/plain"]}

    def ref(self, coll):
        r = self.r
        pool = self.known.get(coll) or []
        if pool and r.random() < 0.9:
            return {"$ref": r.choice(pool)}
        return {"$ref": "nonexistent0001"}

    def stored(self, coll):
        pool = self.known.get(coll) or []
        if not pool:
            return "missing.txt"
        return None  # filled by caller

    def valid_value(self, f, multipart=False, coll=None, for_user=False, target=None):
        r = self.r
        k = kind(f)
        if k == "text":
            v = r.choice(TEXTS)
            if f.get("required") and v == "":
                v = "a"
            return v
        if k == "number":
            return r.choice(NUMBERS[:4] if for_user else NUMBERS)
        if k == "bool":
            return r.random() < 0.5
        if k == "email":
            return r.choice(["a@x.io", "b@y.org", ""])
        if k == "url":
            return r.choice(["https://a.io/x", "http://b.org", ""])
        if k == "date":
            return r.choice(DATES)
        if k == "select":
            return r.choice(SELECT_VALUES + [""])
        if k == "mselect":
            return r.sample(SELECT_VALUES, r.randint(0, f["maxSelect"]))
        if k == "relation":
            return self.ref(f["collection"]) if r.random() < 0.85 else ""
        if k == "mrelation":
            return [self.ref(f["collection"]) for _ in range(r.randint(0, f["maxSelect"]))]
        if k in ("file", "mfile"):
            if multipart:
                if k == "file":
                    return self.file_part()
                return [self.file_part() for _ in range(r.randint(1, f["maxSelect"]))]
            if target is not None and r.random() < 0.7:
                # the record's own stored name(s): keeps them (or, once removed, names none)
                if k == "file":
                    return {"$stored": [target["$ref"], f["name"], 0]}
                return [{"$stored": [target["$ref"], f["name"], i]} for i in range(r.randint(0, 2))]
            return "" if k == "file" else []
        if k == "json":
            return r.choice([{"k": 1}, [1, 2], "str", 5, None, {"long": "y" * 30}])
        raise AssertionError(k)

    def invalid_value(self, f):
        r = self.r
        k = kind(f)
        table = {
            "text": [123, ["a"], {"o": 1}, "x" * 40],
            "number": ["abc", "3", True, 1e20, "2.5"],
            "bool": ["yes", 1, "true", 2],
            "email": ["nope", "a@", 5],
            "url": ["notaurl", "ftp:/x", 7],
            "date": ["yesterday", 5, "2021-13-45"],
            "select": ["zz", ["a", "b"], 1],
            "mselect": [["a", "zz"], SELECT_VALUES, "a"],
            "relation": [{"$ref": "nonexistent0001"}, ["x"], 5],
            "mrelation": [[{"$ref": "nonexistent0001"}], "nonexistent0001"],
            "file": [5, "nonexistent.txt", ["a", "b"]],
            "mfile": [5, ["nonexistent.txt"]],
            "json": ["{bad", "x" * 30],
        }
        return r.choice(table[k])

    def modifier_entry(self, f, multipart, coll, target=None):
        """A modifier key and value for a field, or None if the type has no modifiers."""
        r = self.r
        k = kind(f)
        name = f["name"]
        if k == "number":
            return r.choice([f"{name}+", f"{name}-"]), r.choice([1, 2, 5, -3, 0.5])
        if k in ("mselect", "select"):
            key = r.choice([f"{name}+", f"+{name}", f"{name}-"])
            v = r.choice(SELECT_VALUES)
            return key, (v if r.random() < 0.5 else [v, r.choice(SELECT_VALUES)])
        if k in ("mrelation", "relation"):
            key = r.choice([f"{name}+", f"+{name}", f"{name}-"])
            return key, self.ref(f["collection"])
        if k in ("mfile", "file"):
            if multipart and r.random() < 0.6:
                return r.choice([f"{name}+", f"+{name}"]), self.file_part()
            if target is not None:
                return f"{name}-", {"$stored": [target["$ref"], name, r.choice([0, 1])], "else": "missing.txt"}
            return None
        return None

    def gen_body(self, c, op, multipart, target=None, principal=None):
        r = self.r
        body = {}
        p_field = 0.6 if op == "create" else 0.3
        for f in c["fields"]:
            p = p_field
            if f.get("hidden"):
                # non-superusers' hidden values are a known open difference (known.py) that ends a
                # case; send them less often so the cases get further
                p = max(p, 0.45) if principal == "superuser" else p * 0.4
            if f.get("required") and op == "create":
                p = 0.85
            if r.random() < p:
                if kind(f) in ("file", "mfile") and not multipart and op == "create" and r.random() < 0.5:
                    continue
                p_bad = 0.04 if kind(f) in ("file", "mfile") else 0.15
                body[f["name"]] = self.invalid_value(f) if r.random() < p_bad else \
                    self.valid_value(f, multipart, c["name"], target=target)
            if r.random() < (0.12 if op == "create" else 0.25):
                m = self.modifier_entry(f, multipart, c["name"], target)
                if m:
                    body[m[0]] = m[1]
        if c["type"] == "auth":
            self.auth_keys(c, op, body, target, principal)
        if r.random() < 0.05:
            body["unknownKey"] = "x"
        return body

    def user_by_sym(self, sym):
        return next((u for u in self.users if u["sym"] == sym), None)

    def auth_keys(self, c, op, body, target, principal):
        r = self.r
        if op == "create":
            if r.random() < 0.9:
                body["email"] = self.new_email() if r.random() < 0.85 else r.choice(self.users)["email"]
            if r.random() < 0.85:
                x = r.random()
                pw = (self.strong_password() if x < 0.8 else "short1" if x < 0.9 else
                      COMMON_PASSWORD if x < 0.93 else "")
                body["password"] = pw
                y = r.random()
                if y < 0.8:
                    body["passwordConfirm"] = pw
                elif y < 0.9:
                    body["passwordConfirm"] = pw + "x"
        else:
            u = self.user_by_sym(target["$ref"]) if isinstance(target, dict) else None
            if r.random() < 0.25:
                pw = self.strong_password() if r.random() < 0.85 else r.choice(["short1", COMMON_PASSWORD])
                body["password"] = pw
                if r.random() < 0.8:
                    body["passwordConfirm"] = pw
                x = r.random()
                if x < 0.4 and u:
                    body["oldPassword"] = u["password"]
                elif x < 0.6:
                    body["oldPassword"] = "Wrong-pass-1"
            elif r.random() < 0.05:
                body["oldPassword"] = u["password"] if u else "Wrong-pass-1"
            if r.random() < 0.12:
                body["email"] = self.new_email() if r.random() < 0.7 else r.choice(self.users)["email"]
        if r.random() < 0.25:
            body["verified"] = r.random() < 0.5
        if r.random() < 0.2:
            body["emailVisibility"] = r.random() < 0.5
        if r.random() < 0.1:
            body["tokenKey"] = "tk" + "".join(r.choice(ALNUM) for _ in range(40))

    # ------------------------------------------------------------------ steps
    def principal(self):
        r = self.r
        x = r.random()
        if x < 0.22 or not self.users:
            return "guest"
        if x < 0.45:
            return "superuser"
        return r.choice(self.users)["sym"]

    def pick_target(self, c, principal):
        r = self.r
        pool = self.known[c["name"]]
        if c["type"] == "auth" and principal in pool and r.random() < 0.5:
            return {"$ref": principal}
        if pool and r.random() < 0.93:
            return {"$ref": r.choice(pool)}
        return {"$ref": "nonexistent0001"}

    def create_id(self, c, body, new):
        """Sets body["id"] (explicit) or returns an auto symbol."""
        r = self.r
        x = r.random()
        if x < 0.7:
            rid = self.new_id()
            body["id"] = rid
            self.known[c["name"]].append(rid)
            return None
        if x < 0.9:
            return self.new_auto(c["name"])
        pool = self.known[c["name"]]
        body["id"] = r.choice([{"$ref": r.choice(pool)} if pool else "BAD id!", "BAD id!", "short"])
        return None

    def write_sub(self, op, c, principal, multipart):
        sub = {"op": op, "coll": c["name"]}
        if op in ("create", "upsert"):
            body = self.gen_body(c, "create", multipart, principal=principal)
            if op == "upsert":
                body["id"] = self.pick_target(c, principal)
            else:
                new = self.create_id(c, body, None)
                if new:
                    sub["new"] = new
            sub["body"] = body
        elif op == "update":
            sub["target"] = self.pick_target(c, principal)
            body = self.gen_body(c, "update", multipart, sub["target"], principal)
            if self.r.random() < 0.04:
                body["id"] = self.new_id()
            sub["body"] = body
        else:
            sub["target"] = self.pick_target(c, principal)
        return sub

    def gen_step(self, seeding=None):
        r = self.r
        if seeding is not None:
            c = seeding
            step = {"as": "superuser", "via": "json"}
            step.update(self.write_sub("create", c, "superuser", False))
            return step
        c = r.choice(self.colls)
        principal = self.principal()
        op = wchoice(r, [("create", 30), ("update", 30), ("delete", 7), ("view", 7), ("list", 9), ("batch", 17)])
        if op == "batch":
            multipart = r.random() < 0.3
            subs = []
            for _ in range(r.choice([1, 1, 2, 3])):
                sc = r.choice(self.colls)
                sop = wchoice(r, [("create", 4), ("update", 4), ("delete", 1), ("upsert", 1)])
                subs.append(self.write_sub(sop, sc, principal, multipart))
            return {"op": "batch", "as": principal, "multipart": multipart, "requests": subs}
        if op == "delete":
            return {"op": op, "as": principal, "coll": c["name"], "target": self.pick_target(c, principal)}
        if op in ("view", "list"):
            step = {"op": op, "as": principal, "coll": c["name"]}
            if op == "view":
                step["target"] = self.pick_target(c, principal)
            query = {}
            if op == "list" and r.random() < 0.3:
                cand = [f for f in c["fields"] if f["type"] in ("number", "text", "bool")]
                if cand:
                    f = r.choice(cand)
                    query["filter"] = self.cmp_atom(f["name"], f)
            rels = [f for f in c["fields"] if f["type"] == "relation"]
            if rels and r.random() < 0.35:  # related records go through their own view rules
                query["expand"] = r.choice(rels)["name"]
            if r.random() < 0.1:
                query["fields"] = r.choice(["id,email", "*,expand.*", "id," + r.choice(c["fields"])["name"]])
            if query:
                step["query"] = query
            return step
        via = "multipart" if r.random() < 0.3 else "json"
        step = {"as": principal, "via": via}
        step.update(self.write_sub(op, c, principal, via == "multipart"))
        return step

    def case(self):
        self.gen_collections()
        self.gen_users()
        steps = []
        for c in self.colls:
            if c["type"] == "base":
                for _ in range(self.r.choice([1, 2, 3])):
                    steps.append(self.gen_step(seeding=c))
        while len(steps) < self.n_steps:
            steps.append(self.gen_step())
        return {"seed": self.seed, "collections": self.colls, "users": self.users, "steps": steps}


def generate(seed, steps=30):
    return Gen(seed, steps).case()
