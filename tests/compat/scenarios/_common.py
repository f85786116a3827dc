"""Shared building blocks for scenarios (plain data, no behaviour)."""


def S(name, method, path, **kw):
    """One step.  S("create post", "POST", "/api/...", body={...}, expect=200, save={...})"""
    d = {"name": name, "method": method, "path": path}
    d.update(kw)
    return d


def records(coll):
    return f"/api/collections/{coll}/records"


# A "kitchen sink" base collection with one field of each type used throughout.
# `tags` must exist first; its id is captured as {tagsId}.
TAGS_COLLECTION = {
    "name": "tags",
    "type": "base",
    "listRule": "",
    "viewRule": "",
    "fields": [
        {"name": "title", "type": "text", "required": True},
        {"name": "rank", "type": "number"},
    ],
}


def posts_collection(tags_id="{tagsId}", **overrides):
    c = {
        "name": "posts",
        "type": "base",
        "listRule": "",
        "viewRule": "",
        "createRule": "",
        "updateRule": "",
        "deleteRule": "",
        "fields": [
            {"name": "title", "type": "text", "required": True, "min": 3, "max": 20,
             "pattern": "^[A-Za-z0-9 ]+$"},
            {"name": "n", "type": "number", "min": 0, "max": 100, "onlyInt": True},
            {"name": "f", "type": "number"},
            {"name": "flag", "type": "bool"},
            {"name": "mail", "type": "email"},
            {"name": "site", "type": "url"},
            {"name": "when", "type": "date"},
            {"name": "status", "type": "select", "values": ["draft", "published", "archived"], "maxSelect": 1},
            {"name": "labels", "type": "select", "values": ["a", "b", "c", "d"], "maxSelect": 3},
            {"name": "meta", "type": "json", "maxSize": 100},
            {"name": "tag", "type": "relation", "collectionId": tags_id, "maxSelect": 1},
            {"name": "tagsrel", "type": "relation", "collectionId": tags_id, "maxSelect": 5},
            {"name": "loc", "type": "geoPoint"},
            {"name": "body", "type": "editor"},
            {"name": "created", "type": "autodate", "onCreate": True, "onUpdate": False},
            {"name": "updated", "type": "autodate", "onCreate": True, "onUpdate": True},
        ],
    }
    c.update(overrides)
    return c


def setup_tags_and_posts():
    """Steps creating `tags` (3 records: t1..t3) and the `posts` kitchen-sink collection."""
    return [
        S("setup: create tags collection", "POST", "/api/collections", body=TAGS_COLLECTION,
          expect=200, save={"tagsId": "$.id"}),
        S("setup: tag 1", "POST", records("tags"), body={"title": "alpha", "rank": 1}, expect=200,
          save={"t1": "$.id"}),
        S("setup: tag 2", "POST", records("tags"), body={"title": "beta", "rank": 2}, expect=200,
          save={"t2": "$.id"}),
        S("setup: tag 3", "POST", records("tags"), body={"title": "gamma", "rank": 3}, expect=200,
          save={"t3": "$.id"}),
        S("setup: create posts collection", "POST", "/api/collections", body=posts_collection(),
          expect=200, save={"postsId": "$.id"}),
    ]
