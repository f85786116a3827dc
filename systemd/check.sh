#!/usr/bin/env bash
# Checks the unit offline: its keys are known to systemd, a restore's exit
# status (75) is a clean exit followed by a restart, and the exposure score
# stays at or below 1.5.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
unit=keepd.service
# `verify` reports unknown keys and sections as warnings (exit 0), and fails
# on ExecStart's missing binary when keepd isn't installed: only the former
# count here.
bad=$(systemd-analyze verify --man=no "$unit" 2>&1 | grep -E 'Unknown key|Unknown section|Failed to parse|Invalid' || true)
[ -z "$bad" ] || { echo "$unit: $bad" >&2; exit 1; }
# keepd exits 75 after staging a restore (api/backups.rs): systemd must log
# a clean exit and start it again.
for want in 'SuccessExitStatus=75' 'RestartForceExitStatus=75'; do
    grep -qx "$want" "$unit" || { echo "$unit: missing $want (a restore exits 75)" >&2; exit 1; }
done
out=$(systemd-analyze security --offline=yes --threshold=15 "$unit" 2>&1) || { echo "$out" | tail -n 5; exit 1; }
echo "$out" | tail -n 1
