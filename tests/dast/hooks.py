"""schemathesis hooks for tests/dast: sync frames (application/x-keepd-sync)
are sent as raw bytes, the way application/octet-stream bodies are."""

import schemathesis

schemathesis.serializer.alias("application/x-keepd-sync", "application/octet-stream")
