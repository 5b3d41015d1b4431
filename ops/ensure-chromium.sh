#!/usr/bin/env bash
# Makes sure Debian's Chromium and ChromeDriver are installed: the console's
# browser test (tests/console_browser.rs) drives headless Chromium over
# WebDriver. Also installs a CJK font so that Chinese pages render (and
# their screenshots show characters, not boxes).
#
#   * If chromium, chromedriver and a CJK font are there, does nothing.
#   * Otherwise installs the packages chromium, chromium-driver and
#     fonts-wqy-zenhei with apt-get (through sudo when not root) and fails
#     with a clear message if it cannot. Nothing is downloaded at test time.
set -euo pipefail

log() { printf 'chromium: %s\n' "$*"; }
die() {
    printf 'chromium: ERROR: %s\n' "$*" >&2
    exit 1
}

have_font() { fc-list :lang=zh 2>/dev/null | grep -q .; }

if command -v chromedriver >/dev/null 2>&1 && { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; } && have_font; then
    exit 0
fi

command -v apt-get >/dev/null 2>&1 || die "chromium and chromedriver are missing and apt-get is not available: install Chromium, ChromeDriver and a CJK font yourself"
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install chromium chromium-driver fonts-wqy-zenhei as root"
    SUDO=(sudo)
fi
log "installing chromium, chromium-driver and fonts-wqy-zenhei (apt-get)"
export DEBIAN_FRONTEND=noninteractive
if ! "${SUDO[@]}" apt-get install -y -q chromium chromium-driver fonts-wqy-zenhei >/tmp/billclear-apt-chromium.log 2>&1; then
    "${SUDO[@]}" apt-get update -q >/tmp/billclear-apt-chromium.log 2>&1 || true
    "${SUDO[@]}" apt-get install -y -q chromium chromium-driver fonts-wqy-zenhei >>/tmp/billclear-apt-chromium.log 2>&1 ||
        die "apt-get could not install chromium chromium-driver fonts-wqy-zenhei (see /tmp/billclear-apt-chromium.log)"
fi
command -v chromedriver >/dev/null 2>&1 || die "chromedriver is still not on PATH after installing chromium-driver"
log "installed $(chromium --version 2>/dev/null || echo chromium)"
