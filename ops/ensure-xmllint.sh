#!/usr/bin/env bash
# Makes sure `xmllint` is on PATH: the settlement file tests validate every
# generated pain.001 against schemas/iso20022/pain.001.001.03.xsd with it.
#
#   * If xmllint is already installed, does nothing.
#   * Otherwise installs Debian's libxml2-utils with apt-get (through sudo
#     when not root) and fails with a clear message if it cannot.
set -euo pipefail

log() { printf 'xmllint: %s\n' "$*"; }
die() {
    printf 'xmllint: ERROR: %s\n' "$*" >&2
    exit 1
}

if command -v xmllint >/dev/null 2>&1; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    die "xmllint is not installed and apt-get is not available; install libxml2-utils (or your system's libxml2 tools) by hand"
fi

# Runs a command as root: directly when root, through sudo when available.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "xmllint is not installed and installing libxml2-utils needs root (or sudo): run 'apt-get install libxml2-utils' as root"
    fi
}

log "installing libxml2-utils"
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
    die "apt-get update failed; install libxml2-utils by hand"
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libxml2-utils ||
    die "apt-get install libxml2-utils failed; install it by hand"

command -v xmllint >/dev/null 2>&1 ||
    die "libxml2-utils was installed but xmllint is still not on PATH"
log "installed $(xmllint --version 2>&1 | head -n 1)"
