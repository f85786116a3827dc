"""Differential PocketBase-vs-keepd compatibility harness (see ../README.md)."""
