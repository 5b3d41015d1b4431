#!/usr/bin/env bash
# Makes sure `promtool` is on PATH: tests/observability.rs checks the alert
# rules (ops/monitoring/alerts.yml) with `promtool check rules`.
#
#   * If promtool is already installed, does nothing.
#   * Otherwise installs Debian's prometheus package (which ships promtool)
#     with apt-get (through sudo when not root). When that is not possible
#     it says so and exits 0: the test then skips the check with a message.
set -euo pipefail

log() { printf 'promtool: %s\n' "$*"; }

if command -v promtool >/dev/null 2>&1; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    log "not installed and apt-get is not available; the alert rules will not be checked (install Prometheus's promtool by hand)"
    exit 0
fi

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        return 1
    fi
}

log "installing Debian's prometheus package (for promtool)"
# The package's service is not wanted: policy-rc.d keeps it from starting.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ "$(id -u)" -eq 0 ] && [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
fi
ok=1
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || ok=0
if [ "$ok" -eq 1 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus || ok=0
fi
if [ "$created_policy" -eq 1 ]; then
    rm -f "$policy"
fi
if [ "$ok" -eq 1 ] && command -v promtool >/dev/null 2>&1; then
    log "installed $(promtool --version 2>&1 | head -n 1)"
else
    log "could not install promtool; the alert rules will not be checked"
fi
