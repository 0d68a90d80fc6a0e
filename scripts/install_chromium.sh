#!/usr/bin/env bash
# The browser tests drive Debian's Chromium through Playwright; never `playwright install`
# (it downloads a browser build, which this network forbids).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium
