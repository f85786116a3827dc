#!/usr/bin/env bash
# Scores the hardened unit offline; fails above an exposure of 1.5.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
out=$(systemd-analyze security --offline=yes --threshold=15 keepd.service 2>&1) || { echo "$out" | tail -n 5; exit 1; }
echo "$out" | tail -n 1
