#!/usr/bin/env bash
# Rebuilds the console from ui/src with the pinned esbuild and fails when the
# committed ui/dist differs from what the sources give (keepd embeds ui/dist;
# `cargo build` needs no node).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
npm ci --no-audit --no-fund --loglevel=error
node build.mjs
if ! git diff --exit-code --stat -- dist || [ -n "$(git status --porcelain -- dist)" ]; then
    echo "ui/dist is not what ui/src builds to: run 'cd ui && npm ci && node build.mjs' and commit ui/dist" >&2
    git status --short -- dist >&2
    exit 1
fi
echo "ui/dist matches ui/src"
