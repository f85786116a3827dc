"""File-field validation on record create/update: size over maxSize, MIME type not allowed (sniffed
from the content, not the name), more files than maxSelect; single and multiple fields, `+`/`-`."""
from ._common import S, records

C = "/api/collections"
R = records("docs")

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15"
       b"\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")


def up(name, content, ctype="application/octet-stream"):
    return {"filename": name, "content": content, "type": ctype}


TXT = "hello world"
BIG = "x" * 120

DOCS = {
    "name": "docs", "type": "base", "listRule": "", "viewRule": "", "createRule": "", "updateRule": "",
    "fields": [
        {"name": "title", "type": "text"},
        {"name": "pic", "type": "file", "maxSelect": 1, "maxSize": 100, "mimeTypes": ["image/png"]},
        {"name": "notes", "type": "file", "maxSelect": 2, "maxSize": 50, "mimeTypes": ["text/plain"]},
        {"name": "any", "type": "file", "maxSelect": 3, "maxSize": 100},
        {"name": "one", "type": "file", "maxSelect": 1},
    ],
}

FILE_NAME_MASK = [
    {"regex": r"(?<=^[a-z0-9])[a-z0-9]{10}(?=_[a-z0-9]{10}\.)",
     "reason": "PocketBase pads a stored name made from a short file name with random characters"},
    {"regex": r"_[a-z0-9]{10}(?=\.)", "reason": "PocketBase's random suffix of stored names"},
]

SCENARIOS = [
    {
        "id": "file_validation",
        "title": "file fields: maxSize, mimeTypes by content sniffing, maxSelect, on create and update",
        "mask": FILE_NAME_MASK,
        "steps": [
            S("setup: docs", "POST", C, body=DOCS, expect=200),
            S("create: file over maxSize", "POST", R, form={"pic": up("big.png", PNG + b"\x00" * 100)},
              expect=400),
            S("create: text content named .png", "POST", R, form={"pic": up("fake.png", TXT, "image/png")},
              expect=400),
            S("create: png content named .txt", "POST", R, form={"pic": up("real.txt", PNG, "text/plain")},
              expect=200),
            S("create: png into text/plain field", "POST", R, form={"notes": up("n.txt", PNG, "text/plain")},
              expect=400),
            S("create: three notes into maxSelect 2", "POST", R, form={"notes": [
                up("a.txt", TXT), up("b.txt", TXT), up("c.txt", TXT)]}, expect=400),
            S("create: two files into single field (the last one is kept)", "POST", R,
              form={"one": [up("a.txt", TXT), up("b.txt", TXT)]}, expect=200),
            S("create: four files into any (maxSelect 3)", "POST", R, form={"any": [
                up("a.txt", TXT), up("b.txt", TXT), up("c.txt", TXT), up("d.txt", TXT)]}, expect=400),
            S("create: several fields wrong at once", "POST", R, form={
                "pic": up("wrong.png", TXT), "notes": up("big.txt", BIG), "any": [up("1.txt", TXT)] * 4}, expect=400),
            S("create: one note over size among two", "POST", R, form={"notes": [up("ok.txt", TXT),
                                                                                  up("big.txt", BIG)]},
              expect=400),
            S("create: default max size (5 MiB) is fine", "POST", R, form={"one": up("m.txt", "y" * 1000)},
              expect=200),
            S("create ok: two notes", "POST", R, form={"title": "t", "notes": [up("a.txt", TXT),
                                                                               up("b.txt", TXT)]},
              expect=200, save={"d1": "$.id", "n0": "$.notes[0]", "n1": "$.notes[1]"}),
            S("update: append a third note", "PATCH", R + "/{d1}", form={"notes+": up("c.txt", TXT)}, expect=400),
            S("update: prepend a third note", "PATCH", R + "/{d1}", form={"+notes": up("c.txt", TXT)}, expect=400),
            S("update: remove one and append one", "PATCH", R + "/{d1}", form={
                "notes-": "{n0}", "notes+": up("c.txt", TXT)}, expect=200),
            S("update: replace with three", "PATCH", R + "/{d1}", form={"notes": [
                up("a.txt", TXT), up("b.txt", TXT), up("c.txt", TXT)]}, expect=400),
            S("update: append oversized", "PATCH", R + "/{d1}", form={"notes+": up("big.txt", BIG)}, expect=400),
            S("update: wrong type into pic", "PATCH", R + "/{d1}", form={"pic": up("wrong2.png", TXT)}, expect=400),
            S("update: two into single field (the last one is kept)", "PATCH", R + "/{d1}",
              form={"one": [up("a.txt", TXT), up("b.txt", TXT)]}, expect=200),
            S("update: append to single field that is empty", "PATCH", R + "/{d1}",
              form={"one+": up("a.txt", TXT)}, expect=200),
            S("update: append to single field that has one", "PATCH", R + "/{d1}",
              form={"one+": up("b.txt", TXT)}, expect=200),
            S("update: json body naming a file the record lacks", "PATCH", R + "/{d1}",
              body={"notes": ["nope.txt", "{n1}", "other.txt"]}, expect=400),
            S("create: json body naming files", "POST", R, body={"notes": ["a.txt"]}, expect=400),
            S("update: clear the single field", "PATCH", R + "/{d1}", body={"one": ""}, expect=200),
            S("update: clear the multiple field with null", "PATCH", R + "/{d1}", body={"notes": None},
              expect=200),
            S("view after", "GET", R + "/{d1}", expect=200),
        ],
    },
]
